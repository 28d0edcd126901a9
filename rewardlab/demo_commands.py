"""``rewardlab demos``: record demonstrations into the episode format of :mod:`rewardlab.envs.demos`.

::

    rewardlab demos record task=franka_lift script=pick_and_lift episodes=50 out=demos/lift.npz
    rewardlab demos record source=policy policy=runs/lift/export episodes=20 out=demos/ppo.npz
    rewardlab demos record source=bag bag=runs/arm/bags task=arm_reach out=demos/robot.npz
    rewardlab demos info demos/lift.npz

The work is done by :mod:`rewardlab.demos`, imported when the command runs (torch, MuJoCo).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.config import COMMAND_LINE, build, merge_layers, parse_overrides, schema_lines

DEMO_SOURCES = ("script", "policy", "bag")
"""Values of :attr:`DemosArgs.source` (``rewardlab.envs.demos.SOURCES``, repeated so that parsing
needs no torch)."""


@dataclass(frozen=True)
class DemosArgs:
    """``rewardlab demos record`` settings: where episodes come from and where they go."""

    source: str = "script"
    """``script`` (the task's scripted policy), ``policy`` (a run directory or an export) or
    ``bag`` (rosbag2 folders recorded by ``rewardlab deploy record=DIR``)."""
    task: str = ""
    """Task (required for script and bag; a policy's own task by default)."""
    script: str | None = None
    """Scripted policy of the task (``source=script``); default: its first ``success`` script."""
    policy: str | None = None
    """``source=policy``: a run directory (its latest checkpoint, else its export) or an export
    folder / ``policy.pt``."""
    deterministic: bool = True
    """``source=policy``: mean actions (true) or sampled ones (false, checkpoints only)."""
    bag: str | None = None
    """``source=bag``: a bag folder, or a folder of bag folders (one episode each)."""
    robot: str = "arm"
    """``source=bag``: the robot config whose camera topic gives the frames."""
    episodes: int = 16
    """Episodes to record (script, policy): one batched env of this many worlds."""
    steps: int | None = None
    """At most this many steps per episode; default: the task's episode length."""
    hold_steps: int | None = None
    """End an episode once the task's success has held this many steps; default: run to the
    episode's end."""
    seed: int = 0
    """Seed of the recorded episodes' resets."""
    noise: float = 0.0
    """``source=script|policy``: std of Gaussian noise added to every action (action units, the
    [-1, 1] range), for mixed-quality data; 0: none (``rewardlab.envs.demos.perturbed``)."""
    epsilon: float = 0.0
    """``source=script|policy``: probability per world and step of a uniformly random action
    instead of the policy's (epsilon-greedy style); 0: never."""
    only_success: bool = False
    """Keep only the episodes whose last step is a success (script, policy)."""
    out: str = ""
    """The episode file to write (``.npz``); required."""
    task_cfg: dict[str, Any] = field(default_factory=dict)
    """Overrides of the task's config (a run's own when recording its policy)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if self.source not in DEMO_SOURCES:
            raise ValueError(
                f"source: got {self.source!r}, expected one of {', '.join(DEMO_SOURCES)}"
            )
        if not self.out:
            raise ValueError("out: required (out=FILE.npz)")
        if self.source in ("script", "bag") and not self.task:
            raise ValueError(f"task: required with source={self.source} (task=NAME)")
        if self.source == "policy" and not self.policy:
            raise ValueError("policy: required with source=policy (a run directory or an export)")
        if self.source == "bag" and not self.bag:
            raise ValueError("bag: required with source=bag (a bag folder or a folder of them)")
        if self.episodes < 1:
            raise ValueError(f"episodes: got {self.episodes!r}, expected >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps: got {self.steps!r}, expected >= 1")
        if not self.noise >= 0.0:
            raise ValueError(f"noise: got {self.noise!r}, expected >= 0")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon: got {self.epsilon!r}, expected in [0, 1]")
        if self.source == "bag" and (self.noise or self.epsilon):
            raise ValueError("noise, epsilon: only with source=script or source=policy")
        if self.hold_steps is not None and self.hold_steps < 1:
            raise ValueError(f"hold_steps: got {self.hold_steps!r}, expected >= 1")


def demos_args(words: Sequence[str]) -> DemosArgs:
    """:class:`DemosArgs` from ``key=value`` words (one-line ``ConfigError`` on a bad one)."""
    merged, sources = merge_layers([(COMMAND_LINE, parse_overrides(words))], COMMAND_LINE)
    return build(DemosArgs, merged, "", sources)


def cmd_demos(args: argparse.Namespace) -> int:
    """Record demonstrations (``record``) or describe an episode file (``info``)."""
    from rewardlab import demos  # torch, MuJoCo: when the command runs

    if args.action == "info":
        if len(args.overrides) != 1 or "=" in args.overrides[0]:
            raise ValueError("demos info: expected one episode file (rewardlab demos info FILE)")
        print(demos.describe(args.overrides[0]))
        return 0
    a = demos_args(args.overrides)
    print(demos.record_demos(a))
    return 0


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add ``demos`` to the ``rewardlab`` subparsers."""
    p = sub.add_parser(
        "demos",
        help="record demonstrations (scripts, policies, robot bags) into one episode format",
        description=(
            f"{DemosArgs.__doc__}\n\n"
            "  rewardlab demos record task=franka_lift script=pick_and_lift episodes=50 out=demos/lift.npz\n"
            "  rewardlab demos record source=policy policy=runs/lift/export episodes=20 out=demos/p.npz\n"
            "  rewardlab demos info demos/lift.npz"
        ),
        epilog="keys:\n" + "\n".join(f"  {line}" for line in schema_lines(DemosArgs)),
        formatter_class=formatter_class,
    )
    p.add_argument("action", choices=("record", "info"), help="record episodes, or describe a file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. episodes=50")
    p.set_defaults(func=cmd_demos, settings=DemosArgs)
