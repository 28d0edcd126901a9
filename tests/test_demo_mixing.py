"""RLPD-style demonstration mixing of residual SAC (``residual_sac.demos``): the episode
transitions it builds, the fixed demo buffer and its n-step returns, the share of every batch it
supplies, the residual actions that reproduce demonstrated ones, config errors, and an exact
resume that refuses other demonstrations. Its learning effect is measured in
``benchmarks/results/residual_sac.md`` (franka_lift, with and without demos)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.agents.config import ResidualSACConfig
from rewardlab.agents.export import export_policy
from rewardlab.agents.off_policy_runner import OffPolicyRunner
from rewardlab.agents.policy import ExportedPolicy
from rewardlab.agents.registry import TrainSpec
from rewardlab.agents.replay_buffer import ReplayBuffer
from rewardlab.agents.residual_sac import ResidualEnv, ResidualSACAgent
from rewardlab.config import load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.envs.demos import Episodes, record
from tests.test_sac import SMALL, small_env

pytestmark = pytest.mark.unit


def hand_episodes() -> Episodes:
    """Two episodes of lengths 3 and 2 (padded to 3 steps); observation = 10 * episode + step."""
    obs = np.array([[[0.0], [1.0], [2.0]], [[10.0], [11.0], [11.0]]], np.float32)
    return Episodes(
        task="cartpole_balance",
        physics={},
        length=np.array([3, 2]),
        success=np.array([[False, True, True], [False, False, False]]),
        reward=np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.5]], np.float32),
        kind=["success", "failure"],
        script=["s", "s"],
        observations=obs,
        actions=obs / 100.0,
    )


def test_step_transitions_earn_the_next_states_reward_and_mark_episode_ends() -> None:
    tr = hand_episodes().step_transitions(hand_episodes().success.astype(np.float32))
    assert len(tr) == 3  # (3 - 1) + (2 - 1): a last step has no next observation
    np.testing.assert_array_equal(tr.obs[:, 0], [0.0, 1.0, 10.0])
    np.testing.assert_array_equal(tr.next_obs[:, 0], [1.0, 2.0, 11.0])
    np.testing.assert_allclose(tr.actions[:, 0], [0.0, 0.01, 0.1])
    np.testing.assert_array_equal(tr.rewards, [1.0, 1.0, 0.0])  # success of the state reached
    np.testing.assert_array_equal(tr.episode_end, [False, True, True])


def test_fixed_transitions_cut_n_step_returns_at_episode_ends() -> None:
    # transitions 0-1 are one episode, 2-4 another; obs = index, reward = index + 1
    s = 5
    idx = torch.arange(s, dtype=torch.float32)[:, None]
    ends = torch.tensor([False, True, False, False, True])
    buf = ReplayBuffer.of_transitions(idx, idx / 10, idx[:, 0] + 1, idx + 0.5, ends)
    assert buf.num_transitions == s
    gen = torch.Generator().manual_seed(0)
    batch = buf.sample(400, gen, n_step=3, gamma=0.5)
    expected = {  # index -> (n-step return, discount, next_obs)
        0: (1 + 0.5 * 2, 0.25, 1.5),
        1: (2.0, 0.5, 1.5),
        2: (3 + 0.5 * 4 + 0.25 * 5, 0.125, 4.5),
        3: (4 + 0.5 * 5, 0.25, 4.5),
        4: (5.0, 0.5, 4.5),
    }
    seen = set()
    for i in range(400):
        k = int(batch.obs[i, 0])
        seen.add(k)
        ret, disc, nxt = expected[k]
        assert float(batch.rewards[i]) == pytest.approx(ret), k
        assert float(batch.discount[i]) == pytest.approx(disc), k
        assert float(batch.next_obs[i, 0]) == nxt, k
        assert float(batch.not_terminated[i]) == 1.0  # recorded ends bootstrap (time-outs)
    assert seen == set(expected)
    with pytest.raises(ValueError, match="last one must end"):
        ReplayBuffer.of_transitions(idx, idx, idx[:, 0], idx, torch.zeros(s, dtype=torch.bool))


def test_mixed_batches_draw_the_demo_ratio_from_the_demonstrations() -> None:
    online = ReplayBuffer(4, 10, 1, 1)
    for _ in range(10):
        z = torch.zeros(4, 1)
        online.add(z, z, torch.zeros(4), z, torch.zeros(4, dtype=torch.bool),
                   torch.zeros(4, dtype=torch.bool))  # fmt: skip
    one = torch.ones(6, 1)
    demos = ReplayBuffer.of_transitions(
        one, one, torch.ones(6), one, torch.ones(6, dtype=torch.bool)
    )
    gen = torch.Generator().manual_seed(1)
    for ratio, expected in ((0.25, 16), (0.5, 32), (0.0, 0)):
        batch = online.sample_mixed(demos, ratio, 64, gen)
        assert batch.rewards.shape == (64,)
        assert int(batch.rewards.sum()) == expected, ratio
    assert int(online.sample_mixed(None, 0.5, 64, gen).rewards.sum()) == 0


def test_view_transitions_give_the_residual_that_reproduces_the_demo_action(tmp_path: Path) -> None:
    env = small_env()
    torch.manual_seed(0)
    base_net = torch.nn.Sequential(torch.nn.Linear(env.obs_dim, 1), torch.nn.Tanh())
    export_policy(base_net, env, tmp_path / "base", git_revision="x", onnx=False)
    base = ExportedPolicy(tmp_path / "base" / "policy.pt").inference
    view = ResidualEnv(env, base, scale=0.2)
    obs = torch.randn(50, env.obs_dim)
    b = base(obs).clamp(-1, 1)
    actions = (b + torch.linspace(-0.4, 0.4, 50)[:, None]).clamp(-1, 1)
    v, r, v_next, clipped = view.view_transitions(obs, actions, obs + 1)
    torch.testing.assert_close(v, torch.cat([obs, b], -1))
    torch.testing.assert_close(v_next[:, : env.obs_dim], obs + 1)
    assert r.abs().max() <= 1.0
    replay = (b + 0.2 * r).clamp(-1, 1)
    reach = (actions - b).abs()[:, 0] <= 0.2 + 1e-6
    torch.testing.assert_close(replay[reach], actions[reach])  # reproduced where in reach
    assert torch.equal(clipped, ~reach)
    assert 0 < int(clipped.sum()) < 50
    env.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("residual_sac.demo_ratio=1.0", "residual_sac.demo_ratio"),
        ("residual_sac.demo_ratio=-0.1", "residual_sac.demo_ratio"),
    ],
)
def test_demo_settings_are_checked_at_load(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(["task=cartpole_balance", "agent=residual_sac", override])


def test_demos_without_the_sparse_reward_are_refused_in_one_line() -> None:
    with pytest.raises((ConfigError, ValueError), match="sparse_reward=true") as err:
        load_train_config(["task=cartpole_balance", "agent=residual_sac",
                           "residual_sac.demos=d.npz"])  # fmt: skip
    assert "\n" not in str(err.value)
    cfg = load_train_config(["task=cartpole_balance", "agent=residual_sac",
                             "residual_sac.demos=a.npz, b.npz", "residual_sac.sparse_reward=true"])  # fmt: skip
    assert cfg.residual_sac.demo_files() == ["a.npz", "b.npz"]


def _demos(tmp_path: Path, seed: int, name: str) -> Path:
    env = small_env(4)
    try:

        def act(obs, state, env):  # a weak controller: push against the pole's lean
            return (obs[:, 1:2] * 3.0).clamp(-1, 1)

        eps = record(env, act, task="cartpole_balance", source="policy", name="p",
                     kind="policy", seed=seed)  # fmt: skip
    finally:
        env.close()
    return eps.save(tmp_path / name)


def test_demo_mixing_resumes_exactly_and_refuses_other_demos(tmp_path: Path) -> None:
    env = small_env()
    torch.manual_seed(0)
    base_net = torch.nn.Sequential(torch.nn.Linear(env.obs_dim, 1), torch.nn.Tanh())
    export_policy(base_net, env, tmp_path / "base", git_revision="x", onnx=False)
    env.close()
    demos = _demos(tmp_path, 0, "d.npz")
    cfg = ResidualSACConfig(base_policy=str(tmp_path / "base"), residual_scale=0.3,
                            sparse_reward=True, demos=str(demos), demo_ratio=0.5, sac=SMALL)  # fmt: skip
    agent = ResidualSACAgent()
    lines: list[str] = []
    per_iter = 8 * SMALL.num_steps

    def runner(run: Path | None, c: ResidualSACConfig = cfg) -> OffPolicyRunner:
        spec = TrainSpec(total_steps=1, hyperparams=c, log_dir=run, progress=False, seed=3,
                         checkpoint_every=3)  # fmt: skip
        r = agent.runner(small_env(), spec)[0]
        agent.add_demos(r, c, lines.append)
        return r

    full = runner(None)
    assert full.alg.demos is not None and full.alg.demos.num_transitions > 0
    assert "residual_sac.demos:" in lines[0] and "50% of every batch" in lines[0]
    hist_full = full.learn(per_iter * 20, progress=False)
    first = runner(tmp_path / "run")
    first.learn(per_iter * 9, progress=False)  # a checkpoint at iteration 9
    resumed = runner(tmp_path / "run")
    assert resumed.resume_if_possible()
    view = resumed.env
    assert isinstance(view, ResidualEnv) and resumed._obs is not None
    view.restore_obs(resumed._obs)
    hist = resumed.learn(per_iter * 20, progress=False)
    for a, b in zip(hist_full[9:], hist, strict=True):
        assert a["losses/critic"] == b["losses/critic"], a["iteration"]
    for a, b in zip(full.alg.actor.parameters(), resumed.alg.actor.parameters(), strict=True):
        assert torch.equal(a, b)

    other = dataclasses.replace(cfg, demos=str(_demos(tmp_path, 1, "other.npz")))
    with pytest.raises(ValueError, match="other demonstrations"):
        runner(tmp_path / "run", other).resume_if_possible()
    none = dataclasses.replace(cfg, demos="")
    with pytest.raises(ValueError, match="has none"):
        runner(tmp_path / "run", none).resume_if_possible()
