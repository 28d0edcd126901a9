"""VLM reward throughput: frames scored per second batched vs one at a time, tiled rendering vs
``env.render``, and the share of PPO training wall time spent rendering and scoring.

::

    python benchmarks/vlm_scoring.py                    # CPU, shipped tiny CLIP (~5 min)
    python benchmarks/vlm_scoring.py --device cuda      # the same on a GPU (bf16 where supported)
    python benchmarks/vlm_scoring.py --quick            # smoke run (short budgets)

Measured in one run, so the ratios compare like with like on the same (possibly loaded) machine:

1. **scoring**: the VLM-RM CLIP scorer on 64 pre-rendered cart-pole frames, in batches of 64
   vs one frame per call (the peer: a per-frame reward loop, as VLM-RM's reference code calls
   CLIP on each env's frame).
2. **rendering**: 64 worlds drawn by the tiled renderer (one GL read-back) vs ``env.render``
   (one ``mujoco.Renderer`` call per world), at the model's input size.
3. **training share**: PPO with ``reward=clip`` for ``--train-steps`` env steps on each of
   ``--tasks`` (default ``cartpole_balance``, the cheapest physics, so the worst case, and
   ``humanoid_kneel``, the issue's example) at each of ``--strides``; share of wall time in
   rendering + scoring (the rest: physics, policy, PPO update), plus one row with scoring on a
   worker thread (``async_scoring``).

Results go to ``benchmarks/results/vlm_scoring.{json,md}`` (``_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before _common imports mujoco (headless rendering)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    Rates,
    contention_note,
    markdown_table,
    run_for,
    system_info,
    write_json,
)  # noqa: E402, I001


def bench_scoring(device: str, seconds: float, repeats: int) -> dict:
    import torch

    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.base import make_scorer
    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.rendering import EnvFrames
    from rewardlab.vlm_reward.training import resolve_config

    cfg = resolve_config(VLMConfig(device=device, batch_size=64), "cartpole_balance", "clip")
    scorer = make_scorer(cfg)
    env = make_env("cartpole_balance", num_envs=64, nthread=1)
    env.reset(seed=0)
    for _ in range(5):
        env.step(torch.rand(64, 1) * 2 - 1)
    frames = EnvFrames(env, scorer.image_size, "cartpole_balance")()
    batched, single = Rates(), Rates()
    scorer.score(frames)
    for _ in range(repeats):
        calls, el = run_for(lambda: scorer.score(frames), seconds)
        batched.samples.append(64 * calls / el)
        calls, el = run_for(lambda: [scorer.score(frames[i : i + 1]) for i in range(64)], seconds)
        single.samples.append(64 * calls / el)
    env.close()
    return {
        "device": str(scorer.clip.device),
        "dtype": str(scorer.clip.dtype),
        "model": cfg.model,
        "image_size": scorer.image_size,
        "batched_fps": batched.median,
        "single_fps": single.median,
        "speedup": batched.median / single.median,
        "spread": max(batched.spread, single.spread),
    }


def bench_rendering(seconds: float, repeats: int, size: int) -> list[dict]:
    import torch

    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.rendering import EnvFrames

    rows = []
    for task in ("cartpole_balance", "arm_reach", "humanoid_kneel"):
        env = make_env(task, num_envs=64, nthread=1, render_size=(size, size))
        env.reset(seed=0)
        for _ in range(3):
            env.step(torch.rand(64, env.action_dim) * 2 - 1)
        tiled = EnvFrames(env, size, task)
        tiled()
        env.render()
        t_rate, r_rate = Rates(), Rates()
        for _ in range(repeats):
            calls, el = run_for(lambda tiled=tiled: tiled(), seconds)
            t_rate.samples.append(64 * calls / el)
            calls, el = run_for(lambda env=env: env.render(), seconds)
            r_rate.samples.append(64 * calls / el)
        tiled.close()
        env.close()
        rows.append(
            {
                "task": task,
                "size": size,
                "tiled_fps": t_rate.median,
                "env_render_fps": r_rate.median,
                "speedup": t_rate.median / r_rate.median,
            }
        )
    return rows


def bench_training(device: str, steps: int, tasks: list[str], strides: list[int]) -> list[dict]:
    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.training import wrap_env

    rows = []
    runs = [(t, k, False) for t in tasks for k in strides] + [(tasks[0], strides[0], True)]
    for task, stride, async_scoring in runs:
        cfg = VLMConfig(device=device, frame_stride=stride, async_scoring=async_scoring)
        env = wrap_env(make_env(task, num_envs=32, seed=0, nthread=1), "clip", cfg)
        runner = OnPolicyRunner(env, PPOConfig(), seed=0, log_every=10**9)
        t0 = time.perf_counter()
        runner.learn(steps)
        wall = time.perf_counter() - t0
        t = env.timing_shares()
        env.close()
        rows.append(
            {
                "task": task,
                "frame_stride": stride,
                "async_scoring": async_scoring,
                "env_steps": steps,
                "wall_s": wall,
                "render_s": t["render_s"],
                "score_s": t["score_s"],
                "physics_s": t["env_s"],
                "frames_scored": t["frames"],
                "render_score_share": (t["render_s"] + t["score_s"]) / wall,
                "steps_per_s": steps / wall,
            }
        )
        print(f"  {task} stride {stride} async {async_scoring}: {rows[-1]['render_score_share']:.0%} of {wall:.1f} s", flush=True)  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--device", default="cpu", help="model device: cpu, cuda")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=20_000, help="PPO env steps per config")
    p.add_argument("--tasks", default="cartpole_balance,humanoid_kneel",
                   help="tasks of the training-share measurement (comma-separated)")  # fmt: skip
    p.add_argument("--strides", default="1,2,4,8", help="frame strides of the training-share measurement")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="short budgets (smoke run)")
    a = p.parse_args()
    if a.quick:
        a.seconds, a.repeats, a.train_steps = 0.3, 1, 2048
    import torch

    torch.set_num_threads(1)
    info = system_info()
    print("scoring ...", flush=True)
    scoring = bench_scoring(a.device, a.seconds, a.repeats)
    print("rendering ...", flush=True)
    rendering = bench_rendering(a.seconds, a.repeats, scoring["image_size"])
    print("training share ...", flush=True)
    tasks = [t for t in a.tasks.split(",") if t]
    strides = [int(k) for k in a.strides.split(",") if k]
    training = bench_training(a.device, a.train_steps, tasks, strides)
    result = {"system": info, "scoring": scoring, "rendering": rendering, "training": training}
    name = "vlm_scoring_quick" if a.quick else "vlm_scoring"
    write_json(RESULTS / f"{name}.json", result)
    cmd = "python benchmarks/vlm_scoring.py " + " ".join(sys.argv[1:])
    md = [
        f"# VLM reward throughput ({scoring['device']}, {scoring['dtype']})",
        "",
        f"`{cmd.strip()}` at git `{info['git_rev']}`, {info['date']}, {info['cpu_count']} CPU cores "
        f"({info['cpu_model']}), torch {info['torch']} at 1 thread, 1-min load {info['loadavg_1min_at_start']}.",
        contention_note(info),
        "",
        f"## Scoring ({scoring['model']}, {scoring['image_size']} px frames of cartpole_balance)",
        "",
        markdown_table(
            ["batched (64/call) frames/s", "one frame per call frames/s", "batched / single"],
            [[scoring["batched_fps"], scoring["single_fps"], scoring["speedup"]]],
        ),
        "",
        "## Rendering 64 worlds (tiled, one read-back) vs env.render (one Renderer call per world)",
        "",
        markdown_table(
            ["task", "px", "tiled frames/s", "env.render frames/s", "tiled / env.render"],
            [[r["task"], r["size"], r["tiled_fps"], r["env_render_fps"], r["speedup"]] for r in rendering],
        ),
        "",
        f"## Share of PPO training wall time in rendering + scoring (32 worlds, {a.train_steps} env steps per row)",
        "",
        "With frame stride k all worlds are rendered and scored every k-th step (and worlds that just reset at every step); skipped steps hold the last score.",
        "",
        markdown_table(
            ["task", "frame stride", "async scoring", "wall s", "render s", "score s (not hidden)", "physics s", "frames scored", "render + score share", "env steps/s"],
            [[r["task"], r["frame_stride"], r["async_scoring"], r["wall_s"], r["render_s"], r["score_s"], r["physics_s"], r["frames_scored"], r["render_score_share"], r["steps_per_s"]] for r in training],
        ),
        "",
        "Target: rendering + scoring under 50% of training wall time on the CPU with the small model.",
    ]  # fmt: skip
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
