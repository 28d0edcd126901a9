"""The reward kinds of this layer (``reward=task`` and ``reward=code:<file.py>``), behind the
:class:`rewardlab.reward_kinds.RewardKind` interface; registered in
:data:`rewardlab.reward_kinds.REWARD_KINDS`."""

from __future__ import annotations

from typing import Any

from rewardlab.envs.base import BatchedEnv
from rewardlab.rewards.loader import load_reward_file


class TaskReward:
    """``reward=task``: the task's own reward terms (the env is left as it is)."""

    argument = None
    config_key = None

    def apply(self, env: BatchedEnv, argument: str, settings: Any) -> BatchedEnv:
        """Return ``env`` unchanged."""
        return env


class CodeReward:
    """``reward=code:<file.py>``: a reward file, loaded through the sandboxed loader
    (:func:`rewardlab.rewards.loader.load_reward_file`)."""

    argument = "file.py"
    config_key = "sandbox"

    def apply(self, env: BatchedEnv, argument: str, settings: Any) -> BatchedEnv:
        """Load the file ``argument`` names, check it against ``env`` and set it as its reward;
        ``settings`` is ``TrainConfig.sandbox`` (where the code runs: ``auto`` or ``none``).

        Raises:
            rewardlab.rewards.loader.RewardFileError: the file is missing, unsafe or broken.
        """
        env.set_reward(load_reward_file(argument, env, sandbox=settings or "auto"))
        return env
