"""Default goal and baseline prompts of a task, for ``reward=clip`` without prompts given.

Each task declares its own (``Task.prompts``, in the task's module or YAML file:
:mod:`rewardlab.envs.tasks.knowledge`); the shipped tasks' wording matches the captions the
shipped tiny CLIP model was trained on (:mod:`rewardlab.vlm_reward.tiny_clip.captions`) where
it knows the scene, and a large pretrained CLIP reads them too.
"""

from __future__ import annotations

import dataclasses

from rewardlab.envs import get_task
from rewardlab.envs.tasks.knowledge import OptOut, Prompts
from rewardlab.vlm_reward.config import VLMConfig


def task_prompts(task: str | None) -> Prompts | OptOut | None:
    """What registered ``task`` declares: its :class:`Prompts`, an :class:`OptOut` (with the
    reason), or ``None`` (no task, an unknown task, or none declared)."""
    if not task:
        return None
    try:
        return get_task(task).prompts
    except KeyError:
        return None


def with_task_prompts(cfg: VLMConfig, task: str | None) -> VLMConfig:
    """``cfg`` with empty ``goal_prompts`` / ``baseline_prompts`` filled from the task's own
    :func:`task_prompts`.

    Prompts the user gave are kept as they are.

    Raises:
        ValueError: no goal prompts given and the task has no defaults (the message says why
            when the task opts out).
    """
    declared = task_prompts(task)
    prompts = declared if isinstance(declared, Prompts) else Prompts(())
    changes = {}
    if not cfg.goal_prompts:
        if not prompts.goal:
            why = f" ({declared.reason})" if isinstance(declared, OptOut) else ""
            raise ValueError(
                f"vlm.goal_prompts: empty and task {task!r} has no default prompts{why}; "
                "expected e.g. vlm.goal_prompts='[a humanoid robot kneeling]'"
            )
        changes["goal_prompts"] = prompts.goal
    if not cfg.baseline_prompts and prompts.baseline:
        changes["baseline_prompts"] = prompts.baseline
    return dataclasses.replace(cfg, **changes) if changes else cfg
