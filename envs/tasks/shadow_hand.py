"""Shadow Hand cube reorientation: turn a cube in the hand to a random goal orientation, again and again.

The task of IsaacGymEnvs' ``ShadowHand`` (OpenAI's *Learning Dexterity* block task): a
24-joint Shadow Hand (20 position-controlled actuators; the distal and middle joints of the four
fingers are coupled by tendons), fixed with its palm up, holds a 5 cm cube. Each episode draws a
random goal orientation (a rotation of up to 180 deg about x, then up to 180 deg about y, as
IsaacGymEnvs draws it); when the cube's orientation is within ``success_tolerance`` rad of the
goal, the goal counts as reached and a new one is drawn at once (IsaacGymEnvs' ``reset_goal_buf``).
The episode ends when the cube falls (``fall_dist`` from where it should be held) or at the time
limit (10 s).

**Success, as IsaacGymEnvs and Eureka count it.** The metric is the number of *consecutive
successes*: goals reached in one episode, counted when the episode ends, whether it ends by the
time limit or by a fall (a fall does not undo the goals reached before it). Every finished episode
reports it as ``charts/consecutive_successes`` in ``info["episode"]`` (logged by the trainer);
an episode *succeeds* (the boolean success of evaluations and searches) when it reached at least
``success_goals`` goals (``success_survives_termination``).

**Model.** The hand and cube are gymnasium-robotics' ``hand/manipulate_block.xml`` (OpenAI's
Shadow Hand MJCF, the model IsaacGymEnvs loads), read from the installed package's files without
importing its code (``pip install 'rewardlab[hand]'``), and composed with :class:`mujoco.MjSpec`:
the goal cube becomes a mocap body shown beside the hand, the invisible floor is lowered so that a
dropped cube falls past ``fall_dist``, a camera is added, the joint-position sensors (``qpos``
already) are removed, and the physics runs at 100 Hz with the implicit-fast integrator (4 steps
per control step: 25 Hz control, OpenAI's 0.04 s control period; see docs/shadow_hand.md).

**Actions** are absolute joint-position targets, ``ctrl = mid + half * a`` over each actuator's
range (= IsaacGymEnvs' ``scale(actions, lower, upper)`` with ``actionsMovingAverage = 1``).

**Reward** (default, the terms of IsaacGymEnvs' ``compute_hand_reward``):
``-10 * goal_dist + 1 / (rot_dist + 0.1) - 0.0002 * |a|^2 + 250 * goal_reached`` (+ ``fall_penalty``,
0 as in IsaacGymEnvs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardTerm, action_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks.assets import AssetPackage
from rewardlab.envs.tasks.authoring import quat_conjugate, quat_mul, quat_rotate
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task, uniform
from rewardlab.envs.tasks.isaacgym_names import T2R_JOINTS, joint_limits
from rewardlab.envs.tasks.knowledge import (
    Binding,
    CameraSpec,
    Constant,
    OptOut,
    Prompts,
    Unavailable,
    config_value,
    constant,
    entry,
)

State = Mapping[str, torch.Tensor]

HAND_PACKAGE = "gymnasium_robotics"
"""The registry package whose files hold the Shadow Hand model (never imported)."""
HAND_EXTRA = "hand"
"""RewardLab's optional dependency group that installs it (``pip install 'rewardlab[hand]'``)."""
HAND_ASSETS = AssetPackage(
    HAND_PACKAGE, "gymnasium-robotics>=1.4", install=f"pip install 'rewardlab[{HAND_EXTRA}]'"
)
"""Where :data:`SCENE_FILE` is found (a missing package skips the task's tests cleanly)."""
SCENE_FILE = "envs/assets/hand/manipulate_block.xml"
"""The scene (hand + cube + goal cube) inside that package."""

