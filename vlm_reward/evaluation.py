"""Evaluating a frame scorer against the simulator's ground truth, before training on it.

1. :func:`record_episodes` runs the scripted policies a task declares (``Task.scripted_episodes``
   in its module: successes, partial progress, failures) in the batched env and keeps, per step, the physics rows needed to redraw the frame,
   the task's own success flag and its human-written reward. Successful episodes end once the
   task's success has held for ``hold_steps`` steps (a demonstration of reaching the goal).
   :meth:`EpisodeSet.save` / :meth:`EpisodeSet.load` keep them (``.npz``), so several models and
   prompts can be compared on the same episodes.
2. :func:`evaluate` renders every recorded step with the task's reward camera at the scorer's
   input size, scores the frames in batches, and reports

   - **VOC** (value-order correlation, as VLAC / GVL): Spearman correlation of the score with
     time, per successful episode; the mean over episodes is the headline.
   - **success AUROC**: how well the score separates frames where the task's success holds from
     frames where it does not (all recorded frames), and the same over episodes' last frames.
   - **human-reward correlation**: Pearson and Spearman correlation of the score with the task's
     own reward terms, per frame.

   plus plots (score over time by episode kind, ROC curve, score against the human reward).

What it cannot do: scripted policies exist where a task declares them (``cartpole_swingup``,
``cartpole_balance`` and ``arm_reach`` today; the others opt out, saying why); other tasks need
episodes recorded by the user (:class:`EpisodeSet` from any policy).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.envs import get_task, make_env, task_names
from rewardlab.envs.demos import Episodes, concatenate, record_script, scripts_of
from rewardlab.envs.tasks.knowledge import declared
from rewardlab.vlm_reward.base import FrameScorer
from rewardlab.vlm_reward.rendering import TiledRenderer

# -- recording -------------------------------------------------------------------------------


def scripted_tasks() -> list[str]:
    """The registered tasks that declare scripted episodes (tasks that fail to load skipped)."""
    out = []
    for name in task_names():
        try:
            if declared(get_task(name), "scripted_episodes"):
                out.append(name)
        except Exception:  # noqa: BLE001, S112 - a broken task file declares nothing
            continue
    return out


EpisodeSet = Episodes
"""Recorded episodes: the one episode format of :mod:`rewardlab.envs.demos` (observations,
actions, physics rows to redraw each frame, success, reward, kind, script)."""


def record_episodes(
    task: str,
    episodes_per_script: int = 8,
    steps: int | None = None,
    hold_steps: int = 50,
    seed: int = 0,
    scripts: list[str] | None = None,
) -> EpisodeSet:
    """Run the task's scripted policies and record every step.

    Args:
        task: a task that declares scripted episodes (``Task.scripted_episodes``).
        episodes_per_script: parallel episodes per script (one batched env each).
        steps: steps per episode; default: the task's episode length (capped at 300).
        hold_steps: a successful episode ends once the task's success has held this long.
        seed: seed of the reset distribution.
        scripts: subset of the task's script names; all when ``None``.

    Raises:
        ValueError: no scripts for ``task`` or an unknown script name.
    """
    table = scripts_of(
        task,
        lambda: (
            f"tasks with scripted episodes: {', '.join(scripted_tasks())} "
            "(or record an EpisodeSet from your own policy)"
        ),
    )
    names = scripts or list(table)
    unknown = [s for s in names if s not in table]
    if unknown:
        raise ValueError(f"scripts: unknown {unknown} for {task}; known: {list(table)}")
    parts = []
    for k, name in enumerate(names):
        env = make_env(task, num_envs=episodes_per_script, nthread=1, seed=seed + 1000 * k)
        try:
            horizon = int(steps or min(env.max_episode_steps, 300))
            parts.append(
                record_script(
                    env, task, name, steps=horizon, hold_steps=hold_steps, seed=seed + 1000 * k
                )
            )
        finally:
            env.close()
    return concatenate(parts)


# -- metrics ---------------------------------------------------------------------------------


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 0-based."""
    from scipy.stats import rankdata

    return rankdata(x, method="average") - 1.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    sx, sy = x.std(), y.std()
    if len(x) < 2 or sx == 0 or sy == 0:
        return float("nan")
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(_rank(np.asarray(x)), _rank(np.asarray(y)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (Mann-Whitney U with ties
    counted half); NaN when one class is empty."""
    labels = np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    r = _rank(np.asarray(scores, np.float64)) + 1.0
    return float((r[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (for plotting)."""
    order = np.argsort(-np.asarray(scores))
    lab = np.asarray(labels, bool)[order]
    tp = np.concatenate([[0], np.cumsum(lab)]) / max(lab.sum(), 1)
    fp = np.concatenate([[0], np.cumsum(~lab)]) / max((~lab).sum(), 1)
    return fp, tp


def interpolate_strided(scores: np.ndarray, stride: int, linear: bool = True) -> np.ndarray:
    """Fill the steps between every ``stride``-th score of a sequence: linearly (``linear``) or
    by holding the last scored value; after the last scored step the value is held."""
    t = np.arange(len(scores))
    keep = t[::stride]
    if linear:
        return np.interp(t, keep, scores[keep])
    return scores[(t // stride) * stride]


def score_episode(
    scorer: FrameScorer,
    episodes: EpisodeSet,
    index: int,
    stride: int = 1,
    renderer: Any = None,
    interpolate: bool = True,
) -> np.ndarray:
    """Scores ``[length]`` of one recorded episode; with ``stride`` > 1 only every ``stride``-th
    frame is scored and the rest interpolated linearly (or held, ``interpolate=False``)."""
    n = int(episodes.length[index])
    if renderer is None:
        renderer = TiledRenderer.for_task(episodes.task, scorer.image_size)
    steps = list(range(0, n, stride))
    physics = {f: v[index, steps] for f, v in episodes.physics.items()}
    frames = renderer.render_rows(physics)
    s = scorer.score(frames).numpy().astype(np.float64)
    full = np.full(n, np.nan)
    full[steps] = s
    return interpolate_strided(full[:n], stride, interpolate) if stride > 1 else full


def evaluate(
    scorer: FrameScorer,
    episodes: EpisodeSet,
    stride: int = 1,
    interpolate: bool = True,
    render_size: int | None = None,
    zoom: float = 1.0,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Score every recorded episode and compute the metrics of the module doc; frames are drawn
    at ``render_size`` (``None``: the scorer's input size) with the reward camera's ``zoom``
    (``vlm.render_size``, ``vlm.camera_zoom``).

    Returns:
        ``(report, scores)``: the metrics as a JSON-able dict, and each episode's scores.
    """
    size = render_size or scorer.image_size
    renderer = TiledRenderer.for_task(episodes.task, size, zoom=zoom)
    t0 = time.perf_counter()
    scores = [score_episode(scorer, episodes, i, stride, renderer, interpolate) for i in range(len(episodes.length))]  # fmt: skip
    seconds = time.perf_counter() - t0
    renderer.close()
    ep_success = episodes.episode_success
    voc = [
        spearman(s, np.arange(len(s)))
        for s, ok in zip(scores, ep_success, strict=True)
        if ok and len(s) > 2
    ]
    flat_s = np.concatenate(scores)
    flat_y = np.concatenate([episodes.success[i, : len(s)] for i, s in enumerate(scores)])
    flat_r = np.concatenate([episodes.reward[i, : len(s)] for i, s in enumerate(scores)])
    last = np.array([s[-1] for s in scores])
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted(set(episodes.kind)):
        idx = [i for i, k in enumerate(episodes.kind) if k == kind]
        by_kind[kind] = {
            "episodes": len(idx),
            "task_success_rate": float(ep_success[idx].mean()),
            "mean_score": float(np.mean([scores[i].mean() for i in idx])),
            "mean_last_score": float(last[idx].mean()),
        }
    report = {
        "task": episodes.task,
        "episodes": len(scores),
        "frames": int(len(flat_s)),
        "frame_stride": stride,
        "voc_mean": float(np.mean(voc)) if voc else float("nan"),
        "voc_median": float(np.median(voc)) if voc else float("nan"),
        "voc_episodes": len(voc),
        "success_auroc_frames": auroc(flat_s, flat_y),
        "success_auroc_last_frame": auroc(last, ep_success),
        "human_reward_pearson": pearson(flat_s, flat_r),
        "human_reward_spearman": spearman(flat_s, flat_r),
        "by_kind": by_kind,
        "seconds": round(seconds, 2),
        "frames_per_s": round(len(flat_s) / max(seconds, 1e-9), 1),
    }
    return report, scores


def plot_report(
    episodes: EpisodeSet, scores: list[np.ndarray], report: dict[str, Any], out: Path
) -> list[Path]:
    """Write ``scores_over_time.png``, ``roc.png`` and ``score_vs_human_reward.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = {"success": "tab:green", "partial": "tab:orange", "failure": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4))
    seen = set()
    for s, kind in zip(scores, episodes.kind, strict=True):
        ax.plot(s, color=colors.get(kind, "gray"), alpha=0.5, lw=1, label=None if kind in seen else kind)  # fmt: skip
        seen.add(kind)
    ax.set_xlabel("control step")
    ax.set_ylabel("score")
    ax.set_title(f"{episodes.task}: score over time (VOC {report['voc_mean']:.2f})")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "scores_over_time.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    flat_s = np.concatenate(scores)
    flat_y = np.concatenate([episodes.success[i, : len(s)] for i, s in enumerate(scores)])
    fp, tp = roc_curve(flat_s, flat_y)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fp, tp, label=f"frames, AUROC {report['success_auroc_frames']:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.5)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{episodes.task}: success detection")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out / "roc.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    flat_r = np.concatenate([episodes.reward[i, : len(s)] for i, s in enumerate(scores)])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(flat_r, flat_s, s=2, alpha=0.3, c=flat_y, cmap="coolwarm")
    ax.set_xlabel("task's human reward")
    ax.set_ylabel("score")
    ax.set_title(f"Spearman {report['human_reward_spearman']:.2f}")
    fig.tight_layout()
    paths.append(out / "score_vs_human_reward.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(report: dict[str, Any], out: Path) -> Path:
    """Write ``report.json`` (NaN as null) and return its path."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(clean(report), indent=2) + "\n")
    return path
