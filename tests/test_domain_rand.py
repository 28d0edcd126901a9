"""Domain randomization (envs/randomization.py) on the mujoco backend: what it changes, per
world, reproducibly by seed, and across snapshots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.config import train_config_from_dict
from rewardlab.core.config import ConfigError, build
from rewardlab.envs import make_env
from rewardlab.envs.randomization import DomainRandConfig


def _env(task: str = "cartpole_balance", n: int = 8, seed: int = 0, **dr):
    return make_env(task, num_envs=n, seed=seed, nthread=1, domain_rand=DomainRandConfig(**dr))


def _still(env) -> None:
    """Every world at rest at the origin (the reset distribution's noise removed)."""
    env.sim.qpos.zero_()
    env.sim.qvel.zero_()
    env._batch.forward()


def _rollout(env, actions: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([env.step(a)[0] for a in actions])


@pytest.mark.unit
def test_config_errors_name_the_key():
    with pytest.raises(
        ConfigError,
        match=r"domain_rand.mass_scale: got \[2.0, 1.0\], expected \[lo, hi\] with 0 < lo <= hi",
    ):
        build(DomainRandConfig, {"mass_scale": [2.0, 1.0]}, "domain_rand")
    with pytest.raises(ConfigError, match=r"domain_rand.action_delay"):
        build(DomainRandConfig, {"action_delay": [1]}, "domain_rand")
    with pytest.raises(ConfigError, match=r"action_delay"):
        build(DomainRandConfig, {"action_delay": [3, 1]}, "domain_rand")
    with pytest.raises(ConfigError, match=r"obs_noise_std"):
        build(DomainRandConfig, {"obs_noise_std": -0.1}, "domain_rand")
    with pytest.raises(ConfigError, match=r"did you mean 'mass_scale'"):
        train_config_from_dict({"task": "cartpole_balance", "domain_rand": {"mass_scal": [1, 2]}})
    cfg = train_config_from_dict(
        {"task": "cartpole_balance", "domain_rand": {"obs_noise_std": [0.1, 0, 0, 0, 0]}}
    )
    assert cfg.domain_rand_config().obs_noise_std == (0.1, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"mass_bodies: unknown bodies \['cartt'\]"):
        _env(mass_scale=(0.5, 2.0), mass_bodies=("cartt",))


@pytest.mark.unit
def test_nothing_randomized_is_the_plain_env():
    env = _env(mass_scale=(1.0, 1.0), action_delay=(0, 0))
    assert env._dr is None and "domain_rand" not in (env.reset(), env.get_state_dict())[1]


@pytest.mark.unit
def test_masses_are_per_world_and_change_the_dynamics():
    n = 16
    env = _env(n=n, mass_scale=(0.5, 2.0), mass_bodies=("cart",), resample_on_reset=False)
    nominal = env.model.body_mass.copy()
    masses = env._batch.expanded("body_mass")
    cart = env.model.body("cart").id
    scale = masses[:, cart] / nominal[cart]
    assert np.all((scale >= 0.5) & (scale <= 2.0)) and np.unique(scale).size == n
    others = np.delete(masses, cart, axis=1)  # the pole keeps its mass
    assert np.array_equal(others, np.broadcast_to(np.delete(nominal, cart), others.shape))
    # The model each world runs on carries its mass, and so do MuJoCo's derived constants.
    assert env._batch.get_model(3).body_mass[cart] == masses[3, cart]
    subtree = env._batch.expanded("body_subtreemass")
    assert np.allclose(subtree[:, cart], masses[:, cart] + nominal[cart + 1])
    # Same push for every world: a heavier cart moves less (F = m a), monotonically.
    env.reset(seed=0)
    _still(env)
    for _ in range(4):
        _, _, term, trunc, _ = env.step(torch.full((n, 1), 0.5))
        assert not (term | trunc).any()
    dx = env.state()["cart_pos"].numpy()
    total = masses[:, cart] + nominal[cart + 1]
    order = np.argsort(total)
    assert np.all(np.diff(dx[order]) < 0), (total[order], dx[order])


@pytest.mark.unit
def test_actuator_gain_scales_force_and_keeps_servos_consistent():
    arm = _env("arm_reach", n=6, actuator_gain_scale=(0.5, 1.5))
    gain = arm._batch.expanded("actuator_gainprm")
    bias = arm._batch.expanded("actuator_biasprm")
    assert np.allclose(bias[:, :, 1], -gain[:, :, 0])  # kp in gain and bias move together
    kv_scale = bias[:, :, 2] / arm.model.actuator_biasprm[:, 2]
    assert np.allclose(kv_scale, gain[:, :, 0] / arm.model.actuator_gainprm[:, 0])
    # A cart motor twice as strong pushes the cart twice as far in the first steps.
    strong = _env(n=2, actuator_gain_scale=(2.0, 2.0))
    plain = make_env("cartpole_balance", num_envs=2, seed=0, nthread=1)
    for env in (strong, plain):
        env.reset(seed=0)
        _still(env)
    for _ in range(3):
        strong.step(torch.ones(2, 1))
        plain.step(torch.ones(2, 1))
    ratio = strong.state()["cart_pos"] / plain.state()["cart_pos"]
    assert torch.allclose(ratio, torch.full((2,), 2.0), rtol=0.05), ratio


@pytest.mark.unit
def test_friction_scales_sliding_only():
    env = _env("ant_run", n=4, friction_scale=(0.2, 0.4))
    fr = env._batch.expanded("geom_friction")
    nominal = env.model.geom_friction
    s = fr[:, :, 0] / nominal[:, 0]
    assert np.all((s >= 0.2) & (s <= 0.4))
    assert np.array_equal(fr[:, :, 1:], np.broadcast_to(nominal[:, 1:], fr[:, :, 1:].shape))


@pytest.mark.unit
def test_physics_resampled_on_reset_only_when_asked():
    for resample in (True, False):
        env = _env(n=3, mass_scale=(0.5, 2.0), resample_on_reset=resample)
        env.reset(seed=0)
        before = env._batch.expanded("body_mass").copy()
        env._reset_worlds(torch.tensor([1]))
        after = env._batch.expanded("body_mass")
        assert np.array_equal(before[[0, 2]], after[[0, 2]])
        assert np.array_equal(before[1], after[1]) is (not resample)


@pytest.mark.unit
def test_action_delay_per_world():
    env = _env(n=4, action_delay=(2, 2))
    env.reset(seed=0)
    ctrl = env.sim.ctrl
    a = [torch.full((4, 1), v) for v in (0.9, -0.5, 0.3)]
    env.step(a[0])
    assert torch.all(ctrl == 0.0)  # the motor's ctrl mid-point: nothing applied yet
    env.step(a[1])
    assert torch.all(ctrl == 0.0)
    env.step(a[2])
    assert torch.allclose(ctrl, torch.full((4, 1), 0.9, dtype=ctrl.dtype))
    assert torch.allclose(env.state()["last_action"], a[2])  # rewards see the policy's action
    mixed = _env(n=64, action_delay=(0, 3))
    assert set(mixed._dr.delays.tolist()) == {0, 1, 2, 3}


@pytest.mark.unit
def test_obs_noise_leaves_state_clean():
    noisy, plain = _env(n=256, obs_noise_std=0.05), _env(n=256)
    o1, o2 = noisy.reset(seed=3), plain.reset(seed=3)
    for env in (noisy, plain):
        for _ in range(3):
            out = env.step(torch.zeros(256, 1))
        env.last = out
    assert all(torch.equal(noisy.state()[k], plain.state()[k]) for k in plain.state())
    diff = noisy.last[0] - plain.last[0]
    assert abs(diff.std().item() - 0.05) < 0.005 and abs(diff.mean().item()) < 0.005
    assert (o1 - o2).abs().max() > 0
    per_elem = _env(n=256, obs_noise_std=(0.0, 0.1, 0.0, 0.0, 0.0))
    d = per_elem.reset(seed=3) - o2
    assert torch.all(d[:, [0, 2, 3, 4]] == 0) and d[:, 1].std() > 0.05
    with pytest.raises(ValueError, match="obs_noise_std: 2 values, but observations have 5"):
        _env(obs_noise_std=(0.1, 0.1))


FULL = {
    "mass_scale": (0.5, 1.5),
    "friction_scale": (0.5, 1.5),
    "actuator_gain_scale": (0.7, 1.3),
    "obs_noise_std": 0.02,
    "action_delay": (0, 2),
}


@pytest.mark.unit
def test_reproducible_by_seed():
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(8, 1, generator=g) * 2 - 1 for _ in range(30)]
    a, b, c = _env(seed=5, **FULL), _env(seed=5, **FULL), _env(seed=6, **FULL)
    for env in (a, b, c):
        env.reset()
    ra, rb, rc = _rollout(a, actions), _rollout(b, actions), _rollout(c, actions)
    assert torch.equal(ra, rb) and not torch.allclose(ra, rc)
    assert np.array_equal(a._batch.expanded("body_mass"), b._batch.expanded("body_mass"))
    # reset(seed) reseeds the randomization too: c now runs as a and b did
    a.reset(seed=11)
    c.reset(seed=11)
    assert torch.equal(_rollout(a, actions), _rollout(c, actions))


def snap_mass(snap) -> np.ndarray:
    return snap["domain_rand"]["physics"]["body_mass"].numpy()


@pytest.mark.unit
def test_snapshot_resumes_exactly():
    g = torch.Generator().manual_seed(1)
    actions = [torch.rand(8, 1, generator=g) * 2 - 1 for _ in range(120)]
    env = _env(seed=2, **FULL)
    env.reset()
    _rollout(env, actions[:40])
    snap = env.get_state_dict()
    expected = _rollout(env, actions[40:])  # crosses resets (episodes of cartpole fall)
    other = _env(seed=99, **FULL)  # different physics until the snapshot is loaded
    other.reset()
    assert not np.array_equal(other._batch.expanded("body_mass"), snap_mass(snap))
    other.load_state_dict(snap)
    for f, saved in snap["domain_rand"]["physics"].items():
        assert np.array_equal(other._batch.expanded(f), saved.numpy()), f
    assert torch.equal(_rollout(other, actions[40:]), expected)
    plain = make_env("cartpole_balance", num_envs=8, nthread=1)
    plain.reset()
    with pytest.raises(ValueError, match="with domain randomization, this env is without"):
        plain.load_state_dict(snap)


@pytest.mark.slow
def test_ppo_learns_cartpole_under_randomization():
    """Training through every randomization still reaches the task's threshold on the nominal
    task (the policy is evaluated without randomization, on its own success metric)."""
    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.envs.tasks import get_task

    dr = dict(FULL, obs_noise_std=0.01, action_delay=(0, 1))
    env = _env(n=64, seed=0, **dr)
    runner = OnPolicyRunner(env, PPOConfig(num_steps=32, learning_rate=1e-3), seed=0)
    runner.learn(150_000, progress=False)
    policy = runner.inference_policy()
    nominal = make_env("cartpole_balance", num_envs=64, seed=10_000, nthread=1)
    rate = evaluate(policy, nominal, episodes=64)["success_rate"]  # first episode of each world
    nominal.close()
    assert rate >= get_task("cartpole_balance").success_threshold, rate


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cpu", marks=pytest.mark.unit),
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
            ],
        ),
    ],
)
def test_randomizer_torch_parts_stay_on_the_env_device(device: str):
    """Delay and noise draw on the env's device (a GPU backend never waits for the host)."""
    from rewardlab.envs.randomization import DomainRandomizer

    cfg = DomainRandConfig(obs_noise_std=0.1, action_delay=(1, 1))
    dr = DomainRandomizer(cfg, None, 8, seed=0, device=device)
    a0, a1 = torch.rand(8, 2, device=device), torch.rand(8, 2, device=device)
    first, second = dr.delay(a0), dr.delay(a1)
    assert first.device.type == device and torch.all(first == 0) and torch.equal(second, a0)
    noisy = dr.noise(torch.zeros(8, 3, device=device))
    assert noisy.device.type == device and noisy.abs().sum() > 0
    dr.reset(torch.arange(4, device=device))
    assert torch.all(dr.delay(a1)[:4] == 0) and torch.equal(dr.delay(a1)[4:], a1[4:])


