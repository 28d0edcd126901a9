"""Simulated and real-robot environments behind one batched torch API (see :mod:`.base`)."""

from __future__ import annotations

from typing import Any

from rewardlab.envs.base import BatchedEnv, EnvWrapper, StateField
from rewardlab.envs.tasks import TaskConfig, broken_tasks, get_task, task_names

BACKENDS = ("mujoco", "warp", "ros2")


def make_env(
    task: str,
    num_envs: int = 64,
    backend: str = "mujoco",
    cfg: TaskConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
    **kwargs: Any,
) -> BatchedEnv:
    """Create a batched env of a registered task on a backend.

    Args:
        task: registered task name (see :func:`task_names`).
        num_envs: number of parallel worlds.
        backend: one of :data:`BACKENDS`.
        cfg: task config; the task's ``default_config()`` when ``None``.
        seed: seed of the reset distribution.
        device: torch device of the returned tensors.
        **kwargs: backend-specific options (``nthread``, ``render_size``, ``reward_fn``).

    Raises:
        KeyError: unknown task (the message lists the known ones).
        ValueError: unknown backend.
    """
    task_cls = get_task(task)
    if backend == "mujoco":
        from rewardlab.envs.mujoco_backend import MujocoEnv

        return MujocoEnv(task_cls, cfg, num_envs=num_envs, seed=seed, device=device, **kwargs)
    if backend == "warp":
        from rewardlab.envs.warp_backend import WarpEnv

        return WarpEnv(task_cls, cfg, num_envs=num_envs, seed=seed, device=device, **kwargs)
    if backend == "ros2":  # a real (or sim) robot over ROS 2: one world, see envs/ros2_backend.py
        from rewardlab.envs.ros2_backend import Ros2Env

        if num_envs != 1:
            raise ValueError(f"backend ros2: num_envs must be 1 (one robot), got {num_envs}")
        return Ros2Env(task_cls, cfg, seed=seed, device=device, **kwargs)
    raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "BatchedEnv",
    "EnvWrapper",
    "StateField",
    "broken_tasks",
    "get_task",
    "make_env",
    "task_names",
]
