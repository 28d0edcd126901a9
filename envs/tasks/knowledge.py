"""What a task knows about itself besides its physics, declared on the task (not elsewhere).

A task module (or a task YAML file) declares, next to its model, state, success and reward,
everything other parts of RewardLab need to know about it, as a MuJoCo Playground task module or
an Isaac Lab env cfg does:

- ``reward_camera`` (:data:`Camera`): how a vision-language reward sees the task
  (``rewardlab.vlm_reward.rendering`` draws it);
- ``prompts`` (:class:`Prompts`): goal and baseline sentences for a CLIP-style reward
  (``reward=clip`` without prompts given);
- ``eureka_names`` (``{name: Binding}``): the IsaacGymEnvs argument names an Eureka-style
  ``compute_reward`` may take, computed from the task's state (``rewardlab.rewards.compat``);
- ``text2reward_attrs`` (``{self.<path>: state entry}``): the attribute paths a
  Text2Reward-style reward reads;
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


def entry(name: str) -> Binding:
    """The state entry ``name`` as it is."""
    return Binding(lambda s, a, dt: s[name], f"`{name}`")


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
    "eureka_names": "IsaacGymEnvs argument names -> Binding (Eureka-style rewards)",
    "text2reward_attrs": "Text2Reward self.<path> -> state entry",
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
