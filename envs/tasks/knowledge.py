"""What a task knows about itself besides its physics, declared on the task (not elsewhere).

A task module (or a task YAML file) declares, next to its model, state, success and reward,
everything other parts of RewardLab need to know about it, as a MuJoCo Playground task module or
an Isaac Lab env cfg does:

- ``reward_camera`` (:data:`Camera`): how a vision-language reward sees the task
  (``rewardlab.vlm_reward.rendering`` draws it);
- ``prompts`` (:class:`Prompts`): goal and baseline sentences for a CLIP-style reward
  (``reward=clip`` without prompts given);
- ``eureka_names`` (``{name: Binding | Constant | Unavailable | Columns}``): the IsaacGymEnvs /
  Eureka / DrEureka names (a ``compute_<task>_reward`` argument, an ``env.<name>`` of DrEureka's
  reward class) computed from the task's state, constants of its config or model, foreign
  observation vectors column by column, or names it cannot provide and why
  (``rewardlab.rewards.compat``);
- ``text2reward_attrs`` (``{self.<path>: state entry | Binding | Unavailable}``): the attribute
  paths a Text2Reward-style reward reads (a path ending in ``()`` is a method, e.g.
  ``"env._get_pos_goal()"``); optional ``text2reward_obs`` (a :class:`Columns`): MetaWorld's
  ``obs`` argument of ``compute_dense_reward(self, action, obs)``;
- ``scripted_episodes`` (``{script name: Script}``): hand-written policies whose episodes
  (successes, partial progress, failures) judge a frame scorer (``rewardlab vlm-eval``).

Each is a class attribute of :class:`rewardlab.envs.tasks.base.Task`: ``None`` means *not
declared* (a gap, which ``tests/test_tasks_smoke.py`` refuses for every registered task), an
:class:`OptOut` says why the task has none. The data types live here, in ``envs`` (the
foundation), so that ``vlm_reward`` and ``rewards`` read them from the task; ``envs`` imports
neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class OptOut:
    """A task's explicit "none of these", with the reason (shown where the thing is asked for)."""

    reason: str
    """Why the task declares none, in one sentence (e.g. what to do instead)."""

    def validate(self) -> None:
        """A non-empty reason."""
        if not self.reason.strip():
            raise ValueError(f"reason: got {self.reason!r}, expected a sentence saying why")


# -- reward camera -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    """A free camera placed relative to a body (or the world origin)."""

    distance: float
    """Distance from the look-at point (m)."""
    azimuth: float
    """Azimuth in degrees (90: looking along +y, from the -y side)."""
    elevation: float
    """Elevation in degrees (negative: looking down)."""
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Look-at point (m): in the world, or relative to ``track_body``'s position."""
    track_body: str | None = None
    """Body whose position (x, y, z from ``track_axes``) the look-at point follows."""
    track_axes: tuple[bool, bool, bool] = (True, True, True)
    """Which coordinates of ``track_body`` the look-at point follows."""

    def validate(self) -> None:
        """A positive distance."""
        if not self.distance > 0:
            raise ValueError(f"distance: got {self.distance!r}, expected a number > 0 (m)")


@dataclass(frozen=True)
class MultiView:
    """Several camera views stacked into one square frame, view ``i`` in horizontal band ``i``
    (top first; each band is ``size / len(views)`` pixels tall and the full width, so each view's
    vertical field of view is the model's ``fovy`` over fewer pixels)."""

    views: tuple[CameraSpec, ...]
    """The views, top to bottom (at least one)."""

    def validate(self) -> None:
        """At least one view."""
        if not self.views:
            raise ValueError("views: got [], expected at least one camera view")


Camera = CameraSpec | MultiView
"""A reward camera: one view, or several stacked in one frame."""


def camera_bodies(camera: Camera) -> list[str]:
    """The bodies a reward camera's views track (each must exist in the task's model)."""
    views = camera.views if isinstance(camera, MultiView) else (camera,)
    return [v.track_body for v in views if v.track_body is not None]


