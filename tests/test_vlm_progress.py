"""Progress models: prompt interpolation math, antisymmetric pairwise deltas, and learned models
that order held-out cartpole swing-up frames by time (value-order correlation)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from rewardlab.envs import make_env
from rewardlab.vlm_reward.base import make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.progress import (
    PairwiseProgress,
    ProgressModel,
    PromptProgress,
    interpolation_progress,
    load_progress_model,
    save_progress_model,
    time_labels,
    train_pairwise_progress,
    train_progress_model,
)


@pytest.mark.unit
def test_interpolation_progress_hand_computed():
    s, g = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.6, 0.8], [2.0, -1.0]])
    # (x - s).(g - s) / |g - s|^2 with g - s = (-1, 1), |.|^2 = 2
    expected = [0.0, 1.0, 0.5, (0.4 + 0.8) / 2, 0.0]  # last: (-1 - 1)/2 = -1 -> clipped to 0
    assert interpolation_progress(x, s, g).tolist() == pytest.approx(expected)
    assert interpolation_progress(x[-1:], s, g, clip=False).tolist() == pytest.approx([-1.0])
    with pytest.raises(ValueError, match="coincide"):
        interpolation_progress(x, s, s)


@pytest.mark.unit
def test_prompt_progress_with_a_toy_embedding_model():
    # A stand-in embedding model whose meaning we know: red frames embed near "start",
    # green frames near "goal".
    texts = {"start": torch.tensor([1.0, 0.0, 0.0]), "goal": torch.tensor([0.0, 1.0, 0.0])}

    def enc_img(frames):
        return frames.float().mean((1, 2))  # mean RGB

    pp = PromptProgress(enc_img, lambda ps: torch.stack([texts[p] for p in ps]), ["start"],
                        ["goal"], image_size=8)  # fmt: skip
    frames = torch.zeros(3, 8, 8, 3, dtype=torch.uint8)
    frames[0, ..., 0] = 255
    frames[1, ..., 1] = 255
    frames[2, ..., 0] = frames[2, ..., 1] = 255
    assert pp.score(frames).tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert pp.progress_like


@pytest.mark.unit
def test_pairwise_delta_is_antisymmetric_and_zero_on_itself():
    torch.manual_seed(0)
    model = PairwiseProgress(image_size=16, width=4, feat=8)
    a = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    b = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    d_ab, d_ba = model.delta(a, b), model.delta(b, a)
    assert torch.equal(d_ab, -d_ba)
    assert torch.equal(model.delta(a, a), torch.zeros(5))
    assert bool((d_ab.abs() < 1).all())
    with pytest.raises(ValueError, match="need at least 2"):
        time_labels(1)


@pytest.mark.unit
def test_progress_head_over_frozen_embeddings(tmp_path):
    # A frozen encoder we understand (mean colour); episodes brighten over time, so the head
    # must learn "brighter = later" from time labels alone.
    def encoder(frames):
        return frames.float().mean((1, 2)) / 255.0

    g = torch.Generator().manual_seed(0)

    def episode(t_len: int) -> torch.Tensor:
        base = torch.randint(0, 60, (3,), generator=g)
        v = (base[None, :] + torch.linspace(0, 180, t_len)[:, None]).clamp(0, 255)
        return v.to(torch.uint8)[:, None, None, :].expand(-1, 8, 8, 3).contiguous()

    model = ProgressModel(image_size=8, embed_dim=3)
    model.set_encoder(encoder, image_size=8)
    model = train_progress_model(
        [episode(20) for _ in range(8)], model, epochs=60, lr=3e-3, log=None
    )
    held = episode(15)
    voc = spearmanr(model.score(held).numpy(), range(15)).statistic
    assert voc > 0.95, voc
    save_progress_model(model, tmp_path / "head.pt")
    back = load_progress_model(tmp_path / "head.pt")
    with pytest.raises(RuntimeError, match="set_encoder"):
        back.score(held)
    back.set_encoder(encoder, image_size=8)
    assert torch.allclose(back.score(held), model.score(held))
    with pytest.raises(ValueError, match="CNN on pixels"):
        ProgressModel().set_encoder(encoder, 8)


def _swingup_episodes(n: int, seed: int, steps: int = 24, size: int = 64) -> list[torch.Tensor]:
    """Scripted successful swing-ups, rendered: the pole goes from hanging (pi) to upright (0)
    along a noisy monotone path while the cart wanders. A construction for a test (set qpos and
    render), not a policy's rollouts."""
    env = make_env("cartpole_swingup", num_envs=1, render_size=(size, size), nthread=1)
    env.reset(seed=seed)
    g = torch.Generator().manual_seed(seed)
    episodes = []
    for _ in range(n):
        side = 1.0 if torch.rand((), generator=g) < 0.5 else -1.0
        inc = torch.rand(steps - 1, generator=g) + 0.2
        path = torch.cat([torch.zeros(1), torch.cumsum(inc, 0)])
        angle = side * math.pi * (1 - path / path[-1])
        cart = torch.cumsum((torch.rand(steps, generator=g) - 0.5) * 0.15, 0)
        frames = []
        for a, c in zip(angle.tolist(), cart.tolist(), strict=True):
            env.sim.qpos[0, 0], env.sim.qpos[0, 1] = c, a
            frames.append(env.render([0])[0])
        episodes.append(torch.stack(frames))
    env.close()
    return episodes


