"""Vision-language rewards: frames rendered from the simulator (or a robot's camera) scored
against a goal stated in language.

- :mod:`.base`: the :class:`FrameScorer` interface and its registry (``make_scorer``).
- :mod:`.config`: :class:`VLMConfig` (``TrainConfig.vlm``).
- :mod:`.models`: open_clip loading (hub tags, or local checkpoints checked by SHA-256).
- :mod:`.clip_reward`: the VLM-RM CLIP reward (goal/baseline prompts, projection).
- :mod:`.progress`: progress and pairwise-delta models; :mod:`.judge`: generative VLM judges.
- :mod:`.preference_model`, :mod:`.preference_data`, :mod:`.preference_training`,
  :mod:`.preference` (the scorer), :mod:`.preference_online`: RL-VLM-F preference rewards.
- :mod:`.demonstrations`, :mod:`.perceptual`, :mod:`.ot_reward`: rewards from demonstrations
  (perceptual step models, RAPL-style optimal-transport matching).
- :mod:`.training`: ``wrap_env`` and the ``clip`` / ``vlm`` reward kinds.
- :mod:`.evaluation`: value-order correlation, success AUROC (``rewardlab vlm-eval``).

Nothing heavy (open_clip, torchvision) is imported until a scorer is made; the names below are
loaded on first use, so that reading :class:`VLMConfig` (the config schema) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and readers of the import graph
    from rewardlab.vlm_reward.base import SCORERS, FrameScorer, make_scorer, register_scorer
    from rewardlab.vlm_reward.config import VLMConfig

_MODULE_OF = {
    "SCORERS": "rewardlab.vlm_reward.base",
    "FrameScorer": "rewardlab.vlm_reward.base",
    "make_scorer": "rewardlab.vlm_reward.base",
    "register_scorer": "rewardlab.vlm_reward.base",
    "VLMConfig": "rewardlab.vlm_reward.config",
}
"""Re-exported name -> its module (loaded on first use, PEP 562)."""

__all__ = ["SCORERS", "FrameScorer", "VLMConfig", "make_scorer", "register_scorer"]


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
