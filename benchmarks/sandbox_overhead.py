"""Sandbox overhead: a loaded reward's per-call cost vs the same function called directly.

For each reward, on a 4096-world batch of recorded states (``record_states``: random actions,
resets included), one CPU thread (``torch.set_num_threads(1)``, as training runs):

* ``direct``: the reward module imported normally (``importlib`` from the file) and its
  function called with the state dict -- no checks, no wrappers. For the Eureka reward the
  direct call gets its arguments precomputed, as IsaacGymEnvs has them as env attributes, and
  ``direct, torch.jit.script`` is the same file imported with its ``@torch.jit.script``
  decorator in effect (what Eureka runs).
* ``loaded``: the function returned by ``load_reward_source`` (static check, trial run in a
  child process, then compiled in this process with restricted globals and wrapped with the
  per-call checks: output types/shapes and a finite total; for Eureka also the name binding
  that builds ``root_states``, ``potentials``, ... from our state).

Calls are interleaved (direct, loaded, direct, ...) in ``--rounds`` rounds of ``--calls``
calls each, in a shuffled order per round, so load changes hit all alike; the figures are the
median and the 10th percentile of the per-call time over the rounds and the ratios
loaded/direct of both (other processes only ever add time, so on a busy machine the low
percentile is the better estimate of the undisturbed cost). ``trivial`` is a
reward that returns precomputed tensors: its loaded - direct difference is the fixed cost of
the per-call checks in microseconds, whatever the reward computes. Also reported: the one-time load cost (static check +
trial run + compile), cold (first load of the process: the forkserver with torch starts) and
warm (median of ``--loads`` loads), and the cost of recording the states.

Usage::

    python benchmarks/sandbox_overhead.py              # ~1-2 min
    python benchmarks/sandbox_overhead.py --quick      # smoke run, writes *_quick.*
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    contention_note,
    markdown_table,
    system_info,
    write_json,
)

from rewardlab.rewards import compat  # noqa: E402
from rewardlab.rewards.loader import load_reward_source  # noqa: E402
from rewardlab.rewards.sandbox import SandboxLimits, StateDict, record_states  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "rewards"
WORLDS = 4096

ANT_NATIVE = """
import torch

def compute_reward(state, action):
    forward = state["forward_vel"]
    healthy = (state["up_z"] > 0.3).float()
    upright = state["up_z"]
    effort = -0.1 * (action ** 2).sum(-1)
    rate = -0.05 * ((action - state["prev_action"]) ** 2).sum(-1)
    height = -torch.abs(state["torso_pos"][:, 2] - 0.56)
    total = forward + healthy + 0.2 * upright + effort + rate + height
    return total, {"forward": forward, "healthy": healthy, "upright": upright,
                   "effort": effort, "action_rate": rate, "height": height}