# -- sim-to-real extensions: centre of mass, PD gains, observation latency, pushes, history ----


def _go1(n: int = 4, seed: int = 0, **dr):
    return make_env("go1_velocity", num_envs=n, seed=seed, nthread=1, domain_rand=DomainRandConfig(**dr))  # fmt: skip


@pytest.mark.unit
def test_new_config_errors_name_the_key():
    for key, value, match in (
        ("kp_scale", [0.0, 1.0], r"domain_rand.kp_scale: got \[0.0, 1.0\]"),
        ("kd_scale", [1.2, 0.8], r"domain_rand.kd_scale"),
        ("obs_delay", [2, 1], r"domain_rand.obs_delay: got \[2, 1\]"),
        (
            "com_offset",
            [0.1, 0.1],
            r"domain_rand.com_offset: got \[0.1, 0.1\].*a list of 3 numbers",
        ),
        ("com_offset", -0.01, r"domain_rand.com_offset"),
        ("push_interval", -1, r"domain_rand.push_interval"),
        ("push_velocity", float("nan"), r"domain_rand.push_velocity"),
    ):
        with pytest.raises(ConfigError, match=match):
            build(DomainRandConfig, {key: value}, "domain_rand")
    with pytest.raises(ValueError, match=r"com_bodies: unknown bodies \['trunkk'\]"):
        _go1(com_offset=0.02, com_bodies=("trunkk",))
    with pytest.raises(ValueError, match="no free body to push"):
        _env(push_interval=5, push_velocity=1.0)  # the cart-pole has no free joint


