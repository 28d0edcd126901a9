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

Every ``--eval-every-s`` seconds of an agent's training (evaluation excluded) its deterministic
policy runs the first episode of 32 worlds of one fixed-seed evaluation env; the first time the
success rate reaches the task's ``success_threshold`` is its **time to threshold**. An agent
stops at ``--max-s`` seconds of training or its env-step budget; its final policy is then
evaluated on 64 fresh episodes (**final success**).

Usage::

    python benchmarks/sac_vs_peers.py                                   # arm_reach, franka_reach
    python benchmarks/sac_vs_peers.py --tasks arm_reach --seeds 0 1 2 --max-s 300
    python benchmarks/sac_vs_peers.py --quick                           # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402
from train_vs_peers import Agent, Ours  # noqa: E402
from train_vs_sb3 import Evaluator, TrainClock  # noqa: E402

AGENTS = ("sac", "ppo", "sb3_sac")


class OurSac(Agent):
    name = "sac"

    def __init__(self, task: str, seed: int) -> None:
        from rewardlab.agents.off_policy_runner import OffPolicyRunner
        from rewardlab.config import load_train_config
        from rewardlab.envs import make_env

        cfg = load_train_config({"task": task, "seed": seed, "agent": "sac"})
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


@dataclass
class RunResult:
    """One agent on one task with one seed."""

    agent: str
    task: str
    seed: int
    config: str
    curve: list[dict[str, float]] = field(default_factory=list)
    reached_s: float | None = None
    reached_steps: int | None = None
    train_s: float = 0.0
    env_steps: int = 0
    final_success: float = float("nan")
    load_1min: list[float] = field(default_factory=list)


def run_seed(task: str, seed: int, args: argparse.Namespace, threshold: float) -> list[RunResult]:
    """Train every agent on ``task`` with ``seed``, one iteration each in turn."""
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    num_envs = load_train_config({"task": task}).num_envs
    evaluator = Evaluator(task, 32)
    contenders: list[Agent] = []
    for name in args.agents:
        if name == "sac":
            contenders.append(OurSac(task, seed))
        elif name == "ppo":
            contenders.append(Ours(task, seed))
            contenders[-1].name = "ppo"
        else:
            contenders.append(Sb3Sac(task, seed, num_envs, args.budget_steps))
    torch.set_num_threads(1)
    results = {a.name: RunResult(a.name, task, seed, a.config) for a in contenders}
    clocks = {a.name: TrainClock() for a in contenders}
    next_eval = {a.name: 0.0 for a in contenders}
    active = list(contenders)
    while active:
        for agent in list(active):
            r, clock = results[agent.name], clocks[agent.name]
            clock.start()
            agent.step()
            clock.pause()
            done = agent.env_steps >= args.budget_steps or clock.elapsed >= args.max_s
            if clock.elapsed >= next_eval[agent.name] or done:
                point = {"wall_s": clock.elapsed, "env_steps": float(agent.env_steps),
                         **evaluator(agent.policy())}  # fmt: skip
                r.curve.append(point)
                r.load_1min.append(os.getloadavg()[0])
                if r.reached_s is None and point["success_rate"] >= threshold:
                    r.reached_s, r.reached_steps = clock.elapsed, agent.env_steps
                every = args.eval_every_s * (5 if r.reached_s is not None else 1)
                next_eval[agent.name] = clock.elapsed + every
                print(
                    f"    [{task} {agent.name} seed {seed}] {clock.elapsed:7.1f} s "
                    f"{agent.env_steps:>9,} steps  success {point['success_rate']:.2f}  "
                    f"return {point['return']:8.1f}",
                    flush=True,
                )
            if done:
                r.train_s, r.env_steps = clock.elapsed, agent.env_steps
                eval_env = make_env(task, num_envs=64, seed=10_000 + seed)
                res = evaluate(agent.policy(), eval_env, episodes=64, seed=10_000 + seed)
                eval_env.close()
                r.final_success = res["success_rate"]
                print(
                    f"    [{task} {agent.name} seed {seed}] final {r.final_success:.2f}", flush=True
                )
                agent.close()
                active.remove(agent)
    return list(results.values())


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
        f"worlds (evaluated every {args.eval_every_s:g} s of training). Each agent stops at "
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


def plot(task: str, results: list[RunResult], threshold: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    colors = {"sac": "tab:blue", "ppo": "tab:green", "sb3_sac": "tab:orange"}
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
    p.add_argument("--eval-every-s", type=float, default=10.0)
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
