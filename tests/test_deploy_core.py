"""Deploy core (no ROS): robot config, policy loading, observation by joint name, action clamps,
soft start and every safety trip, against hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rewardlab.deploy.actions import ActionMapper
from rewardlab.deploy.controller import Controller, ControllerError
from rewardlab.deploy.messages import ImuSample, JointStateSample, PointSample
from rewardlab.deploy.observation import (
    NotReady,
    ObservationBuilder,
    ObservationError,
    forward_kinematics,
    roll_pitch,
)
from rewardlab.deploy.policy import Policy, PolicyLoadError, load_policy, seal_sidecar
from rewardlab.deploy.robot_config import (
    RobotConfigError,
    load_robot_config,
)
from rewardlab.deploy.safety import SafetyState, Trip

pytestmark = pytest.mark.unit

ARM_LAYOUT = [
    {"name": "joint_pos", "start": 0, "width": 3},
    {"name": "joint_vel", "start": 3, "width": 3},
    {"name": "target_pos", "start": 6, "width": 3},
    {"name": "ee_to_target", "start": 9, "width": 3},
    {"name": "last_action", "start": 12, "width": 3},
]
NAMES = ("base_yaw", "shoulder", "elbow")


def arm_meta(**extra: object) -> dict:
    meta = {
        "format_version": 1, "obs_dim": 15, "action_dim": 3, "control_rate_hz": 50.0,
        "observation": {"layout": ARM_LAYOUT},
        "action": {"ctrl_mid": [0.0, 0.4, 1.0], "ctrl_half": [2.5, 1.6, 1.6], "actuator_joints": list(NAMES)},
    }  # fmt: skip
    meta.update(extra)
    return meta


def const_policy(action: list[float], meta: dict | None = None) -> Policy:
    """A policy that always returns ``action`` (the controller's arithmetic is what is tested)."""
    a = np.asarray(action, dtype=np.float64)
    return Policy(meta or arm_meta(), "numpy", None, lambda x: np.tile(a, (x.shape[0], 1)))


def js(pos: list[float], vel: list[float] | None = None, t: float = 0.0, names: tuple = NAMES, stamp: float | None = None) -> JointStateSample:  # fmt: skip
    return JointStateSample(names, pos, vel if vel is not None else [0.0] * len(pos), stamp=t if stamp is None else stamp, recv_time=t)  # fmt: skip


def arm(**overrides: object):
    """The arm config with the safety timings these tests compute with (0.1 s stale timeout)."""
    return load_robot_config("arm", {"stale_timeout_s": 0.1, **overrides})


def started(policy: Policy, robot=None, t: float = 0.0, pos=(0.0, 0.4, 1.0)) -> Controller:
    """A controller fed a joint state and a target at time ``t`` (first tick not yet run)."""
    c = Controller(policy, robot or arm())
    c.on_joint_state(js(list(pos), t=t))
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=t))
    return c


# ------------------------------------------------------------------------------------------------
# Robot config


def test_arm_config_matches_robot_constants_and_mjcf():
    import mujoco

    from rewardlab.deploy.sim_robot import model_path
    from rewardlab.envs.robots import ARM3

    cfg = load_robot_config("arm")
    assert cfg.joint_names == ARM3.joint_names
    assert cfg.default_pose == ARM3.default_pose
    assert cfg.position_limits == ARM3.joint_limits
    assert cfg.effort_limits == ARM3.effort_limits
    assert cfg.kp == ARM3.kp and cfg.kd == ARM3.kd
    model = mujoco.MjModel.from_xml_path(str(model_path(cfg)))
    data = mujoco.MjData(model)
    ee = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "ee")
    rng = np.random.default_rng(0)
    for _ in range(5):  # the config's kinematic chain is the MJCF's
        q = rng.uniform(*np.asarray(cfg.position_limits).T)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        np.testing.assert_allclose(
            forward_kinematics(cfg.kinematics, cfg.joint_names, q), data.site_xpos[ee], atol=1e-9
        )


