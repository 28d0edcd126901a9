"""Franka lift: grasp a cube on the floor with the Panda's two fingers and lift it to a goal height.

The scene is Playground's Panda scene (:mod:`.franka`) plus a 4 cm cube (a free body, 0.1 kg,
friction 1) and a translucent goal marker (a mocap box, display only), composed with
:class:`mujoco.MjSpec`. Every episode the arm starts near a pre-grasp pose (TCP 0.2 m above the
floor at x = 0.5 m, fingers pointing down and open; uniform joint noise clipped to the joint
ranges) and the cube is placed uniformly within ``cube_range`` of (0.5, 0, 0.02) m. The policy
moves the TCP (three actions, up to ``tcp_step`` m per control step each, inside a workspace
box; the 7 arm joints follow by differential inverse kinematics keeping the hand pointing down:
:class:`~.authoring.TaskSpaceTargets`) and the gripper with one action (binary: closed above 0.5, else open). An episode succeeds if the cube's centre is at least ``goal_height -
success_tolerance`` above the floor on its last step (it is held up); nothing terminates early.

Contacts are MuJoCo ``contact`` sensors (:class:`~.authoring.Grasp`): ``grasped`` is 1 while
both finger pads touch the cube. The reward (Playground's PandaPickCube kernels, with the lift
gated on the grasp as Isaac Lab's lift task does): reach the cube, grasp it, lift it (only while
grasped), reach the goal height.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_rate_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks import franka
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    EventManager,
    FreeBodyPose,
    Grasp,
    Gripper,
    JointPositions,
    TaskSpaceTargets,
    Uniform,
    above,
    add_contact_sensors,
    clipped,
    gated,
    lookup,
    state_value,
    tolerance,
)
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task
from rewardlab.envs.tasks.isaacgym_names import T2R_JOINTS
from rewardlab.envs.tasks.knowledge import (
    Binding,
    CameraSpec,
    Prompts,
    Script,
    ScriptedPolicy,
    entry,
)

State = Mapping[str, torch.Tensor]

PREGRASP = (0.0, 0.0459, 0.0, -2.3763, 0.0, 2.4222, -0.7853)
"""Arm joint angles (rad) of the start pose: TCP at (0.5, 0, 0.2) m, fingers down, closing
along the world x axis."""
CUBE_START = (0.5, 0.0, 0.02)
"""Nominal cube centre (m, world): on the floor in front of the robot."""
CUBE_HALF = 0.02
"""Half the cube's edge (m)."""
WORKSPACE_LOW = (0.3, -0.25, 0.0)
"""Lower corner (m, world) of the box the TCP is steered in."""
WORKSPACE_HIGH = (0.7, 0.25, 0.35)
"""Upper corner of that box."""
GRASP = Grasp("grasped", franka.FINGER_PADS, "cube")
"""Both finger pads on the cube."""


@dataclass(frozen=True)
class FrankaLiftConfig(TaskConfig):
    """Franka lift settings (5 ms physics; 50 Hz control at frame_skip 4)."""

    frame_skip: int = 4
    """Physics steps per control step."""
    episode_steps: int = 100
    """Time limit in control steps (2 s at 50 Hz)."""
    reset_noise: float = 0.05
    """Half-width (rad) of the uniform noise on the arm's initial joint angles."""
    cube_range: float = 0.05
    """Half-width (m) of the uniform box (x, y) the cube's start is drawn from."""
    tcp_step: float = 0.02
    """Largest TCP motion (m) per control step (an action of 1: 1 m/s at 50 Hz)."""
    goal_height: float = 0.15
    """Height (m, world z) of the cube's centre the lift aims for."""
    success_tolerance: float = 0.03
    """An episode succeeds if the cube's centre ends above goal_height - success_tolerance (m)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: reach, grasp, lift, goal, action_rate."""

    def validate(self) -> None:
        super().validate()
        for name in ("cube_range", "tcp_step", "goal_height", "success_tolerance"):
            if not getattr(self, name) >= 0 or (name != "cube_range" and not getattr(self, name) > 0):  # fmt: skip
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.goal_height - self.success_tolerance <= CUBE_HALF:
            raise ValueError(f"goal_height - success_tolerance must be above the resting cube ({CUBE_HALF} m), got {self.goal_height} - {self.success_tolerance}")  # fmt: skip


