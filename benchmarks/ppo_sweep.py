"""PPO settings sweep: env steps (and training seconds) to the first deterministic success.

For one task and one set of ``key=value`` overrides (on top of the task's shipped config in
``sim_configs/train/``), every seed trains with ``OnPolicyRunner``; every ``--eval-steps`` env
steps its deterministic policy runs the first episode of 32 worlds of one fixed-seed evaluation
env (``train_vs_sb3.Evaluator``, the criterion of ``train_vs_peers.py``). The run stops at the
first evaluation at or over the task's ``success_threshold`` (``--budget 0``, a screening run), or
trains on to ``--budget`` env steps and evaluates the final policy on 64 fresh episodes
(``agents.evaluate.evaluate``, seeded ``10_000 + seed``). Env steps to the threshold do not
depend on machine load; seconds and steps/s do, so compare them only at a similar load (recorded
per run).

Runs go one at a time (torch on 1 thread); each finished run is appended to ``<out>.jsonl`` and
``<out>.md`` is rewritten from every run there.

Usage::

    python benchmarks/ppo_sweep.py --name kl05 ppo.desired_kl=0.05            # seeds 0 1 2
    python benchmarks/ppo_sweep.py --name 128x16 --seeds 0 num_envs=128 ppo.num_steps=16
    python benchmarks/ppo_sweep.py --report-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table  # noqa: E402
from train_vs_sb3 import Evaluator  # noqa: E402


def run_one(
    task: str, seed: int, overrides: list[str], max_steps: int, budget: int, eval_steps: int,
    evaluator: Evaluator, threshold: float,
) -> dict[str, Any]:  # fmt: skip
    """Train one seed; returns the run record (steps/seconds to threshold, curve, final success)."""
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    cfg = load_train_config([f"task={task}", f"seed={seed}", *overrides])
    env = make_env(task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed)
    runner = OnPolicyRunner(env, cfg.ppo, log_dir=None, seed=seed)
    per_iter = cfg.num_envs * cfg.ppo.num_steps
    end = budget or max_steps
    runner.schedule_steps = end  # schedules count progress against the run, not each chunk
    train_s, next_eval = 0.0, eval_steps
    reached: tuple[int, float] | None = None
    curve: list[tuple[int, float, float]] = []
    while runner.global_step < end:
        start = time.perf_counter()
        runner.learn(runner.global_step + per_iter, progress=False)
        train_s += time.perf_counter() - start
        if runner.global_step >= next_eval or runner.global_step >= end:
            next_eval += eval_steps
            rate = evaluator(runner.inference_policy())["success_rate"]
            curve.append((runner.global_step, round(train_s, 1), rate))
            if reached is None and rate >= threshold:
                reached = (runner.global_step, round(train_s, 1))
                if not budget:
                    break
    final = None
    if budget:
        eval_env = make_env(task, num_envs=64, cfg=cfg.task_config(), seed=10_000 + seed)
        final = evaluate(runner.inference_policy(), eval_env, episodes=64, seed=10_000 + seed)[
            "success_rate"
        ]
        eval_env.close()
    env.close()
    return {
        "task": task, "seed": seed, "overrides": overrides, "max_steps": max_steps,
        "budget": budget, "reached_steps": reached[0] if reached else None,
        "reached_s": reached[1] if reached else None, "env_steps": runner.global_step,
        "train_s": round(train_s, 1), "steps_per_s": round(runner.global_step / train_s),
        "final_success": final, "load_1min": round(os.getloadavg()[0], 2), "curve": curve,
        "config": {"num_envs": cfg.num_envs, "ppo": dataclasses.asdict(cfg.ppo)},
    }  # fmt: skip


def report(runs: list[dict[str, Any]]) -> str:
    """The markdown table of every run, grouped by task and settings (name)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["name"]), []).append(r)
    rows = []
    for (task, name), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        steps = [r["reached_steps"] for r in rs]
        hit = [s for s in steps if s is not None]
        median = statistics.median(hit) if len(hit) == len(steps) else None
        per_seed = ", ".join(
            f"{r['seed']}: {r['reached_steps'] / 1000:.0f}k" if r["reached_steps"] else
            f"{r['seed']}: not in {r['max_steps'] / 1000:.0f}k" for r in rs
        )  # fmt: skip
        finals = [r["final_success"] for r in rs if r["final_success"] is not None]
        rows.append([
            task, name, " ".join(rs[0]["overrides"]) or "(shipped config)",
            f"{median / 1000:.0f}k" if median is not None else "not on every seed", per_seed,
            f"{statistics.median(r['steps_per_s'] for r in rs):,.0f}",
            f"{statistics.median(r['load_1min'] for r in rs):.1f}",
            ", ".join(f"{f:.2f}" for f in finals) or "-",
        ])  # fmt: skip
    headers = ["task", "name", "overrides", "env steps to threshold (median)", "per seed",
               "train env steps/s", "load", "final success"]  # fmt: skip
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="key=value overrides of the shipped config")
    p.add_argument("--task", default="ant_run")
    p.add_argument("--name", default="shipped", help="label of these settings in the table")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=600_000, help="screening: give up after")
    p.add_argument("--budget", type=int, default=0, help="train to this and judge the final policy")
    p.add_argument("--eval-steps", type=int, default=32_768, help="env steps between evaluations")
    p.add_argument("--out", type=Path, default=RESULTS / "ppo_sweep", help="path without suffix")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    jsonl = args.out.with_suffix(".jsonl")
    if not args.report_only:
        from rewardlab.envs.tasks import get_task

        torch.set_num_threads(1)
        threshold = float(get_task(args.task).success_threshold)
        evaluator = Evaluator(args.task, 32)
        for seed in args.seeds:
            r = run_one(args.task, seed, args.overrides, args.max_steps, args.budget,
                        args.eval_steps, evaluator, threshold)  # fmt: skip
            r["name"] = args.name
            print(json.dumps({k: v for k, v in r.items() if k != "curve"}), flush=True)
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            with jsonl.open("a") as f:
                f.write(json.dumps(r) + "\n")
        evaluator.close()
    runs = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    args.out.with_suffix(".md").write_text(
        "# PPO settings sweep (written by `benchmarks/ppo_sweep.py`)\n\n"
        "Overrides apply to the task's shipped config of the day; each run's resolved settings are "
        "in its `.jsonl` record (`config`).\n\n" + report(runs) + "\n"
    )
    print(report(runs))


if __name__ == "__main__":
    main()
