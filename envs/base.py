"""The batched environment contract every backend implements.

One API for every simulator and for the real robot: torch tensors in and out, shaped
``[num_envs, ...]``, on ``env.device`` (after rsl_rl's ``VecEnv`` and Isaac Lab's ``DirectRLEnv``).
Finished worlds reset themselves inside :meth:`BatchedEnv.step`; the observation a finished world
ended on is kept in ``info["final_obs"]`` so that a learner can bootstrap on truncation.
Gymnasium's split is kept: ``terminated`` means the task ended (a fall, a goal state whose value
is zero), ``truncated`` means the time limit cut the episode short.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class StateField:
    """One named physical quantity of a task's state, as reward functions read it."""

    shape: tuple[int, ...]
    """Per-world shape; the batched tensor is ``[num_envs, *shape]``. ``()`` for a scalar."""
    unit: str
    """Physical unit, e.g. ``"m"``, ``"rad/s"``, ``"1"`` for dimensionless."""
    frame: str
    """Frame the quantity is expressed in, e.g. ``"world"``, ``"joint"``, ``"torso"``."""
    doc: str
    """What the quantity is, in one sentence an LLM can use to write a reward."""

    def describe(self, name: str) -> str:
        shape = "[N]" if not self.shape else "[N, " + ", ".join(map(str, self.shape)) + "]"
        return f"{name}: {shape} {self.unit}, {self.frame} frame. {self.doc}"


def check_actions(
    actions: torch.Tensor, num_envs: int, action_dim: int, device: torch.device | str, name: str
) -> torch.Tensor:
    """Validate a batch of actions and clip it to ``[-1, 1]``.

    Args:
        actions: ``[num_envs, action_dim]``, anything ``torch.as_tensor`` takes.
        num_envs, action_dim: the expected shape.
        device: where the returned tensor lives.
        name: the env's task name, for the error messages.

    Returns:
        ``[num_envs, action_dim]`` float32 on ``device``, detached and clipped.

    Raises:
        ValueError: wrong shape, or NaN/Inf (the message names up to 8 worlds).
    """
    actions = torch.as_tensor(actions)
    expected = (num_envs, action_dim)
    if tuple(actions.shape) != expected:
        raise ValueError(
            f"{name}: actions must have shape {list(expected)} "
            f"[num_envs, action_dim], got {list(actions.shape)}"
        )
    actions = actions.detach().to(device, torch.float32)
    if not bool(torch.isfinite(actions).all()):
        bad = (~torch.isfinite(actions).all(-1)).nonzero().squeeze(-1)[:8].tolist()
        raise ValueError(
            f"{name}: actions contain NaN or Inf (worlds {bad}); expected finite values in [-1, 1]"
        )
    return actions.clamp(-1.0, 1.0)