def test_robot_config_errors_name_file_key_and_expectation(tmp_path):
    with pytest.raises(
        RobotConfigError, match=r"arm\.yaml \(with overrides\): kp: got 2 values, expected 3"
    ):
        load_robot_config("arm", {"kp": [1.0, 2.0]})
    with pytest.raises(
        RobotConfigError, match=r"rate_limt: unknown key; did you mean 'rate_limit'"
    ):
        load_robot_config("arm", {"rate_limt": 0.1})
    with pytest.raises(
        RobotConfigError, match=r"sim\.physics_rate_hz: got 'fast' \(str\), expected a number"
    ):
        load_robot_config("arm", {"sim": {"physics_rate_hz": "fast"}})
    with pytest.raises(
        RobotConfigError, match=r"topics\.imu: got 'imu', expected an absolute topic name"
    ):
        load_robot_config("arm", {"topics": {"imu": "imu"}})
    with pytest.raises(
        RobotConfigError, match=r"default_pose\[1\]: shoulder = 3.0 is outside position_limits"
    ):
        load_robot_config("arm", {"default_pose": [0.0, 3.0, 1.0]})
    with pytest.raises(RobotConfigError, match=r"no robot named 'armm'; known robots: .*arm"):
        load_robot_config("armm")
    bad = tmp_path / "r.yaml"
    bad.write_text("joint_names: [a\n")
    with pytest.raises(RobotConfigError, match=r"r\.yaml: invalid YAML"):
        load_robot_config(bad)


# ------------------------------------------------------------------------------------------------
# Observation


def test_joint_states_are_mapped_by_name_whatever_the_order_and_split():
    cfg = load_robot_config("arm")
    b = ObservationBuilder(ARM_LAYOUT, cfg, 15)
    b.update_joint_state(js([1.0, 0.1], [10.0, 11.0], t=1.0, names=("elbow", "base_yaw")))
    with pytest.raises(NotReady, match=r"joint_states\[shoulder\], target \(/target\)"):
        b.build(np.zeros(3))
    # an unknown joint in the message is ignored; the shoulder comes in a second message
    b.update_joint_state(js([9.0, 0.5], [9.0, 12.0], t=2.0, names=("gripper", "shoulder")))
    b.update_target(PointSample([0.3, 0.2, 0.5], recv_time=2.0))
    obs = b.build(np.array([0.1, -0.2, 0.3]))
    np.testing.assert_allclose(obs[0:3], [0.1, 0.5, 1.0])  # policy order: base_yaw, shoulder, elbow
    np.testing.assert_allclose(obs[3:6], [11.0, 12.0, 10.0])
    np.testing.assert_allclose(obs[6:9], [0.3, 0.2, 0.5])
    ee = forward_kinematics(cfg.kinematics, NAMES, np.array([0.1, 0.5, 1.0]))
    np.testing.assert_allclose(obs[9:12], np.array([0.3, 0.2, 0.5]) - ee)
    np.testing.assert_allclose(obs[12:15], [0.1, -0.2, 0.3])
    assert b.oldest_joint_recv() == 1.0  # base_yaw and elbow last came at t = 1
    with pytest.raises(ValueError, match="2 names but 1 position values"):
        b.update_joint_state(JointStateSample(("elbow", "shoulder"), [1.0]))


def test_joint_velocity_from_positions_when_the_robot_sends_none():
    b = ObservationBuilder(ARM_LAYOUT, arm(), 15)
    b.update_joint_state(JointStateSample(NAMES, [0.0, 0.4, 1.0], stamp=10.0, recv_time=1.0))
    b.update_joint_state(JointStateSample(NAMES, [0.01, 0.38, 1.0], stamp=10.004, recv_time=1.01))
    np.testing.assert_allclose(b.velocity, [2.5, -5.0, 0.0])  # over the 4 ms between stamps
    assert b.velocity_estimated.all()
    b.update_joint_state(JointStateSample(NAMES, [0.02, 0.38, 1.0], stamp=0.0, recv_time=1.02))
    np.testing.assert_allclose(b.velocity, [1.0, 0.0, 0.0])  # stamps went backwards: 10 ms receipt
    b.update_joint_state(js([0.02, 0.38, 1.0], [0.5, 0.5, 0.5], t=1.03))  # measured ones win
    np.testing.assert_allclose(b.velocity, [0.5, 0.5, 0.5])
    assert not b.velocity_estimated.any()


def test_observation_equals_the_training_envs():
    """The builder fed the env's own joint state, target and last action reproduces env obs."""
    import torch

    from rewardlab.envs import make_env

    env = make_env("arm_reach", num_envs=4, seed=3)
    env.reset(seed=3)
    actions = torch.rand(4, 3) * 2 - 1
    obs, *_ = env.step(actions)
    state = env.state()
    cfg = load_robot_config("arm")
    for i in range(4):
        b = ObservationBuilder(ARM_LAYOUT, cfg, 15)
        order = [2, 0, 1]  # shuffled message order
        b.update_joint_state(js(
            state["joint_pos"][i, order].tolist(), state["joint_vel"][i, order].tolist(),
            names=tuple(NAMES[j] for j in order),
        ))  # fmt: skip
        b.update_target(PointSample(state["target_pos"][i].tolist()))
        mine = b.build(state["last_action"][i].numpy())
        np.testing.assert_allclose(mine, obs[i].numpy(), atol=2e-5)


