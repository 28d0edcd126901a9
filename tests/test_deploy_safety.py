"""The deploy safety layer fails closed on every input (issue 13): one test per hole found by
attacking the controller and the policy loader through their Python API, with the numbers the
attack produced. The property-based version of these checks is tests/test_deploy_properties.py;
the same faults over real DDS / rclpy traffic are in tests/test_deploy_faults.py."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from rewardlab.deploy.controller import Controller
from rewardlab.deploy.messages import ImuSample, JointStateSample, PointSample
from rewardlab.deploy.policy import Policy, PolicyLoadError, load_policy, seal_sidecar
from rewardlab.deploy.robot_config import load_robot_config
from rewardlab.deploy.safety import SafetyState, Trip

pytestmark = pytest.mark.unit

EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "arm_reach_export"
NAMES = ("base_yaw", "shoulder", "elbow")
LAYOUT = [
    {"name": "joint_pos", "start": 0, "width": 3},
    {"name": "joint_vel", "start": 3, "width": 3},
    {"name": "target_pos", "start": 6, "width": 3},
    {"name": "ee_to_target", "start": 9, "width": 3},
    {"name": "last_action", "start": 12, "width": 3},
]
META = {
    "format_version": 1, "obs_dim": 15, "action_dim": 3, "control_rate_hz": 50.0,
    "observation": {"layout": LAYOUT},
    "action": {"ctrl_mid": [0.0, 0.4, 1.0], "ctrl_half": [2.5, 1.6, 1.6], "actuator_joints": list(NAMES)},
}  # fmt: skip
POSE = [0.0, 0.4, 1.0]


def policy_of(fn) -> Policy:
    """A policy computing ``fn(obs [B, 15]) -> actions``."""
    return Policy(dict(META), "numpy", None, fn)


def const(action) -> Policy:
    a = np.asarray(action, dtype=np.float64)
    return policy_of(lambda x: np.tile(a, (x.shape[0], 1)))


def js(pos, t, vel=None, names=NAMES) -> JointStateSample:
    return JointStateSample(names, pos, vel if vel is not None else [0.0] * len(pos), stamp=t, recv_time=t)  # fmt: skip


def running(policy: Policy, **robot_overrides) -> tuple[Controller, float]:
    """A controller in RUN at the returned time (joint states at POSE, 50 Hz)."""
    c = Controller(policy, load_robot_config("arm", {"stale_timeout_s": 0.1, **robot_overrides}))
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=0.0))
    t = 0.0
    while c.state != SafetyState.RUN:
        c.on_joint_state(js(POSE, t))
        if c.robot.topics.heartbeat:
            c.on_heartbeat(t)
        c.tick(t)
        t += 0.02
        assert t < 5, c.status()
    return c, t


# ------------------------------------------------------------------------------------------------
# The hash check fails closed


def copy_export(tmp_path: Path, name: str = "export") -> Path:
    out = tmp_path / name
    shutil.copytree(EXPORT, out)
    return out


def edit_sidecar(folder: Path, edit, reseal: bool = True) -> None:
    meta = json.loads((folder / "policy.json").read_text())
    edit(meta)
    if reseal:
        meta = seal_sidecar(meta)
    (folder / "policy.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("backend", ["onnx", "torch"])
@pytest.mark.parametrize(
    "files, problem",
    [
        (None, r"files: missing"),
        ({}, r"files\.policy\.(onnx|pt): missing"),
        ("other", r"files\.policy\.(onnx|pt): missing"),
    ],
    ids=["no-files-entry", "empty-files", "other-file-only"],
)
def test_every_loadable_file_must_be_hashed(tmp_path, backend, files, problem):
    """No files entry, an empty one, or one without the backend's file: the model swapped in from
    another run used to load silently."""
    folder = copy_export(tmp_path)
    other = {"onnx": "policy.pt", "torch": "policy.onnx"}[backend]

    def edit(meta):
        if files is None:
            del meta["files"]
        elif files == "other":
            meta["files"] = {other: meta["files"][other]}
        else:
            meta["files"] = files

    edit_sidecar(folder, edit)
    with pytest.raises(PolicyLoadError, match=problem) as e:
        load_policy(folder, backend=backend)
    assert "policy.json" in str(e.value) and "sha256" in str(e.value)


def test_an_unlisted_model_next_to_the_loaded_one_is_refused(tmp_path):
    """A loadable file the sidecar does not hash (here the TorchScript file) is refused even when
    the ONNX backend is asked for: every file that can be loaded must be hashed."""
    folder = copy_export(tmp_path)
    edit_sidecar(folder, lambda m: m["files"].pop("policy.pt"))
    with pytest.raises(PolicyLoadError, match=r"files\.policy\.pt: missing"):
        load_policy(folder, backend="onnx")


@pytest.mark.parametrize("backend, file", [("onnx", "policy.onnx"), ("torch", "policy.pt")])
def test_foreign_or_corrupt_model_is_a_policy_load_error(tmp_path, backend, file):
    """A corrupt model whose hash the sidecar lists (an export gone wrong) is refused by
    PolicyLoadError naming the file, never by a raw onnxruntime / TorchScript error."""
    folder = copy_export(tmp_path)
    (folder / file).write_bytes(b"\x08\x07not a model" * 40)
    edit_sidecar(folder, lambda m: m["files"][file].update(sha256=_sha256(folder / file)))
    with pytest.raises(PolicyLoadError, match=rf"{file}: cannot be loaded by"):
        load_policy(folder, backend=backend)


def test_sidecar_integrity_is_checked(tmp_path):
    """The sidecar's own hash (over its content, which lists the model files' hashes) catches an
    edit of the sidecar: here ctrl_half doubled, which would double every command's range."""
    folder = copy_export(tmp_path)
    edit_sidecar(folder, lambda m: m["action"].update(ctrl_half=[5.0, 3.2, 3.2]), reseal=False)
    with pytest.raises(PolicyLoadError, match=r"policy\.json: sidecar_sha256 does not match"):
        load_policy(folder)
    edit_sidecar(folder, lambda m: m.pop("sidecar_sha256"), reseal=False)
    with pytest.raises(PolicyLoadError, match=r"policy\.json: sidecar_sha256: missing"):
        load_policy(folder)


