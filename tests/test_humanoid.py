"""The humanoid tasks' control modes and the Unitree G1 velocity task (fast checks).

Learning is not tested here: it takes far longer than a CI test on 2 cores (and for these
tasks it is not measured yet; issue 15).
"""

from __future__ import annotations

import math

import mujoco
import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.robots import HUMANOID
from rewardlab.envs.tasks.humanoid import HumanoidConfig, HumanoidKneelConfig

pytestmark = pytest.mark.unit


def test_pd_control_turns_motors_into_servos_around_the_standing_pose() -> None:
    env = make_env("humanoid_stand", num_envs=2, cfg=HumanoidConfig(control="pd"), nthread=1)
    m = env.model
    assert env.action_dim == 21
    assert all(
        int(m.actuator_biastype[i]) == int(mujoco.mjtBias.mjBIAS_AFFINE) for i in range(m.nu)
    )
    # torque limits stay the motors' gear; kp = pd_stiffness * gear
    assert m.actuator_forcerange[:, 1].tolist() == pytest.approx(list(HUMANOID.gear))
    assert m.actuator_gainprm[:, 0].tolist() == pytest.approx([2.0 * g for g in HUMANOID.gear])
    env.reset()
    amap = env.task.action_map
    ctrl = torch.zeros(1, m.nu, dtype=torch.float64)
    # action 0 holds the standing pose (every hinge at 0); -1 bends the knees by their half range
    amap.apply(ctrl, torch.zeros(1, 21))
    assert torch.allclose(ctrl, torch.zeros_like(ctrl))
    knee = HUMANOID.joint_names.index("right_knee")
    a = torch.zeros(1, 21)
    a[0, knee] = -1.0
    amap.apply(ctrl, a)
    lo, hi = HUMANOID.joint_limits[knee]
    assert float(ctrl[0, knee]) == pytest.approx(-(hi - lo) / 2)
    # the servo drives the joint towards its target
    # (10 steps: the knee reaches its target in ~8; bent long enough, the body falls and resets)
    for _ in range(10):
        env.step(a.repeat(2, 1))
    assert float(env.state()["joint_pos"][0, knee]) == pytest.approx(-(hi - lo) / 2, abs=0.1)


def test_torque_control_is_unchanged_by_default() -> None:
    env = make_env("humanoid_stand", num_envs=1, nthread=1)
    assert env.task.action_map is None
    assert env.model.actuator_gear[:, 0].tolist() == pytest.approx(list(HUMANOID.gear))


@pytest.mark.parametrize(
    ("change", "word"),
    [({"control": "position"}, "control"), ({"pd_stiffness": 0.0}, "pd_stiffness"), ({"pd_action_scale": math.nan}, "pd_action_scale")],
)  # fmt: skip
def test_bad_control_settings_name_the_field(change: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word) as err:
        HumanoidConfig(**change).validate()
    assert "\n" not in str(err.value)


def test_kneel_config_keeps_its_success_bands() -> None:
    cfg = HumanoidKneelConfig(control="pd")
    cfg.validate()
    assert cfg.pelvis_band == (0.35, 0.8) and cfg.head_band == (0.95, 1.4)


# -- G1 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def g1_env():
    from rewardlab.envs.tasks.g1_velocity import G1VelocityConfig

    env = make_env("g1_velocity", num_envs=4, cfg=G1VelocityConfig(resample_steps=5, standing_fraction=0.0), seed=3, nthread=1)  # fmt: skip
    env.reset()
    return env


def test_g1_acts_on_the_leg_servos_around_the_keyframe(g1_env) -> None:
    from rewardlab.envs.tasks import g1

    m = g1_env.model
    assert g1_env.action_dim == 12
    amap = g1_env.task.action_map
    ctrl = torch.zeros(1, m.nu, dtype=torch.float64)
    amap.apply(ctrl, torch.zeros(1, 12))
    assert torch.allclose(ctrl[0], torch.as_tensor(g1.home_ctrl(m)))  # arms and waist hold too
    a = torch.full((1, 12), 1.0)
    amap.apply(ctrl, a)
    legs = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, j) for j in g1.LEG_JOINTS]
    want = torch.as_tensor(g1.default_pose(m)) + 0.25
    lo, hi = m.actuator_ctrlrange[legs].T
    assert torch.allclose(
        ctrl[0, legs], torch.clamp(want, torch.as_tensor(lo), torch.as_tensor(hi))
    )


def test_g1_commands_are_resampled_and_errors_averaged(g1_env) -> None:
    s0 = g1_env.state()
    cmd0 = s0["command"].clone()
    assert cmd0.abs().sum() > 0  # standing_fraction 0: every world moves
    for _ in range(6):  # the state after step 6 shows the command drawn after step 5
        g1_env.step(torch.zeros(4, 12))
    s = g1_env.state()
    assert not torch.allclose(s["command"], cmd0)  # redrawn after resample_steps
    cfg = g1_env.task.cfg
    lo = torch.tensor([cfg.lin_vel_x[0], cfg.lin_vel_y[0], cfg.yaw_rate[0]])
    hi = torch.tensor([cfg.lin_vel_x[1], cfg.lin_vel_y[1], cfg.yaw_rate[1]])
    assert ((s["command"] >= lo) & (s["command"] <= hi)).all()
    # the error now is |cmd_xy - v_xy| in the pelvis frame; the mean runs over the episode
    err = torch.linalg.vector_norm(s["command"][:, :2] - s["base_lin_vel"][:, :2], dim=-1)
    assert torch.allclose(s["lin_vel_error"], err, atol=1e-5)
    assert (s["mean_lin_vel_error"] > 0).all()
    # both feet start on the floor, and the gait clock puts the legs half a period apart
    assert torch.allclose((s["leg_phase"][:, 1] - s["leg_phase"][:, 0]) % 1.0, torch.full((4,), 0.5), atol=1e-5)  # fmt: skip


def test_g1_success_and_termination_follow_the_config() -> None:
    from rewardlab.envs.tasks.g1_velocity import G1VelocityConfig

    env = make_env("g1_velocity", num_envs=1, cfg=G1VelocityConfig(), nthread=1)
    task = env.task
    env.reset()
    s = dict(env.state())
    s["mean_lin_vel_error"] = torch.tensor([0.29])
    s["mean_yaw_rate_error"] = torch.tensor([0.49])
    assert bool(task.success(s)[0])
    s["mean_lin_vel_error"] = torch.tensor([0.31])
    assert not bool(task.success(s)[0])
    assert not bool(task.terminated(s)[0])
    s["base_height"] = torch.tensor([0.4])
    assert bool(task.terminated(s)[0])
    s["base_height"] = torch.tensor([0.7])
    s["torso_upright"] = torch.tensor([math.cos(1.2)])
    assert bool(task.terminated(s)[0])


def test_g1_falls_without_a_policy_and_the_fall_terminates() -> None:
    """Zero actions: the servos alone hold the keyframe for about a second, then the G1 falls
    (the task is not solved by doing nothing)."""
    env = make_env("g1_velocity", num_envs=2, seed=1, nthread=1)
    env.reset()
    ended = torch.zeros(2, dtype=torch.bool)
    for _ in range(150):
        _, _, term, _, _ = env.step(torch.zeros(2, 12))
        ended |= term
    assert ended.all()
