"""The interleaved time-to-threshold loop shared by ``train_vs_peers.py`` and ``sac_vs_peers.py``.

Every contender trains **in one process, one iteration each in turn**, so that a change of
machine load hits all alike. Every ``eval_every_s`` seconds of a contender's training (its own
clock excludes evaluation) its deterministic policy runs one fixed-seed evaluation (an
:class:`train_vs_sb3.Evaluator`); the first time the success rate reaches the task's threshold
is its **time to threshold**. A contender stops at its env-step budget or ``max_s`` training
seconds; its final policy is then evaluated on fresh episodes (**final success**).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from train_vs_sb3 import TrainClock


class Agent:
    """One contender: ``step()`` trains one iteration; ``policy()`` is its deterministic policy."""

    name = ""
    env_steps = 0
    config = ""

    def step(self) -> None:
        raise NotImplementedError

    def policy(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass
class RunResult:
    """One agent on one task with one seed."""

    agent: str
    task: str
    seed: int
    config: str
    curve: list[dict[str, float]] = field(default_factory=list)
    """Evaluations: ``wall_s`` (training seconds), ``env_steps``, ``success_rate``, ``return``."""
    reached_s: float | None = None
    reached_steps: int | None = None
    train_s: float = 0.0
    env_steps: int = 0
    final_success: float = float("nan")
    load_1min: list[float] = field(default_factory=list)


def run_interleaved(
    task: str,
    seed: int,
    contenders: list[Agent],
    evaluator: Any,
    threshold: float,
    budget: int,
    eval_every_s: float,
    max_s: float = math.inf,
    episodes: int = 64,
) -> list[RunResult]:
    """Train ``contenders`` on ``task`` one iteration each in turn; see the module docstring.

    Args:
        task: the task name (for the final evaluation env and the log lines).
        seed: the run's seed; the final evaluation uses ``10_000 + seed``.
        contenders: the agents, already built; each is closed when it stops.
        evaluator: ``evaluator(policy) -> {"success_rate", "return", ...}``, deterministic.
        threshold: the task's success threshold.
        budget: env steps per contender.
        eval_every_s: training seconds between evaluations (5x sparser after the threshold).
        max_s: training seconds per contender.
        episodes: episodes of the final evaluation.

    Returns:
        One :class:`RunResult` per contender, in the order given.
    """
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.envs import make_env

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
            done = agent.env_steps >= budget or clock.elapsed >= max_s
            if clock.elapsed >= next_eval[agent.name] or done:
                point = {"wall_s": clock.elapsed, "env_steps": float(agent.env_steps),
                         **evaluator(agent.policy())}  # fmt: skip
                r.curve.append(point)
                r.load_1min.append(os.getloadavg()[0])
                if r.reached_s is None and point["success_rate"] >= threshold:
                    r.reached_s, r.reached_steps = clock.elapsed, agent.env_steps
                # after the threshold, a sparser curve (the final policy is judged apart)
                every = eval_every_s * (5 if r.reached_s is not None else 1)
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
                res = evaluate(agent.policy(), eval_env, episodes=episodes, seed=10_000 + seed)
                eval_env.close()
                r.final_success = res["success_rate"]
                print(
                    f"    [{task} {agent.name} seed {seed}] final success {r.final_success:.2f}",
                    flush=True,
                )
                agent.close()
                active.remove(agent)
    return list(results.values())