def test_sealed_export_loads_and_both_backends_agree():
    onnx, ts = load_policy(EXPORT, backend="onnx"), load_policy(EXPORT, backend="torch")
    obs = np.random.default_rng(0).normal(size=15)
    np.testing.assert_allclose(onnx(obs), ts(obs), atol=1e-5)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# A policy that raises


def test_a_policy_that_raises_holds_with_the_reason():
    calls = []

    def explode(x):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("CUDA error: device lost")
        return np.zeros((x.shape[0], 3))

    c = Controller(policy_of(explode), load_robot_config("arm"))
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=0.0))
    cmds = []
    for k in range(6):
        c.on_joint_state(js(POSE, 0.02 * k))
        cmds.append(c.tick(0.02 * k))  # must not raise
    assert [x.state for x in cmds] == ["RAMP"] * 3 + ["HOLD"] * 3
    assert c.last_trip.kind == Trip.FAULT
    assert "policy raised RuntimeError: CUDA error: device lost" in cmds[3].reason
    assert all(np.all(np.isfinite(x.positions)) for x in cmds)


def test_an_observation_builder_that_raises_holds():
    c, t = running(const([0.0, 0.0, 0.0]))

    def broken(*_):
        raise ZeroDivisionError("bad kinematics")

    c.obs.ee_pos = broken
    c.on_joint_state(js(POSE, t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.FAULT
    assert "observation raised ZeroDivisionError: bad kinematics" in cmd.reason


# ------------------------------------------------------------------------------------------------
# Malformed JointState


def test_joint_state_with_more_names_than_positions_is_a_transition():
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(JointStateSample(NAMES, [0.0, 0.4], recv_time=t))  # must not raise
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.MALFORMED
    assert "3 names but 2 position values" in cmd.reason


def test_effort_only_joint_state_updates_no_position_and_the_watchdog_holds():
    """A JointState with names and efforts but an empty position array is legal ROS (the arrays
    may be empty): it refreshes no position, so a robot sending only those trips the watchdog."""
    c, t = running(const([0.0, 0.0, 0.0]))
    last = t - 0.02
    for k in range(10):
        now = t + 0.02 * k
        c.on_joint_state(JointStateSample(NAMES, [], effort=[1.0, 2.0, 3.0], recv_time=now))
        cmd = c.tick(now)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.STALE
    assert 0.1 <= c.last_trip.time - last <= 0.12 + 1e-9  # the first tick past the timeout
    np.testing.assert_allclose(c.obs.effort, [1.0, 2.0, 3.0])


def test_effort_only_messages_are_named_while_waiting_to_start():
    c = Controller(const([0.0, 0.0, 0.0]), load_robot_config("arm"))
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=0.0))
    c.on_joint_state(JointStateSample(NAMES, [], effort=[1.0, 2.0, 3.0], recv_time=0.0))
    assert c.tick(0.0) is None
    assert "joint_states[base_yaw] (named without a position)" in c.status()


def test_duplicate_joint_names_are_rejected_not_last_wins():
    """shoulder at 3.0 (over its 2.0 limit) then 0.4: last-wins dropped the out-of-limit reading."""
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(js([0.0, 3.0, 1.0, 0.4], t, names=(*NAMES, "shoulder")))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.MALFORMED
    assert "duplicate joint name 'shoulder'" in cmd.reason
    assert c.obs.position[1] == pytest.approx(0.4)  # the message was not applied at all


