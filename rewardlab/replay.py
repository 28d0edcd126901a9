"""Score a recorded robot episode (rosbag2) with any reward function (``rewardlab replay``).

The recording and the replay of a bag are deploy's (:mod:`rewardlab.deploy.recording`: it imports
no simulator and no trainer); what reward to score with -- the task's own terms, or a reward file
checked in the sandbox against the task's state schema -- needs the tasks and the reward loader,
so it is put together here, in the application layer (the command's arguments are parsed by
:mod:`rewardlab.cli`)::

    rewardlab replay bag=runs/arm/bag reward=task:arm_reach
    rewardlab replay bag=runs/arm/bag reward=code:my_reward.py task=arm_reach json=score.json
    python -m rewardlab.replay runs/arm/bag --robot arm --reward task:arm_reach   # the same
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rewardlab.core.files import atomic_write
from rewardlab.core.reward import compose
from rewardlab.deploy.recording import replay_reward
from rewardlab.deploy.robot_config import load_robot_config
from rewardlab.envs import get_task, make_env
from rewardlab.rewards.loader import load_reward_file

RewardCallable = Callable[[dict[str, Any], Any], tuple[Any, dict[str, Any]]]
"""``compute_reward(state, action) -> (total [T], {name: [T]})`` over a whole episode."""


def load_reward(spec: str, task: str | None = None) -> RewardCallable:
    """A reward for :func:`rewardlab.deploy.recording.replay_reward` from a spec: ``task:<task>``
    (the task's own weighted terms) or ``code:<file.py>`` (a reward file, checked by
    :mod:`rewardlab.rewards` in its sandbox against ``task``'s state schema before use).

    Raises:
        ValueError: unknown spec kind, or ``code:`` without a task.
    """
    kind, _, arg = spec.partition(":")
    if kind == "task" and arg:
        cls = get_task(arg)
        return compose(cls(cls.default_config(), cls.load_model()).reward_terms())
    if kind == "code" and arg:
        if not task:
            raise ValueError(
                "reward code:<file.py> needs the task whose state the file reads (--task)"
            )
        return load_reward_file(arg, make_env(task, num_envs=2))
    raise ValueError(f"reward: got {spec!r}, expected task:<task> or code:<file.py>")


def replay(
    bag: str | Path,
    reward: str,
    robot: str = "arm",
    task: str | None = None,
    json_path: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score the recorded episode ``bag`` with the reward ``reward`` names (see
    :func:`load_reward`); prints ``reward/<term>`` sums and the return, writes them as JSON to
    ``json_path`` when given.

    Args:
        bag: rosbag2 folder written by ``rewardlab deploy record=DIR``.
        reward: ``task:<task>`` or ``code:<file.py>``.
        robot: robot config the bag was recorded with.
        task: task whose state schema a ``code:`` reward reads; default: the one in ``task:``.
        json_path: also write the summary here.

    Returns:
        The summary (``reward/<term>`` sums, ``return``, ``ticks``, ``duration_s``).
    """
    task = task or (reward.partition(":")[2] if reward.startswith("task:") else None)
    result = replay_reward(bag, load_robot_config(robot), load_reward(reward, task))
    summary = result.summary()
    summary["ticks"] = int(result.total.size)
    summary["duration_s"] = float(result.times[-1]) if result.times.size else 0.0
    for key, value in summary.items():
        log(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    if json_path:
        atomic_write(Path(json_path), json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rewardlab.replay BAG --robot arm --reward task:arm_reach``: score a recorded
    episode; prints ``reward/<term>`` sums and the return (``--json FILE`` writes them)."""
    p = argparse.ArgumentParser(prog="python -m rewardlab.replay", description=main.__doc__)
    p.add_argument("bag", help="rosbag2 folder written by BagRecorder")
    p.add_argument("--robot", default="arm", help="robot config the bag was recorded with")
    p.add_argument("--reward", required=True, help="task:<task> or code:<file.py>")
    p.add_argument("--task", default=None, help="task whose state schema a code: reward reads")
    p.add_argument("--json", default=None, help="also write the summary as JSON to this file")
    a = p.parse_args(argv)
    replay(a.bag, a.reward, a.robot, a.task, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
