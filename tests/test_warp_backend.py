"""The ``warp`` backend (MuJoCo Warp) against the native ``mujoco`` backend, on Warp's CPU device.

Every registered task runs on both backends from the same seed with the same actions, and must
give the same resets, the same trajectory within tolerance and the same reward terms.

One modelling difference is not ours to remove: for a contact under the *pyramidal* friction
cone (MuJoCo's default, used by ant/arm/humanoid), MuJoCo Warp picks another pair of tangent
directions than MuJoCo C (for a plane: the plane's axes instead of axes from the contact
geometry). A pyramid is not rotationally symmetric, so the friction forces differ (a single
Ant landing step: qvel differs by up to 0.4 rad/s) although both are valid. Under the
*elliptic* cone both agree to float32 precision (1e-5 per step). So tasks with contacts are
compared on a variant of their model with ``opt.cone = elliptic`` (same task code, both
backends), and on their own model only while nothing touches.

Warp compiles its kernels on first use (about 90 s of CPU time for every task, cold cache);
they are cached under ``$REWARDLAB_WARP_CACHE`` (default ``~/.cache/rewardlab/warp``), so later
runs load them in seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import mujoco
import pytest
import torch

from rewardlab.envs import BACKENDS, make_env, task_names
from rewardlab.envs.mujoco_backend import MujocoEnv
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.base import Task, replace_config
from rewardlab.envs.warp_backend import WarpEnv

N = 4
"""Worlds per env in the equivalence tests (Warp's CPU device runs them on one thread)."""
STEPS = 15
"""Control steps compared (Ant: 75 physics steps, several landings and pushes)."""
TOL_SMOOTH = 1e-4
"""Relative tolerance, tasks without contacts: float32 vs float64 only."""
TOL_CONTACT = 2e-2
"""Relative tolerance, tasks with contacts (elliptic cone): float32 contact solves drift faster."""

TOL_WELD = 5e-2
"""Relative tolerance, models with equality constraints (MetaWorld's Sawyer hangs from a stiff
mocap weld): the weld's float32 solve moves the arm's joint velocities by a few hundredths."""

TASKS = task_names()
IN_CONTACT = {"shadow_hand_reorient": 7, "franka_lift": STEPS}  # franka_lift: a cube on the floor
"""Tasks whose worlds start in contact (a cube held in a hand) -> control steps compared: the
onset of a new contact parts float32 and float64 solves at once (touch forces, then velocities;
within 1e-4 before it), and the contact-free comparison does not apply."""
WELDED = {name for name in task_names() if name.startswith("metaworld_")}
IN_CONTACT |= {name: 5 for name in WELDED}
"""MetaWorld's Sawyer follows a mocap weld: float32 and float64 weld solves part by ~1e-2 per
step in joint velocity (7e-2 by step 7), so 5 steps are compared at ``TOL_WELD``."""


HFIELD = {"go1_velocity_rough"}
"""Tasks on a height field: MuJoCo Warp's height-field collider and MuJoCo's do not make the same
contacts on the sloped cells (measured on go1_velocity_rough, elliptic cone: relative error 0.1
in joint velocity after one step with the feet on the bumps, 0.28 in base velocity after 15), so
their trajectories are not compared; resets, snapshots and stepping are."""


def has_contacts(model: mujoco.MjModel) -> bool:
    return not (model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT) and bool(
        ((model.geom_contype != 0) | (model.geom_conaffinity != 0)).any()
    )


def elliptic(task_cls: type[Task]) -> type[Task]:
    """The task unchanged, on its model with the elliptic friction cone (see module doc)."""

    class Elliptic(task_cls):  # type: ignore[valid-type, misc]
        @classmethod
        def load_model(cls) -> mujoco.MjModel:
            model = task_cls.load_model()
            model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
            # converged solves: a task that trains with few solver iterations (Playground's Go1: 1)
            # stops both solvers at different unconverged points
            model.opt.iterations = max(model.opt.iterations, 50)
            model.opt.ls_iterations = max(model.opt.ls_iterations, 20)
            return model

    Elliptic.__name__ = f"Elliptic{task_cls.__name__}"
    return Elliptic


def pair(task_cls: type[Task], **kw) -> tuple[MujocoEnv, WarpEnv]:
    native = MujocoEnv(task_cls, num_envs=N, seed=3, nthread=1, **kw)
    warp = WarpEnv(task_cls, num_envs=N, seed=3, **kw)
    return native, warp


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float(((a - b).abs() / (1.0 + a.abs())).max()) if a.numel() else 0.0


def actions(env, steps: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(env.num_envs, env.action_dim, generator=g) * 2 - 1 for _ in range(steps)]


@pytest.fixture(scope="module", params=TASKS)
def envs(request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """Native and warp envs of one task: on its own model, and (contacts) the elliptic variant."""
    task_cls = get_task(request.param)
    out: dict[str, object] = {"task": request.param, "default": pair(task_cls)}
    contacts = has_contacts(task_cls.load_model())
    out["contacts"] = contacts
    out["tol"] = (
        TOL_WELD if request.param in WELDED | HFIELD else TOL_CONTACT if contacts else TOL_SMOOTH
    )
    out["compare"] = pair(elliptic(task_cls)) if contacts else out["default"]
    yield out
    for key in ("default", "compare"):
        for env in out[key]:  # type: ignore[union-attr]
            env.close()


# -- equivalence with the native backend ----------------------------------------------------------


@pytest.mark.smoke
def test_same_seed_gives_the_same_reset(envs: dict) -> None:
    native, warp = envs["default"]
    for seed in (11, 12):
        on, ow = native.reset(seed=seed), warp.reset(seed=seed)
        assert ow.dtype == torch.float32 and ow.shape == on.shape
        torch.testing.assert_close(warp.sim.qpos.double(), native.sim.qpos, atol=1e-6, rtol=0)
        torch.testing.assert_close(warp.sim.qvel.double(), native.sim.qvel, atol=1e-6, rtol=0)
        torch.testing.assert_close(ow, on, atol=1e-5, rtol=1e-5)
        sn, sw = native.state(), warp.state()
        assert list(sw) == list(sn) and set(sw) == set(warp.state_spec())
        for k in sn:
            assert sw[k].shape == sn[k].shape, k
            assert rel_err(sn[k], sw[k]) < 1e-5, k
        torch.testing.assert_close(warp.success(), native.success())
    # a different seed draws a different reset: the comparison above is not vacuous
    first = warp.reset(seed=11).clone()
    assert not torch.equal(first, warp.reset(seed=12)) or warp.task.cfg.reset_noise == 0


@pytest.mark.smoke
def test_same_actions_give_the_same_trajectory_and_reward_terms(envs: dict) -> None:
    native, warp = envs["compare"]
    tol = envs["tol"]
    native.reset(seed=5)
    warp.reset(seed=5)
    if envs["task"] in HFIELD:  # same reset; the steps' height-field contacts differ (HFIELD)
        for k, v in native.state().items():
            assert rel_err(v, warp.state()[k]) < 1e-5, k
        for a in actions(native, 3):
            for env in (native, warp):
                obs, reward, *_ = env.step(a)
                assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
        return
    for t, a in enumerate(actions(native, IN_CONTACT.get(envs["task"], STEPS))):
        on, rn, tn, un, info_n = native.step(a)
        ow, rw, tw, uw, info_w = warp.step(a)
        where = f"{envs['task']} step {t + 1}"
        sn, sw = native.state(), warp.state()
        for k in sn:
            assert rel_err(sn[k], sw[k]) < tol, f"{where}: state {k!r} differs"
        assert rel_err(on, ow) < tol, where
        assert rel_err(rn, rw) < tol, f"{where}: reward"
        assert torch.equal(tn, tw) and torch.equal(un, uw), f"{where}: terminated/truncated"
        assert set(info_w) == set(info_n), where
        assert list(info_w["log"]) == list(info_n["log"]) and info_w["log"], where
        for k, v in info_n["log"].items():
            assert isinstance(info_w["log"][k], float)
            assert abs(info_w["log"][k] - v) <= tol * (1 + abs(v)), f"{where}: {k}"


@pytest.mark.smoke
def test_own_model_matches_without_contacts(envs: dict) -> None:
    """On the task's own model (pyramidal cone) the backends agree while nothing touches.

    Floating-base robots are lifted 0.4 m first (Ant: still below its healthy height limit),
    so that they fall freely while actuated.
    """
    if envs["task"] in IN_CONTACT:
        why = "hangs from a mocap weld" if envs["task"] in WELDED else "starts in contact"
        pytest.skip(f"{envs['task']} {why}: compared over {IN_CONTACT[envs['task']]} steps only")
    native, warp = envs["default"]
    if (native.model.dof_frictionloss > 0).any() and native.model.opt.iterations < 50:
        pytest.skip(
            f"{envs['task']}: joint friction loss is a constraint solved in "
            f"{native.model.opt.iterations} iteration(s): unconverged solves differ by design"
        )
    native.reset(seed=7)
    snap = native.get_state_dict()
    model = native.model
    if model.njnt and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
        snap["physics"]["qpos"][:, 2] += 0.4
    native.load_state_dict(snap)
    warp.load_state_dict(snap)
    ncon = native._batch.bind("ncon")
    for a in actions(native, 3, seed=1):
        native.step(a)
        warp.step(a)
        assert not ncon.any(), "the comparison must run without contacts"
    sn, sw = native.state(), warp.state()
    for k in sn:
        assert rel_err(sn[k], sw[k]) < TOL_SMOOTH, f"{envs['task']}: state {k!r}"


@pytest.mark.smoke
def test_native_snapshot_loads_into_warp(envs: dict) -> None:
    """Any native state (not only resets) continues the same on warp: same state -> same step."""
    native, warp = envs["compare"]
    native.reset(seed=9)
    warp.reset(seed=0)
    acts = actions(native, 4, seed=2)
    for a in acts[:3]:
        native.step(a)
    warp.load_state_dict(native.get_state_dict())
    sn, sw = native.state(), warp.state()
    for k in sn:
        assert rel_err(sn[k], sw[k]) < 1e-5, k
    if envs["task"] in HFIELD:
        return  # the next step's height-field contacts differ by design (HFIELD)
    native.step(acts[3])
    warp.step(acts[3])
    tol = envs["tol"]
    sn, sw = native.state(), warp.state()
    for k in sn:
        assert rel_err(sn[k], sw[k]) < tol, k


# -- the batched env contract ------------------------------------------------------------------------


@pytest.mark.smoke
def test_auto_reset_and_info_match_native() -> None:
    """Episodes end, report and restart as on the native backend (arm_reach: task buffers)."""
    cls = get_task("arm_reach")
    cfg = cls.default_config()
    cfg = replace_config(cfg, episode_steps=4)
    native = MujocoEnv(cls, cfg, num_envs=N, seed=1, nthread=1)
    warp = WarpEnv(cls, cfg, num_envs=N, seed=1)
    native.reset(seed=1)
    warp.reset(seed=1)
    episodes = 0
    for a in actions(native, 9, seed=4):
        on, *_, info_n = native.step(a)
        ow, *_, info_w = warp.step(a)
        assert set(info_w) == set(info_n)
        torch.testing.assert_close(info_w["final_obs"], info_n["final_obs"], atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(ow, on, atol=1e-3, rtol=1e-3)  # fresh worlds: same draws
        if "episode" in info_n:
            episodes += 1
            en, ew = info_n["episode"], info_w["episode"]
            assert set(ew) == set(en) and "reward/distance" in ew
            assert torch.equal(ew["env_ids"], en["env_ids"])
            assert torch.equal(ew["length"], en["length"]) and (ew["length"] == 4).all()
            assert torch.equal(ew["success"], en["success"])
            torch.testing.assert_close(ew["return"], en["return"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(warp.task.target, native.task.target.float(), atol=1e-6, rtol=0)
    assert episodes == 2
    mocap = warp.sim.mocap_pos[:, 0]  # the drawn target is live physics state, as natively
    torch.testing.assert_close(mocap, warp.task.target, atol=1e-6, rtol=0)


@pytest.mark.smoke
def test_snapshot_resumes_exactly() -> None:
    env = make_env("ant_run", num_envs=N, backend="warp", seed=2)
    env.reset(seed=2)
    acts = actions(env, 8, seed=5)
    for a in acts[:3]:
        env.step(a)
    snap = env.get_state_dict()
    first = [env.step(a)[0].clone() for a in acts[3:]]
    env.load_state_dict(snap)
    again = [env.step(a)[0].clone() for a in acts[3:]]
    for x, y in zip(first, again, strict=True):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)


@pytest.mark.smoke
def test_render_matches_native() -> None:
    native = make_env("cartpole_balance", num_envs=2, seed=0, nthread=1, render_size=(48, 64))
    warp = make_env("cartpole_balance", num_envs=2, backend="warp", seed=0, render_size=(48, 64))
    native.reset(seed=0)
    warp.reset(seed=0)
    a = torch.full((2, 1), 0.7)
    for _ in range(20):
        native.step(a)
        warp.step(a)
    fn, fw = native.render([1]), warp.render([1])
    assert fw.shape == (1, 48, 64, 3) and fw.dtype == torch.uint8
    assert fw.float().std() > 5, "a blank frame"
    assert (fw.float() - fn.float()).abs().mean() < 1.0
    assert warp.render([]).shape == (0, 48, 64, 3)
    native.close()
    warp.close()


@pytest.mark.unit
def test_errors_name_the_problem() -> None:
    env = make_env("cartpole_balance", num_envs=2, backend="warp")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 1))
    env.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \[2, 1\]"):
        env.step(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="NaN"):
        env.step(torch.tensor([[0.0], [float("nan")]]))
    assert "warp" in BACKENDS
    with pytest.raises(ValueError, match="unknown backend"):
        make_env("cartpole_balance", backend="warpp")

    base = get_task("cartpole_balance")

    class PGS(base):  # type: ignore[valid-type, misc]
        @classmethod
        def load_model(cls) -> mujoco.MjModel:
            model = base.load_model()
            model.opt.solver = mujoco.mjtSolver.mjSOL_PGS
            return model

    with pytest.raises(NotImplementedError, match="cartpole_balance.*PGS"):
        WarpEnv(PGS, num_envs=1)


@pytest.mark.smoke
def test_cli_trains_ant_on_warp(tmp_path: Path) -> None:
    """``rewardlab train task=ant_run backend=warp device=cpu`` runs end to end (tiny budget)."""
    from rewardlab.cli import main

    run_dir = tmp_path / "ant"
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "train", "task=ant_run", "backend=warp", "device=cpu", f"run_dir={run_dir}",
        "num_envs=8", "total_steps=128", "ppo.num_steps=8", "task_cfg.episode_steps=6",
        "eval.episodes=2", "eval.video=false", "checkpoint_every=1",
    ]  # fmt: skip
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in rows] == [64, 128]
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert "success_rate" in out.getvalue()


