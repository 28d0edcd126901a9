"""shadow_hand_reorient: the scene, the goal bookkeeping IsaacGymEnvs' ShadowHand does (a reached
goal counted and redrawn, consecutive successes kept through a fall), its reward, its IsaacGymEnvs
names and snapshots. The generic checks (random steps, NaN, render, replay, checkers) are in
tests/test_tasks_smoke.py and tests/test_adapters.py, which walk every task."""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import mujoco
import numpy as np
import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.tasks import shadow_hand as sh
from rewardlab.envs.tasks.assets import MissingAssetsError
from rewardlab.envs.tasks.knowledge import Binding, Constant, Unavailable
from rewardlab.envs.tasks.shadow_hand import (
    EUREKA_NAMES,
    ShadowHandConfig,
    ShadowHandReorient,
    quat_conjugate,
    quat_mul,
    random_orientation,
    rotation_distance,
)
from rewardlab.rewards import compat

pytestmark = pytest.mark.smoke

TASK = "shadow_hand_reorient"


def _env(n: int = 3, **cfg):
    env = make_env(TASK, num_envs=n, seed=1, nthread=1, cfg=dataclasses.replace(ShadowHandConfig(), **cfg))  # fmt: skip
    env.reset(seed=1)
    return env


def _settle(env, steps: int = 15) -> None:
    for _ in range(steps):
        env.step(torch.zeros(env.num_envs, env.action_dim))


def _aim_goal_at_cube(env, world: int) -> None:
    """Make world ``world``'s goal the cube's current orientation (reached on the next step)."""
    env.task.goal_quat[world] = torch.as_tensor(env.state()["object_quat"][world], dtype=torch.float64)  # fmt: skip


@pytest.mark.unit
def test_scene_is_composed_from_the_package_files() -> None:
    model = ShadowHandReorient.load_model()
    goal = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "target")
    assert model.body_mocapid[goal] == 0 and model.body_jntnum[goal] == 0  # shown, not simulated
    assert model.nq == 24 + 7 and model.nu == 20  # 24 hand joints and the cube's free joint
    assert model.opt.timestep == pytest.approx(sh.TIMESTEP)
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, sh.CAMERA) == 0  # env.render's
    assert model.nsensor == 5 and set(model.sensor_type.tolist()) == {
        int(mujoco.mjtSensor.mjSENS_TOUCH)
    }
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor0")
    assert model.geom_pos[floor][2] == pytest.approx(sh.FLOOR_Z)
    files = ShadowHandReorient.task_files()
    assert all(f.is_file() for f in files) and files[1].name == "manipulate_block.xml"


@pytest.mark.unit
def test_a_missing_model_package_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == sh.HAND_PACKAGE else real(name, *a))  # fmt: skip
    with pytest.raises(MissingAssetsError) as err:
        ShadowHandReorient.load_model()
    msg = str(err.value)
    assert "\n" not in msg and "rewardlab[hand]" in msg and "gymnasium-robotics" in msg
    assert isinstance(err.value, ValueError)  # the CLI prints ValueErrors as one line
    assert err.value.missing_dependency  # tests that walk every task skip it


