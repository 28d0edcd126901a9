"""RL-VLM-F preference learning: Bradley-Terry loss, ensemble, query selection, and a reward
model that learns cartpole's 'upright' ranking from a judge answering over real HTTP."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from openai_server import ChatRequest, OpenAIServer

from rewardlab.envs import make_env
from rewardlab.rewards.llm import ChatClient, LLMConfig, LLMError
from rewardlab.vlm_reward.base import make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.judge import VLMJudge
from rewardlab.vlm_reward.preference import PreferenceScorer
from rewardlab.vlm_reward.preference_data import (
    PreferenceDataset,
    collect_preferences,
    disagreement,
    select_queries,
)
from rewardlab.vlm_reward.preference_model import (
    RewardEnsemble,
    bradley_terry_loss,
    frames_to_input,
    save_ensemble,
)
from rewardlab.vlm_reward.preference_online import OnlinePreferenceScorer
from rewardlab.vlm_reward.preference_training import train_ensemble


@pytest.mark.unit
def test_bradley_terry_loss_hand_computed():
    r_a = torch.tensor([0.0, 0.0, 2.0, 1.0])
    r_b = torch.tensor([1.0, 1.0, 2.0, 5.0])
    labels = torch.tensor([1.0, 0.0, 0.5, -1.0])
    # -log sigmoid(1) = log(1 + e^-1); -log(1 - sigmoid(1)) = log(1 + e); soft 0.5 at equal: log 2
    expected = [math.log1p(math.exp(-1)), math.log1p(math.e), math.log(2.0), 0.0]
    per = bradley_terry_loss(r_a, r_b, labels, reduction="none")
    assert per.tolist() == pytest.approx(expected, abs=1e-6)
    # mean over the 3 decided pairs only (the unsure one is dropped)
    assert float(bradley_terry_loss(r_a, r_b, labels)) == pytest.approx(sum(expected) / 3)
    # clips: reward of a clip = sum over its frames
    clip_a, clip_b = torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, -1.0]])
    assert float(bradley_terry_loss(clip_a, clip_b, torch.tensor([1.0]))) == pytest.approx(
        math.log1p(math.exp(-0.0))
    )
    with pytest.raises(ValueError, match=r"labels: got \[2.0\]"):
        bradley_terry_loss(r_a[:1], r_b[:1], torch.tensor([2.0]))
    with pytest.raises(ValueError, match="must agree"):
        bradley_terry_loss(r_a, r_b[:2], labels)


@pytest.mark.unit
def test_disagreement_selection_picks_the_most_contested_pairs():
    ens = RewardEnsemble(members=3, image_size=8, width=4, seed=1)
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (40, 8, 8, 3), dtype=torch.uint8, generator=g)
    ia, ib = select_queries(ens, pool, 5, "disagreement", oversample=4, generator=g)
    assert ia.shape == (5,) and bool((ia != ib).all())
    # the same draw, scored by hand: the chosen pairs are the top-5 of all 20 candidates
    g2 = torch.Generator().manual_seed(0)
    torch.randint(0, 256, (40, 8, 8, 3), dtype=torch.uint8, generator=g2)
    ca = torch.randint(0, 40, (20,), generator=g2)
    cb = (ca + torch.randint(1, 40, (20,), generator=g2)) % 40
    d = disagreement(ens, frames_to_input(pool[ca], 8), frames_to_input(pool[cb], 8))
    top = set(torch.topk(d, 5).indices.tolist())
    assert {(int(a), int(b)) for a, b in zip(ia, ib, strict=True)} == {
        (int(ca[i]), int(cb[i])) for i in top
    }
    with pytest.raises(ValueError, match="uniform or disagreement"):
        select_queries(ens, pool, 2, "entropy")


@pytest.mark.unit
def test_dataset_roundtrip_and_errors(tmp_path):
    ds = PreferenceDataset.empty((4, 4, 3))
    ds.extend(torch.zeros(2, 4, 4, 3), torch.ones(2, 4, 4, 3), torch.tensor([0, -1]))
    ds.save(tmp_path / "prefs.pt")
    back = PreferenceDataset.load(tmp_path / "prefs.pt")
    assert len(back) == 2 and back.labels.tolist() == [0.0, -1.0]
    with pytest.raises(ValueError, match="3 pairs but 2 labels"):
        PreferenceDataset(torch.zeros(3, 4, 4, 3), torch.zeros(3, 4, 4, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="every label is unsure"):
        train_ensemble(
            RewardEnsemble(1, 8, 4),
            PreferenceDataset(
                torch.zeros(1, 8, 8, 3, dtype=torch.uint8),
                torch.zeros(1, 8, 8, 3, dtype=torch.uint8),
                torch.tensor([-1.0]),
            ),
            log=None,
        )
    with pytest.raises(ValueError, match="preference_checkpoint: required"):
        make_scorer(VLMConfig(scorer="preference"))
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        make_scorer(VLMConfig(scorer="preference", preference_checkpoint=str(tmp_path / "nope.pt")))


# -------------------------------------------------------------------------------------------------
# The learning test: cartpole frames, a judge that 'sees' the pole angle, a BT ensemble.


def _cartpole_frames(n: int, seed: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rendered cartpole frames with random pole angles and cart positions."""
    env = make_env("cartpole_swingup", num_envs=1, render_size=(size, size), nthread=1)
    env.reset(seed=seed)
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    pos = (torch.rand(n, generator=g) * 2 - 1) * 1.0
    frames = []
    for a, p in zip(angles.tolist(), pos.tolist(), strict=True):
        env.sim.qpos[0, 0], env.sim.qpos[0, 1] = p, a
        frames.append(env.render([0])[0])
    env.close()
    return torch.stack(frames), angles