# -- prompts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompts:
    """Default sentences of a CLIP-style reward: the score rises towards ``goal`` and away from
    ``baseline`` (VLM-RM's goal-baseline projection)."""

    goal: tuple[str, ...]
    """What success looks like (at least one sentence)."""
    baseline: tuple[str, ...] = ()
    """What the task's failure looks like; empty: no baseline."""

    def validate(self) -> None:
        """At least one non-empty goal; no empty sentence."""
        if not self.goal:
            raise ValueError("goal: got [], expected at least one sentence")
        for key in ("goal", "baseline"):
            for i, text in enumerate(getattr(self, key)):
                if not text.strip():
                    raise ValueError(f"{key}[{i}]: got {text!r}, expected a sentence")


# -- names of other frameworks' rewards ----------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """How one foreign name (an IsaacGymEnvs argument) is computed from the task's state."""

    fn: Callable[[State, torch.Tensor, float], Any]
    """``fn(state, action, dt) -> value`` (a tensor ``[N, ...]`` or a float)."""
    doc: str
    """The mapping in words, for docs/rewards.md."""


@dataclass(frozen=True)
class Constant:
    """A foreign name bound to a constant of the task: a config or model value (IsaacGymEnvs'
    ``max_episode_length``, ``dof_limits_lower``, a reward scale of its task config).

    ``compute(task)`` runs in the trainer on the env's own task instance (its config, overrides
    included, and its MuJoCo model); the value crosses into the reward sandbox as data. A
    scalar is passed as a Python number, a sequence as a float32 tensor. The task's other
    bindings read it as ``state[name]`` (the state and the constants share one mapping there).
    """

    compute: Callable[[Any], Any]
    """``compute(task) -> float | int | bool | nested sequence of numbers``."""
    doc: str
    """The value in words, for docs/rewards.md."""


@dataclass(frozen=True)
class Unavailable:
    """A foreign name the task knows of but cannot provide; reward code that uses it is refused
    with this reason (instead of "does not exist")."""

    reason: str
    """Why, and what to use instead (one sentence)."""


@dataclass(frozen=True)
class Column:
    """A slice of a foreign observation vector (see :class:`Columns`)."""

    label: str
    """What the source framework puts there (``"torso height"``, ``"dof_pos_scaled"``)."""
    width: int
    """Number of columns."""
    fn: Callable[[State, torch.Tensor, float], torch.Tensor] | None = None
    """``fn(state, action, dt) -> [N, width]`` (or ``[N]`` when ``width`` is 1); ``None``:
    the task has no counterpart (the columns are NaN)."""
    missing: str = ""
    """Why there is no counterpart (when ``fn`` is ``None``)."""


