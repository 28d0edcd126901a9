"""Vision-language rewards: frames rendered from the simulator (or a robot's camera) scored
against a goal stated in language.

- :mod:`.base`: the :class:`FrameScorer` interface and its registry (``make_scorer``).
- :mod:`.config`: :class:`VLMConfig` (``TrainConfig.vlm``).
- :mod:`.models`: open_clip loading (hub tags, or local checkpoints checked by SHA-256).
- :mod:`.clip_reward`: the VLM-RM CLIP reward (goal/baseline prompts, projection).
- :mod:`.training`: ``wrap_env`` for ``reward=clip`` / ``reward=vlm``.
- :mod:`.evaluation`: ``rewardlab vlm-eval`` (value-order correlation, success AUROC).

Nothing heavy (open_clip, torchvision) is imported until a scorer is made.
"""

from rewardlab.vlm_reward.base import SCORERS, FrameScorer, make_scorer, register_scorer
from rewardlab.vlm_reward.config import VLMConfig

__all__ = ["SCORERS", "FrameScorer", "VLMConfig", "make_scorer", "register_scorer"]