def _key(pixels) -> str:
    return hashlib.sha1(bytes(memoryview(pixels).cast("B"))).hexdigest()


@pytest.mark.slow
def test_ensemble_learns_upright_ranking_from_http_judge(tmp_path):
    pool, angles = _cartpole_frames(200, seed=0)
    held_out, held_angles = _cartpole_frames(60, seed=1)
    # The judge's hidden knowledge: which frame shows which pole angle. It decodes the PNGs
    # it is sent and looks them up -- the reward model only ever sees pixels and labels.
    uprightness = {
        _key(f.numpy().copy()): math.cos(a) for f, a in zip(pool, angles.tolist(), strict=True)
    }

    def judge_responder(req: ChatRequest) -> str:
        assert "pole" in req.text()
        ups = []
        for px in req.pixels():
            ups.append(uprightness[_key(px.copy())])
        a, b = ups
        if abs(a - b) < 0.02:
            return "They look the same to me.\n-1"
        return f"Image {1 if a > b else 2} has the pole more upright.\n{0 if a > b else 1}"

    with OpenAIServer(judge_responder) as srv:
        client = ChatClient(
            LLMConfig(base_url=srv.base_url, model="test-model", max_retries=0),
            log=lambda line: None,
        )
        judge = VLMJudge(client, goal="the pole is balanced upright above the cart", concurrency=4)
        ds = collect_preferences(judge, pool, num_queries=320, batch=64, seed=0, log=None)
        assert len(srv.requests) == 320
    assert len(ds) == 320 and int((ds.labels == -1).sum()) > 0  # some pairs were too close
    ens = RewardEnsemble(members=3, image_size=64, seed=0)
    res = train_ensemble(ens, ds, epochs=8, log=None)
    assert res.accuracy > 0.9, res
    save_ensemble(ens, tmp_path / "reward.pt")
    scorer = make_scorer(
        VLMConfig(scorer="preference", preference_checkpoint=str(tmp_path / "reward.pt"))
    )
    assert isinstance(scorer, PreferenceScorer) and scorer.image_size == 64
    s = scorer.score(held_out)
    up = torch.cos(held_angles)
    i, j = torch.triu_indices(60, 60, 1)
    decided = (up[i] - up[j]).abs() > 0.05
    acc = float(((s[i] > s[j]) == (up[i] > up[j]))[decided].float().mean())
    print(f"held-out pair ordering accuracy {acc:.3f}")
    assert acc > 0.85, f"held-out pair ordering accuracy {acc:.3f}"


