"""Ant run: make the four-legged ant (``rewardlab.envs.robots.ANT``) run forward along +x.

Every episode starts from the standing pose at the origin (x = y = 0 exactly), facing +x, with
uniform noise on the joint angles and on all velocities. The episode terminates when the torso
leaves the healthy height range or the ant tips over (torso up-axis pointing below the horizon,
``up_z < min_up_z``). It succeeds if, on its last step, the torso is at least
``success_distance`` metres ahead of the start (x), without having terminated: with the defaults,
5 m in 10 s, a mean forward speed of 0.5 m/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_l2, alive
from rewardlab.envs.base import StateField
from rewardlab.envs.robots import ANT, ANT_FEET
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task
from rewardlab.envs.tasks.isaacgym_names import T2R_LOCOMOTION, locomotion_names, t2r_ant
from rewardlab.envs.tasks.knowledge import CameraSpec, Constant, OptOut, Prompts, Unavailable

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class AntConfig(TaskConfig):
    """Ant run settings (timestep 0.01 s in the MJCF; 20 Hz control at frame_skip 5)."""

    frame_skip: int = 5
    """Physics steps per control step."""
    episode_steps: int = 200
    """Time limit in control steps (10 s at 20 Hz; 1000 physics steps)."""
    reset_noise: float = 0.1
    """Half-width of the uniform noise on the initial joint angles (rad) and all velocities."""
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    """Terminate when the torso centre height (m) leaves this range (standing: about 0.56)."""
    min_up_z: float = 0.0
    """Terminate when ``up_z`` (z of the torso's up axis) drops below this (0: tipped past 90 deg)."""
    success_distance: float = 5.0
    """An episode succeeds if the torso's x is at least this (m) on the last step (start: x = 0)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: forward_velocity, healthy, effort, upright."""

    def validate(self) -> None:
        super().validate()
        lo, hi = self.healthy_z_range
        if not 0 <= lo < hi:
            raise ValueError(f"healthy_z_range must be (low, high) with 0 <= low < high, got {self.healthy_z_range}")  # fmt: skip
        if not -1.0 <= self.min_up_z <= 1.0:
            raise ValueError(f"min_up_z must be in [-1, 1], got {self.min_up_z}")


# -- reward terms ------------------------------------------------------------------------------


def forward_velocity(state: State, action: torch.Tensor) -> torch.Tensor:
    """Torso velocity along +x (m/s)."""
    return state["forward_vel"]


def upright(state: State, action: torch.Tensor) -> torch.Tensor:
    """z of the torso's up axis: 1 upright, 0 on its side, -1 upside down."""
    return state["up_z"]


def up_z_from_quat(q: torch.Tensor) -> torch.Tensor:
    """z component (world) of the body z axis for unit quaternions ``q [N, 4]`` (w, x, y, z)."""
    return 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2)