@pytest.mark.unit
@pytest.mark.parametrize(
    "change, key",
    [
        ({"success_goals": 0}, "success_goals"),
        ({"success_tolerance": 0.0}, "success_tolerance"),
        ({"fall_dist": 2.0}, "fall_dist"),
        ({"reset_noise": 1.5}, "reset_noise"),
        ({"rot_eps": 0.0}, "rot_eps"),
        ({"dist_reward_scale": math.nan}, "dist_reward_scale"),
    ],
)
def test_config_errors_name_the_field(change: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        dataclasses.replace(ShadowHandConfig(), **change).validate()


@pytest.mark.unit
def test_rotation_distance_is_mujocos_angle_between_orientations() -> None:
    gen = torch.Generator().manual_seed(0)
    like = torch.zeros(1, dtype=torch.float64)
    a, b = random_orientation(gen, 64, like), random_orientation(gen, 64, like)
    ours = rotation_distance(a, b)
    for i in range(64):
        vel = np.zeros(3)
        mujoco.mju_subQuat(vel, a[i].numpy(), b[i].numpy())
        assert float(ours[i]) == pytest.approx(np.linalg.norm(vel), abs=1e-9)
    assert rotation_distance(a, a).abs().max() < 1e-6
    assert rotation_distance(a, -a).abs().max() < 1e-6  # q and -q are one orientation


@pytest.mark.unit
def test_goal_orientations_are_isaacgym_rotations_about_x_then_y() -> None:
    gen = torch.Generator().manual_seed(3)
    q = random_orientation(gen, 512, torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(512, dtype=torch.float64))
    # q = qx(a) * qy(b): q * conj(qy(b)) is a pure x rotation for the b it was built with.
    w, x, y, z = q.unbind(-1)
    # For qx*qy: w = cx*cy, x = sx*cy, y = cx*sy, z = sx*sy, so w*z == x*y.
    torch.testing.assert_close(w * z, x * y)
    angles = rotation_distance(q, torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand_as(q))
    assert angles.max() > 2.5 and angles.min() < 0.5  # spread over large and small rotations


@pytest.mark.unit
def test_goal_angle_tilts_the_cube_by_that_angle_about_a_horizontal_axis() -> None:
    """The reduced task: each goal is the cube's orientation at the draw, tilted by goal_angle about
    a horizontal world axis of random heading (the goal's z axis leans by that angle)."""
    gen = torch.Generator().manual_seed(5)
    q = random_orientation(gen, 256, torch.zeros(1, dtype=torch.float64))
    goal = sh.tilted(q, 0.3, gen)
    torch.testing.assert_close(rotation_distance(goal, q), torch.full((256,), 0.3, dtype=torch.float64))  # fmt: skip
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(256, 3)
    turn = quat_mul(goal, quat_conjugate(q))  # the world-frame rotation that was applied
    assert turn[:, 3].abs().max() < 1e-12  # no component about the vertical axis
    lean = torch.acos((sh.quat_rotate(turn, up) * up).sum(-1).clamp(-1, 1))
    torch.testing.assert_close(lean, torch.full((256,), 0.3, dtype=torch.float64))
    headings = torch.atan2(turn[:, 2], turn[:, 1])
    assert headings.max() - headings.min() > 5.0  # every direction
    env = make_env(TASK, num_envs=8, cfg=ShadowHandConfig(goal_angle=0.3), nthread=1)
    env.reset(seed=0)
    st = env.state()
    torch.testing.assert_close(rotation_distance(st["object_quat"].double(), st["goal_quat"].double()), torch.full((8,), 0.3, dtype=torch.float64), atol=1e-5, rtol=0)  # fmt: skip
    env.close()
    with pytest.raises(ValueError, match="goal_angle"):
        ShadowHandConfig(goal_angle=4.0).validate()


def test_a_reached_goal_is_counted_rewarded_and_redrawn() -> None:
    env = _env()
    try:
        _settle(env)
        before = env.task.goal_quat.clone()
        mocap = env.sim.derived["mocap_quat"]
        _aim_goal_at_cube(env, 0)
        _, reward, term, _, info = env.step(torch.zeros(3, env.action_dim))
        assert not term.any()
        assert reward[0] > 200 and reward[1:].max() < 50  # the 250 goal bonus, in world 0 only
        assert "reward/goal_bonus" in info["log"]
        goals = env.task.goals
        assert goals.tolist() == [1.0, 0.0, 0.0]
        assert not torch.equal(env.task.goal_quat[0], before[0])  # redrawn at once
        assert torch.equal(env.task.goal_quat[1:], before[1:])
        torch.testing.assert_close(mocap[0, 0], env.task.goal_quat[0])  # the goal cube shows it
        state = env.state()
        assert state["goals_reached"].tolist() == [1.0, 0.0, 0.0]
        assert bool(env.success()[0]) and not env.success()[1:].any()
    finally:
        env.close()


def test_a_fall_ends_the_episode_and_keeps_the_goals_reached() -> None:
    env = _env()
    try:
        _settle(env)
        _aim_goal_at_cube(env, 0)
        env.step(torch.zeros(3, env.action_dim))
        o = env.task._obj_q
        env.sim.qpos[0, o + 2] = -0.2  # the cube below the hand: dropped (worlds 0 and 1)
        env.sim.qpos[1, o + 2] = -0.2
        _, _, term, trunc, info = env.step(torch.zeros(3, env.action_dim))
        assert term.tolist() == [True, True, False] and not trunc.any()
        ep = info["episode"]
        assert ep["env_ids"].tolist() == [0, 1]
        # IsaacGymEnvs counts the goals reached before the fall: world 0 reached one.
        assert ep["charts/consecutive_successes"].tolist() == [1.0, 0.0]
        assert ep["success"].tolist() == [True, False]
        assert env.task.goals[:2].tolist() == [0.0, 0.0]  # new episodes start from zero
    finally:
        env.close()


def test_max_consecutive_successes_ends_the_episode_as_a_success() -> None:
    env = _env(max_consecutive_successes=1)
    try:
        _settle(env)
        _aim_goal_at_cube(env, 2)
        _, _, term, _, info = env.step(torch.zeros(3, env.action_dim))
        assert term.tolist() == [False, False, True]
        assert info["episode"]["success"].tolist() == [True]
        assert info["episode"]["charts/consecutive_successes"].tolist() == [1.0]
    finally:
        env.close()


# -- IsaacGymEnvs' reward: its signature and return, our own body ---------------------------------

HAND_REWARD = """
import torch
from isaacgym.torch_utils import *


@torch.jit.script
def compute_hand_reward(
    rew_buf, reset_buf, reset_goal_buf, progress_buf, successes, consecutive_successes,
    max_episode_length: float, object_pos, object_rot, target_pos, target_rot,
    dist_reward_scale: float, rot_reward_scale: float, rot_eps: float,
    actions, action_penalty_scale: float,
    success_tolerance: float, reach_goal_bonus: float, fall_dist: float,
    fall_penalty: float, max_consecutive_successes: int, av_factor: float, ignore_z_rot: bool
):
    tolerance = 2.0 * success_tolerance if ignore_z_rot else success_tolerance
    dist = (object_pos - target_pos).norm(dim=-1)
    relative = quat_mul(object_rot, quat_conjugate(target_rot))
    angle = 2.0 * torch.asin(relative[:, 0:3].norm(dim=-1).clamp(max=1.0))
    reached = (angle.abs() <= tolerance).float()
    fell = (dist >= fall_dist).float()
    reward = (
        dist_reward_scale * dist
        + rot_reward_scale / (angle.abs() + rot_eps)
        + action_penalty_scale * (actions * actions).sum(dim=-1)
        + reach_goal_bonus * reached
        + fall_penalty * fell
    )
    goal_resets = torch.maximum(reached, reset_goal_buf)
    successes = successes + goal_resets
    resets = torch.maximum(fell, reset_buf)
    if max_consecutive_successes > 0:
        resets = torch.where(successes >= max_consecutive_successes, torch.ones_like(resets), resets)
    return reward, resets, goal_resets, progress_buf, successes, consecutive_successes
"""


def _hand_reward(names: dict, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """HAND_REWARD's function called in this process with the task's bound names."""
    namespace: dict = {"quat_mul": compat.quat_mul, "quat_conjugate": compat.quat_conjugate, "torch": torch}  # fmt: skip
    body = HAND_REWARD.split("@torch.jit.script\n", 1)[1]
    exec(compile(body, "hand_reward", "exec"), namespace)
    args = dict(names, actions=actions, rew_buf=names["rew_buf"], reset_buf=torch.zeros_like(actions[:, 0]), progress_buf=torch.zeros_like(actions[:, 0]), max_episode_length=250.0)  # fmt: skip
    return namespace["compute_hand_reward"](**{k: args[k] for k in namespace["compute_hand_reward"].__code__.co_varnames[:23]})  # fmt: skip


def _bound(env, state: dict, action: torch.Tensor) -> dict:
    """The task's IsaacGymEnvs names, evaluated as the compat layer does (constants from the
    env's task instance, unavailable names left out)."""
    out = {}
    for name, b in EUREKA_NAMES.items():
        if isinstance(b, Constant):
            out[name] = b.compute(env.task)
        elif isinstance(b, Binding):
            out[name] = b.fn(state, action, env.control_dt)
    return out


def test_default_reward_and_isaacgym_names_reproduce_compute_hand_reward() -> None:
    """The task's reward terms, and IsaacGymEnvs' compute_hand_reward fed from the task's
    declared IsaacGymEnvs names, give the same reward, goal resets and success counts."""
    env = _env(n=4)
    seen: dict = {}
    task_reward = env.reward_fn

    def spy(state, action):
        seen["state"] = dict(state)
        return task_reward(state, action)

    env.set_reward(spy)
    try:
        gen = torch.Generator().manual_seed(5)
        for t in range(40):
            if t == 20:
                _aim_goal_at_cube(env, 1)
            action = 0.3 * (torch.rand(4, env.action_dim, generator=gen) * 2 - 1)
            _, reward, _, _, _ = env.step(action)
            s = seen["state"]
            names = {"object_pos": s["object_pos"], **_bound(env, s, action)}
            ref, _, goal_resets, _, successes, _ = _hand_reward(names, action)
            torch.testing.assert_close(reward, ref, atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(goal_resets, s["goal_reached"])
            torch.testing.assert_close(successes, s["goals_reached"])
        assert env.task.goals[1] >= 1  # the reach at t = 20 was seen by both
    finally:
        env.close()


def test_snapshot_resumes_goals_exactly() -> None:
    env = _env()
    try:
        _settle(env, 5)
        _aim_goal_at_cube(env, 0)
        env.step(torch.zeros(3, env.action_dim))
        snap = env.get_state_dict()
        gen = torch.Generator().manual_seed(2)
        actions = [0.5 * (torch.rand(3, env.action_dim, generator=gen) * 2 - 1) for _ in range(12)]
        first = [env.step(a)[:2] for a in actions]
        goals = env.task.goal_quat.clone()
        env.load_state_dict(snap)
        second = [env.step(a)[:2] for a in actions]
        for (o1, r1), (o2, r2) in zip(first, second, strict=True):
            assert torch.equal(o1, o2) and torch.equal(r1, r2)
        assert torch.equal(env.task.goal_quat, goals)
    finally:
        env.close()


@pytest.mark.unit
def test_isaacgym_constants_follow_the_task_config() -> None:
    env = _env(n=2, success_tolerance=0.2, reach_goal_bonus=100.0)
    try:
        env.step(torch.zeros(2, env.action_dim))
        names = _bound(env, env.state(), torch.zeros(2, env.action_dim))
        assert names["success_tolerance"] == 0.2 and names["reach_goal_bonus"] == 100.0
        assert names["ignore_z_rot"] is False and names["max_consecutive_successes"] == 0
        lo, hi = names["shadow_hand_dof_lower_limits"], names["shadow_hand_dof_upper_limits"]
        assert len(lo) == len(hi) == 24 and all(a < b for a, b in zip(lo, hi, strict=True))
        assert isinstance(EUREKA_NAMES["fingertip_state"], Unavailable)
    finally:
        env.close()


@pytest.mark.unit
def test_quat_diff_state_is_object_times_conjugate_goal() -> None:
    env = _env(n=2)
    try:
        env.step(torch.zeros(2, env.action_dim))
        s = env.state()
        ref = quat_mul(s["object_quat"].double(), quat_conjugate(s["goal_quat"].double()))
        torch.testing.assert_close(s["quat_diff"].double(), ref, atol=1e-6, rtol=0)
        torch.testing.assert_close(s["rot_dist"].double(), rotation_distance(s["object_quat"].double(), s["goal_quat"].double()), atol=1e-5, rtol=0)  # fmt: skip
    finally:
        env.close()


def test_isaacgymenvs_compute_hand_reward_loads_as_written(tmp_path) -> None:
    """IsaacGymEnvs' compute_hand_reward signature and 6-tuple return, pasted into a file with
    its imports, loads through the reward loader (OS sandbox) and gives the task's reward."""
    from rewardlab.rewards.errors import SandboxUnavailable
    from rewardlab.rewards.loader import load_reward_file

    path = tmp_path / "shadow_hand_reward.py"
    path.write_text(HAND_REWARD)
    env = _env(n=4)
    try:
        fn = load_reward_file(path, env)
    except SandboxUnavailable as e:  # no bubblewrap here: foreign code is refused, by design
        pytest.skip(str(e))
    try:
        gen = torch.Generator().manual_seed(4)
        for _ in range(12):
            action = 0.3 * (torch.rand(4, env.action_dim, generator=gen) * 2 - 1)
            env.step(action)
            state = env.state()
            ours, _ = env.reward_fn(state, action)
            theirs, _ = fn(state, action)
            torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-5)
    finally:
        getattr(fn, "close", lambda: None)()
        env.close()
