"""Demonstrations for the rewards learned from them (:mod:`.perceptual`, :mod:`.ot_reward`).

A demonstration is a successful recorded episode: an :class:`~.evaluation.EpisodeSet` (the
``episodes.npz`` that ``rewardlab vlm-eval`` writes, or :func:`~.evaluation.record_episodes` of
a task's scripted ``success`` policies) redrawn with the task's reward camera at the encoder's
input size, exactly as the training wrapper draws the frames it scores. Only episodes whose last
step is a success count; the rest of the file is ignored.

The frozen encoder is the ``clip`` scorer's image tower that ``vlm.model`` / ``vlm.pretrained``
/ ``vlm.checkpoint`` configure (the shipped tiny CLIP by default, any open_clip model from local
weights): its normalized image embeddings are the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.vlm_reward.evaluation import EpisodeSet
from rewardlab.vlm_reward.rendering import TiledRenderer, resize_frames, zoom_frames

Encoder = Callable[[torch.Tensor], torch.Tensor]
"""``uint8 [n, H, W, 3]`` frames -> ``float32 [n, D]`` features on the CPU."""


@dataclass(frozen=True)
class DemoFrames:
    """The frames of the successful episodes of a recorded episode set."""

    task: str
    """Task the episodes were recorded on."""
    frames: list[torch.Tensor]
    """One ``uint8 [T_k, S, S, 3]`` tensor per episode, in time order."""
    returns: list[float]
    """Each episode's return under the task's own reward (its valid steps)."""
    success: list[bool]
    """Whether each episode ends in the task's success."""


def is_episode_set(path: str | Path) -> bool:
    """Whether ``path`` is an ``.npz`` episode set (not a fitted reward file)."""
    with np.load(path, allow_pickle=False) as z:
        return "fit" not in z.files


def load_demo_frames(
    path: str | Path,
    image_size: int,
    max_episodes: int = 8,
    key: str = "vlm.demos",
    successes_only: bool = True,
    zoom: float = 1.0,
) -> DemoFrames:
    """Render the successful episodes of the episode set at ``path`` with the task's reward
    camera at ``image_size`` pixels.

    Args:
        path: an ``EpisodeSet`` ``.npz``.
        image_size: side of the frames (the encoder's input size, or ``vlm.render_size``).
        max_episodes: use at most this many successful episodes (the first ones).
        key: the setting named in errors.
        successes_only: ``False``: every episode of the file (``max_episodes`` ignored), e.g.
            to label preference pairs by their returns.
        zoom: the reward camera's zoom (``vlm.camera_zoom``; recorded camera frames are
            centre-cropped to ``1 / zoom``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an episode set, or no episode in it ends in success.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {path} does not exist")
    try:
        eps = EpisodeSet.load(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{key}: {path} is not a recorded episode set ({e})") from None
    if successes_only:
        ok = [int(i) for i in np.flatnonzero(eps.episode_success)][:max_episodes]
    else:
        ok = list(range(len(eps.length)))
    ok = [i for i in ok if int(eps.length[i]) >= 2]
    if not ok:
        raise ValueError(
            f"{key}: {path} has no episode that ends in success (of {len(eps.length)}); "
            "demonstrations are successful episodes"
        )
    own = getattr(eps, "frames", None)  # a source with camera frames (a bag) and no physics
    if own is not None and not any(v.size for v in eps.physics.values()):
        frames = [torch.as_tensor(own[i, : int(eps.length[i])]) for i in ok]
        frames = [resize_frames(zoom_frames(f, zoom), image_size) for f in frames]
        return DemoFrames(eps.task, frames, *_labels(eps, ok))
    renderer = TiledRenderer.for_task(eps.task, image_size, zoom=zoom)
    try:
        frames = [
            renderer.render_rows({f: v[i, : int(eps.length[i])] for f, v in eps.physics.items()})
            for i in ok
        ]
    finally:
        renderer.close()
    return DemoFrames(eps.task, frames, *_labels(eps, ok))


def _labels(eps: EpisodeSet, ids: list[int]) -> tuple[list[float], list[bool]]:
    returns = [float(np.nansum(eps.reward[i, : int(eps.length[i])])) for i in ids]
    return returns, [bool(eps.episode_success[i]) for i in ids]


def clip_encoder(cfg: Any) -> tuple[Encoder, int]:
    """The frozen image encoder ``cfg`` (a ``VLMConfig``) configures: the ``clip`` scorer's
    normalized image embeddings, and its input size.

    Raises:
        rewardlab.vlm_reward.models.ModelLoadError: the model cannot be loaded as configured.
    """
    from rewardlab.vlm_reward.base import make_scorer

    clip = make_scorer(replace(cfg, scorer="clip", goal_prompts=("a frame",), alpha=0.0))
    return clip.embed_images, int(clip.image_size)  # type: ignore[attr-defined]


def demo_frame_options(cfg: Any, image_size: int) -> dict[str, Any]:
    """:func:`load_demo_frames` arguments that draw demonstrations as training draws its frames:
    ``image_size`` (``vlm.render_size`` when set, else the encoder's input) and ``zoom``."""
    return {
        "image_size": int(getattr(cfg, "render_size", None) or image_size),
        "zoom": float(getattr(cfg, "camera_zoom", 1.0)),
    }


def read_fit(path: str | Path, kind: str, key: str = "vlm.demos") -> dict[str, np.ndarray]:
    """Arrays of a fitted reward file written by ``save`` of :mod:`.perceptual` or
    :mod:`.ot_reward` (an ``.npz`` read as data, never unpickled).

    Raises:
        ValueError: the file holds another kind of fit.
    """
    with np.load(path, allow_pickle=False) as z:
        got = str(z["fit"]) if "fit" in z.files else ""
        if got != kind:
            raise ValueError(f"{key}: {path} holds {got or 'no fit'!r}, expected a {kind!r} fit")
        return {k: z[k] for k in z.files}


def demos_path(cfg: Any, scorer: str) -> Path:
    """The file ``cfg.demos`` names, checked to be an ``.npz``.

    Raises:
        ValueError: unset, or not an ``.npz`` file.
        FileNotFoundError: no such file.
    """
    demos = getattr(cfg, "demos", None)
    if not demos:
        raise ValueError(
            f"vlm.demos: vlm.scorer={scorer} needs demonstrations; expected an episode set "
            "(.npz, e.g. the episodes.npz of `rewardlab vlm-eval task=...`) or a fitted file"
        )
    path = Path(demos)
    if not path.is_file():
        raise FileNotFoundError(f"vlm.demos: {path} does not exist")
    try:
        is_episode_set(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"vlm.demos: {path} is not an .npz file ({type(e).__name__})") from None
    return path
