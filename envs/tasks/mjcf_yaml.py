"""Tasks defined by an MJCF file and a YAML file, without Python.

A YAML file names the model, the state (by joints, bodies, sites and sensors of the model), the
observation, success, termination and a reward built from a small library of term kinds. It is
validated into frozen dataclasses; every error names the file, the key, the bad value and the
allowed values. :func:`register_yaml_task` registers one file under its ``name``; every
``*.yaml`` under ``sim_configs/tasks/custom/`` (and the folders in ``$REWARDLAB_TASK_DIRS``,
``os.pathsep``-separated) is registered lazily when this module is imported.

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
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import torch
import yaml

from rewardlab.core.resources import shipped_config_dir
from rewardlab.core.reward import RewardTerm, action_l2, action_rate_l2, alive
from rewardlab.envs.base import StateField
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
}
"""Kinds of state entries and the keys each takes (besides ``kind`` and ``doc``)."""

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
}
"""Kinds of reward terms and what each computes."""

_STATELESS_TERMS = ("action_l2", "action_rate_l2", "alive")
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
_AXES = {"x": 0, "y": 1, "z": 2}
_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
_TOP_KEYS = (
    "name", "description", "model", "frame_skip", "episode_steps", "reset_noise", "keyframe",
    "success_threshold", "state", "observation", "success", "termination", "reward",
)  # fmt: skip
_REQUIRED = ("name", "model", "state", "observation", "success", "reward")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class YamlTaskError(ValueError):
    """A YAML task file is invalid. The message names the file, the key and the allowed values."""


# ---------------------------------------------------------------------------------------------
# The validated spec


@dataclass(frozen=True)
class PointRef:
    """A point of the model: a site's or a body's origin."""

    kind: str
    """``"site"`` or ``"body"``."""
    name: str
    """Name of the site or body in the MJCF."""


@dataclass(frozen=True)
class StateEntry:
    """One named state quantity, computed from the model's joints, bodies, sites or sensors."""

    name: str
    """State name, as rewards read it."""
    kind: str
    """One of :data:`STATE_KINDS`."""
    joints: tuple[str, ...] = ()
    """Joint names (``joint_pos``, ``joint_vel``)."""
    vector: bool = False
    """For joints: given as a list (``joints``), so the state is a vector even of one joint."""
    body: str = ""
    """Body name (``body_*`` kinds)."""
    site: str = ""
    """Site name (``site_pos``)."""
    sensor: str = ""
    """Sensor name (``sensor``)."""
    point_from: PointRef | None = None
    """Start point (``distance``, ``offset``)."""
    point_to: PointRef | None = None
    """End point (``distance``, ``offset``)."""
    axis: int | None = None
    """Keep one component (0, 1, 2 for x, y, z) of a 3-vector; ``None`` keeps all."""
    wrap: bool = False
    """Wrap hinge angles to [-pi, pi] (``joint_pos``)."""
    doc: str = ""
    """Description for the LLM prompt; generated from the kind when empty."""


@dataclass(frozen=True)
class ObsEntry:
    """One slice of the observation."""

    state: str
    """State name."""
    transform: str = "identity"
    """One of :data:`TRANSFORMS`, applied elementwise."""
    scale: float = 1.0
    """Multiplies the (transformed) value."""


@dataclass(frozen=True)
class Condition:
    """A comparison on a scalar state entry."""

    state: str
    """State name (a scalar)."""
    op: str
    """One of :data:`OPS`."""
    value: float
    """Right-hand side."""
    abs: bool = False
    """Compare the absolute value of the state."""


@dataclass(frozen=True)
class TermSpec:
    """One reward term."""

    name: str
    """Term name (logged as ``reward/<name>``)."""
    kind: str
    """One of :data:`TERM_KINDS`."""
    weight: float = 1.0
    """Multiplies the term; negative for penalties."""
    state: str = ""
    """State the term reads (all kinds but action_l2, action_rate_l2, alive)."""
    sigma: float = 1.0
    """Width of ``gaussian``."""
    target: float = 0.0
    """Centre of ``gaussian``."""


