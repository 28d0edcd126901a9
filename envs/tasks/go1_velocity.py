"""Go1 velocity tracking: the Unitree Go1 walks at a commanded forward, lateral and yaw velocity.

The task class of Isaac Lab's / mjlab's ``Velocity-Flat-Unitree-Go1`` and MuJoCo Playground's
``Go1JoystickFlatTerrain``, on Playground's Go1 model (:mod:`.go1`) on flat ground. Every world
draws a command ``(vx, vy, yaw rate)`` (m/s, m/s, rad/s, in the trunk's heading frame) at reset
and again every ``resample_steps`` control steps. The policy sets the 12 joint position
servos' targets as ``default_pose + action_scale * a`` (PD: kp 35 N m/rad, kd 0.5 N m s/rad;
both from ``sim_configs/robots/go1.yaml``). Foot contacts are the feet's contact sensors with
the floor; air time is counted per foot. An episode terminates when the trunk touches the
floor (or turns upside down); it succeeds when it did not and the episode means of the
velocity tracking errors are under ``success_lin_vel_error`` (m/s, xy) and
``success_yaw_rate_error`` (rad/s).

Reward terms (default weights per control step, Isaac Lab's flat Go1 scales; the exponential
kernels' width is ``tracking_sigma``): tracking_lin_vel exp(-|cmd_xy - v_xy|^2 / sigma) (1.5),
tracking_ang_vel exp(-(cmd_yaw - w_z)^2 / sigma) (0.75), lin_vel_z v_z^2 (-2), ang_vel_xy
|w_xy|^2 (-0.05), orientation |g_xy|^2 (-2.5), base_height (h - base_height_target)^2 (-10),
torques |tau|^2 (-2e-4), action_rate (-0.01), feet_air_time sum((t_air - 0.25) * touchdown)
while commanded to move (0.5), collisions thighs on the floor (-1), termination (-2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardTerm, action_rate_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import go1
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

FOOT_CONTACTS = tuple(Contact(f"foot_{f}", geom1=f, geom2=go1.FLOOR) for f in go1.FEET)
"""One ``found`` contact sensor per foot sphere with the floor."""
BASE_CONTACT = Contact("base", body1=go1.TRUNK, geom2=go1.FLOOR)
"""The trunk's collision geoms on the floor (terminates the episode)."""
THIGH_CONTACTS = tuple(Contact(f"thigh_{leg}", body1=b, geom2=go1.FLOOR) for leg, b in zip(go1.LEGS, go1.THIGHS, strict=True))  # fmt: skip
"""Each thigh's capsules on the floor (a collision)."""


