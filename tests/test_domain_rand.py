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