JOINTS = (
    "WRJ1", "WRJ0",
    "FFJ3", "FFJ2", "FFJ1", "FFJ0",
    "MFJ3", "MFJ2", "MFJ1", "MFJ0",
    "RFJ3", "RFJ2", "RFJ1", "RFJ0",
    "LFJ4", "LFJ3", "LFJ2", "LFJ1", "LFJ0",
    "THJ4", "THJ3", "THJ2", "THJ1", "THJ0",
)  # fmt: skip
"""The hand's 24 joints (``robot0:<name>``), in ``joint_pos`` order: wrist, then first, middle,
ring, little finger and thumb, each from the knuckle out (J0, the distal joint, is coupled to J1
by a tendon in the four fingers)."""
_JOINT_NAMES = tuple(f"robot0:{j}" for j in JOINTS)
FINGERS = ("ff", "mf", "rf", "lf", "th")
"""Fingertip order of ``fingertip_pos`` / ``fingertip_touch``: first, middle, ring, little, thumb."""

OBJECT_START = (1.0, 0.87, 0.2)
"""Where the cube is dropped into the palm (m, world): gymnasium-robotics' ``object`` body."""
GOAL_MARKER = (0.92, 0.87, 0.26)
"""Where the goal cube is shown (m, world): beside and above the hand, out of its reach."""
FLOOR_Z = -0.3
"""Height (m) of the (invisible) floor: far enough below the palm that a dropped cube passes
``fall_dist`` (on gymnasium-robotics' floor at z = 0 it would stop 0.17 m away)."""
TIMESTEP = 0.01
"""Physics step (s): MuJoCo Playground's LEAP-hand cube task uses the same."""
CAMERA = "view"
"""The camera added to the scene (camera 0: ``env.render``)."""
CAMERA_LOOKAT = (0.98, 0.9, 0.19)
"""Point (m, world) the camera and the reward camera look at: the palm, with the goal cube in view."""
CAMERA_AZIMUTH, CAMERA_ELEVATION, CAMERA_DISTANCE = -60.0, -35.0, 0.45
"""The camera's direction (deg, MuJoCo's free-camera convention) and distance (m)."""


def hand_scene_file() -> Path:
    """Path of gymnasium-robotics' ``manipulate_block.xml``, found without importing the package.

    Raises:
        MissingAssetsError: gymnasium-robotics is not installed.
    """
    return HAND_ASSETS.file(SCENE_FILE, needed_by="the Shadow Hand tasks")


def build_spec() -> mujoco.MjSpec:
    """The task's scene, composed from gymnasium-robotics' files with :class:`mujoco.MjSpec`."""
    spec = mujoco.MjSpec.from_file(str(hand_scene_file()))
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    goal = spec.body("target")
    for joint in list(goal.joints):  # a free joint in the original: a shown pose, not physics
        spec.delete(joint)
    goal.mocap = True
    goal.pos = list(GOAL_MARKER)
    spec.geom("floor0").pos = [1.0, 1.0, FLOOR_Z]
    for sensor in list(spec.sensors):  # joint-position sensors repeat qpos; keep the touch ones
        if sensor.type == mujoco.mjtSensor.mjSENS_JOINTPOS:
            spec.delete(sensor)
    a, e = math.radians(CAMERA_AZIMUTH), math.radians(CAMERA_ELEVATION)
    forward = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    spec.worldbody.add_camera(
        name=CAMERA,
        pos=np.asarray(CAMERA_LOOKAT) - CAMERA_DISTANCE * forward,
        xyaxes=np.concatenate([right, up]),
    )
    return spec


# -- quaternions (w, x, y, z) --------------------------------------------------------------------


