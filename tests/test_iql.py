"""The ``iql`` agent (offline Implicit Q-Learning on recorded episodes): its losses, the
transitions and rewards it builds from episodes, config errors, exact resume, export and the
``rewardlab train agent=iql`` pipeline."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.agents.config import IQLConfig
from rewardlab.agents.iql import (
    IQL,
    IQLAgent,
    IQLNet,
    awr_weights,
    episode_rewards,
    expectile_loss,
    transitions,
)
from rewardlab.agents.registry import TrainSpec
from rewardlab.cli import main
from rewardlab.envs import make_env
from rewardlab.envs.demos import Episodes, concatenate, perturbed, record_script


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _mixed(n: int = 2, steps: int | None = 30, seed: int = 0) -> Episodes:
    """``n`` episodes of each arm_reach script (success, partial, failures)."""
    env = make_env("arm_reach", num_envs=n, nthread=1, seed=seed)
    try:
        parts = [record_script(env, "arm_reach", s, steps=steps, seed=seed + k)
                 for k, s in enumerate(("reach", "halfway", "miss", "home"))]  # fmt: skip
    finally:
        env.close()
    return concatenate(parts)


@pytest.mark.unit
def test_expectile_loss_is_asymmetric_and_awr_weights_clip() -> None:
    d = torch.tensor([1.0, -1.0])
    assert float(expectile_loss(d[:1], 0.8)) == pytest.approx(0.8)
    assert float(expectile_loss(d[1:], 0.8)) == pytest.approx(0.2)
    assert float(expectile_loss(d, 0.5)) == pytest.approx(0.5)  # 0.5: half the squared error
    # the minimizer of the expectile loss over a constant is above the mean for tau > 0.5
    x = torch.tensor([0.0, 0.0, 0.0, 1.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        expectile_loss(x - v, 0.9).backward()
        opt.step()
    assert float(v.detach()) == pytest.approx(0.75, abs=1e-3)  # 0.9*1*(1-v) = 0.1*3*v
    w = awr_weights(torch.tensor([-1.0, 0.0, 1.0, 10.0], requires_grad=True), 3.0, 100.0)
    torch.testing.assert_close(w, torch.tensor([np.exp(-3.0), 1.0, np.exp(3.0), 100.0]).float())
    assert not w.requires_grad


@pytest.mark.unit
def test_transitions_pair_each_step_with_the_reward_of_the_state_reached() -> None:
    eps = _mixed(1, steps=6)
    eps.length[1] = 4  # a shorter episode: its padding is not a transition
    rew = episode_rewards(eps, "task")
    obs, act, r, nxt, done = transitions(eps, rew)
    assert len(obs) == 5 + 3 + 5 + 5 and not done.any()
    np.testing.assert_array_equal(obs[0], eps.observations[0, 0])
    np.testing.assert_array_equal(nxt[0], eps.observations[0, 1])
    np.testing.assert_array_equal(act[0], eps.actions[0, 0])
    assert r[0] == eps.reward[0, 1] and r[4] == eps.reward[0, 5] and r[5] == eps.reward[1, 1]
    succ = episode_rewards(eps, "success")
    assert set(np.unique(succ)) <= {0.0, 1.0}
    eps.reward[:] = np.nan
    with pytest.raises(ValueError, match="no recorded reward"):
        episode_rewards(eps, "task")
    eps.meta["labels"] = "none"
    with pytest.raises(ValueError, match="needs labelled episodes"):
        episode_rewards(eps, "success")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expectile", 1.0, "iql.expectile: got 1.0, expected in (0, 1)"),
        ("reward", "clip", "iql.reward: got 'clip', expected one of task, success, preference"),
        ("discount", 1.0, "iql.discount: got 1.0, expected in [0, 1)"),
        ("beta", float("nan"), "iql.beta: got nan, expected a finite number"),
        ("polyak", 0.0, "iql.polyak: got 0.0, expected in (0, 1]"),
    ],
)
def test_iql_config_errors_name_the_key(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as e:
        IQLConfig(**{field: value}).validate()  # type: ignore[arg-type]
    assert str(e.value) == message


def _spec(tmp: Path | None, total: int, demos: Path, **iql) -> TrainSpec:
    cfg = IQLConfig(demos=str(demos), steps_per_iteration=20, eval_every=2, eval_episodes=4,
                    hidden=(32, 32), batch_size=64, **iql)  # fmt: skip
    return TrainSpec(total_steps=total, seed=3, hyperparams=cfg, log_dir=tmp,
                     checkpoint_every=1, progress=False)  # fmt: skip


@pytest.mark.unit
def test_iql_resumes_exactly_exports_and_refuses_other_data(tmp_path: Path) -> None:
    demos = _mixed(2).save(tmp_path / "d.npz")
    env = make_env("arm_reach", num_envs=4, nthread=1, seed=0)
    try:
        agent = IQLAgent()
        whole = agent.train(env, _spec(tmp_path / "a", 80, demos, keep_best=False))
        agent.train(env, _spec(tmp_path / "b", 40, demos, keep_best=False))
        ckpt = tmp_path / "b" / "checkpoints" / "latest.pt"
        resumed = agent.train(env, _spec(tmp_path / "b", 80, demos, keep_best=False), resume=ckpt)
        assert whole.global_step == resumed.global_step == 80
        for a, b in zip(whole.policy.inference.state_dict().values(),
                        resumed.policy.inference.state_dict().values(), strict=True):  # fmt: skip
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
        assert "charts/success_rate" in rows[1]
        assert {"losses/value", "losses/q", "losses/actor"} <= set(rows[0])
        index = json.loads((tmp_path / "b" / "checkpoints" / "index.json").read_text())
        assert index["best"] is not None
        # the export normalizes by the data and reads no action history (iql.ignore_obs)
        loaded = agent.load(ckpt, env, _spec(None, 80, demos, keep_best=False))
        x = torch.randn(5, 15)
        torch.testing.assert_close(loaded(x), resumed.policy(x))
        moved = x.clone()
        moved[:, 12:15] = torch.randn(5, 3)
        torch.testing.assert_close(loaded(moved), loaded(x))
        assert not torch.allclose(loaded(x + 1.0), loaded(x))
        with pytest.raises(ValueError, match="deterministic"):
            loaded.sample(x)
        # other data, or the same episodes with another reward, is not resumed
        with pytest.raises(ValueError, match="trained on other data"):
            agent.train(env, _spec(tmp_path / "b", 120, demos, reward="success"), resume=ckpt)
        cart = make_env("cartpole_balance", num_envs=2, nthread=1)
        with pytest.raises(ValueError, match="holds episodes of 'arm_reach'"):
            agent.train(cart, _spec(None, 20, demos))
        cart.close()
    finally:
        env.close()


@pytest.mark.unit
def test_train_agent_iql_runs_the_pipeline(tmp_path: Path) -> None:
    demos = _mixed(1).save(tmp_path / "d.npz")
    run = tmp_path / "run"
    base = ["train", "task=arm_reach", "agent=iql", f"run_dir={run}", "num_envs=4", "nthread=1",
            "iql.steps_per_iteration=20", "iql.hidden=[32, 32]", "eval.episodes=4",
            "eval.video=false", "checkpoint_every=1"]  # fmt: skip
    code, _, err = run_cli(*base, "total_steps=40")
    assert code == 2 and "iql.demos: required" in err and err.count("\n") == 1
    code, _, err = run_cli(*base, "total_steps=40", f"iql.demos={demos}", "iql.expectile=2")
    assert code == 2 and "iql.expectile" in err and err.count("\n") == 1
    code, text, err = run_cli(*base, "total_steps=40", f"iql.demos={demos}")
    assert code == 0, err
    meta = json.loads((run / "export" / "policy.json").read_text())
    assert meta["agent"] == "iql" and meta["observation"]["normalization"] is not None
    from rewardlab.agents.policy import ExportedPolicy
    from rewardlab.deploy.policy import load_policy as deploy_policy

    obs = np.random.default_rng(0).normal(size=(1, 15)).astype(np.float32)
    want = ExportedPolicy(run / "export" / "policy.pt")(torch.from_numpy(obs)).numpy()[0]
    for backend in ("torch", "onnx"):
        got = deploy_policy(run / "export", backend=backend)(obs[0])
        np.testing.assert_allclose(got, want, atol=1e-5)
    code, text, err = run_cli(*base, "total_steps=60", f"iql.demos={demos}")
    assert code == 0 and "resuming from" in text and "60 steps" in text, err
    code, text, err = run_cli("eval", f"run_dir={run}", "episodes=4")
    assert code == 0 and "success_rate:" in text, err


def _bandit(beta: float, seed: int = 0, steps: int = 300) -> float:
    """Mean action of an IQL actor trained on a one-step bandit: from any state the behaviour
    takes -0.5 (reward 0) three times in four and +0.5 (reward 1) once in four."""
    torch.manual_seed(seed)
    cfg = IQLConfig(beta=beta, discount=0.5, hidden=(16, 16), learning_rate=3e-3, polyak=0.05)
    net = IQLNet(2, 1, cfg)
    net.set_normalization(torch.randn(512, 2))
    alg = IQL(net, cfg)
    g = torch.Generator().manual_seed(seed)
    n = 128
    for _ in range(steps):
        obs = torch.randn(n, 2, generator=g)
        good = torch.rand(n, generator=g) < 0.25
        act = torch.where(good, 0.5, -0.5)[:, None]
        # every transition ends the episode (done = 1): Q is the reward alone
        alg.update((obs, act, good.float(), torch.randn(n, 2, generator=g), torch.ones(n)))
    with torch.no_grad():
        return float(net(torch.randn(256, 2, generator=g)).mean())


@pytest.mark.unit
def test_iql_advantage_weighting_picks_the_better_action_of_a_bandit() -> None:
    # beta = 0 is behaviour cloning: the data's mean action, -0.25; IQL's advantage weights
    # (Q - V > 0 for +0.5, whose Q = 1, above V's 0.8-expectile of the mixture) move it towards
    # +0.5. A sign error in the expectile or the advantage, or rewards of the wrong step, sends it
    # the other way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _bandit(0.0) == pytest.approx(-0.25, abs=0.08)
        assert _bandit(3.0) > 0.2
        assert _bandit(10.0) > 0.4
    finally:
        torch.set_num_threads(threads)


@pytest.mark.unit
def test_recorders_perturb_actions_for_mixed_quality_data() -> None:
    env = make_env("arm_reach", num_envs=4, nthread=1, seed=0)
    try:
        clean = record_script(env, "arm_reach", "reach", steps=12, seed=5)
        again = record_script(env, "arm_reach", "reach", steps=12, seed=5)
        noisy = record_script(env, "arm_reach", "reach", steps=12, seed=5, noise=0.3)
        rand = record_script(env, "arm_reach", "reach", steps=12, seed=5, epsilon=1.0)
    finally:
        env.close()
    np.testing.assert_array_equal(clean.actions, again.actions)
    np.testing.assert_array_equal(clean.observations[:, 0], noisy.observations[:, 0])
    diff = noisy.actions - clean.actions
    assert 0.15 < float(diff[:, 0].std()) < 0.45 and np.abs(noisy.actions).max() <= 1.0
    # epsilon = 1: uniform actions, nothing like the script's constant joint targets
    assert float(rand.actions.std()) > 0.45 and rand.meta["epsilon"] == 1.0
    assert noisy.meta["noise"] == 0.3 and "noise" not in clean.meta
    for bad, message in (({"noise": -0.1}, "noise: got -0.1"), ({"epsilon": 2.0}, "epsilon")):
        with pytest.raises(ValueError, match=message):
            perturbed(lambda o, s, e: o, **bad)  # type: ignore[arg-type]
    code, _, err = run_cli("demos", "record", "task=arm_reach", "out=x.npz", "epsilon=1.5")
    assert code == 2 and "epsilon: got 1.5, expected in [0, 1]" in err and err.count("\n") == 1


@pytest.mark.unit
def test_iql_reward_preference_scores_each_steps_frame(tmp_path: Path) -> None:
    from rewardlab.offline_rewards import preference_rewards
    from rewardlab.vlm_reward.preference_model import RewardEnsemble, save_ensemble
    from rewardlab.vlm_reward.rendering import TiledRenderer

    eps = _mixed(1, steps=5).select([0, 2])
    eps.length[1] = 3
    model = tmp_path / "reward.pt"
    save_ensemble(RewardEnsemble(2, image_size=16, width=4, seed=1), model)
    rew = episode_rewards(eps, "preference", str(model))
    assert rew.shape == (2, 5) and rew.dtype == np.float32
    assert rew[1, 3] == rew[1, 4] == rew[1, 2]  # padding repeats the last valid step
    assert len(np.unique(rew[0])) > 1  # the arm moves: its frames differ
    # recorded frames (a bag's) are scored as they are: the same frames give the same rewards
    renderer = TiledRenderer.for_task("arm_reach", 16)
    try:
        eps.frames = np.stack([renderer.render_rows({f: v[e] for f, v in eps.physics.items()}).numpy()
                               for e in range(2)])  # fmt: skip
    finally:
        renderer.close()
    np.testing.assert_allclose(preference_rewards(eps, str(model)), rew, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="iql.reward_model: 'nope.pt' is not a file"):
        episode_rewards(eps, "preference", "nope.pt")
    with pytest.raises(ValueError, match="iql.reward_model: required with iql.reward=preference"):
        IQLConfig(reward="preference").validate()
