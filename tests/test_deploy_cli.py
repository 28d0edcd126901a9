"""`rewardlab deploy` / `rewardlab sim-robot` settings and the node's loop statistics (no ROS)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from rewardlab.deploy.cli import (
    ArgsError,
    DeployArgs,
    SimRobotArgs,
    build_args,
    parse_words,
)
from rewardlab.deploy.ros_node import LoopStats


@pytest.mark.unit
def test_deploy_args_convert_and_keep_strings_as_typed() -> None:
    args = build_args(
        DeployArgs,
        parse_words(
            ["policy=runs/1e3/export", "robot:=arm", "control_rate_hz=100", "duration=null"]
        ),
    )
    assert args.policy == "runs/1e3/export"  # a path that looks like a number stays a string
    assert args.robot == "arm" and args.control_rate_hz == 100.0 and args.duration is None
    assert args.transport == "rclpy" and args.trigger == "joint_state"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["robot=arm"], "command line: policy: required"),
        (["policy=p", "transprt=dds"], "transprt: unknown key; did you mean 'transport'?"),
        (["policy=p", "transport=ros1"], "transport: got 'ros1', expected one of rclpy, dds"),
        (["policy=p", "duration=abc"], "duration: got 'abc' (str), expected a number or null"),
        (["policy=p", "duration=-1"], "duration: got -1.0, expected > 0 or null"),
        (["policy=p", "trigger=event"], "trigger: got 'event', expected joint_state or timer"),
        (["policy"], "command line: policy: expected key=value"),
        (["policy=p", "rt_priority=0"], "rt_priority: got 0, expected 1-99 or null"),
    ],
)
def test_deploy_args_errors_name_the_key(words: list[str], message: str) -> None:
    with pytest.raises(ArgsError) as err:
        build_args(DeployArgs, parse_words(words))
    assert message in str(err.value)


@pytest.mark.unit
def test_sim_robot_args() -> None:
    args = build_args(SimRobotArgs, parse_words(["robot=arm", "latency_s=0.01", "camera=true"]))
    assert (args.latency_s, args.camera, args.reset_on_target) == (0.01, True, True)
    with pytest.raises(ArgsError, match="noise_pos: got -0.1, expected >= 0"):
        build_args(SimRobotArgs, parse_words(["noise_pos=-0.1"]))
    with pytest.raises(ArgsError, match="camera: got 'maybe'"):
        build_args(SimRobotArgs, parse_words(["camera=maybe"]))


@pytest.mark.unit
def test_cli_exit_status_and_message() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "deploy", "policy=x", "transport=udp"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    assert "rewardlab deploy: error: command line: transport: got 'udp'" in res.stderr


@pytest.mark.unit
def test_loop_stats_summary_by_hand() -> None:
    s = LoopStats(period=0.02)
    s.tick_times = [0.0, 0.02, 0.04, 0.069, 0.089]  # one late tick: a 29 ms interval
    s.latencies = [0.001, 0.002, math.nan, 0.003, 0.004]  # NaN: a HOLD command, not counted
    out = s.summary()
    assert out["commands"] == 5
    assert out["latency_median_ms"] == pytest.approx(2.5)
    assert out["latency_max_ms"] == pytest.approx(4.0)
    assert out["interval_median_ms"] == pytest.approx(20.0)
    assert out["missed_deadlines"] == 0  # 29 ms is not over 1.5 periods
    assert out["rate_hz"] == pytest.approx(4 / 0.089)
    s.tick_times.append(0.12)  # a 31 ms interval: a tick skipped
    assert s.summary()["missed_deadlines"] == 1
