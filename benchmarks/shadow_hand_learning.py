"""shadow_hand_reorient on this machine's CPU cores: what a bounded PPO budget learns, measured as
IsaacGymEnvs and Eureka measure it (consecutive successes: goals reached per episode), on fresh
episodes, beside two hand-written baselines, with the learning curve.

Training is ``rewardlab train task=shadow_hand_reorient`` (the task's defaults,
``sim_configs/train/shadow_hand_reorient.yaml``) stopped after ``--minutes`` of wall-clock time
with Ctrl-C (the trainer saves ``checkpoints/latest.pt`` first); the process's CPU seconds are
sampled while it runs, since other jobs share the cores. The evaluation loads the latest
checkpoint and runs ``--episodes`` fresh episodes (an evaluation seed the training never used,
deterministic actions), reading ``charts/consecutive_successes`` and the task's success
(``>= success_goals`` goals) from each finished episode; the baselines are a still hand (action 0:
mid-range joint targets, holds the cube) and uniform random actions.

Usage::

    python benchmarks/shadow_hand_learning.py --train --minutes 50 --run-dir /tmp/shadow_cpu
    python benchmarks/shadow_hand_learning.py --run-dir /tmp/shadow_cpu      # evaluate a run again

Outputs ``benchmarks/results/shadow_hand_learning.md``, ``.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table, system_info, write_json  # noqa: E402

TASK = "shadow_hand_reorient"


def train(run_dir: Path, minutes: float, overrides: list[str]) -> dict[str, Any]:
    """``rewardlab train`` under a wall-clock budget; returns wall and CPU seconds used."""
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", f"task={TASK}", f"run_dir={run_dir}", "resume=false", "eval.video=false", *overrides]  # fmt: skip
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")  # noqa: SIM115 (closed below)
    # SIGINT as in a terminal, even when this script runs in the background (where it is ignored).
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=restore_sigint)  # noqa: PLW1509
    t0, cpu, samples = time.time(), 0.0, []
    tck = os.sysconf("SC_CLK_TCK")
    while proc.poll() is None and time.time() - t0 < minutes * 60:
        time.sleep(10)
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tck  # utime + stime, all threads
        except OSError:
            break
        samples.append((time.time() - t0, cpu, os.getloadavg()[0]))
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the trainer saves latest.pt, then exits
        proc.wait(timeout=600)
    log.close()
    return {"wall_s": time.time() - t0, "cpu_s": cpu, "samples": samples}


def _episodes(env: Any, act: Any, episodes: int) -> dict[str, list[float]]:
    """Run until ``episodes`` episodes finished (every world's first ones, no short-episode bias)."""
    n = env.num_envs
    per_world = -(-episodes // n)
    done = torch.zeros(n, dtype=torch.long)
    out: dict[str, list[float]] = {"goals": [], "success": [], "return": [], "length": []}
    obs = env.reset()
    with torch.inference_mode():
        while bool((done < per_world).any()):
            obs, _, _, _, info = env.step(act(obs))
            ep = info.get("episode")
            if ep is None:
                continue
            for j, w in enumerate(ep["env_ids"].tolist()):
                if done[w] < per_world:
                    out["goals"].append(float(ep["charts/consecutive_successes"][j]))
                    out["success"].append(float(ep["success"][j]))
                    out["return"].append(float(ep["return"][j]))
                    out["length"].append(float(ep["length"][j]))
                done[w] += 1
    return out


def evaluate(run_dir: Path, episodes: int, worlds: int) -> dict[str, Any]:
    """The run's latest policy and the two baselines on fresh episodes."""
    from rewardlab import pipeline
    from rewardlab.runs import RunDir, load_run_config

    cfg = load_run_config(run_dir)
    seed = cfg.eval_seed()
    env = pipeline.make_eval_env(cfg, worlds, seed)
    try:
        loaded = pipeline.load_policy(cfg, RunDir(run_dir), env, "checkpoint")
        gen = torch.Generator().manual_seed(seed)
        contenders = {
            "PPO policy (deterministic)": lambda o: loaded.policy(o.float()),
            "still hand (action 0)": lambda o: torch.zeros(o.shape[0], env.action_dim),
            "random actions": lambda o: (
                torch.rand(o.shape[0], env.action_dim, generator=gen) * 2 - 1
            ),  # fmt: skip
        }
        results = {}
        for name, act in contenders.items():
            env.reset(seed=seed)
            results[name] = _episodes(env, act, episodes)
        meta = torch.load(loaded.path, weights_only=True, map_location="cpu")
        at = {k: int(meta[k]) for k in ("iteration", "global_step") if k in meta}
        return {"checkpoint": str(loaded.path), **at, "seed": seed, "worlds": worlds, "episodes": results}  # fmt: skip
    finally:
        env.close()


def curve(run_dir: Path) -> dict[str, list[float]]:
    """Per-iteration training metrics (rows with finished episodes)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]  # fmt: skip
    keys = ("global_step", "perf/elapsed_s", "charts/consecutive_successes", "charts/episode_length", "charts/episode_return", "charts/success_rate", "reward/rotation")  # fmt: skip
    rows = [r for r in rows if "charts/episode_return" in r]
    return {k: [float(r.get(k, float("nan"))) for r in rows] for k in keys}


def plot(c: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.asarray(c["global_step"]) / 1e6

    def smooth(y: list[float], k: int = 10) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return np.convolve(y, np.ones(k) / k, mode="valid") if len(y) > k else y

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, key, label in zip(
        axes,
        ("charts/consecutive_successes", "charts/episode_length", "reward/rotation"),
        (
            "consecutive successes (goals / episode)",
            "episode length (control steps, 250 = 10 s)",
            "rotation reward per episode",
        ),  # fmt: skip
        strict=True,
    ):
        y = smooth(c[key])
        ax.plot(steps[len(steps) - len(y) :], y)
        ax.set_xlabel("env steps (millions)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--train", action="store_true", help="train first (wall-clock budget --minutes)")
    p.add_argument("--minutes", type=float, default=50.0)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--worlds", type=int, default=32)
    p.add_argument("--cpu-log", type=Path, help="'unix_time cpu_s load' lines of a run trained elsewhere")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS / "shadow_hand_learning")
    p.add_argument("overrides", nargs="*", help="key=value settings for rewardlab train")
    a = p.parse_args()
    info = system_info()
    budget: dict[str, Any] = {}
    if a.train:
        a.run_dir.mkdir(parents=True, exist_ok=True)
        budget = train(a.run_dir, a.minutes, a.overrides)
    elif a.cpu_log is not None and a.cpu_log.is_file():
        rows = [line.split() for line in a.cpu_log.read_text().splitlines() if line.strip()]
        budget = {"wall_s": float(rows[-1][0]) - float(rows[0][0]), "cpu_s": float(rows[-1][1]), "mean_load": float(np.mean([float(r[2]) for r in rows]))}  # fmt: skip
    c = curve(a.run_dir)
    ev = evaluate(a.run_dir, a.episodes, a.worlds)
    steps = int(c["global_step"][-1]) if c["global_step"] else 0
    elapsed = c["perf/elapsed_s"][-1] if c["perf/elapsed_s"] else float("nan")
    rows = []
    for name, r in ev["episodes"].items():
        g = np.asarray(r["goals"])
        rows.append([name, len(g), float(g.mean()), float(np.median(g)), float(g.max()), float(np.mean(r["success"])), float(np.mean(r["length"]) / 25.0), float(np.mean(r["return"]))])  # fmt: skip
    title = f"{TASK}: PPO, {steps / 1e6:.2f}M env steps in {elapsed / 60:.0f} min on {info['cpu_count']} shared CPU cores"  # fmt: skip
    plot(c, a.out.with_suffix(".png"), title)
    table = markdown_table(
        [
            "policy",
            "episodes",
            "consecutive successes (mean)",
            "median",
            "max",
            "success rate (>= 1 goal)",
            "mean episode (s)",
            "mean return",
        ],  # fmt: skip
        rows,
    )
    text = "\n".join(
        [
            f"# {TASK}: learning on {info['cpu_count']} CPU cores",
            "",
            f"Training: {steps:,} env steps ({steps * 4:,} physics steps) in {elapsed / 60:.1f} min wall"
            + (f", {budget['cpu_s'] / 60:.1f} min of CPU time" if budget.get("cpu_s") else "")
            + (
                f" (mean 1-min load {budget['mean_load']:.1f} on {info['cpu_count']} cores: shared with other jobs)"
                if budget.get("mean_load")
                else ""
            )  # fmt: skip
            + f"; evaluation on {a.episodes} fresh episodes (seed {ev['seed']}, {ev['worlds']} worlds, "
            f"checkpoint {Path(ev['checkpoint']).name}: iteration {ev.get('iteration', '?')}, "
            f"{ev.get('global_step', 0):,} env steps); git {info['git_rev']}, {info['date']}.",
            "",
            table,
            "",
            f"![learning curve]({a.out.with_suffix('.png').name})",
            "",
            "The GPU budgets Isaac Gym, Isaac Lab and MuJoCo Playground report for this task class, "
            "and what the GPU path would need: docs/shadow_hand.md.",
        ]
    )
    a.out.with_suffix(".md").write_text(text + "\n")
    write_json(a.out.with_suffix(".json"), {"info": info, "budget": budget, "curve": c, "eval": ev})
    print(text)


if __name__ == "__main__":
    main()
