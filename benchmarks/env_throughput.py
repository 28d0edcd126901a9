"""Env throughput on the CPU: our ``mujoco`` backend vs gymnasium vector envs vs raw ``mj_step``.

For every task and world count it measures, side by side in one run (interleaved repeats, so
that a change of machine load hits every contender alike):

* ``ours``: ``make_env(task, num_envs=N)`` (native ``mujoco.batch`` threads, batched torch task
  code), stepping random actions, with torch limited to 1 intra-op thread as
  ``OnPolicyRunner`` and ``train_sb3`` run it. ``ours-torch-default-threads`` is the same env
  under torch's default (one intra-op thread per core), which is what a bare
  ``make_env`` loop gets: torch's OpenMP workers spin-wait after each op and take cores from
  the physics threads.
* ``gym-async``: gymnasium's ``AsyncVectorEnv`` of a numpy port of the same task (same MJCF,
  frame_skip, observation, reward, termination; see ``_common.py``). Two layouts: one process
  per world (the textbook layout; only up to ``--async-per-env-max`` worlds, since e.g. 1024
  processes on a few cores is absurd) and ``P = --procs`` processes (default: every core)
  each stepping a ``SyncVectorEnv`` of ``N / P`` worlds. The faster one is what a user would
  get, and the ratio is taken against it.
* ``gym-sync``: ``SyncVectorEnv`` of ``N`` ports in this process, for reference.
* ``raw``: the ``mj_step`` limit. ``mujoco.rollout.rollout`` with one ``MjData`` runs an
  ``mj_step`` loop in C on one thread (no Python per step); its steps/s times
  ``os.cpu_count()`` is the limit. Physics cost depends on the state (contacts), so the
  rollouts start from states our env visits under the same random actions (resets included)
  and run 10 control steps of ``frame_skip`` physics steps each, under random controls held for
  ``frame_skip`` steps. The measured multi-threaded rollout (one ``MjData`` per core) is shown
  too; its ratio to the limit tells whether the process really had every core.

Every contender gets the same actions: a bank of uniform ``[-1, 1]`` action batches drawn once
and cycled, mapped to the actuator ranges the same way. Physics steps/s = env steps/s x
frame_skip. Each number is the median of ``--repeats`` timed windows of ``--seconds`` each,
after a warm-up.

Usage::

    python benchmarks/env_throughput.py                       # full run (~ minutes)
    python benchmarks/env_throughput.py --quick               # smoke run (seconds per config)
    python benchmarks/env_throughput.py --tasks cartpole_balance --worlds 64 --seconds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    GYM_PORTS,
    RESULTS,
    Rates,
    check_port,
    contention_note,
    gym_spec,
    make_chunk,
    make_port,
    markdown_table,
    run_for,
    system_info,
    write_json,
)

RAW_TARGET = 0.70
"""Target of ours / raw mj_step limit (physics steps/s)."""
ASYNC_TARGETS = {"cartpole_balance": 10.0, "ant_run": 2.0}
"""Target of ours / best gymnasium AsyncVectorEnv (env steps/s), per task."""
BANK = 16
"""Number of random action batches drawn once and cycled through."""
TORCH_DEFAULT_THREADS = torch.get_num_threads()
"""torch's intra-op threads at start-up (one per core unless OMP_NUM_THREADS says otherwise)."""


@dataclass
class Contender:
    """One thing whose throughput is measured: ``step()`` advances ``env_steps`` env steps."""

    name: str
    config: str
    env_steps: int
    frame_skip: int
    step: Callable[[], None]
    close: Callable[[], None] = lambda: None
    prepare: Callable[[], None] = lambda: None
    """Called before every timed window (sets process-wide torch state)."""
    setup_s: float = 0.0
    rates: Rates = field(default_factory=Rates)
    """Env steps per second, one sample per repeat."""

    def record(self) -> dict[str, Any]:
        env = self.rates.median
        return {
            "name": self.name,
            "config": self.config,
            "env_steps_per_s": env,
            "physics_steps_per_s": env * self.frame_skip,
            "samples_env_steps_per_s": self.rates.samples,
            "spread": self.rates.spread,
            "setup_s": round(self.setup_s, 2),
        }


# ---------------------------------------------------------------------------------------------
# Contenders


