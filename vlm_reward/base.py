"""The frame-scorer interface every vision-language reward model implements, and its registry.

A scorer maps a batch of rendered RGB frames to one number per frame (higher: closer to the
goal). The training wrapper (:mod:`rewardlab.vlm_reward.training`) and the evaluation
(:mod:`rewardlab.vlm_reward.evaluation`) only see this interface, so a CLIP score, a progress
model, a generative judge and a learned preference model are interchangeable::

    @register_scorer("clip")
    def _make_clip(cfg: VLMConfig) -> FrameScorer: ...

    scorer = make_scorer(with_task_prompts(cfg, "cartpole_swingup"))  # prompts.py
    scores = scorer.score(frames)            # uint8 [n, H, W, 3] -> float32 [n]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from rewardlab.vlm_reward.config import VLMConfig


@runtime_checkable
class FrameScorer(Protocol):
    """Scores frames against a goal stated in language.

    Attributes:
        progress_like: ``True`` when the score estimates progress towards the goal (a potential):
            potential-based shaping is then on by default (``VLMConfig.shaping="auto"``).
        image_size: side in pixels of the square frames the scorer wants; the training wrapper
            renders at this size so that no resize is needed.
    """

    progress_like: bool
    image_size: int

    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Score a batch of frames.

        Args:
            frames: ``uint8 [n, H, W, 3]`` RGB frames (any device; any size, resized if needed).

        Returns:
            ``float32 [n]`` on the CPU, one score per frame. ``n`` may be 0.
        """
        ...


ScorerFactory = Callable[["VLMConfig"], FrameScorer]
"""``factory(cfg) -> FrameScorer``. Task-dependent defaults (prompts) are resolved into ``cfg``
before (:func:`rewardlab.vlm_reward.prompts.with_task_prompts`)."""

SCORERS: dict[str, ScorerFactory] = {}
"""Registry name -> factory. Built-in names are registered on first use of :func:`make_scorer`."""

_BUILTIN_MODULES = {
    "clip": "rewardlab.vlm_reward.clip_reward",
    "progress": "rewardlab.vlm_reward.progress",
    "judge": "rewardlab.vlm_reward.judge",
    "preference": "rewardlab.vlm_reward.preference",
    "perceptual": "rewardlab.vlm_reward.perceptual",
    "ot": "rewardlab.vlm_reward.ot_reward",
}
"""Scorer name -> module that registers it when imported (imported lazily: torch models and
HTTP clients load only when used)."""


def register_scorer(
    name: str, factory: ScorerFactory | None = None
) -> ScorerFactory | Callable[[ScorerFactory], ScorerFactory]:
    """Register ``factory`` under ``name``; usable as ``register_scorer(name, f)`` or as a
    decorator ``@register_scorer(name)``.

    Raises:
        ValueError: ``name`` is already registered to a different factory.
    """

    def add(f: ScorerFactory) -> ScorerFactory:
        old = SCORERS.get(name)
        if (
            old is not None
            and old is not f
            and getattr(old, "__qualname__", None) != getattr(f, "__qualname__", 0)
        ):
            raise ValueError(f"scorer {name!r} is registered twice")
        SCORERS[name] = f
        return f

    return add(factory) if factory is not None else add


def scorer_names() -> list[str]:
    """Registered scorer names plus the built-in ones not imported yet."""
    return sorted(set(SCORERS) | set(_BUILTIN_MODULES))


def make_scorer(cfg: VLMConfig) -> FrameScorer:
    """Build the scorer ``cfg.scorer`` names.

    Raises:
        ValueError: unknown scorer name (the message lists the known ones).
    """
    import importlib

    name = cfg.scorer
    if name not in SCORERS and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ModuleNotFoundError as e:
            if e.name != _BUILTIN_MODULES[name]:
                raise
    if name not in SCORERS:
        raise ValueError(
            f"vlm.scorer: got {name!r}, expected one of {', '.join(sorted(SCORERS) or ['clip'])}"
        )
    scorer = SCORERS[name](cfg)
    for attr in ("progress_like", "image_size", "score"):
        if not hasattr(scorer, attr):
            raise TypeError(f"scorer {name!r} ({type(scorer).__name__}) has no {attr!r}")
    return scorer


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """Check that ``frames`` is ``uint8 [n, H, W, 3]``; returns it.

    Raises:
        ValueError: wrong dtype or shape (the message names what was given).
    """
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames: got {type(frames).__name__}, expected a torch.Tensor")
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames: got {frames.dtype} {list(frames.shape)}, expected uint8 [n, H, W, 3]"
        )
    return frames