@pytest.mark.unit
def test_com_offset_moves_only_the_named_bodies_per_world():
    n = 8
    env = _go1(n=n, com_offset=(0.03, 0.02, 0.01), com_bodies=("trunk",), resample_on_reset=False)
    nominal = env.model.body_ipos.copy()
    ipos = env._batch.expanded("body_ipos")
    trunk = env.model.body("trunk").id
    off = ipos[:, trunk] - nominal[trunk]
    assert np.all(np.abs(off) <= np.array([0.03, 0.02, 0.01]) + 1e-12)
    assert np.unique(off[:, 0]).size == n and np.abs(off).max() > 0.005
    others = np.delete(ipos, trunk, axis=1)
    assert np.array_equal(others, np.broadcast_to(np.delete(nominal, trunk, axis=0), others.shape))
    # the world's model carries it: its subtree centre of mass moved with the trunk's
    m = env._batch.get_model(2)
    assert np.allclose(m.body_ipos[trunk], ipos[2, trunk])


@pytest.mark.unit
def test_kp_and_kd_scales_change_the_servo_gains_consistently():
    """kp_scale scales gainprm[0] and -biasprm[1] together (the servo still holds its target),
    kd_scale scales the servo's kv and the driven joint's damping (the Go1 models kd there),
    and motor strength (actuator_gain_scale) multiplies both."""
    n = 6
    env = _go1(n=n, kp_scale=(0.8, 1.2), kd_scale=(0.5, 1.5), actuator_gain_scale=(0.9, 1.1))
    m = env.model
    gain, bias = env._batch.expanded("actuator_gainprm"), env._batch.expanded("actuator_biasprm")
    damping = env._batch.expanded("dof_damping")
    kp = gain[:, :, 0] / m.actuator_gainprm[:, 0]
    assert np.allclose(-bias[:, :, 1], gain[:, :, 0])  # still a servo: force = kp (target - q)
    assert kp.min() >= 0.8 * 0.9 - 1e-9 and kp.max() <= 1.2 * 1.1 + 1e-9 and np.unique(kp).size == kp.size  # fmt: skip
    dofs = [int(m.jnt_dofadr[m.actuator_trnid[i, 0]]) for i in range(m.nu)]
    kd = damping[:, dofs] / m.dof_damping[dofs]
    assert kd.min() >= 0.5 - 1e-9 and kd.max() <= 1.5 + 1e-9 and np.unique(kd).size == kd.size
    free = np.delete(damping, dofs, axis=1)  # the trunk's free joint keeps its (zero) damping
    assert np.array_equal(free, np.broadcast_to(np.delete(m.dof_damping, dofs), free.shape))
    # softer servos sag more under the robot's weight: worlds held at the default pose
    env = _go1(n=n, kp_scale=(0.3, 1.7), resample_on_reset=False)
    stiff = (env._batch.expanded("actuator_gainprm")[:, :, 0] / m.actuator_gainprm[:, 0]).mean(1)
    env.reset()
    for _ in range(50):
        env.step(torch.zeros(n, 12))
    h = env.state()["base_height"].numpy()
    assert np.corrcoef(stiff, h)[0, 1] > 0.8, (stiff, h)