@pytest.mark.unit
def test_ensemble_over_frozen_embeddings_learns_a_ranking():
    # A frozen encoder whose meaning we know (mean colour); the MLP members learn "redder is
    # better" from labels alone, and the scorer encodes frames the same way.
    def encoder(frames):
        return frames.float().mean((1, 2)) / 255.0

    g = torch.Generator().manual_seed(0)
    colours = torch.randint(0, 256, (120, 3), generator=g, dtype=torch.uint8)
    frames = colours[:, None, None, :].expand(-1, 4, 4, 3).contiguous()
    ia = torch.arange(0, 120, 2)
    ib = ia + 1
    red = colours[:, 0].float()
    labels = (red[ib] > red[ia]).float()
    ds = PreferenceDataset(frames[ia], frames[ib], labels)
    ens = RewardEnsemble(members=2, embed_dim=3, seed=0)
    res = train_ensemble(ens, ds, epochs=60, lr=3e-3, encoder=encoder, log=None)
    assert res.accuracy > 0.9
    scorer = PreferenceScorer(ens, encoder=encoder, image_size=4)
    test = torch.tensor([[20, 128, 128], [120, 128, 128], [240, 128, 128]], dtype=torch.uint8)
    s = scorer.score(test[:, None, None, :].expand(-1, 4, 4, 3).contiguous())
    assert s[0] < s[1] < s[2]
    with pytest.raises(ValueError, match="needs its encoder"):
        PreferenceScorer(ens)


@pytest.mark.unit
def test_vlm_prefs_command_end_to_end_and_resume(tmp_path, capsys):
    from rewardlab.cli import main

    def brighter(req: ChatRequest) -> str:
        a, b = (px.mean() for px in req.pixels())
        return "1" if b > a else "0"

    out = tmp_path / "prefs"
    with OpenAIServer(brighter) as srv:
        common = [
            "task=cartpole_swingup",
            f"out={out}",
            "pool_size=24",
            "batch=8",
            "members=2",
            "image_size=16",
            "epochs=2",
            f"vlm.judge_base_url={srv.base_url}",
            "vlm.judge_model=test-model",
            "vlm.judge_image_size=32",
        ]
        assert main(["vlm-prefs", *common, "queries=16"]) == 0
        assert len(srv.requests) == 16
        # run again with a larger budget: frames are reused, only the new pairs are asked
        assert main(["vlm-prefs", *common, "queries=24", "rounds=2"]) == 0
        assert len(srv.requests) == 24
    text = capsys.readouterr().out
    assert "continuing from 16 labelled pairs" in text
    assert "vlm.preference_checkpoint=" in text
    assert PreferenceDataset.load(out / "prefs.pt").frames_a.shape == (24, 16, 16, 3)
    assert torch.load(out / "pool.pt", weights_only=True).shape == (24, 32, 32, 3)
    scorer = make_scorer(
        VLMConfig(scorer="preference", preference_checkpoint=str(out / "reward.pt"))
    )
    assert scorer.score(torch.zeros(3, 32, 32, 3, dtype=torch.uint8)).shape == (3,)
    assert main(["vlm-prefs", f"out={out}", "queries=5"]) != 0
    assert "task: required" in capsys.readouterr().err


