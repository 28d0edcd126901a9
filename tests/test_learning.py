"""Learning tests: batched PPO trains tasks to their thresholds on 2 CPU cores (marker ``slow``)."""

from __future__ import annotations

import time

import pytest
import torch

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.envs import make_env
from rewardlab.envs.tasks import get_task

pytestmark = pytest.mark.slow

# Measured on 2 shared cores: success 1.0 on 16/16 seeds after 100k steps (first reached after
# 20k-50k steps, 1-3 s of training on an idle machine).
CARTPOLE_PPO = PPOConfig()
CARTPOLE_ENVS = 64
CARTPOLE_STEPS = 120_000


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_solves_cartpole_balance(seed: int) -> None:
    env = make_env("cartpole_balance", num_envs=CARTPOLE_ENVS, seed=seed)
    runner = OnPolicyRunner(env, CARTPOLE_PPO, seed=seed, log_every=10)
    start = time.perf_counter()
    runner.learn(CARTPOLE_STEPS)
    train_s = time.perf_counter() - start
    env = make_env("cartpole_balance", num_envs=64, seed=10_000 + seed)
    rate = evaluate(runner.inference_policy(), env, episodes=64, seed=10_000 + seed)["success_rate"]
    env.close()
    print(f"cartpole_balance seed {seed}: {train_s:.1f} s of training, success {rate:.2f}")
    assert rate >= get_task("cartpole_balance").success_threshold


# Ant: the stochastic policy runs after ~150k steps, the deterministic one (what is exported)
# after ~350k-450k; at 500k seeds 0/1/2 ran 8.4/13.4/6.3 m per episode (random policy: ~0 m),
# about 50 s of training on 2 idle cores.
ANT_PPO = PPOConfig(actor_hidden=(128, 128), critic_hidden=(128, 128))
ANT_ENVS = 64
ANT_STEPS = 500_000


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
    env = make_env("ant_run", num_envs=ANT_ENVS, seed=0)
    runner = OnPolicyRunner(env, ANT_PPO, seed=0, log_every=25)
    start = time.perf_counter()
    runner.learn(ANT_STEPS)
    train_s = time.perf_counter() - start
    dist = forward_distance(runner.inference_policy())
    print(
        f"ant_run: {train_s:.1f} s of training; forward distance per episode "
        f"{dist.mean():.2f} m (random policy {random_dist.mean():.2f} m)"
    )
    # Random play goes nowhere (~0 m); trained policies measured 6-13 m. Wall time is printed,
    # not asserted: speed is measured in benchmarks/, not in tests.
    assert dist.mean() > random_dist.mean() + 4.0
