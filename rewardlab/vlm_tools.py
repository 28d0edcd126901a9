"""The work behind ``rewardlab vlm-eval``, ``vlm-prefs`` and ``vlm-progress``
(:mod:`rewardlab.vlm_commands` parses their arguments).

- :func:`vlm_eval`: record (or load) scripted episodes of a task, score every frame with the
  configured reward model, and report value-order correlation, success AUROC and the
  correlation with the task's own reward (``report.json``, ``report.md``, plots).
- :func:`run_prefs`: label frame pairs with a VLM judge and train a preference reward ensemble
  (RL-VLM-F), resumable.
- :func:`train_progress`: train a progress model on recorded successful episodes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.core.config import build
from rewardlab.core.files import atomic_write
from rewardlab.vlm_commands import PrefsArgs, ProgressArgs, VLMEvalArgs
from rewardlab.vlm_reward.base import check_frames, make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.evaluation import (
    EpisodeSet,
    evaluate,
    plot_report,
    record_episodes,
    write_report,
)
from rewardlab.vlm_reward.judge import judge_from_config
from rewardlab.vlm_reward.preference_data import (
    Labeller,
    PreferenceDataset,
    collect_preferences,
    record_frames,
)
from rewardlab.vlm_reward.preference_model import (
    UNSURE,
    RewardEnsemble,
    save_ensemble,
    save_tensors,
)
from rewardlab.vlm_reward.preference_training import EnsembleTrainResult, train_ensemble
from rewardlab.vlm_reward.progress import save_progress_model, train_from_episode_set
from rewardlab.vlm_reward.prompts import with_task_prompts
from rewardlab.vlm_reward.training import resolve_config


@dataclass(frozen=True)
class VLMEvalReport:
    """What :func:`vlm_eval` wrote."""

    path: Path
    """``report.md`` (``report.json``, plots and ``episodes.npz`` sit next to it)."""
    metrics: dict[str, Any]
    """The report: ``voc_mean``, ``success_auroc_frames``, ``human_reward_spearman``, ..."""


def vlm_eval(a: VLMEvalArgs, vcfg: VLMConfig, log: Callable[[str], None] = print) -> VLMEvalReport:
    """Carry out ``rewardlab vlm-eval`` with the reward model ``vcfg``.

    Raises:
        FileNotFoundError: ``episodes_file`` does not exist.
    """
    if a.episodes_file:
        path = Path(a.episodes_file)
        if not path.is_file():
            raise FileNotFoundError(f"episodes_file: {path} is not a file")
        episodes = EpisodeSet.load(path)
        log(f"[vlm-eval] {len(episodes.length)} episodes of {episodes.task} from {path}")
    else:
        log(f"[vlm-eval] recording scripted episodes of {a.task} ...")
        episodes = record_episodes(a.task, a.episodes, a.steps, a.hold_steps, a.seed)
    vcfg = resolve_config(vcfg, episodes.task, "vlm")
    scorer = make_scorer(vcfg)
    log(
        f"[vlm-eval] scoring {int(episodes.length.sum())} frames with {vcfg.scorer} "
        f"({vcfg.model}); goal {list(vcfg.goal_prompts)}, baseline {list(vcfg.baseline_prompts)}"
    )
    report, scores = evaluate(
        scorer, episodes, a.frame_stride, vcfg.interpolate, vcfg.render_size, vcfg.camera_zoom
    )
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
    path = atomic_write(out / "report.md", "\n".join(lines) + "\n")
    return VLMEvalReport(path, report)


def run_prefs(
    a: PrefsArgs, labeller: Labeller | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Carry out ``rewardlab vlm-prefs`` (``labeller``: the judge ``a.vlm`` configures if None).

    Returns:
        The metrics written to ``metrics.json``.
    """
    a.validate()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = with_task_prompts(build(VLMConfig, dict(a.vlm), "vlm"), a.task)
    if labeller is None:
        labeller = judge_from_config(cfg)
    size = int(getattr(cfg, "judge_image_size", 224))
    pool_file = out / "pool.pt"
    if pool_file.is_file():
        pool = torch.load(pool_file, weights_only=True)
        log(f"[vlm-prefs] {pool.shape[0]} frames from {pool_file}")
    else:
        if a.frames:
            pool = torch.load(a.frames, map_location="cpu", weights_only=True)
            check_frames(pool)
        else:
            log(f"[vlm-prefs] recording {a.pool_size} frames of {a.task} (random actions)")
            pool = record_frames(a.task, a.pool_size, size, a.record_every, a.seed)
        save_tensors(pool, pool_file)
    prefs_file = out / "prefs.pt"
    ds = PreferenceDataset.load(prefs_file) if prefs_file.is_file() else None
    if ds is not None:
        log(f"[vlm-prefs] continuing from {len(ds)} labelled pairs in {prefs_file}")
    ens = RewardEnsemble(a.members, image_size=a.image_size, seed=a.seed)
    result: EnsembleTrainResult | None = None
    per_round = math.ceil(a.queries / a.rounds)
    for r in range(a.rounds):
        target = min(a.queries, per_round * (r + 1))
        method = "uniform" if r == 0 else "disagreement"
        while (len(ds) if ds is not None else 0) < target:
            k = min(a.batch, target - (len(ds) if ds is not None else 0))
            seed = a.seed + 7919 * (len(ds) if ds is not None else 0)
            ds = collect_preferences(
                labeller, pool, k, ds, ens if r else None, method, k, seed, a.image_size, log=None
            )
            ds.save(prefs_file)
            unsure = int((ds.labels == UNSURE).sum())
            log(
                f"[vlm-prefs] round {r + 1}/{a.rounds}: {len(ds)}/{a.queries} pairs ({unsure} unsure)"
            )
        assert ds is not None
        result = train_ensemble(ens, ds, epochs=a.epochs, seed=a.seed, log=log)
    assert result is not None and ds is not None
    save_ensemble(ens, out / "reward.pt", meta={"task": a.task, "goal": cfg.goal_prompts[0]})
    metrics = {
        "pairs": len(ds),
        "unsure": int((ds.labels == UNSURE).sum()),
        "train_accuracy": result.accuracy,
        "final_loss": result.loss,
        "judge": dict(getattr(labeller, "stats", {})),
    }
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    log(
        f"[vlm-prefs] reward model: train accuracy {result.accuracy:.3f} on {result.pairs} pairs; "
        f"wrote {out / 'reward.pt'}\n[vlm-prefs] train with: rewardlab train task={a.task} "
        f"reward=vlm vlm.scorer=preference vlm.preference_checkpoint={out / 'reward.pt'}"
    )
    return metrics


def train_progress(a: ProgressArgs) -> Path:
    """Carry out ``rewardlab vlm-progress``: train the model and save it to ``a.out``."""
    model = train_from_episode_set(a.episodes_file, a.model, a.image_size, a.epochs, a.seed)
    save_progress_model(model, a.out)
    return Path(a.out)
