"""Smoke test of every registered task (Python and YAML) on the mujoco backend.

Per task: reset, 1000 control steps of random actions, no NaN anywhere (obs, reward, state,
final observations), state shapes exactly as ``state_spec()``, ``describe()`` names every state
entry, success/terminated are ``bool [N]``, renders are non-trivial ``uint8 [n, H, W, 3]``, and
the same seed replays the same trajectory. Plus the robot constants of ``rewardlab.envs.robots``
checked against the compiled MJCF, and the derived state quantities against MuJoCo's own.
"""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np
import pytest
import torch

from rewardlab.core.config import field_docs
from rewardlab.envs import make_env, task_names
from rewardlab.envs.robots import ROBOTS, arm_forward_kinematics
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.base import ASSETS, TaskConfig
from rewardlab.envs.tasks.knowledge import (
    KNOWLEDGE,
    Binding,
    CameraSpec,
    Columns,
    Constant,
    MultiView,
    OptOut,
    Prompts,
    Script,
    Unavailable,
    camera_bodies,
    declared,
    knowledge_gaps,
)

pytestmark = pytest.mark.smoke

STEPS = 1000
REPLAY_STEPS = 60
SLOW = {"humanoid_stand": 4, "humanoid_walk": 4, "shadow_hand_reorient": 4}  # costly: 4 worlds
RENDER_SIZE = (72, 96)


