"""Seed table: deterministic success of the FINAL policy over many seeds, at the default budgets.

For every task and seed, one training run exactly as ``rewardlab train task=<task> seed=<seed>``
configures it (``sim_configs/train/default.yaml`` under ``sim_configs/train/<task>.yaml``:
worlds, PPO hyper-parameters, ``total_steps``), driven directly through
``OnPolicyRunner`` + ``make_env``, then ``agents.evaluate.evaluate`` of the final policy (the
one ``rewardlab train`` exports) on ``--episodes`` fresh episodes (deterministic actions, an env
of its own seeded ``10_000 + seed``). Also recorded per run: the same evaluation at 25/50/75 % of
the budget (does the final policy hold what was learned?), the stochastic policy's success, the
largest per-update KL, early stops and the training wall time.

The table follows rliable (Agarwal et al., 2021): per task the median, the interquartile range
and the interquartile mean over seeds, and the worst seed, instead of a mean of a few runs.

Runs go one at a time (torch on 1 thread, as the runner sets it); each finished run is appended
to ``<out>.jsonl`` at once, and a rerun skips the (task, seed) pairs already there, so a long
sweep can be stopped and continued.

Usage::

    python benchmarks/seed_table.py                              # the full table (hours on 2 cores)
    python benchmarks/seed_table.py --tasks cartpole_balance --seeds 10
    python benchmarks/seed_table.py --report-only                # redraw from the .jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402

DEFAULT_SEEDS = {"cartpole_balance": 10, "cartpole_swingup": 10, "arm_reach": 10, "ant_run": 5}
"""Seeds per task (issue 11): 10, and 5 for the slower Ant."""

TARGETS: dict[str, tuple[float, int | None]] = {
    "cartpole_balance": (0.95, None),
    "arm_reach": (0.95, None),
    "ant_run": (0.8, 4),
    "cartpole_swingup": (0.0, None),
}
"""Per task: (success bound, seeds that must reach it; ``None`` = every seed). swingup: as measured."""

CURVE_FRACTIONS = (0.25, 0.5, 0.75)
"""Fractions of the budget at which the policy of the moment is evaluated too."""


class _Stochastic(torch.nn.Module):
    """The trained policy with its Gaussian noise, for ``evaluate(deterministic=False)``."""

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self.policy = runner.inference_policy()
        self.std = runner.policy.action_std.detach().cpu().clone()
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self.policy.actor(self.policy.normalizer(obs))
        noise = torch.randn(mean.shape, generator=self.generator)
        return (mean + self.std * noise).clamp(-1.0, 1.0)


def run_one(task: str, seed: int, episodes: int) -> dict[str, Any]:
    """Train ``task`` with ``seed`` at its default budget; evaluate along the way and at the end."""
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    cfg = load_train_config({"task": task, "seed": seed})
    env = make_env(
        task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed, nthread=cfg.nthread
    )
    eval_env = make_env(
        task, num_envs=64, cfg=cfg.task_config(), seed=10_000 + seed, nthread=cfg.nthread
    )
    runner = OnPolicyRunner(env, cfg.ppo, log_dir=None, seed=seed)
    total = int(cfg.total_steps)
    runner.schedule_steps = total  # learn() runs to each mark: schedules count the whole run
    marks = [int(f * total) for f in CURVE_FRACTIONS] + [total]
    history: list[dict[str, float]] = []
    curve: list[dict[str, float]] = []
    train_s = 0.0
    for mark in marks:
        t0 = time.perf_counter()
        history += runner.learn(mark, progress=False)
        train_s += time.perf_counter() - t0
        res = evaluate(runner.inference_policy(), eval_env, episodes=episodes, seed=10_000 + seed)
        curve.append({"env_steps": float(runner.global_step), "success": res["success_rate"]})
    final = evaluate(runner.inference_policy(), eval_env, episodes=episodes, seed=10_000 + seed)
    stoch = evaluate(_Stochastic(runner), eval_env, episodes=episodes, seed=10_000 + seed,
                     deterministic=False)  # fmt: skip
    env.close()
    eval_env.close()
    kl = [h["losses/approx_kl"] for h in history]
    return {
        "task": task,
        "seed": seed,
        "env_steps": runner.global_step,
        "iterations": runner.iteration,
        "num_envs": cfg.num_envs,
        "train_s": train_s,
        "load_1min": os.getloadavg()[0],
        "success": final["success_rate"],
        "success_stochastic": stoch["success_rate"],
        "return_mean": final["return_mean"],
        "curve": curve,
        "kl_max": max(kl),
        "kl_median": statistics.median(kl),
        "kl_over_2x": sum(k > 2 * cfg.ppo.desired_kl for k in kl),
        "early_stops": int(sum(h.get("losses/early_stop", 0.0) for h in history)),
        "desired_kl": cfg.ppo.desired_kl,
        "final_lr": history[-1]["charts/learning_rate"],
        "final_action_std": history[-1]["charts/action_std"],
        "train_success_last": next(
            (h["charts/success_rate"] for h in reversed(history) if "charts/success_rate" in h),
            None,
        ),
    }


def iqm(values: list[float]) -> float:
    """Interquartile mean (rliable's IQM): the mean of the middle 50 % of the sorted values."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return float(v[lo:hi].mean()) if hi > lo else float(v.mean())


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task: median, IQR, IQM, worst seed, target verdict, costs."""
    rows = []
    for task in dict.fromkeys(r["task"] for r in runs):
        rs = sorted((r for r in runs if r["task"] == task), key=lambda r: r["seed"])
        s = [r["success"] for r in rs]
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        worst = min(rs, key=lambda r: r["success"])
        bound, need = TARGETS.get(task, (0.0, None))
        hit = sum(x >= bound for x in s)
        need_n = len(rs) if need is None else need
        verdict = "as measured" if bound == 0.0 else ("met" if hit >= need_n else "NOT met")
        rows.append(
            {
                "task": task,
                "seeds": len(rs),
                "median": float(med),
                "iqr": [float(q1), float(q3)],
                "iqm": iqm(s),
                "worst": worst["success"],
                "worst_seed": worst["seed"],
                "target": None
                if bound == 0.0
                else f">= {bound:g} on "
                + ("every seed" if need is None else f"{need} of {len(rs)} seeds"),
                "seeds_at_target": hit,
                "verdict": verdict,
                "final_below_best": sum(
                    r["success"] + 1e-9 < max(c["success"] for c in r["curve"]) for r in rs
                ),
                "stochastic_median": float(np.median([r["success_stochastic"] for r in rs])),
                "kl_max": max(r["kl_max"] for r in rs),
                "train_s_median": float(np.median([r["train_s"] for r in rs])),
                "env_steps": rs[0]["env_steps"],
                "load_1min_median": float(np.median([r["load_1min"] for r in rs])),
                "per_seed": {r["seed"]: r["success"] for r in rs},
            }
        )
    return rows


def report(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        "# Seed table: deterministic success of the final policy",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']}, mujoco {info['mujoco']}. Written by `benchmarks/seed_table.py`.",
        "",
        "Each seed: one training run at the task's default budget (`sim_configs/train/`), then "
        "the final policy (what `rewardlab train` exports) on 64 fresh episodes with "
        "deterministic actions (`agents.evaluate.evaluate`, eval env seeded 10000 + seed). "
        "Median, interquartile range and interquartile mean (IQM) over seeds, as rliable "
        "reports them, and the worst seed. Wall time is training only, one run at a time on "
        "a machine shared with other work (1-min load average in the table).",
    ]
    note = contention_note(info)
    if note:
        lines += ["", note]
    table = []
    for r in rows:
        table.append(
            [
                r["task"],
                r["seeds"],
                f"{r['median']:.2f}",
                f"[{r['iqr'][0]:.2f}, {r['iqr'][1]:.2f}]",
                f"{r['iqm']:.2f}",
                f"{r['worst']:.2f} (seed {r['worst_seed']})",
                r["target"] or "as measured",
                f"{r['seeds_at_target']}/{r['seeds']} ({r['verdict']})" if r["target"] else "-",
                f"{r['stochastic_median']:.2f}",
                f"{r['final_below_best']}/{r['seeds']}",
                f"{r['kl_max']:.3f}",
                f"{r['env_steps']:,}",
                f"{r['train_s_median']:.0f} (load {r['load_1min_median']:.1f})",
            ]
        )
    lines += [
        "",
        markdown_table(
            [
                "task",
                "seeds",
                "median",
                "IQR",
                "IQM",
                "worst seed",
                "target",
                "seeds at target",
                "stochastic median",
                "final < an earlier eval",
                "max KL of an update",
                "env steps",
                "train s (median)",
            ],
            table,
        ),  # fmt: skip
        "",
        "Per seed (final deterministic success):",
        "",
    ]
    for r in rows:
        seeds = ", ".join(f"{s}: {v:.2f}" for s, v in sorted(r["per_seed"].items()))
        lines.append(f"- **{r['task']}**: {seeds}")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path) -> None:
    """Left: final success per seed with median and IQR per task. Right: success along training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [r["task"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    for i, row in enumerate(rows):
        vals = [r["success"] for r in runs if r["task"] == row["task"]]
        jitter = np.linspace(-0.15, 0.15, len(vals))
        ax.scatter(i + jitter, vals, s=18, color="tab:blue", alpha=0.8, zorder=3)
        ax.plot([i - 0.25, i + 0.25], [row["median"]] * 2, color="black", lw=2, zorder=4)
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (i - 0.25, row["iqr"][0]), 0.5, row["iqr"][1] - row["iqr"][0],
                color="tab:blue", alpha=0.15, zorder=2,
            )
        )  # fmt: skip
        bound = TARGETS.get(row["task"], (0.0, None))[0]
        if bound > 0:
            ax.plot([i - 0.35, i + 0.35], [bound] * 2, color="tab:red", ls="--", lw=1)
    ax.set_xticks(range(len(tasks)), tasks, rotation=15)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("final deterministic success (64 episodes)")
    ax.set_title("per seed (dots), median (bar), IQR (band), target (red)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1]
    colors = dict(
        zip(tasks, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False)
    )
    for r in runs:
        xs = [c["env_steps"] / r["env_steps"] for c in r["curve"]] + [1.0]
        ys = [c["success"] for c in r["curve"]] + [r["success"]]
        ax.plot(xs, ys, color=colors.get(r["task"]), alpha=0.45, lw=1, marker="o", ms=2)
    for t in tasks:
        ax.plot([], [], color=colors[t], label=t)
    ax.set_xlabel("fraction of the default budget")
    ax.set_ylabel("deterministic success")
    ax.set_title("success along training, one line per seed", fontsize=9)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def load_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds 0..N-1 per task (default per task)"
    )
    p.add_argument(
        "--shard",
        default="0/1",
        help="K/M: run only seeds with seed %% M == K (M processes share a sweep; each appends "
        "to the same .jsonl), then report what the .jsonl holds",
    )
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--out", type=Path, default=RESULTS / "seed_table", help="path without suffix")
    p.add_argument("--report-only", action="store_true", help="only rewrite the table and plot")
    args = p.parse_args(argv)
    try:
        shard, shards = (int(x) for x in args.shard.split("/"))
        if not 0 <= shard < shards:
            raise ValueError
    except ValueError:
        p.error(f"--shard: got {args.shard!r}, expected K/M with 0 <= K < M")
    jsonl = args.out.with_suffix(".jsonl")
    runs = load_runs(jsonl)
    if not args.report_only:
        done = {(r["task"], r["seed"]) for r in runs}
        for task in args.tasks:
            for seed in range(args.seeds or DEFAULT_SEEDS.get(task, 10)):
                if (task, seed) in done or seed % shards != shard:
                    continue
                print(f"{task} seed {seed} ...", flush=True)
                r = run_one(task, seed, args.episodes)
                print(
                    f"  success {r['success']:.2f} (stochastic {r['success_stochastic']:.2f}), "
                    f"curve {[round(c['success'], 2) for c in r['curve']]}, max KL {r['kl_max']:.3f}, "
                    f"early stops {r['early_stops']}, {r['train_s']:.0f} s (load {r['load_1min']:.1f})",
                    flush=True,
                )
                jsonl.parent.mkdir(parents=True, exist_ok=True)
                with jsonl.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                runs.append(r)
    order = {t: i for i, t in enumerate(args.tasks)}
    runs = sorted(
        (r for r in runs if r["task"] in order), key=lambda r: (order[r["task"]], r["seed"])
    )
    if not runs:
        raise SystemExit("no runs to report")
    info = system_info()
    rows = summarize(runs)
    text = report(rows, info)
    print(text)
    args.out.with_suffix(".md").write_text(text)
    write_json(args.out.with_suffix(".json"), {"system": info, "summary": rows, "runs": runs})
    plot(runs, rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.md')}, .json, .png")


if __name__ == "__main__":
    main()
