"""Batched SAC (agents/sac.py, replay_buffer.py, off_policy_runner.py, sac_agent.py): shapes,
targets, entropy tuning, truncation bootstrapping, n-step returns, config errors, exact resume,
export, and ``rewardlab train agent=sac``."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewardlab.agents.config import SACConfig
from rewardlab.agents.export import export_policy
from rewardlab.agents.off_policy_runner import OffPolicyRunner
from rewardlab.agents.replay_buffer import ReplayBuffer
from rewardlab.agents.sac import SAC
from rewardlab.config import load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.envs import make_env
from rewardlab.envs.tasks.base import get_task, replace_config

pytestmark = pytest.mark.unit

SMALL = SACConfig(
    num_steps=2,
    batch_size=32,
    buffer_size=4000,
    learning_starts=64,
    actor_hidden=(16,),
    critic_hidden=(16,),
)


def small_env(num_envs: int = 8):
    cfg = replace_config(get_task("cartpole_balance").default_config(), episode_steps=20)
    return make_env("cartpole_balance", num_envs=num_envs, cfg=cfg, seed=0, nthread=1)


def _filled(buf: ReplayBuffer, steps: int) -> None:
    n = buf.num_envs
    for t in range(steps):
        obs = torch.full((n, buf.obs_dim), float(t))
        buf.add(
            obs,
            torch.zeros(n, buf.action_dim),
            torch.full((n,), 1.0),
            obs + 1.0,
            torch.zeros(n, dtype=torch.bool),
            torch.zeros(n, dtype=torch.bool),
        )


def test_actor_and_critic_shapes_and_squashed_log_prob() -> None:
    alg = SAC(5, 3, 4, SMALL, generator=torch.Generator().manual_seed(0))
    obs = torch.randn(7, 5)
    a, logp = alg.actor.sample(obs, alg.generator)
    assert a.shape == (7, 3) and logp.shape == (7,)
    assert bool((a.abs() < 1).all())
    q1, q2 = alg.critic(obs, a)
    assert q1.shape == q2.shape == (7,)
    # log-density of tanh(u): log N(u) - sum log(1 - tanh(u)^2), checked against torch's own
    mean, log_std = alg.actor(obs)
    u = torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6))
    base = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    expected = base - torch.log(1 - a.square()).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-3, atol=1e-3)
    assert alg.act(torch.randn(4, 5), random=True).abs().max() <= 1.0
    assert alg.inference_policy()(torch.randn(2, 5)).shape == (2, 3)


def test_polyak_target_update() -> None:
    cfg = SACConfig(tau=0.25, actor_hidden=(4,), critic_hidden=(4,))
    alg = SAC(3, 2, 2, cfg)
    target0 = [p.clone() for p in alg.critic_target.parameters()]
    with torch.no_grad():
        for p in alg.critic.parameters():
            p.add_(1.0)
    alg.update_targets()
    for t0, t, p in zip(
        target0, alg.critic_target.parameters(), alg.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(t, 0.75 * t0 + 0.25 * p)


def test_temperature_rises_when_entropy_is_below_target_and_falls_above() -> None:
    alg = SAC(3, 2, 2, SACConfig(target_entropy=-2.0))
    for log_prob, direction in ((5.0, +1), (-5.0, -1)):  # entropy -5 < -2; entropy 5 > -2
        alg.log_alpha.grad = None
        alg.alpha_loss(torch.full((8,), log_prob)).backward()
        assert alg.log_alpha.grad is not None
        assert math.copysign(1.0, -float(alg.log_alpha.grad)) == direction


def test_truncation_bootstraps_and_termination_does_not() -> None:
    cfg = SACConfig(gamma=0.5, batch_size=64, actor_hidden=(4,), critic_hidden=(4,))
    alg = SAC(2, 1, 2, cfg, generator=torch.Generator().manual_seed(0))
    obs = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # world 0, world 1
    final = torch.full((2, 2), 3.0)  # info["final_obs"]: where each episode ended
    terminated = torch.tensor([True, False])
    truncated = torch.tensor([False, True])
    alg.store(obs, torch.zeros(2, 1), torch.ones(2), final, terminated, truncated)
    batch = alg.buffer.sample(64, alg.generator, n_step=3, gamma=0.5)
    world1 = batch.obs[:, 0] == 1.0
    assert 0 < int(world1.sum()) < 64
    assert bool((batch.next_obs == 3.0).all())  # bootstraps from the final observation
    assert bool((batch.not_terminated == world1.float()).all())  # truncated: bootstrap
    assert bool((batch.discount == 0.5).all()) and bool((batch.rewards == 1.0).all())


def test_n_step_returns_stop_at_episode_ends_and_at_the_newest_step() -> None:
    buf = ReplayBuffer(1, 10, 1, 1)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0]
    dones = [False, False, True, False, False]
    for t, (r, d) in enumerate(zip(rewards, dones, strict=True)):
        buf.add(
            torch.tensor([[float(t)]]),
            torch.zeros(1, 1),
            torch.tensor([r]),
            torch.tensor([[float(t) + 0.5]]),
            torch.tensor([d]),
            torch.tensor([False]),
        )
    g = torch.Generator().manual_seed(0)
    batch = buf.sample(200, g, n_step=3, gamma=0.5)
    for o, r, nxt, nt, disc in zip(
        batch.obs[:, 0], batch.rewards, batch.next_obs[:, 0], batch.not_terminated,
        batch.discount, strict=True,
    ):  # fmt: skip
        t = int(o)
        expected = {  # t -> (n-step return, last step, not terminated, discount)
            0: (1 + 0.5 * 2 + 0.25 * 4, 2, 0.0, 0.125),
            1: (2 + 0.5 * 4, 2, 0.0, 0.25),
            2: (4.0, 2, 0.0, 0.5),
            3: (8 + 0.5 * 16, 4, 1.0, 0.25),  # the newest stored step ends the sum
            4: (16.0, 4, 1.0, 0.5),
        }[t]
        assert float(r) == pytest.approx(expected[0])
        assert float(nxt) == expected[1] + 0.5
        assert float(nt) == expected[2] and float(disc) == pytest.approx(expected[3])


def test_ring_buffer_overwrites_the_oldest_and_round_trips() -> None:
    buf = ReplayBuffer(2, 4, 3, 1)
    _filled(buf, 6)
    assert buf.size == 4 and buf.pos == 2
    assert sorted(set(buf.obs[:, 0, 0].tolist())) == [2.0, 3.0, 4.0, 5.0]
    other = ReplayBuffer(2, 4, 3, 1)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.obs, buf.obs) and other.pos == buf.pos
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(2, 5, 3, 1).load_state_dict(buf.state_dict())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sac.batch_size=0", "sac.batch_size: got 0, expected >= 1"),
        ("sac.tau=0", "sac.tau: got 0"),
        ("sac.activation=swish", "sac.activation: got 'swish'"),
        ("sac.n_step=0", "sac.n_step: got 0, expected >= 1"),
        ("sac.batchsize=3", "sac.batchsize: unknown key"),
    ],
)
def test_config_errors_are_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_train_config(["task=cartpole_balance", "agent=sac", override])
    text = str(e.value)
    assert message in text and "\n" not in text


def test_config_overrides_reach_the_sac_section() -> None:
    cfg = load_train_config(["task=cartpole_balance", "agent=sac", "sac.batch_size=64"])
    assert cfg.sac.batch_size == 64


def _run(log_dir: Path | None, total: int, seed: int = 3) -> OffPolicyRunner:
    r = OffPolicyRunner(small_env(), SMALL, log_dir=log_dir, seed=seed, checkpoint_every=3)
    r.learn(total, progress=False)
    return r


def test_resume_from_latest_is_exact(tmp_path: Path) -> None:
    steps_per_iter = 8 * SMALL.num_steps
    full = OffPolicyRunner(small_env(), SMALL, seed=3)
    hist_full = full.learn(steps_per_iter * 20, progress=False)

    first = _run(tmp_path / "run", steps_per_iter * 9)  # checkpoint at iteration 9
    assert first.alg.num_updates > 0
    resumed = OffPolicyRunner(small_env(), SMALL, log_dir=tmp_path / "run", seed=3)
    assert resumed.resume_if_possible()
    assert resumed.iteration == 9 and resumed.alg.buffer.size == first.alg.buffer.size
    hist = resumed.learn(steps_per_iter * 20, progress=False)
    for a, b in zip(hist_full[9:], hist, strict=True):
        for k in ("losses/critic", "losses/actor", "charts/alpha"):
            assert a[k] == b[k], (k, a["iteration"])
    for a, b in zip(full.alg.state_dict()["model"]["actor"].values(),
                    resumed.alg.state_dict()["model"]["actor"].values(), strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert torch.equal(full.alg.buffer.obs, resumed.alg.buffer.obs)


def test_numbered_checkpoints_hold_no_replay_and_export(tmp_path: Path) -> None:
    r = _run(tmp_path / "run", 8 * SMALL.num_steps * 6)
    ckpts = tmp_path / "run" / "checkpoints"
    numbered = torch.load(ckpts / "model_6.pt", weights_only=True)
    latest = torch.load(ckpts / "latest.pt", weights_only=True)
    assert numbered["replay"] is None and latest["replay"]["size"] == r.alg.buffer.size
    files = export_policy(r.inference_policy(), r.env, tmp_path / "export", git_revision="x")
    assert files["onnx"].is_file()
    scripted = torch.jit.load(str(tmp_path / "export" / "policy.pt"))
    obs = torch.randn(5, r.env.obs_dim)
    torch.testing.assert_close(scripted(obs), r.inference_policy()(obs))


def test_cli_trains_sac_into_a_run_dir_with_export(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", "task=cartpole_balance", "agent=sac",
           "num_envs=8", "total_steps=512", "sac.learning_starts=128", "sac.batch_size=32",
           "sac.actor_hidden=[16]", "sac.critic_hidden=[16]", f"run_dir={run}",
           "eval.episodes=2", "eval.video_episodes=0"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("export/policy.pt", "export/policy.onnx", "checkpoints/latest.pt",
                 "metrics.jsonl", "eval.json"):  # fmt: skip
        assert (run / name).is_file(), name
    meta = (run / "export" / "policy.json").read_text()
    assert '"agent": "sac"' in meta


def _base_export(tmp_path: Path, env) -> Path:
    """A fixed base policy exported as agents/export.py writes one (a small linear map)."""
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(env.obs_dim, env.action_dim), torch.nn.Tanh())
    export_policy(base, env, tmp_path / "base", git_revision="x", onnx=False)
    return tmp_path / "base"


def test_residual_sac_starts_as_the_base_policy_and_exports(tmp_path: Path) -> None:
    import dataclasses

    from rewardlab.agents.config import ResidualSACConfig
    from rewardlab.agents.policy import ExportedPolicy
    from rewardlab.agents.registry import TrainSpec
    from rewardlab.agents.residual_sac import ResidualEnv, ResidualSACAgent

    env = small_env()
    base_dir = _base_export(tmp_path, env)
    base = ExportedPolicy(base_dir / "policy.pt")
    cfg = ResidualSACConfig(base_policy=str(base_dir), residual_scale=0.2, sac=SMALL)
    agent = ResidualSACAgent()
    spec = TrainSpec(total_steps=1, hyperparams=cfg, progress=False)
    runner, _ = agent.runner(env, spec)
    obs = torch.randn(6, env.obs_dim)
    from rewardlab.agents.residual_sac import ResidualSACPolicy

    start = ResidualSACPolicy(runner, base.inference, 0.2)
    torch.testing.assert_close(start(obs), base(obs))  # zero residual mean at the start
    assert isinstance(runner.env, ResidualEnv) and runner.env.obs_dim == env.obs_dim + 1

    spec = dataclasses.replace(spec, total_steps=8 * SMALL.num_steps * 12)
    out = agent.train(env, spec, log=lambda _: None)
    assert not torch.allclose(out.policy(obs), base(obs))  # the residual learned something
    dev = (out.policy(obs) - base(obs)).abs().max()
    assert float(dev) <= 0.2 + 1e-6  # bounded by residual_scale (before the clip)
    export_policy(out.policy.inference, env, tmp_path / "res", git_revision="x")
    scripted = ExportedPolicy(tmp_path / "res" / "policy.pt")
    torch.testing.assert_close(scripted(obs), out.policy(obs))


def test_residual_env_sparse_reward_is_the_success_flag(tmp_path: Path) -> None:
    from rewardlab.agents.policy import ExportedPolicy
    from rewardlab.agents.residual_sac import ResidualEnv

    env = small_env()
    base = ExportedPolicy(_base_export(tmp_path, env) / "policy.pt").inference
    view = ResidualEnv(env, base, 0.1, sparse_reward=True)
    obs = view.reset(seed=0)
    assert obs.shape == (8, env.obs_dim + 1)
    torch.testing.assert_close(obs[:, env.obs_dim :], base(obs[:, : env.obs_dim]))
    for _ in range(25):  # past the 20-step time limit: final_obs carries the base action too
        obs, reward, _, truncated, info = view.step(torch.zeros(8, 1))
        assert torch.equal(reward, info["success"].float())
        if "final_obs" in info:
            assert info["final_obs"].shape == (8, env.obs_dim + 1)


def test_residual_sac_without_a_base_policy_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", "task=cartpole_balance",
           "agent=residual_sac", f"residual_sac.base_policy={tmp_path / 'nothing'}",
           "total_steps=100", f"run_dir={run}"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "residual_sac.base_policy" in out.stderr and "Traceback" not in out.stderr
