"""The CLIP path: VLM-RM formula, config validation, model loading (shipped model, local
checkpoints, hub tags offline), the scorer registry, rendering and the training-env wrapper."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.config import train_config_from_dict
from rewardlab.core.config import ConfigError, build
from rewardlab.vlm_reward.base import SCORERS, make_scorer, register_scorer
from rewardlab.vlm_reward.clip_reward import CLIPReward, projection, vlm_rm_reward
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.models import SHIPPED_DIR, ModelLoadError, load_clip, shipped_models

TINY = "rewardlab-tiny-clip"


def cpu_cfg(**kw) -> VLMConfig:
    return VLMConfig(device="cpu", **kw)


# -- the formula, against hand-computed values ---------------------------------------------------

G2, B2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


@pytest.mark.unit
@pytest.mark.parametrize(("alpha", "expected"), [(0.0, 0.6), (0.5, 0.63), (1.0, 0.64)])
def test_vlm_rm_formula_hand_computed(alpha: float, expected: float) -> None:
    # x = (0.6, 0.8), g = (1, 0), b = (0, 1): d = (1, -1), x - g = (-0.4, 0.8)
    # a=0:   |x-g|^2 = 0.8                          -> R = 0.6 (= cos(x, g))
    # a=0.5: P = [[.75,-.25],[-.25,.75]], (x-g)P = (-0.5, 0.7), |.|^2 = 0.74 -> R = 0.63
    # a=1:   P = d d^T / 2, (x-g)P = (-0.6, 0.6), |.|^2 = 0.72             -> R = 0.64
    x = torch.tensor([[3.0, 4.0]])  # normalized inside: (0.6, 0.8)
    r = vlm_rm_reward(x, G2, B2, alpha)
    assert r.shape == (1,)
    assert float(r[0]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.unit
def test_alpha_one_ignores_directions_orthogonal_to_goal_minus_baseline() -> None:
    g, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    x = torch.tensor([[0.0, 0.0, 1.0]])
    # a=0: |x-g|^2 = 2 -> 0; a=1: (x-g)P = (-0.5, 0.5, 0) -> 1 - 0.25 = 0.75
    assert float(vlm_rm_reward(x, g, b, 0.0)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(vlm_rm_reward(x, g, b, 1.0)[0]) == pytest.approx(0.75, abs=1e-12)


@pytest.mark.unit
def test_alpha_zero_is_cosine_similarity_up_to_a_constant() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=gen)
    g = torch.nn.functional.normalize(torch.randn(3, 8, generator=gen), dim=-1).mean(0)
    r = vlm_rm_reward(x, g, torch.zeros(8), 0.0)
    cos = torch.nn.functional.normalize(x.double(), dim=-1) @ g.double()
    const = (1 - g.double().norm() ** 2) / 2
    torch.testing.assert_close(r, cos + const)


@pytest.mark.unit
def test_projection_matrix_and_degenerate_direction() -> None:
    p = projection(torch.tensor([1.0, -1.0]), 0.5)
    torch.testing.assert_close(p, torch.tensor([[0.75, -0.25], [-0.25, 0.75]]))
    with pytest.raises(ValueError, match="baseline_prompts"):
        projection(torch.zeros(4), 0.5)
    torch.testing.assert_close(projection(torch.zeros(3), 0.0), torch.eye(3))


# -- config ----------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"alpha": 1.5}, r"vlm\.alpha: got 1\.5"),
        ({"precision": "fp8"}, r"vlm\.precision: got 'fp8'"),
        ({"frame_stride": 0}, r"vlm\.frame_stride"),
        ({"checkpoint_sha256": "abc"}, r"vlm\.checkpoint_sha256: got 'abc', expected 64 hex"),
        ({"pretrained": "laion2b", "checkpoint": "x.pt"}, r"vlm\.pretrained"),
        ({"goal_prompts": ["ok", " "]}, r"vlm\.goal_prompts: contains an empty prompt"),
        ({"shaping": "maybe"}, r"vlm\.shaping"),
        ({"device": "tpu"}, r"vlm\.device"),
        ({"alpah": 0.5}, r"did you mean 'alpha'"),
    ],
)
def test_bad_vlm_config_names_key_and_value(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build(VLMConfig, data, "vlm")


@pytest.mark.unit
def test_train_config_validates_vlm_section_at_load() -> None:
    with pytest.raises(ConfigError, match=r"vlm\.alpha"):
        train_config_from_dict({"task": "cartpole_balance", "reward": "clip", "vlm": {"alpha": 2}})
    cfg = train_config_from_dict(
        {"task": "cartpole_balance", "reward": "clip", "vlm": {"goal_prompts": ["a pole"]}}
    )
    assert cfg.vlm_config().goal_prompts == ("a pole",)


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_shipped_model_card_matches_files() -> None:
    card = shipped_models()[TINY]
    from rewardlab.core.files import sha256

    assert sha256(SHIPPED_DIR / card["checkpoint"]) == card["checkpoint_sha256"]
    assert (SHIPPED_DIR / card["checkpoint"]).stat().st_size < 8 * 2**20  # "a few MB"
    assert len(card["image_mean"]) == len(card["image_std"]) == 3
    assert json.loads((SHIPPED_DIR / card["model_config"]).read_text())["embed_dim"] > 0


@pytest.mark.unit
def test_shipped_model_loads_through_open_clip_with_its_preprocessing() -> None:
    import open_clip

    clip = load_clip(cpu_cfg())
    card = shipped_models()[TINY]
    assert isinstance(clip.model, open_clip.CLIP)
    assert TINY in open_clip.list_models()  # registered by open_clip.add_model_config
    assert clip.source.startswith("checkpoint:") and clip.image_size == card["image_size"]
    assert clip.mean == pytest.approx(card["image_mean"]) and clip.dtype == torch.float32
    assert not clip.model.training


def _copy_shipped(tmp_path: Path) -> tuple[Path, Path, dict]:
    card = shipped_models()[TINY]
    ckpt = tmp_path / "weights.pt"
    shutil.copyfile(SHIPPED_DIR / card["checkpoint"], ckpt)
    config = tmp_path / "my-tiny.json"
    shutil.copyfile(SHIPPED_DIR / card["model_config"], config)
    return ckpt, config, card


@pytest.mark.unit
def test_local_checkpoint_needs_hash_and_preprocessing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    ckpt, config, card = _copy_shipped(tmp_path)
    base = {
        "model": "my-tiny",
        "model_config": str(config),
        "checkpoint": str(ckpt),
        "checkpoint_sha256": card["checkpoint_sha256"],
        "image_mean": tuple(card["image_mean"]),
        "image_std": tuple(card["image_std"]),
    }
    clip = load_clip(cpu_cfg(**base))
    assert clip.source == f"checkpoint:{ckpt}"
    import os

    assert "HF_HUB_OFFLINE" not in os.environ  # switched off only while loading
    with pytest.raises(ModelLoadError, match=r"vlm\.checkpoint_sha256: .* has SHA-256"):
        load_clip(cpu_cfg(**{**base, "checkpoint_sha256": "0" * 64}))
    with pytest.raises(ModelLoadError, match=r"vlm\.checkpoint_sha256: required"):
        load_clip(cpu_cfg(**{**base, "checkpoint_sha256": None}))
    with pytest.raises(ModelLoadError, match=r"vlm\.image_mean: required"):
        load_clip(cpu_cfg(**{**base, "image_mean": None}))
    with pytest.raises(ModelLoadError, match=r"vlm\.model_config: open_clip registers"):
        load_clip(cpu_cfg(**{**base, "model": "other-name"}))
    with pytest.raises(ModelLoadError, match=r"vlm\.checkpoint: .* is not a file"):
        load_clip(cpu_cfg(**{**base, "checkpoint": str(tmp_path / "missing.pt")}))


@pytest.mark.unit
def test_hub_tags_offline_fail_fast_without_network(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-rewardlab-test")  # an empty cache

    def no_network(*a, **k):
        raise AssertionError("tried to reach the network while offline")

    import socket

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    cfg = cpu_cfg(model="ViT-bigG-14", pretrained="laion2b_s39b_b160k", goal_prompts=("a",))
    with pytest.raises(ModelLoadError, match=r"vlm\.pretrained: .*switched off"):
        load_clip(cfg)
    with pytest.raises(ModelLoadError, match=r"vlm\.pretrained: 'nope' is not a pretrained tag"):
        load_clip(dataclasses.replace(cfg, pretrained="nope"))
    with pytest.raises(ModelLoadError, match=r"vlm\.model: open_clip knows no architecture"):
        load_clip(cpu_cfg(model="ViT-Nope-1", pretrained="x"))
    with pytest.raises(ModelLoadError, match=r"random weights are never used"):
        load_clip(cpu_cfg(model="ViT-B-32"))


# -- the scorer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_scorer() -> CLIPReward:
    cfg = cpu_cfg(
        goal_prompts=("the pole is upright",),
        baseline_prompts=("the pole is hanging down", "the pole is lying to the left"),
        batch_size=7,
    )
    return make_scorer(cfg)  # type: ignore[return-value]


@pytest.mark.unit
def test_registry_builds_clip_and_rejects_unknown_names() -> None:
    assert "clip" in SCORERS or make_scorer is not None
    with pytest.raises(ValueError, match=r"vlm\.scorer: got 'nope'"):
        make_scorer(cpu_cfg(scorer="nope"))

    class Const:
        progress_like, image_size = True, 16

        def score(self, frames):
            return torch.ones(frames.shape[0])

    register_scorer("test-const", lambda cfg: Const())
    try:
        assert make_scorer(cpu_cfg(scorer="test-const")).progress_like
    finally:
        SCORERS.pop("test-const")


@pytest.mark.unit
def test_scorer_matches_formula_on_its_own_embeddings(tiny_scorer: CLIPReward) -> None:
    frames = torch.randint(0, 256, (10, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))  # fmt: skip
    scores = tiny_scorer.score(frames)
    assert scores.dtype == torch.float32 and scores.shape == (10,)
    expected = vlm_rm_reward(tiny_scorer.embed_images(frames), tiny_scorer.goal, tiny_scorer.baseline, 0.5)  # fmt: skip
    torch.testing.assert_close(scores.double(), expected, atol=1e-5, rtol=0)
    # batching (batch_size=7 -> 2 passes) gives the same as one frame at a time
    single = torch.cat([tiny_scorer.score(frames[i : i + 1]) for i in range(10)])
    torch.testing.assert_close(scores, single, atol=1e-5, rtol=0)
    assert tiny_scorer.score(frames[:0]).shape == (0,)
    with pytest.raises(ValueError, match=r"frames: got torch.float32"):
        tiny_scorer.score(frames.float())


@pytest.mark.unit
def test_text_embeddings_are_computed_once(tiny_scorer: CLIPReward, monkeypatch) -> None:
    def boom(*a, **k):
        raise AssertionError("encode_text called while scoring")

    monkeypatch.setattr(tiny_scorer.clip.model, "encode_text", boom)
    tiny_scorer.score(torch.zeros(3, 64, 64, 3, dtype=torch.uint8))
    # goal/baseline are means of normalized prompt embeddings
    g = tiny_scorer.goal
    assert g.norm() == pytest.approx(1.0, abs=1e-5)  # one goal prompt
    assert tiny_scorer.baseline.norm() < 1.0 + 1e-6


@pytest.mark.unit
def test_tiny_model_reads_the_pole(tiny_scorer: CLIPReward) -> None:
    """The shipped model means something: upright poles score above fallen ones."""
    from rewardlab.envs import get_task
    from rewardlab.vlm_reward.rendering import TiledRenderer, reward_camera

    angles = np.array([0.0, 0.1, -0.1, 1.5, -1.5, 3.1, -3.0, 2.5])
    qpos = np.stack([np.linspace(-1, 1, len(angles)), angles], -1)
    model = get_task("cartpole_swingup").load_model()
    frames = TiledRenderer(model, 64, reward_camera("cartpole_swingup"), 8).render_rows({"qpos": qpos})  # fmt: skip
    s = tiny_scorer.score(frames)
    assert float(s[:3].min()) > float(s[3:].max())


@pytest.mark.unit
def test_tiny_training_script_runs_one_step(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "rewardlab.vlm_reward.tiny_clip.train", "--steps", "2",
           "--frames", "48", "--batch", "16", "--threads", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((out / f"{TINY}.card.json").read_text())
    from rewardlab.core.files import sha256

    assert card["checkpoint_sha256"] == sha256(out / f"{TINY}.pt")
    assert set(card["heldout_caption_accuracy"]) == {"cartpole", "arm", "humanoid"}
    clip = load_clip(
        cpu_cfg(
            model=TINY,
            model_config=str(out / f"{TINY}.json"),
            checkpoint=str(out / f"{TINY}.pt"),
            checkpoint_sha256=card["checkpoint_sha256"],
            image_mean=tuple(card["image_mean"]),
            image_std=tuple(card["image_std"]),
        )
    )
    assert clip.image_size == 64


# -- rendering and the env wrapper -----------------------------------------------------------


@pytest.mark.unit
def test_tiled_frames_match_per_world_content() -> None:
    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.rendering import EnvFrames

    env = make_env("cartpole_swingup", num_envs=5, nthread=1)
    env.reset(seed=0)
    frames = EnvFrames(env, 32, "cartpole_swingup")
    all_f = frames()
    assert all_f.shape == (5, 32, 32, 3) and all_f.dtype == torch.uint8
    torch.testing.assert_close(frames([3, 1]), all_f[[3, 1]])
    assert not torch.equal(all_f[0], all_f[1])  # different worlds, different pictures
    frames.close()
    env.close()


@pytest.mark.unit
def test_multiview_camera_stacks_views_in_bands() -> None:
    from rewardlab.envs import get_task
    from rewardlab.vlm_reward.rendering import CameraSpec, MultiView, TiledRenderer, reward_camera

    model = get_task("arm_reach").load_model()
    rows = {"qpos": np.array([[0.0, 0.4, 1.0], [0.8, 1.0, 0.6]]), "mocap_pos": np.array([[[0.35, 0.0, 0.55]], [[0.2, 0.3, 0.3]]])}  # fmt: skip
    side = CameraSpec(0.6, 90.0, -10.0, track_body="target")
    top = CameraSpec(0.6, 90.0, -89.9, track_body="target")

    def draw(camera: object) -> torch.Tensor:
        r = TiledRenderer(model, 32, camera, 4)
        try:
            return r.render_rows(rows)
        finally:
            r.close()

    torch.testing.assert_close(draw(MultiView((side,))), draw(side))  # one view: the plain camera
    same = draw(MultiView((side, side)))
    # equal views, equal bands (up to rasterization rounding at a few edge pixels)
    torch.testing.assert_close(same[:, :16].int(), same[:, 16:].int(), atol=2, rtol=0)
    both = draw(reward_camera("arm_reach"))
    assert both.shape == (2, 32, 32, 3)
    assert not torch.equal(both[:, :16], both[:, 16:])  # side and top views differ
    # the target (green) is drawn at the centre of each band: it tracks the target body
    for band in (both[:, 4:12], both[:, 20:28]):
        centre = band[:, :, 12:20].float()
        assert ((centre[..., 1] - centre[..., 0]) > 80).any(-1).any(-1).all()
    with pytest.raises(ValueError, match="views"):
        TiledRenderer(model, 8, MultiView((side, top, side)), 1)


@pytest.mark.unit
def test_wrapper_reward_is_the_score_and_success_is_the_tasks() -> None:
    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.training import wrap_env

    env = make_env("cartpole_balance", num_envs=4, nthread=1, cfg=None)
    cfg = cpu_cfg(weight=2.0, task_weight=0.5, offset=0.1)
    wrapped = wrap_env(env, "clip", cfg)
    assert wrapped.cfg.goal_prompts == ("the pole is upright",)  # task defaults filled in
    wrapped.reset(seed=0)
    episodes = []
    for _ in range(60):
        prev = wrapped._score.clone()
        obs, r, term, trunc, info = wrapped.step(torch.ones(4, 1))
        done = term | trunc
        expected_score = torch.where(done, prev, wrapped._score)
        task_r = env.reward_fn(env.state(), torch.ones(4, 1))[0] if not done.any() else None
        if task_r is not None:
            torch.testing.assert_close(r, 2.0 * (expected_score + 0.1) + 0.5 * task_r, atol=1e-5, rtol=0)  # fmt: skip
        assert "reward/vlm" in info["log"] and "reward/task" in info["log"]
        if "episode" in info:
            episodes.append(info["episode"])
    assert episodes, "pushing full right must end balance episodes"
    ep = episodes[0]
    assert {"success", "reward/vlm", "reward/task_return", "perf/vlm_score_ms"} <= set(ep)
    assert not ep["success"].any()  # it fell: the task's own verdict passes through
    with pytest.raises(ValueError, match=r"reward=clip uses the clip scorer"):
        wrap_env(env, "clip", cpu_cfg(scorer="progress"))
    wrapped.close()


@pytest.mark.unit
def test_wrapper_frame_stride_and_resume() -> None:
    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.training import wrap_env

    wrapped = wrap_env(make_env("cartpole_swingup", num_envs=6, nthread=1), "clip", cpu_cfg(frame_stride=3))  # fmt: skip
    wrapped.reset(seed=1)
    scored = []
    for _ in range(6):
        before = wrapped.timing["frames"]
        wrapped.step(torch.zeros(6, 1))
        scored.append(wrapped.timing["frames"] - before)
    assert scored == [0, 0, 6, 0, 0, 6]  # all worlds every 3rd step (none reset this early)
    snap = wrapped.get_state_dict()
    a = torch.linspace(-1, 1, 6)[:, None]
    r1 = [wrapped.step(a)[1] for _ in range(4)]
    wrapped.load_state_dict(snap)
    r2 = [wrapped.step(a)[1] for _ in range(4)]
    for x, y in zip(r1, r2, strict=True):
        torch.testing.assert_close(x, y)
    wrapped.close()
