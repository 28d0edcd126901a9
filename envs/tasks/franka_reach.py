"""Franka reach: bring the Panda's tool-centre point onto a target point drawn per episode.

The scene is Playground's Panda scene (:mod:`.franka`) plus a target marker (a mocap sphere,
display only) composed with :class:`mujoco.MjSpec`. Every episode the arm starts near its home
pose (uniform joint noise, clipped to the joint ranges) and a target is drawn uniformly from a
box in front of the robot (x 0.35..0.65 m, y -0.3..0.3 m, z 0.15..0.55 m, world frame; the
robot's base is at the origin, the floor at z = 0). The policy drives the 7 arm joints as
``home + scale * a`` (joint position servos, :class:`~.authoring.JointTargets`); the gripper is
held open. An episode succeeds if the TCP is within ``success_distance`` of the target on its
last step; nothing terminates early.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardTerm, action_l2, action_rate_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import franka
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    EventManager,
    JointPositions,
    JointTargets,
    TargetPosition,
    Uniform,
    lookup,
    tolerance,
)
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task
from rewardlab.envs.tasks.isaacgym_names import T2R_JOINTS
from rewardlab.envs.tasks.knowledge import (
    CameraSpec,
    Prompts,
    Script,
    ScriptedPolicy,
    constant,
    entry,
)

State = Mapping[str, torch.Tensor]

TARGET_CENTER = (0.5, 0.0, 0.35)
"""Centre (m, world) of the box targets are drawn from."""
TARGET_HALF = (0.15, 0.3, 0.2)
"""Half-widths (m) of that box."""


@dataclass(frozen=True)
class FrankaReachConfig(TaskConfig):
    """Franka reach settings (5 ms physics; 50 Hz control at frame_skip 4)."""

    frame_skip: int = 4
    """Physics steps per control step."""
    episode_steps: int = 100
    """Time limit in control steps (2 s at 50 Hz)."""
    reset_noise: float = 0.1
    """Half-width (rad) of the uniform noise on the arm's initial joint angles around home."""
    action_scale: float = 1.0
    """Joint target offset (rad) from the home pose per unit action."""
    success_distance: float = 0.05
    """An episode succeeds if the TCP is closer than this (m) to the target at the end."""
    reach_scale: float = 0.1
    """Length scale (m) of the ``near_target`` term 1 - tanh(distance / reach_scale)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: distance, near_target, effort, action_rate."""

    def validate(self) -> None:
        super().validate()
        for name in ("action_scale", "success_distance", "reach_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _reach_policy(fraction: float, offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> ScriptedPolicy:  # fmt: skip
    """Servo the TCP ``fraction`` of the way from its start to the target (+ ``offset``, m)."""
    start: dict[int, torch.Tensor] = {}

    def policy(st: State, env: Any) -> torch.Tensor:
        task: FrankaReach = env.task
        key = id(env)
        if key not in start or st["tcp_pos"].shape[0] != start[key].shape[0]:
            start[key] = st["tcp_pos"].clone()
        goal = start[key] + fraction * (st["target_pos"] - start[key]) + torch.tensor(offset)
        grip = -torch.ones(goal.shape[0])
        return task.servo.actions(st["joint_pos"], goal, grip)[:, :7]

    return policy


@register_task
class FrankaReach(Task):
    """Move the Franka Panda's tool-centre point onto a target point drawn per episode."""

    name = "franka_reach"
    model_file = ""
    sim_fields = ("xpos", "xquat", "mocap_pos")
    success_threshold = 0.95

    reward_camera = CameraSpec(1.6, 150.0, -25.0, (0.45, 0.0, 0.3))
    prompts = Prompts(
        ("a robot arm's gripper touching the red ball",),
        ("a robot arm's gripper far from the red ball",),
    )
    eureka_names = {
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "franka_dof_pos": entry("joint_pos"),
        "franka_dof_vel": entry("joint_vel"),
        "hand_pos": entry("tcp_pos"),
        "franka_grasp_pos": entry("tcp_pos"),
        "franka_grasp_rot": entry("tcp_quat"),
        "end_effector_pos": entry("tcp_pos"),
        "ee_pos": entry("tcp_pos"),
        "goal_pos": entry("target_pos"),
        "target_pos": entry("target_pos"),
        "target_position": entry("target_pos"),
        # IsaacGymEnvs FrankaCabinet's action penalty scale (Eureka's Franka rewards take it)
        "action_penalty_scale": constant(0.01, "IsaacGymEnvs FrankaCabinet's actionPenaltyScale"),
    }
    text2reward_attrs = {
        **T2R_JOINTS,
        "robot.ee_position": "tcp_pos",
        "robot.ee_pose.p": "tcp_pos",
        "robot.ee_pose.q": "tcp_quat",
        "tcp.pose.p": "tcp_pos",
        "tcp.pose.q": "tcp_quat",
        "goal_pos": "target_pos",
        "goal_position": "target_pos",
        "goal.position": "target_pos",
        "robot.ee_to_goal": "tcp_to_target",
    }
    scripted_episodes = {
        "reach": Script("success", _reach_policy(1.0)),
        "halfway": Script("partial", _reach_policy(0.5)),
        "miss": Script("failure", _reach_policy(1.0, (0.0, 0.2, 0.1))),
        "home": Script("failure", _reach_policy(0.0)),
    }

    def __init__(self, cfg: FrankaReachConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: FrankaReachConfig = cfg
        home = franka.home_qpos(model)
        self.events = EventManager(
            model,
            [
                JointPositions(franka.ARM_JOINTS, Uniform(-cfg.reset_noise, cfg.reset_noise)),
                TargetPosition(
                    "target",
                    TARGET_CENTER,
                    Uniform(tuple(-h for h in TARGET_HALF), TARGET_HALF),
                    mocap="target",
                ),
            ],
            home,
        )
        default = franka.home_ctrl(model)
        self.action_map = ActionMap(
            (JointTargets(franka.ARM_ACTUATORS, scale=cfg.action_scale),),
            hold={franka.GRIPPER_ACTUATOR: franka.GRIPPER_OPEN},
        ).bind(model, default)
        self.tcp = franka.TCP.bind(model)
        jnt = [lookup(model, "joint", n) for n in franka.ARM_JOINTS]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        self._home = torch.as_tensor(franka.HOME, dtype=torch.float32)
        scale = np.full(7, cfg.action_scale)
        self.servo = franka.TcpServo(model, np.asarray(franka.HOME), scale)

    @classmethod
    def default_config(cls) -> FrankaReachConfig:
        return FrankaReachConfig()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = franka.panda_scene()
        target = spec.worldbody.add_body(name="target", mocap=True, pos=list(TARGET_CENTER))
        target.add_geom(
            type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.025, 0, 0], rgba=[1, 0, 0, 0.8],
            contype=0, conaffinity=0,
        )  # fmt: skip
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        return [Path(__file__).resolve(), Path(franka.__file__).resolve(), *franka.model_files()]

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.events.reset(sim, env_ids, gen)

    def get_state_dict(self) -> dict[str, Any]:
        """The per-world targets, for exact resume."""
        return self.events.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.events.load_state_dict(state)

    def state_spec(self) -> dict[str, StateField]:
        return {
            "joint_pos": StateField((7,), "rad", "joint", "Arm joint angles joint1..joint7 (home pose [0, 0.3, 0, -1.57, 0, 2.0, -0.79])."),
            "joint_vel": StateField((7,), "rad/s", "joint", "Arm joint velocities joint1..joint7."),
            "tcp_pos": StateField((3,), "m", "world", "Tool-centre point (between the finger pads); the robot's base is at the origin, the floor at z = 0."),
            "tcp_quat": StateField((4,), "1", "world", "Orientation (w, x, y, z) of the hand; its z axis points from the wrist to the fingers."),
            "target_pos": StateField((3,), "m", "world", "Target point the TCP must reach; fixed during an episode."),
            "tcp_to_target": StateField((3,), "m", "world", "Vector from the TCP to the target (target_pos - tcp_pos)."),
            "distance": StateField((), "m", "world", f"Distance from the TCP to the target; success if below {self.cfg.success_distance} m at the end."),
            "last_action": StateField((7,), "1", "actuator", "Action of the previous control step in [-1, 1]: arm joint targets home + action_scale * a."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        tcp = self.tcp.pos(sim)
        target = self.events.buffers["target"].to(tcp)
        delta = target - tcp
        return {
            "joint_pos": sim.qpos[:, self._qpos_idx].float(),
            "joint_vel": sim.qvel[:, self._qvel_idx].float(),
            "tcp_pos": tcp.float(),
            "tcp_quat": self.tcp.quat(sim).float(),
            "target_pos": target.float(),
            "tcp_to_target": delta.float(),
            "distance": torch.linalg.vector_norm(delta, dim=-1).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat(
            [
                state["joint_pos"] - self._home.to(state["joint_pos"].device),
                0.1 * state["joint_vel"],
                state["target_pos"],
                state["tcp_to_target"],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("joint_pos - home", 7), ("0.1 * joint_vel", 7), ("target_pos", 3), ("tcp_to_target", 3), ("last_action", 7)]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["distance"] < self.cfg.success_distance

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted(
            {
                "distance": (_distance, -1.0),
                "near_target": (tolerance("distance", self.cfg.reach_scale), 1.0),
                "effort": (action_l2, -0.005),
                "action_rate": (action_rate_l2, -0.01),
            }
        )


def _distance(state: State, action: torch.Tensor) -> torch.Tensor:
    """Distance (m) from the TCP to the target (penalized with a negative weight)."""
    return state["distance"]
