"""What a task is: its MJCF model, state, observation, success, resets, termination and reward.

A task is defined once, in torch, over a :class:`SimView` of the physics (tensors
``[N, ...]`` over qpos, qvel, body positions, ...), so that the same task code runs on every
backend that can fill a :class:`SimView` (native MuJoCo on the CPU, MuJoCo Warp on a GPU).
Tasks register themselves by name with :func:`register_task` (MuJoCo Playground's registry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import torch

from rewardlab.core.reward import RewardTerm
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks.knowledge import Binding, Camera, OptOut, Prompts, Script

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class TaskConfig:
    """Settings every task has. Tasks subclass this with their own fields."""

    frame_skip: int = 2
    """Physics steps per control step (decimation); control rate = 1 / (timestep * frame_skip)."""
    episode_steps: int = 500
    """Time limit in control steps; reaching it truncates (not terminates) the episode."""
    reset_noise: float = 0.1
    """Scale of the uniform noise added to the initial joint positions and velocities."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Weight of each default reward term by name; a name left out keeps the task's default."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value is out of range."""
        if self.frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {self.frame_skip}")
        if self.episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1, got {self.episode_steps}")
        if self.reset_noise < 0:
            raise ValueError(f"reset_noise must be >= 0, got {self.reset_noise}")
        for k, v in self.reward_weights.items():
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"reward_weights.{k} must be a finite number, got {v!r}")


@dataclass
class SimView:
    """Batched tensors over the physics state of ``N`` worlds, float64, on the backend's device.

    ``qpos``, ``qvel`` and ``ctrl`` are live state: writing them changes the simulation.
    The derived fields (``xpos``, ``xquat``, ``site_xpos``, ``sensordata``, ...) are read-only
    and current after every step and reset. Only the fields named in ``Task.sim_fields`` are
    present in ``derived``.
    """

    qpos: torch.Tensor
    """``[N, nq]`` generalized positions."""
    qvel: torch.Tensor
    """``[N, nv]`` generalized velocities."""
    ctrl: torch.Tensor
    """``[N, nu]`` actuator controls."""
    derived: dict[str, torch.Tensor]
    """MjData field name -> ``[N, ...]`` tensor, e.g. ``"xpos"`` -> ``[N, nbody, 3]``."""
    model: dict[str, torch.Tensor] = field(default_factory=dict)
    """Per-world MjModel fields the task writes at reset (``Task.model_fields``), live
    ``[N, ...]`` views, e.g. ``"body_mass"`` -> ``[N, nbody]`` (object properties)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self.__dict__["derived"][name]
        except KeyError:
            raise AttributeError(
                f"SimView has no field {name!r}; add it to the task's sim_fields"
            ) from None


