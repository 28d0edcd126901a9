"""Warp kernel compilation: time to a first step on the ``warp`` backend, cold and warm cache.

For every task (and, for tasks with contacts, the elliptic-cone variant the equivalence tests
use) it makes a ``WarpEnv`` of 4 worlds and steps it once, in a fresh process, twice: with an
empty kernel cache (what a clean CI checkout pays) and again with the cache it just filled.
CPU time (user+sys of the child process) is the load-independent figure; wall time is shown too.

Usage::

    python benchmarks/warp_compile_time.py              # device cpu
    python benchmarks/warp_compile_time.py --device cuda

Outputs ``benchmarks/results/warp_compile_time[_<device>].md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
sys.path.insert(0, "tests")
from rewardlab.envs import get_task, task_names
from rewardlab.envs.warp_backend import WarpEnv
from test_warp_backend import elliptic, has_contacts
out = []
for t in task_names():
    w = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    cls = get_task(t)
    variants = [cls] + ([elliptic(cls)] if has_contacts(cls.load_model()) else [])
    for v in variants:
        env = WarpEnv(v, num_envs=4, device=sys.argv[1])
        env.reset()
        env.step(torch.zeros(4, env.action_dim, device=sys.argv[1]))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out.append({"task": t, "variants": len(variants), "wall_s": time.perf_counter() - w, "cpu_s": cpu})
print("RESULT " + json.dumps(out))
"""


def run_child(cache: str, device: str) -> list[dict]:
    env = {**os.environ, "REWARDLAB_WARP_CACHE": cache, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, device], cwd=REPO, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    info = system_info()
    with tempfile.TemporaryDirectory() as cache:
        cold = run_child(cache, args.device)
        warm = run_child(cache, args.device)
    rows = []
    warm_by = {w["task"]: w for w in warm}
    for c in cold:
        w = warm_by.get(c["task"], {"cpu_s": float("nan"), "wall_s": float("nan")})
        rows.append([c["task"], c["variants"], c["cpu_s"], c["wall_s"], w["cpu_s"], w["wall_s"]])
    tot = [sum(r[i] for r in rows) for i in (2, 3, 4, 5)]
    rows.append(["total", sum(r[1] for r in rows), *tot])
    text = "\n".join(
        [
            "# Warp kernel compilation: first step of every task, cold and warm cache",
            "",
            f"Command: `python benchmarks/warp_compile_time.py {' '.join(sys.argv[1:])}`".rstrip(),
            "",
            f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
            f"{info['date']}; device {args.device}; 1-min load average at start "
            f"{info['loadavg_1min_at_start']}. Tasks in order; the first one also compiles the "
            "modules every model shares.",
            "",
            contention_note(info),
            "",
            markdown_table(
                ["task", "models", "cold CPU s", "cold wall s", "warm CPU s", "warm wall s"],
                rows,
            ),
        ]
    )
    stem = RESULTS / ("warp_compile_time" + ("" if args.device == "cpu" else f"_{args.device}"))
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(text + "\n")
    write_json(stem.with_suffix(".json"), {"system": info, "cold": cold, "warm": warm})
    print(text)


if __name__ == "__main__":
    main()
