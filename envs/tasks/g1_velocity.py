"""G1 velocity tracking: the Unitree G1 humanoid walks at a commanded forward, lateral and yaw velocity.

The task class of MuJoCo Playground's ``G1JoystickFlatTerrain`` and mjlab's / Isaac Lab's
``Velocity-Flat-Unitree-G1``, on Playground's G1 model (:mod:`.g1`) on flat ground, with the
structure of the Go1 task (:mod:`.go1_velocity`). Every world draws a command ``(vx, vy, yaw
rate)`` (m/s, m/s, rad/s, in the pelvis' heading frame) at reset and again every
``resample_steps`` control steps; a ``standing_fraction`` of the draws is zero (stand still).

Actions: the 12 leg servos' targets ``default_pose + action_scale * a`` around the
``knees_bent`` keyframe (PD: the model's kp 75 / 75 / 75 / 75 / 20 / 2 N m/rad from hip to
ankle, joint damping as kd), as Unitree's ``unitree_rl_gym`` trains its 12-DoF G1; the waist,
arm and wrist servos hold the keyframe pose (Playground and mjlab drive all 29 joints: an
option for a GPU budget, not for 2 CPU cores). A gait clock (period ``gait_period``, legs half a
period apart) is part of the observation, as in Playground's and unitree_rl_gym's G1 tasks.

Foot contacts are contact sensors between the foot boxes and the floor; air time is counted
per foot. An episode terminates when the G1 falls: the pelvis below ``fall_height`` or the
torso tilted more than ``max_tilt`` from vertical (only the feet collide in this model). It
succeeds when it did not fall and the episode means of the tracking errors are under
``success_lin_vel_error`` (m/s, |cmd_xy - v_xy|) and ``success_yaw_rate_error`` (rad/s).

Reward terms (default weights per control step; unitree_rl_gym's G1 and Playground's G1
joystick terms; kernels exp(-error^2 / ``tracking_sigma``)): tracking_lin_vel (1.0),
tracking_ang_vel (0.5), lin_vel_z v_z^2 (-2), ang_vel_xy |w_xy|^2 (-0.05), orientation |g_xy|^2
of the pelvis (-1), base_height (h - base_height_target)^2 (-10), action_rate (-0.01), torques
|tau|^2 (-1e-5), hip_deviation (hip roll and yaw)^2 (-1), feet_air_time (swing - 0.4 s at
touchdown, while moving) (1), contact_phase (feet in contact exactly when the gait clock says
stance, 0..2) (0.18), swing_height (site height - 0.08 m above flat)^2 of swinging feet (-20),
feet_slip |v_foot_xy|^2 of feet in contact (-0.25), alive (0.15), termination (-2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_rate_l2, alive
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import g1
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    Contact,
    EventManager,
    FreeBodyPose,
    JointPositions,
    JointTargets,
    Uniform,
    add_contact_sensors,
    lookup,
)
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task
from rewardlab.envs.tasks.isaacgym_names import joint_limits
from rewardlab.envs.tasks.knowledge import (
    Binding,
    CameraSpec,
    Constant,
    OptOut,
    Prompts,
    Unavailable,
    config_value,
    entry,
)

State = Mapping[str, torch.Tensor]

FOOT_CONTACTS = tuple(Contact(f, geom1=f, geom2=g1.FLOOR) for f in g1.FEET)
"""One ``found`` contact sensor per foot box with the floor (sensors ``contact_left_foot``, ...)."""
_HIP_ROLL_YAW = tuple(j for j in g1.LEG_JOINTS if "hip_roll" in j or "hip_yaw" in j)


@dataclass(frozen=True)
class G1VelocityConfig(TaskConfig):
    """G1 velocity tracking settings (2 ms physics; 50 Hz control at frame_skip 10)."""

    frame_skip: int = 10
    """Physics steps per control step (Playground's G1: 2 ms physics, 20 ms control)."""
    episode_steps: int = 500
    """Time limit in control steps (10 s at 50 Hz)."""
    reset_noise: float = 0.1
    """Half-width (rad) of the uniform noise on the leg joints' initial angles around the
    default pose; the pelvis starts at a random yaw and xy offset (+-0.5 m)."""
    action_scale: float = 0.25
    """Leg servo target offset (rad) from the default pose per unit action (unitree_rl_gym's
    G1: 0.25; Playground's: 0.5)."""
    lin_vel_x: tuple[float, float] = (-1.0, 1.0)
    """Range (m/s) of the commanded forward velocity (Playground's G1 joystick)."""
    lin_vel_y: tuple[float, float] = (-0.5, 0.5)
    """Range (m/s) of the commanded lateral velocity (+y: left)."""
    yaw_rate: tuple[float, float] = (-1.0, 1.0)
    """Range (rad/s) of the commanded yaw rate (+: counter-clockwise)."""
    resample_steps: int = 250
    """Control steps between command draws (5 s); the first draw is at reset."""
    standing_fraction: float = 0.1
    """Fraction of the draws that command zero velocity (stand still)."""
    tracking_sigma: float = 0.25
    """Width (m^2/s^2, rad^2/s^2) of the tracking kernels exp(-error^2 / sigma)."""
    base_height_target: float = 0.74
    """Pelvis height (m) the base_height term pulls towards (keyframe: 0.755 m, with the feet
    sinking into the soft floor contact about 0.73 m)."""
    gait_period: float = 0.8
    """Gait clock period (s); the legs are half a period apart (unitree_rl_gym's G1: 0.8 s)."""
    stance_fraction: float = 0.55
    """Part of the period a leg is in stance for the contact_phase term."""
    air_time_threshold: float = 0.4
    """Swing duration (s) above which a touchdown earns feet_air_time reward."""
    swing_height: float = 0.08
    """Target clearance (m) of a swinging foot for the swing_height term."""
    fall_height: float = 0.45
    """Terminate when the pelvis is lower than this (m)."""
    max_tilt: float = 1.0
    """Terminate when the torso tilts more than this (rad) from vertical."""
    success_lin_vel_error: float = 0.3
    """Success bound (m/s): episode mean of |cmd_xy - v_xy| (pelvis heading frame)."""
    success_yaw_rate_error: float = 0.5
    """Success bound (rad/s): episode mean of |cmd_yaw - w_z|."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: tracking_lin_vel, tracking_ang_vel, lin_vel_z,
    ang_vel_xy, orientation, base_height, action_rate, torques, hip_deviation, feet_air_time,
    contact_phase, swing_height, feet_slip, alive, termination."""

    def validate(self) -> None:
        super().validate()
        for name in ("lin_vel_x", "lin_vel_y", "yaw_rate"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name}: got {[lo, hi]}, expected [lo, hi] with lo <= hi")
        positive = ("action_scale", "tracking_sigma", "success_lin_vel_error", "success_yaw_rate_error", "base_height_target", "gait_period", "fall_height", "max_tilt")  # fmt: skip
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.resample_steps < 1:
            raise ValueError(f"resample_steps must be >= 1, got {self.resample_steps}")
        for name in ("standing_fraction", "stance_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("air_time_threshold", "swing_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def quat_inv_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` ``[N, 3]`` (world) in the frame of unit quaternions ``q`` ``[N, 4]`` (w, x, y, z)."""
    w, u = q[:, :1], -q[:, 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def _xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[:, 1:], q[:, :1]], -1)


def _conj(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[:, :1], -q[:, 1:]], -1)


@register_task
class G1Velocity(Task):
    """Make the Unitree G1 humanoid walk at a commanded forward, lateral and yaw velocity."""

    name = "g1_velocity"
    model_file = ""
    sim_fields = ("sensordata", "site_xpos", "xquat", "actuator_force")
    success_threshold = 0.8

    reward_camera = CameraSpec(2.5, 135.0, -15.0, (0.0, 0.0, 0.0), track_body=g1.PELVIS)
    prompts = Prompts(
        ("a humanoid robot walking",),
        ("a humanoid robot lying on the floor",),
    )
    eureka_names = {
        # legged_gym / unitree_rl_gym env.<name>; body-frame velocities as legged_gym
        "base_lin_vel": entry("base_lin_vel"),
        "base_ang_vel": entry("base_ang_vel"),
        "projected_gravity": entry("projected_gravity"),
        "commands": entry("command"),
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "torques": entry("joint_torque"),
        "base_pos": entry("base_pos"),
        "base_quat": Binding(
            lambda s, a, dt: _xyzw(s["base_quat"]), "`base_quat` as (x, y, z, w)"
        ),  # fmt: skip
        "root_states": Binding(
            lambda s, a, dt: torch.cat(
                [
                    s["base_pos"],
                    _xyzw(s["base_quat"]),
                    s["base_lin_vel_world"],
                    s["base_ang_vel_world"],
                ],
                -1,
            ),  # fmt: skip
            "`[N, 13]`: pelvis position, quaternion (x, y, z, w), linear and angular velocity, world frame (IsaacGym's root state)",
        ),
        "gravity_vec": Binding(
            lambda s, a, dt: torch.tensor([0.0, 0.0, -1.0], device=a.device).repeat(a.shape[0], 1),
            "`[N, 3]` (0, 0, -1)",
        ),
        "default_dof_pos": Constant(
            lambda task: [list(task.default_pose)],
            "`[1, 12]` the leg joints' default pose (the `knees_bent` keyframe)",
        ),  # fmt: skip
        "dof_pos_limits": joint_limits(g1.LEG_JOINTS),
        "torque_limits": Constant(
            lambda task: [float(v) for v in task.effort_limits],
            "`[12]` leg servo torque limits (N m)",
        ),  # fmt: skip
        "p_gains": Constant(
            lambda task: [float(v) for v in task.kp], "`[12]` leg servo kp (N m/rad)"
        ),  # fmt: skip
        "d_gains": Constant(
            lambda task: [float(v) for v in task.kd], "`[12]` leg joint damping kd (N m s/rad)"
        ),  # fmt: skip
        "feet_pos": entry("foot_pos"),
        "contact": entry("foot_contact"),
        "contact_filt": entry("foot_contact"),
        "feet_air_time": entry("feet_air_time"),
        "first_contact": entry("first_contact"),
        "leg_phase": entry("leg_phase"),
        "phase": Binding(
            lambda s, a, dt: s["leg_phase"][:, 0],
            "`[N]` the gait clock in [0, 1) (the left leg's phase)",
        ),  # fmt: skip
        "base_height": entry("base_height"),
        "base_height_target": config_value(
            "base_height_target", "the base_height term's target (m)"
        ),  # fmt: skip
        "tracking_sigma": config_value("tracking_sigma", "width of the tracking kernels"),
        "contact_forces": Unavailable(
            "per-body contact forces are not sensed; use env.contact ([N, 2], 1 on the ground; left, right)"
        ),  # fmt: skip
        "feet_indices": Unavailable(
            "feet are not rigid-body indices here; env.contact, env.feet_pos and env.feet_air_time are [N, 2] in left, right order"
        ),  # fmt: skip
        "measured_heights": Unavailable(
            "the ground is flat and not sampled (use env.base_height)"
        ),  # fmt: skip
    }
    text2reward_attrs = OptOut(
        "Text2Reward has no legged-robot environment; use a DrEureka-style EurekaReward "
        "(env.base_lin_vel, env.commands, ...)"
    )
    scripted_episodes = OptOut(
        "walking on commands needs a trained policy (no hand-written controller keeps a G1 "
        "balanced, and the servos alone hold the keyframe for about 1 s); train one with "
        "`rewardlab train task=g1_velocity` and evaluate it instead"
    )

    def __init__(self, cfg: G1VelocityConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: G1VelocityConfig = cfg
        self.default_pose = g1.default_pose(model)
        acts = [lookup(model, "actuator", j) for j in g1.LEG_JOINTS]
        jnts = [lookup(model, "joint", j) for j in g1.LEG_JOINTS]
        self.kp = model.actuator_gainprm[acts, 0].copy()
        self.kd = model.dof_damping[[int(model.jnt_dofadr[j]) for j in jnts]].copy()
        self.effort_limits = model.jnt_actfrcrange[jnts, 1].copy()
        self.events = EventManager(
            model,
            [
                FreeBodyPose(
                    g1.PELVIS,
                    Uniform((-0.5, -0.5, 0.0), (0.5, 0.5, 0.0)),
                    yaw=Uniform(-math.pi, math.pi),
                ),  # fmt: skip
                JointPositions(g1.LEG_JOINTS, Uniform(-cfg.reset_noise, cfg.reset_noise)),
            ],
            g1.home_qpos(model),
        )
        self.action_map = ActionMap((JointTargets(g1.LEG_JOINTS, scale=cfg.action_scale),)).bind(
            model, g1.home_ctrl(model)
        )
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnts])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnts])
        self._act_idx = torch.as_tensor(acts)
        self._hip_idx = torch.as_tensor([g1.LEG_JOINTS.index(j) for j in _HIP_ROLL_YAW])
        self._feet_site = torch.as_tensor([lookup(model, "site", f) for f in g1.FEET])
        self._torso = lookup(model, "body", g1.TORSO)
        self._feet = [c.bind(model) for c in FOOT_CONTACTS]
        vel = [lookup(model, "sensor", f"{f}_global_linvel") for f in g1.FEET]
        self._foot_vel_adr = torch.as_tensor([[int(model.sensor_adr[s]) + k for k in range(3)] for s in vel])  # fmt: skip
        self._default = torch.as_tensor(self.default_pose, dtype=torch.float32)
        self.control_dt = float(model.opt.timestep) * cfg.frame_skip
        self._lo = torch.tensor([cfg.lin_vel_x[0], cfg.lin_vel_y[0], cfg.yaw_rate[0]], dtype=torch.float64)  # fmt: skip
        self._hi = torch.tensor([cfg.lin_vel_x[1], cfg.lin_vel_y[1], cfg.yaw_rate[1]], dtype=torch.float64)  # fmt: skip
        self._buffers: dict[str, torch.Tensor] = {}

    @classmethod
    def default_config(cls) -> G1VelocityConfig:
        return G1VelocityConfig()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = g1.g1_scene()
        add_contact_sensors(spec, FOOT_CONTACTS)
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        return [Path(__file__).resolve(), Path(g1.__file__).resolve(), *g1.model_files()]

    # -- per-world buffers: commands, air time, gait clock, episode error sums ---------------------

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
        self.events.reset(sim, env_ids, gen)
        ids = env_ids.to(sim.qpos.device)
        for name, shape in (("air", (2,)), ("err_sum", (2,)), ("count", ()), ("cmd_steps", ())):
            self._buf(name, sim.qpos, *shape)[ids] = 0.0
        self._draw_commands(ids, gen, sim.qpos)

    def after_step(self, sim: SimView, state: State, gen: torch.Generator) -> None:
        """Count air time, the episode's tracking errors and the command's age; redraw the
        commands that are ``resample_steps`` old."""
        like = sim.qpos
        contact = state["foot_contact"].to(like) > 0.5
        air = self._buf("air", like, 2)
        air.copy_(torch.where(contact, torch.zeros_like(air), air + self.control_dt))
        err = torch.stack([state["lin_vel_error"], state["yaw_rate_error"]], -1).to(like)
        self._buf("err_sum", like, 2).add_(err)
        self._buf("count", like).add_(1.0)
        steps = self._buf("cmd_steps", like)
        steps.add_(1.0)
        due = (steps >= self.cfg.resample_steps).nonzero().squeeze(-1)
        if len(due):
            steps[due] = 0.0
            self._draw_commands(due, gen, like)

    def get_state_dict(self) -> dict[str, Any]:
        """Reset buffers plus the commands, air times, error sums (exact resume)."""
        return {"events": self.events.state_dict(), "buffers": {k: v.cpu().clone() for k, v in self._buffers.items()}}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.events.load_state_dict(state["events"])
        self._buffers = {k: torch.as_tensor(v).clone() for k, v in state["buffers"].items()}

    # -- state ------------------------------------------------------------------------------------

    def state_spec(self) -> dict[str, StateField]:
        c = self.cfg
        return {
            "base_pos": StateField((3,), "m", "world", "Pelvis position (floor at z = 0)."),
            "base_quat": StateField((4,), "1", "world", "Pelvis orientation (w, x, y, z); x forward, z up in the pelvis frame."),
            "base_height": StateField((), "m", "world", f"Pelvis height above the floor (standing about {c.base_height_target} m; a fall below {c.fall_height} m terminates)."),
            "base_lin_vel": StateField((3,), "m/s", "pelvis", "Pelvis linear velocity in the pelvis frame (x forward, y left, z up)."),
            "base_ang_vel": StateField((3,), "rad/s", "pelvis", "Pelvis angular velocity in the pelvis frame (z: yaw rate)."),
            "base_lin_vel_world": StateField((3,), "m/s", "world", "Pelvis linear velocity in the world frame."),
            "base_ang_vel_world": StateField((3,), "rad/s", "world", "Pelvis angular velocity in the world frame."),
            "projected_gravity": StateField((3,), "1", "pelvis", "Gravity's direction (0, 0, -1) in the pelvis frame: (0, 0, -1) when level."),
            "torso_upright": StateField((), "1", "world", f"z of the torso's up axis: 1 vertical; below cos({c.max_tilt}) terminates."),
            "command": StateField((3,), "m/s, m/s, rad/s", "pelvis", "Commanded forward velocity, lateral velocity (left +) and yaw rate; redrawn every resample_steps."),
            "joint_pos": StateField((12,), "rad", "joint", "Leg joint angles: left hip pitch, roll, yaw, knee, ankle pitch, roll, then the right leg."),
            "joint_vel": StateField((12,), "rad/s", "joint", "Leg joint velocities, same order."),
            "joint_torque": StateField((12,), "N m", "joint", "Leg servo torques of the last physics substep (kp (target - q), clipped to the torque limits)."),
            "foot_pos": StateField((2, 3), "m", "world", f"Foot sites (ankle roll links) [left, right]; z is about {g1.SOLE_OFFSET} with the foot flat on the floor."),
            "foot_vel": StateField((2, 3), "m/s", "world", "Foot site linear velocities [left, right]."),
            "foot_contact": StateField((2,), "1", "foot", "1 while a foot touches the floor (contact sensor) [left, right]."),
            "feet_air_time": StateField((2,), "s", "foot", "Time since each foot last touched the floor, this step included (at a touchdown: the swing's duration)."),
            "first_contact": StateField((2,), "1", "foot", "1 on the step a foot touches down after a swing."),
            "leg_phase": StateField((2,), "1", "foot", f"Gait clock of each leg in [0, 1) (period {c.gait_period} s; right = left + 0.5); stance below {c.stance_fraction}."),
            "lin_vel_error": StateField((), "m/s", "pelvis", "|command_xy - base_lin_vel_xy| now."),
            "yaw_rate_error": StateField((), "rad/s", "pelvis", "|command_yaw - base_ang_vel_z| now."),
            "mean_lin_vel_error": StateField((), "m/s", "pelvis", f"Episode mean of lin_vel_error so far; success needs < {c.success_lin_vel_error}."),
            "mean_yaw_rate_error": StateField((), "rad/s", "pelvis", f"Episode mean of yaw_rate_error so far; success needs < {c.success_yaw_rate_error}."),
            "last_action": StateField((12,), "1", "actuator", "Action of the previous control step in [-1, 1]: leg servo targets default_pose + action_scale * a."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        q, v = sim.qpos, sim.qvel
        quat = q[:, 3:7]
        lin_w = v[:, 0:3]
        ang_b = v[:, 3:6]  # MuJoCo's free joint: angular velocity in the body frame
        lin_b = quat_inv_rotate(quat, lin_w)
        grav = quat_inv_rotate(quat, torch.tensor([0.0, 0.0, -1.0], dtype=q.dtype, device=q.device).expand_as(lin_w))  # fmt: skip
        tq = sim.xquat[:, self._torso]
        cmd = self._buf("command", q, 3)
        lin_err = torch.linalg.vector_norm(cmd[:, :2] - lin_b[:, :2], dim=-1)
        yaw_err = (cmd[:, 2] - ang_b[:, 2]).abs()
        count = self._buf("count", q) + 1.0
        sums = self._buf("err_sum", q, 2)
        contact = torch.stack([c.value(sim) for c in self._feet], -1)
        air = self._buf("air", q, 2)
        # the gait clock runs with the episode: (count - 1) completed steps plus this one
        t = count * self.control_dt
        left = torch.remainder(t / self.cfg.gait_period, 1.0)
        phase = torch.stack([left, torch.remainder(left + 0.5, 1.0)], -1)
        return {
            "base_pos": q[:, 0:3].float(),
            "base_quat": quat.float(),
            "base_height": q[:, 2].float(),
            "base_lin_vel": lin_b.float(),
            "base_ang_vel": ang_b.float(),
            "base_lin_vel_world": lin_w.float(),
            "base_ang_vel_world": quat_inv_rotate(_conj(quat), ang_b).float(),
            "projected_gravity": grav.float(),
            "torso_upright": (1.0 - 2.0 * (tq[:, 1] ** 2 + tq[:, 2] ** 2)).float(),
            "command": cmd.float(),
            "joint_pos": q[:, self._qpos_idx].float(),
            "joint_vel": v[:, self._qvel_idx].float(),
            "joint_torque": sim.actuator_force[:, self._act_idx].float(),
            "foot_pos": sim.site_xpos[:, self._feet_site].float(),
            "foot_vel": sim.sensordata[:, self._foot_vel_adr].float(),
            "foot_contact": contact.float(),
            "feet_air_time": (air + self.control_dt).float(),
            "first_contact": ((contact > 0.5) & (air > 0)).float(),
            "leg_phase": phase.float(),
            "lin_vel_error": lin_err.float(),
            "yaw_rate_error": yaw_err.float(),
            "mean_lin_vel_error": ((sums[:, 0] + lin_err) / count).float(),
            "mean_yaw_rate_error": ((sums[:, 1] + yaw_err) / count).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        cmd_scale = torch.tensor([2.0, 2.0, 0.25], device=state["command"].device)
        angle = 2.0 * math.pi * state["leg_phase"][:, :1]
        return torch.cat(
            [
                2.0 * state["base_lin_vel"],
                0.25 * state["base_ang_vel"],
                state["projected_gravity"],
                cmd_scale * state["command"],
                state["joint_pos"] - self._default.to(state["joint_pos"].device),
                0.05 * state["joint_vel"],
                state["last_action"],
                torch.sin(angle),
                torch.cos(angle),
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("2 * base_lin_vel", 3), ("0.25 * base_ang_vel", 3), ("projected_gravity", 3), ("(2, 2, 0.25) * command", 3), ("joint_pos - default_pose", 12), ("0.05 * joint_vel", 12), ("last_action", 12), ("sin(2 pi leg_phase[left])", 1), ("cos(2 pi leg_phase[left])", 1)]  # fmt: skip

    def terminated(self, state: State) -> torch.Tensor:
        return (state["base_height"] < self.cfg.fall_height) | (
            state["torso_upright"] < math.cos(self.cfg.max_tilt)
        )

    def success(self, state: State) -> torch.Tensor:
        return (state["mean_lin_vel_error"] < self.cfg.success_lin_vel_error) & (
            state["mean_yaw_rate_error"] < self.cfg.success_yaw_rate_error
        )

    def reward_terms(self) -> dict[str, RewardTerm]:
        c = self.cfg
        sigma, thr = c.tracking_sigma, c.air_time_threshold
        target, stance = c.base_height_target, c.stance_fraction
        swing_z = g1.SOLE_OFFSET + c.swing_height
        fall_cos = math.cos(c.max_tilt)

        def tracking_lin_vel(s: State, a: torch.Tensor) -> torch.Tensor:
            """exp(-|cmd_xy - v_xy|^2 / sigma)."""
            return torch.exp(-s["lin_vel_error"].square() / sigma)

        def tracking_ang_vel(s: State, a: torch.Tensor) -> torch.Tensor:
            """exp(-(cmd_yaw - w_z)^2 / sigma)."""
            return torch.exp(-s["yaw_rate_error"].square() / sigma)

        def base_height(s: State, a: torch.Tensor) -> torch.Tensor:
            """(h - target)^2 (m^2)."""
            return (s["base_height"] - target).square()

        def hip_deviation(s: State, a: torch.Tensor) -> torch.Tensor:
            """Squared hip roll and yaw angles (rad^2): keeps the legs under the body."""
            d = s["joint_pos"] - self._default.to(s["joint_pos"].device)
            return d[:, self._hip_idx.to(d.device)].square().sum(-1)

        def feet_air_time(s: State, a: torch.Tensor) -> torch.Tensor:
            """sum over feet of (swing duration - threshold) at touchdown, while moving."""
            moving = torch.linalg.vector_norm(s["command"][:, :2], dim=-1) > 0.1
            return ((s["feet_air_time"] - thr) * s["first_contact"]).sum(-1) * moving

        def contact_phase(s: State, a: torch.Tensor) -> torch.Tensor:
            """Feet (0..2) whose contact agrees with the gait clock (stance: phase < stance_fraction)."""
            expected = s["leg_phase"] < stance
            return ((s["foot_contact"] > 0.5) == expected).float().sum(-1)

        def swing_height(s: State, a: torch.Tensor) -> torch.Tensor:
            """sum over swinging feet of (site height - (sole offset + swing_height))^2 (m^2)."""
            err = (s["foot_pos"][..., 2] - swing_z).square()
            return (err * (1.0 - s["foot_contact"])).sum(-1)

        def feet_slip(s: State, a: torch.Tensor) -> torch.Tensor:
            """sum over feet in contact of |v_foot_xy|^2 (m^2/s^2)."""
            return (s["foot_vel"][..., :2].square().sum(-1) * s["foot_contact"]).sum(-1)

        def termination(s: State, a: torch.Tensor) -> torch.Tensor:
            """1 on the step the G1 falls (pelvis too low or torso tilted past max_tilt)."""
            fell = (s["base_height"] < c.fall_height) | (s["torso_upright"] < fall_cos)
            return fell.float()

        return self._weighted(
            {
                "tracking_lin_vel": (tracking_lin_vel, 1.0),
                "tracking_ang_vel": (tracking_ang_vel, 0.5),
                "lin_vel_z": (lambda s, a: s["base_lin_vel"][:, 2].square(), -2.0),
                "ang_vel_xy": (lambda s, a: s["base_ang_vel"][:, :2].square().sum(-1), -0.05),
                "orientation": (lambda s, a: s["projected_gravity"][:, :2].square().sum(-1), -1.0),
                "base_height": (base_height, -10.0),
                "action_rate": (action_rate_l2, -0.01),
                "torques": (lambda s, a: s["joint_torque"].square().sum(-1), -1e-5),
                "hip_deviation": (hip_deviation, -1.0),
                "feet_air_time": (feet_air_time, 1.0),
                "contact_phase": (contact_phase, 0.18),
                "swing_height": (swing_height, -20.0),
                "feet_slip": (feet_slip, -0.25),
                "alive": (alive, 0.15),
                "termination": (termination, -2.0),
            }
        )


__all__ = ["FOOT_CONTACTS", "G1Velocity", "G1VelocityConfig"]
