"""Task registry. Importing this package registers every shipped task."""

from rewardlab.envs.tasks import cartpole  # noqa: F401  (registers cartpole_balance, cartpole_swingup)
from rewardlab.envs.tasks.base import (
    SimView,
    Task,
    TaskConfig,
    get_task,
    register_task,
    register_task_factory,
    task_names,
)

__all__ = [
    "SimView",
    "Task",
    "TaskConfig",
    "get_task",
    "register_task",
    "register_task_factory",
    "task_names",
]
