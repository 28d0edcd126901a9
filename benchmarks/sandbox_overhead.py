"""Sandbox overhead: a 4096-world training step with the sandboxed reward vs the same reward
trusted, for the two designs issue 17 asks to compare.

A *training step* here is one control step of PPO's rollout on 4096 worlds: ``env.step`` of the
MuJoCo CPU backend with the reward computed inside it (physics, observations, reward,
resets); the PPO update is amortized over many such steps and only makes any overhead smaller.

* **A, reward server** (the design RewardLab uses): the trainer stays in this process and the
  reward runs in the OS sandbox (:class:`rewardlab.rewards.remote.RemoteReward`): each call
  copies the state into shared memory, one round trip over a Unix socket, the outputs copied
  back and checked (shape, finite values). Compared with the same reward function imported
  directly into this process (``trusted``) -- interleaved, ``--rounds`` rounds of ``--steps``
  steps in shuffled order, so load changes hit both alike.
* **B, trainer inside the sandbox**: the whole loop (env + reward compiled in-process) runs in
  the same bubblewrap sandbox (namespaces, read-only mounts, nobody, seccomp filter, rlimits),
  compared with the same script as a plain subprocess; two runs of each, alternating.

Reported: median and 10th percentile of the per-step time (other processes only ever add
time, so on a busy machine the low percentile is the better estimate), the ratios, and the
reward call alone (trusted vs sandboxed, microseconds: the fixed cost of the boundary).

Usage::

    python benchmarks/sandbox_overhead.py           # ~3-5 min on 2 cores
    python benchmarks/sandbox_overhead.py --quick   # smoke run, writes *_quick.*
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "rewards"
ANT_REWARD = """
import torch


def compute_reward(state, action):
    forward = state["forward_vel"]
    upright = state["up_z"]
    alive = torch.ones_like(forward)
    effort = -0.005 * (action ** 2).sum(-1)
    rate = -0.01 * ((state["last_action"] - state["prev_action"]) ** 2).sum(-1)
    height = -torch.abs(state["torso_pos"][:, 2] - 0.55)
    total = forward + 0.5 * upright + alive + effort + rate + height
    return total, {"forward": forward, "upright": upright, "alive": alive, "effort": effort,
                   "rate": rate, "height": height}
