"""Command-line commands of this part (added to ``rewardlab`` by ``rewardlab.cli``).

::

    rewardlab vlm-eval task=cartpole_swingup                        # shipped tiny CLIP, task prompts
    rewardlab vlm-eval task=arm_reach vlm.alpha=1.0 out=runs/vlm-eval-arm
    rewardlab vlm-eval task=cartpole_swingup vlm.model=ViT-B-32 vlm.pretrained=laion2b_s34b_b79k \\
        'vlm.goal_prompts=[a pole standing upright on a cart]'
    rewardlab vlm-prefs ...                                          # RL-VLM-F preference labels

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any


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


def cmd_vlm_eval(args: argparse.Namespace) -> int:
    """Record (or load) episodes, score them, write the report; prints the headline metrics."""
    from pathlib import Path

    from rewardlab.core.config import COMMAND_LINE, build, merge_layers, parse_overrides
    from rewardlab.vlm_reward.base import make_scorer
    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.evaluation import (
        EpisodeSet,
        evaluate,
        plot_report,
        record_episodes,
        write_report,
    )
    from rewardlab.vlm_reward.training import resolve_config

    data = parse_overrides(args.overrides)
    merged, sources = merge_layers([(COMMAND_LINE, data)], default_source=COMMAND_LINE)
    a = build(VLMEvalArgs, merged, "", sources)
    vcfg = build(VLMConfig, a.vlm, "vlm", sources)
    if a.episodes_file:
        path = Path(a.episodes_file)
        if not path.is_file():
            print(f"rewardlab vlm-eval: episodes_file: {path} is not a file", file=sys.stderr)
            return 2
        episodes = EpisodeSet.load(path)
        print(f"[vlm-eval] {len(episodes.length)} episodes of {episodes.task} from {path}")
    else:
        print(f"[vlm-eval] recording scripted episodes of {a.task} ...", flush=True)
        episodes = record_episodes(a.task, a.episodes, a.steps, a.hold_steps, a.seed)
    vcfg = resolve_config(vcfg, episodes.task, "vlm")
    scorer = make_scorer(vcfg)
    print(
        f"[vlm-eval] scoring {int(episodes.length.sum())} frames with {vcfg.scorer} "
        f"({vcfg.model}); goal {list(vcfg.goal_prompts)}, baseline {list(vcfg.baseline_prompts)}",
        flush=True,
    )
    report, scores = evaluate(scorer, episodes, a.frame_stride, vcfg.interpolate)
    report["scorer"] = {
        "scorer": vcfg.scorer,
        "model": vcfg.model,
        "pretrained": vcfg.pretrained,
        "checkpoint": vcfg.checkpoint,
        "goal_prompts": list(vcfg.goal_prompts),
        "baseline_prompts": list(vcfg.baseline_prompts),
        "alpha": vcfg.alpha,
    }
    out = Path(a.out or f"runs/vlm-eval-{episodes.task}")
    out.mkdir(parents=True, exist_ok=True)
    if not a.episodes_file:
        episodes.save(out / "episodes.npz")
    write_report(report, out)
    plots = plot_report(episodes, scores, report, out)
    lines = [
        f"# vlm-eval: {episodes.task}",
        "",
        f"scorer `{vcfg.scorer}`, model `{vcfg.model}`, alpha {vcfg.alpha}",
        f"goal prompts {list(vcfg.goal_prompts)}, baseline prompts {list(vcfg.baseline_prompts)}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| VOC (Spearman of score vs time, successful episodes, mean of {report['voc_episodes']}) | {report['voc_mean']:.3f} |",
        f"| success AUROC (all frames) | {report['success_auroc_frames']:.3f} |",
        f"| success AUROC (last frames) | {report['success_auroc_last_frame']:.3f} |",
        f"| correlation with the task's reward (Pearson / Spearman) | {report['human_reward_pearson']:.3f} / {report['human_reward_spearman']:.3f} |",
        f"| frames scored per second (render + score) | {report['frames_per_s']} |",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
    ]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"[vlm-eval] report: {out / 'report.md'}")
    print(f"voc: {report['voc_mean']:.3f}")
    print(f"success_auroc: {report['success_auroc_frames']:.3f}")
    print(f"human_reward_spearman: {report['human_reward_spearman']:.3f}")
    return 0


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add this part's subparsers to the ``rewardlab`` command line."""
    from rewardlab.core.config import schema_lines
    from rewardlab.vlm_reward.prefs_command import add_prefs_command

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
