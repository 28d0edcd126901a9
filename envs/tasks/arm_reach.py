"""Arm reach: move the end-effector of a 3-DoF arm (arm3) onto a target point.

The arm (base yaw, shoulder pitch, elbow pitch; joint-position servos, see
``rewardlab.envs.robots.ARM3``) starts near its home pose; every episode draws a new target per
world. Targets are the end-effector positions of joint angles drawn uniformly from a box inside
the joint limits (``target_joint_low`` .. ``target_joint_high``), so every target is reachable
and lies in front of the robot, 0.1 to 0.55 m above the floor. The targets live in a task buffer
(``ArmReach.target``); the ``target`` mocap body of the MJCF only shows them in renders.

An episode succeeds if the end-effector is within ``success_distance`` of the target on its last
step. Nothing terminates early.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_l2, action_rate_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.robots import (
    ARM3,
    ARM3_FOREARM,
    ARM3_SHOULDER_HEIGHT,
    ARM3_UPPER_ARM,
)
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task, uniform
from rewardlab.envs.tasks.isaacgym_names import T2R_JOINTS, joint_limits, metaworld_obs
from rewardlab.envs.tasks.knowledge import (
    CameraSpec,
    Constant,
    MultiView,
    Prompts,
    Script,
    ScriptedPolicy,
    Unavailable,
    constant,
    entry,
)

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ArmReachConfig(TaskConfig):
    """Arm reach settings (timestep 0.002 s in the MJCF; 50 Hz control at frame_skip 10)."""

    frame_skip: int = 10
    """Physics steps per control step."""
    episode_steps: int = 150
    """Time limit in control steps (3 s at 50 Hz)."""
    reset_noise: float = 0.3
    """Half-width (rad) of the uniform noise on the initial joint angles around the home pose."""
    velocity_noise: float = 0.1
    """Half-width (rad/s) of the uniform noise on the initial joint velocities."""
    target_joint_low: tuple[float, float, float] = (-1.5, 0.0, 0.3)
    """Lower corner (rad) of the joint-angle box whose end-effector positions are the targets."""
    target_joint_high: tuple[float, float, float] = (1.5, 1.6, 2.2)
    """Upper corner (rad) of that box; must lie within the joint limits."""
    success_distance: float = 0.05
    """An episode succeeds if the end-effector is closer than this (m) to the target at the end."""
    reach_sigma: float = 0.1
    """Length scale (m) of the ``near_target`` term exp(-(distance / reach_sigma)^2)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: distance, near_target, effort, action_rate."""

    def validate(self) -> None:
        super().validate()
        for name, box in (("target_joint_low", self.target_joint_low), ("target_joint_high", self.target_joint_high)):  # fmt: skip
            if len(box) != 3:
                raise ValueError(f"{name} must have 3 values (one per joint), got {box!r}")
            for j, (v, (jlo, jhi)) in enumerate(zip(box, ARM3.joint_limits, strict=True)):
                if not jlo <= v <= jhi:
                    raise ValueError(
                        f"{name}[{j}] ({ARM3.joint_names[j]}) = {v} is outside the joint range "
                        f"[{jlo}, {jhi}]"
                    )
        if any(a > b for a, b in zip(self.target_joint_low, self.target_joint_high, strict=True)):
            raise ValueError(
                f"target_joint_low {self.target_joint_low} must be <= target_joint_high "
                f"{self.target_joint_high} elementwise"
            )
        if self.success_distance <= 0:
            raise ValueError(f"success_distance must be > 0, got {self.success_distance}")
        if self.reach_sigma <= 0:
            raise ValueError(f"reach_sigma must be > 0, got {self.reach_sigma}")
        if self.velocity_noise < 0:
            raise ValueError(f"velocity_noise must be >= 0, got {self.velocity_noise}")


def forward_kinematics(q: torch.Tensor) -> torch.Tensor:
    """End-effector position ``[..., 3]`` (m, world) of arm3 for joint angles ``q [..., 3]``."""
    yaw, sh, el = q[..., 0], q[..., 1], q[..., 2]
    r = ARM3_UPPER_ARM * torch.sin(sh) + ARM3_FOREARM * torch.sin(sh + el)
    z = ARM3_SHOULDER_HEIGHT + ARM3_UPPER_ARM * torch.cos(sh) + ARM3_FOREARM * torch.cos(sh + el)
    return torch.stack([r * torch.cos(yaw), r * torch.sin(yaw), z], -1)


def arm_ik(target: torch.Tensor) -> torch.Tensor:
    """Joint angles ``[N, 3]`` (yaw, shoulder, elbow) putting arm3's hand on ``target [N, 3]``
    (elbow-up solution, clamped to the joint limits; unreachable targets get the nearest
    stretched pose)."""
    l1, l2 = ARM3_UPPER_ARM, ARM3_FOREARM
    x, y, z = target.double().unbind(-1)
    yaw = torch.atan2(y, x)
    r, h = torch.hypot(x, y), z - ARM3_SHOULDER_HEIGHT
    c = ((r**2 + h**2 - l1**2 - l2**2) / (2 * l1 * l2)).clamp(-1.0, 1.0)
    el = torch.acos(c)
    sh = torch.atan2(r, h) - torch.atan2(l2 * torch.sin(el), l1 + l2 * torch.cos(el))
    q = torch.stack([yaw, sh, el], -1)
    lo = torch.tensor([lim[0] for lim in ARM3.joint_limits], dtype=q.dtype)
    hi = torch.tensor([lim[1] for lim in ARM3.joint_limits], dtype=q.dtype)
    return torch.maximum(torch.minimum(q, hi), lo)


def reach_policy(fraction: float, yaw_offset: float = 0.0) -> ScriptedPolicy:
    """Servo to ``fraction`` of the way (in joint space) from home to the IK of the target,
    ``yaw_offset`` rad off in base yaw."""

    def policy(st: State, env: Any) -> torch.Tensor:
        q_goal = arm_ik(st["target_pos"])
        q_goal[:, 0] += yaw_offset
        lo, hi = torch.as_tensor(env.model.actuator_ctrlrange, dtype=q_goal.dtype).T
        home = torch.zeros_like(q_goal)
        home[:] = torch.tensor(ARM3.default_pose, dtype=q_goal.dtype)
        q = home + fraction * (q_goal - home)
        return ((q - (hi + lo) / 2) / ((hi - lo) / 2)).clamp(-1, 1).float()

    return policy


# -- reward terms ------------------------------------------------------------------------------


def distance(state: State, action: torch.Tensor) -> torch.Tensor:
    """Distance (m) from the end-effector to the target (penalize with a negative weight)."""
    return state["distance"]


def near_target(state: State, action: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """exp(-(distance / sigma)^2): 1 on the target, sharp near it."""
    return torch.exp(-((state["distance"] / sigma) ** 2))


@register_task
class ArmReach(Task):
    """Bring the end-effector site ``ee`` of arm3 to a per-episode target point."""

    name = "arm_reach"
    model_file = ARM3.model_file
    sim_fields = ("site_xpos", "mocap_pos")
    success_threshold = 0.9

    # Side (looking along +y) and top views centred on the target, 0.6 m away: about 1.6 cm per
    # pixel at 64 px, so the hand on the target (< 5 cm) sits within ~3 px of the frame centre
    # line in both bands, and a hand in front of or behind the target in one view is off-centre
    # in the other. The shipped tiny CLIP was trained on these views.
    reward_camera = MultiView(
        (
            CameraSpec(0.6, 90.0, -10.0, track_body="target"),
            CameraSpec(0.6, 90.0, -89.9, track_body="target"),
        )
    )
    prompts = Prompts(
        ("the arm's hand is touching the green target",),
        ("the arm's hand is far from the green target",),
    )
    eureka_names = {
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "hand_pos": entry("ee_pos"),
        "franka_grasp_pos": entry("ee_pos"),
        "end_effector_pos": entry("ee_pos"),
        "goal_pos": entry("target_pos"),
        "object_pos": entry("target_pos"),
        "target_position": entry("target_pos"),
        # IsaacGymEnvs' FrankaCabinet names that a reach has (arm3 stands in for the Panda)
        "franka_dof_pos": entry("joint_pos"),
        "franka_dof_vel": entry("joint_vel"),
        "dof_limits_lower": joint_limits(ARM3.joint_names, "lower"),
        "dof_limits_upper": joint_limits(ARM3.joint_names, "upper"),
        "franka_dof_lower_limits": joint_limits(ARM3.joint_names, "lower"),
        "franka_dof_upper_limits": joint_limits(ARM3.joint_names, "upper"),
        "dof_pos_limits": joint_limits(ARM3.joint_names),
        "default_dof_pos": Constant(
            lambda task: [list(ARM3.default_pose)], "`[1, 3]` the home pose (rad)"
        ),  # fmt: skip
        "dist_reward_scale": constant(2.0, "IsaacGymEnvs' FrankaCabinet.yaml default"),
        "action_penalty_scale": constant(0.01, "IsaacGymEnvs' FrankaCabinet.yaml default"),
        "franka_lfinger_pos": Unavailable("arm3 has no gripper fingers (franka_reach has)"),
        "franka_rfinger_pos": Unavailable("arm3 has no gripper fingers (franka_reach has)"),
        "obs_buf": Unavailable(
            "arm_reach's observation is not FrankaCabinet's; read the named entries (dof_pos, hand_pos, goal_pos)"
        ),  # fmt: skip
    }
    text2reward_attrs = {
        **T2R_JOINTS,
        "robot.ee_position": "ee_pos",
        "robot.ee_pose.p": "ee_pos",
        "tcp.pose.p": "ee_pos",
        "robot.ee_to_goal": "ee_to_target",
        "goal_pos": "target_pos",
        "goal_position": "target_pos",
        "goal.position": "target_pos",
        # MetaWorld's env (Text2Reward's specific rewards) and its general abstraction
        "env._get_pos_goal()": "target_pos",
        "_target_pos": "target_pos",
        "tcp_center": "ee_pos",
        "robot.gripper_openness": Unavailable("arm3 has no gripper (franka_reach has one)"),
        "agent.check_grasp()": Unavailable("arm3 has no gripper (franka_lift has one)"),
        "robot.check_grasp()": Unavailable("arm3 has no gripper (franka_lift has one)"),
        "obj1.position": Unavailable("arm_reach has no object, only a target point"),
        "obj1.quaternion": Unavailable("arm_reach has no object, only a target point"),
    }
    text2reward_obs = metaworld_obs(
        "ee_pos", "target_pos", missing="arm_reach has no object, only a target point"
    )
    scripted_episodes = {
        "reach": Script("success", reach_policy(1.0)),
        "halfway": Script("partial", reach_policy(0.5)),
        "miss": Script("failure", reach_policy(1.0, yaw_offset=0.6)),
        "home": Script("failure", reach_policy(0.0)),
    }

    def __init__(self, cfg: ArmReachConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: ArmReachConfig = cfg
        self._ee = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "ee")
        target_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "target")
        self._mocap = int(model.body_mocapid[target_body])
        jnt = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM3.joint_names]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        self.target: torch.Tensor | None = None
        """Per-world target positions ``[N, 3]`` (m, world), drawn at every reset."""

    @classmethod
    def default_config(cls) -> ArmReachConfig:
        return ArmReachConfig()

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        n, dtype = len(env_ids), sim.qpos.dtype
        if self.target is None or self.target.shape[0] != sim.qpos.shape[0]:
            home = forward_kinematics(torch.tensor(ARM3.default_pose, dtype=dtype))
            self.target = home.repeat(sim.qpos.shape[0], 1).to(sim.qpos.device)
        home = torch.as_tensor(ARM3.default_pose, dtype=dtype, device=sim.qpos.device)
        lo = torch.as_tensor([j[0] for j in ARM3.joint_limits], dtype=dtype, device=sim.qpos.device)
        hi = torch.as_tensor([j[1] for j in ARM3.joint_limits], dtype=dtype, device=sim.qpos.device)
        q = home + self.cfg.reset_noise * uniform(gen, (n, 3), sim.qpos)
        sim.qpos[env_ids] = torch.maximum(torch.minimum(q, hi), lo)
        sim.qvel[env_ids] = self.cfg.velocity_noise * uniform(gen, (n, 3), sim.qvel)
        # Targets: FK of joint angles uniform in the target box.
        tlo = torch.as_tensor(self.cfg.target_joint_low, dtype=dtype, device=sim.qpos.device)
        thi = torch.as_tensor(self.cfg.target_joint_high, dtype=dtype, device=sim.qpos.device)
        u = 0.5 * (uniform(gen, (n, 3), sim.qpos) + 1.0)
        target = forward_kinematics(tlo + (thi - tlo) * u)
        self.target[env_ids] = target.to(self.target.dtype)
        mocap = sim.derived.get("mocap_pos")
        if mocap is not None:
            # Only drawn: the native backend binds mocap_pos as live physics state, so the
            # renderer shows each world's target; a backend handing out a copy just draws none.
            mocap[env_ids, self._mocap] = target.to(mocap.dtype)

    # The targets are task state outside the physics: snapshots must carry them.
    def get_state_dict(self) -> dict[str, Any]:
        """Task buffers for exact resume (``{"target": [N, 3]}``)."""
        return {"target": None if self.target is None else self.target.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned."""
        self.target = None if state["target"] is None else state["target"].clone()

    def state_spec(self) -> dict[str, StateField]:
        return {
            "joint_pos": StateField((3,), "rad", "joint", "Joint angles [base_yaw, shoulder, elbow]; all 0 points the arm straight up, home pose is [0, 0.4, 1.0]."),
            "joint_vel": StateField((3,), "rad/s", "joint", "Joint angular velocities [base_yaw, shoulder, elbow]."),
            "ee_pos": StateField((3,), "m", "world", "End-effector (gripper tip) position; the arm's base is at the origin, the floor at z = 0."),
            "target_pos": StateField((3,), "m", "world", "Target position the end-effector must reach; fixed during an episode."),
            "ee_to_target": StateField((3,), "m", "world", "Vector from the end-effector to the target (target_pos - ee_pos)."),
            "distance": StateField((), "m", "world", f"Distance between end-effector and target; success if below {self.cfg.success_distance} m at the end."),
            "last_action": StateField((3,), "1", "actuator", "Action of the previous control step in [-1, 1]: joint position targets scaled to the joint ranges (0 = home pose)."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.target is not None, "reset() before state()"
        ee = sim.site_xpos[:, self._ee]
        delta = self.target.to(ee.dtype) - ee
        return {
            "joint_pos": sim.qpos[:, self._qpos_idx].float(),
            "joint_vel": sim.qvel[:, self._qvel_idx].float(),
            "ee_pos": ee.float(),
            "target_pos": self.target.float(),
            "ee_to_target": delta.float(),
            "distance": torch.linalg.vector_norm(delta, dim=-1).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat(
            [
                state["joint_pos"],
                state["joint_vel"],
                state["target_pos"],
                state["ee_to_target"],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("joint_pos", 3), ("joint_vel", 3), ("target_pos", 3), ("ee_to_target", 3), ("last_action", 3)]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["distance"] < self.cfg.success_distance

    def reward_terms(self) -> dict[str, RewardTerm]:
        terms = self._weighted(
            {
                "distance": (distance, -1.0),
                "near_target": (near_target, 1.0),
                "effort": (action_l2, -0.01),
                "action_rate": (action_rate_l2, -0.02),
            }
        )
        terms["near_target"] = dataclasses.replace(
            terms["near_target"], params={"sigma": self.cfg.reach_sigma}
        )
        return terms
