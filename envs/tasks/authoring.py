"""Task authoring: the building blocks robot tasks are made of, for Python task modules and YAML.

As Isaac Lab's event and action terms and MuJoCo Playground's task modules do, a task is put
together from small, named, validated pieces instead of hand-written tensor code:

- **Reset events** (:class:`JointPositions`, :class:`FreeBodyPose`, :class:`TargetPosition`,
  :class:`BodyMass`, :class:`GeomFriction`), each drawing per-world values from the env's reset
  generator with a :class:`Uniform` or :class:`Gaussian` distribution; run by an
  :class:`EventManager`, which also keeps the per-world buffers they make (targets) for
  snapshots. Joint noise respects joint ranges (the Panda's finger slides stay in [0, 0.04] m).
- **Action maps** (:class:`ActionMap` of :class:`JointTargets` and :class:`Gripper` terms):
  ``ctrl = default_pose + scale * a`` (or ``ctrl += scale * a``) on a subset of the actuators,
  a gripper driven by one action, the other actuators held at their default control.
- **Frames** (:class:`Frame`): a named point with an offset on a body or site (a tool-centre
  point on the hand), as position and orientation state.
- **Contacts** (:class:`Contact`, :class:`Grasp`): contact and touch sensing as state, from
  MuJoCo's ``contact`` sensors (added to the model with :func:`add_contact_sensors` on an
  :class:`mujoco.MjSpec`) read from ``sensordata``: batched, no Python loop over contacts.
  ``found`` (is anything touching) is a position-stage value, current after every step;
  ``force`` (normal force, N) is an acceleration-stage value: the one of the control step's
  last physics substep.
- **Reward combinators** (:func:`tolerance`, :func:`gated`, :func:`product`, :func:`clipped`,
  :func:`scaled`): reward terms with conditions (reward lifting only once grasped), products and
  clipping, as plain ``fn(state, action) -> [N]`` functions (:mod:`rewardlab.core.reward`).

The YAML route (:mod:`rewardlab.envs.tasks.mjcf_yaml`) builds the same objects from a task file
(``reset:``, ``actions:``, ``frames:``, ``contacts:`` sections and reward ``when`` / ``clip`` /
``product``); ``docs/tasks.md`` documents both. Backends: everything here runs on the ``mujoco``
backend; on ``warp``, per-world object properties (:class:`BodyMass`, :class:`GeomFriction`) are
refused at construction; ``found`` contacts, grasps and :class:`TaskSpaceTargets` match the native
backend (tests/test_warp_backend.py walks the Franka tasks); acceleration-stage values (``force``,
touch) are not verified there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.envs.tasks.base import SimView

State = Mapping[str, torch.Tensor]
Term = Callable[..., torch.Tensor]
"""A reward term: ``fn(state, action) -> [N]``."""

Scalars = float | tuple[float, ...]
"""One number for every component, or one per component."""

# ---------------------------------------------------------------------------------------------
# Distributions


def _as_vec(x: Scalars, dim: int, what: str) -> torch.Tensor:
    """``x`` as a float64 vector of ``dim`` values (a scalar is repeated)."""
    values = (float(x),) * dim if isinstance(x, int | float) else tuple(float(v) for v in x)
    if len(values) != dim:
        raise ValueError(f"{what}: got {len(values)} values, expected 1 or {dim}")
    return torch.tensor(values, dtype=torch.float64)


@dataclass(frozen=True)
class Uniform:
    """Uniform in ``[low, high]`` per component (one number for all, or one per component)."""

    low: Scalars
    """Lower bound(s)."""
    high: Scalars
    """Upper bound(s); >= ``low``."""

    def validate(self) -> None:
        """Finite bounds with ``low <= high``."""
        lo, hi = np.atleast_1d(self.low), np.atleast_1d(self.high)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f"got low={self.low!r}, high={self.high!r}, expected finite numbers")
        if lo.size > 1 and hi.size > 1 and lo.size != hi.size:
            raise ValueError(f"low has {lo.size} values, high {hi.size}: expected the same count")
        if np.any(np.broadcast_to(lo, np.broadcast_shapes(lo.shape, hi.shape)) > hi):
            raise ValueError(f"got low={self.low!r} > high={self.high!r}, expected low <= high")

    def sample(self, gen: torch.Generator, n: int, dim: int) -> torch.Tensor:
        """``[n, dim]`` float64 draws on the generator's device."""
        key = (dim, gen.device)
        cache = self.__dict__.setdefault("_bounds", {})  # per instance (frozen: not a field)
        if key not in cache:
            lo = _as_vec(self.low, dim, "low").to(gen.device)
            cache[key] = (lo, _as_vec(self.high, dim, "high").to(gen.device) - lo)
        lo, span = cache[key]
        u = torch.rand((n, dim), generator=gen, device=gen.device, dtype=torch.float64)
        return lo + span * u


@dataclass(frozen=True)
class Gaussian:
    """Normal with ``mean`` and ``std`` per component, optionally clipped to ``[low, high]``."""

    std: Scalars
    """Standard deviation(s), >= 0."""
    mean: Scalars = 0.0
    """Mean(s)."""
    low: Scalars | None = None
    """Clip draws below this; null: no lower clip."""
    high: Scalars | None = None
    """Clip draws above this; null: no upper clip."""

    def validate(self) -> None:
        """Finite values, ``std >= 0``."""
        std = np.atleast_1d(self.std)
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError(f"std: got {self.std!r}, expected finite numbers >= 0")
        if not np.all(np.isfinite(np.atleast_1d(self.mean))):
            raise ValueError(f"mean: got {self.mean!r}, expected finite numbers")

    def sample(self, gen: torch.Generator, n: int, dim: int) -> torch.Tensor:
        """``[n, dim]`` float64 draws on the generator's device."""
        mean = _as_vec(self.mean, dim, "mean").to(gen.device)
        std = _as_vec(self.std, dim, "std").to(gen.device)
        x = mean + std * torch.randn(
            (n, dim), generator=gen, device=gen.device, dtype=torch.float64
        )
        if self.low is not None:
            x = torch.maximum(x, _as_vec(self.low, dim, "low").to(gen.device))
        if self.high is not None:
            x = torch.minimum(x, _as_vec(self.high, dim, "high").to(gen.device))
        return x


Distribution = Uniform | Gaussian
"""A per-world draw of a reset event."""

# ---------------------------------------------------------------------------------------------
# Model look-ups


_KINDS = {
    "joint": (mujoco.mjtObj.mjOBJ_JOINT, "njnt"),
    "body": (mujoco.mjtObj.mjOBJ_BODY, "nbody"),
    "site": (mujoco.mjtObj.mjOBJ_SITE, "nsite"),
    "geom": (mujoco.mjtObj.mjOBJ_GEOM, "ngeom"),
    "actuator": (mujoco.mjtObj.mjOBJ_ACTUATOR, "nu"),
    "sensor": (mujoco.mjtObj.mjOBJ_SENSOR, "nsensor"),
    "keyframe": (mujoco.mjtObj.mjOBJ_KEY, "nkey"),
}


class ModelNameError(ValueError):
    """A name the model does not have; the message lists the names it has (bounded)."""