@pytest.mark.unit
def test_obs_delay_shows_older_observations():
    g = torch.Generator().manual_seed(3)
    actions = [torch.rand(8, 1, generator=g) * 2 - 1 for _ in range(12)]
    plain, late = _env(seed=4), _env(seed=4, obs_delay=(2, 2))
    first = plain.reset()
    assert torch.equal(late.reset(), first)
    seen_plain = [first] + [plain.step(a)[0] for a in actions]
    seen_late = [first] + [late.step(a)[0] for a in actions]
    assert torch.equal(seen_late[1], first) and torch.equal(seen_late[2], first)
    for t in range(3, len(actions)):
        fell = plain._ep_len < t  # (a world that reset restarts its own history)
        assert torch.equal(seen_late[t][~fell], seen_plain[t - 2][~fell])
    assert torch.equal(late.state()["cart_pos"], plain.state()["cart_pos"])  # the state is current


@pytest.mark.unit
def test_obs_delay_draws_per_world_and_survives_snapshots():
    env = _env(n=16, seed=1, obs_delay=(0, 3), obs_noise_std=0.01)
    assert torch.unique(env._dr.obs_delays).numel() > 1
    g = torch.Generator().manual_seed(5)
    actions = [torch.rand(16, 1, generator=g) * 2 - 1 for _ in range(40)]
    env.reset()
    _rollout(env, actions[:10])
    snap = env.get_state_dict()
    expected = _rollout(env, actions[10:])
    other = _env(n=16, seed=7, obs_delay=(0, 3), obs_noise_std=0.01)
    other.reset()
    other.load_state_dict(snap)
    assert torch.equal(_rollout(other, actions[10:]), expected)


