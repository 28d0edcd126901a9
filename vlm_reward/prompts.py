"""Default goal and baseline prompts of each task, for ``reward=clip`` without prompts given.

The wording matches the captions the shipped tiny CLIP model was trained on
(:mod:`rewardlab.vlm_reward.tiny_clip.captions`); a large pretrained CLIP reads them too.
"""

from __future__ import annotations

import dataclasses

from rewardlab.vlm_reward.config import VLMConfig

TASK_PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # One baseline: the projection then keeps the upright-vs-hanging axis, along which the
    # shipped model's score falls most steadily with the pole angle (measured: Spearman 0.94
    # against -|angle| at alpha 0.5, vs 0.88 with the lying-left/right prompts added).
    "cartpole_balance": (("the pole is upright",), ("the pole is hanging down",)),
    "cartpole_swingup": (("the pole is upright",), ("the pole is hanging down",)),
    "arm_reach": (
        ("the arm's hand is touching the green target",),
        ("the arm's hand is far from the green target",),
    ),
    "humanoid_stand": (
        ("a humanoid robot standing upright",),
        ("a humanoid robot lying on the floor",),
    ),
    "humanoid_kneel": (
        ("a humanoid robot kneeling",),
        ("a humanoid robot standing upright", "a humanoid robot lying on the floor"),
    ),
}
"""Task name -> (goal prompts, baseline prompts)."""


def with_task_prompts(cfg: VLMConfig, task: str | None) -> VLMConfig:
    """``cfg`` with empty ``goal_prompts`` / ``baseline_prompts`` filled from :data:`TASK_PROMPTS`.

    Prompts the user gave are kept as they are.

    Raises:
        ValueError: no goal prompts given and the task has no defaults.
    """
    goal, base = TASK_PROMPTS.get(task or "", ((), ()))
    changes = {}
    if not cfg.goal_prompts:
        if not goal:
            raise ValueError(
                f"vlm.goal_prompts: empty and task {task!r} has no default prompts; "
                "expected e.g. vlm.goal_prompts='[a humanoid robot kneeling]'"
            )
        changes["goal_prompts"] = goal
    if not cfg.baseline_prompts and base:
        changes["baseline_prompts"] = base
    return dataclasses.replace(cfg, **changes) if changes else cfg