class BatchedEnv(abc.ABC):
    """A batch of ``num_envs`` worlds stepped together.

    Attributes:
        num_envs: number of worlds ``N``.
        obs_dim: length of one world's observation vector.
        action_dim: length of one world's action vector; actions are in ``[-1, 1]``.
        device: torch device of every tensor this env returns.
        max_episode_steps: the time limit, in control steps.
        control_dt: seconds of simulated time per control step.
    """

    num_envs: int
    obs_dim: int
    action_dim: int
    device: torch.device
    max_episode_steps: int
    control_dt: float

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every world.

        Args:
            seed: reseeds the reset distribution (and so the whole run) when given.

        Returns:
            Observations ``[N, obs_dim]`` float32.
        """

    @abc.abstractmethod
    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Apply ``actions`` ``[N, action_dim]`` (clipped to ``[-1, 1]``) for one control step.

        Returns:
            ``(obs [N, obs_dim] float32, reward [N] float32, terminated [N] bool,
            truncated [N] bool, info)``. Worlds with ``terminated | truncated`` have already been
            reset: ``obs`` is their first observation of the next episode and
            ``info["final_obs"]`` ``[N, obs_dim]`` holds the last observation of the finished one
            (rows of unfinished worlds equal ``obs``). ``info["episode"]`` holds, for the worlds
            that finished, ``{"return": [M], "length": [M], "success": [M] bool, "env_ids": [M]}``
            plus ``"reward/<term>"`` episode sums. ``info["log"]`` maps metric names
            (``reward/<term>``, ...) to scalar means over the batch for this step.
        """

    @abc.abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """Named physical quantities of the task, each ``[N, *StateField.shape]`` float32.

        This is what reward functions read; see :meth:`state_spec` for shapes, frames and units.
        After :meth:`step`: for a world that reset, the first state of its new episode; for
        every other world, the state that step's reward and observation were computed from
        (whether or not other worlds reset).
        """

    @abc.abstractmethod
    def state_spec(self) -> dict[str, StateField]:
        """Schema of :meth:`state`: the same names for every backend of a task."""

    @abc.abstractmethod
    def success(self) -> torch.Tensor:
        """The task's own measure of done-right for the current state of every world, ``[N]`` bool."""

    @abc.abstractmethod
    def render(self, env_ids: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """Render worlds offscreen (``MUJOCO_GL=egl`` on Linux).

        Returns:
            ``uint8 [n, H, W, 3]`` on the CPU, one frame per requested world (all when ``None``).
        """

    def describe(self) -> str:
        """The state schema as compact text, for an LLM prompt."""
        lines = [f"- {line}" for line in (f.describe(n) for n, f in self.state_spec().items())]
        return "\n".join(lines)

    def get_state_dict(self) -> dict[str, Any]:
        """Full simulator and episode state, for checkpoints that resume exactly.

        Backends that cannot snapshot themselves (a real robot) raise ``NotImplementedError``;
        a resumed run then starts new episodes.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot its state")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore a snapshot")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources (renderers, threads)."""


@runtime_checkable
class RealTimeEnv(Protocol):
    """An env on a robot's clock (``backend=ros2``, :mod:`rewardlab.envs.ros2_backend`): a learner
    must answer each tick within the action timeout, so it does its slow work between episodes.
    """

    real_time: bool
    """True: steps run on the robot's clock."""

    def set_between_episodes(self, fn: Callable[[], None] | None) -> None:
        """Run ``fn`` after each episode while the robot holds (``None``: nothing)."""
        ...

    def hold(self) -> None:
        """Hold the robot from the next tick on (the next reset re-arms it)."""
        ...


def as_real_time(env: BatchedEnv) -> RealTimeEnv | None:
    """``env`` as a :class:`RealTimeEnv` when it runs on a robot's clock (``env.real_time``),
    else ``None``."""
    if isinstance(env, RealTimeEnv) and bool(env.real_time):
        return env
    return None


class EnvWrapper(BatchedEnv):
    """A view of another batched env that changes part of its API and forwards the rest.

    A subclass overrides what it changes (the observation, the action, the reward: typically
    :meth:`reset` and :meth:`step`); everything else -- ``state``, ``state_spec``, ``success``,
    ``render``, ``describe``, snapshots, ``close`` and any attribute this class lacks (``task``,
    ``model``, a real-time env's ``hold``, ...) -- is the wrapped env's. The sizes are copied at
    construction; a subclass that changes a width sets it after ``super().__init__``.

    Args:
        env: the wrapped env (:attr:`env`).
    """

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.num_envs, self.obs_dim, self.action_dim = env.num_envs, env.obs_dim, env.action_dim
        self.device = env.device
        self.max_episode_steps, self.control_dt = env.max_episode_steps, env.control_dt

    @property
    def unwrapped(self) -> BatchedEnv:
        """The innermost env (through every wrapper)."""
        env = self.env
        return env.unwrapped if isinstance(env, EnvWrapper) else env

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self.env.reset(seed=seed)

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        return self.env.step(actions)

    def state(self) -> dict[str, torch.Tensor]:
        return self.env.state()

    def state_spec(self) -> dict[str, StateField]:
        return self.env.state_spec()

    def success(self) -> torch.Tensor:
        return self.env.success()

    def render(self, env_ids: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        return self.env.render(env_ids)

    def describe(self) -> str:
        return self.env.describe()

    def get_state_dict(self) -> dict[str, Any]:
        return self.env.get_state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    def close(self) -> None:
        self.env.close()

    def __getattr__(self, name: str) -> Any:
        # called only for attributes not found normally; "env" itself is never forwarded (an
        # instance being built or unpickled has none yet: no infinite recursion)
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)
