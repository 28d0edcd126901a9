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

``go1_velocity_rough`` is the same task on Playground's rough-terrain scene, its height field
replaced by :data:`TERRAIN` (graded tiles of random bumps, :mod:`.terrain`), with legged_gym's
terrain curriculum deciding which level each world spawns on; ``base_height`` is measured above
the ground under the trunk. The observation is unchanged (a blind policy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardTerm, action_rate_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import go1, terrain
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    Contact,
    ContactGroup,
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
    CameraSpec,
    OptOut,
    Prompts,
    Unavailable,
    entry,
)
from rewardlab.envs.tasks.terrain import TerrainGrid, curriculum_levels, spawn_clearance
from rewardlab.envs.tasks.velocity_tracking import (
    LAST_ACTION,
    VelocityTrackingConfig,
    VelocityTrackingTask,
    legged_gym_names,
)

State = Mapping[str, torch.Tensor]

FOOT_CONTACTS = tuple(Contact(f"foot_{f}", geom1=f, geom2=go1.FLOOR) for f in go1.FEET)
"""One ``found`` contact sensor per foot sphere with the floor."""
BASE_CONTACT = Contact("base", body1=go1.TRUNK, geom2=go1.FLOOR)
"""The trunk's collision geoms on the floor (terminates the episode)."""
THIGH_CONTACTS = tuple(Contact(f"thigh_{leg}", body1=b, geom2=go1.FLOOR) for leg, b in zip(go1.LEGS, go1.THIGHS, strict=True))  # fmt: skip
"""Each thigh's capsules on the floor (a collision)."""


@dataclass(frozen=True)
class Go1VelocityConfig(VelocityTrackingConfig):
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
    base_height_target: float = 0.27
    """Trunk height (m) the base_height term pulls towards."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: tracking_lin_vel, tracking_ang_vel, lin_vel_z,
    ang_vel_xy, orientation, base_height, torques, action_rate, feet_air_time, collisions,
    termination."""

    def validate(self) -> None:
        super().validate()
        if self.action_scale is not None and not self.action_scale > 0:
            raise ValueError(f"action_scale must be > 0 or null, got {self.action_scale}")


