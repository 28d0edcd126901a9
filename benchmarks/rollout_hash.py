"""Fingerprint of a seeded rollout: a hash of everything ``env.step`` returns, to check that a
speed-up changed nothing.

Each task steps ``--worlds`` worlds (mujoco backend, 2 physics threads) for ``--steps`` control
steps of fixed random actions in [-1.2, 1.2] (clipped by the env, so resets and falls happen);
the hash covers the observations, rewards, terminated/truncated, success, ``info`` (final_obs,
log means, finished episodes) and ``env.state()`` after every step, bit for bit. Run it before
and after a change and compare the lines: equal hashes mean the same rollout. A task name with
``+dr`` runs with a domain-randomization config (masses, friction, observation noise, action
delay, pushes).

Everything is reproducible run to run on the mujoco backend, the acceleration-stage readings of
a world that reset in the step included (``joint_torque``, shadow_hand_reorient's
``fingertip_touch``): reset worlds get a full ``mj_forward``. Before that fix (``Batch.forward``
at mjSTAGE_VEL left them as they were) they differed run to run and were masked out here.

Usage::

    python benchmarks/rollout_hash.py --tasks go1_velocity go1_velocity+dr g1_velocity ant_run
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import torch

DEFAULT_TASKS = ("go1_velocity", "go1_velocity+dr", "go1_velocity_rough", "g1_velocity", "ant_run", "arm_reach", "shadow_hand_reorient")  # fmt: skip


def _update(h: Any, x: Any) -> None:
    """Feed ``x`` (a tensor, a number or a dict of them) into the hash ``h``."""
    if isinstance(x, torch.Tensor):
        h.update(f"{x.dtype}{tuple(x.shape)}".encode())
        h.update(x.detach().contiguous().cpu().numpy().tobytes())
    elif isinstance(x, dict):
        for k in sorted(x):
            h.update(str(k).encode())
            _update(h, x[k])
    elif isinstance(x, bool | int | float):
        h.update(repr(float(x)).encode())
    else:
        raise TypeError(f"cannot hash a {type(x).__name__}")


def rollout_hash(task: str, worlds: int = 64, steps: int = 300) -> tuple[str, dict[str, str]]:
    """``(hash of everything, {part: hash})`` of a seeded rollout of ``task`` (``+dr``: with
    domain randomization); parts: obs, reward, done, success, info, state."""
    from rewardlab.envs import make_env
    from rewardlab.envs.randomization import DomainRandConfig

    name, _, flag = task.partition("+")
    kwargs: dict[str, Any] = {}
    if flag == "dr":
        kwargs["domain_rand"] = DomainRandConfig(mass_scale=(0.8, 1.2), friction_scale=(0.5, 1.5), obs_noise_std=0.01, action_delay=(0, 2), push_interval=50, push_velocity=0.5)  # fmt: skip
    elif flag:
        raise SystemExit(f"{task}: unknown suffix {flag!r}; expected +dr or none")
    env = make_env(name, num_envs=worlds, seed=0, nthread=2, **kwargs)
    gen = torch.Generator().manual_seed(123)
    total = hashlib.sha256()
    parts = {k: hashlib.sha256() for k in ("obs", "reward", "done", "success", "info", "state")}
    obs = env.reset(seed=0)
    _update(total, obs)
    _update(parts["obs"], obs)
    for _ in range(steps):
        action = torch.rand(worlds, env.action_dim, generator=gen) * 2.4 - 1.2
        obs, reward, terminated, truncated, info = env.step(action)
        for part, x in (
            ("obs", obs),
            ("reward", reward),
            ("done", {"terminated": terminated, "truncated": truncated}),
            ("success", info["success"]),
            ("info", {k: v for k, v in info.items() if k != "success"}),
            ("state", env.state()),
        ):
            _update(total, x)
            _update(parts[part], x)
    env.close()
    return total.hexdigest()[:16], {k: v.hexdigest()[:8] for k, v in parts.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Hash of a seeded rollout of each task (compare before and after a change)."
    )
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="tasks (a +dr suffix: with domain randomization)")  # fmt: skip
    p.add_argument("--worlds", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    for task in args.tasks:
        digest, parts = rollout_hash(task, args.worlds, args.steps)
        print(task, digest, " ".join(f"{k}={v}" for k, v in parts.items()), flush=True)


if __name__ == "__main__":
    main()