def model_names(model: mujoco.MjModel, kind: str) -> list[str]:
    """Every named ``kind`` (joint, body, site, geom, actuator, sensor, keyframe) of the model."""
    obj, count = _KINDS[kind]
    names = (mujoco.mj_id2name(model, obj, i) for i in range(getattr(model, count)))
    return sorted(n for n in names if n)


def lookup(model: mujoco.MjModel, kind: str, name: str) -> int:
    """The id of the ``kind`` called ``name``.

    Raises:
        ModelNameError: no such name (the message lists the model's names of that kind).
    """
    i = mujoco.mj_name2id(model, _KINDS[kind][0], name)
    if i < 0:
        names = model_names(model, kind)
        listed = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        raise ModelNameError(f"got {name!r}; the model has no {kind} of this name; allowed: {listed or '(none)'}")  # fmt: skip
    return i


_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


def scalar_joints(model: mujoco.MjModel) -> list[int]:
    """Ids of every hinge and slide joint (those with one qpos value)."""
    return [j for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS]


def home_qpos(model: mujoco.MjModel, keyframe: str | None = None) -> np.ndarray:
    """``qpos`` of ``keyframe`` (by name), or the model's ``qpos0``."""
    if keyframe:
        return model.key_qpos[lookup(model, "keyframe", keyframe)].copy()
    return model.qpos0.copy()


# ---------------------------------------------------------------------------------------------
# Reset events


@dataclass(frozen=True)
class JointPositions:
    """Reset joints to their home position plus noise, kept inside the joint ranges.

    The home position is the task's (keyframe or ``qpos0``). Limited joints are clipped to their
    range after the noise (so a slide at its limit, like a closed or open finger, stays valid);
    velocities get ``velocity`` noise (zero when null).
    """

    joints: tuple[str, ...] = ()
    """Joint names (hinge or slide); empty: every hinge and slide joint of the model."""
    position: Distribution | None = None
    """Offset added to the home position (rad or m); null: exactly the home position."""
    velocity: Distribution | None = None
    """Initial joint velocity (rad/s or m/s); null: zero."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        """Resolve names against ``model``; ``home`` is the ``[nq]`` reset pose."""
        if self.joints:
            ids = [lookup(model, "joint", n) for n in self.joints]
            for n, j in zip(self.joints, ids, strict=True):
                if int(model.jnt_type[j]) not in _SCALAR_JOINTS:
                    raise ValueError(f"joints: {n!r} is a free or ball joint; expected hinge or slide joints (use FreeBodyPose for a free body)")  # fmt: skip
        else:
            ids = scalar_joints(model)
        qadr = torch.as_tensor([int(model.jnt_qposadr[j]) for j in ids], dtype=torch.long)
        vadr = torch.as_tensor([int(model.jnt_dofadr[j]) for j in ids], dtype=torch.long)
        limited = np.array([bool(model.jnt_limited[j]) for j in ids])
        rng = np.array([model.jnt_range[j] for j in ids], dtype=np.float64).reshape(-1, 2)
        lo = torch.as_tensor(np.where(limited, rng[:, 0], -np.inf))
        hi = torch.as_tensor(np.where(limited, rng[:, 1], np.inf))
        base = torch.as_tensor(home[qadr.numpy()], dtype=torch.float64)
        k = len(ids)

        def apply(sim: SimView, ids_: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            n = len(ids_)
            q = base.to(sim.qpos.device).expand(n, k)  # read-only: each use makes a new tensor
            if self.position is not None:
                q = q + self.position.sample(gen, n, k).to(q.device)
            q = torch.maximum(torch.minimum(q, hi.to(q.device)), lo.to(q.device))
            rows = ids_[:, None]
            sim.qpos[rows, qadr.to(q.device)] = q.to(sim.qpos.dtype)
            v = torch.zeros_like(q) if self.velocity is None else self.velocity.sample(gen, n, k).to(q.device)  # fmt: skip
            sim.qvel[rows, vadr.to(q.device)] = v.to(sim.qvel.dtype)

        return _BoundEvent(apply)


def _yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` (w, x, y, z) rotations by ``yaw`` ``[n]`` about the world z axis."""
    z = torch.zeros_like(yaw)
    half = yaw / 2
    return torch.stack([torch.cos(half), z, z, torch.sin(half)], -1)