def _random_actions(n: int, dim: int, steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(steps, n, dim, generator=g) * 2 - 1


def _check_state(env, state: dict[str, torch.Tensor], n: int, where: str) -> None:
    spec = env.state_spec()
    assert list(state) == list(spec), f"{where}: state names {list(state)} != state_spec {list(spec)}"  # fmt: skip
    for name, field in spec.items():
        x = state[name]
        assert tuple(x.shape) == (n, *field.shape), f"{where}: {name} shape {tuple(x.shape)}, spec {field.shape}"  # fmt: skip
        assert x.dtype == torch.float32, f"{where}: {name} dtype {x.dtype}"
        assert torch.isfinite(x).all(), f"{where}: {name} not finite"


@pytest.mark.parametrize("task", task_names())
def test_task_smoke(task: str) -> None:
    n = SLOW.get(task, 8)
    env = make_env(task, num_envs=n, seed=3, nthread=2, render_size=RENDER_SIZE)
    try:
        obs = env.reset(seed=3)
        assert obs.shape == (n, env.obs_dim) and obs.dtype == torch.float32
        assert torch.isfinite(obs).all()
        assert env.action_dim > 0

        spec = env.state_spec()
        text = env.describe()
        for name in spec:
            assert name in text, f"describe() does not mention {name!r}"
        _check_state(env, env.state(), n, "after reset")

        layout = env.task.obs_layout()
        assert sum(w for _, w in layout) == env.obs_dim, f"obs_layout {layout} != obs_dim {env.obs_dim}"  # fmt: skip
        assert 0.0 < type(env.task).success_threshold <= 1.0
        assert env.task.reward_terms(), "a task needs a default reward"

        actions = _random_actions(n, env.action_dim, STEPS, seed=11)
        replay_obs, replay_rew = [], []
        finished = 0
        finite = True
        for t in range(STEPS):
            obs, rew, term, trunc, info = env.step(actions[t])
            if t < REPLAY_STEPS:
                replay_obs.append(obs.clone())
                replay_rew.append(rew.clone())
            finite &= bool(torch.isfinite(obs).all() & torch.isfinite(rew).all())
            finite &= bool(torch.isfinite(info["final_obs"]).all())
            assert term.dtype == torch.bool and term.shape == (n,)
            assert trunc.dtype == torch.bool and trunc.shape == (n,)
            assert rew.shape == (n,)
            if "episode" in info:
                finished += len(info["episode"]["env_ids"])
                assert info["episode"]["success"].dtype == torch.bool
            if t % 100 == 0 or t == STEPS - 1:
                assert finite, f"non-finite obs/reward at step {t}"
                _check_state(env, env.state(), n, f"step {t}")
                succ = env.success()
                assert succ.dtype == torch.bool and succ.shape == (n,)
        assert finite
        assert finished > 0, (
            "no episode ended in 1000 steps (time limit too long for a smoke test?)"
        )

        frames = env.render([0, n - 1])
        assert frames.dtype == torch.uint8 and frames.shape == (2, *RENDER_SIZE, 3)
        f = frames.float()
        assert f.std() > 10, "render is (nearly) uniform"
        assert len(torch.unique(frames[0].reshape(-1, 3), dim=0)) > 20, "render has too few colours"
    finally:
        env.close()

    # Determinism: the same seed and actions replay the same trajectory, bit for bit.
    env2 = make_env(task, num_envs=n, seed=3, nthread=1)
    try:
        obs2 = env2.reset(seed=3)
        for t in range(REPLAY_STEPS):
            obs2, rew2, *_ = env2.step(actions[t])
            assert torch.equal(obs2, replay_obs[t]), f"{task}: observation differs at step {t}"
            assert torch.equal(rew2, replay_rew[t]), f"{task}: reward differs at step {t}"
    finally:
        env2.close()


@pytest.mark.parametrize("task", task_names())
def test_task_config_documented(task: str) -> None:
    cls = get_task(task)
    cfg = cls.default_config()
    assert isinstance(cfg, TaskConfig)
    assert dataclasses.is_dataclass(cfg) and type(cfg).__dataclass_params__.frozen
    cfg.validate()
    documented = field_docs(type(cfg))
    missing = [f.name for f in dataclasses.fields(cfg) if f.name not in documented]
    assert not missing, f"{type(cfg).__name__}: fields without a docstring: {missing}"


# ---------------------------------------------------------------------------------------------
# What every task knows about itself (envs/tasks/knowledge.py), declared in one place


@pytest.mark.unit
@pytest.mark.parametrize("task", task_names())
def test_task_declares_its_knowledge(task: str) -> None:
    """Every registered task (Python or YAML) declares its reward camera, prompts, Eureka and
    Text2Reward names and scripted episodes, or opts out with a reason; and each declaration
    fits the task: cameras track bodies of its model, names map to its state entries, scripts
    act in its action space."""
    cls = get_task(task)
    gaps = knowledge_gaps(cls)
    assert not gaps, (
        f"{task}: declares none of {gaps}; declare them on the task (its module, or its YAML "
        "file), or opt out with OptOut(reason) / {opt_out: reason}"
    )
    for name in KNOWLEDGE:
        value = getattr(cls, name)
        if isinstance(value, OptOut):
            assert len(value.reason.split()) >= 3, f"{task}.{name}: say why it opts out: {value}"
    model = cls.load_model()
    spec = cls(cls.default_config(), model).full_state_spec()
    camera = declared(cls, "reward_camera")
    if camera is not None:
        assert isinstance(camera, CameraSpec | MultiView)
        for body in camera_bodies(camera):
            assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body) >= 0, body
    prompts = declared(cls, "prompts")
    if prompts is not None:
        assert isinstance(prompts, Prompts) and prompts.goal
        assert all(p.strip() for p in (*prompts.goal, *prompts.baseline))
    for path, entry in (declared(cls, "text2reward_attrs") or {}).items():
        if isinstance(entry, str):
            assert entry in spec, f"{task}: text2reward_attrs {path} -> {entry!r} is not a state entry"  # fmt: skip
        else:  # computed from the state, or unavailable with a reason
            assert isinstance(entry, Binding) and entry.doc or isinstance(entry, Unavailable) and entry.reason, path  # fmt: skip
    eureka = declared(cls, "eureka_names") or {}
    assert all(
        isinstance(b, Binding | Constant | Columns) and b.doc or isinstance(b, Unavailable) and b.reason
        for b in eureka.values()
    )  # fmt: skip
    assert all(k.isidentifier() for k in eureka), "Eureka names are Python argument names"
    scripts = declared(cls, "scripted_episodes") or {}
    if scripts:
        n = 3
        env = make_env(task, num_envs=n, seed=0, nthread=1)
        env.reset()
        state = env.state()
        for script_name, script in scripts.items():
            assert isinstance(script, Script), script_name
            action = script.policy(state, env)
            assert action.shape == (n, env.action_dim) and torch.isfinite(action).all()
            assert action.abs().max() <= 1.0, f"{task}: script {script_name} leaves [-1, 1]"
        env.close()


