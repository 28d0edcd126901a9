"""Wall time to a deterministic success threshold: our PPO vs rsl_rl vs stable-baselines3, same env.

Agents, on the same batched env (``make_env(task)``, the same number of worlds), each seed
training all agents **interleaved in one process**: one training iteration of each agent in
turn, so that a change of machine load hits every agent alike:

* ``ours``: ``OnPolicyRunner`` with the task's shipped config (``sim_configs/train/``).
* ``rsl_rl``: rsl_rl's ``OnPolicyRunner`` (``pip install rsl-rl-lib``; see README.md) on our env
  wrapped as an rsl_rl ``VecEnv`` (:class:`RslRlVecEnv`), with Isaac Lab's published agent
  settings for the task (:data:`ISAACLAB`): ``CartpolePPORunnerCfg`` for cart-pole,
  ``AntPPORunnerCfg`` for Ant.
* ``sb3``: stable-baselines3 PPO on our env through ``Sb3VecEnv`` with what ``agent=sb3_ppo``
  uses (``rewardlab.agents.sb3.default_hyperparams``) plus ``VecNormalize`` of observations
  and rewards, as rl-baselines3-zoo runs MuJoCo tasks.

Every agent trains for the same number of env steps (our default budget for the task, from
``sim_configs/train/<task>.yaml``). Every ``--eval-every-s`` seconds of an agent's training
(the clock excludes evaluation) its deterministic policy runs the first episode of 32 worlds of
one fixed-seed evaluation env; the first time the success rate reaches the task's
``success_threshold`` is its **time to threshold**. At the end of the budget the final policy
is evaluated on 64 fresh episodes (``agents.evaluate.evaluate``): **final success**, which must
hold the threshold too.

Usage::

    python benchmarks/train_vs_peers.py                                  # both tasks, 3 seeds
    python benchmarks/train_vs_peers.py --tasks cartpole_balance --seeds 0 1 2 3 4
    python benchmarks/train_vs_peers.py --quick                          # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
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
from train_vs_sb3 import Evaluator  # noqa: E402

AGENTS = ("ours", "rsl_rl", "sb3")
RATIO_TARGET = 2.0
"""Target of (peer's median time to threshold) / (ours)."""
EVAL_EVERY_S = {"cartpole_balance": 1.0, "ant_run": 10.0}

# Isaac Lab's published rsl_rl agent settings (isaaclab_tasks/direct/cartpole/agents/
# rsl_rl_ppo_cfg.py: CartpolePPORunnerCfg; direct/ant/agents/rsl_rl_ppo_cfg.py: AntPPORunnerCfg).
ISAACLAB: dict[str, dict[str, Any]] = {
    "cartpole_balance": {
        "num_steps_per_env": 16,
        "hidden_dims": [32, 32],
        "obs_normalization": False,
        "algorithm": {"entropy_coef": 0.005, "learning_rate": 1.0e-3},
    },
    "ant_run": {
        "num_steps_per_env": 32,
        "hidden_dims": [400, 200, 100],
        "obs_normalization": False,
        "algorithm": {"entropy_coef": 0.0, "learning_rate": 5.0e-4},
    },
}
_ISAACLAB_COMMON = {
    "class_name": "PPO",
    "value_loss_coef": 1.0,
    "use_clipped_value_loss": True,
    "clip_param": 0.2,
    "num_learning_epochs": 5,
    "num_mini_batches": 4,
    "schedule": "adaptive",
    "gamma": 0.99,
    "lam": 0.95,
    "desired_kl": 0.01,
    "max_grad_norm": 1.0,
}


def rsl_rl_train_cfg(task: str) -> dict[str, Any]:
    """rsl_rl's ``train_cfg`` dict (rsl-rl-lib 5.x layout) for Isaac Lab's settings of ``task``."""
    s = ISAACLAB[task]
    model = {"class_name": "MLPModel", "hidden_dims": s["hidden_dims"], "activation": "elu",
             "obs_normalization": s["obs_normalization"]}  # fmt: skip
    return {
        "num_steps_per_env": s["num_steps_per_env"],
        "save_interval": 10**9,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {**_ISAACLAB_COMMON, **s["algorithm"]},
        "actor": {
            **model,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
        },
        "critic": dict(model),
    }


def _rsl_rl_vec_env_class() -> type:
    """:class:`RslRlVecEnv`, built on first use (rsl_rl is an optional, benchmark-only package)."""
    from rsl_rl.env import VecEnv  # pyright: ignore[reportMissingImports]
    from tensordict import TensorDict  # pyright: ignore[reportMissingImports]

    class RslRlVecEnv(VecEnv):
        """Our batched env as an rsl_rl ``VecEnv``: observations in a ``TensorDict`` under
        ``"policy"``, ``dones = terminated | truncated`` and ``extras["time_outs"] = truncated``
        (rsl_rl bootstraps time-outs), as Isaac Lab's ``RslRlVecEnvWrapper`` reports them."""

        def __init__(self, env: Any, seed: int) -> None:
            self.env = env
            self.num_envs = env.num_envs
            self.num_actions = env.action_dim
            self.max_episode_length = env.max_episode_steps
            self.episode_length_buf = torch.zeros(env.num_envs, dtype=torch.long)
            self.device = env.device
            self.cfg: dict[str, Any] = {}
            self._obs = env.reset(seed=seed)

        def _td(self, obs: torch.Tensor) -> Any:
            return TensorDict({"policy": obs}, batch_size=[self.num_envs])

        def get_observations(self) -> Any:
            return self._td(self._obs)

        def step(self, actions: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor, dict]:
            obs, reward, terminated, truncated, _ = self.env.step(actions)
            self._obs = obs
            dones = (terminated | truncated).long()
            return self._td(obs), reward, dones, {"time_outs": truncated, "log": {}}

    return RslRlVecEnv


# ---------------------------------------------------------------------------------------------
# Agents: one training iteration per step(), the deterministic policy on demand


class Ours(Agent):
    name = "ours"

    def __init__(self, task: str, seed: int) -> None:
        from rewardlab.agents.runner import OnPolicyRunner
        from rewardlab.config import load_train_config
        from rewardlab.envs import make_env

        cfg = load_train_config({"task": task, "seed": seed})
        self.budget = int(cfg.total_steps)
        self.env = make_env(task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed)
        self.runner = OnPolicyRunner(self.env, cfg.ppo, log_dir=None, seed=seed)
        self.runner.schedule_steps = self.budget  # one learn call per iteration: count the run
        self.per_iter = cfg.num_envs * cfg.ppo.num_steps
        p = cfg.ppo
        self.config = (
            f"OnPolicyRunner, {cfg.num_envs} worlds, num_steps {p.num_steps}, lr {p.learning_rate:g} "
            f"({p.schedule}, desired_kl {p.desired_kl:g}"
            + (f" annealed to {p.desired_kl_final:g}" if p.desired_kl_final > 0 else "")
            + f", early stop at {p.kl_stop_ratio:g}x), "
            f"{p.num_epochs} epochs x {p.num_minibatches} minibatches, actor "
            f"{list(p.actor_hidden)} critic {list(p.critic_hidden)} {p.activation}, initial "
            f"action std {p.init_noise_std:g}"
        )

    def step(self) -> None:
        self.runner.learn(self.runner.global_step + self.per_iter, progress=False)
        self.env_steps = self.runner.global_step

    def policy(self) -> Any:
        return self.runner.inference_policy()

    def close(self) -> None:
        self.env.close()


class RslRl(Agent):
    name = "rsl_rl"

    def __init__(self, task: str, seed: int, num_envs: int) -> None:
        import contextlib
        import io

        from rsl_rl.runners import OnPolicyRunner as RslRunner  # pyright: ignore[reportMissingImports]

        from rewardlab.envs import make_env

        torch.manual_seed(seed)
        np.random.seed(seed)
        self.env = make_env(task, num_envs=num_envs, seed=seed)
        self.venv = _rsl_rl_vec_env_class()(self.env, seed)
        cfg = rsl_rl_train_cfg(task)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints both networks
            self.runner = RslRunner(self.venv, cfg, log_dir=None, device="cpu")
        self.per_iter = num_envs * cfg["num_steps_per_env"]
        s = ISAACLAB[task]
        self.config = (
            f"rsl_rl OnPolicyRunner on RslRlVecEnv, {num_envs} worlds, Isaac Lab settings: "
            f"num_steps_per_env {s['num_steps_per_env']}, actor/critic {s['hidden_dims']} elu, "
            f"obs normalization {s['obs_normalization']}, {cfg['algorithm']}"
        )

    def step(self) -> None:
        self.runner.learn(1)
        self.env_steps += self.per_iter

    def policy(self) -> Any:
        pol = self.runner.alg.get_policy().as_jit().to("cpu").eval()
        self.runner.alg.train_mode()
        return lambda obs: pol(obs).clamp(-1.0, 1.0)


class Sb3(Agent):
    name = "sb3"

    def __init__(self, task: str, seed: int, num_envs: int) -> None:
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import VecNormalize

        from rewardlab.agents.sb3 import default_hyperparams
        from rewardlab.envs import make_env
        from rewardlab.envs.adapters.sb3 import Sb3VecEnv

        self.env = make_env(task, num_envs=num_envs, seed=seed)
        hp = default_hyperparams("ppo", num_envs, 10**9)
        hp.pop("policy")
        self.venv = VecNormalize(
            Sb3VecEnv(self.env), norm_obs=True, norm_reward=True, clip_obs=10.0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.model = PPO("MlpPolicy", self.venv, seed=seed, verbose=0, **hp)
        quiet_sb3_logger(self.model)
        self.per_iter = hp["n_steps"] * num_envs
        self.config = f"SB3 PPO via Sb3VecEnv, {num_envs} worlds, {hp}, VecNormalize(obs, reward)"

    def step(self) -> None:
        self.model.learn(self.per_iter, reset_num_timesteps=False)
        self.env_steps = int(self.model.num_timesteps)

    def policy(self) -> Any:
        from rewardlab.agents.sb3 import sb3_inference_policy

        return sb3_inference_policy(self.model)

    def close(self) -> None:
        self.venv.close()


def make_agent(name: str, task: str, seed: int, num_envs: int) -> Agent:
    if name == "ours":
        return Ours(task, seed)
    if name == "rsl_rl":
        return RslRl(task, seed, num_envs)
    return Sb3(task, seed, num_envs)


# ---------------------------------------------------------------------------------------------
# The interleaved run


def run_seed(
    task: str, seed: int, agents: list[str], budget: int, eval_every_s: float, evaluator: Evaluator,
    threshold: float, episodes: int,
) -> list[RunResult]:  # fmt: skip
    """Train every agent on ``task`` with ``seed`` to ``budget`` env steps, one iteration each in turn."""
    ours = Ours(task, seed) if "ours" in agents else None
    num_envs = ours.env.num_envs if ours is not None else 64
    contenders: list[Agent] = [
        ours if a == "ours" else make_agent(a, task, seed, num_envs) for a in agents
    ]  # type: ignore[misc]
    return run_interleaved(task, seed, contenders, evaluator, threshold, budget, eval_every_s,
                           episodes=episodes)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Report


def summarize(results: list[RunResult], threshold: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for task, agent in dict.fromkeys((r.task, r.agent) for r in results):
        runs = [r for r in results if r.task == task and r.agent == agent]
        times = [r.reached_s for r in runs]
        reached = [t for t in times if t is not None]
        finals = [r.final_success for r in runs]
        rows.append(
            {
                "task": task,
                "agent": agent,
                "seeds": [r.seed for r in runs],
                "reached": f"{len(reached)}/{len(runs)}",
                "median_time_s": statistics.median(reached) if len(reached) == len(runs) else None,
                "times_s": times,
                "steps_to_threshold": [r.reached_steps for r in runs],
                "final_success": finals,
                "finals_hold": sum(f >= threshold[task] for f in finals),
                "train_s": [r.train_s for r in runs],
                "steps_per_s": statistics.median(
                    r.env_steps / r.train_s for r in runs if r.train_s > 0
                ),
                "budget_steps": max(r.env_steps for r in runs),
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
        else:  # a seed never reached it: the ratio is at least (its training time) / ours
            bound = statistics.median(
                t if t is not None else s
                for t, s in zip(row["times_s"], row["train_s"], strict=True)
            )
            row["ratio_vs_ours"] = bound / ours["median_time_s"]
            row["ratio_is_lower_bound"] = True
    return rows


def report(
    rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace, loads: list[float]
) -> str:
    lines = [
        "# Wall time to a deterministic success threshold: our PPO vs rsl_rl vs stable-baselines3",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']} (1 intra-op thread for every agent), rsl-rl-lib "
        f"{info.get('rsl_rl_lib') or _version('rsl-rl-lib')}, stable-baselines3 "
        f"{_version('stable-baselines3')}, mujoco {info['mujoco']}. " + _written_by(info),
        "",
        f"Seeds {args.seeds}. Per seed the agents train **interleaved** (one iteration each in "
        "turn, one process), so machine load hits all alike; 1-min load average during the runs: "
        f"median {statistics.median(loads):.1f}, max {max(loads):.1f} (2 cores shared with other work). "
        "Time to threshold: training seconds (evaluation excluded) until the deterministic policy "
        "first succeeds on >= the task's success threshold of 32 evaluation worlds (evaluated every "
        f"{_eval_period(args, rows)} of training). Final success: the policy at the end of "
        "the env-step budget on 64 fresh episodes.",
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
        ratio = r["ratio_vs_ours"]
        if r["agent"] == "ours":
            rs = "1 (reference)"
        elif ratio is None:
            rs = "n/a"
        else:
            verdict = "meets" if ratio >= RATIO_TARGET else "below"
            rs = f"{'>= ' if r['ratio_is_lower_bound'] else ''}{ratio:.1f}x ({verdict} {RATIO_TARGET:g}x)"
        finals = ", ".join(f"{f:.2f}" for f in r["final_success"])
        table.append([r["task"], r["agent"], t, per_seed, f"{r['budget_steps']:,}", f"{r['steps_per_s']:,.0f}",
                      f"{finals} ({r['finals_hold']}/{len(r['final_success'])} hold)", rs])  # fmt: skip
    lines += [
        "",
        markdown_table(
            [
                "task",
                "agent",
                "time to threshold (s, median)",
                "per seed (s)",
                "env-step budget",
                "train env steps/s",
                "final success per seed",
                "peer time / ours",
            ],
            table,
        ),  # fmt: skip
        "",
        "## Configurations",
        "",
    ]
    lines += [f"- **{r['task']} / {r['agent']}**: {r['config']}" for r in rows]
    return "\n".join(lines) + "\n"


def _written_by(info: dict[str, Any]) -> str:
    if "merged_from" not in info:
        return "Written by `benchmarks/train_vs_peers.py`."
    return (
        "Written by `benchmarks/train_vs_peers.py --merge` from runs made at the same time: "
        + "; ".join(info["merged_from"])
        + "."
    )


def write_report(
    out: Path,
    results: list[RunResult],
    thresholds: dict[str, float],
    info: dict[str, Any],
    args: argparse.Namespace,
    settings: dict[str, Any],
) -> str:
    """Write ``out.md`` and ``out.json`` for ``results``; returns the markdown."""
    rows = summarize(results, thresholds)
    loads = [x for r in results for x in r.load_1min] or [float("nan")]
    text = report(rows, info, args, loads)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    write_json(out.with_suffix(".json"), {"system": info, "settings": settings, "summary": rows,
               "runs": [vars(r) for r in results]})  # fmt: skip
    return text


def _eval_period(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    """``"5 s"`` when ``--eval-every-s`` was given, else each reported task's default."""
    if args.eval_every_s:
        return f"{args.eval_every_s:g} s"
    tasks = dict.fromkeys(r["task"] for r in rows)
    return ", ".join(f"{EVAL_EVERY_S[t]:g} s ({t})" for t in tasks)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def plot(task: str, results: list[RunResult], threshold: float, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    colors = {"ours": "tab:blue", "rsl_rl": "tab:red", "sb3": "tab:orange"}
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
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def merge(args: argparse.Namespace) -> None:
    """Write one report from the ``.json`` files of runs made with the same settings."""
    from rewardlab.envs.tasks import get_task

    docs = [json.loads(path.read_text()) for path in args.merge]
    for key in ("eval_every_s", "budget_steps", "episodes", "quick"):
        values = {json.dumps(d["settings"].get(key)) for d in docs}
        if len(values) > 1:
            raise SystemExit(f"--merge: the runs differ in {key} ({', '.join(sorted(values))})")
    results = [RunResult(**run) for d in docs for run in d["runs"]]
    settings = docs[0]["settings"]
    args.seeds = sorted({r.seed for r in results})
    args.eval_every_s, args.quick = settings["eval_every_s"], settings["quick"]
    thresholds = {r.task: float(get_task(r.task).success_threshold) for r in results}
    info = dict(docs[0]["system"])
    info["merged_from"] = [
        f"{path.name} (git {d['system']['git_rev']}, {d['system']['date']})"
        for path, d in zip(args.merge, docs, strict=True)
    ]
    out = args.out or RESULTS / "train_vs_peers"
    text = write_report(out, results, thresholds, info, args, settings)
    for task in thresholds:
        title = f"{task}: deterministic success vs training time, seeds {args.seeds}"
        plot(task, results, thresholds[task], out.parent / f"{out.name}_{task}.png", title)
    print(text)
    print(f"wrote {out.with_suffix('.md')}, .json, _<task>.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--tasks", nargs="+", default=["cartpole_balance", "ant_run"], choices=list(ISAACLAB)
    )
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--budget-steps", type=int, default=None, help="env steps per agent (default: ours')"
    )
    p.add_argument("--eval-every-s", type=float, default=None)
    p.add_argument("--episodes", type=int, default=64, help="episodes of the final evaluation")
    p.add_argument("--quick", action="store_true", help="smoke run: 30k steps, one seed")
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="trains nothing: combine the .json files of earlier runs of this script (e.g. one "
        "process per seed, same settings) into one table, plot and .json at --out",
    )
    args = p.parse_args(argv)
    if args.merge:
        merge(args)
        return
    if args.quick:
        args.budget_steps, args.seeds = args.budget_steps or 30_000, args.seeds[:1]
    args.out = args.out or RESULTS / ("train_vs_peers_quick" if args.quick else "train_vs_peers")
    from rewardlab.config import load_train_config
    from rewardlab.envs.tasks import get_task

    info = system_info()
    info["rsl_rl_lib"] = _version("rsl-rl-lib")
    thresholds = {t: float(get_task(t).success_threshold) for t in args.tasks}
    results: list[RunResult] = []
    for task in args.tasks:
        budget = args.budget_steps or int(load_train_config({"task": task}).total_steps)
        evaluator = Evaluator(task, 32)
        for seed in args.seeds:
            print(
                f"{task} seed {seed}: {', '.join(args.agents)} to {budget:,} env steps, interleaved",
                flush=True,
            )
            results += run_seed(task, seed, args.agents, budget, args.eval_every_s or EVAL_EVERY_S[task],
                                evaluator, thresholds[task], args.episodes)  # fmt: skip
            settings = {k: v for k, v in vars(args).items() if k != "out"}
            write_report(
                args.out, results, thresholds, info, args, settings
            )  # partial results survive
        evaluator.close()
        title = f"{task}: deterministic success vs training time, seeds {args.seeds}"
        plot(
            task, results, thresholds[task], args.out.parent / f"{args.out.name}_{task}.png", title
        )
    print(args.out.with_suffix(".md").read_text())
    print(f"wrote {args.out.with_suffix('.md')}, .json, _<task>.png")


if __name__ == "__main__":
    main()