"""


def _import_file(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _import_source(code: str, name: str, tmp: Path, prelude: str = "") -> Any:
    path = tmp / f"{name}.py"
    path.write_text(prelude + code)
    return _import_file(path, name)


def _batch(task: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    t0 = time.perf_counter()
    rec = record_states(task, num_envs=256, steps=16, seed=0)  # 4096 rows
    seconds = time.perf_counter() - t0
    action = rec.pop("action")[:WORLDS]
    return {k: v[:WORLDS].contiguous() for k, v in rec.items()}, action, seconds


def _interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, calls: int
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        for _ in range(3):
            f()
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(fns.items())
        rng.shuffle(order)  # no contender always runs first (or right after another one)
        for name, f in order:
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            samples[name].append((time.perf_counter() - t0) / calls * 1e6)
    return {
        k: {
            "us_median": statistics.median(v),
            "us_p10": sorted(v)[len(v) // 10],
            "us_min": min(v),
            "us_max": max(v),
        }
        for k, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds and calls")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.loads = 3, 20, 2
    torch.set_num_threads(1)
    info = system_info()
    limits = SandboxLimits()
    tmp = Path(__import__("tempfile").mkdtemp(prefix="sandbox_bench_"))

    cart_state, cart_action, cart_rec_s = _batch("cartpole_balance")
    ant_state, ant_action, ant_rec_s = _batch("ant_run")
    ant_spec_env = list(ant_state)

    rows: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []

    def load(code: str, names: list[str], states: dict, action: torch.Tensor, task: str, dt: float) -> tuple[Any, float]:  # fmt: skip
        t0 = time.perf_counter()
        fn = load_reward_source(
            code, names, limits=limits, states={**states, "action": action}, task=task
        )
        return fn, time.perf_counter() - t0

    def measure_load(label: str, code: str, names: list[str], states: dict, action: torch.Tensor, task: str) -> Any:  # fmt: skip
        fn, cold = load(code, names, states, action, task, 0.05)
        warm = [load(code, names, states, action, task, 0.05)[1] for _ in range(args.loads)]
        loads.append(
            {
                "reward": label,
                "first_load_s": cold,
                "load_s_median": statistics.median(warm),
                "trial_run_s": fn.check.load_seconds,
                "trial_ms_per_call": fn.check.ms_per_call,
            }
        )
        return fn

    # 1. native cartpole reward (the fixture)
    cart_code = (FIXTURES / "cartpole_native.py").read_text()
    cart_direct = _import_file(FIXTURES / "cartpole_native.py", "bench_cart").compute_reward
    cart_loaded = measure_load("cartpole native", cart_code, list(cart_state), cart_state, cart_action, "cartpole_balance")  # fmt: skip
    # 2. native ant reward, six terms
    ant_direct = _import_source(ANT_NATIVE, "bench_ant", tmp).compute_reward
    ant_loaded = measure_load("ant native (6 terms)", ANT_NATIVE, ant_spec_env, ant_state, ant_action, "ant_run")  # fmt: skip
    # 3. Eureka reward for ant: direct with precomputed IsaacGym-style args, eager and scripted
    eureka_code = (FIXTURES / "ant_eureka.py").read_text()
    prelude = "import torch\nfrom typing import Dict, Tuple\n"
    eureka_eager = _import_source(
        eureka_code.replace("@torch.jit.script\n", ""), "bench_eureka_eager", tmp, prelude
    ).compute_reward
    eureka_script = _import_source(eureka_code, "bench_eureka_script", tmp, prelude).compute_reward
    eureka_loaded = measure_load("ant Eureka", eureka_code, ant_spec_env, ant_state, ant_action, "ant_run")  # fmt: skip
    dt = 0.05
    b = compat.eureka_names("ant_run", ant_spec_env)
    sd = StateDict(ant_state)
    eureka_args = [b[n].fn(sd, ant_action, dt) for n in eureka_loaded.__wrapped__.arguments]
    # 4. Text2Reward reward for arm_reach, batched and per-world loop
    arm_state, arm_action, _ = _batch("arm_reach")
    t2r_loop = load_reward_source(
        (FIXTURES / "arm_text2reward.py").read_text(),
        list(arm_state),
        limits=SandboxLimits(max_ms_per_call=1e4),
        states={**arm_state, "action": arm_action},
        task="arm_reach",
    )
    t2r_vec = load_reward_source(
        (FIXTURES / "arm_text2reward_vectorizable.py").read_text(),
        list(arm_state),
        limits=limits,
        states={**arm_state, "action": arm_action},
        task="arm_reach",
    )

    trivial_code = (
        "def compute_reward(state, action):\n"
        "    return state['forward_vel'], {'forward': state['forward_vel']}\n"
    )
    trivial_direct = _import_source(trivial_code, "bench_trivial", tmp).compute_reward
    trivial_loaded = load_reward_source(
        trivial_code, ant_spec_env, limits=limits, states={**ant_state, "action": ant_action}
    )
    trivial_nofinite = load_reward_source(
        trivial_code,
        ant_spec_env,
        limits=limits,
        states={**ant_state, "action": ant_action},
        check_finite=False,
    )

    with torch.no_grad():
        cases = {
            "trivial (fixed cost)": {
                "direct": lambda: trivial_direct(ant_state, ant_action),
                "loaded": lambda: trivial_loaded(ant_state, ant_action),
                "loaded, check_finite=False": lambda: trivial_nofinite(ant_state, ant_action),
            },
            "cartpole native": {
                "direct": lambda: cart_direct(cart_state, cart_action),
                "loaded": lambda: cart_loaded(cart_state, cart_action),
            },
            "ant native (6 terms)": {
                "direct": lambda: ant_direct(ant_state, ant_action),
                "loaded": lambda: ant_loaded(ant_state, ant_action),
            },
            "ant Eureka": {
                "direct": lambda: eureka_eager(*eureka_args),
                "direct, torch.jit.script": lambda: eureka_script(*eureka_args),
                "loaded": lambda: eureka_loaded(ant_state, ant_action),
            },
        }
        for label, fns in cases.items():
            res = _interleaved(fns, args.rounds, args.calls)
            base = res["direct"]["us_median"]
            for name, r in res.items():
                rows.append(
                    {
                        "reward": label,
                        "path": name,
                        **r,
                        "ratio_to_direct": r["us_median"] / base,
                        "ratio_of_p10": r["us_p10"] / res["direct"]["us_p10"],
                    }
                )
        t2r = _interleaved(
            {
                "text2reward batched": lambda: t2r_vec(arm_state, arm_action),
                "text2reward per-world loop": lambda: t2r_loop(arm_state, arm_action),
            },
            max(2, args.rounds // 50),
            1,
        )

    # 5. what training sees: env.step of 4096 cartpole worlds with either reward
    from rewardlab.envs import make_env

    env = make_env("cartpole_balance", num_envs=WORLDS, seed=0)
    env.reset(seed=0)
    step_action = torch.zeros(WORLDS, env.action_dim)

    def stepper(reward_fn: Any) -> Callable[[], Any]:
        def go() -> None:
            env.set_reward(reward_fn)
            for _ in range(5):
                env.step(step_action)

        return go

    with torch.inference_mode():
        steps = _interleaved(
            {"direct": stepper(cart_direct), "loaded": stepper(cart_loaded)},
            max(3, args.rounds // 50),
            1,
        )
    env.close()
    step_rows = [
        {
            "path": k,
            "ms_per_5_steps": v["us_median"] / 1000,
            "ratio": v["us_median"] / steps["direct"]["us_median"],
        }
        for k, v in steps.items()
    ]

    for r in rows:
        print(
            f"{r['reward']:22s} {r['path']:26s} {r['us_median']:9.1f} us/call  "
            f"x{r['ratio_to_direct']:.3f} of direct (p10 {r['us_p10']:.1f} us, x{r['ratio_of_p10']:.3f})"
        )
    for name, r in t2r.items():
        print(f"{name:49s} {r['us_median'] / 1000:9.2f} ms/call")
    for ld in loads:
        print(
            f"load {ld['reward']:22s} first {ld['first_load_s']:.2f} s, then {ld['load_s_median']:.3f} s"
        )
    for r in step_rows:
        print(f"env.step cartpole 4096 worlds, {r['path']:7s} reward: {r['ms_per_5_steps'] / 5:.2f} ms/step")  # fmt: skip
    print(f"record_states 256x16: cartpole {cart_rec_s:.2f} s, ant {ant_rec_s:.2f} s")

    by = {(r["reward"], r["path"]): r["us_median"] for r in rows}
    step_ms = step_rows[0]["ms_per_5_steps"] / 5
    fixed_us = by[("trivial (fixed cost)", "loaded")] - by[("trivial (fixed cost)", "direct")]
    cart_us = by[("cartpole native", "direct")]
    ant_us = by[("ant native (6 terms)", "direct")]
    print(
        f"fixed cost of the checks: {fixed_us:.1f} us/call = {100 * fixed_us / cart_us:.1f} % of "
        f"cartpole, {100 * fixed_us / ant_us:.1f} % of ant native"
    )
    suffix = "_quick" if args.quick else ""
    out = {
        "system": info,
        "worlds": WORLDS,
        "rounds": args.rounds,
        "calls": args.calls,
        "per_call": rows,
        "text2reward": t2r,
        "load": loads,
        "env_step": step_rows,
        "fixed_cost_us": fixed_us,
        "record_states_s": {"cartpole_balance": cart_rec_s, "ant_run": ant_rec_s},
    }
    write_json(RESULTS / f"sandbox_overhead{suffix}.json", out)
    note = contention_note(info)
    md = [
        "# Sandbox overhead: loaded reward vs the same function called directly",
        "",
        f"Command: `python benchmarks/sandbox_overhead.py{' --quick' if args.quick else ''}`; "
        f"{WORLDS} worlds of recorded states, torch {info['torch']} on 1 thread, "
        f"{info['cpu_model']} ({info['cpu_count']} cores), git {info['git_rev']}, {info['date']}. "
        f"Median and 10th percentile over {args.rounds} interleaved rounds of {args.calls} calls.",
        "",
    ]
    if note:
        md += [note, ""]
    md += [
        "## Per call (what training pays after loading)",
        "",
        markdown_table(
            ["reward", "path", "us/call (median)", "p10", "min", "ratio (medians)", "ratio (p10)"],
            [
                [
                    r["reward"],
                    r["path"],
                    r["us_median"],
                    r["us_p10"],
                    r["us_min"],
                    r["ratio_to_direct"],
                    r["ratio_of_p10"],
                ]
                for r in rows
            ],
        ),
        "",
        markdown_table(
            ["Text2Reward adapter (arm_reach)", "ms/call (median)"],
            [[k, v["us_median"] / 1000] for k, v in t2r.items()],
        ),
        "",
        f"Fixed cost of the per-call checks (trivial reward, loaded - direct, medians): "
        f"{fixed_us:.1f} us per call = {100 * fixed_us / cart_us:.1f} % of the cartpole reward's "
        f"direct time and {100 * fixed_us / ant_us:.1f} % of the ant reward's; "
        f"{100 * fixed_us / (step_ms * 1000):.5f} % of a 4096-world cartpole env step "
        f"({step_ms:.1f} ms).",
        "",
        "## Per env step (what a training step pays: cartpole_balance, 4096 worlds)",
        "",
        markdown_table(
            ["reward set on the env", "ms per env.step (median)"],
            [[r["path"], r["ms_per_5_steps"] / 5] for r in step_rows],
        ),
        "",
        f"The reward is {100 * cart_us / (step_ms * 1000):.3f} % of a step here, so the two rows "
        "differ only by the machine's load noise; the checks' fixed cost is "
        f"{100 * fixed_us / (step_ms * 1000):.5f} % of a step.",
        "",
        "## One-time load cost (static check + trial run in a child + compile)",
        "",
        markdown_table(
            [
                "reward",
                "first load in the process, s",
                "later loads, s (median)",
                "trial ms/call on 4096 worlds",
            ],  # fmt: skip
            [
                [ld["reward"], ld["first_load_s"], ld["load_s_median"], ld["trial_ms_per_call"]]
                for ld in loads
            ],  # fmt: skip
        ),
        "",
        f"Recording the states (`record_states(task, 256, 16)`): cartpole {cart_rec_s:.2f} s, "
        f"ant {ant_rec_s:.2f} s (once per task and process; the loader memoizes them).",
        "",
    ]
    (RESULTS / f"sandbox_overhead{suffix}.md").write_text("\n".join(md))
    print(f"wrote {RESULTS / f'sandbox_overhead{suffix}.md'}")


if __name__ == "__main__":
    main()