def _is_sentence(text: str) -> bool:
    """One complete sentence: a capital first, a full stop last, brackets and quotes closed."""
    pairs = (("(", ")"), ("[", "]"), ("{", "}"))
    return (
        bool(text)
        and text[0].isupper()
        and text.endswith((".", "!"))
        and all(text.count(a) == text.count(b) for a, b in pairs)
        and text.count('"') % 2 == 0
        and text.count("``") % 2 == 0
    )


@pytest.mark.unit
@pytest.mark.parametrize("task", task_names())
def test_task_summary_is_one_complete_sentence(task: str) -> None:
    """``rewardlab tasks`` shows each task's one-line description: it must not be cut off."""
    summary = get_task(task).summary()
    assert _is_sentence(summary), f"{task}: the first docstring line is not a sentence: {summary!r}"
    assert len(summary) <= 100, f"{task}: keep the one-line description short: {summary!r}"


def test_a_cut_description_is_caught() -> None:
    # humanoid_kneel's first docstring line before issue 11 (item 5)
    assert not _is_sentence(
        """Go down on one or both knees and stay kneeling upright (VLM-RM's "a humanoid robot"""
    )
    assert _is_sentence(get_task("humanoid_kneel").summary())


def test_a_gap_is_found() -> None:
    """The check above can fail: a task that forgets a declaration has a gap."""

    class Forgetful(get_task("cartpole_balance")):  # type: ignore[misc, valid-type]
        prompts = None

    assert knowledge_gaps(Forgetful) == ["prompts"]


# ---------------------------------------------------------------------------------------------
# Robot constants against the MJCF


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_robot_constants_match_mjcf(robot: str) -> None:
    r = ROBOTS[robot]
    m = mujoco.MjModel.from_xml_path(str(ASSETS / r.model_file))
    assert m.nu == r.num_joints == len(r.actuator_names) == len(r.default_pose)
    for i, (jname, aname) in enumerate(zip(r.joint_names, r.actuator_names, strict=True)):
        act = m.actuator(aname)
        assert act.id == i, f"{aname} is actuator {act.id}, expected action index {i}"
        j = m.joint(jname)
        assert act.trnid[0] == j.id, f"actuator {aname} drives joint {m.joint(act.trnid[0]).name}"
        np.testing.assert_allclose(j.range, r.joint_limits[i], atol=1e-6, err_msg=jname)
        np.testing.assert_allclose(act.ctrlrange, r.ctrl_range[i], atol=1e-6, err_msg=aname)
        lo, hi = r.joint_limits[i]
        assert lo <= r.default_pose[i] <= hi, f"default pose of {jname} outside its limits"
        if r.actuator_type == "torque":
            assert act.gaintype[0] == mujoco.mjtGain.mjGAIN_FIXED and act.biastype[0] == 0
            assert act.gear[0] == pytest.approx(r.gear[i])
            peak = r.gear[i] * np.abs(act.ctrlrange).max()
            assert r.effort_limits[i] == pytest.approx(peak)
        else:
            assert act.gainprm[0] == pytest.approx(r.kp[i])
            assert -act.biasprm[2] == pytest.approx(r.kd[i], abs=2e-3)
            assert act.forcelimited and act.forcerange[1] == pytest.approx(r.effort_limits[i])
    # the action mapping is the backend's: ctrl = mid + half * action
    a = np.linspace(-1, 1, r.num_joints)
    ctrl = r.action_to_ctrl(a)
    np.testing.assert_allclose(r.command_to_action(r.action_to_command(a)), a, atol=1e-12)
    lo, hi = m.actuator_ctrlrange.T
    np.testing.assert_allclose(ctrl, (hi + lo) / 2 + (hi - lo) / 2 * a)
    if r.base_height:
        d = mujoco.MjData(m)
        d.qpos[2] = r.base_height
        for i, jname in enumerate(r.joint_names):
            d.qpos[m.joint(jname).qposadr[0]] = r.default_pose[i]
        mujoco.mj_forward(m, d)
        # in the default pose at base_height the robot touches the floor without sinking into it
        assert d.ncon > 0
        assert min(d.contact.dist) > -0.01


def test_arm_forward_kinematics_matches_mujoco() -> None:
    m = mujoco.MjModel.from_xml_path(str(ASSETS / "arm3.xml"))
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    lo, hi = m.jnt_range.T
    for _ in range(20):
        d.qpos[:] = rng.uniform(lo, hi)
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(arm_forward_kinematics(d.qpos), d.site("ee").xpos, atol=1e-9)