@dataclass(frozen=True)
class YamlTaskSpec:
    """A task YAML file, validated (model names are checked when the task class is built)."""

    path: Path
    """The YAML file."""
    name: str
    """Registry name."""
    model: Path
    """Absolute path of the MJCF file."""
    description: str
    """One-line description."""
    frame_skip: int
    """Physics steps per control step."""
    episode_steps: int
    """Time limit in control steps."""
    reset_noise: float
    """Half-width of the reset noise."""
    keyframe: str
    """Keyframe to reset around; empty for qpos0."""
    success_threshold: float
    """Episode success rate that counts as solved."""
    state: tuple[StateEntry, ...]
    """State entries, in order (``last_action`` is added after them)."""
    observation: tuple[ObsEntry, ...]
    """Observation slices, in order."""
    success: tuple[Condition, ...]
    """All must hold for success."""
    termination: tuple[Condition, ...]
    """Any holding terminates the episode."""
    reward: tuple[TermSpec, ...]
    """Default reward terms."""


# ---------------------------------------------------------------------------------------------
# Parsing


class _Ctx:
    """Error helper: knows the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, value: Any = None, allowed: Sequence[str] | str | None = None) -> YamlTaskError:  # fmt: skip
        msg = f"{self.path}: {key}: {problem}"
        if value is not None:
            msg += f"; got {value!r}"
        if allowed is not None:
            allowed_text = allowed if isinstance(allowed, str) else ", ".join(allowed)
            msg += f"; allowed: {allowed_text}"
        return YamlTaskError(msg)

    def mapping(self, key: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, "must be a mapping", value)
        return value

    def keys(self, key: str, value: Mapping[str, Any], allowed: Sequence[str]) -> None:
        bad = [k for k in value if k not in allowed]
        if bad:
            raise self.fail(f"{key}.{bad[0]}" if key else str(bad[0]), "unknown key", bad[0], sorted(allowed))  # fmt: skip

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string", value)
        return value

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}", value)
        return value

    def number(self, key: str, value: Any, minimum: float | None = None, maximum: float | None = None, strict: bool = False) -> float:  # fmt: skip
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and minimum is not None:
            ok = value > minimum if strict else value >= minimum
        if ok and maximum is not None:
            ok = value <= maximum
        if not ok:
            rng = []
            if minimum is not None:
                rng.append(f"{'>' if strict else '>='} {minimum}")
            if maximum is not None:
                rng.append(f"<= {maximum}")
            raise self.fail(key, "must be a finite number" + (" " + " and ".join(rng) if rng else ""), value)  # fmt: skip
        return float(value)

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false", value)
        return value

    def choice(self, key: str, value: Any, allowed: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(key, "unknown value", value, allowed)
        return value


def load_yaml_task_spec(path: str | os.PathLike[str]) -> YamlTaskSpec:
    """Read and validate a task YAML file (the MJCF names are checked by :func:`build_yaml_task`).

    Raises:
        YamlTaskError: the file is unreadable or invalid; the message names file, key and value.
    """
    path = Path(path).resolve()
    c = _Ctx(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise YamlTaskError(f"{path}: cannot read the task file: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise YamlTaskError(f"{path}: not valid YAML: {e}") from e
    doc = c.mapping("(top level)", raw)
    c.keys("", doc, _TOP_KEYS)
    for k in _REQUIRED:
        if k not in doc:
            raise c.fail(k, "required key is missing", allowed=list(_REQUIRED) + ["(optional) " + ", ".join(k2 for k2 in _TOP_KEYS if k2 not in _REQUIRED)])  # fmt: skip

    name = c.string("name", doc["name"])
    if not _NAME_RE.match(name):
        raise c.fail(
            "name", "must be lowercase letters, digits and _, starting with a letter", name
        )
    model = path.parent / c.string("model", doc["model"])
    if not model.is_file():
        raise c.fail("model", f"MJCF file not found (looked for {model})", doc["model"])
    defaults = TaskConfig()
    frame_skip = c.integer("frame_skip", doc.get("frame_skip", defaults.frame_skip), 1)
    episode_steps = c.integer("episode_steps", doc.get("episode_steps", defaults.episode_steps), 1)
    reset_noise = c.number("reset_noise", doc.get("reset_noise", defaults.reset_noise), 0.0)
    keyframe = doc.get("keyframe", "")
    if keyframe != "":
        keyframe = c.string("keyframe", keyframe)
    threshold = c.number("success_threshold", doc.get("success_threshold", 0.9), 0.0, 1.0)
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise c.fail("description", "must be a string", description)

    states = _parse_state(c, c.mapping("state", doc["state"]))
    shapes = {s.name: _entry_is_scalar(s) for s in states}
    shapes["last_action"] = False
    observation = _parse_observation(c, doc["observation"], shapes)
    success = _parse_conditions(c, "success", doc["success"], shapes)
    termination = _parse_conditions(c, "termination", doc.get("termination", []), shapes)
    reward = _parse_reward(c, c.mapping("reward", doc["reward"]), shapes)
    return YamlTaskSpec(
        path=path, name=name, model=model.resolve(), description=description,
        frame_skip=frame_skip, episode_steps=episode_steps, reset_noise=reset_noise,
        keyframe=keyframe, success_threshold=threshold, state=states,
        observation=observation, success=success, termination=termination, reward=reward,
    )  # fmt: skip


def _entry_is_scalar(s: StateEntry) -> bool:
    """Whether the entry is a scalar per world (sensor dims are only known with the model)."""
    if s.kind in ("joint_pos", "joint_vel"):
        return not s.vector
    if s.kind in ("distance", "site_distance", "body_upright"):
        return True
    if s.kind == "sensor":
        return False  # decided with the model; conditions on sensors are checked then
    return s.axis is not None


def _parse_point(c: _Ctx, key: str, value: Any) -> PointRef:
    m = c.mapping(key, value)
    if len(m) != 1 or next(iter(m)) not in ("site", "body"):
        raise c.fail(key, "must be {site: name} or {body: name}", dict(m), ["site", "body"])
    kind = next(iter(m))
    return PointRef(kind, c.string(f"{key}.{kind}", m[kind]))


def _parse_state(c: _Ctx, doc: Mapping[str, Any]) -> tuple[StateEntry, ...]:
    if not doc:
        raise c.fail("state", "must name at least one state entry", dict(doc))
    out = []
    for name, raw in doc.items():
        key = f"state.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise c.fail(key, "state names must be lowercase letters, digits and _", name)
        if name == "last_action":
            raise c.fail(key, "is always provided (the previous action); choose another name", name)
        e = c.mapping(key, raw)
        if "kind" not in e:
            raise c.fail(f"{key}.kind", "required key is missing", allowed=sorted(STATE_KINDS))
        kind = c.choice(f"{key}.kind", e["kind"], sorted(STATE_KINDS))
        c.keys(key, e, ("kind", "doc", *STATE_KINDS[kind]))
        fields: dict[str, Any] = {"name": name, "kind": kind}
        if "doc" in e:
            fields["doc"] = c.string(f"{key}.doc", e["doc"])
        if kind in ("joint_pos", "joint_vel"):
            if ("joint" in e) == ("joints" in e):
                raise c.fail(key, "needs exactly one of 'joint' (a name) or 'joints' (a list of names)", dict(e), ["joint", "joints"])  # fmt: skip
            if "joint" in e:
                fields["joints"] = (c.string(f"{key}.joint", e["joint"]),)
            else:
                js = e["joints"]
                if not isinstance(js, list) or not js:
                    raise c.fail(f"{key}.joints", "must be a non-empty list of joint names", js)
                fields["joints"] = tuple(c.string(f"{key}.joints[{i}]", j) for i, j in enumerate(js))  # fmt: skip
                fields["vector"] = True
            if "wrap" in e:
                fields["wrap"] = c.boolean(f"{key}.wrap", e["wrap"])
        for k in ("body", "site", "sensor"):
            if k in STATE_KINDS[kind]:
                if k not in e:
                    raise c.fail(f"{key}.{k}", f"required for kind {kind}", allowed=f"a {k} name of the model")  # fmt: skip
                fields[k] = c.string(f"{key}.{k}", e[k])
        if "from" in STATE_KINDS[kind]:
            for k, f in (("from", "point_from"), ("to", "point_to")):
                if k not in e:
                    raise c.fail(f"{key}.{k}", f"required for kind {kind}", allowed=["{site: name}", "{body: name}"])  # fmt: skip
                fields[f] = _parse_point(c, f"{key}.{k}", e[k])
        if "axis" in e:
            fields["axis"] = _AXES[c.choice(f"{key}.axis", e["axis"], list(_AXES))]
        out.append(StateEntry(**fields))
    return tuple(out)


def _parse_observation(c: _Ctx, doc: Any, shapes: Mapping[str, bool]) -> tuple[ObsEntry, ...]:
    if not isinstance(doc, list) or not doc:
        raise c.fail("observation", "must be a non-empty list of state names or {state, transform, scale}", doc)  # fmt: skip
    out = []
    for i, raw in enumerate(doc):
        key = f"observation[{i}]"
        if isinstance(raw, str):
            raw = {"state": raw}
        e = c.mapping(key, raw)
        c.keys(key, e, ("state", "transform", "scale"))
        if "state" not in e:
            raise c.fail(f"{key}.state", "required key is missing", allowed=sorted(shapes))
        state = c.choice(f"{key}.state", e["state"], sorted(shapes))
        transform = c.choice(f"{key}.transform", e.get("transform", "identity"), TRANSFORMS)
        scale = c.number(f"{key}.scale", e.get("scale", 1.0))
        out.append(ObsEntry(state, transform, scale))
    return tuple(out)


def _parse_conditions(c: _Ctx, key: str, doc: Any, shapes: Mapping[str, bool]) -> tuple[Condition, ...]:  # fmt: skip
    items = doc if isinstance(doc, list) else [doc]
    if key == "success" and not items:
        raise c.fail(key, "must be a comparison {state, op, value} or a non-empty list of them", doc)  # fmt: skip
    out = []
    for i, raw in enumerate(items):
        k = key if not isinstance(doc, list) else f"{key}[{i}]"
        e = c.mapping(k, raw)
        c.keys(k, e, ("state", "op", "value", "abs"))
        for req in ("state", "op", "value"):
            if req not in e:
                raise c.fail(f"{k}.{req}", "required key is missing", allowed=["state", "op", "value", "abs"])  # fmt: skip
        scalars = sorted(n for n, s in shapes.items() if s) + sorted(n for n, s in shapes.items() if not s and n != "last_action")  # fmt: skip
        state = c.choice(f"{k}.state", e["state"], scalars)
        op = c.choice(f"{k}.op", e["op"], list(OPS))
        value = c.number(f"{k}.value", e["value"])
        use_abs = c.boolean(f"{k}.abs", e.get("abs", False))
        out.append(Condition(state, op, value, use_abs))
    return tuple(out)


def _parse_reward(c: _Ctx, doc: Mapping[str, Any], shapes: Mapping[str, bool]) -> tuple[TermSpec, ...]:  # fmt: skip
    if not doc:
        raise c.fail("reward", "must name at least one term", dict(doc))
    out = []
    for name, raw in doc.items():
        key = f"reward.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise c.fail(key, "term names must be lowercase letters, digits and _", name)
        e = c.mapping(key, raw)
        if "kind" not in e:
            raise c.fail(f"{key}.kind", "required key is missing", allowed=sorted(TERM_KINDS))
        kind = c.choice(f"{key}.kind", e["kind"], sorted(TERM_KINDS))
        allowed = ["kind", "weight"]
        if kind not in _STATELESS_TERMS:
            allowed.append("state")
        if kind == "gaussian":
            allowed += ["sigma", "target"]
        c.keys(key, e, allowed)
        fields: dict[str, Any] = {"name": name, "kind": kind}
        fields["weight"] = c.number(f"{key}.weight", e.get("weight", 1.0))
        if kind not in _STATELESS_TERMS:
            if "state" not in e:
                raise c.fail(f"{key}.state", f"required for kind {kind}", allowed=sorted(shapes))
            fields["state"] = c.choice(f"{key}.state", e["state"], sorted(shapes))
        if kind == "gaussian":
            if "sigma" not in e:
                raise c.fail(f"{key}.sigma", "required for kind gaussian (exp(-sum (x - target)^2 / sigma))", allowed="a number > 0")  # fmt: skip
            fields["sigma"] = c.number(f"{key}.sigma", e["sigma"], 0.0, strict=True)
            fields["target"] = c.number(f"{key}.target", e.get("target", 0.0))
        out.append(TermSpec(**fields))
    return tuple(out)


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
        s = cls.spec
        return YamlTaskConfig(frame_skip=s.frame_skip, episode_steps=s.episode_steps, reset_noise=s.reset_noise)  # fmt: skip

    def __init__(self, cfg: TaskConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self._qpos0 = torch.as_tensor(model.qpos0.copy())
        if self.spec.keyframe:
            self._qpos0 = torch.as_tensor(model.key(self.spec.keyframe).qpos.copy())
        adr = [
            int(model.jnt_qposadr[j])
            for j in range(model.njnt)
            if int(model.jnt_type[j]) in _SCALAR_JOINTS
        ]
        self._noisy_qpos = torch.as_tensor(adr, dtype=torch.long)
        self._rootid = torch.as_tensor(model.body_rootid.copy(), dtype=torch.long)
        self._sensor_adr = {
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SENSOR, i): (
                int(model.sensor_adr[i]),
                int(model.sensor_dim[i]),
            )  # fmt: skip
            for i in range(model.nsensor)
        }

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        n, s = len(env_ids), self.cfg.reset_noise
        qpos = self._qpos0.to(sim.qpos).repeat(n, 1)
        if len(self._noisy_qpos):
            qpos[:, self._noisy_qpos] += s * uniform(gen, (n, len(self._noisy_qpos)), sim.qpos)
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = s * uniform(gen, (n, self.model.nv), sim.qvel)

    def state_spec(self) -> dict[str, StateField]:
        out = {r.entry.name: StateField(r.shape, r.unit, r.frame, r.doc) for r in self._resolved}
        out["last_action"] = StateField((self.model.nu,), "1", "actuator", "Action of the previous control step, in [-1, 1].")  # fmt: skip
        return out

    def _point(self, sim: SimView, ref: PointRef, idx: int) -> torch.Tensor:
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
        elif kind == "sensor":
            adr, dim = r.ids
            x = sim.sensordata[:, adr : adr + dim]
            return x if r.shape else x[:, 0]
        else:  # pragma: no cover - kinds are validated
            raise AssertionError(kind)
        return x if e.axis is None else x[:, e.axis]

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {r.entry.name: self._value(sim, r).float() for r in self._resolved}
        out["last_action"] = last_action
        return out

    def observation(self, state: State) -> torch.Tensor:
        parts = []
        for o in self.spec.observation:
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
        for o in self.spec.observation:
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
        result = self._check(self.spec.success, state)
        return torch.stack(result).all(0)

    def terminated(self, state: State) -> torch.Tensor:
        if not self.spec.termination:
            return super().terminated(state)
        return torch.stack(self._check(self.spec.termination, state)).any(0)

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted({t.name: (_term_func(t), t.weight) for t in self.spec.reward})


def _term_func(t: TermSpec) -> Callable[..., torch.Tensor]:
    """The reward function of a term spec, named after it (for logs and reflection)."""
    if t.kind == "action_l2":
        return action_l2
    if t.kind == "action_rate_l2":
        return action_rate_l2
    if t.kind == "alive":
        return alive
    name, kind, sigma, target = t.state, t.kind, t.sigma, t.target

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
}


def build_yaml_task(spec: YamlTaskSpec) -> type[YamlTask]:
    """Compile the spec's MJCF, resolve its names and make the task class (not registered).

    Raises:
        YamlTaskError: the MJCF does not compile, or names a joint, body, site, sensor or
            keyframe that the model does not have (the message lists the model's names).
    """
    c = _Ctx(spec.path)
    try:
        model = mujoco.MjModel.from_xml_path(str(spec.model))
    except Exception as e:  # mujoco raises ValueError with the XML error
        raise c.fail("model", f"MJCF does not compile: {e}", str(spec.model)) from e
    if model.nu == 0:
        raise c.fail("model", "the MJCF has no actuators, so a policy cannot act", str(spec.model))
    if spec.keyframe and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, spec.keyframe) < 0:
        raise c.fail("keyframe", "no such keyframe in the model", spec.keyframe, _names(model, mujoco.mjtObj.mjOBJ_KEY, model.nkey))  # fmt: skip

    def lookup(key: str, kind: str, name: str) -> int:
        obj, count = {
            "joint": (mujoco.mjtObj.mjOBJ_JOINT, model.njnt),
            "body": (mujoco.mjtObj.mjOBJ_BODY, model.nbody),
            "site": (mujoco.mjtObj.mjOBJ_SITE, model.nsite),
            "sensor": (mujoco.mjtObj.mjOBJ_SENSOR, model.nsensor),
        }[kind]
        i = mujoco.mj_name2id(model, obj, name)
        if i < 0:
            raise c.fail(key, f"no {kind} of this name in {spec.model.name}", name, _names(model, obj, count))  # fmt: skip
        return i

    resolved: list[_Resolved] = []
    fields: set[str] = set()
    for e in spec.state:
        key = f"state.{e.name}"
        fields.update(_SIM_FIELDS.get(e.kind, ()))
        vec3: tuple[int, ...] = (3,) if e.axis is None else ()
        if e.kind in ("joint_pos", "joint_vel"):
            ids, hinge, units = [], [], set()
            for j, jn in enumerate(e.joints):
                jkey = f"{key}.joints[{j}]" if e.vector else f"{key}.joint"
                jid = lookup(jkey, "joint", jn)
                jtype = int(model.jnt_type[jid])
                if jtype not in _SCALAR_JOINTS:
                    raise c.fail(jkey, f"joint type {mujoco.mjtJoint(jtype).name} has no scalar position; use body_pos/body_quat of its body", jn, ["hinge", "slide"])  # fmt: skip
                is_hinge = jtype == int(mujoco.mjtJoint.mjJNT_HINGE)
                ids.append(int(model.jnt_qposadr[jid] if e.kind == "joint_pos" else model.jnt_dofadr[jid]))  # fmt: skip
                hinge.append(bool(is_hinge))
                units.add(("rad" if is_hinge else "m") + ("" if e.kind == "joint_pos" else "/s"))
            shape = (len(ids),) if e.vector else ()
            r = _Resolved(
                e, shape, " or ".join(sorted(units)), "joint", "", tuple(ids), tuple(hinge)
            )
            what = ", ".join(e.joints)
        elif e.kind in ("body_pos", "body_quat", "body_upright", "body_linvel", "body_angvel"):
            bid = lookup(f"{key}.body", "body", e.body)
            shape = {"body_quat": (4,), "body_upright": ()}.get(e.kind, vec3)
            unit = {"body_pos": "m", "body_quat": "1", "body_upright": "1", "body_linvel": "m/s", "body_angvel": "rad/s"}[e.kind]  # fmt: skip
            r = _Resolved(e, shape, unit, "world", "", (bid,))
            what = e.body
        elif e.kind == "site_pos":
            r = _Resolved(e, vec3, "m", "world", "", (lookup(f"{key}.site", "site", e.site),))
            what = e.site
        elif e.kind in ("distance", "site_distance", "offset"):
            assert e.point_from is not None and e.point_to is not None
            ids = []
            for k, p in (("from", e.point_from), ("to", e.point_to)):
                ids.append(lookup(f"{key}.{k}.{p.kind}", p.kind, p.name))
                fields.add("site_xpos" if p.kind == "site" else "xpos")
            shape = vec3 if e.kind == "offset" else ()
            r = _Resolved(e, shape, "m", "world", "", tuple(ids))
            fr, to = e.point_from, e.point_to
            what = f"from {fr.kind} {fr.name} to {to.kind} {to.name}"
        else:  # sensor
            sid = lookup(f"{key}.sensor", "sensor", e.sensor)
            if int(model.sensor_needstage[sid]) == int(mujoco.mjtStage.mjSTAGE_ACC):
                raise c.fail(f"{key}.sensor", "acceleration-stage sensors (touch, accelerometer, force, torque, ...) are not current after a step; use position or velocity sensors", e.sensor)  # fmt: skip
            dim = int(model.sensor_dim[sid])
            r = _Resolved(e, (dim,) if dim > 1 else (), "sensor units", "sensor", "", (int(model.sensor_adr[sid]), dim))  # fmt: skip
            what = e.sensor
        if e.axis is not None:
            what += f", {'xyz'[e.axis]} component"
        doc = e.doc or _DOCS[e.kind].format(what=what)
        resolved.append(_Resolved(r.entry, r.shape, r.unit, r.frame, doc, r.ids, r.hinge))

    shapes = {r.entry.name: r.shape for r in resolved}
    shapes["last_action"] = (model.nu,)
    for section, conds in (("success", spec.success), ("termination", spec.termination)):
        for i, cond in enumerate(conds):
            if shapes[cond.state] != ():
                raise c.fail(f"{section}[{i}].state" if len(conds) > 1 else f"{section}.state", f"must be a scalar state, this one has shape {list(shapes[cond.state])}; add 'axis' or use a distance", cond.state, sorted(n for n, s in shapes.items() if s == ()))  # fmt: skip
    for t in spec.reward:
        if t.kind in _SCALAR_TERMS and shapes[t.state] != ():
            raise c.fail(f"reward.{t.name}.state", f"kind {t.kind} needs a scalar state, this one has shape {list(shapes[t.state])}", t.state, sorted(n for n, s in shapes.items() if s == ()))  # fmt: skip

    attrs = {
        "name": spec.name,
        "model_file": str(spec.model),
        "sim_fields": tuple(sorted(fields)),
        "success_threshold": spec.success_threshold,
        "spec": spec,
        "_resolved": tuple(resolved),
        "__doc__": spec.description or f"Task {spec.name} from {spec.path.name}.",
        "__module__": __name__,
    }
    cls_name = "".join(p.capitalize() for p in spec.name.split("_")) + "YamlTask"
    return type(cls_name, (YamlTask,), attrs)


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
            doc = yaml.safe_load(path.read_text())
            if isinstance(doc, Mapping) and isinstance(doc.get("name"), str):
                name = doc["name"]
        except (OSError, yaml.YAMLError):
            pass
        if name in task_names():
            warnings.warn(f"{path}: task name {name!r} is already registered; skipping this file", stacklevel=2)  # fmt: skip
            continue
        register_task_factory(name, lambda p=path: _load_class(p))
        out.append(name)
    return out


def _autoregister() -> None:
    register_yaml_dir(CUSTOM_DIR)
    for folder in os.environ.get("REWARDLAB_TASK_DIRS", "").split(os.pathsep):
        if folder:
            register_yaml_dir(folder)


_autoregister()

__all__ = [
    "CUSTOM_DIR",
    "OPS",
    "STATE_KINDS",
    "TERM_KINDS",
    "TRANSFORMS",
    "YamlTask",
    "YamlTaskConfig",
    "YamlTaskError",
    "YamlTaskSpec",
    "build_yaml_task",
    "load_yaml_task_spec",
    "register_yaml_dir",
    "register_yaml_task",
]