@dataclass(frozen=True)
class Columns:
    """A foreign observation vector assembled column by column, in the source framework's
    layout (IsaacGymEnvs' ``obs_buf``, MetaWorld's ``obs``). Columns the task lacks are NaN, and
    reward code that reads them by constant index (``obs_buf[:, 28:52]``, ``obs[7:11]``) is
    refused before it runs, naming the columns and why they are missing."""

    parts: tuple[Column, ...]
    """The slices, in order."""
    doc: str
    """The vector in words, for docs/rewards.md."""

    @property
    def width(self) -> int:
        """Total number of columns."""
        return sum(p.width for p in self.parts)

    def spans(self) -> list[tuple[int, int, Column]]:
        """``(start, stop, column)`` of every part."""
        out, start = [], 0
        for p in self.parts:
            out.append((start, start + p.width, p))
            start += p.width
        return out

    def missing(self, start: int, stop: int) -> list[str]:
        """Descriptions of the unavailable parts that overlap columns ``start:stop``."""
        return [
            f"{a}:{b} {p.label} ({p.missing})"
            for a, b, p in self.spans()
            if p.fn is None and a < stop and start < b
        ]

    def fn(self, s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        """The vector ``[N, width]`` float32 (NaN in the unavailable parts)."""
        n = a.shape[0]
        cols = []
        for p in self.parts:
            if p.fn is None:
                cols.append(torch.full((n, p.width), float("nan"), device=a.device))
            else:
                cols.append(p.fn(s, a, dt).reshape(n, p.width).float())
        return torch.cat(cols, -1)


ForeignName = Binding | Constant | Unavailable | Columns
"""How a task binds one foreign name (an ``eureka_names`` value)."""


def entry(name: str) -> Binding:
    """The state entry ``name`` as it is."""
    return Binding(lambda s, a, dt: s[name], f"`{name}`")


def constant(value: float | int | bool, doc: str) -> Constant:
    """A constant that does not depend on the task's config (a source framework's default
    setting, e.g. IsaacGymEnvs' ``up_weight``); ``doc`` says where it comes from."""
    return Constant(lambda task: value, f"`{value!r}`: {doc}")


def config_value(field: str, doc: str | None = None) -> Constant:
    """The task config's ``field`` (``task.cfg.<field>``), as the env runs it."""
    return Constant(lambda task: getattr(task.cfg, field), doc or f"the task config's `{field}`")


def stacked(*names: str, doc: str | None = None) -> Binding:
    """Scalar state entries stacked into ``[N, len(names)]`` (e.g. IsaacGymEnvs' ``dof_pos``)."""
    listed = f"`{names[0]}`" if len(names) == 1 else "(" + ", ".join(f"`{n}`" for n in names) + ")"
    return Binding(
        lambda s, a, dt: torch.stack([s[n] for n in names], -1),
        doc or f"`[N, {len(names)}]`: {listed}",
    )


# -- scripted episodes ---------------------------------------------------------------------------

ScriptedPolicy = Callable[[Mapping[str, torch.Tensor], Any], torch.Tensor]
"""``policy(state, env) -> actions [N, action_dim]`` in ``[-1, 1]`` (``state`` as ``env.state()``)."""

SCRIPT_KINDS = ("success", "partial", "failure")
"""Intended outcomes of a scripted policy (the recorded success flag is the task's own verdict)."""


@dataclass(frozen=True)
class Script:
    """A hand-written policy of a task and the outcome it is meant to show."""

    kind: str
    """One of :data:`SCRIPT_KINDS`."""
    policy: ScriptedPolicy
    """The policy."""

    def __post_init__(self) -> None:
        if self.kind not in SCRIPT_KINDS:
            raise ValueError(f"kind: got {self.kind!r}, expected one of {', '.join(SCRIPT_KINDS)}")


# -- the declarations ----------------------------------------------------------------------------

KNOWLEDGE: dict[str, str] = {
    "reward_camera": "how a vision-language reward sees the task (a CameraSpec or MultiView)",
    "prompts": "goal and baseline sentences of a CLIP-style reward (Prompts)",
    "eureka_names": "IsaacGymEnvs/Eureka/DrEureka names -> Binding, Constant, Columns or Unavailable",
    "text2reward_attrs": "Text2Reward self.<path> -> state entry, Binding or Unavailable",
    "scripted_episodes": "script name -> Script (vlm-eval's successes, partial runs, failures)",
}
"""What every task declares (a class attribute of each name), or opts out of with :class:`OptOut`."""


def knowledge_gaps(task_cls: type) -> list[str]:
    """The :data:`KNOWLEDGE` a task class neither declares nor opts out of (``None``)."""
    return [name for name in KNOWLEDGE if getattr(task_cls, name, None) is None]


def declared(task_cls: type | None, name: str) -> Any:
    """The task's declaration ``name`` (one of :data:`KNOWLEDGE`), or ``None`` when it has none
    (not declared, opted out, or no task)."""
    value = getattr(task_cls, name, None) if task_cls is not None else None
    return None if isinstance(value, OptOut) else value


__all__ = [
    "KNOWLEDGE",
    "SCRIPT_KINDS",
    "Binding",
    "Camera",
    "Column",
    "Columns",
    "Constant",
    "ForeignName",
    "Unavailable",
    "config_value",
    "constant",
    "CameraSpec",
    "MultiView",
    "OptOut",
    "Prompts",
    "Script",
    "ScriptedPolicy",
    "camera_bodies",
    "declared",
    "entry",
    "knowledge_gaps",
    "stacked",
]
