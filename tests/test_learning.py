"""Learning tests: batched PPO trains tasks to their success metric on 2 CPU cores (marker ``slow``).

Each test trains exactly as ``benchmarks/seed_table.py`` does (the task's shipped config in
``sim_configs/train/``, ``OnPolicyRunner`` + ``make_env``) and judges the policy the same way:
``agents.evaluate.evaluate`` on 64 fresh episodes, deterministic actions, an eval env seeded
``10_000 + seed``. The bounds come from that seed table (``benchmarks/results/seed_table.md``:
many seeds, not one lucky run) with a wide margin below its worst seed, so that another
machine's float rounding, which changes every trajectory, cannot fail them.
"""

from __future__ import annotations

import time

import pytest
import torch

from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.config import load_train_config
from rewardlab.envs import make_env

pytestmark = pytest.mark.slow


def train(task: str, seed: int, steps: int | None = None) -> tuple[OnPolicyRunner, float]:
    """Train ``task`` with its shipped config to ``steps`` (default: its ``total_steps``)."""
    cfg = load_train_config({"task": task, "seed": seed})
    env = make_env(
        task, num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=seed, nthread=cfg.nthread
    )
    runner = OnPolicyRunner(env, cfg.ppo, seed=seed, log_every=25)
    start = time.perf_counter()
    runner.learn(steps or cfg.total_steps)
    return runner, time.perf_counter() - start


def success_rate(runner: OnPolicyRunner, task: str, seed: int) -> float:
    """Deterministic success of the runner's current policy on 64 fresh episodes."""
    cfg = load_train_config({"task": task, "seed": seed})
    env = make_env(task, num_envs=64, cfg=cfg.task_config(), seed=10_000 + seed)
    try:
        return evaluate(runner.inference_policy(), env, episodes=64, seed=10_000 + seed)[
            "success_rate"
        ]
    finally:
        env.close()


# Seed table, cartpole_balance at its default budget (200k steps): final success 1.00 on 10 of
# 10 seeds (0.98 on the worst before the ELU change). 0.9 leaves 5 of 64 episodes of margin below
# that 0.98 and still fails the collapse issue 11 reported (0.75-0.82 after a late update of KL
# 10x desired_kl).
CARTPOLE_BOUND = 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_solves_cartpole_balance(seed: int) -> None:
    runner, train_s = train("cartpole_balance", seed)
    rate = success_rate(runner, "cartpole_balance", seed)
    print(f"cartpole_balance seed {seed}: {train_s:.1f} s of training, final success {rate:.2f}")
    assert rate >= CARTPOLE_BOUND


# Seed table, ant_run at its default budget (1M steps, 128 worlds, 64-wide networks, initial
# action std 0.3, KL bound annealed 0.05 -> 0.01; ~1.5 min on 2 idle cores): final success
# 0.94-0.98 over 5 seeds (the earlier 128-wide networks at std 1.0: 0.88-0.95; 0.01 throughout:
# 0.55-0.95). 0.6 is 22 episodes of 64 below the worst seed. A random policy runs ~0 m and never
# succeeds (>= 5 m in the 10 s episode).
ANT_BOUND = 0.6
ANT_DISTANCE_M = 3.0


def forward_distance(policy, num_envs: int = 64, seed: int = 10_000) -> torch.Tensor:
    """Torso x (m) on the last step of each world's first episode (start: x = 0).

    Finished worlds reset inside ``step``, so the x recorded is the one of the step before the
    episode ended (one control step, 0.05 s, short of the end).
    """
    env = make_env("ant_run", num_envs=num_envs, seed=seed)
    obs = env.reset(seed=seed)
    x_prev = env.state()["torso_pos"][:, 0].clone()
    dist = torch.zeros(num_envs)
    finished = torch.zeros(num_envs, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            x = env.state()["torso_pos"][:, 0].clone()
            ended = (terminated | truncated) & ~finished
            dist[ended] = x_prev[ended]
            finished |= ended
            x_prev = x
    env.close()
    assert finished.all()
    return dist


def test_ppo_makes_ant_run_forward() -> None:
    gen = torch.Generator().manual_seed(0)
    random_dist = forward_distance(lambda o: torch.rand(o.shape[0], 8, generator=gen) * 2 - 1)
    runner, train_s = train("ant_run", 0)
    rate = success_rate(runner, "ant_run", 0)
    dist = forward_distance(runner.inference_policy())
    print(
        f"ant_run: {train_s:.1f} s of training; success {rate:.2f}; forward distance per episode "
        f"{dist.mean():.2f} m (random policy {random_dist.mean():.2f} m)"
    )
    # Wall time is printed, not asserted: speed is measured in benchmarks/, not in tests.
    assert dist.mean() > random_dist.mean() + ANT_DISTANCE_M
    assert rate >= ANT_BOUND