def test_unsupported_layout_is_refused_by_name():
    cfg = load_robot_config("arm")
    with pytest.raises(ObservationError, match=r"'cos\(pole_angle\)' has no source on a robot"):
        ObservationBuilder([{"name": "cos(pole_angle)", "start": 0, "width": 1}], cfg, 1)
    with pytest.raises(ObservationError, match="'torso_quat' needs an IMU, but topics.imu is null"):
        ObservationBuilder([{"name": "torso_quat", "start": 0, "width": 4}], cfg, 4)
    with pytest.raises(ObservationError, match="covers 15 values, the policy's obs_dim is 16"):
        ObservationBuilder(ARM_LAYOUT, cfg, 16)


def test_imu_terms_and_attitude():
    cfg = load_robot_config("arm", {"topics": {"imu": "/imu"}})
    layout = [
        {"name": "projected_gravity", "start": 0, "width": 3},
        {"name": "torso_quat", "start": 3, "width": 4},
    ]
    b = ObservationBuilder(layout, cfg, 7)
    b.update_joint_state(js([0.0, 0.4, 1.0]))
    half = (
        math.pi / 4
    )  # roll of pi/2 about x: gravity appears along -y... of the body: R^T [0,0,-1]
    b.update_imu(ImuSample([math.sin(half), 0, 0, math.cos(half)], [0, 0, 0]))
    obs = b.build(np.zeros(3))
    np.testing.assert_allclose(obs[:3], [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(obs[3:], [math.cos(half), math.sin(half), 0, 0])
    roll, pitch = roll_pitch(np.array([math.sin(0.3), 0, 0, math.cos(0.3)]))
    assert roll == pytest.approx(0.6) and pitch == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------------
# Actions


def test_action_mapper_hand_computed():
    cfg = arm(rate_limit=0.1)
    m = ActionMapper(cfg, np.array([0.0, 0.4, 1.0]), np.array([2.5, 1.6, 1.6]))
    a, target = m.target(np.array([0.5, 2.0, -0.25]))
    np.testing.assert_allclose(a, [0.5, 1.0, -0.25])  # clipped to [-1, 1]
    np.testing.assert_allclose(target, [1.25, 2.0, 0.6])
    q = np.array([1.2, 1.9, 0.62])
    qd = np.zeros(3)
    out = m.map(np.array([0.5, 2.0, -0.25]), previous=q, q=q, qd=qd)
    # rate limit 0.1/tick: base_yaw 1.2 -> 1.25 (0.05, free), shoulder 1.9 -> 2.0 (0.1, at the
    # limit), elbow 0.62 -> 0.6 (free)
    np.testing.assert_allclose(out.positions, [1.25, 2.0, 0.6])
    assert not out.rate_limited.any() and not out.position_limited.any()
    # far target: rate limited to previous + 0.1
    out = m.map(
        np.array([1.0, 1.0, 1.0]),
        previous=np.array([0.0, 0.4, 1.0]),
        q=np.array([0.0, 0.4, 1.0]),
        qd=qd,
    )
    np.testing.assert_allclose(out.positions, [0.1, 0.5, 1.1])
    assert out.rate_limited.all()
    # torque clamp: elbow kp 60, kd 1.863, limit 15: at q = 1.0, qd = -2: band
    # [1 + (-3.726 - 15)/60, 1 + (-3.726 + 15)/60] = [0.6879, 1.1879]
    lo, hi = m.torque_band(np.array([0.0, 0.4, 1.0]), np.array([0.0, 0.0, -2.0]))
    assert lo[2] == pytest.approx(1 + (-3.726 - 15) / 60) and hi[2] == pytest.approx(
        1 + (-3.726 + 15) / 60
    )
    out = m.map(np.array([0.0, 0.0, 1.0]), previous=np.array([0.0, 0.4, 1.15]), q=np.array([0.0, 0.4, 1.0]), qd=np.array([0, 0, -2.0]))  # fmt: skip
    assert out.positions[2] == pytest.approx(
        1 + (-3.726 + 15) / 60
    )  # 1.15 + 0.1 clamped to the band
    assert out.torque_limited[2]
    tau = m.estimated_torque(out.positions, np.array([0.0, 0.4, 1.0]), np.array([0, 0, -2.0]))
    assert tau[2] == pytest.approx(15.0)
    # joint limits win: with 2 rad per unit action the shoulder's target 2.4 passes its 2.0 limit
    wide = ActionMapper(cfg, np.array([0.0, 0.4, 1.0]), np.array([2.5, 2.0, 1.6]))
    out = wide.map(
        np.array([0.0, 1.0, 0.0]),
        previous=np.array([0.0, 1.95, 1.0]),
        q=np.array([0.0, 1.95, 1.0]),
        qd=qd,
    )
    assert out.positions[1] == 2.0 and out.position_limited[1] and out.rate_limited[1]


def test_soft_start_ramp_blends_from_measured_pose():
    robot = arm(rate_limit=0.1)
    c = started(const_policy([0.4, 0.0, 0.0]), robot=robot, pos=(0.0, 0.4, 1.0))  # target yaw 1.0
    cmds = []
    for k in range(8):  # 50 Hz, soft start 1 s
        t = 0.02 * k
        c.on_joint_state(js([0.0, 0.4, 1.0], t=t))
        cmds.append(c.tick(t))
    assert [x.state for x in cmds] == ["RAMP"] * 8
    # alpha = t / 1 s; desired yaw = alpha * 1.0, well under the 0.1 rad/tick rate limit
    np.testing.assert_allclose(
        [x.positions[0] for x in cmds], [0.02 * k for k in range(8)], atol=1e-12
    )
    t = 1.0
    c.on_joint_state(js([0.0, 0.4, 1.0], t=t))
    # alpha reaches 1: the controller enters RUN; desired 1.0, previous 0.14 -> rate limit 0.24
    cmd = c.tick(t)
    assert cmd.state == "RUN" and cmd.positions[0] == pytest.approx(0.24)


# ------------------------------------------------------------------------------------------------
# Safety


def run_until_run(c: Controller, t0: float = 0.0, pos=(0.0, 0.4, 1.0)) -> float:
    t = t0
    while c.state != SafetyState.RUN:
        c.on_joint_state(js(list(pos), t=t))
        c.tick(t)
        t += 0.02
        assert t < 5
    return t


def test_passive_until_inputs_then_stale_by_receive_time_holds():
    c = Controller(const_policy([0.0, 0.0, 0.0]), arm())
    assert c.tick(0.0) is None and c.state == SafetyState.PASSIVE
    c.on_joint_state(js([0.0, 0.4, 1.0], t=0.0))
    assert c.tick(0.0) is None and "target (/target)" in c.status()
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=0.0))
    assert c.tick(0.01).state == "RAMP"
    t = run_until_run(c, t0=0.02)
    # a message stamped "now" by the sender but received 0.15 s ago is stale (receive time counts)
    c.on_joint_state(js([0.0, 0.4, 1.0], t=t - 0.15, stamp=t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.STALE
    assert "0.150 s old" in cmd.reason
    np.testing.assert_allclose(cmd.positions, [0.0, 0.4, 1.0])  # holds the measured pose


def test_old_sender_stamp_but_fresh_receipt_is_not_stale():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    for _ in range(10):
        c.on_joint_state(js([0.0, 0.4, 1.0], t=t, stamp=-100.0))  # sender clock far behind
        assert c.tick(t).state == "RUN"
        t += 0.02


def test_blackout_of_half_a_second_holds_and_latches():
    c = started(const_policy([0.1, 0.1, 0.1]))
    t = run_until_run(c)
    last = t - 0.02  # the last joint state came with the previous tick
    states = []
    for k in range(25):  # 0.5 s without joint states; ticks at ages 0.03, 0.05, ..., 0.51 s
        states.append(c.tick(last + 0.03 + 0.02 * k).state)
    # stale_timeout_s = 0.1: ticks at ages up to 0.09 run, the tick at age 0.11 holds
    assert states[:4] == ["RUN"] * 4 and set(states[4:]) == {"HOLD"}
    assert c.last_trip.kind == Trip.STALE and c.last_trip.time == pytest.approx(last + 0.11)
    t = t + 0.5
    c.on_joint_state(js([0.0, 0.4, 1.0], t=t))
    assert c.tick(t).state == "HOLD"  # latched: data is back, still holding
    assert c.reset() and c.state == SafetyState.PASSIVE
    assert c.tick(t).state == "RAMP"


def test_nan_in_joint_state_and_in_policy_action_hold():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    c.on_joint_state(js([0.0, float("nan"), 1.0], t=t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.NONFINITE
    assert np.all(np.isfinite(cmd.positions))  # holds the last finite command, never NaN

    c = started(Policy(arm_meta(), "numpy", None, lambda x: np.full((x.shape[0], 3), np.inf)))
    cmd = c.tick(0.0)
    assert cmd.state == "HOLD" and "policy action not finite" in cmd.reason


def test_joint_limit_damps_and_follows_measured_pose():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    c.on_joint_state(js([2.56, 0.4, 1.0], t=t))  # base_yaw limit 2.5 + margin 0.05
    cmd = c.tick(t)
    assert cmd.state == "DAMP" and c.last_trip.kind == Trip.JOINT_LIMIT
    # towards the measured pose (clamped into the limits) at the rate limit, 0.3 rad per tick
    np.testing.assert_allclose(cmd.positions, [0.3, 0.4, 1.0])
    c.on_joint_state(js([2.4, 0.5, 1.1], t=t + 0.02))
    np.testing.assert_allclose(c.tick(t + 0.02).positions, [0.6, 0.5, 1.1])
    for k in range(2, 10):
        c.on_joint_state(js([2.4, 0.5, 1.1], t=t + 0.02 * k))
        cmd = c.tick(t + 0.02 * k)
    np.testing.assert_allclose(cmd.positions, [2.4, 0.5, 1.1])  # follows (damping only)


def test_overspeed_holds():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    c.on_joint_state(js([0.0, 0.4, 1.0], [0.0, -10.5, 0.0], t=t))  # 2 x 5 rad/s limit
    assert c.tick(t).state == "HOLD" and c.last_trip.kind == Trip.VELOCITY


def test_estimated_torque_over_limit_holds():
    # kd 10: at q = 2.5 (upper limit) moving at +4 rad/s the joint limit clamps the command to
    # 2.5, so the estimate is 40 (2.5 - 2.5) - 10 * 4 = -40 N m, over 1.5 x 15 = 22.5 N m
    c = started(const_policy([1.0, 0.0, 0.0]), robot=arm(kd=[10.0, 6.201, 1.863]))
    t = run_until_run(c, pos=(2.4, 0.4, 1.0))
    c.on_joint_state(js([2.5, 0.4, 1.0], [4.0, 0.0, 0.0], t=t))
    cmd = c.tick(t)
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.TORQUE
    assert "estimated torque -40.00 N m" in cmd.reason


def test_estop_damps_even_in_passive_and_blocks_reset():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    c.on_estop(True, t)
    cmd = c.tick(t)
    assert cmd.state == "DAMP" and c.last_trip.kind == Trip.ESTOP
    assert not c.reset() and c.state == SafetyState.DAMP
    c.on_estop(False, t)
    assert c.reset() and c.state == SafetyState.PASSIVE
    c2 = Controller(const_policy([0.0, 0.0, 0.0]), load_robot_config("arm"))
    c2.on_estop(True, 0.0)
    assert c2.state == SafetyState.DAMP
    assert c2.tick(0.0) is None  # no pose known: nothing to command


def test_hold_escalates_to_damp_never_back():
    c = started(const_policy([0.0, 0.0, 0.0]))
    t = run_until_run(c)
    assert c.tick(t + 1.0).state == "HOLD"
    c.on_estop(True, t + 1.0)
    assert c.tick(t + 1.02).state == "DAMP"
    kinds = [e.kind for e in c.safety.events]
    assert kinds == [Trip.STALE, Trip.ESTOP]


def test_lost_heartbeat_holds():
    robot = arm(topics={"heartbeat": "/heartbeat"})
    c = started(const_policy([0.0, 0.0, 0.0]), robot=robot)
    assert c.tick(0.0) is None and "heartbeat" in c.status()
    c.on_heartbeat(0.0)
    assert c.tick(0.0).state == "RAMP"
    t = 0.02
    for _ in range(30):  # joint states keep coming, heartbeats stop at 0.0
        c.on_joint_state(js([0.0, 0.4, 1.0], t=t))
        cmd = c.tick(t)
        t += 0.02
    assert cmd.state == "HOLD" and c.last_trip.kind == Trip.HEARTBEAT
    assert 0.5 < c.last_trip.time <= 0.52 + 1e-9  # the first tick more than 0.5 s after it


def test_attitude_limit_damps():
    robot = arm(topics={"imu": "/imu"}, attitude_limit=0.5)
    c = started(const_policy([0.0, 0.0, 0.0]), robot=robot)
    c.on_imu(ImuSample([0, 0, 0, 1], [0, 0, 0], recv_time=0.0))
    assert c.tick(0.0).state == "RAMP"
    c.on_joint_state(js([0.0, 0.4, 1.0], t=0.02))
    c.on_imu(ImuSample([math.sin(0.3), 0, 0, math.cos(0.3)], [0, 0, 0], recv_time=0.02))  # roll 0.6
    cmd = c.tick(0.02)
    assert cmd.state == "DAMP" and c.last_trip.kind == Trip.ATTITUDE


def test_policy_and_robot_must_agree():
    with pytest.raises(ControllerError, match=r"policy drives joints \['a', 'b', 'c'\]"):
        Controller(const_policy([0, 0, 0], arm_meta(action={"actuator_joints": ["a", "b", "c"], "ctrl_mid": [0, 0, 0], "ctrl_half": [1, 1, 1]})), load_robot_config("arm"))  # fmt: skip
    with pytest.raises(ControllerError, match="policy has 2 actions, robot 'arm' has 3 joints"):
        Controller(const_policy([0, 0], arm_meta(action_dim=2)), load_robot_config("arm"))


# ------------------------------------------------------------------------------------------------
# Policy files


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An (untrained) arm_reach policy exported by the trainer's exporter."""
    import torch

    from rewardlab.agents.export import export_policy
    from rewardlab.envs import make_env

    env = make_env("arm_reach", num_envs=2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(15, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3), torch.nn.Tanh()
    )
    out = tmp_path_factory.mktemp("export")
    export_policy(net, env, out, git_revision="test")
    return out, net


def test_trainer_export_loads_without_sealing(tmp_path):
    """``rewardlab train``'s export loads in deploy as written (no seal_export step)."""
    import torch

    from rewardlab.agents.export import export_policy
    from rewardlab.envs import make_env

    net = torch.nn.Sequential(torch.nn.Linear(15, 3), torch.nn.Tanh())
    export_policy(net, make_env("arm_reach", num_envs=1), tmp_path, git_revision="test")
    load_policy(tmp_path)


def test_load_policy_onnx_and_torchscript_agree(exported):
    import torch

    folder, net = exported
    onnx, ts = load_policy(folder), load_policy(folder, backend="torch")
    assert onnx.backend == "onnx" and ts.backend == "torch"
    obs = np.random.default_rng(0).normal(size=15)
    with torch.no_grad():
        ref = net(torch.as_tensor(obs, dtype=torch.float32)[None]).numpy()[0]
    np.testing.assert_allclose(onnx(obs), ref, atol=1e-5)
    np.testing.assert_allclose(ts(obs), ref, atol=1e-6)
    assert onnx.actuator_joints == list(NAMES) and onnx.control_rate_hz == pytest.approx(50.0)
    c = Controller(onnx, load_robot_config("arm"))  # the exported sidecar fits the arm config
    assert c.dt == pytest.approx(0.02)


def test_policy_file_errors(exported, tmp_path):
    folder, _ = exported
    with pytest.raises(PolicyLoadError, match="policy.json: not found"):
        load_policy(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((folder / "policy.json").read_text())
    (bad / "policy.json").write_text(json.dumps(meta))
    (bad / "policy.onnx").write_bytes((folder / "policy.onnx").read_bytes() + b"x")
    with pytest.raises(PolicyLoadError, match="SHA-256 does not match"):
        load_policy(bad, backend="onnx")
    meta["format_version"] = 99
    (bad / "policy.json").write_text(json.dumps(seal_sidecar(meta)))
    with pytest.raises(PolicyLoadError, match="format_version: got 99"):
        load_policy(bad)


def test_deploy_imports_no_trainer_code():
    """Every deploy module imports, in a fresh interpreter, only deploy itself and the leaf
    package rewardlab.core: no trainer (agents, envs, rewards, vlm_reward, the training config
    and pipeline), no torch."""
    import subprocess
    import sys

    modules = ("controller", "policy", "transport_dds", "sim_robot", "recording", "camera",
               "robot_config", "ros_node", "cli", "observation", "actions", "safety", "netns")  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('rewardlab.deploy.' + m)\n"
        "ok = ('rewardlab.deploy', 'rewardlab.core')\n"
        "bad = [m for m in sys.modules if (m.startswith('rewardlab.') and not m.startswith(ok))"
        " or m == 'torch' or m.startswith('torch.')]\n"
        "print(sorted(bad)); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