# -- GPU (skipped without CUDA) ----------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
def test_cuda_tensors_stay_on_device_and_graph_matches_eager() -> None:
    graph = make_env("ant_run", num_envs=512, backend="warp", device="cuda", seed=0)
    eager = make_env(
        "ant_run", num_envs=512, backend="warp", device="cuda", seed=0, cuda_graph=False
    )
    # graphs need Warp's memory pool and a driver with conditional graph nodes (>= 12.4)
    assert graph.uses_cuda_graph == graph._graphs_possible() and not eager.uses_cuda_graph
    og, oe = graph.reset(seed=0), eager.reset(seed=0)
    assert og.is_cuda and graph.sim.qpos.is_cuda
    torch.testing.assert_close(og, oe)
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(30):
        a = torch.rand(512, graph.action_dim, device="cuda", generator=g) * 2 - 1
        og, rg, tg, ug, info = graph.step(a)
        oe, re, te, ue, _ = eager.step(a)
        assert og.is_cuda and rg.is_cuda and tg.is_cuda and info["final_obs"].is_cuda
        torch.testing.assert_close(og, oe, atol=1e-4, rtol=1e-4)
        assert torch.equal(tg, te) and torch.equal(ug, ue)
    if not graph.uses_cuda_graph:
        pytest.skip("this CUDA setup cannot capture MuJoCo Warp's step (eager path tested)")