def test_arm_reach_targets_reachable_and_drawn() -> None:
    env = make_env("arm_reach", num_envs=16, seed=0, nthread=1)
    env.reset()
    s = env.state()
    target = s["target_pos"]
    assert (target[:, 2] > 0.05).all() and (target[:, 0] > -0.1).all()
    r = torch.linalg.vector_norm(target - torch.tensor([0.0, 0.0, 0.3]), dim=-1)
    assert (r <= 0.5 + 1e-6).all()
    assert torch.allclose(s["ee_to_target"], s["target_pos"] - s["ee_pos"])
    assert torch.allclose(s["distance"], torch.linalg.vector_norm(s["ee_to_target"], dim=-1))
    # the mocap body shows each world's own target
    mocap = env.sim.derived["mocap_pos"][:, 0].float()
    assert torch.allclose(mocap, target)
    env.close()


def test_arm_reach_solved_by_inverse_kinematics() -> None:
    """Commanding the joint angles that put the end-effector on the target succeeds."""
    from rewardlab.envs.robots import ARM3, ARM3_FOREARM, ARM3_SHOULDER_HEIGHT, ARM3_UPPER_ARM

    env = make_env("arm_reach", num_envs=16, seed=1, nthread=1)
    env.reset()
    t = env.state()["target_pos"].double().numpy()
    r, z = np.hypot(t[:, 0], t[:, 1]), t[:, 2] - ARM3_SHOULDER_HEIGHT
    l1, l2 = ARM3_UPPER_ARM, ARM3_FOREARM
    elbow = np.arccos(np.clip((r**2 + z**2 - l1**2 - l2**2) / (2 * l1 * l2), -1, 1))
    shoulder = np.arctan2(r, z) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
    q = np.stack([np.arctan2(t[:, 1], t[:, 0]), shoulder, elbow], -1)
    np.testing.assert_allclose(arm_forward_kinematics(q), t, atol=1e-9)
    action = torch.as_tensor(ARM3.command_to_action(q), dtype=torch.float32)
    assert (action.abs() <= 1).all()
    for _ in range(env.max_episode_steps - 1):
        env.step(action)
    s = env.state()
    assert env.success().all(), s["distance"]
    assert (s["distance"] < 0.03).all()
    env.close()


def test_walker_state_semantics() -> None:
    """torso_angvel is in the torso frame, com_vel is d(com_pos)/dt, heights are heights."""
    env = make_env("humanoid_walk", num_envs=2, seed=0, nthread=1)
    env.reset()
    acts = _random_actions(2, env.action_dim, 3, seed=0) * 0.3
    before = env.state()
    env.step(acts[0])
    after = env.state()
    dt = env.control_dt
    fd = (after["com_pos"] - before["com_pos"]) / dt
    mid = 0.5 * (after["com_vel"] + before["com_vel"])
    assert torch.allclose(fd, mid, atol=0.05), (fd, mid)
    assert torch.allclose(after["episode_time"], torch.full((2,), dt), atol=1e-6)
    assert (after["head_height"] > after["pelvis_height"]).all()
    assert (after["pelvis_height"] > after["knee_height"].max(-1).values).all()
    # gravity in the torso frame is a unit vector consistent with torso_upright
    g = after["gravity_torso"]
    assert torch.allclose(torch.linalg.vector_norm(g, dim=-1), torch.ones(2), atol=1e-5)
    env.close()

    env = make_env("ant_run", num_envs=1, seed=0, nthread=1)
    env.reset()
    env.step(torch.ones(1, 8) * 0.5)
    s = env.state()
    d = env._batch.get_data(0)
    m = env.model
    mujoco.mj_forward(m, d)
    vel = np.zeros(6)
    mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, m.body("torso").id, vel, 1)
    np.testing.assert_allclose(s["torso_angvel"][0].numpy(), vel[:3], atol=1e-4)
    mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, m.body("torso").id, vel, 0)
    np.testing.assert_allclose(s["torso_linvel"][0].numpy(), vel[3:], atol=1e-4)
    q = s["torso_quat"][0].double()
    up = np.zeros(9)
    mujoco.mju_quat2Mat(up, q.numpy())
    assert s["up_z"][0].item() == pytest.approx(up[8], abs=1e-5)
    assert math.isclose(s["forward_vel"][0].item(), s["torso_linvel"][0, 0].item())
    env.close()
