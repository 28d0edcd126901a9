"""Task registry. Importing this package registers every shipped task.

Every module of this package registers its tasks when imported (``@register_task``), and every
YAML file under ``sim_configs/tasks/custom/`` is registered lazily; so adding a robot task is one
module here (or one YAML file and its MJCF there), nothing else. Then the folders in
``$REWARDLAB_TASK_DIRS`` add the user's YAML tasks.
"""

import importlib
import pkgutil

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

# modules that register no task
_LIBRARY = {"base", "knowledge", "isaacgym_names", "mjcf_yaml", "authoring", "assets"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _LIBRARY and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

# After the Python tasks: a YAML file may not take a Python task's name.
_yaml = importlib.import_module(f"{__name__}.mjcf_yaml")
_SHIPPED = tuple(task_names())
_yaml.register_user_task_dirs()


def shipped_task_names() -> tuple[str, ...]:
    """The tasks that come with RewardLab (this package's modules and the YAML tasks under
    ``sim_configs/tasks/custom/``), sorted; :func:`task_names` adds the user's YAML tasks."""
    return _SHIPPED


__all__ = [
    "SimView",
    "Task",
    "TaskConfig",
    "broken_tasks",
    "get_task",
    "register_task",
    "register_task_factory",
    "shipped_task_names",
    "task_names",
]