def rotation_distance(q: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Angle (rad, in [0, pi]) of the rotation between orientations ``q`` and ``goal`` ``[..., 4]``:
    ``2 asin(|vec(q * conj(goal))|)``, as IsaacGymEnvs' ``rot_dist``."""
    diff = quat_mul(q, quat_conjugate(goal))
    return 2.0 * torch.asin(torch.linalg.vector_norm(diff[..., 1:], dim=-1).clamp(max=1.0))


def random_orientation(gen: torch.Generator, n: int, like: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` orientations (w, x, y, z) drawn as IsaacGymEnvs' ``randomize_rotation``: a
    rotation by ``pi * u0`` about x, then by ``pi * u1`` about the (rotated) y axis, u ~ U(-1, 1)."""
    u = uniform(gen, (n, 2), like)
    hx, hy = 0.5 * math.pi * u[:, 0], 0.5 * math.pi * u[:, 1]
    zero = torch.zeros_like(hx)
    qx = torch.stack([torch.cos(hx), torch.sin(hx), zero, zero], -1)
    qy = torch.stack([torch.cos(hy), zero, torch.sin(hy), zero], -1)
    return quat_mul(qx, qy)


def tilted(q: torch.Tensor, angle: float, gen: torch.Generator) -> torch.Tensor:
    """Orientations ``q`` ``[n, 4]`` (w, x, y, z) turned by ``angle`` (rad) about a horizontal
    world axis of uniformly random heading (the rotation is applied in the world frame)."""
    heading = math.pi * uniform(gen, (q.shape[0],), q)
    half = 0.5 * angle
    s = math.sin(half) * torch.ones_like(heading)
    turn = torch.stack(
        [math.cos(half) * torch.ones_like(heading), s * torch.cos(heading), s * torch.sin(heading), torch.zeros_like(heading)], -1
    )  # fmt: skip
    return quat_mul(turn, q)


def _xyzw(q: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) -> (x, y, z, w): Isaac Gym's quaternion order."""
    return torch.cat([q[..., 1:], q[..., :1]], -1)


# -- config --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowHandConfig(TaskConfig):
    """Shadow Hand reorientation settings (IsaacGymEnvs ``ShadowHand.yaml`` values where it has
    them; timestep 0.01 s in the scene, 25 Hz control at frame_skip 4)."""

    frame_skip: int = 4
    """Physics steps per control step (0.04 s at 4)."""
    episode_steps: int = 250
    """Time limit in control steps (10 s at 25 Hz, IsaacGymEnvs' 600 steps at 60 Hz)."""
    reset_noise: float = 0.2
    """Initial joint angles: this fraction of each joint's range, drawn uniformly (IsaacGymEnvs'
    ``resetDofPosRandomInterval``; clipped to the joint limits)."""
    object_position_noise: float = 0.01
    """Half-width (m) of the uniform noise on the cube's initial position (``resetPositionNoise``)."""
    success_tolerance: float = 0.1
    """A goal is reached when the cube's orientation is within this angle (rad) of it."""
    goal_angle: float = 0.0
    """0 (default): each goal is a random orientation, drawn as IsaacGymEnvs draws them. > 0: a
    reduced task (a curriculum stage, or a learning test on a small budget): each goal is the cube's
    orientation when the goal is drawn, tilted by this angle (rad) about a random horizontal axis."""
    success_goals: int = 1
    """An episode succeeds when it reached at least this many goals (consecutive successes)."""
    max_consecutive_successes: int = 0
    """End the episode once this many goals are reached (0: never, as IsaacGymEnvs' default)."""
    fall_dist: float = 0.24
    """The episode ends (the cube fell) when the cube is this far (m) from ``goal_pos``."""
    goal_height_offset: float = -0.04
    """``goal_pos`` is the cube's start position moved by this much (m) along z (IsaacGymEnvs:
    4 cm lower, about where the cube comes to rest in the palm)."""
    dist_reward_scale: float = -10.0
    """Weight of ``goal_dist`` (m) in the default reward (``distRewardScale``)."""
    rot_reward_scale: float = 1.0
    """Weight of ``1 / (rot_dist + rot_eps)`` (``rotRewardScale``)."""
    rot_eps: float = 0.1
    """``rotEps`` (rad): bounds the rotation term at ``1 / rot_eps``."""
    action_penalty_scale: float = -0.0002
    """Weight of the squared action norm (``actionPenaltyScale``)."""
    reach_goal_bonus: float = 250.0
    """Reward of the step a goal is reached (``reachGoalBonus``)."""
    fall_penalty: float = 0.0
    """Reward of the step the cube falls (``fallPenalty``; 0 in IsaacGymEnvs)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the term weights: object_distance, rotation, action_penalty, goal_bonus, fall
    (the defaults are the ``*_scale`` / ``*_bonus`` / ``*_penalty`` fields above)."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.reset_noise <= 1.0:
            raise ValueError(f"reset_noise must be in [0, 1] (fraction of the joint ranges), got {self.reset_noise}")  # fmt: skip
        if not 0.0 <= self.object_position_noise <= 0.05:
            raise ValueError(f"object_position_noise must be in [0, 0.05] m, got {self.object_position_noise}")  # fmt: skip
        if not 0.0 < self.success_tolerance < math.pi:
            raise ValueError(f"success_tolerance must be in (0, pi) rad, got {self.success_tolerance}")  # fmt: skip
        if not 0.0 <= self.goal_angle <= math.pi:
            raise ValueError(f"goal_angle must be in [0, pi] rad (0: random goals), got {self.goal_angle}")  # fmt: skip
        if self.success_goals < 1:
            raise ValueError(f"success_goals must be >= 1, got {self.success_goals}")
        if self.max_consecutive_successes < 0:
            raise ValueError(f"max_consecutive_successes must be >= 0 (0: no limit), got {self.max_consecutive_successes}")  # fmt: skip
        if not 0.05 <= self.fall_dist <= 0.5:
            raise ValueError(f"fall_dist must be in [0.05, 0.5] m, got {self.fall_dist}")
        if not -0.1 <= self.goal_height_offset <= 0.1:
            raise ValueError(f"goal_height_offset must be in [-0.1, 0.1] m, got {self.goal_height_offset}")  # fmt: skip
        if self.rot_eps <= 0:
            raise ValueError(f"rot_eps must be > 0 rad, got {self.rot_eps}")
        for name in ("dist_reward_scale", "rot_reward_scale", "action_penalty_scale", "reach_goal_bonus", "fall_penalty"):  # fmt: skip
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")


# -- reward terms --------------------------------------------------------------------------------


def object_distance(state: State, action: torch.Tensor) -> torch.Tensor:
    """Distance (m) from the cube to ``goal_pos`` (penalize with a negative weight)."""
    return state["goal_dist"]


def rotation(state: State, action: torch.Tensor, rot_eps: float = 0.1) -> torch.Tensor:
    """``1 / (rot_dist + rot_eps)``: grows as the cube turns towards the goal orientation."""
    return 1.0 / (state["rot_dist"].abs() + rot_eps)


def goal_bonus(state: State, action: torch.Tensor) -> torch.Tensor:
    """1 on the step a goal is reached, else 0."""
    return state["goal_reached"]


def fall(state: State, action: torch.Tensor) -> torch.Tensor:
    """1 on the step the cube falls (the episode's last), else 0."""
    return state["fell"]


# -- IsaacGymEnvs names ----------------------------------------------------------------------------


def _config(field: str, isaacgym: str) -> Constant:
    return config_value(field, f"the task config's `{field}` (IsaacGymEnvs' `{isaacgym}`; same default)")  # fmt: skip


def _pose(pos: str, quat: str) -> Binding:
    return Binding(
        lambda s, a, dt: torch.cat([s[pos], _xyzw(s[quat])], -1),
        f"`[N, 7]`: `{pos}`, `{quat}` as (x, y, z, w)",
    )


def _zeros(doc: str) -> Binding:
    return Binding(lambda s, a, dt: torch.zeros_like(s["goal_dist"]), doc)


EUREKA_NAMES: dict[str, Binding | Constant | Unavailable] = {
    "object_rot": Binding(
        lambda s, a, dt: _xyzw(s["object_quat"]), "`object_quat` as (x, y, z, w)"
    ),  # fmt: skip
    "object_pose": _pose("object_pos", "object_quat"),
    "goal_rot": Binding(lambda s, a, dt: _xyzw(s["goal_quat"]), "`goal_quat` as (x, y, z, w)"),
    "goal_pose": _pose("goal_pos", "goal_quat"),
    "target_pos": entry("goal_pos"),
    "target_rot": Binding(
        lambda s, a, dt: _xyzw(s["goal_quat"]), "`goal_quat` as (x, y, z, w)"
    ),  # fmt: skip
    "shadow_hand_dof_pos": entry("joint_pos"),
    "shadow_hand_dof_vel": entry("joint_vel"),
    "dof_pos": entry("joint_pos"),
    "dof_vel": entry("joint_vel"),
    "successes": Binding(
        lambda s, a, dt: s["goals_reached"] - s["goal_reached"],
        "`goals_reached - goal_reached`: goals reached before this step (IsaacGymEnvs adds this step's itself)",
    ),  # fmt: skip
    "reset_goal_buf": _zeros("`[N]` zeros: a reached goal is redrawn before the next step"),
    "rew_buf": _zeros(
        "`[N]` zeros: IsaacGymEnvs' reward buffer, which compute_hand_reward overwrites"
    ),  # fmt: skip
    "consecutive_successes": Binding(
        lambda s, a, dt: s["goals_reached"],
        "`goals_reached` (IsaacGymEnvs' running average over finished episodes is a logging value)",
    ),  # fmt: skip
    "shadow_hand_dof_lower_limits": joint_limits(_JOINT_NAMES, "lower"),
    "shadow_hand_dof_upper_limits": joint_limits(_JOINT_NAMES, "upper"),
    "dist_reward_scale": _config("dist_reward_scale", "distRewardScale"),
    "rot_reward_scale": _config("rot_reward_scale", "rotRewardScale"),
    "rot_eps": _config("rot_eps", "rotEps"),
    "action_penalty_scale": _config("action_penalty_scale", "actionPenaltyScale"),
    "success_tolerance": _config("success_tolerance", "successTolerance"),
    "reach_goal_bonus": _config("reach_goal_bonus", "reachGoalBonus"),
    "fall_dist": _config("fall_dist", "fallDistance"),
    "fall_penalty": _config("fall_penalty", "fallPenalty"),
    "max_consecutive_successes": _config(
        "max_consecutive_successes", "maxConsecutiveSuccesses"
    ),  # fmt: skip
    "av_factor": constant(
        0.1, "IsaacGymEnvs' `averFactor` (smooths its logged consecutive_successes)"
    ),  # fmt: skip
    "ignore_z_rot": constant(False, "IsaacGymEnvs' `ignore_z_rot` (True only for the pen)"),
    "fingertip_state": Unavailable(
        "fingertip orientations and velocities are not in the state; fingertip_pos has the positions"
    ),  # fmt: skip
    "obs_buf": Unavailable(
        "IsaacGymEnvs' ShadowHand observation vector is not reproduced; use the named entries (object_rot, goal_rot, ...)"
    ),  # fmt: skip
}
"""IsaacGymEnvs ShadowHand names (``compute_hand_reward``'s arguments, Eureka's ``self.<name>``)
beyond the state entries of the same name (``object_pos``, ``object_linvel``, ``object_angvel``,
``goal_pos``, ``fingertip_pos``); reward settings are the task config's (IsaacGymEnvs' values by
default). ``progress_buf``, ``reset_buf``, ``max_episode_length`` are every task's (compat)."""

TEXT2REWARD_ATTRS: dict[str, str] = {
    **T2R_JOINTS,
    "obj.pose.p": "object_pos",
    "obj.pose.q": "object_quat",
    "obj.velocity": "object_linvel",
    "obj.angular_velocity": "object_angvel",
    "goal_pos": "goal_pos",
    "goal.pose.p": "goal_pos",
    "goal.pose.q": "goal_quat",
    "goal_quat": "goal_quat",
    "robot.fingertip_pos": "fingertip_pos",
}
"""Text2Reward (ManiSkill-style, quaternions w-first as SAPIEN's) attributes."""


# -- the task ------------------------------------------------------------------------------------


@register_task
class ShadowHandReorient(Task):
    """Turn a cube in a Shadow Hand to random goal orientations, one after another, without dropping it."""

    name = "shadow_hand_reorient"
    model_file = f"{HAND_PACKAGE}/{SCENE_FILE}"
    sim_fields = ("site_xpos", "sensordata", "mocap_quat")
    success_threshold = 0.8
    success_survives_termination = True

    # The palm from the front left and above, 0.45 m away: the cube in the hand and the goal cube
    # (same texture, shown beside the hand) in one frame, so that a frame shows both
    # orientations; fixed in the world, so a dropped cube leaves an empty palm in view.
    reward_camera = CameraSpec(CAMERA_DISTANCE, CAMERA_AZIMUTH, CAMERA_ELEVATION, CAMERA_LOOKAT)
    prompts = Prompts(
        ("a robot hand holding a cube turned the same way as the floating cube next to it",),
        ("a robot hand with an empty palm, the cube dropped",),
    )
    eureka_names = EUREKA_NAMES
    text2reward_attrs = TEXT2REWARD_ATTRS
    scripted_episodes = OptOut(
        "no hand-written policy turns a cube to a random orientation with 20 finger joints "
        "(scripts could only hold or drop it, never succeed); record an EpisodeSet from a trained "
        "policy for vlm-eval instead"
    )

    def __init__(self, cfg: ShadowHandConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: ShadowHandConfig = cfg
        jid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0:{j}") for j in JOINTS]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jid])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jid])
        limits = torch.as_tensor(model.jnt_range[jid], dtype=torch.float64)
        self._joint_lo, self._joint_hi = limits[:, 0], limits[:, 1]
        obj = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "object:joint")
        self._obj_q = int(model.jnt_qposadr[obj])
        self._obj_v = int(model.jnt_dofadr[obj])
        self._tips = torch.as_tensor(
            [
                mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"robot0:S_{f}tip")
                for f in FINGERS
            ]
        )
        touch = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, f"robot0:ST_Tch_{f}tip") for f in FINGERS]  # fmt: skip
        self._touch = torch.as_tensor([int(model.sensor_adr[s]) for s in touch])
        goal_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "target")
        self._mocap = int(model.body_mocapid[goal_body])
        start = torch.tensor(OBJECT_START, dtype=torch.float64)
        self._start = start
        self._goal_pos = start + torch.tensor(
            [0.0, 0.0, cfg.goal_height_offset], dtype=torch.float64
        )
        self.goal_quat: torch.Tensor | None = None
        """Per-world goal orientation ``[N, 4]`` (w, x, y, z), redrawn at reset and when reached."""
        self.goals: torch.Tensor | None = None
        """Per-world goals reached so far in the current episode ``[N]`` (before this step)."""

    @classmethod
    def default_config(cls) -> ShadowHandConfig:
        return ShadowHandConfig()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        return build_spec().compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        """This module and the gymnasium-robotics hand files the scene is built from."""
        scene = hand_scene_file()
        hand = scene.parent
        return [Path(__file__).resolve(), scene, *(hand / f for f in ("shared.xml", "shared_asset.xml", "robot.xml"))]  # fmt: skip

    # -- episodes ------------------------------------------------------------------------------

    def _buffers(self, sim: SimView) -> tuple[torch.Tensor, torch.Tensor]:
        n, dev = sim.qpos.shape[0], sim.qpos.device
        if self.goal_quat is None or self.goal_quat.shape[0] != n or self.goal_quat.device != dev:
            self.goal_quat = torch.zeros(n, 4, dtype=torch.float64, device=dev)
            self.goal_quat[:, 0] = 1.0
            self.goals = torch.zeros(n, dtype=torch.float64, device=dev)
        assert self.goals is not None
        return self.goal_quat, self.goals

    def _new_goals(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        goal_quat, _ = self._buffers(sim)
        if self.cfg.goal_angle > 0.0:
            o = self._obj_q
            quat = tilted(sim.qpos[env_ids, o + 3 : o + 7], self.cfg.goal_angle, gen)
        else:
            quat = random_orientation(gen, len(env_ids), sim.qpos)
        goal_quat[env_ids] = quat.to(goal_quat.dtype)
        mocap = sim.derived.get("mocap_quat")
        if mocap is not None:  # drawn only: the native backend binds it live, others may copy
            mocap[env_ids, self._mocap] = quat.to(mocap.dtype)

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        n, like = len(env_ids), sim.qpos
        lo, hi = self._joint_lo.to(like), self._joint_hi.to(like)
        u = 0.5 * (uniform(gen, (n, len(JOINTS)), like) + 1.0)
        joints = self.cfg.reset_noise * (
            lo + (hi - lo) * u
        )  # default pose 0 (+ a fraction of the range)
        qpos = sim.qpos[env_ids]
        qpos[:, self._qpos_idx] = torch.maximum(torch.minimum(joints, hi), lo)
        o = self._obj_q
        noise = self.cfg.object_position_noise * uniform(gen, (n, 3), like)
        qpos[:, o : o + 3] = self._start.to(like) + noise
        qpos[:, o + 3 : o + 7] = random_orientation(gen, n, like)
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = 0.0
        self._new_goals(sim, env_ids, gen)
        _, goals = self._buffers(sim)
        goals[env_ids] = 0.0

    def after_step(self, sim: SimView, state: State, gen: torch.Generator) -> None:
        """Count the goals reached this step and draw new ones for those worlds."""
        _, goals = self._buffers(sim)
        reached = state["goal_reached"].to(goals.dtype)
        goals += reached
        ids = reached.nonzero().squeeze(-1)
        if len(ids):
            self._new_goals(sim, ids, gen)

    def episode_metrics(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``charts/consecutive_successes``: goals reached in each finished episode."""
        assert self.goals is not None
        return {"charts/consecutive_successes": self.goals[env_ids].float()}

    # Goals and goal counts are task state outside the physics: snapshots must carry them.
    def get_state_dict(self) -> dict[str, Any]:
        """Task buffers for exact resume (``goal_quat [N, 4]``, ``goals [N]``)."""
        return {
            "goal_quat": None if self.goal_quat is None else self.goal_quat.cpu().clone(),
            "goals": None if self.goals is None else self.goals.cpu().clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned (onto the buffers' device)."""
        dev = self.goal_quat.device if self.goal_quat is not None else torch.device("cpu")
        for key in ("goal_quat", "goals"):
            value = state[key]
            setattr(self, key, None if value is None else value.to(dev).clone())

    # -- state -----------------------------------------------------------------------------------

    def state_spec(self) -> dict[str, StateField]:
        tips = ", ".join(FINGERS)
        tol = self.cfg.success_tolerance
        return {
            "joint_pos": StateField((24,), "rad", "joint", f"Hand joint angles, in order {', '.join(JOINTS)} (WR wrist, FF/MF/RF/LF first/middle/ring/little finger, TH thumb; J0 is the fingertip joint); 0 is the open flat hand."),
            "joint_vel": StateField((24,), "rad/s", "joint", "Hand joint angular velocities, in joint_pos order."),
            "object_pos": StateField((3,), "m", "world", "Cube centre position; it starts in the palm near (1.0, 0.87, 0.2), z up."),
            "object_quat": StateField((4,), "1", "world", "Cube orientation quaternion (w, x, y, z)."),
            "object_linvel": StateField((3,), "m/s", "world", "Cube linear velocity."),
            "object_angvel": StateField((3,), "rad/s", "world", "Cube angular velocity."),
            "goal_pos": StateField((3,), "m", "world", "Where the cube should be held (its start position 4 cm lower, in the palm); fixed."),
            "goal_quat": StateField((4,), "1", "world", "Goal orientation of the cube (w, x, y, z); a new random goal is drawn as soon as one is reached."),
            "quat_diff": StateField((4,), "1", "world", "Rotation from the goal to the cube orientation, object_quat * conj(goal_quat) (w, x, y, z); (1, 0, 0, 0) when aligned."),
            "rot_dist": StateField((), "rad", "world", f"Angle between the cube's and the goal orientation, in [0, pi]; the goal is reached below {tol} rad."),
            "goal_dist": StateField((), "m", "world", f"Distance from the cube to goal_pos; the cube has fallen (episode ends) at {self.cfg.fall_dist} m."),
            "fingertip_pos": StateField((5, 3), "m", "world", f"Fingertip positions, in order {tips}."),
            "fingertip_touch": StateField((5,), "N", "fingertip", f"Normal contact force on each fingertip pad (touch sensors), in order {tips}; 0 when not touching."),
            "goal_reached": StateField((), "1", "world", f"1 on the step the cube's orientation comes within {tol} rad of the goal (a new goal follows), else 0."),
            "goals_reached": StateField((), "1", "world", "Goals reached so far in this episode, this step's included (IsaacGymEnvs' successes: the consecutive successes)."),
            "fell": StateField((), "1", "world", "1 when the cube is fallen (goal_dist above the fall distance; the episode ends), else 0."),
            "last_action": StateField((20,), "1", "actuator", "Action of the previous control step in [-1, 1]: joint position targets over each actuator's range (0 = mid-range)."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        goal_quat, goals = self._buffers(sim)
        o, v = self._obj_q, self._obj_v
        obj_pos, obj_quat = sim.qpos[:, o : o + 3], sim.qpos[:, o + 3 : o + 7]
        goal_quat, goals = goal_quat.to(obj_pos.dtype), goals.to(obj_pos.dtype)
        obj_quat = obj_quat / torch.linalg.vector_norm(obj_quat, dim=-1, keepdim=True)
        # A free joint's angular velocity (qvel[3:6]) is in the body frame: rotate it to the world.
        angvel = quat_rotate(obj_quat, sim.qvel[:, v + 3 : v + 6])
        goal_pos = self._goal_pos.to(obj_pos)
        goal_dist = torch.linalg.vector_norm(obj_pos - goal_pos, dim=-1)
        rot_dist = rotation_distance(obj_quat, goal_quat)
        reached = (rot_dist <= self.cfg.success_tolerance).to(obj_pos.dtype)
        return {
            "joint_pos": sim.qpos[:, self._qpos_idx].float(),
            "joint_vel": sim.qvel[:, self._qvel_idx].float(),
            "object_pos": obj_pos.float(),
            "object_quat": obj_quat.float(),
            "object_linvel": sim.qvel[:, v : v + 3].float(),
            "object_angvel": angvel.float(),
            "goal_pos": goal_pos.expand_as(obj_pos).float(),
            "goal_quat": goal_quat.float(),
            "quat_diff": quat_mul(obj_quat, quat_conjugate(goal_quat)).float(),
            "rot_dist": rot_dist.float(),
            "goal_dist": goal_dist.float(),
            "fingertip_pos": sim.site_xpos[:, self._tips].float(),
            "fingertip_touch": sim.sensordata[:, self._touch].float(),
            "goal_reached": reached.float(),
            "goals_reached": (goals + reached).float(),
            "fell": (goal_dist >= self.cfg.fall_dist).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat([state[name].reshape(state[name].shape[0], -1) for name, _ in self.obs_layout()], -1)  # fmt: skip

    def obs_layout(self) -> list[tuple[str, int]]:
        return [
            ("joint_pos", 24), ("joint_vel", 24), ("object_pos", 3), ("object_quat", 4),
            ("object_linvel", 3), ("object_angvel", 3), ("goal_quat", 4), ("quat_diff", 4),
            ("fingertip_pos", 15), ("fingertip_touch", 5), ("last_action", 20),
        ]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["goals_reached"] >= self.cfg.success_goals

    def terminated(self, state: State) -> torch.Tensor:
        done = state["fell"] > 0.5
        if self.cfg.max_consecutive_successes > 0:
            done |= state["goals_reached"] >= self.cfg.max_consecutive_successes
        return done

    def reward_terms(self) -> dict[str, RewardTerm]:
        c = self.cfg
        terms = self._weighted(
            {
                "object_distance": (object_distance, c.dist_reward_scale),
                "rotation": (rotation, c.rot_reward_scale),
                "action_penalty": (action_l2, c.action_penalty_scale),
                "goal_bonus": (goal_bonus, c.reach_goal_bonus),
                "fall": (fall, c.fall_penalty),
            }
        )
        terms["rotation"] = dataclasses.replace(terms["rotation"], params={"rot_eps": c.rot_eps})
        return terms
