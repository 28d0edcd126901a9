"""Acceleration-stage readings of a world that just reset are a function of its reset state.

Touch sensors and actuator forces come from MuJoCo's acceleration stage. A world reset inside
a step used to get only the position and velocity stages, so those readings (shadow_hand's
``fingertip_touch``, which its observation includes; the quadrupeds' ``joint_torque``) kept
whatever the world's memory held and differed from one run to the next.
"""

from __future__ import annotations

import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.tasks.base import get_task, replace_config

pytestmark = pytest.mark.unit


def _rollout(task: str, key: str, worlds: int = 16, steps: int = 100) -> tuple[list, int]:
    """Observations and ``key`` readings of a seeded rollout, and how many worlds reset."""
    short = replace_config(get_task(task).default_config(), episode_steps=30)  # time-outs reset
    env = make_env(task, num_envs=worlds, seed=0, nthread=2, cfg=short)
    gen = torch.Generator().manual_seed(5)
    out, resets = [env.reset(seed=0).clone()], 0
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(
            torch.rand(worlds, env.action_dim, generator=gen) * 2.4 - 1.2
        )
        resets += int((terminated | truncated).sum())
        out += [obs.clone(), env.state()[key].clone()]
    env.close()
    return out, resets


@pytest.mark.parametrize(("task", "key"), [("shadow_hand_reorient", "fingertip_touch"), ("go1_velocity", "joint_torque")])  # fmt: skip
def test_reset_worlds_read_the_same_in_every_run(task: str, key: str) -> None:
    first, resets = _rollout(task, key)
    worlds_reset_at_least = 16 * 3
    assert resets >= worlds_reset_at_least, (
        f"{task}: only {resets} resets; the test needs worlds that reset"
    )
    for _ in range(2):
        again, _ = _rollout(task, key)
        for i, (a, b) in enumerate(zip(first, again, strict=True)):
            assert torch.equal(a, b), f"{task}: entry {i} differs between identical runs"
