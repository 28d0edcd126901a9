"""A ``gymnasium.Env`` view of one world of a batched env, and gymnasium ids for every task.

:class:`GymnasiumEnv` builds (or wraps) a batched env with ``num_envs=1`` and speaks gymnasium's
single-env API: numpy in and out, ``reset(seed=, options=)``, ``step`` returning Python
``float``/``bool`` scalars, ``render()`` an ``HxWx3`` ``uint8`` frame. It passes
``gymnasium.utils.env_checker.check_env`` and stable-baselines3's ``check_env``.

Ids: importing this module registers ``rewardlab/<CamelCaseTask>-v0`` for every task known at
that moment (``cartpole_balance`` -> ``rewardlab/CartpoleBalance-v0``, see :func:`gym_id`), so::

    import gymnasium as gym
    import rewardlab.envs.adapters.gymnasium  # noqa: F401  (registers the ids)
    env = gym.make("rewardlab/CartpoleBalance-v0", render_mode="rgb_array")

or, without the import, ``gym.make("rewardlab.envs.adapters.gymnasium:rewardlab/CartpoleBalance-v0")``.
Tasks registered after the import (e.g. loaded from YAML later) need another call of
:func:`register_gymnasium_envs`.

What it cannot do: it is one world, so it is slow for training (use the batched env or the SB3
``VecEnv`` view, :mod:`rewardlab.envs.adapters.sb3`); ``reset`` options are not supported (only
an empty dict); the time limit is the batched env's own (no ``TimeLimit`` wrapper is added, and
``spec.max_episode_steps`` stays ``None``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, SupportsFloat

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from rewardlab.envs import make_env
from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.tasks import TaskConfig, task_names

NAMESPACE = "rewardlab"
"""Gymnasium namespace of every registered id."""
_ENTRY_POINT = f"{__name__}:GymnasiumEnv"


def _finite(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN/Inf replaced (a diverged world's last observation), else ``x`` itself."""
    if np.isfinite(x).all():
        return x
    big = np.finfo(np.float32).max
    return np.nan_to_num(x, nan=0.0, posinf=big, neginf=-big)


class GymnasiumEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """One world of a batched env as a ``gymnasium.Env``.

    Spaces: ``observation_space = Box(-inf, inf, (obs_dim,), float32)`` (observations are
    unbounded, e.g. velocities; gymnasium's checker warns about infinite bounds, nothing more),
    ``action_space = Box(-1, 1, (action_dim,), float32)``.

    Episodes: the batched env resets a finished world inside ``step``. This view returns the
    finished episode's last observation (``final_obs``) from that ``step``, and keeps the already
    drawn first observation of the next episode for the next ``reset()`` call, so that the
    sequence of episodes is the same as in the batched env. ``reset(seed=s)`` always reseeds and
    resets for real. ``reset()`` without a seed, mid-episode or before any reset, resets for real
    too (drawing from the seeded stream; the first such draw is determined by the ``seed`` given
    to :func:`~rewardlab.envs.make_env`, 0 by default, not by OS entropy as gymnasium's built-in
    envs do). Stepping on after ``terminated``/``truncated`` without ``reset()`` continues in the
    already started next episode.

    ``info`` of ``step``: ``success`` (bool, the task's measure on the step's final state) and the
    batched env's per-step metrics (``reward/<term>``: each weighted reward component) as floats.
    Non-finite values in a diverged world's last observation are replaced by finite ones
    (NaN -> 0, +-Inf -> +-float32 max) so that the observation stays in the space.

    Args:
        task: a registered task name (a 1-world batched env is built with
            :func:`~rewardlab.envs.make_env`), or a batched env with ``num_envs == 1`` to wrap
            (then ``cfg`` and ``make_env_kwargs`` must be empty).
        cfg: task config for :func:`~rewardlab.envs.make_env`; the task's default when ``None``.
        render_mode: ``None`` or ``"rgb_array"``. :meth:`render` returns a frame in both cases
            (the mode only tells wrappers such as ``RecordVideo`` that frames are available).
        **make_env_kwargs: passed to :func:`~rewardlab.envs.make_env` (``backend``, ``seed``,
            ``device``, ``reward_fn``, ``render_size``, ``nthread`` (default 1), ...); ``num_envs``
            other than 1 is refused.

    Raises:
        ValueError: a wrapped env with ``num_envs != 1``, ``cfg``/kwargs given with a wrapped env,
            ``num_envs != 1`` in ``make_env_kwargs``, or an unknown ``render_mode``.
        KeyError: unknown task name.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        task: str | BatchedEnv,
        cfg: TaskConfig | None = None,
        render_mode: str | None = None,
        **make_env_kwargs: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: got {render_mode!r}, allowed: None, "
                + ", ".join(repr(m) for m in self.metadata["render_modes"])
            )
        if isinstance(task, BatchedEnv):
            if cfg is not None or make_env_kwargs:
                raise ValueError("cfg and make_env kwargs apply only when `task` is a task name")
            if task.num_envs != 1:
                raise ValueError(
                    f"GymnasiumEnv wraps a batched env with num_envs=1, got {task.num_envs}; "
                    "use rewardlab.envs.adapters.sb3.Sb3VecEnv for many worlds"
                )
            self.env = task
        else:
            if make_env_kwargs.pop("num_envs", 1) != 1:
                raise ValueError("GymnasiumEnv is one world: num_envs must be 1")
            if make_env_kwargs.get("backend", "mujoco") == "mujoco":
                make_env_kwargs.setdefault("nthread", 1)
            self.env = make_env(task, num_envs=1, cfg=cfg, **make_env_kwargs)
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "render_fps": 1.0 / self.env.control_dt}
        self.observation_space = spaces.Box(
            -np.inf, np.inf, shape=(self.env.obs_dim,), dtype=np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.env.action_dim,), dtype=np.float32)
        self._next_obs: np.ndarray | None = None  # first obs of an episode auto-reset in step()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; see the class docstring for what an unseeded reset returns.

        Raises:
            ValueError: non-empty ``options`` (none are supported).
        """
        if options:
            raise ValueError(f"reset options are not supported, got keys {sorted(options)}")
        super().reset(seed=seed)
        if seed is None and self._next_obs is not None:
            obs = self._next_obs
        else:
            obs = self._to_numpy(self.env.reset(seed=seed)[0])
        self._next_obs = None
        return obs, {}

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply ``action`` (``[action_dim]``, clipped to ``[-1, 1]``) for one control step.

        Raises:
            ValueError: wrong action size or non-finite values.
        """
        act = np.asarray(action, dtype=np.float32)
        if act.size != self.env.action_dim:
            raise ValueError(
                f"action must have {self.env.action_dim} values, got shape {list(act.shape)}"
            )
        act_t = torch.as_tensor(act.reshape(1, -1), device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(act_t)
        term, trunc = bool(terminated[0]), bool(truncated[0])
        if term or trunc:
            self._next_obs = self._to_numpy(obs[0])
            out = _finite(self._to_numpy(info["final_obs"][0]))
        else:
            self._next_obs = None
            out = self._to_numpy(obs[0])
        out_info: dict[str, Any] = {"success": bool(info["success"][0])}
        out_info.update({k: float(v) for k, v in info.get("log", {}).items()})
        return out, float(reward[0]), term, trunc, out_info

    def render(self) -> np.ndarray:  # type: ignore[override]
        """The world's current frame, ``uint8 [H, W, 3]`` (size from ``render_size``)."""
        return self.env.render([0])[0].cpu().numpy()

    def close(self) -> None:
        """Close the batched env (safe to call twice)."""
        self.env.close()

    @staticmethod
    def _to_numpy(x: torch.Tensor) -> np.ndarray:
        # A fresh array every call: gymnasium's checker (rightly) refuses shared buffers.
        return x.detach().to("cpu", torch.float32).numpy().copy()


def gym_id(task: str) -> str:
    """Gymnasium id of a task: ``"cartpole_balance"`` -> ``"rewardlab/CartpoleBalance-v0"``."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", task) if p]
    if not parts:
        raise ValueError(f"task name {task!r} has no letters or digits to build a gymnasium id")
    return f"{NAMESPACE}/{''.join(p[0].upper() + p[1:] for p in parts)}-v0"


def register_gymnasium_envs(tasks: list[str] | None = None) -> list[str]:
    """Register a gymnasium id (see :func:`gym_id`) for each task; idempotent.

    Args:
        tasks: task names; every task in ``task_names()`` when ``None``.

    Returns:
        The ids, in the order of ``tasks``.

    Raises:
        ValueError: two different tasks map to the same id (e.g. ``a_b`` and ``a__b``).
    """
    ids = []
    for task in task_names() if tasks is None else tasks:
        env_id = gym_id(task)
        spec = gymnasium.registry.get(env_id)
        if spec is not None:
            if spec.entry_point != _ENTRY_POINT or spec.kwargs.get("task") != task:
                raise ValueError(
                    f"gymnasium id {env_id!r} of task {task!r} is already registered "
                    f"for {spec.kwargs.get('task', spec.entry_point)!r}"
                )
        else:
            gymnasium.register(
                id=env_id,
                entry_point=_ENTRY_POINT,
                kwargs={"task": task},
                nondeterministic=False,
                disable_env_checker=False,
            )
        ids.append(env_id)
    return ids


register_gymnasium_envs()

__all__ = ["NAMESPACE", "GymnasiumEnv", "gym_id", "register_gymnasium_envs"]
