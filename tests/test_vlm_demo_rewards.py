"""Rewards from demonstrations: the perceptual scorer (step split, feature selection, step
Gaussians) and the OT scorer (batched Sinkhorn), on constructed features with known answers and
with the shipped tiny CLIP on recorded arm_reach demonstrations; bad inputs give one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.core.config import ConfigError, build
from rewardlab.envs import make_env
from rewardlab.vlm_reward.base import make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.evaluation import record_episodes
from rewardlab.vlm_reward.ot_reward import (
    OTReward,
    finetune_projection,
    load_demo_embeddings,
    ot_distances,
    ot_frame_costs,
    save_demo_embeddings,
    sinkhorn,
    soft_min_cost,
)
from rewardlab.vlm_reward.perceptual import (
    PerceptualFit,
    equal_split,
    fit_perceptual,
    variance_split,
)
from rewardlab.vlm_reward.training import wrap_env


def _staged(t_len: int, gen: torch.Generator, dim: int = 16, cuts=(0.3, 0.55, 0.8)) -> torch.Tensor:
    """A constructed demonstration: 4 stages at fractions ``cuts`` of the time, each stage
    moving its own 2 feature dimensions; the other dimensions are noise."""
    t = torch.arange(t_len) / t_len
    stage = torch.bucketize(t, torch.tensor(cuts))
    x = 0.05 * torch.randn(t_len, dim, generator=gen)
    for s in range(4):
        x[stage == s, 2 * s : 2 * s + 2] += 1.0
    return x


@pytest.mark.unit
def test_variance_split_finds_the_stages_and_equal_split_cuts_evenly() -> None:
    gen = torch.Generator().manual_seed(0)
    x = _staged(100, gen).numpy()
    cut = variance_split(x, 4)
    np.testing.assert_array_equal(np.flatnonzero(np.diff(cut)) + 1, [31, 56, 81])  # t > cut
    assert (np.diff(cut) >= 0).all() and cut[0] == 0 and cut[-1] == 3
    np.testing.assert_array_equal(np.bincount(equal_split(100, 4)), [25, 25, 25, 25])
    with pytest.raises(ValueError, match="3 frames cannot be cut into 4 steps"):
        variance_split(x[:3], 4)


@pytest.mark.unit
def test_perceptual_fit_selects_each_steps_features_and_ranks_late_frames_higher(
    tmp_path: Path,
) -> None:
    gen = torch.Generator().manual_seed(1)
    demos = [_staged(int(n), gen) for n in (90, 110, 100)]
    fit = fit_perceptual(demos, steps=4, features=2, split="variance")
    # step i is told apart by the 2 dimensions its stage moves
    assert [sorted(f.tolist()) for f in fit.features] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    held_out = _staged(120, gen)
    s = fit.score(held_out)
    assert float(s[:20].mean()) < 0.1 and float(s[-20:].mean()) > 0.9
    assert float(np.corrcoef(s.numpy(), np.arange(120))[0, 1]) > 0.85
    w = fit.score(held_out, "weighted")
    assert float(w[-20:].mean()) > 0.5 > 0.1 > float(w[:20].mean())  # 2^3/15 vs 1/15
    # the fit is data: saved and loaded back as arrays, identical scores
    fit.save(tmp_path / "fit.npz")
    back = PerceptualFit.load(tmp_path / "fit.npz")
    torch.testing.assert_close(back.score(held_out), s)
    assert back.split == "variance" and back.demos == 3
    with pytest.raises(ValueError, match="expected 1..16"):
        fit_perceptual(demos, features=17)
    with pytest.raises(ValueError, match="perceptual_split: got 'kmeans'"):
        fit_perceptual(demos, split="kmeans")


@pytest.mark.unit
def test_sinkhorn_plans_have_the_marginals_and_a_demo_matches_itself_at_no_cost() -> None:
    gen = torch.Generator().manual_seed(2)
    cost = torch.rand(3, 7, 5, generator=gen)
    col = torch.ones(3, 5, dtype=torch.bool)
    col[1, 3:] = False  # a shorter second "demonstration", padded
    plan = sinkhorn(cost, 0.05, 300, col_mask=col)
    torch.testing.assert_close(plan.sum(2), torch.full((3, 7), 1 / 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan[0].sum(0), torch.full((5,), 1 / 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(plan[1].sum(0)[:3], torch.full((3,), 1 / 3), atol=1e-5, rtol=0)
    assert float(plan[1, :, 3:].abs().max()) == 0.0
    # a demonstration against itself: the plan is the identity matching, the cost ~0
    demo = torch.nn.functional.normalize(torch.randn(40, 16, generator=gen), dim=-1)
    other = torch.nn.functional.normalize(torch.randn(30, 16, generator=gen), dim=-1)
    costs, dist = ot_frame_costs(demo, [demo, other], epsilon=0.01, iterations=200)
    assert float(dist[0]) < 1e-3 and float(costs[0].abs().max()) < 1e-2
    assert float(dist[1]) > 0.5
    assert float(soft_min_cost(demo, demo, 0.01).max()) < 1e-2


@pytest.mark.unit
def test_preference_alignment_learns_to_ignore_a_nuisance_feature() -> None:
    # Embeddings [task feature, nuisance, 6 noise dims]: the demonstrations have task feature
    # +1 and nuisance +2. Preferred episodes (return 1) share the task feature but not the
    # nuisance (-2); the others share the nuisance but not the task feature. In raw cosine
    # cost the others are closer; after alignment the OT distance orders them as the labels.
    gen = torch.Generator().manual_seed(3)

    def episode(task: float, nuisance: float, n: int = 20) -> torch.Tensor:
        x = 0.1 * torch.randn(n, 8, generator=gen)
        x[:, 0] += task
        x[:, 1] += nuisance
        return x

    demos = [episode(1.0, 2.0) for _ in range(2)]
    episodes = [episode(1.0, -2.0) for _ in range(4)] + [episode(-1.0, 2.0) for _ in range(4)]
    returns = [1.0] * 4 + [0.0] * 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only spin on a busy machine
    try:
        w, stats = finetune_projection(demos, episodes, returns, pairs=24, epochs=20, lr=0.1)
    finally:
        torch.set_num_threads(threads)
    assert stats["accuracy_before"] < 0.2 and stats["accuracy_after"] == 1.0, stats
    d_raw = ot_distances(episodes, demos).min(-1).values
    d_w = ot_distances([e @ w for e in episodes], [d @ w for d in demos]).min(-1).values
    assert float(d_raw[:4].mean()) > float(d_raw[4:].mean())
    assert float(d_w[:4].max()) < float(d_w[4:].min())
    with pytest.raises(ValueError, match="at least 2 episodes with different returns"):
        finetune_projection(demos, episodes, [1.0] * 8, pairs=4)


@pytest.mark.slow
def test_demo_scorers_with_the_shipped_tiny_clip_on_arm_reach(tmp_path: Path) -> None:
    es = record_episodes("arm_reach", 3, steps=80, scripts=["reach", "home"], seed=0)
    es.save(tmp_path / "demos.npz")
    held = record_episodes("arm_reach", 2, steps=80, scripts=["reach"], seed=5)
    held.save(tmp_path / "held.npz")
    demos = str(tmp_path / "demos.npz")

    perceptual = make_scorer(VLMConfig(device="cpu", scorer="perceptual", demos=demos))
    assert perceptual.progress_like and perceptual.fit.demos == 3
    ot = make_scorer(VLMConfig(device="cpu", scorer="ot", demos=demos, ot_match="trajectory"))
    assert isinstance(ot, OTReward) and len(ot.demos) == 3
    from rewardlab.vlm_reward.rendering import TiledRenderer

    renderer = TiledRenderer.for_task("arm_reach", perceptual.image_size)
    try:
        for i in range(2):  # held-out successful reaches: late frames above early ones
            n = int(held.length[i])
            frames = renderer.render_rows({f: v[i, :n] for f, v in held.physics.items()})
            s = perceptual.score(frames)
            assert float(s[-10:].mean()) > float(s[:10].mean()) + 0.3, s
        # a demonstration against itself: ~no cost (small epsilon: the plan is the identity);
        # against the arm staying home, far more
        n = int(es.length[0])
        own = renderer.render_rows({f: v[0, :n] for f, v in es.physics.items()})
        home = renderer.render_rows({f: v[3, : int(es.length[3])] for f, v in es.physics.items()})
        emb, emb_home = ot.encoder(own), ot.encoder(home)
        _, d_self = ot_frame_costs(emb, [emb], epsilon=0.002, iterations=300)
        _, d_home = ot_frame_costs(emb_home, [emb], epsilon=0.002, iterations=300)
        assert float(d_self[0]) < 2e-3 and float(d_home[0]) > 10 * float(d_self[0]), (d_self, d_home)  # fmt: skip
        # the scorer (epsilon 0.05, all 3 demonstrations): the demonstration scores above home
        assert float(ot.score(own).mean()) > float(ot.score(home).mean()) + 0.05
    finally:
        renderer.close()

    # fitted files stand in for the episode set
    perceptual.fit.save(tmp_path / "fit.npz")
    again = make_scorer(VLMConfig(device="cpu", scorer="perceptual", demos=str(tmp_path / "fit.npz")))  # fmt: skip
    torch.testing.assert_close(again.score(own), perceptual.score(own))
    save_demo_embeddings(ot.raw_demos, tmp_path / "ot.npz", ot.projection)
    back, w = load_demo_embeddings(tmp_path / "ot.npz")
    assert [d.shape for d in back] == [d.shape for d in ot.demos]
    torch.testing.assert_close(w, torch.eye(w.shape[0]))
    # preference alignment from the file's episodes (labels: the task's returns) runs through
    # the config and gives a map other than the identity
    tuned = make_scorer(VLMConfig(device="cpu", scorer="ot", demos=demos, ot_preference_pairs=8))
    assert not torch.allclose(tuned.projection, torch.eye(tuned.projection.shape[0]))
    with pytest.raises(ValueError, match=r"vlm.demos: .*fit.npz holds 'rewardlab-perceptual', expected a 'rewardlab-ot-demos' fit"):  # fmt: skip
        make_scorer(VLMConfig(device="cpu", scorer="ot", demos=str(tmp_path / "fit.npz")))

    # training scores one step at a time: trajectory matching is refused, frame matching wraps
    env = make_env("arm_reach", num_envs=2, seed=0, nthread=1)
    with pytest.raises(ValueError, match="use vlm.ot_match=frame"):
        wrap_env(env, "vlm", VLMConfig(device="cpu", scorer="ot", demos=demos, ot_match="trajectory"))  # fmt: skip
    wrapped = wrap_env(env, "vlm", VLMConfig(device="cpu", scorer="perceptual", demos=demos))
    wrapped.reset(seed=0)
    _, r, *_ = wrapped.step(torch.zeros(2, wrapped.action_dim))
    assert r.shape == (2,) and torch.isfinite(r).all()
    wrapped.close()

    # no successful episode in the file: one line naming the key
    dataclasses.replace(es, success=np.zeros_like(es.success)).save(tmp_path / "fail.npz")
    with pytest.raises(ValueError, match="vlm.demos: .*fail.npz has no episode that ends in success"):  # fmt: skip
        make_scorer(VLMConfig(device="cpu", scorer="perceptual", demos=str(tmp_path / "fail.npz")))  # fmt: skip


@pytest.mark.unit
def test_bad_demo_settings_give_one_line(tmp_path: Path) -> None:
    for scorer in ("perceptual", "ot"):
        with pytest.raises(ValueError, match=f"vlm.demos: vlm.scorer={scorer} needs demonstrations"):  # fmt: skip
            make_scorer(VLMConfig(device="cpu", scorer=scorer))
        with pytest.raises(FileNotFoundError, match="vlm.demos: .*nope.npz does not exist"):
            make_scorer(VLMConfig(device="cpu", scorer=scorer, demos=str(tmp_path / "nope.npz")))  # fmt: skip
    (tmp_path / "text.npz").write_text("not an npz")
    with pytest.raises(ValueError, match="vlm.demos: .*text.npz is not an .npz file"):
        make_scorer(VLMConfig(device="cpu", scorer="perceptual", demos=str(tmp_path / "text.npz")))  # fmt: skip
    for words, match in (
        ({"perceptual_steps": 1}, "vlm.perceptual_steps: got 1, expected >= 2"),
        (
            {"perceptual_split": "kmeans"},
            "vlm.perceptual_split: got 'kmeans', expected one of equal, variance",
        ),  # fmt: skip
        ({"ot_match": "prefix"}, "vlm.ot_match: got 'prefix', expected one of frame, trajectory"),
        ({"ot_epsilon": 0.0}, "vlm.ot_epsilon: got 0.0, expected a number > 0"),
        ({"demo_episodes": 0}, "vlm.demo_episodes: got 0, expected >= 1"),
    ):
        with pytest.raises(ConfigError, match=match) as err:
            build(VLMConfig, words, "vlm")
        assert "\n" not in str(err.value)