@pytest.mark.gpu
@cuda
def test_cuda_matches_cpu_device() -> None:
    """The same state steps the same on Warp's CUDA and CPU devices (Ant, elliptic variant)."""
    cls = elliptic(get_task("ant_run"))
    cpu = WarpEnv(cls, num_envs=N, seed=0)
    gpu = WarpEnv(cls, num_envs=N, seed=0, device="cuda")
    cpu.reset(seed=0)
    gpu.reset(seed=0)
    snap = cpu.get_state_dict()
    snap["generator"] = gpu.get_state_dict()["generator"]
    gpu.load_state_dict(snap)
    for a in actions(cpu, 10):
        oc = cpu.step(a)[0]
        og = gpu.step(a.cuda())[0]
        assert rel_err(oc, og) < TOL_CONTACT


# -- learning ---------------------------------------------------------------------------------------

# Warp's CPU device costs a roughly fixed time per control step whatever the world count (Python
# launch overhead of several hundred kernels: 0.03-0.15 s on the machines seen), so the budget
# spends worlds, not steps: 256 worlds x 16 steps per PPO iteration, 62 iterations (992 control
# steps), with the task's other PPO settings. Measured on an Intel Xeon (2026-12-07), 64 fresh
# episodes: 1.00 on seeds 0-4; the earlier 512 x 8 x 400k (781 control steps, passing on the AMD
# machine it was set on) scored 0.00 / 0.20 / 0.00 on seeds 0-2 there, 512 x 16 x 400k 1.00 /
# 1.00 / 0.00, 1024 x 8 x 400k 0.00 on 3 of 3: 8-step rollouts are too short for this task.
WARP_PPO_ENVS = 256
WARP_PPO_ROLLOUT = 16
WARP_PPO_STEPS = 250_000


