"""PPO wall time to a threshold per simulator backend (default: Ant, eval return >= 300).

The same PPO (``OnPolicyRunner``) and the task's shipped training config train on each backend;
only the env differs: ``mujoco`` (native CPU threads) or ``warp`` (MuJoCo Warp on
``--device``). Training time excludes evaluations. Every evaluation runs the deterministic
policy on the *native* backend (the same task, the same initial states for every backend and
every evaluation; see ``train_vs_sb3.Evaluator``), so that all backends are judged by one
referee. The threshold and the training clock are those of ``train_vs_sb3.py``.

On a GPU machine give the warp backend the world count it is made for, e.g.::

    python benchmarks/train_backends.py --device cuda --warp-num-envs 4096 --warp-num-steps 24

On the CPU (this project's CI machines) warp on Warp's CPU device is far slower than the native
backend, so a CPU run mostly shows that it trains, and how far it gets within ``--budget-s``.

Usage::

    python benchmarks/train_backends.py                       # ant_run, mujoco vs warp (cpu)
    python benchmarks/train_backends.py --quick               # smoke run: cartpole, 20 s each
    python benchmarks/train_backends.py --tasks cartpole_balance --budget-s 300

Outputs ``benchmarks/results/train_backends[_quick|_<device>].md``, ``.json`` and one
``train_backends_<task>.png`` per task.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402
from train_vs_sb3 import (  # noqa: E402
    EVAL_EVERY_S,
    THRESHOLDS,
    Evaluator,
    RunResult,
    Threshold,
    TrainClock,
    _Tracker,
)

BACKENDS = ("mujoco", "warp")


def run_backend(
    task: str, backend: str, seed: int, args: argparse.Namespace, tracker_args: dict[str, Any]
) -> RunResult:
    """Train with the task's shipped config on ``backend`` until the threshold or the budget."""
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    overrides: dict[str, Any] = {"task": task, "seed": seed}
    cfg = load_train_config(overrides)
    num_envs, ppo = cfg.num_envs, cfg.ppo
    device = "cpu"
    kwargs: dict[str, Any] = {"nthread": cfg.nthread}
    if backend == "warp":
        device = args.device
        kwargs = {}
        num_envs = args.warp_num_envs or num_envs
        if args.warp_num_steps:
            ppo = dataclasses.replace(ppo, num_steps=args.warp_num_steps)
    env = make_env(
        task, num_envs=num_envs, backend=backend, cfg=cfg.task_config(), seed=seed,
        device=device, **kwargs,
    )  # fmt: skip
    runner = OnPolicyRunner(env, ppo, log_dir=None, seed=seed, device=device)
    result = RunResult(
        backend,
        task,
        seed,
        f"{backend} on {device}: {num_envs} worlds, num_steps {ppo.num_steps}, "
        f"{ppo.num_epochs} epochs x {ppo.num_minibatches} minibatches, "
        f"actor {list(ppo.actor_hidden)}",
        budget_s=args.budget_s,
    )
    clock = TrainClock()
    tracker = _Tracker(result, clock=clock, **tracker_args)

    def policy() -> Any:
        pol = runner.inference_policy()
        return lambda obs: pol(obs.to(device)).cpu()  # the referee env is on the CPU

    per_iter = num_envs * ppo.num_steps
    clock.start()
    while True:
        runner.learn(runner.global_step + per_iter, progress=False)
        if tracker.due() and tracker.check(policy, runner.global_step):
            break
    env.close()
    return result


def report(
    results: list[RunResult], thresholds: dict[str, Threshold], info: dict[str, Any], args: Any
) -> str:
    rows = []
    for r in results:
        ref = next((x for x in results if x.task == r.task and x.agent == "mujoco"), None)
        ratio = ""
        if ref is not None and ref.reached_s and r is not ref:
            if r.reached_s:
                ratio = f"{r.reached_s / ref.reached_s:.2f}"
            else:
                ratio = f">= {r.train_s / ref.reached_s:.2f} (not reached)"
        best = max((p["return"] for p in r.curve), default=float("nan"))
        rows.append(
            [
                r.task,
                r.agent,
                str(thresholds[r.task]),
                "not reached" if r.reached_s is None else f"{r.reached_s:.1f}",
                r.reached_steps or "",
                r.steps_per_s,
                best,
                ratio,
                r.config,
            ]
        )
    lines = [
        "# PPO wall time to threshold per backend",
        "",
        f"Command: `python benchmarks/train_backends.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, torch {info['torch']}, "
        f"mujoco {info['mujoco']}, GPU: {info.get('gpu', 'none')}, git {info['git_rev']}, "
        f"{info['date']}; 1-min load average at start {info['loadavg_1min_at_start']}; "
        f"budget {args.budget_s:.0f} s of training per run.",
        "",
        contention_note(info),
        "",
        markdown_table(
            [
                "task",
                "backend",
                "threshold",
                "time to threshold (s)",
                "env steps",
                "train env steps/s",
                "best eval return",
                "time / mujoco",
                "config",
            ],
            rows,
        ),
    ]
    return "\n".join(lines) + "\n"


def plot(task: str, results: list[RunResult], threshold: Threshold, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r.task == task and r.curve:
            ax.plot([p["wall_s"] for p in r.curve], [p[threshold.metric] for p in r.curve],
                    "o-", label=f"{r.agent} (seed {r.seed})")  # fmt: skip
    ax.axhline(threshold.value, color="gray", ls="--", label=str(threshold))
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"eval {threshold.metric}")
    ax.set_title(f"{task}: PPO per backend")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["ant_run"], choices=sorted(THRESHOLDS))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu", help="device of the warp backend and its learner")
    p.add_argument("--warp-num-envs", type=int, default=None, help="worlds on warp")
    p.add_argument("--warp-num-steps", type=int, default=None, help="PPO rollout on warp")
    p.add_argument("--budget-s", type=float, default=300.0, help="training-time cap per run")
    p.add_argument("--eval-every-s", type=float, default=None)
    p.add_argument("--eval-worlds", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="smoke run: cartpole, 20 s budgets")
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = ["cartpole_balance"]
        args.budget_s = min(args.budget_s, 20.0)
        args.eval_every_s = args.eval_every_s or 5.0
        args.eval_worlds = min(args.eval_worlds, 16)
    if args.out is None:
        stem = "train_backends" + (
            "_quick" if args.quick else ("" if args.device == "cpu" else f"_{args.device}")
        )
        args.out = RESULTS / stem
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    info = system_info()
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    results: list[RunResult] = []
    for task in args.tasks:
        evaluator = Evaluator(task, args.eval_worlds)
        for seed in args.seeds:
            for backend in args.backends:
                tracker_args = {
                    "evaluator": evaluator,
                    "threshold": THRESHOLDS[task],
                    "eval_every_s": args.eval_every_s or EVAL_EVERY_S.get(task, 5.0),
                }
                print(
                    f"{task} / {backend} / seed {seed} (budget {args.budget_s:.0f} s)", flush=True
                )
                torch.manual_seed(seed)
                results.append(run_backend(task, backend, seed, args, tracker_args))
        evaluator.close()
    text = report(results, THRESHOLDS, info, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    write_json(
        args.out.with_suffix(".json"),
        {
            "system": info,
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "runs": [vars(r) for r in results],
        },
    )
    for task in args.tasks:
        png = args.out.parent / f"{args.out.name}_{task}.png"
        plot(task, results, THRESHOLDS[task], png)
        print(f"wrote {png}")
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
