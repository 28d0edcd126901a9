"""The vision-language commands of the ``rewardlab`` command line: arguments and parsers.

::

    rewardlab vlm-eval task=cartpole_swingup                        # shipped tiny CLIP, task prompts
    rewardlab vlm-eval task=arm_reach vlm.alpha=1.0 out=runs/vlm-eval-arm
    rewardlab vlm-eval task=cartpole_swingup vlm.model=ViT-B-32 vlm.pretrained=laion2b_s34b_b79k \\
        'vlm.goal_prompts=[a pole standing upright on a cart]'
    rewardlab vlm-prefs task=cartpole_swingup out=runs/prefs ...    # RL-VLM-F preference labels
    rewardlab vlm-progress episodes_file=.../episodes.npz out=runs/progress.pt

The work is done by :mod:`rewardlab.vlm_tools`, imported when a command runs: it loads torch,
MuJoCo and the models, and building the command line (``--help`` included) stays light.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.config import (
    COMMAND_LINE,
    Sources,
    build,
    merge_layers,
    parse_overrides,
    schema_lines,
)


@dataclass(frozen=True)
class VLMEvalArgs:
    """``rewardlab vlm-eval`` settings: which episodes, which reward model, where the report goes."""

    task: str = "cartpole_swingup"
    """Task whose scripted episodes (successes, partial progress, failures) are recorded."""
    episodes: int = 8
    """Episodes per script (each script runs its episodes in one batched env)."""
    steps: int | None = None
    """Steps per episode; default: the task's episode length, at most 300."""
    hold_steps: int = 50
    """A successful episode ends once the task's success has held this many steps (50: 1 s of
    cart-pole balance after the swing-up)."""
    seed: int = 0
    """Seed of the recorded episodes."""
    episodes_file: str | None = None
    """Score these recorded episodes (``.npz`` from an earlier run's ``episodes.npz``) instead
    of recording new ones."""
    frame_stride: int = 1
    """Score every k-th frame; the others are interpolated linearly (or held with
    ``vlm.interpolate=false``)."""
    out: str | None = None
    """Report folder (report.json, report.md, plots, episodes.npz); default runs/vlm-eval-<task>."""
    vlm: dict[str, Any] = field(default_factory=dict)
    """The reward model: ``VLMConfig`` fields (model, pretrained, checkpoint, goal_prompts, ...)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if self.episodes < 1:
            raise ValueError(f"episodes: got {self.episodes!r}, expected >= 1")
        if self.steps is not None and self.steps < 2:
            raise ValueError(f"steps: got {self.steps!r}, expected >= 2")
        if self.hold_steps < 1:
            raise ValueError(f"hold_steps: got {self.hold_steps!r}, expected >= 1")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride: got {self.frame_stride!r}, expected >= 1")


@dataclass(frozen=True)
class PrefsArgs:
    """Label frame pairs with a VLM judge (RL-VLM-F) and train a Bradley-Terry reward ensemble.

    Everything lands in ``out``: ``pool.pt`` (the frames), ``prefs.pt`` (pairs and labels, saved
    after every batch of queries), ``reward.pt`` (the ensemble), ``metrics.json``. Run the same
    command again to continue: frames are not re-recorded, labelled pairs are not asked again.
    """

    task: str = ""
    """Registered task whose frames are labelled; required."""
    out: str = ""
    """Output folder; required."""
    frames: str | None = None
    """A ``.pt`` file with ``uint8 [n, H, W, 3]`` frames to label (e.g. from a policy's rollouts);
    null: record ``pool_size`` frames of the task under random actions."""
    pool_size: int = 1000
    """Frames to record when ``frames`` is null."""
    record_every: int = 4
    """Control steps between recorded frames (every world is rendered each time)."""
    queries: int = 300
    """Pairs to ask the judge about in total (counting those already in ``out``)."""
    rounds: int = 1
    """Query rounds; round 1 draws pairs uniformly, later rounds by ensemble disagreement after
    retraining on what came before."""
    batch: int = 32
    """Pairs per batch of judge requests (the dataset is saved after each)."""
    members: int = 3
    """Reward models in the ensemble."""
    image_size: int = 64
    """Side of the frames the reward CNN sees."""
    epochs: int = 30
    """Training epochs per round."""
    seed: int = 0
    """Seed of recording, pair sampling and initialization."""
    vlm: dict[str, Any] = field(default_factory=dict)
    """``VLMConfig`` fields: ``judge_base_url``, ``judge_model``, ``goal_prompts`` (default: the
    task's), ``judge_concurrency``, ... (``vlm.judge_model=gpt-4o``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if not self.task:
            raise ValueError("task: required (task=NAME)")
        if not self.out:
            raise ValueError("out: required (out=DIR)")
        for name in ("pool_size", "record_every", "queries", "rounds", "batch", "members"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected >= 1")
        if not 8 <= self.image_size <= 512:
            raise ValueError(f"image_size: got {self.image_size!r}, expected 8..512")
        if self.epochs < 1:
            raise ValueError(f"epochs: got {self.epochs!r}, expected >= 1")


@dataclass(frozen=True)
class ProgressArgs:
    """Train a progress model (per-frame or pairwise) on the successful episodes of a recorded
    episode set, e.g. the ``episodes.npz`` that ``rewardlab vlm-eval`` writes, and save it for
    ``vlm.scorer=progress vlm.progress_checkpoint=OUT``."""

    episodes_file: str = ""
    """Recorded episodes (``.npz`` of ``rewardlab vlm-eval``); required."""
    out: str = ""
    """Model file to write (``.pt``); required."""
    model: str = "progress"
    """``progress`` (per-frame CNN, labels t/(T-1)) or ``pairwise`` (antisymmetric delta)."""
    image_size: int = 64
    """Side of the frames the model sees (and the training wrapper renders)."""
    epochs: int = 15
    """Training epochs."""
    seed: int = 0
    """Initialization and sampling seed."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if not self.episodes_file:
            raise ValueError("episodes_file: required (episodes_file=runs/.../episodes.npz)")
        if not self.out:
            raise ValueError("out: required (out=FILE.pt)")
        if self.model not in ("progress", "pairwise"):
            raise ValueError(f"model: got {self.model!r}, expected progress or pairwise")
        if not 8 <= self.image_size <= 512:
            raise ValueError(f"image_size: got {self.image_size!r}, expected 8..512")
        if self.epochs < 1:
            raise ValueError(f"epochs: got {self.epochs!r}, expected >= 1")


def _args(cls: type, words: Sequence[str]) -> Any:
    return _args_and_sources(cls, words)[0]


def _args_and_sources(cls: type, words: Sequence[str]) -> tuple[Any, Sources]:
    merged, sources = merge_layers(
        [(COMMAND_LINE, parse_overrides(words))], default_source=COMMAND_LINE
    )
    return build(cls, merged, "", sources), sources


def cmd_vlm_eval(args: argparse.Namespace) -> int:
    """Record (or load) episodes, score them, write the report; prints the headline metrics."""
    from rewardlab import vlm_tools  # heavy (torch, MuJoCo, the model): only when it runs

    a, sources = _args_and_sources(VLMEvalArgs, args.overrides)
    vcfg = build(vlm_tools.VLMConfig, a.vlm, "vlm", sources)
    report = vlm_tools.vlm_eval(a, vcfg)
    print(f"[vlm-eval] report: {report.path}")
    print(f"voc: {report.metrics['voc_mean']:.3f}")
    print(f"success_auroc: {report.metrics['success_auroc_frames']:.3f}")
    print(f"human_reward_spearman: {report.metrics['human_reward_spearman']:.3f}")
    return 0


def _cmd_prefs(args: argparse.Namespace) -> int:
    from rewardlab import vlm_tools  # heavy: only when it runs

    vlm_tools.run_prefs(_args(PrefsArgs, args.overrides))
    return 0


def _cmd_progress(args: argparse.Namespace) -> int:
    from rewardlab import vlm_tools  # heavy: only when it runs

    a: ProgressArgs = _args(ProgressArgs, args.overrides)
    vlm_tools.train_progress(a)
    print(
        f"[vlm-progress] wrote {a.out}; evaluate it on other episodes with: rewardlab vlm-eval "
        f"vlm.scorer=progress vlm.progress_checkpoint={a.out} seed=1; train with: rewardlab "
        f"train reward=vlm vlm.scorer=progress vlm.progress_checkpoint={a.out}"
    )
    return 0


def add_prefs_command(sub: Any, formatter_class: Any) -> None:
    """Add ``rewardlab vlm-prefs`` and ``rewardlab vlm-progress`` (called from
    :func:`add_commands`)."""
    for name, cls, func, help_, example, hint in (
        ("vlm-prefs", PrefsArgs, _cmd_prefs,
         "label frame pairs with a VLM judge and train a preference reward model (RL-VLM-F)",
         "rewardlab vlm-prefs task=cartpole_swingup out=runs/prefs "
         "vlm.judge_base_url=http://localhost:8000/v1 vlm.judge_model=qwen2.5-vl", "out=DIR"),
        ("vlm-progress", ProgressArgs, _cmd_progress,
         "train a progress model on recorded successful episodes (vlm-eval's episodes.npz)",
         "rewardlab vlm-progress episodes_file=runs/vlm-eval-cartpole_swingup/episodes.npz "
         "out=runs/progress.pt", "out=FILE"),
    ):  # fmt: skip
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{cls.__doc__}\n\nexample: {example}",
            epilog="keys:\n" + "\n".join(schema_lines(cls)),
            formatter_class=formatter_class,
        )
        p.add_argument("overrides", nargs="*", metavar="key=value", help=f"settings, e.g. {hint}")
        p.set_defaults(func=func)


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add ``vlm-prefs``, ``vlm-progress`` and ``vlm-eval`` to the ``rewardlab`` command line."""
    add_prefs_command(sub, formatter_class)
    p = sub.add_parser(
        "vlm-eval",
        help="check a VLM reward against ground truth (VOC, success AUROC) before training",
        description=(
            "Record scripted episodes of a task (successes, partial progress, failures), render\n"
            "every step with the task's reward camera, score the frames with the reward model\n"
            "the vlm.* keys configure, and report value-order correlation (Spearman of score vs\n"
            "time on successful episodes), success-detection AUROC and the correlation with the\n"
            "task's own reward, with plots. Use it to pick prompts and models before training.\n\n"
            "example: rewardlab vlm-eval task=arm_reach vlm.alpha=1.0"
        ),
        epilog="keys (vlm.<field> sets a field of VLMConfig, see `rewardlab train --help`):\n"
        + "\n".join(f"  {line}" for line in schema_lines(VLMEvalArgs)),
        formatter_class=formatter_class,
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="settings, e.g. task=arm_reach"
    )
    p.set_defaults(func=cmd_vlm_eval)