@pytest.mark.slow
def test_ppo_learns_cartpole_balance_on_warp() -> None:
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config

    # the task's own PPO settings (sim_configs/train/cartpole_balance.yaml), more worlds
    cfg = load_train_config(
        {
            "task": "cartpole_balance",
            "backend": "warp",
            "seed": 0,
            "num_envs": WARP_PPO_ENVS,
            "ppo": {"num_steps": WARP_PPO_ROLLOUT},
        }  # fmt: skip
    )
    env = make_env("cartpole_balance", num_envs=cfg.num_envs, backend="warp", seed=0)
    runner = OnPolicyRunner(env, cfg.ppo, seed=0, log_every=10)
    runner.learn(WARP_PPO_STEPS)
    policy = runner.inference_policy()
    # The task's own success metric, on warp: the first episode of each of 64 fresh worlds.
    ev = make_env("cartpole_balance", num_envs=64, backend="warp", seed=10_000)
    obs = ev.reset(seed=10_000)
    done = torch.zeros(64, dtype=torch.bool)
    success = torch.zeros(64, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(ev.max_episode_steps):
            obs, _, _, _, info = ev.step(policy(obs))
            if "episode" in info:
                ids, ep_success = info["episode"]["env_ids"], info["episode"]["success"]
                new = ~done[ids]
                success[ids[new]] = ep_success[new]
                done[ids[new]] = True
            if done.all():
                break
    assert done.all()
    rate = success.float().mean().item()
    print(f"cartpole_balance on warp: success {rate:.2f}")
    assert rate >= get_task("cartpole_balance").success_threshold


@pytest.mark.smoke
def test_domain_randomization_matches_native() -> None:
    """Per-world masses, friction, gains, action delay and obs noise, drawn as natively."""
    from rewardlab.envs.randomization import DomainRandConfig

    dr = DomainRandConfig(
        mass_scale=(0.5, 1.5),
        friction_scale=(0.3, 1.2),
        actuator_gain_scale=(0.6, 1.4),
        obs_noise_std=0.01,
        action_delay=(0, 2),
    )
    native, warp = pair(elliptic(get_task("ant_run")), domain_rand=dr)
    for f in ("body_mass", "body_inertia", "geom_friction", "actuator_gainprm"):
        rows = warp._model_rows[f]
        assert rows.shape[0] == N, f"{f} is not per world"
        torch.testing.assert_close(
            rows.double(), torch.as_tensor(native._dr_fields[f]), rtol=1e-6, atol=1e-6
        )
    assert native._dr_fields["body_mass"][:, 1].std() > 0, "masses must differ between worlds"
    on, ow = native.reset(seed=4), warp.reset(seed=4)
    torch.testing.assert_close(ow, on, atol=1e-5, rtol=1e-5)  # same noise draws too
    for a in actions(native, 8, seed=6):
        on, rn, *_ = native.step(a)
        ow, rw, *_ = warp.step(a)
        sn, sw = native.state(), warp.state()
        for k in sn:
            assert rel_err(sn[k], sw[k]) < TOL_CONTACT, k
        assert rel_err(on, ow) < TOL_CONTACT
    # a randomized world differs from the nominal one: the rows are really used by the physics
    plain = WarpEnv(elliptic(get_task("ant_run")), num_envs=N, seed=3)
    plain.reset(seed=4)
    for a in actions(native, 8, seed=6):
        plain.step(a)
    assert rel_err(plain.state()["torso_pos"], warp.state()["torso_pos"]) > 1e-3


@pytest.mark.unit
def test_too_small_constraint_buffer_warns() -> None:
    """Dropped contacts are never silent: a too-small njmax warns, naming the knob."""
    env = make_env("ant_run", num_envs=2, backend="warp", njmax=2, seed=0)
    env.reset(seed=0)
    with pytest.warns(RuntimeWarning, match=r"NEFC.*njmax="):
        for _ in range(16):  # the legs touch the floor within a few control steps
            env.step(torch.zeros(2, env.action_dim))