"""
TASKS = {
    "cartpole_balance": (FIXTURES / "cartpole_native.py").read_text(),
    "ant_run": ANT_REWARD,
}


def _direct(code: str) -> Callable[..., Any]:
    """The reward function imported as a normal module: no checks, no sandbox."""
    path = Path("/tmp") / f"rewardlab_bench_reward_{abs(hash(code))}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.compute_reward


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def _time_steps(env: Any, steps: int, gen: torch.Generator) -> list[float]:
    out = []
    for _ in range(steps):
        a = torch.rand(env.num_envs, env.action_dim, generator=gen) * 2 - 1
        t0 = time.perf_counter()
        env.step(a)
        out.append(time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------------------------------
# design A: the reward server


def design_a(task: str, num_envs: int, rounds: int, steps: int) -> dict[str, Any]:
    from rewardlab.envs import make_env
    from rewardlab.rewards.loader import compile_source

    code = TASKS[task]
    env = make_env(task, num_envs=num_envs, seed=0)
    names = list(env.state_spec())
    rewards = {
        "trusted": _direct(code),
        "sandboxed": compile_source(code, names, task, float(env.control_dt)),
    }
    gen = torch.Generator().manual_seed(0)
    env.reset(seed=0)
    for fn in rewards.values():  # warm-up (layout, caches)
        env.set_reward(fn)
        _time_steps(env, 2, gen)
    times: dict[str, list[float]] = {k: [] for k in rewards}
    for _ in range(rounds):
        order = list(rewards)
        random.shuffle(order)
        for k in order:
            env.set_reward(rewards[k])
            times[k] += _time_steps(env, steps, gen)
    # the reward call alone, on the env's current state
    state, action = env.state(), torch.rand(num_envs, env.action_dim, generator=gen)
    calls: dict[str, list[float]] = {k: [] for k in rewards}
    for _ in range(rounds * 20):
        for k, fn in rewards.items():
            t0 = time.perf_counter()
            fn(dict(state), action)
            calls[k].append(time.perf_counter() - t0)
    rewards["sandboxed"].close()
    env.close()
    out: dict[str, Any] = {"task": task, "num_envs": num_envs, "steps_timed": len(times["trusted"])}  # fmt: skip
    for k in rewards:
        out[f"step_ms_{k}"] = {"median": statistics.median(times[k]) * 1e3, "p10": _pct(times[k], 0.1) * 1e3}  # fmt: skip
        out[f"call_us_{k}"] = {"median": statistics.median(calls[k]) * 1e6, "p10": _pct(calls[k], 0.1) * 1e6}  # fmt: skip
    for stat in ("median", "p10"):
        out[f"ratio_{stat}"] = out["step_ms_sandboxed"][stat] / out["step_ms_trusted"][stat]
    return out


# ---------------------------------------------------------------------------------------------
# design B: the trainer inside the sandbox


def inner(task: str, num_envs: int, steps: int, sandboxed: bool) -> None:
    """Body of a design-B run (in the sandbox or as a plain subprocess): prints one JSON line."""
    from rewardlab.envs import make_env
    from rewardlab.rewards import seccomp_filter
    from rewardlab.rewards.loader import compile_source

    torch.set_num_threads(1)
    env = make_env(task, num_envs=num_envs, seed=0)
    fn = compile_source(TASKS[task], list(env.state_spec()), task, float(env.control_dt), sandbox="none")  # fmt: skip
    env.set_reward(fn)
    applied = seccomp_filter.install(reward=True) if sandboxed else []
    gen = torch.Generator().manual_seed(0)
    env.reset(seed=0)
    _time_steps(env, 3, gen)
    t = _time_steps(env, steps, gen)
    print(json.dumps({"steps": t, "applied": applied}), flush=True)


def design_b(task: str, num_envs: int, runs: int, steps: int) -> dict[str, Any]:
    from rewardlab.rewards import boundary

    me = [sys.executable, str(Path(__file__).resolve()), "--inner", task, str(num_envs), str(steps)]
    plain = me + ["plain"]
    boxed = boundary.bwrap_argv(
        me + ["sandboxed"],
        64,
        extra_ro=[
            str(REPO / "benchmarks"),
            str(REPO / "sim_configs"),
            str(REPO / "tests" / "fixtures"),
        ],  # fmt: skip
    )
    times: dict[str, list[float]] = {"plain": [], "sandboxed": []}
    applied: list[str] = []
    for _ in range(runs):
        for k, argv in (("plain", plain), ("sandboxed", boxed)):
            # the same environment variables as inside the sandbox (thread counts, ...)
            env = dict(boundary._ENV) | {"MUJOCO_GL": "egl"}
            res = subprocess.run(argv, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, env=env)  # fmt: skip
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            if res.returncode != 0 or not lines:
                raise RuntimeError(f"design B {k} run failed: {res.stderr[-2000:]}")
            data = json.loads(lines[-1])
            times[k] += data["steps"]
            applied = data["applied"] or applied
    out: dict[str, Any] = {"task": task, "num_envs": num_envs, "steps_timed": len(times["plain"]), "sandbox": applied}  # fmt: skip
    for k in times:
        out[f"step_ms_{k}"] = {"median": statistics.median(times[k]) * 1e3, "p10": _pct(times[k], 0.1) * 1e3}  # fmt: skip
    for stat in ("median", "p10"):
        out[f"ratio_{stat}"] = out["step_ms_sandboxed"][stat] / out["step_ms_plain"][stat]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run (few steps)")
    p.add_argument("--num-envs", type=int, default=4096)
    p.add_argument("--inner", nargs=4, metavar=("TASK", "N", "STEPS", "MODE"), help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args()
    if args.inner:
        task, n, steps, mode = args.inner
        inner(task, int(n), int(steps), mode == "sandboxed")
        return
    torch.set_num_threads(1)
    info = system_info()
    rounds, steps = (2, 3) if args.quick else (6, 8)
    a = [design_a(t, args.num_envs, rounds, steps) for t in TASKS]
    b = [design_b("cartpole_balance", args.num_envs, 1 if args.quick else 2, 6 if args.quick else 24)]  # fmt: skip
    info["loadavg_1min_at_end"] = __import__("os").getloadavg()[0]
    suffix = "_quick" if args.quick else ""
    write_json(RESULTS / f"sandbox_overhead{suffix}.json", {"system": info, "design_a": a, "design_b": b})  # fmt: skip
    rows_a = [
        [r["task"], r["step_ms_trusted"]["median"], r["step_ms_sandboxed"]["median"], r["ratio_median"],
         r["step_ms_trusted"]["p10"], r["step_ms_sandboxed"]["p10"], r["ratio_p10"],
         r["call_us_trusted"]["median"], r["call_us_sandboxed"]["median"]]
        for r in a
    ]  # fmt: skip
    rows_b = [
        [r["task"], r["step_ms_plain"]["median"], r["step_ms_sandboxed"]["median"], r["ratio_median"],
         r["step_ms_plain"]["p10"], r["step_ms_sandboxed"]["p10"], r["ratio_p10"]]
        for r in b
    ]  # fmt: skip
    md = [
        "# Sandbox overhead: a 4096-world training step, sandboxed reward vs trusted",
        "",
        f"Command: `python benchmarks/sandbox_overhead.py{' --quick' if args.quick else ''}`; "
        f"{info.get('cpu_model', '')}, {info.get('cpu_count')} cores, torch {info.get('torch')}, "
        f"1-min load average {info['loadavg_1min_at_start']} at the start, "
        f"{info['loadavg_1min_at_end']:.2f} at the end; git {info.get('git_rev', '?')}.",
        "",
        contention_note(info),
        "",
        "## A: trainer outside, reward in the sandboxed reward server (the design in use)",
        "",
        markdown_table(
            [
                "task",
                "trusted ms/step",
                "sandboxed ms/step",
                "ratio",
                "trusted p10",
                "sandboxed p10",
                "ratio p10",
                "reward call trusted, us",
                "reward call sandboxed, us",
            ],  # fmt: skip
            rows_a,
        ),
        "",
        "## B: the whole trainer inside the sandbox (reward compiled in-process)",
        "",
        markdown_table(
            [
                "task",
                "plain ms/step",
                "in sandbox ms/step",
                "ratio",
                "plain p10",
                "in sandbox p10",
                "ratio p10",
            ],  # fmt: skip
            rows_b,
        ),
        "",
    ]
    (RESULTS / f"sandbox_overhead{suffix}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
