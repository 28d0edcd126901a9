"""``vlm.camera_zoom`` and ``vlm.render_size``: a zoomed reward camera draws the middle of the
declared view at full resolution, and demonstrations, vlm-eval and training frames are all drawn
with the same size and zoom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.core.config import ConfigError, build
from rewardlab.envs import make_env
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.demonstrations import demo_frame_options
from rewardlab.vlm_reward.evaluation import record_episodes
from rewardlab.vlm_reward.ot_reward import demos_from_config
from rewardlab.vlm_reward.perceptual import fit_from_config
from rewardlab.vlm_reward.rendering import TiledRenderer, zoom_frames
from rewardlab.vlm_reward.training import wrap_env


def _physics(n: int = 4) -> dict[str, np.ndarray]:
    env = make_env("arm_reach", num_envs=n, seed=3, nthread=1)
    env.reset(seed=3)
    for _ in range(5):
        env.step(0.5 * torch.ones(n, env.action_dim))
    phys = {k: np.asarray(v).copy() for k, v in env.get_state_dict()["physics"].items()}
    env.close()
    return phys


@pytest.mark.unit
def test_zoomed_render_is_the_middle_of_the_declared_view() -> None:
    phys = _physics()
    wide = TiledRenderer.for_task("arm_reach", 64)
    zoomed = TiledRenderer.for_task("arm_reach", 32, zoom=2.0)
    plain = TiledRenderer.for_task("arm_reach", 32)
    try:
        w, z, p = (r.render_rows(phys).float() for r in (wide, zoomed, plain))
    finally:
        for r in (wide, zoomed, plain):
            r.close()
    # arm_reach's camera: 2 views in bands of 32 rows (64 px); the middle half of each band
    # (16 x 32 px) is what the 32-px zoomed frame shows in its 16-row band
    crop = torch.cat([w[:, 8:24, 16:48], w[:, 40:56, 16:48]], 1)
    err_zoom, err_plain = (float((x - crop).abs().mean()) for x in (z, p))
    assert err_zoom < 3.0 and err_zoom < 0.25 * err_plain, (err_zoom, err_plain)


@pytest.mark.unit
def test_zoom_settings_are_checked_and_crop_recorded_frames() -> None:
    bad_zooms = [(0.0, "a number >= 1"), (-1.0, "a number >= 1"), (0.5, "a number >= 1")]
    for bad, why in [*bad_zooms, (float("nan"), "a finite")]:
        with pytest.raises(ConfigError, match=f"vlm.camera_zoom: got .*, expected {why}"):
            build(VLMConfig, {"camera_zoom": bad}, "vlm")
    # a zoom under 1 would widen the tiled view but not env.render's or recorded frames
    for zoom in (0, 0.5):
        with pytest.raises(ValueError, match=f"camera zoom: got {zoom}, expected a number >= 1"):
            TiledRenderer.for_task("arm_reach", 16, zoom=zoom)
    frames = torch.arange(2 * 8 * 12 * 3, dtype=torch.int64).reshape(2, 8, 12, 3).to(torch.uint8)
    torch.testing.assert_close(zoom_frames(frames, 2.0), frames[:, 2:6, 3:9])
    assert zoom_frames(frames, 1.0) is frames
    assert demo_frame_options(VLMConfig(render_size=48, camera_zoom=2.0), 64) == {
        "image_size": 48,
        "zoom": 2.0,
    }
    assert demo_frame_options(VLMConfig(), 64) == {"image_size": 64, "zoom": 1.0}


@pytest.mark.unit
def test_demonstrations_and_training_frames_use_the_render_size_and_zoom(tmp_path: Path) -> None:
    es = record_episodes("arm_reach", 1, steps=80, scripts=["reach"], hold_steps=4, seed=0)
    es.save(tmp_path / "demos.npz")
    seen: list[torch.Tensor] = []

    def encoder(frames: torch.Tensor) -> torch.Tensor:  # records what the fit is given
        seen.append(frames.clone())
        return frames.float().mean((1, 2))  # [n, 3] features

    cfg = VLMConfig(
        demos=str(tmp_path / "demos.npz"), render_size=24, camera_zoom=2.0, perceptual_features=2
    )
    fit_from_config(cfg, encoder, 16)
    (frames,) = seen
    r = TiledRenderer.for_task("arm_reach", 24, zoom=2.0)
    try:
        n = int(es.length[0])
        want = r.render_rows({f: v[0, :n] for f, v in es.physics.items()})
    finally:
        r.close()
    torch.testing.assert_close(frames, want)  # drawn at render_size with the zoom, not 16 px
    seen.clear()
    demos_from_config(cfg, encoder, 16, log=None)
    torch.testing.assert_close(seen[0], want)

    class Fixed:  # a scorer that needs no model
        progress_like, image_size = True, 16

        def score(self, f: torch.Tensor) -> torch.Tensor:
            return torch.zeros(f.shape[0])

    env = make_env("arm_reach", num_envs=2, seed=0, nthread=1)
    wrapped = wrap_env(env, "vlm", VLMConfig(scorer="perceptual", render_size=24, camera_zoom=2.0), Fixed())  # fmt: skip
    wrapped.reset(seed=0)
    got = wrapped.frames().float()
    phys = {k: np.asarray(v) for k, v in env.get_state_dict()["physics"].items()}
    wrapped.close()
    err = {}
    for zoom in (2.0, 1.0):  # the same frames up to rasterization (another tile layout)
        r = TiledRenderer.for_task("arm_reach", 24, zoom=zoom)
        try:
            err[zoom] = float((got - r.render_rows(phys).float()).abs().mean())
        finally:
            r.close()
    assert got.shape == (2, 24, 24, 3) and err[2.0] < 0.5 and 10 * err[2.0] < err[1.0], err