def test_malformed_imu_and_target_are_transitions():
    c, t = running(const([0.0, 0.0, 0.0]), topics={"imu": "/imu"})
    c.on_imu(ImuSample([0.0, 0.0, 1.0], [0.0, 0.0, 0.0], recv_time=t))  # 3-value quaternion
    assert c.tick(t).state == "HOLD" and c.last_trip.kind == Trip.MALFORMED
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_target(PointSample([0.3, 0.0], recv_time=t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and "target: expected 3 values, got 2" in cmd.reason


# ------------------------------------------------------------------------------------------------
# Wrong action width


def test_wrong_action_width_says_so():
    c = Controller(const([0.0, 0.0]), load_robot_config("arm"))
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=0.0))
    c.on_joint_state(js(POSE, 0.0))
    cmd = c.tick(0.0)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.FAULT
    assert "policy action has shape (2,), expected (3,)" in cmd.reason
    assert "not finite" not in cmd.reason


# ------------------------------------------------------------------------------------------------
# DAMP and HOLD are rate limited


def test_damp_follows_a_glitch_at_the_rate_limit():
    """One glitched reading ([-2.6, -1.3, 2.7], every joint past its limit): DAMP used to jump
    from [0, 0.4, 1.0] to [-2.4, -1.1, 2.5]-like poses in one tick."""
    c, t = running(const([0.0, 0.0, 0.0]))
    rate = c.robot.rate_limit
    prev = c.last_command.copy()
    c.on_joint_state(js([-2.6, -1.3, 2.7], t))
    cmds = [c.tick(t)]
    for k in range(1, 20):
        c.on_joint_state(js([-2.6, -1.3, 2.7], t + 0.02 * k))
        cmds.append(c.tick(t + 0.02 * k))
    assert cmds[0].state == "DAMP" and c.last_trip.kind == Trip.JOINT_LIMIT
    path = np.array([prev] + [x.positions for x in cmds])
    assert np.abs(np.diff(path, axis=0)).max() <= rate + 1e-12
    np.testing.assert_allclose(cmds[0].positions, prev + np.array([-rate, -rate, rate]))
    lo, hi = np.asarray(c.robot.position_limits).T
    np.testing.assert_allclose(cmds[-1].positions, [lo[0], lo[1], hi[2]])  # clamped at the limits


def test_hold_moves_to_the_measured_pose_at_the_rate_limit():
    """The robot lags its command by 0.9 rad when the watchdog trips: HOLD walks the command back
    to the measured pose at the rate limit instead of jumping."""
    c, t = running(
        const([1.0, 0.0, 0.0]), kp=[0.0, 0.0, 0.0]
    )  # base_yaw target 2.5; no torque clamp
    for _ in range(10):  # the command runs ahead, the robot stays at 0.0
        c.on_joint_state(js(POSE, t))
        c.tick(t)
        t += 0.02
    ahead = c.last_command.copy()
    assert ahead[0] > 0.9
    cmds = [c.tick(t + 0.2 + 0.02 * k) for k in range(10)]  # blackout: stale -> HOLD
    assert {x.state for x in cmds} == {"HOLD"}
    path = np.array([ahead] + [x.positions for x in cmds])
    assert np.abs(np.diff(path, axis=0)).max() <= c.robot.rate_limit + 1e-12
    np.testing.assert_allclose(cmds[-1].positions, POSE, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Time


def test_receive_time_in_the_future_is_stale():
    """A joint state stamped 5 s in the future kept the controller in RUN through 4 s of silence."""
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(js(POSE, t + 5.0))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.STALE
    assert "received 5.000 s in the future" in cmd.reason


def test_nan_and_backward_clock_are_stale():
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(js(POSE, t))
    cmd = c.tick(float("nan"))
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.STALE
    assert "controller clock is nan" in cmd.reason
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(js(POSE, t - 1.0))
    cmd = c.tick(t - 1.0)
    assert cmd.state == "HOLD" and "clock went back by 0.980 s" in cmd.reason


def test_nan_receive_time_and_heartbeat_times_are_stale():
    c, t = running(const([0.0, 0.0, 0.0]))
    c.on_joint_state(js(POSE, float("nan")))
    assert c.tick(t).state == "HOLD" and c.last_trip.kind == Trip.STALE
    c, t = running(const([0.0, 0.0, 0.0]), topics={"heartbeat": "/hb"}, heartbeat_timeout_s=0.5)
    c.on_heartbeat(t + 100.0)  # a heartbeat from the future would keep the robot moving forever
    c.on_joint_state(js(POSE, t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.HEARTBEAT
    c, t = running(const([0.0, 0.0, 0.0]), topics={"heartbeat": "/hb"}, heartbeat_timeout_s=0.5)
    c.on_heartbeat(math.nan)
    for k in range(30):
        c.on_joint_state(js(POSE, t + 0.02 * k))
        cmd = c.tick(t + 0.02 * k)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.HEARTBEAT
