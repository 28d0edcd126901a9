"""Env throughput per backend: env steps/s against the number of worlds, every task.

For every task and world count it times each backend side by side in one run (interleaved
repeats, so that a change of machine load hits every contender alike), with the native
``mujoco`` backend (CPU threads, ``mujoco.batch``) as the reference:

* ``mujoco``: ``make_env(task, N)`` on the CPU, physics on every core.
* ``warp``: ``make_env(task, N, backend="warp", device=D)`` on MuJoCo Warp; ``--device cuda``
  on a GPU machine (CUDA graph of the step), ``cpu`` otherwise (Warp's CPU device: one thread,
  and about 160 us of Python per kernel launch over several hundred launches per control step,
  so it is expected to be much slower than native threads).

Every contender steps the same bank of uniform random actions (resets included: random
actions make episodes end often). Each number is the median of ``--repeats`` windows of
``--seconds`` each, after a warm-up step (Warp compiles or loads its kernels then; the time to
make the env is reported separately). A backend whose single control step at some size took
longer than ``--max-step-s`` is not run at larger sizes (the table says so), which keeps a CPU
run short; ``--full`` sweeps 64 .. 16384 worlds, the GPU configuration.

Usage::

    python benchmarks/backend_throughput.py                    # CPU: every task, 64/256/1024
    python benchmarks/backend_throughput.py --quick            # smoke run (cartpole, ant; seconds)
    python benchmarks/backend_throughput.py --device cuda --full   # GPU: 64 .. 16384 worlds

Outputs ``benchmarks/results/backend_throughput[_quick|_<device>].md``, ``.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    Rates,
    contention_note,
    markdown_table,
    run_for,
    system_info,
    write_json,
)

FULL_WORLDS = (64, 256, 1024, 4096, 16384)
CPU_WORLDS = (64, 256, 1024)
PUBLISHED = [
    (
        "Isaac Lab Isaac-Cartpole-Direct-v0, 4096 envs, RTX 4090",
        "about 1.1M env steps/s",
        "Isaac Lab performance benchmarks",
    ),
    (
        "MuJoCo Playground Go1 joystick (MJX/Warp), 200M steps",
        "about 7 minutes of training (about 0.5M steps/s)",
        "MuJoCo Playground paper",
    ),
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make(task: str, backend: str, n: int, device: str) -> Any:
    from rewardlab.envs import make_env

    if backend == "mujoco":
        return make_env(task, num_envs=n, seed=0)
    return make_env(task, num_envs=n, backend="warp", device=device, seed=0)


def _stepper(env: Any, acts: list[torch.Tensor]) -> Any:
    """A callable stepping ``env`` with the next action batch of ``acts`` (cycled)."""
    count = [0]

    def fn() -> None:
        env.step(acts[count[0] % len(acts)])
        count[0] += 1

    return fn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from rewardlab.envs import task_names

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=None, help="default: every registered task")
    p.add_argument("--backends", nargs="+", default=["mujoco", "warp"])
    p.add_argument("--worlds", nargs="+", type=int, default=None)
    p.add_argument("--full", action="store_true", help="worlds 64 .. 16384 (for a GPU)")
    p.add_argument("--device", default="cpu", help="device of the warp backend (cpu, cuda)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one timed window")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-step-s", type=float, default=1.5, help="cap on one control step")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 tasks, 64 worlds")
    p.add_argument("--out", default=None, help="output stem under benchmarks/results/")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks or ["cartpole_balance", "ant_run"]
        args.worlds = args.worlds or [64]
        args.seconds, args.repeats = min(args.seconds, 0.5), 1
    args.tasks = args.tasks or task_names()
    args.worlds = args.worlds or list(FULL_WORLDS if args.full else CPU_WORLDS)
    if args.out is None:
        args.out = "backend_throughput" + (
            "_quick" if args.quick else ("" if args.device == "cpu" else f"_{args.device}")
        )
    return args


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    torch.manual_seed(0)
    for task in args.tasks:
        capped: dict[str, tuple[float, int]] = {}
        for n in args.worlds:
            envs: dict[str, Any] = {}
            made: dict[str, float] = {}
            for b in args.backends:
                if b in capped:
                    continue
                t0 = time.perf_counter()
                envs[b] = make(task, b, n, args.device)
                envs[b].reset(seed=0)
                made[b] = time.perf_counter() - t0
            if not envs:
                break
            any_env = next(iter(envs.values()))
            bank = [torch.rand(n, any_env.action_dim) * 2 - 1 for _ in range(8)]
            banks = {b: [a.to(e.device) for a in bank] for b, e in envs.items()}
            fns = {b: _stepper(envs[b], banks[b]) for b in envs}
            step_s: dict[str, float] = {}

            for b in envs:  # warm-up (kernel load / first-step costs) and a step-time probe
                fn = fns[b]
                fn()
                sync(args.device)
                t0 = time.perf_counter()
                fn()
                sync(args.device)
                step_s[b] = time.perf_counter() - t0
            rates = {b: Rates() for b in envs}
            for _ in range(args.repeats):
                for b in envs:
                    fn = fns[b]
                    window = max(args.seconds, 2.5 * step_s[b])

                    def timed(fn: Any = fn) -> None:
                        fn()
                        sync(args.device)

                    calls, elapsed = run_for(timed, window)
                    rates[b].samples.append(calls * n / elapsed)
            for b, env in envs.items():
                rows.append(
                    {
                        "task": task,
                        "worlds": n,
                        "backend": b,
                        "device": "cpu" if b == "mujoco" else args.device,
                        "env_steps_per_s": rates[b].median,
                        "spread": rates[b].spread,
                        "make_s": made[b],
                        "step_s": step_s[b],
                        "physics_steps_per_s": rates[b].median * env.cfg.frame_skip,
                    }
                )
                print(
                    f"{task:18s} {n:6d} worlds  {b:7s} {rates[b].median:12,.0f} env steps/s "
                    f"(spread {rates[b].spread:.2f}, made in {made[b]:.1f} s)",
                    flush=True,
                )
                env.close()
                if step_s[b] > args.max_step_s and n != args.worlds[-1]:
                    capped[b] = (step_s[b], n)
        for b, (s, n) in capped.items():
            rows.append({"task": task, "worlds": None, "backend": b, "capped": s, "after": n})
    return rows


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> str:
    data = [r for r in rows if r.get("worlds")]
    ref = {(r["task"], r["worlds"]): r["env_steps_per_s"] for r in data if r["backend"] == "mujoco"}
    table = []
    for r in data:
        base = ref.get((r["task"], r["worlds"]))
        ratio = r["env_steps_per_s"] / base if base else float("nan")
        table.append(
            [
                r["task"],
                r["worlds"],
                f"{r['backend']} ({r['device']})",
                r["env_steps_per_s"],
                r["physics_steps_per_s"],
                ratio,
                r["spread"],
                f"{r['make_s']:.1f}",
            ]
        )
    caps = [
        f"- `{r['backend']}` on `{r['task']}`: one control step took {r['capped']:.2f} s at "
        f"{r['after']} worlds (> --max-step-s {args.max_step_s}); larger sizes not run."
        for r in rows
        if r.get("capped")
    ]
    lines = [
        "# Backend throughput: env steps/s against worlds",
        "",
        f"Command: `python benchmarks/backend_throughput.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, torch {info['torch']}, "
        f"mujoco {info['mujoco']}, mujoco-warp {info.get('mujoco_warp', '?')}, warp "
        f"{info.get('warp', '?')}, GPU: {info.get('gpu', 'none')}, git {info['git_rev']}, "
        f"{info['date']}; 1-min load average at start {info['loadavg_1min_at_start']}.",
        "",
        contention_note(info),
        "",
        "Random actions, resets included; median of the repeats; `/ mujoco` is the ratio to the "
        "native CPU backend at the same size, measured in the same run. `make s` is the time to "
        "construct and reset the env (Warp: loading its cached kernels, or compiling them on "
        "a cold cache).",
        "",
        markdown_table(
            [
                "task",
                "worlds",
                "backend (device)",
                "env steps/s",
                "physics steps/s",
                "/ mujoco",
                "spread",
                "make s",
            ],
            table,
        ),
        "",
        *caps,
        "",
        "Published figures on the same class of task (not measured here):",
        "",
        *[f"- {what}: {value} ({src})" for what, value, src in PUBLISHED],
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [r for r in rows if r.get("worlds")]
    tasks = sorted({r["task"] for r in data})
    cols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for b in sorted({r["backend"] for r in data if r["task"] == task}):
            pts = sorted(
                (r["worlds"], r["env_steps_per_s"], r["device"])
                for r in data
                if r["task"] == task and r["backend"] == b
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{b} ({pts[0][2]})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("worlds")
        ax.set_ylabel("env steps/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)  # as the trainer runs the mujoco backend
    from importlib.metadata import version

    info = system_info()
    info["warp"] = version("warp-lang")
    info["mujoco_warp"] = version("mujoco-warp")
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    print(f"backend_throughput: tasks {args.tasks}, worlds {args.worlds}, {args.backends}")
    rows = measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / args.out
    write_json(stem.with_suffix(".json"), {"system": info, "args": vars(args), "rows": rows})
    text = report(rows, info, args)
    stem.with_suffix(".md").write_text(text)
    plot(rows, stem.with_suffix(".png"))
    print(text)
    print(f"wrote {stem}.md, .json, .png")


if __name__ == "__main__":
    main()
