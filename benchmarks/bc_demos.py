"""Behaviour cloning from N scripted demonstrations: the task's own success of the BC policy.

For each task and N: record N episodes of the task's scripted ``success`` policy (``rewardlab
demos record``, seed 1000 + run seed; only the successful ones are cloned), train ``agent=bc``
through the pipeline (``rewardlab train``: run directory, checkpoints, export), then evaluate the
exported run's policy deterministically on 64 fresh episodes of the eval seed (never the demos'
resets). The script itself is evaluated on the same 64 episodes as the ceiling.

Usage::

    python benchmarks/bc_demos.py --task franka_lift --demos 10 50 200 --seeds 0 1 2 \
        --extra bc.eval_every=5 bc.eval_episodes=32
    python benchmarks/bc_demos.py --task metaworld_drawer_open --script open --demos 10 50

Results append to ``benchmarks/results/bc_demos.jsonl`` (one row per run); ``--table`` prints
the table of ``benchmarks/results/bc_demos.md`` from it and draws
``benchmarks/results/bc_demos_<task>.png`` (periodic success against gradient steps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
JSONL = RESULTS / "bc_demos.jsonl"


def _load() -> float:
    return os.getloadavg()[0]


def run_one(
    task: str, script: str, n: int, seed: int, steps: int, root: Path, extra: list[str]
) -> dict:
    """Record, train, evaluate one configuration; returns its result row."""
    from rewardlab.cli import main

    demos = root / f"{task}-{script}-{n}-s{seed}.npz"
    run = root / f"{task}-bc-{n}-s{seed}"
    t0 = time.perf_counter()
    code = main(["demos", "record", f"task={task}", f"script={script}", f"episodes={n}",
                 f"seed={1000 + seed}", "only_success=true", f"out={demos}"])  # fmt: skip
    assert code == 0, "recording failed"
    t1 = time.perf_counter()
    words = ["train", f"task={task}", "agent=bc", f"bc.demos={demos}", f"run_dir={run}",
             "resume=false", f"seed={seed}", f"total_steps={steps}", "num_envs=32",
             "eval.episodes=64", "eval.num_envs=64", "eval.video=false", *extra]  # fmt: skip
    load0 = _load()
    code = main(words)
    assert code == 0, "training failed"
    t2 = time.perf_counter()
    ev = json.loads((run / "eval.json").read_text())
    return {
        "task": task, "script": script, "demos": n, "seed": seed, "grad_steps": steps,
        "extra": extra, "bc_success": ev["success_rate"], "episodes": ev["episodes"],
        "record_s": round(t1 - t0, 1), "train_eval_s": round(t2 - t1, 1),
        "load": round((load0 + _load()) / 2, 1), "run_dir": str(run),
        "command": " ".join(["rewardlab", *words]),
    }  # fmt: skip


def script_success(task: str, script: str, episodes: int = 64) -> float:
    """The script's own success on the eval episodes (``rewardlab train``'s eval seed 10000)."""
    from rewardlab.envs import make_env
    from rewardlab.envs.demos import record_script

    env = make_env(task, num_envs=episodes, nthread=1, seed=10_000)
    try:
        eps = record_script(env, task, script, seed=10_000)
    finally:
        env.close()
    return float(eps.episode_success.mean())


def table() -> str:
    """The results table (median over seeds per task and N)."""
    rows = [json.loads(x) for x in JSONL.read_text().splitlines() if x.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(
            (r["task"], r["script"], r["demos"], r["grad_steps"], " ".join(r["extra"])), []
        ).append(r)
    lines = ["| task | demos (script) | gradient steps | seeds | BC success per seed (64 episodes) | median | script itself | train+eval s (load) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (task, script, n, steps, extra), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        per = ", ".join(f"{r['bc_success']:.2f}" for r in rs)
        med = statistics.median(r["bc_success"] for r in rs)
        ceiling = rs[0].get("script_success")
        t = statistics.median(r["train_eval_s"] for r in rs)
        load = statistics.median(r["load"] for r in rs)
        lines.append(
            f"| `{task}` {extra} | {n} (`{script}`) | {steps:,} | {', '.join(str(r['seed']) for r in rs)} "
            f"| {per} | **{med:.2f}** | {'' if ceiling is None else f'{ceiling:.2f}'} | {t:.0f} ({load:.0f}) |"
        )
    return "\n".join(lines)


def plot(task: str, out: Path) -> Path:
    """Periodic-evaluation success against gradient steps, one line per (N, seed) run of ``task``
    with the default settings (the rows' run directories must still exist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in JSONL.read_text().splitlines() if x.strip()]
    rows = [
        r
        for r in rows
        if r["task"] == task and not any("ignore_obs" in e or "keep_best" in e for e in r["extra"])
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {}
    for r in sorted(rows, key=lambda r: (r["demos"], r["seed"])):
        metrics = Path(r["run_dir"]) / "metrics.jsonl"
        if not metrics.is_file():
            continue
        pts = [json.loads(x) for x in metrics.read_text().splitlines()]
        pts = [
            (p["global_step"], p["charts/success_rate"]) for p in pts if "charts/success_rate" in p
        ]
        color = colors.setdefault(r["demos"], f"C{len(colors)}")
        ax.plot(*zip(*pts, strict=True), color=color, alpha=0.8,
                label=f"N={r['demos']}" if r["seed"] == min(x["seed"] for x in rows if x["demos"] == r["demos"]) else None)  # fmt: skip
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("success (periodic eval, 32 episodes)")
    ax.set_title(f"BC on {task} from N scripted demos (3 seeds each)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", default="franka_lift")
    p.add_argument("--script", default="pick_and_lift")
    p.add_argument("--demos", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=5000, help="gradient steps")
    p.add_argument("--root", default="/tmp/bc_demos")
    p.add_argument(
        "--table", action="store_true", help="only print the table of the results so far"
    )
    p.add_argument(
        "--extra", nargs="*", default=[], help="more key=value words for rewardlab train"
    )
    a = p.parse_args()
    if a.table:
        print(table())
        for task in sorted(
            {json.loads(x)["task"] for x in JSONL.read_text().splitlines() if x.strip()}
        ):
            print(plot(task, RESULTS / f"bc_demos_{task}.png"))
        return
    ceiling = script_success(a.task, a.script)
    print(
        f"[bc_demos] {a.task} script {a.script}: {ceiling:.2f} on the 64 eval episodes", flush=True
    )
    for n in a.demos:
        for seed in a.seeds:
            row = run_one(a.task, a.script, n, seed, a.steps, Path(a.root), a.extra)
            row["script_success"] = ceiling
            with JSONL.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[bc_demos] {a.task} N={n} seed={seed}: BC {row['bc_success']:.2f}", flush=True)
    print(table())


if __name__ == "__main__":
    main()