# quat_mul's product table: column k of the result is a_k times b's components in this order,
# with these signs (k = x, y, z; k = w is a_w * b).
_QUAT_PERM = torch.tensor([[1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
_QUAT_SIGN = torch.tensor([[-1.0, 1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]])
_quat_consts: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``[..., 4]`` (w, x, y, z) quaternions.

    Each component is ``a_w b_. (+-) a_x b_. (+-) a_y b_. (+-) a_z b_.``, summed left to right
    (``w = a_w b_w - a_x b_x - a_y b_y - a_z b_z``, ...), computed for all four components at
    once: a sign flip and adding the negation are exact, so the values are bit for bit those of
    the component-by-component formula.
    """
    key = (b.device, b.dtype)
    consts = _quat_consts.get(key)
    if consts is None:
        consts = _quat_consts[key] = (_QUAT_PERM.to(b.device), _QUAT_SIGN.to(b.device, b.dtype))
    perm, sign = consts
    a, b = torch.broadcast_tensors(a, b)
    products = a[..., 1:, None] * b[..., perm] * sign  # [..., 3 (a_x, a_y, a_z), 4]
    return a[..., :1] * b + products[..., 0, :] + products[..., 1, :] + products[..., 2, :]


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate (the inverse of a unit quaternion) of ``[..., 4]`` quaternions (w, x, y, z)."""
    return torch.cat([q[..., :1], -q[..., 1:]], -1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[..., 3]`` by unit quaternions ``q`` ``[..., 4]`` (w, x, y, z)."""
    u = q[..., 1:]
    t = 2.0 * torch.linalg.cross(u, v, dim=-1)
    return v + q[..., :1] * t + torch.linalg.cross(u, t, dim=-1)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` ``[..., 3]`` (world) expressed in the frame of unit quaternions ``q`` ``[..., 4]``
    (w, x, y, z): the rotation by ``q``'s conjugate."""
    return quat_rotate(quat_conjugate(q), v)


@dataclass(frozen=True)
class FreeBodyPose:
    """Place a free body (an object) at its home position plus an offset, with a random yaw.

    Writes the body's free joint (position, orientation) and zeroes its velocity.
    """

    body: str
    """Body with a free joint."""
    position: Distribution | None = None
    """Offset (m, world x, y, z) added to the home position; null: the home position."""
    yaw: Distribution | None = None
    """Rotation (rad) about the world z axis applied to the home orientation; null: none."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        """Resolve the body's free joint."""
        b = lookup(model, "body", self.body)
        j = int(model.body_jntadr[b])
        if j < 0 or int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise ValueError(f"body: {self.body!r} has no free joint; expected a free body (an object with <freejoint/>)")  # fmt: skip
        qa, va = int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])
        pos0 = torch.as_tensor(home[qa : qa + 3], dtype=torch.float64)
        quat0 = torch.as_tensor(home[qa + 3 : qa + 7], dtype=torch.float64)

        def apply(sim: SimView, ids: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            n, dev = len(ids), sim.qpos.device
            pos = pos0.to(dev).expand(n, 3)  # read-only (the draws below make new tensors)
            if self.position is not None:
                pos = pos + self.position.sample(gen, n, 3).to(dev)
            quat = quat0.to(dev).expand(n, 4)
            if self.yaw is not None:
                quat = quat_mul(_yaw_quat(self.yaw.sample(gen, n, 1).to(dev)[:, 0]), quat)
            sim.qpos[ids, qa : qa + 3] = pos.to(sim.qpos.dtype)
            sim.qpos[ids, qa + 3 : qa + 7] = quat.to(sim.qpos.dtype)
            sim.qvel[ids, va : va + 6] = 0.0

        return _BoundEvent(apply)


@dataclass(frozen=True)
class TargetPosition:
    """Draw a per-world target point (a goal) at every reset, kept in a task buffer.

    The buffer ``name`` (``[N, 3]``, m, world) is what state entries of kind ``target`` read; a
    ``mocap`` body, when given, is moved there so that renders show it.
    """

    name: str
    """Buffer name (e.g. ``"goal"``)."""
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Centre (m, world) the draw is added to."""
    position: Distribution | None = None
    """Offset from ``center`` (m); null: always ``center``."""
    mocap: str | None = None
    """A mocap body to move onto the target (display only)."""
    relative_to: str | None = None
    """A buffer drawn earlier (e.g. an object's start) whose value ``center`` is added to; null:
    ``center`` is in the world."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        """Resolve the mocap body."""
        mocap = -1
        if self.mocap is not None:
            b = lookup(model, "body", self.mocap)
            mocap = int(model.body_mocapid[b])
            if mocap < 0:
                raise ValueError(f'mocap: {self.mocap!r} is not a mocap body (mocap="true")')
        center = torch.as_tensor(self.center, dtype=torch.float64)

        def apply(sim: SimView, ids: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            n, dev = len(ids), sim.qpos.device
            p = center.to(dev).repeat(n, 1)
            if self.relative_to is not None:
                p = p + buf[self.relative_to][ids].to(p)
            if self.position is not None:
                p = p + self.position.sample(gen, n, 3).to(dev)
            if self.name not in buf:
                buf[self.name] = torch.zeros(sim.qpos.shape[0], 3, dtype=torch.float64, device=dev)
            buf[self.name][ids] = p
            mp = sim.derived.get("mocap_pos")
            if mocap >= 0 and mp is not None:
                mp[ids, mocap] = p.to(mp.dtype)

        return _BoundEvent(apply, buffers=(self.name,), fields=("mocap_pos",) if mocap >= 0 else ())  # fmt: skip


@dataclass(frozen=True)
class BodyPosition:
    """Record a body's position right after the reset in a buffer (e.g. an object's start)."""

    name: str
    """Buffer name."""
    body: str
    """Body whose free-joint position is recorded (read from ``qpos``: the events before it
    placed it)."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        b = lookup(model, "body", self.body)
        j = int(model.body_jntadr[b])
        if j < 0 or int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise ValueError(f"body: {self.body!r} has no free joint")
        qa = int(model.jnt_qposadr[j])

        def apply(sim: SimView, ids: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            if self.name not in buf:
                buf[self.name] = torch.zeros(sim.qpos.shape[0], 3, dtype=torch.float64, device=sim.qpos.device)  # fmt: skip
            buf[self.name][ids] = sim.qpos[ids, qa : qa + 3].to(torch.float64)

        return _BoundEvent(apply, buffers=(self.name,))


@dataclass(frozen=True)
class BodyMass:
    """Scale bodies' masses (and inertias, by the same factor) per world at every reset."""

    bodies: tuple[str, ...]
    """Body names."""
    scale: Distribution
    """Factor times the model's mass (one draw per body per world), > 0."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        ids = torch.as_tensor([lookup(model, "body", b) for b in self.bodies], dtype=torch.long)
        mass0 = torch.as_tensor(model.body_mass[ids.numpy()].copy())
        inertia0 = torch.as_tensor(model.body_inertia[ids.numpy()].copy())

        def apply(sim: SimView, env_ids: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            s = self.scale.sample(gen, len(env_ids), len(ids)).clamp_min(1e-6)
            mass, inertia = sim.model["body_mass"], sim.model["body_inertia"]
            rows = env_ids[:, None]
            mass[rows, ids] = (mass0 * s).to(mass.dtype)
            inertia[rows, ids] = (inertia0 * s[..., None]).to(inertia.dtype)

        return _BoundEvent(apply, model_fields=("body_mass", "body_inertia"))


@dataclass(frozen=True)
class GeomFriction:
    """Scale geoms' sliding friction per world at every reset."""

    geoms: tuple[str, ...]
    """Geom names."""
    scale: Distribution
    """Factor times the model's sliding friction (one draw per geom per world), > 0."""

    def bind(self, model: mujoco.MjModel, home: np.ndarray) -> _BoundEvent:
        ids = torch.as_tensor([lookup(model, "geom", g) for g in self.geoms], dtype=torch.long)
        mu0 = torch.as_tensor(model.geom_friction[ids.numpy(), 0].copy())

        def apply(sim: SimView, env_ids: torch.Tensor, gen: torch.Generator, buf: dict[str, torch.Tensor]) -> None:  # fmt: skip
            s = self.scale.sample(gen, len(env_ids), len(ids)).clamp_min(1e-6)
            fr = sim.model["geom_friction"]
            fr[env_ids[:, None], ids, 0] = (mu0 * s).to(fr.dtype)

        return _BoundEvent(apply, model_fields=("geom_friction",))


Event = JointPositions | FreeBodyPose | TargetPosition | BodyPosition | BodyMass | GeomFriction
"""A reset event."""


@dataclass
class _BoundEvent:
    apply: Callable[[SimView, torch.Tensor, torch.Generator, dict[str, torch.Tensor]], None]
    buffers: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    model_fields: tuple[str, ...] = ()


class EventManager:
    """Runs a task's reset events in order and keeps their per-world buffers.

    Args:
        model: the compiled model.
        events: the events, applied in this order at every reset (later ones may read the
            buffers of earlier ones).
        home: ``[nq]`` reset pose (keyframe or ``qpos0``); worlds start from it, events change
            what they name.

    A task calls :meth:`reset` from its ``reset``, returns :meth:`state_dict` from its
    ``get_state_dict`` (and :meth:`load_state_dict` back), declares :attr:`sim_fields` among its
    ``sim_fields`` and :attr:`model_fields` as its ``model_fields``.
    """

    def __init__(self, model: mujoco.MjModel, events: Sequence[Event], home: np.ndarray) -> None:
        self.home = torch.as_tensor(np.asarray(home, dtype=np.float64))
        for e in events:  # distributions built in Python are checked here (YAML: when parsed)
            for f in dataclasses.fields(e):
                value = getattr(e, f.name)
                if isinstance(value, Uniform | Gaussian):
                    try:
                        value.validate()
                    except ValueError as err:
                        raise ValueError(f"{type(e).__name__}.{f.name}: {err}") from None
        self._bound = [e.bind(model, np.asarray(home)) for e in events]
        self.buffers: dict[str, torch.Tensor] = {}
        """Per-world buffers ``[N, ...]`` (float64) the events wrote, by name."""
        self.buffer_names: tuple[str, ...] = tuple(n for b in self._bound for n in b.buffers)
        """Names of the buffers the events make."""
        self.sim_fields: tuple[str, ...] = tuple(sorted({f for b in self._bound for f in b.fields}))  # fmt: skip
        """Derived fields the events write (``mocap_pos`` for targets shown in renders)."""
        self.model_fields: tuple[str, ...] = tuple(sorted({f for b in self._bound for f in b.model_fields}))  # fmt: skip
        """Model fields the events give per-world values (object properties)."""

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        """Start ``env_ids`` at the home pose (zero velocity), then apply every event."""
        sim.qpos[env_ids] = self.home.to(sim.qpos)
        sim.qvel[env_ids] = 0.0
        for b in self._bound:
            b.apply(sim, env_ids, gen, self.buffers)

    def state_dict(self) -> dict[str, Any]:
        """The buffers (CPU copies), for exact resume."""
        return {k: v.cpu().clone() for k, v in self.buffers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on the device of the current buffers)."""
        for k, v in state.items():
            dev = self.buffers[k].device if k in self.buffers else torch.device("cpu")
            self.buffers[k] = torch.as_tensor(v).to(dev).clone()


# ---------------------------------------------------------------------------------------------
# Action maps


@dataclass(frozen=True)
class JointTargets:
    """Position actuators driven as ``default + scale * a`` (or ``ctrl + scale * a``).

    ``a`` is the policy's action in [-1, 1]; the control is clipped to the actuator's range.
    """

    actuators: tuple[str, ...] = ()
    """Actuator names, in action order; empty: every actuator no other term of the map drives."""
    scale: Scalars = 0.5
    """Control units (rad for joint position servos) per unit action: one, or one per actuator."""
    relative: bool = False
    """``ctrl = ctrl + scale * a`` (a velocity-like command, as Playground's Panda tasks) instead
    of ``ctrl = default + scale * a``."""


@dataclass(frozen=True)
class Gripper:
    """One action drives a gripper actuator between ``open`` and ``closed``."""

    actuator: str
    """Actuator name."""
    open: float
    """Control at action -1 (e.g. the finger slide target of an open hand, m)."""
    closed: float
    """Control at action +1."""
    binary: bool = False
    """Snap to ``open`` (a <= threshold) or ``closed`` (a > threshold) instead of interpolating
    (Isaac Lab's ``BinaryJointPositionAction``)."""
    threshold: float = 0.0
    """Action above which a binary gripper closes (e.g. 0.5: an untrained policy, whose actions
    centre on 0, mostly keeps the hand open)."""


@dataclass(frozen=True)
class TaskSpaceTargets:
    """Three actions move a frame (the TCP) in the world; the arm's joint servos follow by
    differential inverse kinematics (Isaac Lab's ``DifferentialIKController``, relative mode).

    Each control step the frame's goal is its position plus ``scale * a`` (clipped to the
    ``low``..``high`` box); one damped-least-squares step ``dq = J^T (J J^T + d^2 I)^-1 e`` on
    the position error (and the error to the frame's orientation in the default pose, when
    ``hold_orientation``) gives the servos' targets ``q + dq + sag``, where ``sag`` is the
    gravity (bias) torque over each servo's stiffness, so an action of 0 holds the arm where it
    is. ``J`` is computed from the joints' world axes and anchors: add ``xaxis``, ``xanchor``
    and ``qfrc_bias`` to the task's ``sim_fields``; exact for hinge joints on the frame body's
    chain.
    """

    frame: Frame
    """The frame moved (e.g. the TCP)."""
    actuators: tuple[str, ...]
    """Position servos of the chain's hinge joints (each on a joint that moves the frame)."""
    scale: float = 0.02
    """Metres per unit action per control step."""
    low: tuple[float, float, float] | None = None
    """Lower corner (m, world) of the box the frame's goal is clipped to; null: none."""
    high: tuple[float, float, float] | None = None
    """Upper corner of that box."""
    hold_orientation: bool = True
    """Also steer the frame's orientation back to its orientation in the default pose."""
    damping: float = 0.05
    """Damping ``d`` of the least-squares step."""
    max_offset: float = 0.3
    """Largest difference (rad) between a servo's target and its joint's position."""

    SIM_FIELDS = ("xaxis", "xanchor", "qfrc_bias")
    """Derived fields the term reads (besides the frame's)."""


@dataclass(frozen=True)
class MocapDelta:
    """Three actions move a mocap body (e.g. one welded to a hand, as MetaWorld's Sawyer):
    ``mocap_pos += scale * a``, clipped to the ``low``..``high`` box; ``quat`` (w, x, y, z), when
    given, is written as its orientation every step. The task lists ``mocap_pos`` (and
    ``mocap_quat``) in its ``sim_fields``."""

    body: str
    """A mocap body (``mocap="true"``)."""
    scale: float = 0.01
    """Metres per unit action per control step."""
    low: tuple[float, float, float] | None = None
    """Lower corner (m, world) of the box the body is kept in; null: none."""
    high: tuple[float, float, float] | None = None
    """Upper corner of that box."""
    quat: tuple[float, float, float, float] | None = None
    """Orientation written every step; null: left as it is."""


@dataclass(frozen=True)
class ActionMap:
    """How the policy's actions become actuator controls (Isaac Lab's action terms).

    The terms are concatenated in order: a :class:`JointTargets` term takes one action per
    actuator, a :class:`Gripper` one action. Actuators no term names hold ``hold`` (or their
    default control).
    """

    terms: tuple[JointTargets | Gripper | TaskSpaceTargets | MocapDelta, ...]
    """Action terms, in action order."""
    hold: Mapping[str, float] = field(default_factory=dict)
    """Control of actuators no term drives, by name; others hold their default control."""

    def bind(self, model: mujoco.MjModel, default_ctrl: np.ndarray | None = None) -> BoundActionMap:
        """Resolve names; ``default_ctrl`` ``[nu]`` (e.g. a keyframe's ``ctrl``) is the pose
        ``default + scale * a`` is taken about (default: :func:`default_controls`)."""
        return BoundActionMap(self, model, default_ctrl)


def default_controls(model: mujoco.MjModel, qpos: np.ndarray | None = None) -> np.ndarray:
    """Each actuator's control that holds ``qpos`` (default ``qpos0``): a position servo on a
    joint gets the joint's position, every other actuator 0; clipped to the control range."""
    qpos = model.qpos0 if qpos is None else qpos
    ctrl = np.zeros(model.nu)
    for i in range(model.nu):
        servo = int(model.actuator_biastype[i]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
        if servo and int(model.actuator_trntype[i]) == int(mujoco.mjtTrn.mjTRN_JOINT):
            j = int(model.actuator_trnid[i, 0])
            if int(model.jnt_type[j]) in _SCALAR_JOINTS:
                ctrl[i] = qpos[int(model.jnt_qposadr[j])]
        if model.actuator_ctrllimited[i]:
            ctrl[i] = np.clip(ctrl[i], *model.actuator_ctrlrange[i])
    return ctrl


class BoundActionMap:
    """An :class:`ActionMap` resolved against a model (see :meth:`apply`)."""

    def __init__(self, spec: ActionMap, model: mujoco.MjModel, default_ctrl: np.ndarray | None) -> None:  # fmt: skip
        nu = model.nu
        default = default_controls(model) if default_ctrl is None else np.asarray(default_ctrl, dtype=np.float64)  # fmt: skip
        if default.shape != (nu,):
            raise ValueError(f"default_ctrl: got shape {list(default.shape)}, expected [{nu}]")
        named = {lookup(model, "actuator", t.actuator) for t in spec.terms if isinstance(t, Gripper)}  # fmt: skip
        for t in spec.terms:
            if isinstance(t, JointTargets | TaskSpaceTargets):
                named |= {lookup(model, "actuator", a) for a in t.actuators}
        lo, hi = model.actuator_ctrlrange.T.copy()
        limited = model.actuator_ctrllimited.astype(bool)
        lo[~limited], hi[~limited] = -np.inf, np.inf
        self.spec = spec
        self.nu = nu
        self.lo = torch.as_tensor(lo)
        self.hi = torch.as_tensor(hi)
        self.default = torch.as_tensor(default)
        hold = default.copy()
        for name, v in spec.hold.items():
            hold[lookup(model, "actuator", name)] = float(v)
        self.hold = torch.as_tensor(hold)
        ids: list[int] = []
        scale: list[float] = []
        kinds: list[str] = []
        labels: list[str] = []
        grip: list[tuple[int, float, float, bool, float]] = []
        used: set[int] = set()
        self._task_space: list[_BoundTaskSpace | _BoundMocap] = []
        for t in spec.terms:
            if isinstance(t, MocapDelta):
                self._task_space.append(_BoundMocap(t, model, len(ids)))
                for axis in "xyz":
                    ids.append(-1)
                    scale.append(0.0)
                    kinds.append("mocap")
                    labels.append(f"{t.body}_{axis}")
                continue
            if isinstance(t, TaskSpaceTargets):
                acts = [lookup(model, "actuator", a) for a in t.actuators]
                for i in acts:
                    if i in used:
                        raise ValueError(f"actuator {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)!r} is driven by two terms")  # fmt: skip
                    used.add(i)
                self._task_space.append(_BoundTaskSpace(t, model, acts, default, len(ids)))
                for axis in "xyz":
                    ids.append(-1)
                    scale.append(0.0)
                    kinds.append("task_space")
                    labels.append(f"{t.frame.name}_{axis}")
                continue
            if isinstance(t, JointTargets):
                acts = [lookup(model, "actuator", a) for a in t.actuators] if t.actuators else [i for i in range(nu) if i not in named]  # fmt: skip
                if not acts:
                    raise ValueError("JointTargets: no actuator left to drive (every actuator is named by another term)")  # fmt: skip
                s = _as_vec(t.scale, len(acts), "scale").tolist()
                for i, si in zip(acts, s, strict=True):
                    if i in used:
                        raise ValueError(f"actuator {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)!r} is driven by two terms")  # fmt: skip
                    used.add(i)
                    ids.append(i)
                    scale.append(si)
                    kinds.append("relative" if t.relative else "absolute")
                    labels.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f"actuator{i}")  # fmt: skip
            else:
                i = lookup(model, "actuator", t.actuator)
                if i in used:
                    raise ValueError(f"actuator {t.actuator!r} is driven by two terms")
                used.add(i)
                ids.append(i)
                scale.append(0.0)
                kinds.append("gripper")
                labels.append(t.actuator)
                grip.append((len(ids) - 1, t.open, t.closed, t.binary, t.threshold))
        self.action_dim = len(ids)
        """Length of the policy's action vector."""
        self.labels = tuple(labels)
        """Actuator driven by each action element (``<frame>_x|y|z`` for task-space actions)."""
        self.needs_sim = bool(self._task_space)
        """Whether :meth:`apply` needs the physics view (task-space terms)."""
        cols = [c for c, i in enumerate(ids) if i >= 0]
        self._cols = torch.as_tensor(cols, dtype=torch.long)
        self.ids = torch.as_tensor([ids[c] for c in cols], dtype=torch.long)
        self.scale = torch.as_tensor([scale[c] for c in cols], dtype=torch.float64)
        self.relative = torch.as_tensor([kinds[c] == "relative" for c in cols])
        self.absolute = torch.as_tensor([kinds[c] == "absolute" for c in cols])
        self._grip = [(cols.index(c), o, k, b, th) for c, o, k, b, th in grip]
        self.kinds = tuple(kinds)
        held = [i for i in range(nu) if i not in used]
        self.held = torch.as_tensor(held, dtype=torch.long)
        self._consts: dict[tuple[torch.device, torch.dtype], dict[str, Any]] = {}
        """Per (device, dtype): the constants :meth:`to_ctrl` reads every step, indexed once."""

    def _constants(self, dev: torch.device, dt: torch.dtype) -> dict[str, Any]:
        """:meth:`to_ctrl`'s per-actuator constants on ``dev`` in ``dt`` (made on first use)."""
        c = self._consts.get((dev, dt))
        if c is None:
            ids = self.ids.to(dev)
            cols = self._cols.tolist()
            c = self._consts[(dev, dt)] = {
                "ids": ids,
                # the action columns (all of them, in order: a plain view)
                "cols": slice(None) if cols == list(range(self.action_dim)) else self._cols.to(dev),
                # every actuator, in order: the new controls are the whole ctrl row
                "all": self.ids.tolist() == list(range(self.nu)) and not self._task_space,
                "any_relative": bool(self.relative.any()),
                "relative": self.relative.to(dev),
                "scale": self.scale.to(dev, dt),
                "default": self.default.to(dev, dt)[ids],
                "hi": self.hi.to(dev, dt)[ids],
                "lo": self.lo.to(dev, dt)[ids],
            }
        return c

    def to_ctrl(self, ctrl: torch.Tensor, action: torch.Tensor, sim: SimView | None = None) -> torch.Tensor:  # fmt: skip
        """The controls ``[N, nu]`` for ``action`` ``[N, action_dim]`` given the current ``ctrl``
        (and the physics ``sim``, which task-space terms need)."""
        dt, dev = ctrl.dtype, ctrl.device
        c = self._constants(dev, dt)
        whole = c["all"] and not len(self.held)
        out = ctrl if whole else ctrl.clone()  # whole: ctrl is only read, new becomes out
        for ts in self._task_space:
            if sim is None:
                raise ValueError("a task-space action term needs the physics view (sim)")
            ts.write(out, action[:, ts.col : ts.col + 3].to(dt), sim)
        cols = c["cols"]
        a = (action[:, cols] if isinstance(cols, slice) else action[:, cols.to(action.device)]).to(dt)  # fmt: skip
        scale, ids = c["scale"], c["ids"]
        if c["any_relative"]:
            new = torch.where(c["relative"], ctrl[:, ids] + scale * a, c["default"] + scale * a)
        else:  # what torch.where picks when no term is relative
            new = c["default"] + scale * a
        for col, open_, closed, binary, threshold in self._grip:
            g = a[:, col]
            frac = (g > threshold).to(dt) if binary else (g + 1.0) / 2.0
            new[:, col] = open_ + frac * (closed - open_)
        new = torch.maximum(torch.minimum(new, c["hi"]), c["lo"])
        if whole:
            return new
        out[:, ids] = new
        if len(self.held):
            held = self.held.to(dev)
            out[:, held] = self.hold.to(dev, dt)[held]
        return out

    def apply(self, ctrl: torch.Tensor, action: torch.Tensor, sim: SimView | None = None) -> None:
        """Write the controls for ``action`` ``[N, action_dim]`` into ``ctrl`` ``[N, nu]`` (live)."""
        ctrl.copy_(self.to_ctrl(ctrl, action, sim))

    def reset(self, ctrl: torch.Tensor, env_ids: torch.Tensor) -> None:
        """Reset worlds' controls to the default pose (what ``relative`` terms start from) and
        the held actuators to their hold values."""
        c = self.default.to(ctrl.device, ctrl.dtype)
        if len(self.held):
            c = c.clone()
            held = self.held.to(ctrl.device)
            c[held] = self.hold.to(ctrl.device, ctrl.dtype)[held]
        ctrl[env_ids] = c  # one row for every world

    def describe(self) -> dict[str, Any]:
        """The map as plain data (for an exported policy's sidecar)."""
        return {
            "scaling": "per element: absolute: ctrl = default + scale * a; relative: ctrl += scale * a; "
            "gripper: ctrl = open + (a + 1) / 2 * (closed - open); clipped to ctrl_range; "
            "actuators not driven hold 'hold'",
            "actuators": list(self.labels),
            "kinds": list(self.kinds),
            "scale": self.scale.tolist(),
            "default": self.default.tolist(),
            "gripper": [
                {"index": int(self._cols[c]), "open": o, "closed": k, "binary": b, "threshold": th}
                for c, o, k, b, th in self._grip
            ],
            "task_space": [ts.describe() for ts in self._task_space],
            "held": self.held.tolist(),
            "hold": self.hold.tolist(),
        }


class _BoundMocap:
    """A :class:`MocapDelta` term resolved against a model."""

    def __init__(self, spec: MocapDelta, model: mujoco.MjModel, col: int) -> None:
        self.spec, self.col = spec, col
        self.mocap = int(model.body_mocapid[lookup(model, "body", spec.body)])
        if self.mocap < 0:
            raise ValueError(f'MocapDelta: {spec.body!r} is not a mocap body (mocap="true")')

    def write(self, ctrl: torch.Tensor, a: torch.Tensor, sim: SimView) -> None:
        """Move the mocap body (``sim.mocap_pos`` is live state); controls are untouched."""
        pos = sim.mocap_pos
        p = pos[:, self.mocap] + self.spec.scale * a.clamp(-1.0, 1.0).to(pos.dtype)
        if self.spec.low is not None:
            p = torch.maximum(p, torch.as_tensor(self.spec.low, dtype=pos.dtype, device=pos.device))
        if self.spec.high is not None:
            p = torch.minimum(
                p, torch.as_tensor(self.spec.high, dtype=pos.dtype, device=pos.device)
            )
        pos[:, self.mocap] = p
        if self.spec.quat is not None:
            q = sim.mocap_quat
            q[:, self.mocap] = torch.as_tensor(self.spec.quat, dtype=q.dtype, device=q.device)

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return {"mocap_body": s.body, "scale_m": s.scale, "low": s.low, "high": s.high, "quat": s.quat}  # fmt: skip


class _BoundTaskSpace:
    """A :class:`TaskSpaceTargets` term resolved against a model."""

    def __init__(self, spec: TaskSpaceTargets, model: mujoco.MjModel, acts: list[int], default_ctrl: np.ndarray, col: int) -> None:  # fmt: skip
        self.spec, self.col = spec, col
        self.frame = spec.frame.bind(model)
        joints = []
        for i in acts:
            j = int(model.actuator_trnid[i, 0])
            if int(model.actuator_trntype[i]) != int(mujoco.mjtTrn.mjTRN_JOINT) or int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_HINGE):  # fmt: skip
                raise ValueError(f"TaskSpaceTargets: actuator {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)!r} does not drive a hinge joint")  # fmt: skip
            joints.append(j)
        self.acts = torch.as_tensor(acts, dtype=torch.long)
        self.joints = torch.as_tensor(joints, dtype=torch.long)
        self.qadr = torch.as_tensor([int(model.jnt_qposadr[j]) for j in joints], dtype=torch.long)
        self.dadr = torch.as_tensor([int(model.jnt_dofadr[j]) for j in joints], dtype=torch.long)
        self.kp = torch.as_tensor(model.actuator_gainprm[acts, 0].copy())
        lo, hi = model.actuator_ctrlrange[acts].T.copy()
        self.lo, self.hi = torch.as_tensor(lo), torch.as_tensor(hi)
        # The frame's orientation in the default pose (the servos' default targets).
        d = mujoco.MjData(model)
        d.qpos[:] = model.qpos0
        d.qpos[self.qadr.numpy()] = np.asarray(default_ctrl)[acts]
        mujoco.mj_kinematics(model, d)
        rot = (
            d.xmat[self.frame.index] if self.frame.kind == "body" else d.site_xmat[self.frame.index]
        )
        self.rot_des = torch.as_tensor(rot.reshape(3, 3).copy())
        self.box_lo = None if spec.low is None else torch.as_tensor(spec.low, dtype=torch.float64)
        self.box_hi = None if spec.high is None else torch.as_tensor(spec.high, dtype=torch.float64)

    def write(self, ctrl: torch.Tensor, a: torch.Tensor, sim: SimView) -> None:
        """Add one damped-least-squares step to the servos' targets in ``ctrl`` (in place)."""
        dt, dev = ctrl.dtype, ctrl.device
        tcp = self.frame.pos(sim).to(dt)
        goal = tcp + self.spec.scale * a.clamp(-1.0, 1.0)
        if self.box_lo is not None:
            goal = torch.maximum(goal, self.box_lo.to(dev, dt))
        if self.box_hi is not None:
            goal = torch.minimum(goal, self.box_hi.to(dev, dt))
        j = self.joints.to(dev)
        axis = sim.xaxis[:, j].to(dt)  # [N, k, 3]
        anchor = sim.xanchor[:, j].to(dt)
        jp = torch.linalg.cross(axis, tcp[:, None, :] - anchor, dim=-1).transpose(1, 2)  # [N, 3, k]
        err = goal - tcp
        jac = jp
        if self.spec.hold_orientation:
            q = self.frame.quat(sim).to(dt)
            rot = _quat_to_mat(q)  # [N, 3, 3]
            want = self.rot_des.to(dev, dt).expand_as(rot)
            rerr = 0.5 * torch.linalg.cross(rot, want, dim=1).sum(-1)  # sum_i R[:, i] x Rd[:, i]
            err = torch.cat([err, rerr], -1)
            jac = torch.cat([jp, axis.transpose(1, 2)], 1)  # [N, 6, k]
        eye = torch.eye(jac.shape[1], dtype=dt, device=dev)
        jjt = jac @ jac.transpose(1, 2) + self.spec.damping**2 * eye
        dq = (jac.transpose(1, 2) @ torch.linalg.solve(jjt, err[..., None]))[..., 0]
        acts = self.acts.to(dev)
        q_now = sim.qpos[:, self.qadr.to(dev)].to(dt)
        sag = sim.qfrc_bias[:, self.dadr.to(dev)].to(dt) / self.kp.to(dev, dt)
        target = q_now + dq + sag
        m = self.spec.max_offset
        target = torch.minimum(torch.maximum(target, q_now - m), q_now + m)
        ctrl[:, acts] = torch.minimum(torch.maximum(target, self.lo.to(dev, dt)), self.hi.to(dev, dt))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return {"frame": s.frame.name, "actuators": list(s.actuators), "scale_m": s.scale, "low": s.low, "high": s.high, "hold_orientation": s.hold_orientation, "damping": s.damping}  # fmt: skip


def _quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """``[N, 3, 3]`` rotation matrices of unit quaternions ``[N, 4]`` (w, x, y, z)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


# ---------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    """A named point with an offset on a body or a site (e.g. a tool-centre point on the hand).

    Its position is ``p + R @ offset`` with ``p``, ``R`` the body's (or site's) position and
    orientation; its orientation is the body's (site's).
    """

    name: str
    """Frame name (state entries ``<name>_pos``, ``<name>_quat`` by convention)."""
    body: str | None = None
    """Body the frame is attached to (exactly one of body and site)."""
    site: str | None = None
    """Site the frame is attached to."""
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Offset (m) in the body's (site's) own frame."""

    def validate(self) -> None:
        """Exactly one of ``body`` and ``site``."""
        if (self.body is None) == (self.site is None):
            raise ValueError("expected exactly one of 'body' and 'site'")

    @property
    def sim_fields(self) -> tuple[str, ...]:
        """The derived fields the frame reads."""
        return ("xpos", "xquat") if self.body is not None else ("site_xpos", "site_xquat")

    def bind(self, model: mujoco.MjModel) -> BoundFrame:
        """Resolve the body or site."""
        self.validate()
        kind = "body" if self.body is not None else "site"
        return BoundFrame(self, kind, lookup(model, kind, str(self.body or self.site)))


@dataclass(frozen=True)
class BoundFrame:
    """A :class:`Frame` resolved against a model."""

    frame: Frame
    kind: str
    index: int

    def quat(self, sim: SimView) -> torch.Tensor:
        """``[N, 4]`` (w, x, y, z) orientation in the world."""
        return (sim.xquat if self.kind == "body" else sim.site_xquat)[:, self.index]

    def pos(self, sim: SimView) -> torch.Tensor:
        """``[N, 3]`` position (m, world)."""
        p = (sim.xpos if self.kind == "body" else sim.site_xpos)[:, self.index]
        if not any(self.frame.offset):
            return p
        off = torch.as_tensor(self.frame.offset, dtype=p.dtype, device=p.device).expand_as(p)
        return p + quat_rotate(self.quat(sim).to(p.dtype), off)


# ---------------------------------------------------------------------------------------------
# Contacts


CONTACT_DATA = ("found", "force")
"""What a :class:`Contact` reports: ``found`` (1 if touching, else 0; current after every
step) or ``force`` (total normal force in N, of the control step's last physics substep)."""

_CONTACT_BITS = {"found": 1, "force": 2}
_REDUCE_NETFORCE = 3
_OBJ = {"geom": mujoco.mjtObj.mjOBJ_GEOM, "body": mujoco.mjtObj.mjOBJ_BODY, "subtree": mujoco.mjtObj.mjOBJ_XBODY}  # fmt: skip


@dataclass(frozen=True)
class Contact:
    """Contact between two sets of geoms as state (MuJoCo's ``contact`` sensor).

    Each side is a geom, a body (its geoms) or a subtree (the body and its descendants); the
    second side may be left out (anything). E.g. a foot on the floor:
    ``Contact("foot_fl", body1="foot_fl", geom2="floor")``; a finger on a cube:
    ``Contact("left_touch", geom1="left_finger_pad", body2="cube")``.
    """

    name: str
    """State-facing name; the sensor is called ``contact_<name>``."""
    geom1: str | None = None
    """First side: a geom (exactly one of geom1, body1, subtree1)."""
    body1: str | None = None
    """First side: a body's geoms."""
    subtree1: str | None = None
    """First side: the geoms of a body and its descendants."""
    geom2: str | None = None
    """Second side: a geom (at most one of geom2, body2, subtree2; none: anything)."""
    body2: str | None = None
    """Second side: a body's geoms."""
    subtree2: str | None = None
    """Second side: a subtree's geoms."""
    data: str = "found"
    """One of :data:`CONTACT_DATA`."""

    def validate(self) -> None:
        """One first side, at most one second side, a known ``data``."""
        first = [k for k in ("geom1", "body1", "subtree1") if getattr(self, k) is not None]
        second = [k for k in ("geom2", "body2", "subtree2") if getattr(self, k) is not None]
        if len(first) != 1:
            raise ValueError("expected exactly one of geom1, body1, subtree1 (the first side)")
        if len(second) > 1:
            raise ValueError("expected at most one of geom2, body2, subtree2 (the second side)")
        if self.data not in CONTACT_DATA:
            raise ValueError(f"data: got {self.data!r}, expected one of {', '.join(CONTACT_DATA)}")

    @property
    def sensor_name(self) -> str:
        """Name of the MuJoCo sensor this contact adds."""
        return f"contact_{self.name}"

    def _side(self, i: int) -> tuple[mujoco.mjtObj, str]:
        for kind in ("geom", "body", "subtree"):
            v = getattr(self, f"{kind}{i}")
            if v is not None:
                return _OBJ[kind], v
        return mujoco.mjtObj.mjOBJ_UNKNOWN, ""

    def bind(self, model: mujoco.MjModel) -> BoundContact:
        """The sensor's address in ``sensordata`` (it must have been added:
        :func:`add_contact_sensors`)."""
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, self.sensor_name)
        if i < 0:
            raise ValueError(f"contact {self.name!r}: the model has no sensor {self.sensor_name!r}; add it with add_contact_sensors(spec, contacts) before compiling")  # fmt: skip
        return BoundContact(self, int(model.sensor_adr[i]))


@dataclass(frozen=True)
class BoundContact:
    """A :class:`Contact` resolved to its ``sensordata`` address."""

    contact: Contact
    adr: int

    def value(self, sim: SimView) -> torch.Tensor:
        """``[N]``: 1.0 / 0.0 (``found``) or the total normal force in N (``force``)."""
        if self.contact.data == "found":
            return (sim.sensordata[:, self.adr] > 0).to(sim.sensordata.dtype)
        return torch.linalg.vector_norm(sim.sensordata[:, self.adr + 1 : self.adr + 4], dim=-1)


class ContactGroup:
    """Several bound contacts read as one ``[N, k]`` tensor.

    ``value(sim)`` equals ``torch.stack([c.value(sim) for c in contacts], -1)`` exactly; when
    every contact is a ``found`` sensor it is one gather (a slice when the sensors are adjacent)
    instead of ``3 k + 1`` small tensor ops per read.

    Args:
        contacts: the bound contacts, in column order.
    """

    def __init__(self, contacts: Sequence[BoundContact]) -> None:
        self.contacts = tuple(contacts)
        """The contacts, one column each."""
        adr = [c.adr for c in self.contacts]
        found = bool(adr) and all(c.contact.data == "found" for c in self.contacts)
        self._cols: slice | torch.Tensor | None = None
        if found:
            adjacent = adr == list(range(adr[0], adr[0] + len(adr)))
            self._cols = slice(adr[0], adr[0] + len(adr)) if adjacent else torch.as_tensor(adr)

    def value(self, sim: SimView) -> torch.Tensor:
        """``[N, k]``: each contact's :meth:`BoundContact.value`, in order."""
        data = sim.sensordata
        if isinstance(self._cols, slice):
            return (data[:, self._cols] > 0).to(data.dtype)
        if self._cols is not None:
            if self._cols.device != data.device:
                self._cols = self._cols.to(data.device)
            return (data[:, self._cols] > 0).to(data.dtype)
        return torch.stack([c.value(sim) for c in self.contacts], -1)


def add_contact_sensors(spec: mujoco.MjSpec, contacts: Sequence[Contact]) -> None:
    """Add one MuJoCo ``contact`` sensor per contact to ``spec`` (before compiling).

    ``found`` sensors report the number of matching contacts (position stage); ``force`` sensors
    the net contact force in the contact frame (normal first; acceleration stage).

    Raises:
        ValueError: an invalid contact, or a name the spec does not have.
    """
    for c in contacts:
        c.validate()
        objtype, objname = c._side(1)
        reftype, refname = c._side(2)
        for t, n in ((objtype, objname), (reftype, refname)):
            if not n:
                continue
            found = spec.geom(n) if t == mujoco.mjtObj.mjOBJ_GEOM else spec.body(n)
            if found is None:
                what = "geom" if t == mujoco.mjtObj.mjOBJ_GEOM else "body"
                raise ValueError(f"contact {c.name!r}: the model has no {what} {n!r}")
        bits = _CONTACT_BITS[c.data] | (1 if c.data == "force" else 0)
        reduce = _REDUCE_NETFORCE if c.data == "force" else 1  # netforce / mindist
        spec.add_sensor(
            name=c.sensor_name,
            type=mujoco.mjtSensor.mjSENS_CONTACT,
            objtype=objtype,
            objname=objname,
            reftype=reftype,
            refname=refname,
            intprm=[bits, reduce, 1],
        )


@dataclass(frozen=True)
class Grasp:
    """Grasp detection: every finger touches the object (each a ``found`` :class:`Contact`).

    ``Grasp("grasped", fingers=("left_finger_pad", "right_finger_pad"), body="cube")`` adds the
    contacts ``grasped_0``, ``grasped_1`` and reads 1.0 when both touch the cube.
    """

    name: str
    """State-facing name."""
    fingers: tuple[str, ...]
    """Finger geoms (at least two for a pinch grasp)."""
    body: str
    """The object's body."""

    def contacts(self) -> tuple[Contact, ...]:
        """One ``found`` contact per finger."""
        return tuple(Contact(f"{self.name}_{i}", geom1=g, body2=self.body) for i, g in enumerate(self.fingers))  # fmt: skip

    def bind(self, model: mujoco.MjModel) -> BoundGrasp:
        """The finger contacts' sensors."""
        if not self.fingers:
            raise ValueError(f"grasp {self.name!r}: fingers: expected at least one finger geom")
        return BoundGrasp(self, tuple(c.bind(model) for c in self.contacts()))


@dataclass(frozen=True)
class BoundGrasp:
    """A :class:`Grasp` resolved to its contacts."""

    grasp: Grasp
    fingers: tuple[BoundContact, ...]

    def value(self, sim: SimView) -> torch.Tensor:
        """``[N]`` 1.0 when every finger touches the object, else 0.0."""
        out = self.fingers[0].value(sim)
        for f in self.fingers[1:]:
            out = out * f.value(sim)
        return out

    def touching(self, sim: SimView) -> torch.Tensor:
        """``[N, fingers]`` 1.0 where that finger touches the object."""
        return torch.stack([f.value(sim) for f in self.fingers], -1)


# ---------------------------------------------------------------------------------------------
# Reward combinators (terms are fn(state, action) -> [N])


def state_value(name: str) -> Term:
    """The scalar state entry ``name`` as a term."""

    def term(state: State, action: torch.Tensor) -> torch.Tensor:
        return state[name]

    term.__name__ = name
    return term


def tolerance(name: str, scale: float, kind: str = "tanh") -> Term:
    """A reward in (0, 1] that is 1 where the scalar state ``name`` (a distance, m) is 0:
    ``1 - tanh(x / scale)`` (``kind="tanh"``, Playground's kernel) or ``exp(-(x / scale)^2)``
    (``"gaussian"``)."""
    if not scale > 0:
        raise ValueError(f"scale: got {scale!r}, expected a number > 0")
    if kind not in ("tanh", "gaussian"):
        raise ValueError(f"kind: got {kind!r}, expected tanh or gaussian")

    def term(state: State, action: torch.Tensor) -> torch.Tensor:
        x = state[name] / scale
        return 1.0 - torch.tanh(x) if kind == "tanh" else torch.exp(-x * x)

    term.__name__ = f"tolerance_{name}"
    return term


Condition = Callable[[State], torch.Tensor]
"""``cond(state) -> [N]`` bool (or 0/1 float)."""


def above(name: str, value: float) -> Condition:
    """``state[name] > value``."""
    return lambda s: s[name] > value


def below(name: str, value: float) -> Condition:
    """``state[name] < value``."""
    return lambda s: s[name] < value


def gated(term: Term, *conditions: Condition) -> Term:
    """``term`` where every condition holds, else 0 (e.g. reward lifting only once grasped)."""

    def out(state: State, action: torch.Tensor) -> torch.Tensor:
        x = term(state, action)
        for c in conditions:
            x = x * c(state).to(x.dtype)
        return x

    out.__name__ = f"gated_{getattr(term, '__name__', 'term')}"
    return out


def product(*terms: Term) -> Term:
    """The elementwise product of terms."""
    if not terms:
        raise ValueError("product: expected at least one term")

    def out(state: State, action: torch.Tensor) -> torch.Tensor:
        x = terms[0](state, action)
        for t in terms[1:]:
            x = x * t(state, action)
        return x

    out.__name__ = "product_" + "_".join(getattr(t, "__name__", "term") for t in terms)
    return out


def clipped(term: Term, low: float = -math.inf, high: float = math.inf) -> Term:
    """``term`` clipped to ``[low, high]``."""
    if low > high:
        raise ValueError(f"clip: got [{low}, {high}], expected low <= high")

    def out(state: State, action: torch.Tensor) -> torch.Tensor:
        return term(state, action).clamp(low, high)

    out.__name__ = f"clipped_{getattr(term, '__name__', 'term')}"
    return out


def scaled(term: Term, factor: float) -> Term:
    """``factor * term``."""

    def out(state: State, action: torch.Tensor) -> torch.Tensor:
        return factor * term(state, action)

    out.__name__ = f"scaled_{getattr(term, '__name__', 'term')}"
    return out


__all__ = [
    "CONTACT_DATA",
    "ActionMap",
    "BodyMass",
    "BodyPosition",
    "BoundActionMap",
    "BoundContact",
    "ContactGroup",
    "BoundFrame",
    "BoundGrasp",
    "Contact",
    "Distribution",
    "Event",
    "EventManager",
    "FreeBodyPose",
    "Frame",
    "Gaussian",
    "GeomFriction",
    "Grasp",
    "Gripper",
    "JointPositions",
    "JointTargets",
    "MocapDelta",
    "ModelNameError",
    "TargetPosition",
    "TaskSpaceTargets",
    "Uniform",
    "above",
    "add_contact_sensors",
    "below",
    "clipped",
    "default_controls",
    "gated",
    "home_qpos",
    "lookup",
    "model_names",
    "product",
    "quat_conjugate",
    "quat_mul",
    "quat_rotate",
    "quat_rotate_inverse",
    "scaled",
    "scalar_joints",
    "state_value",
    "tolerance",
]
