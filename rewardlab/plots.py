"""Learning curves from ``metrics.jsonl`` files (one JSON object per learner iteration).

One run::

    plot_learning_curves({"ppo": "runs/cp/metrics.jsonl"}, "runs/cp/plots/learning_curve.png")

Several runs in one figure, e.g. our PPO against SB3 over three seeds each (a list of files
under one label is drawn as its mean with a min-max band, on a common step grid)::

    plot_learning_curves(
        {"rewardlab ppo": ["runs/ppo-0/metrics.jsonl", "runs/ppo-1/metrics.jsonl"],
         "sb3 ppo": ["runs/sb3-0/metrics.jsonl", "runs/sb3-1/metrics.jsonl"]},
        "benchmarks/results/cartpole.png", title="cartpole_balance")

Rows without a metric (no episode finished in that iteration) are skipped for that metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_METRICS = (
    ("charts/episode_return", "episode return"),
    ("charts/success_rate", "success rate"),
)
"""(metric key, axis label) of each panel of :func:`plot_learning_curves`."""

PathLike = str | Path


def read_metrics(path: PathLike) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` (a run directory is accepted too); bad lines are skipped
    (a run killed mid-write may leave a partial last line)."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    rows = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def series(
    rows: Sequence[Mapping[str, Any]], key: str, x: str = "global_step"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of the rows that have a finite ``key``, sorted by ``x``.

    A resumed run may repeat steps in its file (iterations after the last checkpoint ran
    twice); the later row wins.
    """
    points: dict[float, float] = {}
    for r in rows:
        v, s = r.get(key), r.get(x)
        if isinstance(v, int | float) and isinstance(s, int | float) and math.isfinite(v):
            points[float(s)] = float(v)
    xs = np.array(sorted(points), dtype=float)
    return xs, np.array([points[s] for s in xs], dtype=float)


def _aggregate(
    curves: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max of several curves on a common grid (up to the shortest run's end)."""
    curves = [c for c in curves if len(c[0])]
    end = min(c[0][-1] for c in curves)
    start = max(c[0][0] for c in curves)
    grid = np.linspace(start, end, 200) if end > start else np.array([end])
    ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def run_title(task: str, run_name: str) -> str:
    """A run's plot title, naming the task once: the run directory's name when it already says
    the task (the default ``<task>-<time>``), else ``"<task> (<run name>)"``."""
    return run_name if task and task in run_name else f"{task} ({run_name})"


def plot_learning_curves(
    runs: Mapping[str, PathLike | Sequence[PathLike]] | Sequence[PathLike] | PathLike,
    out_path: PathLike,
    metrics: Sequence[tuple[str, str]] = DEFAULT_METRICS,
    title: str | None = None,
    x: str = "global_step",
) -> Path:
    """Write a png with one panel per metric, every run a labelled curve, against env steps.

    Args:
        runs: ``{label: metrics file or run dir, or a list of them (seeds)}``; a plain path or
            list of paths is labelled by each file's run-directory name.
        out_path: the png to write (parent folders are created).
        metrics: ``(key, axis label)`` per panel.
        title: figure title.
        x: the x-axis key.

    Returns:
        ``out_path``.

    Raises:
        FileNotFoundError: a metrics file is missing.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(runs, str | Path):
        runs = [runs]
    if not isinstance(runs, Mapping):
        runs = {_label(p): p for p in runs}
    data = {
        label: [read_metrics(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
        for label, paths in runs.items()
    }

    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(7, 2.6 * len(metrics) + 0.6), sharex=True, squeeze=False
    )
    for ax, (key, ylabel) in zip(axes[:, 0], metrics, strict=True):
        for i, (label, seeds) in enumerate(data.items()):
            color = f"C{i % 10}"
            curves = [series(rows, key, x) for rows in seeds]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            if len(curves) == 1:
                ax.plot(*curves[0], color=color, label=label, lw=1.6)
            else:
                grid, mean, lo, hi = _aggregate(curves)
                ax.plot(grid, mean, color=color, label=f"{label} (n={len(curves)})", lw=1.6)
                ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if key.endswith("success_rate"):
            ax.set_ylim(-0.03, 1.03)
        if ax.lines:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(
                0.5,
                0.5,
                f"no {key} logged yet",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="gray",
            )
    axes[-1, 0].set_xlabel("env steps" if x == "global_step" else x)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


TENSORBOARD_TAGS = {
    "rollout/ep_rew_mean": "charts/episode_return",
    "rollout/ep_len_mean": "charts/episode_length",
    "rollout/success_rate": "charts/success_rate",
}
"""SB3 TensorBoard tags -> the metric names of ``metrics.jsonl`` (other tags keep their names)."""


def metrics_from_tensorboard(
    log_dir: PathLike, tags: Mapping[str, str] = TENSORBOARD_TAGS
) -> list[dict[str, float]]:
    """Rows like ``metrics.jsonl``'s from the TensorBoard scalars in ``log_dir`` (not recursive).

    For learners that log to TensorBoard only (stable-baselines3): one row per logged step with
    ``global_step`` and every scalar at that step, SB3's tags renamed by ``tags``. Note that
    SB3's ``rollout/*`` values are means over its last 100 episodes, smoother than the
    per-iteration means of our PPO runner.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows: dict[int, dict[str, float]] = {}
    for events in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                row = rows.setdefault(int(ev.step), {"global_step": float(ev.step)})
                row[tags.get(tag, tag)] = float(ev.value)
    return [rows[k] for k in sorted(rows)]


def write_metrics(rows: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """Write rows as a ``metrics.jsonl`` (one JSON object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(r)) + "\n" for r in rows))
    return path


def _label(path: PathLike) -> str:
    p = Path(path)
    return (p if p.is_dir() else p.parent).name or str(p)
