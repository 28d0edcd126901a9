"""Unit tests of the batched PPO: GAE, normalizers, the loss, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.agents import runner as runner_module
from rewardlab.agents.config import PPOConfig
from rewardlab.agents.networks import ELU, EmpiricalNormalization, mlp
from rewardlab.agents.ppo import (
    LossInputs,
    LossSettings,
    RewardNormalizer,
    gaussian_kl,
    paced_learning_rate,
    ppo_losses,
)
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.agents.storage import RolloutStorage, Transition
from rewardlab.envs import make_env
from rewardlab.envs.tasks.base import get_task, replace_config

pytestmark = pytest.mark.unit

# Short episodes so that a few iterations see both terminations (falls) and truncations.
SMALL_CFG = PPOConfig(
    num_steps=16, num_epochs=2, num_minibatches=2, actor_hidden=(16,), critic_hidden=(16,)
)


def small_env(num_envs: int = 8, seed: int = 0):
    cfg = replace_config(get_task("cartpole_balance").default_config(), episode_steps=20)
    return make_env("cartpole_balance", num_envs=num_envs, cfg=cfg, seed=seed, nthread=1)


def _transition(ids: torch.Tensor, obs_dim: int) -> Transition:
    """A step whose every field of world ``i`` holds ``ids[i]`` (reward 0, no episode end)."""
    n = ids.shape[0]
    no = torch.zeros(n, dtype=torch.bool)
    return Transition(obs=ids[:, None].repeat(1, obs_dim), actions=ids[:, None], log_prob=ids,
                      mean=ids[:, None], std=torch.ones(1), value=ids, reward=torch.zeros(n),
                      terminated=no, truncated=no)  # fmt: skip


# -- GAE -----------------------------------------------------------------------------------------


def test_gae_matches_hand_computed_values() -> None:
    """Two worlds, three steps, gamma = lam = 0.5.

    World 0 never ends; last value 4:
      t2: delta = 1 + .5*4 - 3 = 0                  adv 0
      t1: delta = 1 + .5*3 - 2 = .5                 adv .5 + .25*0 = .5
      t0: delta = 1 + .5*2 - 1 = 1                  adv 1 + .25*.5 = 1.125
    World 1 is truncated at t1 (V(final_obs) = 6, so its reward becomes 2 + .5*6 = 5) and
    terminated at t2 (the last value 10 is ignored):
      t2: delta = 0 - 2 = -2                        adv -2
      t1: delta = 5 - 1 = 4 (episode end)           adv 4
      t0: delta = 1 + .5*1 - .5 = 1                 adv 1 + .25*4 = 2
    """
    s = RolloutStorage(num_envs=2, num_steps=3, obs_dim=1, action_dim=1, gamma=0.5, lam=0.5)
    rewards = [[1.0, 1.0], [1.0, 2.0], [1.0, 0.0]]
    values = [[1.0, 0.5], [2.0, 1.0], [3.0, 2.0]]
    terminated = [[False, False], [False, False], [False, True]]
    truncated = [[False, False], [False, True], [False, False]]
    final_values = [None, torch.tensor([999.0, 6.0]), None]  # row 0 not truncated: unused
    for t in range(3):
        s.add(
            Transition(
                obs=torch.zeros(2, 1),
                actions=torch.zeros(2, 1),
                log_prob=torch.zeros(2),
                mean=torch.zeros(2, 1),
                std=torch.ones(1),
                value=torch.tensor(values[t]),
                reward=torch.tensor(rewards[t]),
                terminated=torch.tensor(terminated[t]),
                truncated=torch.tensor(truncated[t]),
                final_value=final_values[t],
            )
        )
    s.compute_returns(last_value=torch.tensor([4.0, 10.0]))
    expected_adv = torch.tensor([[1.125, 2.0], [0.5, 4.0], [0.0, -2.0]])
    torch.testing.assert_close(s.advantages, expected_adv)
    torch.testing.assert_close(s.returns, expected_adv + torch.tensor(values))
    torch.testing.assert_close(s.bootstraps[1], torch.tensor([0.0, 3.0]))  # gamma * V(final)
    torch.testing.assert_close(s.dones, torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(OverflowError):
        s.add(_transition(torch.zeros(2), obs_dim=1))


def test_minibatches_cover_the_rollout_once_per_epoch() -> None:
    s = RolloutStorage(num_envs=4, num_steps=3, obs_dim=2, action_dim=1, gamma=0.9, lam=0.9)
    for t in range(3):
        ids = torch.arange(4, dtype=torch.float32) + 10 * t
        s.add(_transition(ids, obs_dim=2))
    s.compute_returns(torch.zeros(4))
    gen = torch.Generator().manual_seed(0)
    batches = list(s.minibatches(num_minibatches=3, num_epochs=2, generator=gen))
    assert len(batches) == 6
    for epoch in (batches[:3], batches[3:]):
        seen = torch.cat([b.actions[:, 0] for b in epoch]).sort().values
        torch.testing.assert_close(seen, s.actions.flatten().sort().values)
        for b in epoch:  # fields of one sample stay together
            torch.testing.assert_close(b.obs[:, 0], b.actions[:, 0])
            torch.testing.assert_close(b.old_values, b.actions[:, 0])


# -- normalizers -----------------------------------------------------------------------------------


def test_empirical_normalization_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc, scale, size=(n, 3)) for loc, scale, n in
              [(0.0, 1.0, 7), (5.0, 2.0, 50), (-3.0, 0.5, 1), (1.0, 3.0, 200)]]  # fmt: skip
    norm = EmpiricalNormalization(3, eps=1e-2)
    for c in chunks:
        norm.update(torch.tensor(c, dtype=torch.float32))
    data = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), np.sqrt(data.var(0) + 1e-2), rtol=1e-5)
    assert int(norm.count) == len(data)
    x = torch.tensor(data[:5], dtype=torch.float32)
    expected = (data[:5] - data.mean(0)) / np.sqrt(data.var(0) + 1e-2)
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    # eval mode freezes the statistics
    norm.eval()
    before = norm.state_dict()
    norm.update(torch.full((10, 3), 100.0))
    for k, v in norm.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_observation_std_floor_keeps_constant_features_bounded() -> None:
    norm = EmpiricalNormalization(1)  # default eps floors the std at 0.1
    norm.update(torch.full((100, 1), 0.999))
    assert float(norm.std) == pytest.approx(0.1, rel=1e-6)
    assert float(norm(torch.tensor([[0.97]]))) == pytest.approx(-0.29, abs=1e-3)


def test_elu_matches_torch_elu_and_every_path_computes_the_same_numbers(tmp_path: Path) -> None:
    # values on both sides of 0, large ones (exp must not overflow into the x > 0 branch)
    x = torch.cat([torch.linspace(-30.0, 30.0, 601), torch.tensor([0.0, -0.0, 1e-8, -1e-8])])
    x64 = x.double().requires_grad_()
    torch.autograd.gradcheck(ELU(), (x64,))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-7)):
        a, b = x.to(dtype).requires_grad_(), x.to(dtype).requires_grad_()
        ya, yb = ELU()(a), torch.nn.functional.elu(b)
        torch.testing.assert_close(ya, yb, rtol=0.0, atol=tol)
        g = torch.randn(x.shape, dtype=dtype)
        ya.backward(g)
        yb.backward(g)
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(a.grad, b.grad, rtol=0.0, atol=tol)
    with torch.no_grad():  # the inference path (no autograd) computes the same values
        torch.testing.assert_close(ELU()(x), torch.nn.functional.elu(x), rtol=0.0, atol=2e-7)
    # training, inference, scripted and traced networks compute the same numbers, bit for bit
    torch.manual_seed(0)
    net = mlp(6, (64, 32), 3)
    obs = torch.randn(256, 6) * 3
    trained = net(obs).detach()
    with torch.no_grad():
        for module in (net, torch.jit.script(net), torch.jit.trace(net, obs)):
            assert torch.equal(module(obs), trained)
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (obs,), str(path), input_names=["obs"], dynamo=False)
    assert "Exp" in {n.op_type for n in onnx.load(str(path)).graph.node}
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (res,) = session.run(None, {"obs": obs.numpy()})
    np.testing.assert_allclose(res, trained.numpy(), rtol=1e-5, atol=1e-5)


def test_gae_applies_the_reward_scale_before_the_bootstrap() -> None:
    """One world, one truncated step: A = scale * r + gamma * V(final) - V = .5*4 + .5*6 - 1 = 4."""
    s = RolloutStorage(num_envs=1, num_steps=1, obs_dim=1, action_dim=1, gamma=0.5, lam=0.5)
    s.add(Transition(obs=torch.zeros(1, 1), actions=torch.zeros(1, 1), log_prob=torch.zeros(1),
                     mean=torch.zeros(1, 1), std=torch.ones(1), value=torch.tensor([1.0]),
                     reward=torch.tensor([4.0]), terminated=torch.tensor([False]),
                     truncated=torch.tensor([True]), final_value=torch.tensor([6.0])))  # fmt: skip
    s.compute_returns(torch.tensor([100.0]), reward_scale=0.5)
    torch.testing.assert_close(s.advantages[0], torch.tensor([4.0]))
    s.compute_returns(torch.tensor([100.0]), reward_scale=0.5, reward_clip=1.0)
    torch.testing.assert_close(s.advantages[0], torch.tensor([3.0]))  # .5*4 clipped to 1


def test_reward_normalizer_tracks_discounted_returns_and_is_scale_free() -> None:
    """Running return ret = gamma * ret + r per world, reset after done; scale = 1/std(ret)."""
    rn = RewardNormalizer(num_envs=2, gamma=0.5)
    r = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    done = torch.tensor([[False, False], [False, True], [False, False]])
    rets = torch.stack([rn.track(r[t], done[t]) for t in range(3)])
    # world 0: 1, 1.5, 1.75; world 1: 2, 3 (done: reset), 2
    torch.testing.assert_close(rets, torch.tensor([[1.0, 2.0], [1.5, 3.0], [1.75, 2.0]]))
    rn.update(rets)
    expected_std = np.sqrt(np.var([1.0, 2.0, 1.5, 3.0, 1.75, 2.0]) + 1e-8)
    assert float(rn.scale()) == pytest.approx(1.0 / expected_std, rel=1e-5)

    scaled = []
    for factor in (1.0, 1000.0):
        rn = RewardNormalizer(num_envs=4, gamma=0.9)
        g = torch.Generator().manual_seed(1)
        rewards = torch.randn(50, 4, generator=g) + 0.5
        dones = torch.rand(50, 4, generator=g) < 0.1
        rn.update(torch.stack([rn.track(factor * rewards[t], dones[t]) for t in range(50)]))
        scaled.append(factor * rewards * rn.scale())
    torch.testing.assert_close(scaled[0], scaled[1], rtol=1e-4, atol=1e-5)
    assert 0.05 < float(scaled[0].abs().mean()) < 5.0


# -- the loss --------------------------------------------------------------------------------------


def test_ppo_loss_clipping_on_a_hand_made_batch() -> None:
    """ratios r = [.5, 1, 1.5, 1.5, .5], advantages A = [1, -1, 1, -1, -1], clip .2.

    max(-A r, -A clip(r)) per sample: [-.5, 1, -1.2, 1.5, .8] -> mean .32; the clipped samples
    whose clip is the pessimistic one (r=1.5 with A=1, r=.5 with A=-1) carry no gradient.
    """
    ratio = torch.tensor([0.5, 1.0, 1.5, 1.5, 0.5])
    old_log_prob = torch.tensor([-1.0, -2.0, -0.5, 0.3, -3.0])
    log_prob = (old_log_prob + ratio.log()).requires_grad_()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])
    values = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0], requires_grad=True)
    old_values = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    returns = torch.tensor([3.0, 0.0, 0.0, 0.0, 0.0])
    entropy = torch.tensor(1.5)
    inputs = LossInputs(log_prob=log_prob, old_log_prob=old_log_prob, advantages=adv,
                        values=values, old_values=old_values, returns=returns, entropy=entropy)  # fmt: skip
    settings = LossSettings(clip_ratio=0.2, clip_value=True, value_coef=0.5, entropy_coef=0.1)
    with torch.no_grad():
        ref = ppo_losses(inputs, settings)
    out = ppo_losses(inputs, settings)
    assert float(ref.policy) == pytest.approx(0.32, abs=1e-6)
    # value: unclipped (2-3)^2 = 1, clipped (1.2-3)^2 = 3.24 -> max 3.24 on sample 0, mean /5
    assert float(ref.value) == pytest.approx(3.24 / 5, abs=1e-6)
    assert float(ref.total) == pytest.approx(0.32 + 0.5 * 3.24 / 5 - 0.1 * 1.5, abs=1e-6)
    assert float(ref.clip_fraction) == pytest.approx(4 / 5)
    out.total.backward()
    grad = log_prob.grad
    assert grad is not None
    # d/dlogp of -A r is -A r where unclipped; zero where the clipped term was taken
    torch.testing.assert_close(grad, torch.tensor([-0.5, 1.0, 0.0, 1.5, 0.0]) / 5)
    assert values.grad is not None and float(values.grad[0]) == 0.0  # clipped value: no gradient

    unclipped = ppo_losses(inputs, LossSettings(clip_ratio=0.2, clip_value=False, value_coef=0.5,
                                                entropy_coef=0.0))  # fmt: skip
    assert float(unclipped.value.detach()) == pytest.approx(1.0 / 5, abs=1e-6)


def test_gaussian_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    m0, m1 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    s0, s1 = torch.rand(6, 3, generator=g) + 0.2, torch.rand(6, 3, generator=g) + 0.2
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m0, s0), torch.distributions.Normal(m1, s1)
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl(m0, s0, m1, s1), ref)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="ppo.schedule"):
        PPOConfig(schedule="cosine").validate()
    with pytest.raises(ValueError, match="ppo.max_learning_rate"):
        PPOConfig(min_learning_rate=1e-2, max_learning_rate=1e-3).validate()


# -- runner: checkpoints, resume, logs, export -------------------------------------------------------


def _params(runner: OnPolicyRunner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in runner.policy.state_dict().items()}


def test_exact_resume_matches_a_straight_run(tmp_path: Path) -> None:
    iters = 6
    steps = iters * 8 * SMALL_CFG.num_steps

    straight = OnPolicyRunner(small_env(), SMALL_CFG, seed=3, num_threads=1)
    hist_a = straight.learn(steps, progress=False)
    assert any("charts/episode_return" in h for h in hist_a), "no episode finished: weak test"

    first = OnPolicyRunner(small_env(), SMALL_CFG, log_dir=tmp_path, seed=3, num_threads=1)
    first.learn(steps // 2, progress=False)
    ckpt = tmp_path / "checkpoints" / "latest.pt"
    assert ckpt.is_file() and (tmp_path / "checkpoints" / f"model_{iters // 2}.pt").is_file()

    resumed = OnPolicyRunner(small_env(), SMALL_CFG, seed=12345, num_threads=1)  # seed overwritten
    assert resumed.resume_if_possible(tmp_path)
    assert resumed.global_step == steps // 2 and resumed.iteration == iters // 2
    hist_b = resumed.learn(steps, progress=False)
    assert len(hist_b) == iters - iters // 2

    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    for ha, hb in zip(hist_a[iters // 2 :], hist_b, strict=True):
        assert ha["losses/value"] == hb["losses/value"]
        assert ha.get("charts/episode_return") == hb.get("charts/episode_return")
    # and a differently seeded run really differs (the comparison above can fail)
    other = OnPolicyRunner(small_env(), SMALL_CFG, seed=4, num_threads=1)
    other.learn(steps, progress=False)
    assert not torch.equal(_params(other)["actor.0.weight"], a["actor.0.weight"])


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = OnPolicyRunner(small_env(), SMALL_CFG, log_dir=tmp_path, seed=0)
    path = tmp_path / "ckpt.pt"
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy_replace(src: str, dst: str) -> None:
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(runner_module.os, "replace", spy_replace)
    r.save(path)
    assert len(replaced) == 1
    src, dst = replaced[0]
    assert Path(src).parent == path.parent and Path(dst) == path and src != dst
    good = path.read_bytes()

    def crash(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"partial garbage")  # type: ignore[attr-defined]
        raise OSError("disk full")

    r.learn(SMALL_CFG.num_steps * 8, progress=False)  # changes the state
    monkeypatch.setattr(runner_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        r.save(path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    monkeypatch.undo()
    fresh = OnPolicyRunner(small_env(), SMALL_CFG, seed=0)
    fresh.load(path)  # still a valid checkpoint
    assert fresh.iteration == 0


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path: Path) -> None:
    env = small_env()
    r = OnPolicyRunner(env, SMALL_CFG, log_dir=tmp_path, seed=0, checkpoint_every=1)
    real_step, calls = env.step, {"n": 0}

    def step(actions: torch.Tensor):
        calls["n"] += 1
        if calls["n"] == SMALL_CFG.num_steps * 2 + 5:  # inside the third rollout
            raise KeyboardInterrupt
        return real_step(actions)

    env.step = step  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        r.learn(10 * 8 * SMALL_CFG.num_steps, progress=False)
    ckpt = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["iteration"] == 2
    assert ckpt["env"] is None  # interrupted inside env.step: no inconsistent snapshot
    env.step = real_step  # type: ignore[method-assign]
    again = OnPolicyRunner(small_env(), SMALL_CFG, log_dir=tmp_path, seed=0)
    assert again.resume_if_possible()
    hist = again.learn(3 * 8 * SMALL_CFG.num_steps, progress=False)
    assert [int(h["iteration"]) for h in hist] == [3]


def test_metrics_file_tensorboard_and_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    r = OnPolicyRunner(small_env(), SMALL_CFG, log_dir=tmp_path, seed=0, log_every=2)
    hist = r.learn(5 * 8 * SMALL_CFG.num_steps, progress=True)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(hist) == 5
    rows = [json.loads(x) for x in lines]
    assert [row["global_step"] for row in rows] == [128.0 * (i + 1) for i in range(5)]
    for key in ("losses/value", "losses/policy", "losses/entropy", "losses/approx_kl",
                "charts/learning_rate", "charts/action_std", "perf/steps_per_s",
                "perf/collect_s", "perf/learn_s"):  # fmt: skip
        assert all(math.isfinite(row[key]) for row in rows), key
    with_eps = [row for row in rows if "charts/episode_return" in row]
    assert with_eps, "episodes of 20 steps must finish within 80 steps"
    for row in with_eps:
        assert 0.0 <= row["charts/success_rate"] <= 1.0
        assert 1 <= row["charts/episode_length"] <= 20
        terms = [k for k in row if k.startswith("reward/")]
        assert "reward/upright" in terms
        assert sum(row[k] for k in terms) == pytest.approx(row["charts/episode_return"], rel=1e-4)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and all(line.startswith("[ppo] it ") for line in out)  # it 2, 4, 5
    assert "ETA" in out[-1] and "steps/s" in out[-1]


def test_nan_reward_raises_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    def bad_reward(state, action):
        r = torch.full((action.shape[0],), float("nan"))
        return r, {"bad": r}

    env = small_env()
    env.set_reward(bad_reward)
    r = OnPolicyRunner(env, SMALL_CFG, log_dir=tmp_path, seed=0)
    with pytest.raises(FloatingPointError, match="non-finite"):
        r.learn(4 * 8 * SMALL_CFG.num_steps, progress=False)


def test_linear_schedule_anneals_the_learning_rate() -> None:
    cfg = PPOConfig(**{**SMALL_CFG.__dict__, "schedule": "linear", "learning_rate": 1e-3})
    r = OnPolicyRunner(small_env(), cfg, seed=0)
    hist = r.learn(4 * 8 * cfg.num_steps, progress=False)
    lrs = [h["charts/learning_rate"] for h in hist]
    assert lrs == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])


def test_inference_policy_is_deterministic_scriptable_and_exportable(tmp_path: Path) -> None:
    r = OnPolicyRunner(small_env(), SMALL_CFG, seed=0)
    r.learn(2 * 8 * SMALL_CFG.num_steps, progress=False)
    pol = r.inference_policy()
    assert not pol.training and all(not p.requires_grad for p in pol.parameters())
    assert all(t.device.type == "cpu" for t in [*pol.parameters(), *pol.buffers()])
    obs = torch.randn(7, r.env.obs_dim) * 3
    with torch.no_grad():
        out = pol(obs)
        expected = r.policy.actor(r.policy.normalize(obs)).clamp(-1, 1)
    assert out.shape == (7, r.env.action_dim)
    torch.testing.assert_close(out, expected)
    with torch.no_grad():
        torch.testing.assert_close(pol(obs * 100).abs().max(), torch.tensor(1.0))  # clamped
    # later training does not change the returned module
    r.learn(4 * 8 * SMALL_CFG.num_steps, progress=False)
    with torch.no_grad():
        torch.testing.assert_close(pol(obs), out)

    scripted = torch.jit.script(pol)
    traced = torch.jit.trace(pol, obs)
    torch.testing.assert_close(scripted(obs), out)
    torch.testing.assert_close(traced(obs), out)
    scripted.save(str(tmp_path / "policy.pt"))
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "policy.pt"))(obs), out)

    onnx = pytest.importorskip("onnx")
    path = tmp_path / "policy.onnx"
    torch.onnx.export(pol, (obs,), str(path), input_names=["obs"], output_names=["actions"],
                      dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}}, dynamo=False)  # fmt: skip
    onnx.checker.check_model(onnx.load(str(path)))
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (res,) = sess.run(None, {"obs": obs.numpy()})
    np.testing.assert_allclose(res, out.numpy(), rtol=1e-5, atol=1e-6)


def test_env_stays_usable_after_learn() -> None:
    """The env is stepped outside inference mode, so it can be reset and stepped afterwards."""
    env = small_env()
    r = OnPolicyRunner(env, SMALL_CFG, seed=0)
    r.learn(2 * 8 * SMALL_CFG.num_steps, progress=False)
    obs = env.reset(seed=1)
    for _ in range(25):
        obs, *_ = env.step(r.inference_policy()(obs))
    assert torch.isfinite(obs).all()


def test_load_rejects_a_checkpoint_of_another_task(tmp_path: Path) -> None:
    r = OnPolicyRunner(small_env(), SMALL_CFG, seed=0)
    path = r.save(tmp_path / "c.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["obs_dim"] = 99
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="obs_dim"):
        OnPolicyRunner(small_env(), SMALL_CFG, seed=0).load(path)


# -- the KL bound per update, the learning-rate schedule, the algorithm's own state ----------------


def _first_update(cfg: PPOConfig, seed: int = 0) -> tuple[OnPolicyRunner, dict[str, float]]:
    """One rollout and one update; runners with the same seed collect the same rollout."""
    r = OnPolicyRunner(small_env(num_envs=16), cfg, seed=seed, num_threads=1)
    (stats,) = r.learn(16 * cfg.num_steps, progress=False)
    return r, stats


def test_adaptive_rate_follows_a_paced_kl_target() -> None:
    """After k of K steps the KL should be about desired_kl * k / K. rsl_rl's rule compares every
    reading with the whole desired_kl, so the near-zero KL of an update's first steps raised the
    rate at the start of every update; paced, an on-pace reading leaves it alone."""
    cfg = PPOConfig(desired_kl=0.01, min_learning_rate=1e-5, max_learning_rate=3e-3)
    # 1 of 20 steps done: target 0.0005
    assert paced_learning_rate(1e-3, 0.0005, 1, 20, cfg) == 1e-3  # on pace: unchanged
    assert paced_learning_rate(1e-3, 0.0011, 1, 20, cfg) == pytest.approx(1e-3 / 1.5)
    assert paced_learning_rate(1e-3, 0.0002, 1, 20, cfg) == pytest.approx(1.5e-3)
    # 19 of 20: target 0.0095
    assert paced_learning_rate(1e-3, 0.0095, 19, 20, cfg) == 1e-3
    assert paced_learning_rate(1e-3, 0.03, 19, 20, cfg) == pytest.approx(1e-3 / 1.5)
    # bounds
    assert paced_learning_rate(2.5e-3, 0.0, 5, 20, cfg) == 3e-3
    assert paced_learning_rate(1.2e-5, 1.0, 5, 20, cfg) == 1e-5


def test_update_stops_once_the_kl_bound_is_exceeded() -> None:
    """A narrow policy (std 0.05) and a fixed rate: one step moves it by more than
    kl_stop_ratio * desired_kl, so with the stop the update ends there; without, all steps run."""
    greedy = dict(SMALL_CFG.__dict__, schedule="fixed", learning_rate=3e-3, num_epochs=8,
                  num_minibatches=4, desired_kl=0.01, init_noise_std=0.05)  # fmt: skip
    _, free = _first_update(PPOConfig(**{**greedy, "kl_stop_ratio": 0.0}))
    _, bounded = _first_update(PPOConfig(**{**greedy, "kl_stop_ratio": 2.0}))
    assert free["losses/early_stop"] == 0.0 and free["losses/minibatch_steps"] == 32
    assert bounded["losses/early_stop"] == 1.0
    assert 1 <= bounded["losses/minibatch_steps"] < 32
    assert bounded["losses/approx_kl"] > 0.02  # it stopped because the bound was exceeded


def test_annealed_kl_bound_moves_from_desired_kl_to_desired_kl_final() -> None:
    """desired_kl_final anneals the bound linearly in training progress; the update's early stop
    reads the annealed bound (same greedy update as above: it stops sooner at the end)."""
    cfg = PPOConfig(desired_kl=0.05, desired_kl_final=0.01)
    assert [cfg.kl_target(p) for p in (0.0, 0.5, 1.0, 2.0)] == pytest.approx(
        [0.05, 0.03, 0.01, 0.01]
    )
    assert PPOConfig(desired_kl=0.02).kl_target(0.9) == 0.02  # 0: constant
    late = PPOConfig(desired_kl=0.05, desired_kl_final=0.01, kl_anneal_start=0.5)
    assert [late.kl_target(p) for p in (0.0, 0.5, 0.75, 1.0)] == pytest.approx(
        [0.05, 0.05, 0.03, 0.01]
    )
    with pytest.raises(ValueError, match="ppo.kl_anneal_start"):
        PPOConfig(kl_anneal_start=1.0).validate()
    with pytest.raises(ValueError, match="ppo.desired_kl_final"):
        PPOConfig(desired_kl_final=-0.01).validate()
    greedy = dict(SMALL_CFG.__dict__, schedule="fixed", learning_rate=1e-3, num_epochs=8,
                  num_minibatches=4, desired_kl=0.2, desired_kl_final=0.01, init_noise_std=0.05)  # fmt: skip
    steps = {}
    for progress in (0.0, 1.0):  # same seed: both runners reach the second update identically
        r = OnPolicyRunner(small_env(num_envs=16), PPOConfig(**greedy), seed=1, num_threads=1)
        r.learn(16 * greedy["num_steps"], progress=False)
        r._collect(greedy["num_steps"])
        stats = r.alg.update(progress=progress)
        assert stats["charts/desired_kl"] == pytest.approx(0.2 if progress == 0.0 else 0.01)
        steps[progress] = stats["losses/minibatch_steps"]
    assert steps[1.0] < steps[0.0], steps


def test_update_kl_is_the_kl_of_the_whole_update() -> None:
    """``losses/approx_kl`` is KL(rollout policy || updated policy) over the rollout."""
    r = OnPolicyRunner(small_env(num_envs=16), SMALL_CFG, seed=1, num_threads=1)
    r.learn(16 * SMALL_CFG.num_steps, progress=False)  # normalizers and policy move once
    alg, storage = r.alg, r.alg.storage
    r._collect(SMALL_CFG.num_steps)
    t = storage.step
    obs, old_mean = storage.obs[:t].flatten(0, 1).clone(), storage.means[:t].flatten(0, 1).clone()
    old_std = storage.stds[:t].flatten(0, 1).clone()
    stats = alg.update()
    with torch.no_grad():
        expected = gaussian_kl(old_mean, old_std, r.policy.actor(obs), r.policy.action_std).mean()
    assert stats["losses/approx_kl"] == pytest.approx(float(expected), rel=1e-5)
    assert stats["losses/approx_kl"] > 0.0


def test_adaptive_learning_rate_stays_within_its_bounds() -> None:
    cfg = PPOConfig(**{**SMALL_CFG.__dict__, "learning_rate": 1e-3, "min_learning_rate": 5e-4,
                       "max_learning_rate": 2e-3})  # fmt: skip
    r = OnPolicyRunner(small_env(), cfg, seed=0, num_threads=1)
    lrs: list[float] = []
    real_set = r.alg.set_learning_rate

    def spy(lr: float) -> None:
        lrs.append(lr)
        real_set(lr)

    r.alg.set_learning_rate = spy  # type: ignore[method-assign]
    r.learn(6 * 8 * cfg.num_steps, progress=False)
    assert all(5e-4 <= lr <= 2e-3 for lr in lrs)
    assert len(set(lrs)) > 1, "the adaptive schedule never moved the rate: weak test"


def test_set_learning_rate_rejects_non_finite_values() -> None:
    r = OnPolicyRunner(small_env(), SMALL_CFG, seed=0)
    r.alg.set_learning_rate(2e-4)
    assert r.alg.learning_rate == 2e-4
    assert all(g["lr"] == 2e-4 for g in r.alg.optimizer.param_groups)
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="learning rate"):
            r.alg.set_learning_rate(bad)


def test_config_rejects_non_finite_numbers() -> None:
    for name in ("learning_rate", "clip_ratio", "desired_kl", "kl_stop_ratio"):
        with pytest.raises(ValueError, match=f"ppo.{name}: got inf, expected a finite number"):
            PPOConfig(**{name: float("inf")}).validate()
    with pytest.raises(ValueError, match="ppo.kl_stop_ratio"):
        PPOConfig(kl_stop_ratio=0.5).validate()


def test_ppo_state_dict_round_trip() -> None:
    a = OnPolicyRunner(small_env(), SMALL_CFG, seed=0, num_threads=1)
    a.learn(3 * 8 * SMALL_CFG.num_steps, progress=False)
    state = a.alg.state_dict()
    assert set(state) == {"model", "optimizer", "reward_normalizer", "learning_rate"}
    assert float(a.alg.reward_normalizer.ret.abs().sum()) > 0.0, "no running return: weak test"

    b = OnPolicyRunner(small_env(), SMALL_CFG, seed=5, num_threads=1)
    b.alg.load_state_dict(state)
    for k, v in a.policy.state_dict().items():
        assert torch.equal(v, b.policy.state_dict()[k]), k
    assert b.alg.learning_rate == a.alg.learning_rate
    assert all(g["lr"] == a.alg.learning_rate for g in b.alg.optimizer.param_groups)
    sa, sb = a.alg.optimizer.state_dict()["state"], b.alg.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(
        torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa
    )
    for k, v in a.alg.reward_normalizer.state_dict().items():
        assert torch.equal(v, b.alg.reward_normalizer.state_dict()[k]), k

    c = OnPolicyRunner(small_env(), SMALL_CFG, seed=5, num_threads=1)
    c.alg.load_state_dict(state, new_episodes=True)  # statistics kept, running returns restart
    assert float(c.alg.reward_normalizer.ret.abs().sum()) == 0.0
    assert float(c.alg.reward_normalizer.scale()) == float(a.alg.reward_normalizer.scale())