def ours(task: str, n: int, bank: np.ndarray, nthread: int, torch_threads: int) -> Contender:
    """Our batched env; the action bank as torch tensors (no copies per step).

    ``torch_threads``: torch intra-op threads while stepping (``OnPolicyRunner`` and
    ``train_sb3`` use 1; torch's default is one per core).
    """
    from rewardlab.envs import make_env

    t0 = time.perf_counter()
    env = make_env(task, num_envs=n, seed=0, nthread=nthread)
    env.reset(seed=0)
    actions = torch.from_numpy(bank)
    counter = [0]

    def step() -> None:
        env.step(actions[counter[0] % BANK])
        counter[0] += 1

    fs = env.cfg.frame_skip  # type: ignore[attr-defined]
    threads = min(nthread or os.cpu_count() or 1, n)
    default = torch_threads == TORCH_DEFAULT_THREADS and torch_threads != 1
    return Contender(
        "ours-torch-default-threads" if default else "ours",
        f"make_env(num_envs={n}), {threads} physics threads, torch {torch_threads} "
        f"intra-op thread{'s' if torch_threads > 1 else ''}",
        n,
        fs,
        step,
        env.close,
        lambda: torch.set_num_threads(torch_threads),
        time.perf_counter() - t0,
    )


def gym_sync(task: str, n: int, bank: np.ndarray) -> Contender:
    spec = gym_spec(task)
    t0 = time.perf_counter()
    venv = gym.vector.SyncVectorEnv(
        [partial(make_port, spec) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    venv.reset(seed=0)
    counter = [0]

    def step() -> None:
        venv.step(bank[counter[0] % BANK])
        counter[0] += 1

    return Contender(
        "gym-sync",
        f"SyncVectorEnv({n} envs), 1 process",
        n,
        spec.frame_skip,
        step,
        venv.close,
        setup_s=time.perf_counter() - t0,
    )


def gym_async(task: str, n: int, bank: np.ndarray, procs: int) -> Contender:
    """``AsyncVectorEnv``: ``procs == n`` one world per process, else chunks of ``n / procs``."""
    spec = gym_spec(task)
    t0 = time.perf_counter()
    if procs == n:
        fns = [partial(make_port, spec) for _ in range(n)]
        config = f"AsyncVectorEnv({n} processes x 1 env)"
        actions = bank
        name = "gym-async-per-env"
    else:
        fns = [partial(make_chunk, spec, n // procs) for _ in range(procs)]
        config = f"AsyncVectorEnv({procs} processes x SyncVectorEnv({n // procs} envs))"
        actions = bank.reshape(BANK, procs, n // procs, -1)
        name = "gym-async-chunked"
    venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    venv.reset(seed=0)
    counter = [0]

    def step() -> None:
        venv.step(actions[counter[0] % BANK])
        counter[0] += 1

    return Contender(
        name, config, n, spec.frame_skip, step, venv.close, setup_s=time.perf_counter() - t0
    )


def _visited_states(
    task: str, rng: np.random.Generator, worlds: int = 64, steps: int = 200, every: int = 20
) -> tuple[mujoco.MjModel, np.ndarray, int]:
    """Full physics states our env visits under the random actions (resets included).

    Physics cost depends on the state (contacts), so the raw rollouts start from the states the
    env contenders spend their time in: ``worlds`` worlds, snapshots every ``every`` steps.
    """
    from rewardlab.envs import make_env

    env = make_env(task, num_envs=worlds, seed=1)
    env.reset(seed=1)
    model = env.model  # type: ignore[attr-defined]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    states = []
    for t in range(1, steps + 1):
        env.step(torch.from_numpy(rng.uniform(-1, 1, (worlds, env.action_dim)).astype(np.float32)))
        if t % every == 0:
            for i in range(worlds):
                env._batch.get_data(i, data)  # type: ignore[attr-defined]
                row = np.empty(mujoco.mj_stateSize(model, spec))
                mujoco.mj_getState(model, data, row, spec)
                states.append(row)
    fs = env.cfg.frame_skip  # type: ignore[attr-defined]
    env.close()
    return model, np.stack(states), fs


def raw(task: str, threads: int, rng: np.random.Generator, control_steps: int = 10) -> Contender:
    """``rollout.rollout`` over ``threads`` MjData (1: the calling thread, no pool).

    One call rolls every state of :func:`_visited_states` forward ``control_steps x frame_skip``
    physics steps under uniform random controls held for ``frame_skip`` steps (as the env
    holds an action), outputs written into preallocated arrays.
    """
    model, states, fs = _visited_states(task, rng)
    batch, nstep = len(states), control_steps * fs
    lo, hi = model.actuator_ctrlrange.T
    limited = model.actuator_ctrllimited.astype(bool)
    lo, hi = np.where(limited, lo, -1.0), np.where(limited, hi, 1.0)
    control = np.repeat(rng.uniform(lo, hi, (batch, control_steps, model.nu)), fs, axis=1)
    out_state = np.empty((batch, nstep, states.shape[1]))
    out_sensor = np.empty((batch, nstep, model.nsensordata))
    datas = [mujoco.MjData(model) for _ in range(threads)]

    def step() -> None:
        rollout.rollout(
            model,
            datas[0] if threads == 1 else datas,
            states,
            control,
            state=out_state,
            sensordata=out_sensor,
            persistent_pool=threads > 1,
        )

    name = "raw-1thread" if threads == 1 else "raw-mt"
    config = (
        f"mujoco.rollout, {threads} thread{'s' if threads > 1 else ''}, "
        f"{batch} visited states x {nstep} mj_step"
    )
    # env_steps counts control steps (physics steps / frame_skip) so that all rows compare.
    return Contender(name, config, batch * control_steps, fs, step)


# ---------------------------------------------------------------------------------------------
# Driver


def bench_config(task: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Measure every contender for one (task, worlds), interleaving the repeats."""
    rng = np.random.default_rng(0)
    from rewardlab.envs.tasks import get_task

    action_dim = get_task(task).load_model().nu
    bank = rng.uniform(-1.0, 1.0, (BANK, n, action_dim)).astype(np.float32)
    procs = args.procs or os.cpu_count() or 1
    while n % procs:
        procs -= 1
    contenders = [ours(task, n, bank, args.nthread, 1)]
    if TORCH_DEFAULT_THREADS > 1 and not args.no_torch_default:
        contenders.append(ours(task, n, bank, args.nthread, TORCH_DEFAULT_THREADS))
    notes: list[str] = []
    if task in GYM_PORTS:
        if n <= args.async_per_env_max:
            contenders.append(gym_async(task, n, bank, n))
        else:
            notes.append(
                f"AsyncVectorEnv with one process per world skipped at {n} worlds "
                f"(> --async-per-env-max {args.async_per_env_max})"
            )
        if procs < n:
            contenders.append(gym_async(task, n, bank, procs))
        if not args.no_sync:
            contenders.append(gym_sync(task, n, bank))
    else:
        notes.append(f"no gymnasium port of {task} in _common.GYM_PORTS: gym rows skipped")
    contenders.append(raw(task, 1, rng))
    contenders.append(raw(task, os.cpu_count() or 1, rng))

    try:
        for c in contenders:
            c.prepare()
            run_for(c.step, args.warmup)
        for r in range(args.repeats):
            for c in contenders:
                c.prepare()
                calls, elapsed = run_for(c.step, args.seconds)
                c.rates.samples.append(calls * c.env_steps / elapsed)
            print(f"  [{task} N={n}] repeat {r + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        for c in contenders:
            c.close()
        torch.set_num_threads(TORCH_DEFAULT_THREADS)

    by = {c.name: c.record() for c in contenders}
    fs = contenders[0].frame_skip
    limit = by["raw-1thread"]["physics_steps_per_s"] * (os.cpu_count() or 1)
    ours_rec = by["ours"]
    asyncs = [v for k, v in by.items() if k.startswith("gym-async")]
    best_async = max(asyncs, key=lambda v: v["env_steps_per_s"]) if asyncs else None
    summary = {
        "task": task,
        "num_envs": n,
        "frame_skip": fs,
        "raw_limit_physics_steps_per_s": limit,
        "ours_over_raw_limit": ours_rec["physics_steps_per_s"] / limit,
        "raw_target": RAW_TARGET,
        "best_async": best_async["name"] if best_async else None,
        "ours_over_best_async": (
            ours_rec["env_steps_per_s"] / best_async["env_steps_per_s"] if best_async else None
        ),
        "async_target": ASYNC_TARGETS.get(task),
        "ours_over_gym_sync": (
            ours_rec["env_steps_per_s"] / by["gym-sync"]["env_steps_per_s"]
            if "gym-sync" in by
            else None
        ),
        "ours_over_raw_mt": ours_rec["physics_steps_per_s"] / by["raw-mt"]["physics_steps_per_s"],
        "raw_mt_efficiency": by["raw-mt"]["physics_steps_per_s"] / limit,
    }
    return {"summary": summary, "contenders": list(by.values()), "notes": notes}


def report(results: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> str:
    """The markdown report: a summary table of ratios, then every measured row."""
    cores = info["cpu_count"]
    lines = [
        "# Env throughput: ours vs gymnasium vector envs vs raw mj_step",
        "",
        f"{info['date']}, {info['cpu_model']}, {cores} cores, git {info['git_rev']}, "
        f"mujoco {info['mujoco']}, gymnasium {info['gymnasium']}, torch {info['torch']}.",
        f"Median of {args.repeats} windows of {args.seconds} s after {args.warmup} s warm-up"
        + (" (**--quick**: a smoke run, not a measurement)." if args.quick else "."),
    ]
    note = contention_note(info)
    if note:
        lines += ["", note]
    lines += [
        "",
        "## Ratios",
        "",
        f"raw limit = single-thread `mj_step` rate (C loop in `mujoco.rollout`) x {cores} "
        "cores, in physics steps/s. ours/async is taken against the faster gymnasium "
        "`AsyncVectorEnv` layout.",
        "",
    ]
    rows = []
    for res in results:
        s = res["summary"]
        by = {c["name"]: c for c in res["contenders"]}
        tgt = s["async_target"]
        a = s["ours_over_best_async"]
        rows.append(
            [
                s["task"],
                s["num_envs"],
                by["ours"]["physics_steps_per_s"],
                s["raw_limit_physics_steps_per_s"],
                f"{s['ours_over_raw_limit']:.2f} ({_verdict(s['ours_over_raw_limit'], RAW_TARGET)})",
                by[s["best_async"]]["physics_steps_per_s"] if s["best_async"] else "n/a",
                "n/a" if a is None else f"{a:.1f}x ({_verdict(a, tgt)})",
                "n/a" if s["ours_over_gym_sync"] is None else f"{s['ours_over_gym_sync']:.1f}x",
                s["ours_over_raw_mt"],
                s["raw_mt_efficiency"],
            ]
        )
    lines.append(
        markdown_table(
            [
                "task",
                "worlds",
                "ours phys steps/s",
                "raw limit",
                f"ours / raw limit (>= {RAW_TARGET})",
                "best gym async phys steps/s",
                "ours / gym async (target)",
                "ours / gym sync",
                "ours / raw-mt",
                "raw-mt / raw limit",
            ],
            rows,
        )
    )
    lines += [
        "",
        "raw-mt / raw limit is the measured multi-threaded rollout over the limit: well below 1 "
        "means this process did not get every core to itself (a busy machine), and every ratio "
        "to the raw limit is then understated; ours / raw-mt compares with what the cores "
        "actually delivered.",
    ]
    lines += ["", "Targets for ours / gym async: " + ", ".join(
        f"{k} >= {v:g}x" for k, v in ASYNC_TARGETS.items()
    ) + ".", "", "## Every row", ""]  # fmt: skip
    rows = []
    for res in results:
        s = res["summary"]
        for c in res["contenders"]:
            rows.append(
                [
                    s["task"],
                    s["num_envs"],
                    c["name"],
                    c["config"],
                    c["env_steps_per_s"],
                    c["physics_steps_per_s"],
                    c["physics_steps_per_s"] / s["raw_limit_physics_steps_per_s"],
                    f"{100 * c['spread']:.0f} %",
                ]
            )
    lines.append(
        markdown_table(
            [
                "task",
                "worlds",
                "contender",
                "configuration",
                "env steps/s",
                "physics steps/s",
                "/ raw limit",
                "spread",
            ],
            rows,
        )
    )
    notes = [n for res in results for n in res["notes"]]
    lines += ["", "spread = (max - min) / median over the repeats."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "no target"
    return "meets target" if value >= target else "below target"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--worlds", type=int, nargs="+", default=[64, 1024], help="world counts")
    p.add_argument("--tasks", nargs="+", default=["cartpole_balance", "ant_run"], help="tasks")
    p.add_argument("--seconds", type=float, default=3.0, help="length of one timed window")
    p.add_argument("--repeats", type=int, default=5, help="timed windows per contender")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per contender")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 0.3 s windows, 2 repeats, 0.2 s warm-up"
    )
    p.add_argument("--procs", type=int, default=0, help="AsyncVectorEnv processes (0: cores)")
    p.add_argument(
        "--async-per-env-max",
        type=int,
        default=64,
        help="measure AsyncVectorEnv with one process per world up to this many worlds",
    )
    p.add_argument("--no-sync", action="store_true", help="skip the SyncVectorEnv reference")
    p.add_argument(
        "--no-torch-default",
        action="store_true",
        help="skip the extra row of ours with torch's default intra-op threads",
    )
    p.add_argument("--nthread", type=int, default=0, help="our physics threads (0: cores)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output path without suffix (default results/env_throughput[_quick])",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats, args.warmup = 0.3, 2, 0.2
    if args.out is None:
        args.out = RESULTS / ("env_throughput_quick" if args.quick else "env_throughput")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from rewardlab.envs import task_names

    info = system_info()
    tasks = []
    for task in args.tasks:
        if task not in task_names():
            print(f"skipping {task}: not a registered task ({', '.join(task_names())})")
            continue
        if task in GYM_PORTS:
            diff = check_port(task)
            print(f"{task}: gymnasium port matches the task (max diffs {diff})")
        tasks.append(task)
    results = []
    for task in tasks:
        for n in args.worlds:
            print(f"measuring {task} with {n} worlds ...", file=sys.stderr)
            results.append(bench_config(task, n, args))
    text = report(results, info, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    write_json(
        args.out.with_suffix(".json"),
        {
            "system": info,
            "settings": {
                k: v for k, v in vars(args).items() if k != "out"
            },  # seconds, repeats, ...
            "results": results,
        },
    )
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
