"""Reward kinds by name: what ``TrainConfig.reward`` may say, and the :class:`RewardKind` interface.

``reward=<kind>`` or ``reward=<kind>:<argument>`` names an entry of :data:`REWARD_KINDS`:

- ``task``: the task's own reward terms (:class:`rewardlab.rewards.kinds.TaskReward`);
- ``code:<file.py>``: a reward file, checked in the sandbox (:class:`rewardlab.rewards.kinds.
  CodeReward`);
- ``clip`` / ``vlm``: rendered frames scored by a vision-language model, configured by
  ``TrainConfig.vlm`` (:class:`rewardlab.vlm_reward.training.ClipReward` / ``VLMReward``).

The training pipeline puts the reward on the training env with
``REWARD_KINDS.get(kind)().apply(env, argument, settings)``. Adding a reward kind is one class
with the :class:`RewardKind` interface (in the layer that computes it) and one line here.
Entries are lazy ``"module:Class"`` references: this module imports no torch, so the config
schema can list the names while the command line is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rewardlab.core.registry import Registry

if TYPE_CHECKING:  # an annotation only: the env API imports torch
    from rewardlab.envs.base import BatchedEnv


class RewardKind(Protocol):
    """A way of computing the training reward, named in ``TrainConfig.reward``."""

    argument: ClassVar[str | None]
    """What must follow ``<kind>:`` (e.g. ``"file.py"``); ``None``: the kind takes no argument."""
    config_key: ClassVar[str | None]
    """The ``TrainConfig`` field holding its settings (``"vlm"``: a mapping; ``"sandbox"``: where
    untrusted code runs); ``None``: it has none."""

    def apply(self, env: BatchedEnv, argument: str, settings: Any) -> BatchedEnv:
        """Put this reward on ``env``; returns the env to train on (``env`` or a wrapper).

        Args:
            env: the training env, with the task's own reward.
            argument: what followed ``<kind>:`` (empty when nothing did).
            settings: the value of the ``TrainConfig`` field :attr:`config_key` names (``{}``
                when none).
        """
        ...


REWARD_KINDS: Registry[type[RewardKind]] = Registry("reward kind")
"""Reward kind name -> class (``TrainConfig.reward``)."""
REWARD_KINDS.register("task", "rewardlab.rewards.kinds:TaskReward")
REWARD_KINDS.register("code", "rewardlab.rewards.kinds:CodeReward")
REWARD_KINDS.register("clip", "rewardlab.vlm_reward.training:ClipReward")
REWARD_KINDS.register("vlm", "rewardlab.vlm_reward.training:VLMReward")


def reward_kind_usage() -> str:
    """``"task, code:<file.py>, clip or vlm"``: every kind as ``reward=`` takes it (imports the
    kinds' modules, to read their argument)."""
    words = []
    for name in REWARD_KINDS.names():
        arg = REWARD_KINDS.get(name).argument
        words.append(f"{name}:<{arg}>" if arg else name)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)
