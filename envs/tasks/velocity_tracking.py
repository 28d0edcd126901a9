"""Velocity tracking on legs: what the quadruped and humanoid tasks share.

The task class of Isaac Lab's / mjlab's ``Velocity-Flat-*`` and MuJoCo Playground's
``*JoystickFlatTerrain``: every world draws a command ``(vx, vy, yaw rate)`` (m/s, m/s, rad/s, in
the base's heading frame) at reset and again every ``resample_steps`` control steps, a
``standing_fraction`` of the draws being zero (stand still); the policy is scored on the
episode means of the tracking errors. :class:`VelocityTrackingTask` keeps the per-world buffers
(commands and their age, per-foot air time, error sums; exact resume through the state dict),
builds the state entries every legged robot has (base kinematics in the world and base frames,
joints, feet, tracking errors), and provides the usual terms (exponential tracking kernels,
base height, feet air time) and legged_gym's names for DrEureka-style rewards. A robot's task
(:mod:`.go1_velocity`, :mod:`.g1_velocity`) adds its model, events, actions, observation,
termination and its own terms.

A subclass sets in ``__init__``: ``_qpos_idx``, ``_qvel_idx``, ``_act_idx`` (its leg joints and
servos), ``_feet_site`` and ``_feet`` (foot sites and bound :class:`~.authoring.Contact`
sensors), ``default_pose``, ``kp``, ``kd``, ``effort_limits`` (numpy, joint order),
``control_dt``, then calls :meth:`VelocityTrackingTask._init_commands`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rewardlab.envs.base import StateField
from rewardlab.envs.tasks.authoring import ContactGroup, quat_conjugate, quat_rotate
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig
from rewardlab.envs.tasks.isaacgym_names import joint_limits
from rewardlab.envs.tasks.knowledge import (  # fmt: skip
    Binding,
    Constant,
    ForeignName,
    Unavailable,
    config_value,
    entry,
)

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class VelocityTrackingConfig(TaskConfig):
    """Command distribution, tracking kernels and success bounds of a velocity-tracking task."""

    lin_vel_x: tuple[float, float] = (-1.0, 1.0)
    """Range (m/s) of the commanded forward velocity."""
    lin_vel_y: tuple[float, float] = (-0.5, 0.5)
    """Range (m/s) of the commanded lateral velocity (+y: left)."""
    yaw_rate: tuple[float, float] = (-1.0, 1.0)
    """Range (rad/s) of the commanded yaw rate (+: counter-clockwise)."""
    resample_steps: int = 250
    """Control steps between command draws (5 s at 50 Hz); the first draw is at reset."""
    standing_fraction: float = 0.1
    """Fraction of the draws that command zero velocity (stand still)."""
    tracking_sigma: float = 0.25
    """Width (m^2/s^2, rad^2/s^2) of the tracking kernels exp(-error^2 / sigma)."""
    base_height_target: float = 0.3
    """Base height (m) the base_height term pulls towards."""
    air_time_threshold: float = 0.25
    """Swing duration (s) above which a touchdown earns feet_air_time reward."""
    success_lin_vel_error: float = 0.25
    """Success bound (m/s): episode mean of |cmd_xy - v_xy| (base heading frame)."""
    success_yaw_rate_error: float = 0.5
    """Success bound (rad/s): episode mean of |cmd_yaw - w_z|."""

    def validate(self) -> None:
        super().validate()
        for name in ("lin_vel_x", "lin_vel_y", "yaw_rate"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name}: got {[lo, hi]}, expected [lo, hi] with lo <= hi")
        for name in ("tracking_sigma", "success_lin_vel_error", "success_yaw_rate_error", "base_height_target"):  # fmt: skip
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.resample_steps < 1:
            raise ValueError(f"resample_steps must be >= 1, got {self.resample_steps}")
        if not 0.0 <= self.standing_fraction <= 1.0:
            raise ValueError(f"standing_fraction must be in [0, 1], got {self.standing_fraction}")
        if self.air_time_threshold < 0:
            raise ValueError(f"air_time_threshold must be >= 0, got {self.air_time_threshold}")


def _columns(idx: torch.Tensor) -> slice | torch.Tensor:
    """``idx`` (a 1-d index tensor) as a slice when it is a run of consecutive indices."""
    cols = [int(i) for i in idx]
    if cols and cols == list(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return idx


def _take(x: torch.Tensor, cols: slice | torch.Tensor) -> torch.Tensor:
    """``x[:, cols]`` (an index tensor follows ``x`` to its device)."""
    return x[:, cols] if isinstance(cols, slice) else x[:, cols.to(x.device)]


def xyzw(q: torch.Tensor) -> torch.Tensor:
    """``q`` ``[N, 4]`` reordered from MuJoCo's (w, x, y, z) to IsaacGym's (x, y, z, w)."""
    return torch.cat([q[:, 1:], q[:, :1]], -1)


LAST_ACTION = StateField((12,), "1", "actuator", "Action of the previous control step in [-1, 1]: joint targets default_pose + action_scale * a.")  # fmt: skip
"""The ``last_action`` entry of the 12-servo tasks (the policy's own previous action)."""


def legged_gym_names(joints: Sequence[str], base: str, default_pose_doc: str) -> dict[str, ForeignName]:  # fmt: skip
    """legged_gym's / DrEureka's ``env.<name>`` every velocity-tracking task binds the same way.

    Args:
        joints: the leg joints in action order (for ``dof_pos_limits``).
        base: what the base body is called in the docs ("trunk", "pelvis").
        default_pose_doc: what ``default_dof_pos`` is, for the docs.
    """
    return {
        "base_lin_vel": entry("base_lin_vel"),
        "base_ang_vel": entry("base_ang_vel"),
        "projected_gravity": entry("projected_gravity"),
        "commands": entry("command"),
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "torques": entry("joint_torque"),
        "base_pos": entry("base_pos"),
        "base_quat": Binding(lambda s, a, dt: xyzw(s["base_quat"]), "`base_quat` as (x, y, z, w)"),
        "root_states": Binding(
            lambda s, a, dt: torch.cat(
                [
                    s["base_pos"],
                    xyzw(s["base_quat"]),
                    s["base_lin_vel_world"],
                    s["base_ang_vel_world"],
                ],
                -1,
            ),  # fmt: skip
            f"`[N, 13]`: {base} position, quaternion (x, y, z, w), linear and angular velocity, world frame (IsaacGym's root state)",  # fmt: skip
        ),
        "gravity_vec": Binding(
            lambda s, a, dt: torch.tensor([0.0, 0.0, -1.0], device=a.device).repeat(a.shape[0], 1),
            "`[N, 3]` (0, 0, -1)",
        ),
        "default_dof_pos": Constant(lambda task: [list(task.default_pose)], default_pose_doc),
        "dof_pos_limits": joint_limits(tuple(joints)),
        "torque_limits": Constant(
            lambda task: [float(v) for v in task.effort_limits], "`[12]` servo torque limits (N m)"
        ),  # fmt: skip
        "p_gains": Constant(lambda task: [float(v) for v in task.kp], "`[12]` servo kp (N m/rad)"),
        "d_gains": Constant(
            lambda task: [float(v) for v in task.kd], "`[12]` joint damping kd (N m s/rad)"
        ),  # fmt: skip
        "contact_filt": entry("foot_contact"),
        "feet_air_time": entry("feet_air_time"),
        "first_contact": entry("first_contact"),
        "base_height": entry("base_height"),
        "base_height_target": config_value(
            "base_height_target", "the base_height term's target (m)"
        ),  # fmt: skip
        "tracking_sigma": config_value("tracking_sigma", "width of the tracking kernels"),
        "measured_heights": Unavailable("the ground is flat and not sampled (use env.base_height)"),
    }


class VelocityTrackingTask(Task):
    """Commands, buffers, shared state entries and terms of a legged velocity-tracking task."""

    num_feet: ClassVar[int] = 4
    """Feet with a contact sensor (the length of the per-foot state entries)."""
    extra_buffers: ClassVar[tuple[tuple[str, tuple[int, ...]], ...]] = ()
    """The subclass's own per-world buffers ``(name, shape)``, zeroed at reset."""

    cfg: VelocityTrackingConfig
    control_dt: float
    _qpos_idx: torch.Tensor
    _qvel_idx: torch.Tensor
    _act_idx: torch.Tensor
    _feet_site: torch.Tensor
    _feet: list[Any]

    def _init_commands(self) -> None:
        """Command bounds and the (lazily sized) buffers; call at the end of ``__init__``."""
        c = self.cfg
        self._lo = torch.tensor([c.lin_vel_x[0], c.lin_vel_y[0], c.yaw_rate[0]], dtype=torch.float64)  # fmt: skip
        self._hi = torch.tensor([c.lin_vel_x[1], c.lin_vel_y[1], c.yaw_rate[1]], dtype=torch.float64)  # fmt: skip
        self._buffers: dict[str, torch.Tensor] = {}
        # Per-step reads, resolved once: index tensors that are runs become slices, the feet's
        # contact sensors one gather, the gravity direction a cached constant.
        self._qpos_cols = _columns(self._qpos_idx)
        self._qvel_cols = _columns(self._qvel_idx)
        self._act_cols = _columns(self._act_idx)
        self._feet_cols = _columns(self._feet_site)
        self._feet_group = ContactGroup(self._feet)
        self._down: torch.Tensor | None = None

    # -- per-world buffers: commands, air time, episode error sums --------------------------------

    def _buf(self, name: str, like: torch.Tensor, *shape: int) -> torch.Tensor:
        b = self._buffers.get(name)
        n = like.shape[0]
        if b is None or b.shape[0] != n or b.device != like.device:
            b = self._buffers[name] = torch.zeros(
                n, *shape, dtype=torch.float64, device=like.device
            )
        return b

    def _draw_commands(self, ids: torch.Tensor, gen: torch.Generator, like: torch.Tensor) -> None:
        cmd = self._buf("command", like, 3)
        u = torch.rand((len(ids), 3), generator=gen, device=gen.device, dtype=torch.float64).to(like.device)  # fmt: skip
        c = self._lo.to(like.device) + (self._hi - self._lo).to(like.device) * u
        stand = torch.rand(len(ids), generator=gen, device=gen.device, dtype=torch.float64).to(like.device)  # fmt: skip
        c[stand < self.cfg.standing_fraction] = 0.0
        cmd[ids.to(like.device)] = c

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        """The task's reset events (``self.events``), zeroed buffers and fresh commands."""
        self.events.reset(sim, env_ids, gen)
        ids = env_ids.to(sim.qpos.device)
        shapes = (("air", (self.num_feet,)), ("err_sum", (2,)), ("count", ()), ("cmd_steps", ()), *self.extra_buffers)  # fmt: skip
        for name, shape in shapes:
            self._buf(name, sim.qpos, *shape)[ids] = 0.0
        self._draw_commands(ids, gen, sim.qpos)

    def after_step(self, sim: SimView, state: State, gen: torch.Generator) -> None:
        """Count air time, the episode's tracking errors and the command's age (and the
        subclass's :meth:`_after_step_buffers`); redraw the commands ``resample_steps`` old."""
        like = sim.qpos
        contact = state["foot_contact"].to(like) > 0.5
        air = self._buf("air", like, self.num_feet)
        air.copy_(torch.where(contact, torch.zeros_like(air), air + self.control_dt))
        err = torch.stack([state["lin_vel_error"], state["yaw_rate_error"]], -1).to(like)
        self._buf("err_sum", like, 2).add_(err)
        self._buf("count", like).add_(1.0)
        self._after_step_buffers(sim, state)
        steps = self._buf("cmd_steps", like)
        steps.add_(1.0)
        due = (steps >= self.cfg.resample_steps).nonzero().squeeze(-1)
        if len(due):
            steps[due] = 0.0
            self._draw_commands(due, gen, like)

    def _after_step_buffers(self, sim: SimView, state: State) -> None:
        """Hook: update the subclass's :attr:`extra_buffers` after a step."""

    def get_state_dict(self) -> dict[str, Any]:
        """Reset buffers plus the commands, air times, error sums (exact resume)."""
        return {"events": self.events.state_dict(), "buffers": {k: v.cpu().clone() for k, v in self._buffers.items()}}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.events.load_state_dict(state["events"])
        self._buffers = {k: torch.as_tensor(v).clone() for k, v in state["buffers"].items()}

    # -- state ------------------------------------------------------------------------------------

    def tracking_spec(self, base: str, feet: str, joints: str, foot_pos: str) -> dict[str, StateField]:  # fmt: skip
        """State entries every velocity-tracking task has, in :meth:`tracking_state`'s order.

        Args:
            base: what the base body is called ("trunk", "pelvis").
            feet: the foot order, e.g. "FR, FL, RR, RL".
            joints: the description of ``joint_pos`` (the leg joints' order).
            foot_pos: the description of ``foot_pos`` (which point of each foot).
        """
        c, B, n = self.cfg, base.capitalize(), self.num_feet
        return {
            "base_pos": StateField((3,), "m", "world", f"{B} position (floor at z = 0)."),
            "base_quat": StateField((4,), "1", "world", f"{B} orientation (w, x, y, z); x forward, z up in the {base} frame."),
            "base_height": StateField((), "m", "world", f"{B} height above the floor (standing about {c.base_height_target} m)."),
            "base_lin_vel": StateField((3,), "m/s", base, f"{B} linear velocity in the {base} frame (x forward, y left, z up)."),
            "base_ang_vel": StateField((3,), "rad/s", base, f"{B} angular velocity in the {base} frame (z: yaw rate)."),
            "base_lin_vel_world": StateField((3,), "m/s", "world", f"{B} linear velocity in the world frame."),
            "base_ang_vel_world": StateField((3,), "rad/s", "world", f"{B} angular velocity in the world frame."),
            "projected_gravity": StateField((3,), "1", base, f"Gravity's direction (0, 0, -1) in the {base} frame: (0, 0, -1) when level."),
            "command": StateField((3,), "m/s, m/s, rad/s", base, "Commanded forward velocity, lateral velocity (left +) and yaw rate; redrawn every resample_steps."),
            "joint_pos": StateField((12,), "rad", "joint", joints),
            "joint_vel": StateField((12,), "rad/s", "joint", "Leg joint velocities, same order."),
            "joint_torque": StateField((12,), "N m", "joint", "Servo torques of the last physics substep (kp (target - q), clipped to the torque limits)."),
            "foot_pos": StateField((n, 3), "m", "world", foot_pos),
            "foot_contact": StateField((n,), "1", "foot", f"1 while a foot touches the floor (contact sensor), {feet}."),
            "feet_air_time": StateField((n,), "s", "foot", "Time since each foot last touched the floor, this step included (at a touchdown: the swing's duration)."),
            "first_contact": StateField((n,), "1", "foot", "1 on the step a foot touches down after a swing."),
            "lin_vel_error": StateField((), "m/s", base, "|command_xy - base_lin_vel_xy| now."),
            "yaw_rate_error": StateField((), "rad/s", base, "|command_yaw - base_ang_vel_z| now."),
            "mean_lin_vel_error": StateField((), "m/s", base, f"Episode mean of lin_vel_error so far; success needs < {c.success_lin_vel_error}."),
            "mean_yaw_rate_error": StateField((), "rad/s", base, f"Episode mean of yaw_rate_error so far; success needs < {c.success_yaw_rate_error}."),
        }  # fmt: skip

    def tracking_state(self, sim: SimView) -> dict[str, torch.Tensor]:
        """The entries of :meth:`tracking_spec` from ``sim``."""
        q, v = sim.qpos, sim.qvel
        n = q.shape[0]
        quat = q[:, 3:7]
        lin_w = v[:, 0:3]
        ang_b = v[:, 3:6]  # MuJoCo's free joint: angular velocity in the body frame
        down = self._down
        if down is None or down.dtype != q.dtype or down.device != q.device:
            down = self._down = torch.tensor([0.0, 0.0, -1.0], dtype=q.dtype, device=q.device)
        # The three frame changes in one quat_rotate call over [N, 3] stacks (the same
        # elementwise arithmetic as quat_rotate_inverse(quat, lin_w), quat_rotate_inverse(quat,
        # down) and quat_rotate(quat, ang_b) one by one, so the same values bit for bit).
        conj = quat_conjugate(quat)
        rotated = quat_rotate(
            torch.stack([conj, conj, quat], 1), torch.stack([lin_w, down.expand(n, 3), ang_b], 1)
        )
        lin_b, gravity, ang_w = rotated.unbind(1)
        cmd = self._buf("command", q, 3)
        lin_err = torch.linalg.vector_norm(cmd[:, :2] - lin_b[:, :2], dim=-1)
        yaw_err = (cmd[:, 2] - ang_b[:, 2]).abs()
        count = self._buf("count", q) + 1.0
        sums = self._buf("err_sum", q, 2)
        contact = self._feet_group.value(sim)
        air = self._buf("air", q, self.num_feet)
        return {
            "base_pos": q[:, 0:3].float(),
            "base_quat": quat.float(),
            "base_height": q[:, 2].float(),
            "base_lin_vel": lin_b.float(),
            "base_ang_vel": ang_b.float(),
            "base_lin_vel_world": lin_w.float(),
            "base_ang_vel_world": ang_w.float(),
            "projected_gravity": gravity.float(),
            "command": cmd.float(),
            "joint_pos": _take(q, self._qpos_cols).float(),
            "joint_vel": _take(v, self._qvel_cols).float(),
            "joint_torque": _take(sim.actuator_force, self._act_cols).float(),
            "foot_pos": _take(sim.site_xpos, self._feet_cols).float(),
            "foot_contact": contact.float(),
            "feet_air_time": (air + self.control_dt).float(),
            "first_contact": ((contact > 0.5) & (air > 0)).float(),
            "lin_vel_error": lin_err.float(),
            "yaw_rate_error": yaw_err.float(),
            "mean_lin_vel_error": ((sums[:, 0] + lin_err) / count).float(),
            "mean_yaw_rate_error": ((sums[:, 1] + yaw_err) / count).float(),
        }

    def success(self, state: State) -> torch.Tensor:
        return (state["mean_lin_vel_error"] < self.cfg.success_lin_vel_error) & (
            state["mean_yaw_rate_error"] < self.cfg.success_yaw_rate_error
        )

    def tracking_terms(self) -> dict[str, Any]:
        """The shared reward functions: ``tracking_lin_vel``, ``tracking_ang_vel``,
        ``base_height``, ``feet_air_time`` (weights are the subclass's)."""
        c = self.cfg
        sigma, thr, target = c.tracking_sigma, c.air_time_threshold, c.base_height_target

        def tracking_lin_vel(s: State, a: torch.Tensor) -> torch.Tensor:
            """exp(-|cmd_xy - v_xy|^2 / sigma)."""
            return torch.exp(-s["lin_vel_error"].square() / sigma)

        def tracking_ang_vel(s: State, a: torch.Tensor) -> torch.Tensor:
            """exp(-(cmd_yaw - w_z)^2 / sigma)."""
            return torch.exp(-s["yaw_rate_error"].square() / sigma)

        def base_height(s: State, a: torch.Tensor) -> torch.Tensor:
            """(h - target)^2 (m^2)."""
            return (s["base_height"] - target).square()

        def feet_air_time(s: State, a: torch.Tensor) -> torch.Tensor:
            """sum over feet of (swing duration - threshold) at touchdown, while moving."""
            moving = torch.linalg.vector_norm(s["command"][:, :2], dim=-1) > 0.1
            return ((s["feet_air_time"] - thr) * s["first_contact"]).sum(-1) * moving

        return {
            "tracking_lin_vel": tracking_lin_vel,
            "tracking_ang_vel": tracking_ang_vel,
            "base_height": base_height,
            "feet_air_time": feet_air_time,
        }


__all__ = [
    "LAST_ACTION",
    "VelocityTrackingConfig",
    "VelocityTrackingTask",
    "legged_gym_names",
    "xyzw",
]
