"""Wall time to a fixed threshold: our PPO (``OnPolicyRunner``) vs stable-baselines3 PPO.

Agents, each trained on its own, one after the other, on the same machine:

* ``ours``: ``OnPolicyRunner`` on ``make_env(task)`` with the task's shipped training config
  (``sim_configs/train/<task>.yaml`` over ``default.yaml``: worlds, PPO hyper-parameters).
* ``sb3-adapter``: SB3 PPO through our SB3 ``VecEnv`` adapter on the same number of worlds,
  with what ``agent=sb3_ppo`` uses (``rewardlab.agents.sb3.default_hyperparams``: SB3's PPO
  defaults, about 2048 transitions per rollout split over the worlds, 4 minibatches) plus
  ``VecNormalize`` of observations and rewards, as rl-baselines3-zoo does for MuJoCo tasks.
* ``sb3-zoo``: SB3 PPO as most SB3 users run it: a ``DummyVecEnv`` of gymnasium envs (the
  numpy port of the task in ``_common.py``: same MJCF, physics, observation, reward,
  termination) with rl-baselines3-zoo's hyper-parameters: ``InvertedPendulum-v3`` (tuned) for
  ``cartpole_balance``, ``Ant-v3``/``Ant-v4`` (SB3 defaults, ``normalize: true``) for ``ant_run``.

The criterion is the same for every agent: a deterministic evaluation of the current policy on
our batched env (``--eval-worlds`` worlds, fixed seed, the first episode of every world), run
every ``--eval-every-s`` seconds of training. The clock counts training only (env stepping,
inference, updates); evaluation pauses it. The threshold is the task's success rate for
``cartpole_balance`` (>= 0.95, its ``success_threshold``) and a mean episode return for
``ant_run`` (``--threshold ant_run=...``). An agent that has not reached it after ``--budget-s``
seconds of training is reported as "not reached within X s".

Usage::

    python benchmarks/train_vs_sb3.py                      # full run (tens of minutes)
    python benchmarks/train_vs_sb3.py --quick              # smoke run (a few minutes)
    python benchmarks/train_vs_sb3.py --tasks cartpole_balance --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    check_port,
    contention_note,
    gym_spec,
    make_port,
    markdown_table,
    quiet_sb3_logger,
    system_info,
    write_json,
)

AGENTS = ("ours", "sb3-adapter", "sb3-zoo")
RATIO_TARGET = 3.0
"""Target of (SB3 time to threshold) / (our time to threshold)."""


@dataclass(frozen=True)
class Threshold:
    """When a task counts as reached: ``metric`` (``success_rate`` or ``return``) >= ``value``."""

    metric: str
    value: float

    def met(self, point: Mapping[str, float]) -> bool:
        return point[self.metric] >= self.value

    def __str__(self) -> str:
        name = "eval success rate" if self.metric == "success_rate" else "eval mean return"
        return f"{name} >= {self.value:g}"


THRESHOLDS: dict[str, Threshold] = {
    "cartpole_balance": Threshold("success_rate", 0.95),
    "ant_run": Threshold("return", 300.0),
}
"""Default thresholds; see the module docstring and README for how ant_run's was chosen."""

BUDGETS_S = {"cartpole_balance": 300.0, "ant_run": 900.0}
"""Default training-time caps per agent (seconds)."""
EVAL_EVERY_S = {"cartpole_balance": 2.0, "ant_run": 10.0}

# rl-baselines3-zoo hyperparams/ppo.yml (n_envs defaults to 1, normalize: VecNormalize of
# observations and rewards with the algorithm's gamma).
ZOO: dict[str, dict[str, Any]] = {
    # InvertedPendulum-v3 (tuned): the closest zoo task to cartpole_balance.
    "cartpole_balance": {
        "n_envs": 1,
        "normalize": True,
        "hyperparams": {
            "batch_size": 64,
            "n_steps": 32,
            "gamma": 0.999,
            "learning_rate": 0.000222425,
            "ent_coef": 1.37976e-07,
            "clip_range": 0.4,
            "n_epochs": 5,
            "gae_lambda": 0.9,
            "max_grad_norm": 0.3,
            "vf_coef": 0.19816,
        },
    },
    # Ant-v3 / Ant-v4: normalize: true, otherwise SB3's PPO defaults.
    "ant_run": {"n_envs": 1, "normalize": True, "hyperparams": {}},
}