@pytest.mark.unit
def test_online_preference_loop_labels_trains_and_resumes(tmp_path):
    """RL-VLM-F's online loop inside the scorer: frames scored during training are sampled,
    labelled by the judge over HTTP, the ensemble retrains, and a new run continues."""

    def brighter(req: ChatRequest) -> str:
        a, b = (px.mean() for px in req.pixels())
        return "Image 2 is brighter.\n1" if b > a else "Image 1 is brighter.\n0"

    def solid_batch(n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        v = torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8)
        return v[:, None, None, None].expand(-1, 16, 16, 3).contiguous()

    probe = torch.tensor([10, 90, 170, 250], dtype=torch.uint8)[:, None, None, None]
    probe = probe.expand(-1, 16, 16, 3).contiguous()
    with OpenAIServer(brighter) as srv:
        cfg = VLMConfig(
            scorer="preference",
            goal_prompts=("the image is bright",),
            judge_base_url=srv.base_url,
            judge_model="test-model",
            judge_image_size=16,
            preference_online=True,
            preference_dir=str(tmp_path / "online"),
            preference_queries=32,
            preference_every=64,
            preference_max_queries=64,
            preference_background=False,
        )
        scorer = make_scorer(cfg)
        assert scorer.image_size == 16 and not scorer.progress_like
        assert scorer.score(solid_batch(60, 0)).abs().sum() == 0  # no labels yet: no reward
        assert len(srv.requests) == 0
        scorer.score(solid_batch(10, 1))  # 70 frames seen: round 1 (uniform pairs)
        assert len(srv.requests) == 32 and scorer.trained and scorer.rounds == 1
        scorer.score(solid_batch(64, 2))  # round 2: pairs chosen by disagreement
        assert len(srv.requests) == 64 and scorer.rounds == 2
        s = scorer.score(probe)
        assert bool((s[1:] > s[:-1]).all()), s  # brighter scores higher
        scorer.score(solid_batch(200, 3))  # budget of 64 pairs spent: no more requests
        assert len(srv.requests) == 64
        assert (tmp_path / "online" / "prefs.pt").is_file()
        again = make_scorer(cfg)  # a new run over the same folder continues
        assert again.labelled == 64 and again.trained
        assert torch.allclose(again.score(probe), scorer.score(probe), atol=1e-5)
        assert len(srv.requests) == 64


@pytest.mark.unit
def test_online_rounds_in_background_and_failed_rounds(tmp_path):
    from openai_server import Fault

    def darker(req: ChatRequest) -> str:
        a, b = (px.mean() for px in req.pixels())
        return "0" if a < b else "1"

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (80,), generator=g, dtype=torch.uint8)
    frames = frames[:, None, None, None].expand(-1, 8, 8, 3).contiguous()
    lines: list[str] = []
    with OpenAIServer(darker) as srv:
        client = ChatClient(
            LLMConfig(base_url=srv.base_url, model="test-model", max_retries=0),
            log=lambda line: None,
        )
        judge = VLMJudge(client, goal="the image is dark", concurrency=4)
        scorer = OnlinePreferenceScorer(
            judge, RewardEnsemble(2, image_size=8, width=4), image_size=8, queries=16,
            every=40, epochs=10, background=True, max_failures=2, log=lines.append,
        )  # fmt: skip
        assert scorer.score(frames[:50]).abs().sum() == 0  # round 1 starts on the worker
        scorer.wait()
        assert len(srv.requests) == 16 and scorer.trained and scorer.rounds == 1
        # the server fails: the round is logged, the run goes on with the old ensemble
        srv.add_faults(*([Fault(400)] * 16))
        before = scorer.score(frames[:4])
        scorer.score(frames[40:80])  # 94 frames seen: round 2 starts and fails
        scorer.wait()
        assert scorer.failures == 1 and scorer.rounds == 1
        assert "round failed (1/2 in a row)" in lines[-1]
        assert torch.equal(scorer.score(frames[:4]), before)
        scorer.score(frames[:40])  # 138 frames: round 3 fails too, max_failures reached: raised
        with pytest.raises(LLMError, match="HTTP 400"):
            scorer.wait()
        scorer.close()
