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
from rewardlab.envs.tasks.base import SimView, register_task
from rewardlab.envs.tasks.knowledge import (
    Binding,
    CameraSpec,
    OptOut,
    Prompts,
    Unavailable,
    entry,
)
from rewardlab.envs.tasks.velocity_tracking import (
    LAST_ACTION,
    VelocityTrackingConfig,
    VelocityTrackingTask,
    legged_gym_names,
)

State = Mapping[str, torch.Tensor]

FOOT_CONTACTS = tuple(Contact(f, geom1=f, geom2=g1.FLOOR) for f in g1.FEET)
"""One ``found`` contact sensor per foot box with the floor (sensors ``contact_left_foot``, ...)."""
_HIP_ROLL_YAW = tuple(j for j in g1.LEG_JOINTS if "hip_roll" in j or "hip_yaw" in j)


@dataclass(frozen=True)
class G1VelocityConfig(VelocityTrackingConfig):
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
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: tracking_lin_vel, tracking_ang_vel, lin_vel_z,
    ang_vel_xy, orientation, base_height, action_rate, torques, hip_deviation, feet_air_time,
    contact_phase, swing_height, feet_slip, alive, termination."""

    def validate(self) -> None:
        super().validate()
        for name in ("action_scale", "gait_period", "fall_height", "max_tilt"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not 0.0 <= self.stance_fraction <= 1.0:
            raise ValueError(f"stance_fraction must be in [0, 1], got {self.stance_fraction}")
        if self.swing_height < 0:
            raise ValueError(f"swing_height must be >= 0, got {self.swing_height}")


@register_task
class G1Velocity(VelocityTrackingTask):
    """Make the Unitree G1 humanoid walk at a commanded forward, lateral and yaw velocity."""

    name = "g1_velocity"
    model_file = ""
    sim_fields = ("sensordata", "site_xpos", "xquat", "actuator_force")
    success_threshold = 0.8
    num_feet = 2

    reward_camera = CameraSpec(2.5, 135.0, -15.0, (0.0, 0.0, 0.0), track_body=g1.PELVIS)
    video_camera = reward_camera  # follows the robot (the scene's camera 0 stays at the origin)
    prompts = Prompts(
        ("a humanoid robot walking",),
        ("a humanoid robot lying on the floor",),
    )
    eureka_names = {
        # legged_gym / unitree_rl_gym env.<name>; body-frame velocities as legged_gym
        **legged_gym_names(
            g1.LEG_JOINTS,
            "pelvis",
            "`[1, 12]` the leg joints' default pose (the `knees_bent` keyframe)",
        ),  # fmt: skip
        "feet_pos": entry("foot_pos"),
        "contact": entry("foot_contact"),
        "leg_phase": entry("leg_phase"),
        "phase": Binding(
            lambda s, a, dt: s["leg_phase"][:, 0],
            "`[N]` the gait clock in [0, 1) (the left leg's phase)",
        ),  # fmt: skip
        "contact_forces": Unavailable(
            "per-body contact forces are not sensed; use env.contact ([N, 2], 1 on the ground; left, right)"
        ),  # fmt: skip
        "feet_indices": Unavailable(
            "feet are not rigid-body indices here; env.contact, env.feet_pos and env.feet_air_time are [N, 2] in left, right order"
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
        self._init_commands()

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

    # -- state ------------------------------------------------------------------------------------

    def state_spec(self) -> dict[str, StateField]:
        c = self.cfg
        spec = self.tracking_spec(
            "pelvis",
            "[left, right]",
            "Leg joint angles: left hip pitch, roll, yaw, knee, ankle pitch, roll, then the right leg.",
            f"Foot sites (ankle roll links) [left, right]; z is about {g1.SOLE_OFFSET} with the foot flat on the floor.",
        )  # fmt: skip
        spec["base_height"] = StateField((), "m", "world", f"Pelvis height above the floor (standing about {c.base_height_target} m; a fall below {c.fall_height} m terminates).")  # fmt: skip
        return {
            **spec,
            "torso_upright": StateField((), "1", "world", f"z of the torso's up axis: 1 vertical; below cos({c.max_tilt}) terminates."),
            "foot_vel": StateField((2, 3), "m/s", "world", "Foot site linear velocities [left, right]."),
            "leg_phase": StateField((2,), "1", "foot", f"Gait clock of each leg in [0, 1) (period {c.gait_period} s; right = left + 0.5); stance below {c.stance_fraction}."),
            "last_action": LAST_ACTION,
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        tq = sim.xquat[:, self._torso]
        # the gait clock runs with the episode: (count - 1) completed steps plus this one
        t = (self._buf("count", sim.qpos) + 1.0) * self.control_dt
        left = torch.remainder(t / self.cfg.gait_period, 1.0)
        return {
            **self.tracking_state(sim),
            "torso_upright": (1.0 - 2.0 * (tq[:, 1] ** 2 + tq[:, 2] ** 2)).float(),
            "foot_vel": sim.sensordata[:, self._foot_vel_adr].float(),
            "leg_phase": torch.stack([left, torch.remainder(left + 0.5, 1.0)], -1).float(),
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

    def reward_terms(self) -> dict[str, RewardTerm]:
        c = self.cfg
        t = self.tracking_terms()
        stance = c.stance_fraction
        swing_z = g1.SOLE_OFFSET + c.swing_height
        fall_cos = math.cos(c.max_tilt)

        def hip_deviation(s: State, a: torch.Tensor) -> torch.Tensor:
            """Squared hip roll and yaw angles (rad^2): keeps the legs under the body."""
            d = s["joint_pos"] - self._default.to(s["joint_pos"].device)
            return d[:, self._hip_idx.to(d.device)].square().sum(-1)

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
                "tracking_lin_vel": (t["tracking_lin_vel"], 1.0),
                "tracking_ang_vel": (t["tracking_ang_vel"], 0.5),
                "lin_vel_z": (lambda s, a: s["base_lin_vel"][:, 2].square(), -2.0),
                "ang_vel_xy": (lambda s, a: s["base_ang_vel"][:, :2].square().sum(-1), -0.05),
                "orientation": (lambda s, a: s["projected_gravity"][:, :2].square().sum(-1), -1.0),
                "base_height": (t["base_height"], -10.0),
                "action_rate": (action_rate_l2, -0.01),
                "torques": (lambda s, a: s["joint_torque"].square().sum(-1), -1e-5),
                "hip_deviation": (hip_deviation, -1.0),
                "feet_air_time": (t["feet_air_time"], 1.0),
                "contact_phase": (contact_phase, 0.18),
                "swing_height": (swing_height, -20.0),
                "feet_slip": (feet_slip, -0.25),
                "alive": (alive, 0.15),
                "termination": (termination, -2.0),
            }
        )


__all__ = ["FOOT_CONTACTS", "G1Velocity", "G1VelocityConfig"]