def _pick_policy(lift: bool = True, close: bool = True, offset: float = 0.0) -> ScriptedPolicy:
    """A stateless pick: over the cube, down to it, close when the TCP is at its centre, lift
    to the goal height once both pads hold it (``lift``); aimed ``offset`` m beside the cube
    (a miss), or never closing (``close`` false)."""

    def policy(st: State, env: Any) -> torch.Tensor:
        task: FrankaLift = env.task
        aim = st["cube_pos"].clone()
        aim[:, 1] += offset
        tcp = st["tcp_pos"]
        xy_err = torch.linalg.vector_norm(tcp[:, :2] - aim[:, :2], dim=-1)
        over = aim + torch.tensor([0.0, 0.0, 0.08])
        goal = torch.where((xy_err > 0.008)[:, None], over, aim)
        at_cube = torch.linalg.vector_norm(tcp - aim, dim=-1) < 0.02
        holding = (st["grasped"] > 0.5) & at_cube
        if lift:
            up = tcp.clone()
            up[:, 2] = task.cfg.goal_height + 0.01
            goal = torch.where(holding[:, None], up, goal)
        grip = torch.where(at_cube & close, 1.0, -1.0).float()
        return task.tcp_actions(tcp, goal, grip, gain=0.7)

    return policy


def _binding_const(values: tuple[float, ...], doc: str) -> Binding:
    """A constant ``[N, k]`` (IsaacGymEnvs' local axes)."""

    def fn(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        n = s["cube_pos"].shape[0] if "cube_pos" in s else s["tcp_pos"].shape[0]
        return torch.tensor(values, dtype=torch.float32).repeat(n, 1)

    return Binding(fn, doc)


def _xyzw(name: str) -> Binding:
    def fn(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        return s[name][:, [1, 2, 3, 0]]

    return Binding(fn, f"`{name}` as (x, y, z, w)")


@register_task
class FrankaLift(Task):
    """Grasp a cube with the Franka Panda's fingers and lift it to a goal height."""

    name = "franka_lift"
    model_file = ""
    sim_fields = ("xpos", "xquat", "xanchor", "xaxis", "qfrc_bias", "sensordata", "mocap_pos")
    success_threshold = 0.8

    reward_camera = CameraSpec(1.0, 150.0, -20.0, (0.5, 0.0, 0.12))
    prompts = Prompts(
        ("a robot gripper holding a green cube up in the air",),
        ("a green cube lying on the floor next to a robot arm",),
    )
    eureka_names = {
        "franka_dof_pos": entry("joint_pos"),
        "franka_dof_vel": entry("joint_vel"),
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "franka_grasp_pos": entry("tcp_pos"),
        "franka_grasp_rot": _xyzw("tcp_quat"),
        "hand_pos": entry("tcp_pos"),
        "franka_lfinger_pos": entry("left_finger_pos"),
        "franka_rfinger_pos": entry("right_finger_pos"),
        "cube_pos": entry("cube_pos"),
        "cubeA_pos": entry("cube_pos"),
        "object_pos": entry("cube_pos"),
        "cube_rot": _xyzw("cube_quat"),
        "object_rot": _xyzw("cube_quat"),
        "goal_pos": entry("goal_pos"),
        "target_pos": entry("goal_pos"),
        "goal_height": entry("goal_height"),
        "cube_height": entry("cube_height"),
        "gripper_forward_axis": _binding_const(
            (0.0, 0.0, 1.0), "`[N, 3]` (0, 0, 1): the hand's z axis, towards the fingers"
        ),  # fmt: skip
        "gripper_up_axis": _binding_const(
            (0.0, 1.0, 0.0), "`[N, 3]` (0, 1, 0): the hand's y axis, the fingers' closing direction"
        ),  # fmt: skip
    }
    text2reward_attrs = {
        **T2R_JOINTS,
        "robot.ee_position": "tcp_pos",
        "robot.ee_pose.p": "tcp_pos",
        "robot.ee_pose.q": "tcp_quat",
        "tcp.pose.p": "tcp_pos",
        "tcp.pose.q": "tcp_quat",
        "robot.lfinger.pose.p": "left_finger_pos",
        "robot.rfinger.pose.p": "right_finger_pos",
        "robot.gripper_openness": "gripper_opening",
        "cubeA.pose.p": "cube_pos",
        "cubeA.pose.q": "cube_quat",
        "cubeA.velocity": "cube_linvel",
        "obj.pose.p": "cube_pos",
        "obj.pose.q": "cube_quat",
        "obj1.position": "cube_pos",
        "goal_height": "goal_height",
        "goal_pos": "goal_pos",
        "goal_position": "goal_pos",
        "is_grasped": "grasped",
        "robot.is_grasping": "grasped",
    }
    scripted_episodes = {
        "pick_and_lift": Script("success", _pick_policy()),
        "grasp_no_lift": Script("partial", _pick_policy(lift=False)),
        "no_grasp": Script("failure", _pick_policy(close=False)),
        "miss": Script("failure", _pick_policy(offset=0.08)),
    }

    def __init__(self, cfg: FrankaLiftConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: FrankaLiftConfig = cfg
        home = franka.home_qpos(model)
        for name, v in zip(franka.ARM_JOINTS, PREGRASP, strict=True):
            home[int(model.jnt_qposadr[lookup(model, "joint", name)])] = v
        r = cfg.cube_range
        self.events = EventManager(
            model,
            [
                JointPositions(franka.ARM_JOINTS, Uniform(-cfg.reset_noise, cfg.reset_noise)),
                FreeBodyPose("cube", Uniform((-r, -r, 0.0), (r, r, 0.0))),
            ],
            home,
        )
        default = franka.home_ctrl(model)
        for name, v in zip(franka.ARM_ACTUATORS, PREGRASP, strict=True):
            default[lookup(model, "actuator", name)] = v
        self.action_map = ActionMap(
            (
                TaskSpaceTargets(
                    franka.TCP, franka.ARM_ACTUATORS, cfg.tcp_step, WORKSPACE_LOW, WORKSPACE_HIGH
                ),  # fmt: skip
                Gripper(
                    franka.GRIPPER_ACTUATOR, franka.GRIPPER_OPEN, 0.0, binary=True, threshold=0.5
                ),
            )
        ).bind(model, default)
        self.tcp = franka.TCP.bind(model)
        self.grasp = GRASP.bind(model)
        jnt = [lookup(model, "joint", n) for n in franka.ARM_JOINTS]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        fingers = [lookup(model, "joint", n) for n in franka.FINGER_JOINTS]
        self._finger_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in fingers])
        self._cube = lookup(model, "body", "cube")
        self._lf = lookup(model, "body", "left_finger")
        self._rf = lookup(model, "body", "right_finger")
        cube_j = int(model.body_jntadr[self._cube])
        self._cube_qvel = int(model.jnt_dofadr[cube_j])
        self._mocap = int(model.body_mocapid[lookup(model, "body", "goal")])
        self._home = torch.as_tensor(PREGRASP, dtype=torch.float32)

    @classmethod
    def default_config(cls) -> FrankaLiftConfig:
        return FrankaLiftConfig()

    def tcp_actions(self, tcp: torch.Tensor, goal: torch.Tensor, grip: torch.Tensor, gain: float = 1.0) -> torch.Tensor:  # fmt: skip
        """Scripted actions: move the TCP ``gain`` of the way to ``goal`` (at most one
        ``tcp_step``), gripper ``grip`` (-1 open .. +1 closed)."""
        move = (gain * (goal - tcp) / self.cfg.tcp_step).clamp(-1.0, 1.0)
        return torch.cat([move, grip[:, None]], -1).float()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = franka.panda_scene()
        cube = spec.worldbody.add_body(name="cube", pos=list(CUBE_START))
        cube.add_freejoint()
        franka.add_box(cube, "cube", (CUBE_HALF,) * 3, (0.1, 0.8, 0.2, 1.0), mass=0.1)
        goal = spec.worldbody.add_body(name="goal", mocap=True, pos=[CUBE_START[0], CUBE_START[1], 0.15])  # fmt: skip
        franka.add_box(goal, "goal", (CUBE_HALF,) * 3, (1.0, 0.2, 0.2, 0.25), collide=False)
        add_contact_sensors(spec, GRASP.contacts())
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        return [Path(__file__).resolve(), Path(franka.__file__).resolve(), *franka.model_files()]

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.events.reset(sim, env_ids, gen)
        mocap = sim.derived.get("mocap_pos")
        if mocap is not None:  # the goal marker over the cube's start, at the goal height
            qa = int(self.model.jnt_qposadr[int(self.model.body_jntadr[self._cube])])
            p = sim.qpos[env_ids, qa : qa + 3].to(mocap.dtype).clone()
            p[:, 2] = self.cfg.goal_height
            mocap[env_ids, self._mocap] = p

    def get_state_dict(self) -> dict[str, Any]:
        return self.events.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.events.load_state_dict(state)

    def state_spec(self) -> dict[str, StateField]:
        c = self.cfg
        return {
            "joint_pos": StateField((7,), "rad", "joint", "Arm joint angles joint1..joint7 (start pose [0, 0.05, 0, -2.38, 0, 2.42, -0.79]: TCP 0.2 m above the floor, fingers down)."),
            "joint_vel": StateField((7,), "rad/s", "joint", "Arm joint velocities joint1..joint7."),
            "gripper_opening": StateField((), "m", "joint", "Distance between the fingers (0 closed, 0.08 fully open)."),
            "tcp_pos": StateField((3,), "m", "world", "Tool-centre point between the finger pads; the robot's base is at the origin, the floor at z = 0."),
            "tcp_quat": StateField((4,), "1", "world", "Orientation (w, x, y, z) of the hand; its z axis points from the wrist to the fingers, its y axis is the fingers' closing direction."),
            "left_finger_pos": StateField((3,), "m", "world", "Position of the left finger's body."),
            "right_finger_pos": StateField((3,), "m", "world", "Position of the right finger's body."),
            "cube_pos": StateField((3,), "m", "world", f"Centre of the {2 * CUBE_HALF:g} m cube (resting: z = {CUBE_HALF})."),
            "cube_quat": StateField((4,), "1", "world", "Orientation (w, x, y, z) of the cube."),
            "cube_linvel": StateField((3,), "m/s", "world", "Linear velocity of the cube."),
            "cube_height": StateField((), "m", "world", "Height of the cube's centre above the floor (cube_pos z)."),
            "goal_height": StateField((), "m", "world", f"Height the cube's centre should reach ({c.goal_height} m); success if cube_height > {c.goal_height - c.success_tolerance:g} m at the end."),
            "goal_pos": StateField((3,), "m", "world", "Goal point: over the cube's start, at goal_height."),
            "tcp_to_cube": StateField((3,), "m", "world", "Vector from the TCP to the cube's centre (cube_pos - tcp_pos)."),
            "tcp_cube_distance": StateField((), "m", "world", "Distance from the TCP to the cube's centre."),
            "cube_goal_distance": StateField((), "m", "world", "Distance from the cube's centre to the goal point."),
            "left_touch": StateField((), "1", "contact", "1 while the left finger pad touches the cube, else 0."),
            "right_touch": StateField((), "1", "contact", "1 while the right finger pad touches the cube, else 0."),
            "grasped": StateField((), "1", "contact", "1 while both finger pads touch the cube (a grasp), else 0."),
            "last_action": StateField((4,), "1", "actuator", "Action of the previous control step in [-1, 1]: TCP motion (x, y, z; times tcp_step m per step, the arm follows by inverse kinematics, the hand keeps pointing down), then the gripper (closed above 0.5, else open)."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        tcp = self.tcp.pos(sim)
        cube = sim.xpos[:, self._cube]
        goal = self.events.buffers.get("goal")
        goal_pos = cube.new_zeros(cube.shape)
        mocap = sim.derived.get("mocap_pos")
        if mocap is not None:
            goal_pos = mocap[:, self._mocap].to(cube.dtype)
        del goal
        touch = self.grasp.touching(sim)
        v = sim.qvel[:, self._cube_qvel : self._cube_qvel + 3]
        f32 = torch.float32
        out = {
            "joint_pos": sim.qpos[:, self._qpos_idx].to(f32),
            "joint_vel": sim.qvel[:, self._qvel_idx].to(f32),
            "gripper_opening": sim.qpos[:, self._finger_idx].sum(-1).to(f32),
            "tcp_pos": tcp.to(f32),
            "tcp_quat": self.tcp.quat(sim).to(f32),
            "left_finger_pos": sim.xpos[:, self._lf].to(f32),
            "right_finger_pos": sim.xpos[:, self._rf].to(f32),
            "cube_pos": cube.to(f32),
            "cube_quat": sim.xquat[:, self._cube].to(f32),
            "cube_linvel": v.to(f32),
            "cube_height": cube[:, 2].to(f32),
            "goal_height": torch.full_like(cube[:, 2], self.cfg.goal_height).to(f32),
            "goal_pos": goal_pos.to(f32),
            "tcp_to_cube": (cube - tcp).to(f32),
            "tcp_cube_distance": torch.linalg.vector_norm(cube - tcp, dim=-1).to(f32),
            "cube_goal_distance": torch.linalg.vector_norm(goal_pos - cube, dim=-1).to(f32),
            "left_touch": touch[:, 0].to(f32),
            "right_touch": touch[:, 1].to(f32),
            "grasped": (touch[:, 0] * touch[:, 1]).to(f32),
            "last_action": last_action,
        }
        return out

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat(
            [
                state["joint_pos"] - self._home.to(state["joint_pos"].device),
                0.1 * state["joint_vel"],
                10.0 * state["gripper_opening"][:, None],
                state["tcp_pos"],
                state["cube_pos"],
                state["tcp_to_cube"],
                (state["goal_height"] - state["cube_height"])[:, None],
                state["left_touch"][:, None],
                state["right_touch"][:, None],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [
            ("joint_pos - start", 7), ("0.1 * joint_vel", 7), ("10 * gripper_opening", 1),
            ("tcp_pos", 3), ("cube_pos", 3), ("tcp_to_cube", 3), ("goal_height - cube_height", 1),
            ("left_touch", 1), ("right_touch", 1), ("last_action", 4),
        ]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["cube_height"] > self.cfg.goal_height - self.cfg.success_tolerance

    def reward_terms(self) -> dict[str, RewardTerm]:
        c = self.cfg
        span = c.goal_height - CUBE_HALF

        def lift_progress(state: State, action: torch.Tensor) -> torch.Tensor:
            """Fraction of the way from resting to the goal height, in [0, 1]."""
            return (state["cube_height"] - CUBE_HALF) / span

        lift = gated(clipped(lift_progress, 0.0, 1.0), above("grasped", 0.5))
        lift.__doc__ = "Lift progress in [0, 1], counted only while both pads touch the cube."
        return self._weighted(
            {
                "reach": (tolerance("tcp_cube_distance", 0.2), 1.0),
                "grasp": (state_value("grasped"), 0.5),
                "lift": (lift, 4.0),
                "goal": (gated(tolerance("cube_goal_distance", 0.05), above("grasped", 0.5)), 2.0),
                "action_rate": (action_rate_l2, -0.01),
            }
        )
