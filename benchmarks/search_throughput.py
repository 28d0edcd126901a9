"""Reward-search throughput: candidates trained per hour, process pool vs one at a time.

Each candidate is what the search runs per reward: a sandboxed worker process
(:func:`rewardlab.rewards.sandbox.run_in_sandbox`) that compiles the reward, trains PPO on
``cartpole_balance`` for ``--steps`` env steps and evaluates the policy on the task's own
success. The same ``--candidates`` jobs run through the search's ``SequentialExecutor`` (one
worker at a time, the worker's physics on all cores) and its ``ProcessExecutor`` (``--workers``
at a time, one physics thread each). Both use the search's real code path; the figure is the
ratio measured in the same run, so a busy machine affects both sides.

    python benchmarks/search_throughput.py --candidates 4 --steps 20000 --workers 2

Writes ``benchmarks/results/search_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402

GOOD = """
import torch


def compute_reward(state, action):
    upright = torch.exp(-(state["pole_angle"] ** 2) / 0.1)
    alive = torch.ones_like(upright)
    effort = -0.01 * (action**2).sum(-1)
    return alive + upright + effort, {"alive": alive, "upright": upright, "effort": effort}
"""


def run(kind: str, n: int, steps: int, workers: int, nthread: int) -> dict:
    from rewardlab.config import load_train_config
    from rewardlab.rewards.sandbox import SandboxLimits
    from rewardlab.search.candidate import CandidateResult, CandidateSpec, candidate_job
    from rewardlab.search.executors import Job, ProcessExecutor, SequentialExecutor

    cfg = load_train_config({"task": "cartpole_balance", "nthread": nthread})
    limits = SandboxLimits(cpu_seconds=3600, wall_seconds=1800)
    ex = SequentialExecutor(limits) if kind == "sequential" else ProcessExecutor(limits, workers)
    jobs = []
    for i in range(n):
        spec = CandidateSpec(dataclasses.replace(cfg, seed=i), steps, code=GOOD, eval_episodes=10)
        jobs.append(Job(f"c{i}", candidate_job, (spec,)))
    t0 = time.perf_counter()
    outs = ex.run(jobs)
    wall = time.perf_counter() - t0
    bad = [o for o in outs if not o.ok]
    if bad:
        raise RuntimeError(f"{kind}: {len(bad)} candidate(s) failed: {bad[0].error}")
    results = [CandidateResult.from_data(o.value) for o in outs]
    return {
        "executor": kind,
        "workers": 1 if kind == "sequential" else workers,
        "physics_threads_per_candidate": nthread,
        "candidates": n,
        "wall_s": wall,
        "candidates_per_hour": n / wall * 3600,
        "mean_job_s": sum(o.seconds for o in outs) / n,
        "mean_train_s_in_worker": sum(r.train_seconds for r in results) / n,
        "fitness": [r.fitness for r in results],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--out", default="search_throughput")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    info = system_info()
    cores = os.cpu_count() or 1
    seq = run("sequential", args.candidates, args.steps, 1, 0)  # physics on every core
    print(
        f"sequential: {seq['candidates_per_hour']:.0f} candidates/h ({seq['wall_s']:.1f} s)",
        flush=True,
    )
    pool = run("process", args.candidates, args.steps, args.workers, 1)
    print(
        f"process pool x{args.workers}: {pool['candidates_per_hour']:.0f} candidates/h ({pool['wall_s']:.1f} s)",
        flush=True,
    )
    ratio = pool["candidates_per_hour"] / seq["candidates_per_hour"]
    print(f"pool / sequential: {ratio:.2f}x")
    rows = [
        [r["executor"], r["workers"], r["physics_threads_per_candidate"] or cores, r["candidates"],
         r["wall_s"], r["mean_job_s"], r["mean_train_s_in_worker"], r["candidates_per_hour"]]
        for r in (seq, pool)
    ]  # fmt: skip
    table = markdown_table(
        ["executor", "parallel jobs", "physics threads/job", "candidates", "wall s",
         "job s (mean)", "training s in worker (mean)", "candidates/hour"],
        rows,
    )  # fmt: skip
    note = contention_note(info)
    md = "\n".join(
        [
            "# Reward search throughput: process pool vs sequential",
            "",
            f"`python benchmarks/search_throughput.py --candidates {args.candidates} --steps "
            f"{args.steps} --workers {args.workers}` at git `{info['git_rev']}` on "
            f"{info['cpu_model']} ({cores} cores), {info['date']}.",
            "",
            "Each candidate: sandboxed worker process, reward compiled, PPO on cartpole_balance "
            f"for {args.steps} env steps (64 worlds), 10 evaluation episodes on the task's success.",
            "",
            table,
            "",
            f"**Process pool / sequential: {ratio:.2f}x** candidates per hour.",
            "",
            note,
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(md + "\n")
    write_json(
        RESULTS / f"{args.out}.json",
        {"system": info, "sequential": seq, "process": pool, "ratio": ratio},
    )
    print(md)


if __name__ == "__main__":
    main()
