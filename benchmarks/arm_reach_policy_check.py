"""Success and final hand-target distances of a trained arm_reach policy (a run directory).

::

    python benchmarks/arm_reach_policy_check.py runs/p_s0 [checkpoint.pt]

Prints one JSON line: ``success_det`` / ``success_sampled`` (64 episodes as ``rewardlab eval``
runs them: the run's eval seed, ``eval.num_envs`` or 32 worlds; mean action, then sampled
actions), ``success_det_256`` (256 other fresh episodes, seed 20000 + the run's seed, 64 worlds,
mean action), and the median hand-target distance one control step before the end of 64
deterministic episodes (the run's eval seed, 64 worlds) with the shares under 2 / 5 / 7 / 10 cm.
Used by the "Reaching the threshold" section of ``benchmarks/results/vlm_demo_rewards.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    import numpy as np
    import torch

    from rewardlab import pipeline
    from rewardlab.runs import RunDir, load_run_config

    run_dir = sys.argv[1]
    checkpoint = sys.argv[2] if len(sys.argv) > 2 else None
    cfg = load_run_config(run_dir)
    run = RunDir(Path(run_dir))

    def success(episodes: int, deterministic: bool, seed: int | None, worlds: int | None):
        ev = dataclasses.replace(
            cfg.eval, episodes=episodes, deterministic=deterministic, seed=seed
        )
        c = dataclasses.replace(cfg, eval=ev)
        env = pipeline.make_eval_env(c, worlds or ev.resolved_num_envs(), c.eval_seed())
        try:
            policy = pipeline.load_policy(c, run, env, checkpoint=checkpoint).policy
            return float(pipeline.evaluate(c, policy, env=env).success_rate), policy
        finally:
            env.close()

    out = {}
    out["success_det"], policy = success(64, True, cfg.eval.seed, None)
    out["success_sampled"], _ = success(64, False, cfg.eval.seed, None)
    out["success_det_256"], _ = success(256, True, 20_000 + cfg.seed, 64)
    env = pipeline.make_eval_env(cfg, 64, cfg.eval_seed())
    try:
        obs = env.reset(seed=cfg.eval_seed())
        layout = dict(env.task.obs_layout()) if hasattr(env, "task") else {}
        assert "ee_to_target" in layout, "expected an arm_reach run"
        start = 0
        for name, width in env.task.obs_layout():
            if name == "ee_to_target":
                break
            start += width
        for t in range(env.max_episode_steps):
            if t == env.max_episode_steps - 1:
                dist = torch.linalg.vector_norm(obs[:, start : start + 3], dim=-1).numpy() * 100
            with torch.no_grad():
                obs, *_ = env.step(policy(obs))
    finally:
        env.close()
    out["dist_cm_median"] = float(np.median(dist))
    for k in (2, 5, 7, 10):
        out[f"share_lt_{k}cm"] = float((dist < k).mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