@register_task
class Go1Velocity(VelocityTrackingTask):
    """Make the Unitree Go1 quadruped walk at a commanded forward, lateral and yaw velocity."""

    name = "go1_velocity"
    model_file = ""
    sim_fields = ("sensordata", "site_xpos", "actuator_force")
    success_threshold = 0.8
    extra_buffers = (("prev_qvel", (12,)),)

    reward_camera = CameraSpec(1.6, 135.0, -20.0, (0.0, 0.0, 0.0), track_body=go1.TRUNK)
    video_camera = reward_camera  # follows the robot (the scene's camera 0 stays at the origin)
    prompts = Prompts(
        ("a four-legged robot dog walking on the ground",),
        ("a four-legged robot dog lying on the ground",),
    )
    eureka_names = {
        # legged_gym / DrEureka (walk-these-ways) env.<name>; body-frame velocities as legged_gym
        **legged_gym_names(
            go1.JOINTS, "trunk", "`[1, 12]` the default pose (sim_configs/robots/go1.yaml)"
        ),  # fmt: skip
        "last_dof_vel": entry("prev_joint_vel"),
        "foot_positions": entry("foot_pos"),
        "foot_contact": entry("foot_contact"),
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
        self._thighs = ContactGroup([c.bind(model) for c in THIGH_CONTACTS])
        self._default = torch.as_tensor(self.default_pose, dtype=torch.float32)
        self._cmd_scale = torch.tensor([2.0, 2.0, 0.25])
        self.kp = np.asarray(self.robot.kp, dtype=np.float64)
        self.kd = np.asarray(self.robot.kd, dtype=np.float64)
        self.effort_limits = np.asarray(self.robot.effort_limits, dtype=np.float64)
        self.control_dt = float(model.opt.timestep) * cfg.frame_skip
        self._init_commands()

    @classmethod
    def default_config(cls) -> Go1VelocityConfig:
        return Go1VelocityConfig()

    @classmethod
    def scene(cls) -> mujoco.MjSpec:
        """The task's scene before its contact sensors are added (a variant edits the ground)."""
        return go1.go1_scene()

    @classmethod
    def scene_files(cls) -> list[Path]:
        """The files :meth:`scene` reads (recorded in run directories by :meth:`task_files`)."""
        return go1.model_files()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = cls.scene()
        add_contact_sensors(spec, [*FOOT_CONTACTS, BASE_CONTACT, *THIGH_CONTACTS])
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        from rewardlab.core.resources import configs_path

        return [Path(__file__).resolve(), Path(go1.__file__).resolve(), configs_path("robots", "go1.yaml"), *cls.scene_files()]  # fmt: skip

    def _after_step_buffers(self, sim: SimView, state: State) -> None:
        self._buf("prev_qvel", sim.qpos, 12).copy_(sim.qvel[:, self._qvel_idx])

    # -- state ------------------------------------------------------------------------------------

    def state_spec(self) -> dict[str, StateField]:
        return {
            **self.tracking_spec("trunk", "FR, FL, RR, RL", "Leg joint angles, FR, FL, RR, RL x (hip, thigh, calf).", "Foot sphere centres, FR, FL, RR, RL."),
            "prev_joint_vel": StateField((12,), "rad/s", "joint", "Leg joint velocities one control step earlier (zero after a reset)."),
            "base_contact": StateField((), "1", "world", "1 when the trunk touches the floor (terminates the episode)."),
            "thigh_contact": StateField((), "1", "world", "Number of thighs touching the floor (0..4)."),
            "last_action": LAST_ACTION,
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            **self.tracking_state(sim),
            "prev_joint_vel": self._buf("prev_qvel", sim.qpos, 12).float(),
            "base_contact": self._base.value(sim).float(),
            "thigh_contact": self._thighs.value(sim).sum(-1).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        dev = state["command"].device
        if self._cmd_scale.device != dev:  # once (warp: the GPU), not every step
            self._cmd_scale, self._default = self._cmd_scale.to(dev), self._default.to(dev)
        return torch.cat(
            [
                2.0 * state["base_lin_vel"],
                0.25 * state["base_ang_vel"],
                state["projected_gravity"],
                self._cmd_scale * state["command"],
                state["joint_pos"] - self._default,
                0.05 * state["joint_vel"],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("2 * base_lin_vel", 3), ("0.25 * base_ang_vel", 3), ("projected_gravity", 3), ("(2, 2, 0.25) * command", 3), ("joint_pos - default_pose", 12), ("0.05 * joint_vel", 12), ("last_action", 12)]  # fmt: skip

    def terminated(self, state: State) -> torch.Tensor:
        return (state["base_contact"] > 0.5) | (state["projected_gravity"][:, 2] > 0.0)

    def reward_terms(self) -> dict[str, RewardTerm]:
        t = self.tracking_terms()
        return self._weighted(
            {
                "tracking_lin_vel": (t["tracking_lin_vel"], 1.5),
                "tracking_ang_vel": (t["tracking_ang_vel"], 0.75),
                "lin_vel_z": (lambda s, a: s["base_lin_vel"][:, 2].square(), -2.0),
                "ang_vel_xy": (lambda s, a: s["base_ang_vel"][:, :2].square().sum(-1), -0.05),
                "orientation": (lambda s, a: s["projected_gravity"][:, :2].square().sum(-1), -2.5),
                "base_height": (t["base_height"], -10.0),
                "torques": (lambda s, a: s["joint_torque"].square().sum(-1), -2e-4),
                "action_rate": (action_rate_l2, -0.01),
                "feet_air_time": (t["feet_air_time"], 0.5),
                "collisions": (lambda s, a: s["thigh_contact"], -1.0),
                "termination": (lambda s, a: s["base_contact"], -2.0),
            }
        )


# -- rough terrain with a curriculum ----------------------------------------------------------------

TERRAIN = TerrainGrid()
"""The rough variant's ground: 10 levels x 8 tiles of 4 m, bumps up to 6 cm (:mod:`.terrain`)."""


@dataclass(frozen=True)
class Go1RoughConfig(Go1VelocityConfig):
    """Go1 velocity tracking on graded rough terrain (the ground: :data:`TERRAIN`)."""

    curriculum: bool = True
    """Terrain curriculum (legged_gym): a world starts at a level up to ``init_max_level`` and
    moves up a level after an episode in which it walked farther than half a tile, down one
    after walking less than half of what its commands asked for. Off: every episode starts on a
    uniformly random level (for evaluation over all terrain)."""
    init_max_level: int = 2
    """Highest level a world starts at when the curriculum is on (legged_gym's
    ``max_init_terrain_level``)."""

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.init_max_level < TERRAIN.levels:
            raise ValueError(f"init_max_level must be in [0, {TERRAIN.levels - 1}], got {self.init_max_level}")  # fmt: skip


@register_task
class Go1VelocityRough(Go1Velocity):
    """Make the Unitree Go1 walk at a commanded velocity over rough ground, harder as it learns."""

    name = "go1_velocity_rough"
    extra_buffers = (("prev_qvel", (12,)), ("base_xy", (2,)))
    prompts = Prompts(
        ("a four-legged robot dog walking over bumpy ground",),
        ("a four-legged robot dog lying on bumpy ground",),
    )
    eureka_names = {
        **Go1Velocity.eureka_names,
        "measured_heights": Unavailable(
            "the policy is blind: terrain heights around the robot are not sampled; "
            "env.base_height is the trunk's height above the ground under it"
        ),  # fmt: skip
    }

    def __init__(self, cfg: Go1RoughConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: Go1RoughConfig = cfg
        self._ground = torch.as_tensor(TERRAIN.heights())

    @classmethod
    def default_config(cls) -> Go1RoughConfig:
        return Go1RoughConfig()

    @classmethod
    def scene(cls) -> mujoco.MjSpec:
        spec = go1.go1_scene(rough=True)
        TERRAIN.apply(spec, "hfield")
        # the flat scene's headlight and white sky (the rough scene's defaults render nearly black)
        spec.visual.headlight.diffuse = [0.8, 0.8, 0.8]
        spec.visual.headlight.ambient = [0.2, 0.2, 0.2]
        spec.add_texture(type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, rgb1=[1, 1, 1], rgb2=[1, 1, 1], width=800, height=800)  # fmt: skip
        # a light checker (0.5 m squares) instead of the dark rock photo, so the bumps show
        spec.add_texture(name="terrain", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, rgb1=[0.85, 0.85, 0.85], rgb2=[0.65, 0.65, 0.65], width=300, height=300)  # fmt: skip
        material = spec.add_material(name="terrain", texrepeat=[2, 2], texuniform=True)
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "terrain"
        spec.geom(go1.FLOOR).material = "terrain"
        return spec

    @classmethod
    def scene_files(cls) -> list[Path]:
        return [Path(terrain.__file__).resolve(), *go1.model_files(rough=True)]

    def _after_step_buffers(self, sim: SimView, state: State) -> None:
        super()._after_step_buffers(sim, state)
        self._buf("base_xy", sim.qpos, 2).copy_(sim.qpos[:, 0:2])  # copy_ converts the dtype

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        """Move the worlds whose episodes ended through the curriculum (their last base position
        against their spawn point), then spawn each world on a tile of its level."""
        like, ids = sim.qpos, env_ids.to(sim.qpos.device)
        level, started = self._buf("level", like), self._buf("started", like)
        spawn = self._buf("spawn_xy", like, 2)
        if self.cfg.curriculum:
            ended = ids[started[ids] > 0]
            if len(ended):
                walked = torch.linalg.vector_norm(self._buf("base_xy", like, 2)[ended] - spawn[ended], dim=-1)  # fmt: skip
                asked = torch.linalg.vector_norm(self._buf("command", like, 3)[ended, :2], dim=-1) * (self.cfg.episode_steps * self.control_dt)  # fmt: skip
                level[ended] = curriculum_levels(level[ended], walked, asked, TERRAIN.tile_size, TERRAIN.levels, gen).to(level)  # fmt: skip
            fresh, top = ids[started[ids] == 0], self.cfg.init_max_level
        else:
            fresh, top = ids, TERRAIN.levels - 1
        if len(fresh):
            level[fresh] = torch.randint(0, top + 1, (len(fresh),), generator=gen, device=gen.device).to(level)  # fmt: skip
        column = torch.randint(0, TERRAIN.columns, (len(ids),), generator=gen, device=gen.device)
        super().reset(sim, env_ids, gen)  # the pose around the origin, commands, zeroed buffers
        q = sim.qpos[ids]
        q[:, 0:2] += TERRAIN.tile_centers(level[ids], column).to(like)
        q[:, 2] += TERRAIN.base_height + spawn_clearance(TERRAIN, level[ids]).to(like)
        sim.qpos[ids] = q
        spawn[ids] = q[:, 0:2].to(spawn)
        self._buf("base_xy", like, 2)[ids] = q[:, 0:2].to(spawn)
        started[ids] = 1.0

    def episode_metrics(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``charts/terrain_level``: the level each ending episode was played on."""
        return {"charts/terrain_level": self._buffers["level"][env_ids.to(self._buffers["level"].device)].float()}  # fmt: skip

    def state_spec(self) -> dict[str, StateField]:
        spec = super().state_spec()
        spec["base_height"] = StateField((), "m", "world", f"Trunk height above the ground under it (standing about {self.cfg.base_height_target} m).")  # fmt: skip
        return spec

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().state(sim, last_action)
        q = sim.qpos
        if self._ground.device != q.device or self._ground.dtype != q.dtype:
            self._ground = self._ground.to(
                q.device, q.dtype
            )  # once, not every step (warp: float32)
        ground = TERRAIN.height_at(q[:, 0:2], self._ground)
        out["base_height"] = (q[:, 2] - ground).float()
        return out