@dataclass(frozen=True)
class Go1VelocityConfig(TaskConfig):
    """Go1 velocity tracking settings (4 ms physics; 50 Hz control at frame_skip 5)."""

    frame_skip: int = 5
    """Physics steps per control step (Playground's Go1: 4 ms physics, 20 ms control)."""
    episode_steps: int = 500
    """Time limit in control steps (10 s at 50 Hz)."""
    reset_noise: float = 0.1
    """Half-width (rad) of the uniform noise on the leg joints' initial angles around the
    default pose; the trunk starts at a random yaw and xy offset (+-0.5 m)."""
    action_scale: float | None = None
    """Joint target offset (rad) from the default pose per unit action; null: the robot
    config's ``action_scale`` (0.5)."""
    lin_vel_x: tuple[float, float] = (-1.0, 1.0)
    """Range (m/s) of the commanded forward velocity."""
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
    base_height_target: float = 0.27
    """Trunk height (m) the base_height term pulls towards."""
    air_time_threshold: float = 0.25
    """Swing duration (s) above which a touchdown earns feet_air_time reward."""
    success_lin_vel_error: float = 0.25
    """Success bound (m/s): episode mean of |cmd_xy - v_xy| (trunk frame)."""
    success_yaw_rate_error: float = 0.5
    """Success bound (rad/s): episode mean of |cmd_yaw - w_z|."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: tracking_lin_vel, tracking_ang_vel, lin_vel_z,
    ang_vel_xy, orientation, base_height, torques, action_rate, feet_air_time, collisions,
    termination."""

    def validate(self) -> None:
        super().validate()
        for name in ("lin_vel_x", "lin_vel_y", "yaw_rate"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name}: got {[lo, hi]}, expected [lo, hi] with lo <= hi")
        if self.action_scale is not None and not self.action_scale > 0:
            raise ValueError(f"action_scale must be > 0 or null, got {self.action_scale}")
        for name in ("tracking_sigma", "success_lin_vel_error", "success_yaw_rate_error", "base_height_target"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.resample_steps < 1:
            raise ValueError(f"resample_steps must be >= 1, got {self.resample_steps}")
        if not 0.0 <= self.standing_fraction <= 1.0:
            raise ValueError(f"standing_fraction must be in [0, 1], got {self.standing_fraction}")
        if self.air_time_threshold < 0:
            raise ValueError(f"air_time_threshold must be >= 0, got {self.air_time_threshold}")


def quat_inv_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` ``[N, 3]`` (world) in the frame of unit quaternions ``q`` ``[N, 4]`` (w, x, y, z)."""
    w, u = q[:, :1], -q[:, 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def _xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[:, 1:], q[:, :1]], -1)


@register_task
class Go1Velocity(Task):
    """Make the Unitree Go1 quadruped walk at a commanded forward, lateral and yaw velocity."""

    name = "go1_velocity"
    model_file = ""
    sim_fields = ("sensordata", "site_xpos", "actuator_force")
    success_threshold = 0.8

    reward_camera = CameraSpec(1.6, 135.0, -20.0, (0.0, 0.0, 0.0), track_body=go1.TRUNK)
    prompts = Prompts(
        ("a four-legged robot dog walking on the ground",),
        ("a four-legged robot dog lying on the ground",),
    )
    eureka_names = {
        # legged_gym / DrEureka (walk-these-ways) env.<name>; body-frame velocities as legged_gym
        "base_lin_vel": entry("base_lin_vel"),
        "base_ang_vel": entry("base_ang_vel"),
        "projected_gravity": entry("projected_gravity"),
        "commands": entry("command"),
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "last_dof_vel": entry("prev_joint_vel"),
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
            "`[N, 13]`: position, quaternion (x, y, z, w), linear and angular velocity, world frame (IsaacGym's root state)",
        ),
        "gravity_vec": Binding(
            lambda s, a, dt: torch.tensor([0.0, 0.0, -1.0], device=a.device).repeat(a.shape[0], 1),
            "`[N, 3]` (0, 0, -1)",
        ),
        "default_dof_pos": Constant(
            lambda task: [list(task.default_pose)],
            "`[1, 12]` the default pose (sim_configs/robots/go1.yaml)",
        ),  # fmt: skip
        "dof_pos_limits": joint_limits(go1.JOINTS),
        "torque_limits": Constant(
            lambda task: [float(v) for v in task.robot.effort_limits],
            "`[12]` servo torque limits (N m)",
        ),  # fmt: skip
        "p_gains": Constant(
            lambda task: [float(v) for v in task.robot.kp], "`[12]` servo kp (N m/rad)"
        ),  # fmt: skip
        "d_gains": Constant(
            lambda task: [float(v) for v in task.robot.kd], "`[12]` joint damping kd (N m s/rad)"
        ),  # fmt: skip
        "foot_positions": entry("foot_pos"),
        "foot_contact": entry("foot_contact"),
        "contact_filt": entry("foot_contact"),
        "feet_air_time": entry("feet_air_time"),
        "first_contact": entry("first_contact"),
        "base_height": entry("base_height"),
        "base_height_target": config_value(
            "base_height_target", "the base_height term's target (m)"
        ),  # fmt: skip
        "tracking_sigma": config_value("tracking_sigma", "width of the tracking kernels"),
        "contact_forces": Unavailable(
            "per-body contact forces are not sensed; use env.foot_contact ([N, 4], 1 on the "
            "ground), env.base_contact or env.thigh_contact"
        ),
        "feet_indices": Unavailable(
            "feet are not rigid-body indices here; env.foot_contact, env.foot_positions and env.feet_air_time are [N, 4] in FR, FL, RR, RL order"
        ),  # fmt: skip
        "penalised_contact_indices": Unavailable(
            "use env.thigh_contact (thighs on the floor, 0..4)"
        ),  # fmt: skip
        "termination_contact_indices": Unavailable(
            "use env.base_contact (1: the trunk touches the floor)"
        ),  # fmt: skip
        "measured_heights": Unavailable(
            "the ground is flat and not sampled (use env.base_height)"
        ),  # fmt: skip
        "base_contact": entry("base_contact"),
        "thigh_contact": entry("thigh_contact"),
    }
    text2reward_attrs = OptOut(
        "Text2Reward has no legged-robot environment; use a DrEureka-style EurekaReward "
        "(env.base_lin_vel, env.commands, ...: docs/locomotion.md)"
    )
    scripted_episodes = OptOut(
        "walking on commands needs a trained policy (no hand-written gait tracks commands); "
        "train one with `rewardlab train task=go1_velocity` and evaluate it instead"
    )

    def __init__(self, cfg: Go1VelocityConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: Go1VelocityConfig = cfg
        self.robot = go1.robot_config()
        go1.check_robot_config(self.robot, model)
        self.default_pose = np.asarray(self.robot.default_pose, dtype=np.float64)
        scale = cfg.action_scale if cfg.action_scale is not None else tuple(self.robot.action_scale)  # fmt: skip
        self.events = EventManager(
            model,
            [
                FreeBodyPose(
                    go1.TRUNK,
                    Uniform((-0.5, -0.5, 0.0), (0.5, 0.5, 0.0)),
                    yaw=Uniform(-math.pi, math.pi),
                ),  # fmt: skip
                JointPositions(go1.JOINTS, Uniform(-cfg.reset_noise, cfg.reset_noise)),
            ],
            go1.home_qpos(model, self.default_pose),
        )
        self.action_map = ActionMap((JointTargets(go1.ACTUATORS, scale=scale),)).bind(
            model, go1.home_ctrl(model, self.default_pose)
        )
        jnt = [lookup(model, "joint", n) for n in go1.JOINTS]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        self._act_idx = torch.as_tensor([lookup(model, "actuator", a) for a in go1.ACTUATORS])
        self._feet_site = torch.as_tensor([lookup(model, "site", f) for f in go1.FEET])
        self._feet = [c.bind(model) for c in FOOT_CONTACTS]
        self._base = BASE_CONTACT.bind(model)
        self._thighs = [c.bind(model) for c in THIGH_CONTACTS]
        self._default = torch.as_tensor(self.default_pose, dtype=torch.float32)
        self.control_dt = float(model.opt.timestep) * cfg.frame_skip
        self._lo = torch.tensor([cfg.lin_vel_x[0], cfg.lin_vel_y[0], cfg.yaw_rate[0]], dtype=torch.float64)  # fmt: skip
        self._hi = torch.tensor([cfg.lin_vel_x[1], cfg.lin_vel_y[1], cfg.yaw_rate[1]], dtype=torch.float64)  # fmt: skip
        self._buffers: dict[str, torch.Tensor] = {}

    @classmethod
    def default_config(cls) -> Go1VelocityConfig:
        return Go1VelocityConfig()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = go1.go1_scene()
        add_contact_sensors(spec, [*FOOT_CONTACTS, BASE_CONTACT, *THIGH_CONTACTS])
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        from rewardlab.core.resources import configs_path

        return [Path(__file__).resolve(), Path(go1.__file__).resolve(), configs_path("robots", "go1.yaml"), *go1.model_files()]  # fmt: skip

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
        self.events.reset(sim, env_ids, gen)
        ids = env_ids.to(sim.qpos.device)
        for name, shape in (("air", (4,)), ("err_sum", (2,)), ("count", ()), ("cmd_steps", ()), ("prev_qvel", (12,))):  # fmt: skip
            self._buf(name, sim.qpos, *shape)[ids] = 0.0
        self._draw_commands(ids, gen, sim.qpos)

    def after_step(self, sim: SimView, state: State, gen: torch.Generator) -> None:
        """Count air time, the episode's tracking errors and the command's age; redraw the
        commands that are ``resample_steps`` old."""
        like = sim.qpos
        contact = state["foot_contact"].to(like) > 0.5
        air = self._buf("air", like, 4)
        air.copy_(torch.where(contact, torch.zeros_like(air), air + self.control_dt))
        err = torch.stack([state["lin_vel_error"], state["yaw_rate_error"]], -1).to(like)
        self._buf("err_sum", like, 2).add_(err)
        self._buf("count", like).add_(1.0)
        self._buf("prev_qvel", like, 12).copy_(sim.qvel[:, self._qvel_idx])
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
            "base_pos": StateField((3,), "m", "world", "Trunk position (floor at z = 0)."),
            "base_quat": StateField((4,), "1", "world", "Trunk orientation (w, x, y, z); x forward, z up in the trunk frame."),
            "base_height": StateField((), "m", "world", f"Trunk height above the floor (standing about {c.base_height_target} m)."),
            "base_lin_vel": StateField((3,), "m/s", "trunk", "Trunk linear velocity in the trunk frame (x forward, y left, z up)."),
            "base_ang_vel": StateField((3,), "rad/s", "trunk", "Trunk angular velocity in the trunk frame (z: yaw rate)."),
            "base_lin_vel_world": StateField((3,), "m/s", "world", "Trunk linear velocity in the world frame."),
            "base_ang_vel_world": StateField((3,), "rad/s", "world", "Trunk angular velocity in the world frame."),
            "projected_gravity": StateField((3,), "1", "trunk", "Gravity's direction (0, 0, -1) in the trunk frame: (0, 0, -1) when level."),
            "command": StateField((3,), "m/s, m/s, rad/s", "trunk", "Commanded forward velocity, lateral velocity (left +) and yaw rate; redrawn every resample_steps."),
            "joint_pos": StateField((12,), "rad", "joint", "Leg joint angles, FR, FL, RR, RL x (hip, thigh, calf)."),
            "joint_vel": StateField((12,), "rad/s", "joint", "Leg joint velocities, same order."),
            "prev_joint_vel": StateField((12,), "rad/s", "joint", "Leg joint velocities one control step earlier (zero after a reset)."),
            "joint_torque": StateField((12,), "N m", "joint", "Servo torques of the last physics substep (kp (target - q), clipped to the torque limits)."),
            "foot_pos": StateField((4, 3), "m", "world", "Foot sphere centres, FR, FL, RR, RL."),
            "foot_contact": StateField((4,), "1", "foot", "1 while a foot touches the floor (contact sensor), FR, FL, RR, RL."),
            "feet_air_time": StateField((4,), "s", "foot", "Time since each foot last touched the floor, this step included (at a touchdown: the swing's duration)."),
            "first_contact": StateField((4,), "1", "foot", "1 on the step a foot touches down after a swing."),
            "base_contact": StateField((), "1", "world", "1 when the trunk touches the floor (terminates the episode)."),
            "thigh_contact": StateField((), "1", "world", "Number of thighs touching the floor (0..4)."),
            "lin_vel_error": StateField((), "m/s", "trunk", "|command_xy - base_lin_vel_xy| now."),
            "yaw_rate_error": StateField((), "rad/s", "trunk", "|command_yaw - base_ang_vel_z| now."),
            "mean_lin_vel_error": StateField((), "m/s", "trunk", f"Episode mean of lin_vel_error so far; success needs < {c.success_lin_vel_error}."),
            "mean_yaw_rate_error": StateField((), "rad/s", "trunk", f"Episode mean of yaw_rate_error so far; success needs < {c.success_yaw_rate_error}."),
            "last_action": StateField((12,), "1", "actuator", "Action of the previous control step in [-1, 1]: joint targets default_pose + action_scale * a."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        q, v = sim.qpos, sim.qvel
        quat = q[:, 3:7]
        lin_w = v[:, 0:3]
        ang_b = v[:, 3:6]  # MuJoCo's free joint: angular velocity in the body frame
        lin_b = quat_inv_rotate(quat, lin_w)
        grav = quat_inv_rotate(quat, torch.tensor([0.0, 0.0, -1.0], dtype=q.dtype, device=q.device).expand_as(lin_w))  # fmt: skip
        cmd = self._buf("command", q, 3)
        lin_err = torch.linalg.vector_norm(cmd[:, :2] - lin_b[:, :2], dim=-1)
        yaw_err = (cmd[:, 2] - ang_b[:, 2]).abs()
        count = self._buf("count", q) + 1.0
        sums = self._buf("err_sum", q, 2)
        contact = torch.stack([c.value(sim) for c in self._feet], -1)
        air = self._buf("air", q, 4)
        ang_w = quat_inv_rotate(_conj(quat), ang_b)  # rotated into the world frame
        return {
            "base_pos": q[:, 0:3].float(),
            "base_quat": quat.float(),
            "base_height": q[:, 2].float(),
            "base_lin_vel": lin_b.float(),
            "base_ang_vel": ang_b.float(),
            "base_lin_vel_world": lin_w.float(),
            "base_ang_vel_world": ang_w.float(),
            "projected_gravity": grav.float(),
            "command": cmd.float(),
            "joint_pos": q[:, self._qpos_idx].float(),
            "joint_vel": v[:, self._qvel_idx].float(),
            "prev_joint_vel": self._buf("prev_qvel", q, 12).float(),
            "joint_torque": sim.actuator_force[:, self._act_idx].float(),
            "foot_pos": sim.site_xpos[:, self._feet_site].float(),
            "foot_contact": contact.float(),
            "feet_air_time": (air + self.control_dt).float(),
            "first_contact": ((contact > 0.5) & (air > 0)).float(),
            "base_contact": self._base.value(sim).float(),
            "thigh_contact": torch.stack([c.value(sim) for c in self._thighs], -1).sum(-1).float(),
            "lin_vel_error": lin_err.float(),
            "yaw_rate_error": yaw_err.float(),
            "mean_lin_vel_error": ((sums[:, 0] + lin_err) / count).float(),
            "mean_yaw_rate_error": ((sums[:, 1] + yaw_err) / count).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        cmd_scale = torch.tensor([2.0, 2.0, 0.25], device=state["command"].device)
        return torch.cat(
            [
                2.0 * state["base_lin_vel"],
                0.25 * state["base_ang_vel"],
                state["projected_gravity"],
                cmd_scale * state["command"],
                state["joint_pos"] - self._default.to(state["joint_pos"].device),
                0.05 * state["joint_vel"],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("2 * base_lin_vel", 3), ("0.25 * base_ang_vel", 3), ("projected_gravity", 3), ("(2, 2, 0.25) * command", 3), ("joint_pos - default_pose", 12), ("0.05 * joint_vel", 12), ("last_action", 12)]  # fmt: skip

    def terminated(self, state: State) -> torch.Tensor:
        return (state["base_contact"] > 0.5) | (state["projected_gravity"][:, 2] > 0.0)

    def success(self, state: State) -> torch.Tensor:
        return (state["mean_lin_vel_error"] < self.cfg.success_lin_vel_error) & (
            state["mean_yaw_rate_error"] < self.cfg.success_yaw_rate_error
        )

    def reward_terms(self) -> dict[str, RewardTerm]:
        c = self.cfg
        sigma, thr = c.tracking_sigma, c.air_time_threshold
        target = c.base_height_target

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
            r = ((s["feet_air_time"] - thr) * s["first_contact"]).sum(-1)
            return r * moving

        return self._weighted(
            {
                "tracking_lin_vel": (tracking_lin_vel, 1.5),
                "tracking_ang_vel": (tracking_ang_vel, 0.75),
                "lin_vel_z": (lambda s, a: s["base_lin_vel"][:, 2].square(), -2.0),
                "ang_vel_xy": (lambda s, a: s["base_ang_vel"][:, :2].square().sum(-1), -0.05),
                "orientation": (lambda s, a: s["projected_gravity"][:, :2].square().sum(-1), -2.5),
                "base_height": (base_height, -10.0),
                "torques": (lambda s, a: s["joint_torque"].square().sum(-1), -2e-4),
                "action_rate": (action_rate_l2, -0.01),
                "feet_air_time": (feet_air_time, 0.5),
                "collisions": (lambda s, a: s["thigh_contact"], -1.0),
                "termination": (lambda s, a: s["base_contact"], -2.0),
            }
        )


def _conj(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[:, :1], -q[:, 1:]], -1)