@pytest.mark.unit
def test_pushes_change_the_base_velocity_on_schedule():
    """Worlds are pushed on the step after every push_interval steps; before that the run is the
    plain one, after it the base moves differently."""
    plain, pushed = _go1(seed=2), _go1(seed=2, push_interval=3, push_velocity=1.0)
    plain.reset()
    pushed.reset()
    zero = torch.zeros(4, 12)
    for _ in range(3):
        plain.step(zero)
        pushed.step(zero)
    assert torch.equal(plain.state()["base_lin_vel_world"], pushed.state()["base_lin_vel_world"])
    plain.step(zero)
    pushed.step(zero)
    dv = pushed.state()["base_lin_vel_world"] - plain.state()["base_lin_vel_world"]
    assert dv[:, :2].abs().max() > 0.1 and dv[:, :2].abs().max() <= 1.05
    assert torch.unique(dv[:, 0]).numel() == 4  # one draw per world


@pytest.mark.unit
def test_observation_history_stacks_the_last_k():
    from rewardlab.envs.randomization import ObservationHistory

    with pytest.raises(ValueError, match="obs_history: got 0"):
        ObservationHistory(0)
    h = ObservationHistory(3)
    o = [torch.full((2, 1), float(t)) for t in range(5)]
    assert h.stack(o[0]).tolist() == [[0, 0, 0], [0, 0, 0]]  # a new episode repeats o_0
    assert h.stack(o[0]).tolist() == [[0, 0, 0], [0, 0, 0]]  # stacking has no side effect
    for t in (1, 2, 3):
        h.push(o[t])  # the env's after_step, before the step's observation
        expect = [float(t), float(max(t - 1, 0)), float(max(t - 2, 0))]
        assert h.stack(o[t]).tolist() == [expect, expect]
    h.clear(torch.tensor([1]))
    assert h.stack(torch.tensor([[3.0], [0.0]])).tolist() == [[3, 2, 1], [0, 0, 0]]
    saved = h.state_dict()
    h.push(o[4])
    assert h.stack(o[4]).tolist() == [[4, 3, 2], [4, 0, 0]]
    h2 = ObservationHistory(3)
    h2.load_state_dict(saved)
    h2.push(o[4])
    assert h2.stack(o[4]).tolist() == [[4, 3, 2], [4, 0, 0]]
