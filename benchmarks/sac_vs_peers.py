"""Wall time to a deterministic success threshold: our SAC vs our PPO vs stable-baselines3's SAC.

Agents, on the same batched env (``make_env(task)``, the task's number of worlds), each seed
training all agents **interleaved in one process** (one iteration of each in turn, so that a
change of machine load hits every agent alike; 1 torch thread each):

* ``sac``: ``OffPolicyRunner`` with what ``rewardlab train agent=sac task=<task>`` uses
  (``SACConfig`` defaults + the task file's ``sac:`` section); one iteration = ``num_steps``
  steps of every world and its updates.
* ``ppo``: ``OnPolicyRunner`` with the task's shipped PPO config.
* ``sb3_sac``: stable-baselines3 SAC on our env through ``Sb3VecEnv`` with what
  ``agent=sb3_sac`` uses (``rewardlab.agents.sb3.default_hyperparams``: SB3's defaults, one
  gradient step per vectorized step); one iteration = 4 steps of every world.
* ``sb3_sac_tuned``: SB3's SAC with our SAC's settings for the task (same worlds, gradient
  steps per env step, batch, networks, learning rate, initial temperature, n-step returns,
  random steps, Polyak rate, observation normalization by ``VecNormalize``); one iteration =
  ``sac.num_steps`` steps of every world and its gradient steps.

The interleaved loop is :func:`_interleaved.run_interleaved` (shared with ``train_vs_peers.py``).

Every ``--eval-every-s`` seconds of an agent's training (evaluation excluded) its deterministic
policy runs the first episode of 32 worlds of one fixed-seed evaluation env; the first time the
success rate reaches the task's ``success_threshold`` is its **time to threshold**. An agent
stops at ``--max-s`` seconds of training or its env-step budget; its final policy is then
evaluated on 64 fresh episodes (**final success**).

Usage::

    python benchmarks/sac_vs_peers.py                                   # arm_reach, franka_reach
    python benchmarks/sac_vs_peers.py --tasks arm_reach --seeds 0 1 2 --max-s 300
    python benchmarks/sac_vs_peers.py --quick                           # smoke run
    python benchmarks/sac_vs_peers.py --tasks ant_run --agents sac --set sac.batch_size=1024
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    contention_note,
    markdown_table,
    quiet_sb3_logger,
    system_info,
    write_json,
)
from _interleaved import Agent, RunResult, run_interleaved  # noqa: E402
from train_vs_peers import Ours  # noqa: E402
from train_vs_sb3 import Evaluator  # noqa: E402

AGENTS = ("sac", "ppo", "sb3_sac", "sb3_sac_tuned")
EVAL_EVERY_S = {"ant_run": 20.0}
"""Seconds of training between evaluations where not ``--eval-every-s`` (default 10 s)."""


class OurSac(Agent):
    name = "sac"

    def __init__(self, task: str, seed: int, overrides: Sequence[str] = ()) -> None:
        from rewardlab.agents.off_policy_runner import OffPolicyRunner
        from rewardlab.config import load_train_config
        from rewardlab.envs import make_env

        cfg = load_train_config([f"task={task}", f"seed={seed}", "agent=sac", *overrides])
        self.env = make_env(task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed)
        self.runner = OffPolicyRunner(self.env, cfg.sac, log_dir=None, seed=seed)
        s = cfg.sac
        self.per_iter = cfg.num_envs * s.num_steps
        self.config = (
            f"OffPolicyRunner, {cfg.num_envs} worlds, num_steps {s.num_steps}, updates_per_step "
            f"{s.updates_per_step:g}, batch {s.batch_size}, buffer {s.buffer_size:,}, "
            f"learning_starts {s.learning_starts:,}, lr {s.actor_learning_rate:g}/"
            f"{s.critic_learning_rate:g}, init_alpha {s.init_alpha:g} (auto), n_step {s.n_step}, "
            f"actor {list(s.actor_hidden)}, critics {list(s.critic_hidden)} {s.activation}"
        )

    def step(self) -> None:
        self.runner.learn(self.runner.global_step + self.per_iter, progress=False)
        self.env_steps = self.runner.global_step

    def policy(self) -> Any:
        return self.runner.inference_policy()

    def close(self) -> None:
        self.env.close()


class Sb3Sac(Agent):
    name = "sb3_sac"

    def __init__(self, task: str, seed: int, num_envs: int, budget: int) -> None:
        from stable_baselines3 import SAC

        from rewardlab.agents.sb3 import default_hyperparams
        from rewardlab.envs import make_env
        from rewardlab.envs.adapters.sb3 import Sb3VecEnv

        self.env = make_env(task, num_envs=num_envs, seed=seed)
        hp = default_hyperparams("sac", num_envs, budget)
        hp.pop("policy")
        hp["device"] = "cpu"
        self.venv = Sb3VecEnv(self.env)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.model = SAC("MlpPolicy", self.venv, seed=seed, verbose=0, **hp)
        quiet_sb3_logger(self.model)
        self.per_iter = 4 * num_envs
        self.config = f"SB3 SAC via Sb3VecEnv, {num_envs} worlds, {hp} (SB3 defaults otherwise)"

    def step(self) -> None:
        self.model.learn(self.per_iter, reset_num_timesteps=False)
        self.env_steps = int(self.model.num_timesteps)

    def policy(self) -> Any:
        from rewardlab.agents.sb3 import sb3_inference_policy

        return sb3_inference_policy(self.model)

    def close(self) -> None:
        self.venv.close()


class Sb3SacTuned(Sb3Sac):
    """SB3's SAC with our SAC's settings for the task, as far as SB3 can express them."""

    name = "sb3_sac_tuned"

    def __init__(self, task: str, seed: int, overrides: Sequence[str] = ()) -> None:  # type: ignore[override]
        from stable_baselines3 import SAC
        from stable_baselines3.common.vec_env import VecNormalize

        from rewardlab.config import load_train_config
        from rewardlab.envs import make_env
        from rewardlab.envs.adapters.sb3 import Sb3VecEnv

        cfg = load_train_config([f"task={task}", f"seed={seed}", "agent=sac", *overrides])
        s = cfg.sac
        updates = s.num_steps * s.updates_per_step
        if updates != int(updates):
            raise ValueError(f"sac.num_steps * sac.updates_per_step must be whole for SB3, got {updates:g}")  # fmt: skip
        self.env = make_env(task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed)
        hp: dict[str, Any] = {
            "learning_rate": s.critic_learning_rate,
            "buffer_size": s.buffer_size,
            "learning_starts": s.learning_starts,
            "batch_size": s.batch_size,
            "tau": s.tau,
            "gamma": s.gamma,
            "train_freq": s.num_steps,
            "gradient_steps": int(updates),
            "n_steps": s.n_step,
            "ent_coef": f"auto_{s.init_alpha:g}" if s.autotune_alpha else s.init_alpha,
            "policy_kwargs": {
                "net_arch": {"pi": list(s.actor_hidden), "qf": list(s.critic_hidden)},
                "activation_fn": {
                    "relu": torch.nn.ReLU,
                    "elu": torch.nn.ELU,
                    "tanh": torch.nn.Tanh,
                }[s.activation],
            },  # fmt: skip
            "device": "cpu",
        }
        self.venv = Sb3VecEnv(self.env)
        if s.normalize_obs:
            self.venv = VecNormalize(self.venv, norm_obs=True, norm_reward=False, clip_obs=10.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.model = SAC("MlpPolicy", self.venv, seed=seed, verbose=0, **hp)
        quiet_sb3_logger(self.model)
        self.per_iter = s.num_steps * cfg.num_envs
        shown = {k: v for k, v in hp.items() if k not in ("policy_kwargs", "device")}
        self.config = (
            f"SB3 SAC via Sb3VecEnv, {cfg.num_envs} worlds, our SAC's settings: {shown}, "
            f"net_arch pi {list(s.actor_hidden)} qf {list(s.critic_hidden)} {s.activation}"
            f"{', VecNormalize(obs)' if s.normalize_obs else ''} (one learning rate for all)"
        )


def run_seed(task: str, seed: int, args: argparse.Namespace, threshold: float) -> list[RunResult]:
    """Train every agent on ``task`` with ``seed``, one iteration each in turn."""
    from rewardlab.config import load_train_config

    num_envs = load_train_config({"task": task}).num_envs
    evaluator = Evaluator(task, 32)
    contenders: list[Agent] = []
    for name in args.agents:
        if name == "sac":
            contenders.append(OurSac(task, seed, args.set))
        elif name == "ppo":
            contenders.append(Ours(task, seed))
            contenders[-1].name = "ppo"
        elif name == "sb3_sac_tuned":
            contenders.append(Sb3SacTuned(task, seed, args.set))
        else:
            contenders.append(Sb3Sac(task, seed, num_envs, args.budget_steps))
    every = args.eval_every_s or EVAL_EVERY_S.get(task, 10.0)
    try:
        return run_interleaved(task, seed, contenders, evaluator, threshold, args.budget_steps,
                               every, max_s=args.max_s)  # fmt: skip
    finally:
        evaluator.close()


def summarize(results: list[RunResult], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for task, agent in dict.fromkeys((r.task, r.agent) for r in results):
        runs = [r for r in results if r.task == task and r.agent == agent]
        times = [r.reached_s for r in runs]
        reached = [t for t in times if t is not None]
        rows.append(
            {
                "task": task,
                "agent": agent,
                "seeds": [r.seed for r in runs],
                "reached": f"{len(reached)}/{len(runs)}",
                "median_time_s": statistics.median(reached) if len(reached) == len(runs) else None,
                "times_s": times,
                "steps_to_threshold": [r.reached_steps for r in runs],
                "final_success": [r.final_success for r in runs],
                "finals_hold": sum(r.final_success >= thresholds[task] for r in runs),
                "train_s": [r.train_s for r in runs],
                "env_steps": [r.env_steps for r in runs],
                "steps_per_s": statistics.median(
                    r.env_steps / r.train_s for r in runs if r.train_s > 0
                ),
                "config": runs[0].config,
            }
        )
    return rows


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace,
           loads: list[float]) -> str:  # fmt: skip
    lines = [
        "# Wall time to a deterministic success threshold: our SAC vs our PPO vs SB3's SAC",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']} (1 intra-op thread for every agent), mujoco {info['mujoco']}. "
        "Written by `benchmarks/sac_vs_peers.py`.",
        "",
        f"Seeds {args.seeds}. Per seed the agents train **interleaved** (one iteration each in "
        "turn, one process); 1-min load average during the runs: "
        f"median {statistics.median(loads):.1f}, max {max(loads):.1f} (2 cores shared with other "
        "work, so absolute seconds are several times an idle machine's; the agents share the "
        "load alike). Time to threshold: training seconds (evaluation excluded) until the "
        "deterministic policy first succeeds on >= the task's success threshold of 32 evaluation "
        f"worlds (evaluated every {_every(args)} of training). Each agent stops at "
        f"{args.budget_steps:,} env steps or {args.max_s:g} s of training; final success: its "
        "policy then, on 64 fresh episodes.",
    ]
    if args.quick:
        lines.append("**--quick**: a smoke run, not a measurement.")
    note = contention_note(info)
    if note:
        lines += ["", note]
    table = []
    for r in rows:
        t = (
            f"{r['median_time_s']:.1f}"
            if r["median_time_s"] is not None
            else f"not reached on every seed ({r['reached']})"
        )
        per_seed = ", ".join("-" if x is None else f"{x:.1f}" for x in r["times_s"])
        steps = ", ".join("-" if x is None else f"{x:,}" for x in r["steps_to_threshold"])
        finals = ", ".join(f"{f:.2f}" for f in r["final_success"])
        trained = ", ".join(f"{s:,} in {t:.0f} s" for s, t in zip(r["env_steps"], r["train_s"], strict=True))  # fmt: skip
        table.append([r["task"], r["agent"], t, per_seed, steps, f"{r['steps_per_s']:,.0f}",
                      trained, f"{finals} ({r['finals_hold']}/{len(r['final_success'])} hold)"])  # fmt: skip
    lines += [
        "",
        markdown_table(
            [
                "task",
                "agent",
                "time to threshold (s, median)",
                "per seed (s)",
                "env steps to threshold",
                "train env steps/s",
                "trained (steps, s)",
                "final success per seed",
            ],
            table,
        ),  # fmt: skip
        "",
        "## Configurations",
        "",
    ]
    lines += [f"- **{r['task']} / {r['agent']}**: {r['config']}" for r in rows]
    return "\n".join(lines) + "\n"


def _every(args: argparse.Namespace) -> str:
    if args.eval_every_s is not None:
        return f"{args.eval_every_s:g} s"
    return ", ".join(f"{t}: {EVAL_EVERY_S.get(t, 10.0):g} s" for t in args.tasks)


def plot(task: str, results: list[RunResult], threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    colors = {"sac": "tab:blue", "ppo": "tab:green", "sb3_sac": "tab:orange",
              "sb3_sac_tuned": "tab:red"}  # fmt: skip
    seen = set()
    for r in results:
        if r.task != task or not r.curve:
            continue
        ax.plot([p["wall_s"] for p in r.curve], [p["success_rate"] for p in r.curve], color=colors.get(r.agent),
                label=None if r.agent in seen else r.agent, lw=1.2, marker="o", ms=2, alpha=0.8)  # fmt: skip
        seen.add(r.agent)
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("training wall-clock seconds (evaluation excluded)")
    ax.set_ylabel("deterministic success (32 worlds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{task}: SAC vs PPO vs SB3 SAC (interleaved, same env)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["arm_reach", "franka_reach"])
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--budget-steps", type=int, default=1_000_000, help="env steps per agent")
    p.add_argument("--max-s", type=float, default=240.0, help="training seconds per agent")
    p.add_argument("--eval-every-s", type=float, default=None, help="default: 10 s (ant_run 20 s)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides of our SAC's config (sac and sb3_sac_tuned), e.g. sac.n_step=3",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s per agent, one seed")
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = p.parse_args(argv)
    if args.quick:
        args.max_s, args.seeds, args.eval_every_s = 20.0, args.seeds[:1], 5.0

    args.out = args.out or RESULTS / ("sac_vs_peers_quick" if args.quick else "sac_vs_peers")
    from rewardlab.envs.tasks import get_task

    info = system_info()
    thresholds = {t: float(get_task(t).success_threshold) for t in args.tasks}
    results: list[RunResult] = []
    for task in args.tasks:
        for seed in args.seeds:
            print(f"{task} seed {seed}", flush=True)
            results += run_seed(task, seed, args, thresholds[task])
            write_json(args.out.with_suffix(".json"), [asdict(r) for r in results])
    rows = summarize(results, thresholds)
    loads = [x for r in results for x in r.load_1min] or [float("nan")]
    args.out.with_suffix(".md").write_text(report(rows, info, args, loads))
    for task in args.tasks:
        plot(task, results, thresholds[task], args.out.parent / f"{args.out.name}_{task}.png")
    write_json(args.out.with_suffix(".json"), {"rows": rows, "runs": [asdict(r) for r in results]})
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