@register_task
class AntRun(Task):
    """Run forward (+x) as far as possible without falling over."""

    name = "ant_run"
    model_file = ANT.model_file
    sim_fields = ("site_xpos",)
    success_threshold = 0.8

    # From the front left and above, following the torso in x and y: the whole ant (legs
    # included) at every step, upright or flipped.
    reward_camera = CameraSpec(3.0, 60.0, -25.0, (0.0, 0.0, 0.3), "torso", (True, True, False))
    # For a pretrained CLIP (the shipped tiny CLIP knows no ant). A frame shows posture, not
    # speed: the goal sentence rewards an upright walking pose, the baseline the fall this task
    # terminates on.
    prompts = Prompts(
        ("a four-legged robot walking upright",),
        ("a four-legged robot flipped upside down",),
    )
    eureka_names = locomotion_names(
        ANT.joint_names,
        humanoid=False,
        termination_height=Constant(
            lambda task: float(task.cfg.healthy_z_range[0]),
            "the task config's `healthy_z_range[0]`: the torso height (m) below which an episode terminates (IsaacGymEnvs' Ant: 0.31)",
        ),
        default_pose=ANT.default_pose,
        feet=Unavailable("the state has the feet's heights only (`feet_height`)"),
    )  # fmt: skip
    text2reward_attrs = {
        **T2R_LOCOMOTION,
        "robot.forward_velocity": "forward_vel",
        **t2r_ant(ANT.joint_names),
    }
    scripted_episodes = OptOut(
        "no hand-written gait runs the ant; record an EpisodeSet from a trained policy instead"
    )

    def __init__(self, cfg: AntConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: AntConfig = cfg
        jnt = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ANT.joint_names]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        self._feet = torch.as_tensor(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in ANT_FEET]
        )
        self._home = torch.as_tensor(model.key("home").qpos.copy())

    @classmethod
    def default_config(cls) -> AntConfig:
        return AntConfig()

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.reset_near(sim, env_ids, gen, self._home, self._qpos_idx)

    def state_spec(self) -> dict[str, StateField]:
        legs = "front_left, front_right, back_left, back_right"
        return {
            "torso_pos": StateField((3,), "m", "world", "Torso centre position; starts at x = y = 0, z about 0.56 when standing; the ant should run along +x."),
            "torso_quat": StateField((4,), "1", "world", "Torso orientation quaternion (w, x, y, z); (1, 0, 0, 0) is upright facing +x."),
            "torso_linvel": StateField((3,), "m/s", "world", "Torso linear velocity."),
            "torso_angvel": StateField((3,), "rad/s", "torso", "Torso angular velocity (as a gyro on the torso measures it)."),
            "joint_pos": StateField((8,), "rad", "joint", f"Joint angles, [hip, ankle] per leg ({legs}); hips +-0.52, ankles 0.52..1.22 (larger bends the leg down)."),
            "joint_vel": StateField((8,), "rad/s", "joint", "Joint angular velocities, in joint_pos order."),
            "up_z": StateField((), "1", "world", "z of the torso's up axis: 1 upright, 0 on its side, -1 upside down."),
            "forward_vel": StateField((), "m/s", "world", "Torso velocity along +x, the running direction."),
            "feet_height": StateField((4,), "m", "world", f"Height of each leg tip ({legs}); about 0.09 when the foot touches the floor."),
            "last_action": StateField((8,), "1", "actuator", "Action of the previous control step in [-1, 1] (joint torques / 100 N m), in joint_pos order."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        quat = sim.qpos[:, 3:7]
        return {
            "torso_pos": sim.qpos[:, 0:3].float(),
            "torso_quat": quat.float(),
            "torso_linvel": sim.qvel[:, 0:3].float(),
            "torso_angvel": sim.qvel[:, 3:6].float(),
            "joint_pos": sim.qpos[:, self._qpos_idx].float(),
            "joint_vel": sim.qvel[:, self._qvel_idx].float(),
            "up_z": up_z_from_quat(quat).float(),
            "forward_vel": sim.qvel[:, 0].float(),
            "feet_height": sim.site_xpos[:, self._feet, 2].float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat(
            [
                state["torso_pos"][:, 2:3],
                state["torso_quat"],
                state["joint_pos"],
                state["torso_linvel"],
                state["torso_angvel"],
                state["joint_vel"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("torso_pos[z]", 1), ("torso_quat", 4), ("joint_pos", 8), ("torso_linvel", 3), ("torso_angvel", 3), ("joint_vel", 8)]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["torso_pos"][:, 0] >= self.cfg.success_distance

    def terminated(self, state: State) -> torch.Tensor:
        z = state["torso_pos"][:, 2]
        lo, hi = self.cfg.healthy_z_range
        return (z < lo) | (z > hi) | (state["up_z"] < self.cfg.min_up_z)

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted(
            {
                "forward_velocity": (forward_velocity, 1.0),
                "healthy": (alive, 1.0),
                "effort": (action_l2, -0.1),
                "upright": (upright, 0.0),
            }
        )