class Task:
    """Base of every task. Subclasses set the class attributes and override the methods.

    The backend calls, in order: ``__init__(cfg, model)`` once; then per reset of some worlds
    ``reset(sim, env_ids, generator)``; per control step ``state(sim, last_action)``, then
    ``observation``, ``success`` and ``terminated`` on that state; the reward is
    ``reward_fn()(state, action)``.
    """

    name: ClassVar[str]
    """Registry name, e.g. ``"cartpole_balance"``."""
    model_file: ClassVar[str]
    """MJCF file under ``envs/assets/`` (or an absolute path)."""
    sim_fields: ClassVar[tuple[str, ...]] = ()
    """Derived MjData fields the task reads (bound, so copied out after every step)."""
    success_threshold: ClassVar[float] = 0.9
    """Episode success rate at which the task counts as solved (used by tests and searches)."""
    success_survives_termination: ClassVar[bool] = False
    """``False``: an episode that terminated failed. ``True``: its success is :meth:`success`
    on its last state even when it terminated (an achievement counted so far, e.g. goals
    reached before the cube fell, as IsaacGymEnvs counts consecutive successes)."""
    model_fields: ClassVar[tuple[str, ...]] = ()
    """MjModel fields the task gives per-world values at reset (object masses, friction:
    ``rewardlab.envs.tasks.authoring``); the backend exposes them in ``SimView.model``."""
    train_defaults: ClassVar[Mapping[str, Any] | None] = None
    """Training settings of the task's own file (a YAML task's ``train:`` section), a config
    layer above ``sim_configs/train/default.yaml`` (``rewardlab.config``)."""
    action_map: Any = None
    """How actions become controls (``authoring.BoundActionMap``); ``None``: one action per
    actuator, ``ctrl = mid + half * a`` over its control range."""
    video_camera: ClassVar[Camera | None] = None
    """The camera of evaluation videos (``rewardlab eval video=true``, the end of ``train``);
    ``None``: the model's camera 0 (or MuJoCo's default free camera). A robot that walks away
    from the origin declares one that follows it (``CameraSpec(..., track_body=...)``)."""

    # What the task knows about itself besides its physics (:mod:`.knowledge`): each is declared
    # here, in the task's own module, or opted out of with ``OptOut(reason)``; ``None`` is a gap
    # (refused by tests/test_tasks_smoke.py).
    reward_camera: ClassVar[Camera | OptOut | None] = None
    """How a vision-language reward sees the task (``rewardlab.vlm_reward.rendering``)."""
    prompts: ClassVar[Prompts | OptOut | None] = None
    """Goal and baseline sentences of a CLIP-style reward (``reward=clip`` without prompts)."""
    eureka_names: ClassVar[Mapping[str, Binding] | OptOut | None] = None
    """IsaacGymEnvs argument name -> how it is computed from the state (Eureka-style rewards;
    every state entry is bindable under its own name besides these)."""
    text2reward_attrs: ClassVar[Mapping[str, str] | OptOut | None] = None
    """Text2Reward ``self.<path>`` -> state entry (every entry is also ``self.<name>``)."""
    scripted_episodes: ClassVar[Mapping[str, Script] | OptOut | None] = None
    """Script name -> hand-written policy and intended outcome (``rewardlab vlm-eval``)."""

    def __init__(self, cfg: TaskConfig, model: mujoco.MjModel) -> None:
        cfg.validate()
        self.cfg = cfg
        self.model = model

    @property
    def action_dim(self) -> int:
        """Length of one world's action: the action map's, else one per actuator."""
        return self.model.nu if self.action_map is None else int(self.action_map.action_dim)

    @classmethod
    def task_files(cls) -> list[Path]:
        """The files that define the task (its module's source and its model files), which a
        run directory records (``rewardlab.runs``); a YAML task lists its YAML and MJCF."""
        import inspect

        out = []
        with contextlib.suppress(TypeError, OSError):
            out.append(Path(inspect.getfile(cls)).resolve())
        path = Path(cls.model_file) if getattr(cls, "model_file", "") else None
        if path is not None:
            out.append(path if path.is_absolute() else ASSETS / path)
        return out

    @classmethod
    def default_config(cls) -> TaskConfig:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """The task in one complete sentence: the first line of its docstring (a YAML task's
        ``description``), as ``rewardlab tasks`` shows it."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        path = Path(cls.model_file)
        if not path.is_absolute():
            path = ASSETS / path
        return mujoco.MjModel.from_xml_path(str(path))

    # -- per-task physics ----------------------------------------------------------------------

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        """Write initial ``qpos``/``qvel`` for ``env_ids``; default: keyframe 0 (or qpos0) plus noise."""
        n = len(env_ids)
        qpos0 = torch.as_tensor(self.model.qpos0, dtype=sim.qpos.dtype, device=sim.qpos.device)
        s = self.cfg.reset_noise
        sim.qpos[env_ids] = qpos0 + s * _uniform(gen, (n, self.model.nq), sim.qpos)
        sim.qvel[env_ids] = s * _uniform(gen, (n, self.model.nv), sim.qvel)

    def reset_near(
        self,
        sim: SimView,
        env_ids: torch.Tensor,
        gen: torch.Generator,
        home: torch.Tensor,
        noisy_qpos: torch.Tensor,
    ) -> None:
        """Reset to ``home`` ``[nq]`` with uniform ``reset_noise`` on the ``noisy_qpos`` entries
        (e.g. the joints, not a free base's quaternion) and on every velocity."""
        n, s = len(env_ids), self.cfg.reset_noise
        qpos = home.to(sim.qpos).repeat(n, 1)
        qpos[:, noisy_qpos] += s * _uniform(gen, (n, len(noisy_qpos)), sim.qpos)
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = s * _uniform(gen, (n, self.model.nv), sim.qvel)

    def state_spec(self) -> dict[str, StateField]:
        raise NotImplementedError

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named quantities ``[N, ...]`` float32; must match :meth:`state_spec` exactly."""
        raise NotImplementedError

    def full_state(
        self, sim: SimView, last_action: torch.Tensor, prev_action: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """:meth:`state` plus ``prev_action``, as backends hand it to rewards.

        After control step ``t``, ``last_action`` is ``a_t`` (the action just applied, what the
        policy observes) and ``prev_action`` is ``a_{t-1}``; both are zero right after a reset.
        """
        out = self.state(sim, last_action)
        out["prev_action"] = prev_action
        return out

    def full_state_spec(self) -> dict[str, StateField]:
        """:meth:`state_spec` plus ``prev_action``: the schema of :meth:`full_state`."""
        spec = dict(self.state_spec())
        spec["prev_action"] = StateField(
            (self.action_dim,),
            "1",
            "actuator",
            "Action applied one control step before last_action, in [-1, 1]; "
            "last_action - prev_action is the action rate.",
        )
        return spec

    def observation(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Policy observation ``[N, obs_dim]`` float32 built from the state."""
        raise NotImplementedError

    def obs_layout(self) -> list[tuple[str, int]]:
        """``(state name, width)`` of each slice of the observation, in order (for export)."""
        raise NotImplementedError

    def success(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[N]`` bool; an episode succeeds if this holds on its last state and it did not terminate."""
        raise NotImplementedError

    def terminated(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[N]`` bool: the episode ended early (fell over, left the rail). Default: never."""
        ref = next(iter(state.values()))
        return torch.zeros(ref.shape[0], dtype=torch.bool, device=ref.device)

    def after_step(self, sim: SimView, state: Mapping[str, torch.Tensor], gen: torch.Generator) -> None:  # fmt: skip
        """Per-world events that follow a control step: called once per step, after its reward,
        termination and success were computed from ``state`` and before finished worlds reset
        (e.g. a reached goal is counted and a new one drawn from ``gen``, IsaacGymEnvs'
        ``reset_goal_buf``). Default: nothing."""

    def episode_metrics(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task metrics of the episodes ending now in worlds ``env_ids`` (``[M]``), each ``[M]``
        and named by namespace (``charts/consecutive_successes``); called before those worlds
        reset, carried in ``info["episode"]`` and logged as means by the trainer. Default: none."""
        return {}

    def get_state_dict(self) -> dict[str, Any]:
        """Per-world task buffers (targets, episode-start values) for exact resume; none by default."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned."""

    def reward_terms(self) -> dict[str, RewardTerm]:
        """The default human-written reward, as named terms with weights from ``cfg.reward_weights``."""
        raise NotImplementedError

    def _weighted(self, defaults: Mapping[str, tuple[Callable, float]]) -> dict[str, RewardTerm]:
        """Helper: ``{name: (func, default weight)}`` -> terms, applying ``cfg.reward_weights``."""
        unknown = set(self.cfg.reward_weights) - set(defaults)
        if unknown:
            raise ValueError(
                f"reward_weights: unknown term(s) {sorted(unknown)} for task {self.name!r}; "
                f"known terms: {sorted(defaults)}"
            )
        return {
            name: RewardTerm(func, float(self.cfg.reward_weights.get(name, w)))
            for name, (func, w) in defaults.items()
        }


def _uniform(gen: torch.Generator, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Uniform in [-1, 1], drawn on the generator's device, returned like ``like``."""
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return (2.0 * u - 1.0).to(device=like.device, dtype=like.dtype)


uniform = _uniform

# ---------------------------------------------------------------------------------------------
# Registry

_REGISTRY: dict[str, type[Task]] = {}
_FACTORIES: dict[str, Callable[[], type[Task]]] = {}
_BROKEN: dict[str, str] = {}
"""Registered names whose task could not be built -> the one-line error (see broken_tasks)."""


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``make_env(cls.name)``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    _BROKEN.pop(cls.name, None)
    return cls


def register_task_factory(name: str, factory: Callable[[], type[Task]]) -> None:
    """Register a task built lazily (e.g. from a YAML file) under ``name``."""
    _FACTORIES[name] = factory


def task_names() -> list[str]:
    """Every registered task name, sorted (including lazily registered tasks that may turn out
    not to load: :func:`broken_tasks`)."""
    return sorted(set(_REGISTRY) | set(_FACTORIES))


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``, built now if it was registered lazily.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        Exception: a lazily registered task that cannot be built raises its own error (e.g.
            ``YamlTaskError`` naming the file and key); :func:`broken_tasks` then lists it.
    """
    if name not in _REGISTRY and name in _FACTORIES:
        try:
            cls = _FACTORIES[name]()
        except Exception as e:
            _BROKEN[name] = " ".join(str(e).split()) or type(e).__name__
            raise
        _REGISTRY[name] = cls
        _BROKEN.pop(name, None)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}") from None


def broken_tasks() -> dict[str, str]:
    """Registered tasks that cannot be loaded (e.g. an invalid YAML task file), each with its
    one-line error, sorted by name; every lazily registered task is built now to find out.

    A listing (``rewardlab tasks``) prints one line for each of these and skips them.
    """
    for name in list(_FACTORIES):
        if name not in _REGISTRY:
            with contextlib.suppress(Exception):  # recorded in _BROKEN by get_task
                get_task(name)
    return dict(sorted(_BROKEN.items()))


def replace_config(cfg: TaskConfig, **changes: object) -> TaskConfig:
    """``dataclasses.replace`` that names the task config class in its error."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    bad = set(changes) - fields
    if bad:
        raise ValueError(
            f"{type(cfg).__name__}: unknown key(s) {sorted(bad)}; allowed: {sorted(fields)}"
        )
    return dataclasses.replace(cfg, **changes)