# ---------------------------------------------------------------------------------------------
# Clock and evaluation


class TrainClock:
    """Seconds of training only: :meth:`pause` around evaluations."""

    def __init__(self) -> None:
        self._total = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = time.perf_counter()

    def pause(self) -> None:
        if self._since is not None:
            self._total += time.perf_counter() - self._since
            self._since = None

    @property
    def elapsed(self) -> float:
        running = 0.0 if self._since is None else time.perf_counter() - self._since
        return self._total + running


class Evaluator:
    """Deterministic evaluation on our batched env: the first episode of each of ``n`` worlds.

    Every call resets the env with the same seed, so every agent and every evaluation sees the
    same initial states.
    """

    def __init__(self, task: str, n: int, seed: int = 12345) -> None:
        from rewardlab.envs import make_env

        self.env = make_env(task, num_envs=n, seed=seed)
        self.seed = seed

    @torch.inference_mode()
    def __call__(self, policy: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        env = self.env
        obs = env.reset(seed=self.seed)
        n = env.num_envs
        finished = torch.zeros(n, dtype=torch.bool)
        ret = torch.zeros(n, dtype=torch.float64)
        success = torch.zeros(n, dtype=torch.bool)
        length = torch.zeros(n, dtype=torch.float64)
        for _ in range(env.max_episode_steps):
            obs, _, _, _, info = env.step(policy(obs.float()).float())
            ep = info.get("episode")
            if ep is not None:
                ids = ep["env_ids"]
                first = ~finished[ids]
                sel = ids[first]
                ret[sel] = ep["return"][first].double()
                success[sel] = ep["success"][first]
                length[sel] = ep["length"][first].double()
                finished[sel] = True
                if bool(finished.all()):
                    break
        return {
            "return": float(ret.mean()),
            "success_rate": float(success.double().mean()),
            "length": float(length.mean()),
        }

    def close(self) -> None:
        self.env.close()


@dataclass
class RunResult:
    """One agent on one task with one seed."""

    agent: str
    task: str
    seed: int
    config: str
    curve: list[dict[str, float]] = field(default_factory=list)
    """Evaluations: ``wall_s`` (training seconds), ``env_steps``, ``return``, ``success_rate``."""
    reached_s: float | None = None
    reached_steps: int | None = None
    budget_s: float = 0.0
    train_s: float = 0.0
    env_steps: int = 0

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.train_s if self.train_s > 0 else float("nan")


class _Tracker:
    """Shared bookkeeping: evaluate when due, stop at the threshold or the budget."""

    def __init__(
        self,
        result: RunResult,
        evaluator: Evaluator,
        threshold: Threshold,
        eval_every_s: float,
        clock: TrainClock,
    ) -> None:
        self.result, self.evaluator, self.threshold = result, evaluator, threshold
        self.eval_every_s, self.clock = eval_every_s, clock
        self.next_eval = 0.0  # the first check evaluates the initial policy

    def due(self) -> bool:
        t = self.clock.elapsed
        return t >= self.next_eval or t >= self.result.budget_s

    def check(
        self, policy: Callable[[], Callable[[torch.Tensor], torch.Tensor]], steps: int
    ) -> bool:
        """Evaluate (clock paused); returns ``True`` when training should stop."""
        self.clock.pause()
        t = self.clock.elapsed
        point = {"wall_s": t, "env_steps": float(steps), **self.evaluator(policy())}
        self.result.curve.append(point)
        self.next_eval = t + self.eval_every_s
        stop = False
        if self.threshold.met(point):
            self.result.reached_s, self.result.reached_steps = t, steps
            stop = True
        if t >= self.result.budget_s:
            stop = True
        print(
            f"    [{self.result.agent} seed {self.result.seed}] {t:7.1f} s {steps:>10,} steps  "
            f"return {point['return']:8.2f}  success {point['success_rate']:.2f}",
            flush=True,
        )
        self.result.train_s, self.result.env_steps = t, steps
        if not stop:
            self.clock.start()
        return stop


# ---------------------------------------------------------------------------------------------
# Agents


def run_ours(task: str, seed: int, tracker_args: dict[str, Any], budget_s: float) -> RunResult:
    """Our PPO with the task's shipped training config, one PPO iteration per clock check."""
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    cfg = load_train_config({"task": task, "seed": seed})
    env = make_env(
        task,
        num_envs=cfg.num_envs,
        cfg=cfg.task_config(),
        seed=seed,
        nthread=cfg.nthread,
    )
    runner = OnPolicyRunner(env, cfg.ppo, log_dir=None, seed=seed)
    runner.schedule_steps = int(cfg.total_steps)  # one learn call per iteration: count the run
    p = cfg.ppo
    result = RunResult(
        "ours",
        task,
        seed,
        f"OnPolicyRunner, {cfg.num_envs} worlds, num_steps {p.num_steps}, lr {p.learning_rate:g} "
        f"({p.schedule}), {p.num_epochs} epochs x {p.num_minibatches} minibatches, "
        f"actor {list(p.actor_hidden)}",
        budget_s=budget_s,
    )
    clock = TrainClock()
    tracker = _Tracker(result, clock=clock, **tracker_args)
    per_iter = cfg.num_envs * p.num_steps
    clock.start()
    while True:
        runner.learn(runner.global_step + per_iter, progress=False)
        if tracker.due() and tracker.check(runner.inference_policy, runner.global_step):
            break
    env.close()
    return result


class _SB3Callback:
    """Builds an SB3 ``BaseCallback`` around a tracker (imported lazily)."""

    @staticmethod
    def make(tracker: _Tracker, model_ref: list[Any]) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        from rewardlab.agents.sb3 import sb3_inference_policy

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                if not tracker.due():
                    return True
                model = model_ref[0]
                return not tracker.check(lambda: sb3_inference_policy(model), self.num_timesteps)

        return Callback()


def run_sb3(
    task: str, seed: int, agent: str, tracker_args: dict[str, Any], budget_s: float
) -> RunResult:
    """SB3 PPO (``sb3-adapter`` or ``sb3-zoo``); the callback checks the clock every step."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rewardlab.agents.sb3 import default_hyperparams
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env
    from rewardlab.envs.adapters.sb3 import Sb3VecEnv

    zoo = ZOO[task]
    if agent == "sb3-adapter":
        cfg = load_train_config({"task": task, "seed": seed})
        n = cfg.num_envs
        env = make_env(task, num_envs=n, cfg=cfg.task_config(), seed=seed, nthread=cfg.nthread)
        venv: Any = Sb3VecEnv(env)
        hp = default_hyperparams("ppo", n, 10**9)
        hp.pop("policy")
        config = f"SB3 PPO via Sb3VecEnv, {n} worlds, rewardlab default_hyperparams {hp}"
    else:
        spec = gym_spec(task)
        n = zoo["n_envs"]
        venv = DummyVecEnv([partial(make_port, spec) for _ in range(n)])
        hp = {"device": "cpu", **zoo["hyperparams"]}
        config = f"SB3 PPO, DummyVecEnv({n} gymnasium env), rl-zoo hyperparams {zoo['hyperparams'] or 'SB3 defaults'}"
    gamma = float(hp.get("gamma", 0.99))
    venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=gamma)
    config += ", VecNormalize(obs, reward)"
    result = RunResult(agent, task, seed, config, budget_s=budget_s)
    clock = TrainClock()
    tracker = _Tracker(result, clock=clock, **tracker_args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zoo's batch_size > n_steps warning
        model = PPO("MlpPolicy", venv, seed=seed, verbose=0, **hp)
    quiet_sb3_logger(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as train_sb3 and OnPolicyRunner do
    try:
        clock.start()
        model.learn(total_timesteps=10**10, callback=_SB3Callback.make(tracker, [model]))
    finally:
        torch.set_num_threads(threads)
        venv.close()
    return result


# ---------------------------------------------------------------------------------------------
# Report


def summarize(results: list[RunResult], thresholds: dict[str, Threshold]) -> list[dict[str, Any]]:
    """Median time-to-threshold per (task, agent) over seeds, and the ratio to ours."""
    rows = []
    by: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        by.setdefault((r.task, r.agent), []).append(r)
    for (task, agent), runs in by.items():
        times = [r.reached_s for r in runs]
        reached = [t for t in times if t is not None]
        all_reached = len(reached) == len(runs)
        rows.append(
            {
                "task": task,
                "agent": agent,
                "threshold": str(thresholds[task]),
                "seeds": [r.seed for r in runs],
                "reached": f"{len(reached)}/{len(runs)}",
                "median_time_s": statistics.median(reached) if all_reached else None,
                "times_s": times,
                "median_steps": (
                    statistics.median([r.reached_steps for r in runs if r.reached_steps])
                    if all_reached
                    else None
                ),
                "budget_s": max(r.budget_s for r in runs),
                "steps_per_s": statistics.median([r.steps_per_s for r in runs]),
                "best_return": max(
                    max((p["return"] for p in r.curve), default=math.nan) for r in runs
                ),
                "config": runs[0].config,
            }
        )
    for row in rows:
        ours = next((r for r in rows if r["task"] == row["task"] and r["agent"] == "ours"), None)
        row["ratio_vs_ours"] = None
        row["ratio_is_lower_bound"] = False
        if ours is None or row["agent"] == "ours" or ours["median_time_s"] is None:
            continue
        if row["median_time_s"] is not None:
            row["ratio_vs_ours"] = row["median_time_s"] / ours["median_time_s"]
        else:  # not reached: at least budget / ours
            row["ratio_vs_ours"] = row["budget_s"] / ours["median_time_s"]
            row["ratio_is_lower_bound"] = True
    return rows


def plot(task: str, results: list[RunResult], threshold: Threshold, out: Path, title: str) -> None:
    """Eval return (and success rate) vs training wall-clock seconds, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6.4), sharex=True)
    colors = {"ours": "tab:blue", "sb3-adapter": "tab:orange", "sb3-zoo": "tab:green"}
    for r in results:
        if r.task != task or not r.curve:
            continue
        t = [p["wall_s"] for p in r.curve]
        label = r.agent if r.seed == 0 else None
        for ax, key in zip(axes, ("return", "success_rate"), strict=True):
            ax.plot(
                t,
                [p[key] for p in r.curve],
                color=colors.get(r.agent),
                label=label,
                lw=1.5,
                marker="o",
                ms=3,
            )
        if r.reached_s is not None:
            axes[0 if threshold.metric == "return" else 1].axvline(
                r.reached_s, color=colors.get(r.agent), ls=":", lw=1
            )
    ax = axes[0 if threshold.metric == "return" else 1]
    ax.axhline(threshold.value, color="black", ls="--", lw=1, label=f"threshold ({threshold})")
    axes[0].set_ylabel("deterministic eval return")
    axes[1].set_ylabel("eval success rate")
    axes[1].set_xlabel("training wall-clock seconds (evaluation excluded)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[1].legend(loc="best", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Training wall time to a threshold: our PPO vs stable-baselines3 PPO",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']} (1 intra-op thread for every agent), "
        f"stable-baselines3 {info.get('stable_baselines3', '?')}, mujoco {info['mujoco']}.",
        f"Seeds {args.seeds}; evaluation every {args.eval_every_s or EVAL_EVERY_S} s of training "
        f"on {args.eval_worlds} worlds (deterministic, first episode per world); the clock "
        "excludes evaluation."
        + (" **--quick**: a smoke run, not a measurement." if args.quick else ""),
    ]
    note = contention_note(info)
    if note:
        lines += ["", note]
    table = []
    for r in rows:
        if r["median_time_s"] is not None:
            t = f"{r['median_time_s']:.1f}"
        else:
            t = f"not reached within {r['budget_s']:.0f} s ({r['reached']})"
        ratio = r["ratio_vs_ours"]
        if r["agent"] == "ours":
            rs = "1 (reference)"
        elif ratio is None:
            rs = "n/a (ours did not reach)"
        else:
            verdict = "meets" if ratio >= RATIO_TARGET else "below"
            rs = f"{'>= ' if r['ratio_is_lower_bound'] else ''}{ratio:.1f}x ({verdict} {RATIO_TARGET:g}x)"
        table.append(
            [
                r["task"],
                r["agent"],
                r["threshold"],
                t,
                "n/a" if r["median_steps"] is None else int(r["median_steps"]),
                r["steps_per_s"],
                r["best_return"],
                rs,
            ]
        )
    lines += [
        "",
        markdown_table(
            [
                "task",
                "agent",
                "threshold",
                "time to threshold (s, median)",
                "env steps then",
                "train env steps/s",
                "best eval return",
                "SB3 time / ours",
            ],
            table,
        ),
        "",
        "## Configurations",
        "",
    ]
    lines += [f"- **{r['task']} / {r['agent']}**: {r['config']}" for r in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["cartpole_balance", "ant_run"])
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--budget-s", type=float, default=None, help="training-time cap per run (default per task)"
    )
    p.add_argument(
        "--eval-every-s", type=float, default=None, help="training seconds between evaluations"
    )
    p.add_argument("--eval-worlds", type=int, default=32, help="worlds (episodes) per evaluation")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TASK=VALUE",
        help="override a task's threshold value (e.g. ant_run=400)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s budgets, 5 s evals")
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = p.parse_args(argv)
    if args.quick:
        args.budget_s = args.budget_s or 20.0
        args.eval_every_s = args.eval_every_s or 5.0
        args.eval_worlds = min(args.eval_worlds, 16)
    if args.out is None:
        args.out = RESULTS / ("train_vs_sb3_quick" if args.quick else "train_vs_sb3")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from rewardlab.envs import task_names

    thresholds = dict(THRESHOLDS)
    for item in args.threshold:
        task, _, value = item.partition("=")
        if task not in thresholds:
            raise SystemExit(f"--threshold: unknown task {task!r} ({', '.join(thresholds)})")
        thresholds[task] = Threshold(thresholds[task].metric, float(value))
    info = system_info()
    results: list[RunResult] = []
    tasks = [t for t in args.tasks if t in task_names()]
    for t in set(args.tasks) - set(tasks):
        print(f"skipping {t}: not a registered task")
    for task in tasks:
        if "sb3-zoo" in args.agents:
            print(f"{task}: gymnasium port matches the task {check_port(task)}")
        evaluator = Evaluator(task, args.eval_worlds)
        for seed in args.seeds:
            for agent in args.agents:
                budget = args.budget_s or BUDGETS_S.get(task, 300.0)
                tracker_args = {
                    "evaluator": evaluator,
                    "threshold": thresholds[task],
                    "eval_every_s": args.eval_every_s or EVAL_EVERY_S.get(task, 5.0),
                }
                print(f"{task} / {agent} / seed {seed} (budget {budget:.0f} s) ...", flush=True)
                torch.manual_seed(seed)
                np.random.seed(seed)
                if agent == "ours":
                    r = run_ours(task, seed, tracker_args, budget)
                else:
                    r = run_sb3(task, seed, agent, tracker_args, budget)
                results.append(r)
        evaluator.close()
    rows = summarize(results, thresholds)
    text = report(rows, info, args)
    print(text)
    suffix = "_quick" if args.quick else ""
    for task in tasks:
        title = (
            f"{task}: {thresholds[task]}; {info['cpu_count']} cores"
            + (" (contended)" if contention_note(info) else "")
            + (" [--quick]" if args.quick else "")
        )
        png = args.out.parent / f"train_vs_sb3_{task}{suffix}.png"
        plot(task, results, thresholds[task], png, title)
        print(f"wrote {png}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    write_json(
        args.out.with_suffix(".json"),
        {
            "system": info,
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "thresholds": {k: str(v) for k, v in thresholds.items()},
            "summary": rows,
            "runs": [vars(r) for r in results],
        },
    )
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
