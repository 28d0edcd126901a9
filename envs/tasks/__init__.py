"""Task registry. Importing this package registers every shipped task."""

from rewardlab.envs.tasks import (
    ant,  # noqa: F401  (registers ant_run)
    arm_reach,  # noqa: F401  (registers arm_reach)
    cartpole,  # noqa: F401  (registers cartpole_balance, cartpole_swingup)
    humanoid,  # noqa: F401  (registers humanoid_stand, humanoid_walk)
    mjcf_yaml,  # noqa: F401  (YAML tasks under sim_configs/tasks/custom/)
)
from rewardlab.envs.tasks.base import (
    SimView,
    Task,
    TaskConfig,
    broken_tasks,
    get_task,
    register_task,
    register_task_factory,
    task_names,
)

__all__ = [
    "SimView",
    "Task",
    "TaskConfig",
    "broken_tasks",
    "get_task",
    "register_task",
    "register_task_factory",
    "task_names",
]