@pytest.mark.slow
def test_learned_progress_models_order_held_out_episodes(tmp_path):
    train, held_out = _swingup_episodes(10, seed=0), _swingup_episodes(4, seed=1)
    model = train_progress_model(train, epochs=15, log=None)
    pair = train_pairwise_progress(train, epochs=8, pairs_per_epoch=1024, log=None)
    save_progress_model(model, tmp_path / "progress.pt")
    save_progress_model(pair, tmp_path / "pairwise.pt")
    scorer = make_scorer(
        VLMConfig(scorer="progress", progress_checkpoint=str(tmp_path / "progress.pt"))
    )
    pair_back = load_progress_model(tmp_path / "pairwise.pt")
    assert scorer.progress_like and pair_back.progress_like
    for ep in held_out:
        t = torch.arange(ep.shape[0])
        s = scorer.score(ep)
        assert bool(((s >= 0) & (s <= 1)).all())
        voc = spearmanr(s.numpy(), t.numpy()).statistic
        assert voc > 0.8, f"progress model VOC {voc:.3f}"
        # pairwise: progress from the episode's own first frame
        d = pair_back.delta(ep[:1].expand_as(ep), ep)
        voc_pair = spearmanr(d.numpy(), t.numpy()).statistic
        assert voc_pair > 0.8, f"pairwise VOC {voc_pair:.3f}"
    # the reloaded pairwise model scores relative to its stored reference
    assert torch.allclose(pair_back.score(held_out[0]), pair.score(held_out[0]))


@pytest.mark.slow
def test_prompt_progress_with_the_shipped_tiny_clip():
    """CLIP prompt interpolation through the real open_clip path with the project's tiny CLIP:
    start prompt 'hanging down', goal prompt 'upright', on scripted swing-ups."""
    from rewardlab.vlm_reward.prompts import with_task_prompts

    cfg = VLMConfig(scorer="progress", baseline_prompts=("the pole is hanging down",))
    scorer = make_scorer(with_task_prompts(cfg, "cartpole_swingup"))
    assert isinstance(scorer, PromptProgress) and scorer.progress_like
    for ep in _swingup_episodes(4, seed=1, size=scorer.image_size):
        s = scorer.score(ep)
        voc = spearmanr(s.numpy(), range(ep.shape[0])).statistic
        assert voc > 0.85, f"prompt-interpolation VOC {voc:.3f}"
        assert float(s[-3:].mean()) > float(s[:3].mean()) + 0.4


@pytest.mark.unit
def test_vlm_progress_command_trains_on_recorded_successes(tmp_path, capsys):
    from rewardlab.cli import main
    from rewardlab.vlm_reward.evaluation import record_episodes

    record_episodes("cartpole_swingup", 1, seed=0, scripts=["swingup", "wrong_pump"]).save(
        tmp_path / "episodes.npz"
    )
    out = tmp_path / "progress.pt"
    args = [f"episodes_file={tmp_path / 'episodes.npz'}", f"out={out}", "epochs=1"]
    assert main(["vlm-progress", *args, "image_size=16"]) == 0
    text = capsys.readouterr().out
    assert "1 successful cartpole_swingup episodes" in text and "vlm.progress_checkpoint=" in text
    scorer = make_scorer(VLMConfig(scorer="progress", progress_checkpoint=str(out)))
    assert scorer.image_size == 16
    assert scorer.score(torch.zeros(2, 16, 16, 3, dtype=torch.uint8)).shape == (2,)
    record_episodes("cartpole_swingup", 1, seed=0, scripts=["wrong_pump"]).save(
        tmp_path / "failures.npz"
    )
    bad = [f"episodes_file={tmp_path / 'failures.npz'}", f"out={out}"]
    assert main(["vlm-progress", *bad]) != 0
    assert "no episode ends in success" in capsys.readouterr().err
