"""Franka open drawer: pull a drawer open by its handle with the Panda (grasped or hooked).

The scene is Playground's Panda scene (:mod:`.franka`) plus a cabinet composed with
:class:`mujoco.MjSpec`: a fixed cabinet body whose drawer slides out towards the robot (a slide
joint along -x, 0 closed .. 0.3 m, damped) with a bar handle (2 x 2 cm, 12 cm wide along y)
held 12 cm in front of the drawer's front by two posts (room for the hand), at 0.3 m height. Every episode the arm
starts near a start pose (TCP at (0.62, 0, 0.38) m, fingers down; uniform joint noise clipped
to the joint ranges) with the drawer closed. The policy moves the TCP (three actions, up to ``tcp_step`` m per
control step each, inside a workspace box; the arm follows by differential inverse kinematics
keeping the hand pointing down: :class:`~.authoring.TaskSpaceTargets`) and the gripper with one
action (binary: closed above 0.5, else open); with the hand pointing down, the fingers close along x, so
an open hand lowered over the bar straddles it and closing pinches it. An episode succeeds if the
drawer is open at least ``success_opening`` on its last step; nothing terminates early.

The hand's collision capsule collides with the cabinet (as in Playground's PandaOpenCabinet), so
the hand cannot pass through the drawer. The reward: reach the handle, grasp it (both pads on
it), open the drawer (progress to ``success_opening``, clipped). Success counts the opening only:
PPO's policies (benchmarks/results/franka.md) hook the bar from behind with the hand instead of
pinching it -- the scripted ``grasp_and_pull`` episode pinches it.
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
    Grasp,
    Gripper,
    JointPositions,
    TaskSpaceTargets,
    Uniform,
    add_contact_sensors,
    clipped,
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
    constant,
    entry,
)

State = Mapping[str, torch.Tensor]

FRONT_X = 0.80
"""x (m, world) of the closed drawer's front face."""
HANDLE_POS = (0.68, 0.0, 0.30)
"""Centre (m, world) of the handle bar of the closed drawer."""
START = (0.0, 0.191, 0.0, -1.6862, 0.0, 1.8772, -0.7853)
"""Arm joint angles (rad) of the start pose: TCP at (0.62, 0, 0.38) m, fingers pointing down
and closing along the world x axis."""
DRAWER_RANGE = 0.3
"""Travel (m) of the drawer's slide."""
WORKSPACE_LOW = (0.3, -0.3, 0.1)
"""Lower corner (m, world) of the box the TCP is steered in."""
WORKSPACE_HIGH = (0.78, 0.3, 0.5)
"""Upper corner of that box (in front of the cabinet)."""
GRASP = Grasp("grasped", franka.FINGER_PADS, "handle")
"""Both finger pads on the handle (bar and posts)."""


@dataclass(frozen=True)
class FrankaOpenDrawerConfig(TaskConfig):
    """Franka open-drawer settings (5 ms physics; 50 Hz control at frame_skip 4)."""

    frame_skip: int = 4
    """Physics steps per control step."""
    episode_steps: int = 150
    """Time limit in control steps (3 s at 50 Hz)."""
    reset_noise: float = 0.1
    """Half-width (rad) of the uniform noise on the arm's initial joint angles around the start."""
    tcp_step: float = 0.02
    """Largest TCP motion (m) per control step (an action of 1: 1 m/s at 50 Hz)."""
    success_opening: float = 0.15
    """An episode succeeds if the drawer is open at least this much (m) at the end."""
    drawer_damping: float = 5.0
    """Damping (N s/m) of the drawer's slide."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: reach, grasp, open, action_rate."""

    def validate(self) -> None:
        super().validate()
        if not 0 < self.success_opening <= DRAWER_RANGE:
            raise ValueError(f"success_opening must be in (0, {DRAWER_RANGE}], got {self.success_opening}")  # fmt: skip
        for name in ("tcp_step", "drawer_damping"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _pull_policy(pull: bool = True, close: bool = True, dz: float = 0.0) -> ScriptedPolicy:
    """A stateless pull: over the handle, down onto it with the hand open, close once the TCP
    is at the bar, pull back once both pads hold it (``pull``; the pads' contacts flicker, so "closed on the bar" is the fingers' gap); ``dz`` m
    above the bar (a miss),
    or never closing (``close`` false)."""

    def policy(st: State, env: Any) -> torch.Tensor:
        task: FrankaOpenDrawer = env.task
        aim = st["handle_pos"].clone()
        aim[:, 2] += dz
        tcp = st["tcp_pos"]
        xy_err = torch.linalg.vector_norm(tcp[:, :2] - aim[:, :2], dim=-1)
        over = aim + torch.tensor([0.0, 0.0, 0.08])
        goal = torch.where((xy_err > 0.015)[:, None], over, aim)
        at_bar = torch.linalg.vector_norm(tcp - aim, dim=-1) < 0.015
        holding = at_bar & (st["gripper_opening"] < 0.03) & close  # closed on the bar
        if pull:
            back = aim + torch.tensor([-0.05, 0.0, 0.0])  # a few cm at a time: no slip
            goal = torch.where(holding[:, None], back, goal)
        grip = torch.where(at_bar & close, 1.0, -1.0).float()
        return task.tcp_actions(tcp, goal, grip, gain=0.6)

    return policy


def _constant(values: tuple[float, ...], doc: str) -> Binding:
    """A constant ``[N, k]`` (IsaacGymEnvs' local axes, a handle's fixed rotation)."""

    def fn(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32).repeat(s["tcp_pos"].shape[0], 1)

    return Binding(fn, doc)


def _xyzw(name: str) -> Binding:
    def fn(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        return s[name][:, [1, 2, 3, 0]]

    return Binding(fn, f"`{name}` as (x, y, z, w)")


def _cabinet_dof(kind: str) -> Binding:
    """IsaacGymEnvs' ``cabinet_dof_pos`` / ``_vel`` ``[N, 4]``: its cabinet has 4 joints and the
    reward reads the top drawer at index 3; ours has one drawer, put at index 3 (others 0)."""
    name = "drawer_opening" if kind == "pos" else "drawer_velocity"

    def fn(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
        out = torch.zeros(s[name].shape[0], 4, dtype=s[name].dtype)
        out[:, 3] = s[name]
        return out

    return Binding(fn, f"`[N, 4]`: zeros, column 3 = `{name}` (the drawer IsaacGymEnvs reads)")


@register_task
class FrankaOpenDrawer(Task):
    """Pull a drawer open by its handle with the Franka Panda."""

    name = "franka_open_drawer"
    model_file = ""
    sim_fields = ("xpos", "xquat", "xanchor", "xaxis", "qfrc_bias", "sensordata")
    success_threshold = 0.8

    reward_camera = CameraSpec(1.3, 140.0, -20.0, (0.65, 0.0, 0.3))
    prompts = Prompts(
        ("a robot arm pulling a drawer open",),
        ("a closed drawer in front of a robot arm",),
    )
    eureka_names = {
        "franka_dof_pos": entry("joint_pos"),
        "franka_dof_vel": entry("joint_vel"),
        "dof_pos": entry("joint_pos"),
        "dof_vel": entry("joint_vel"),
        "franka_grasp_pos": entry("tcp_pos"),
        "franka_grasp_rot": _xyzw("tcp_quat"),
        "drawer_grasp_pos": entry("handle_pos"),
        "drawer_grasp_rot": _constant(
            (0.0, 0.0, 1.0, 0.0),
            "`[N, 4]` (0, 0, 1, 0) xyzw: the handle frame, its -x axis into the cabinet (+x world)",
        ),  # fmt: skip
        "franka_lfinger_pos": entry("left_finger_pos"),
        "franka_rfinger_pos": entry("right_finger_pos"),
        "gripper_forward_axis": _constant(
            (0.0, 0.0, 1.0), "`[N, 3]` (0, 0, 1): the hand's z axis, towards the fingers"
        ),  # fmt: skip
        "drawer_inward_axis": _constant(
            (-1.0, 0.0, 0.0), "`[N, 3]` (-1, 0, 0): into the cabinet in the handle frame"
        ),  # fmt: skip
        "gripper_up_axis": _constant(
            (0.0, 1.0, 0.0),
            "`[N, 3]` (0, 1, 0): the hand's y axis (the fingers' closing direction)",
        ),  # fmt: skip
        "drawer_up_axis": _constant((0.0, 0.0, 1.0), "`[N, 3]` (0, 0, 1): up in the handle frame"),
        "cabinet_dof_pos": _cabinet_dof("pos"),
        "cabinet_dof_vel": _cabinet_dof("vel"),
        "drawer_pos": entry("drawer_opening"),
        "handle_pos": entry("handle_pos"),
        # compute_franka_reward's scales, as IsaacGymEnvs' FrankaCabinet config sets them
        # (Python scalars, as the function uses them).
        **{
            name: constant(value, f"IsaacGymEnvs FrankaCabinet's {cfg_key}")
            for name, value, cfg_key in (
                ("dist_reward_scale", 2.0, "distRewardScale"),
                ("rot_reward_scale", 0.5, "rotRewardScale"),
                ("around_handle_reward_scale", 0.25, "aroundHandleRewardScale"),
                ("open_reward_scale", 7.5, "openRewardScale"),
                ("finger_dist_reward_scale", 5.0, "fingerDistRewardScale"),
                ("action_penalty_scale", 0.01, "actionPenaltyScale"),
                ("distX_offset", 0.04, "the env's distX_offset"),
            )
        },
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
        "target_link.pose.p": "handle_pos",
        "target_handle.pose.p": "handle_pos",
        "handle.pose.p": "handle_pos",
        "link_qpos": "drawer_opening",
        "target_link_qpos": "drawer_opening",
        "link_qvel": "drawer_velocity",
        "target_qpos": "target_opening",
        "is_grasped": "grasped",
        "robot.is_grasping": "grasped",
    }
    scripted_episodes = {
        "grasp_and_pull": Script("success", _pull_policy()),
        "grasp_no_pull": Script("partial", _pull_policy(pull=False)),
        "no_grasp": Script("failure", _pull_policy(close=False)),
        "miss": Script("failure", _pull_policy(dz=0.1)),
    }

    def __init__(self, cfg: FrankaOpenDrawerConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: FrankaOpenDrawerConfig = cfg
        model.dof_damping[int(model.jnt_dofadr[lookup(model, "joint", "drawer")])] = cfg.drawer_damping  # fmt: skip
        home = franka.home_qpos(model)
        default = franka.home_ctrl(model)
        for jn, an, v in zip(franka.ARM_JOINTS, franka.ARM_ACTUATORS, START, strict=True):
            home[int(model.jnt_qposadr[lookup(model, "joint", jn)])] = v
            default[lookup(model, "actuator", an)] = v
        self.events = EventManager(
            model,
            [JointPositions(franka.ARM_JOINTS, Uniform(-cfg.reset_noise, cfg.reset_noise))],
            home,
        )
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
        drawer = lookup(model, "joint", "drawer")
        self._drawer_q = int(model.jnt_qposadr[drawer])
        self._drawer_v = int(model.jnt_dofadr[drawer])
        self._lf = lookup(model, "body", "left_finger")
        self._rf = lookup(model, "body", "right_finger")
        self._handle = lookup(model, "body", "handle")
        self._home = torch.as_tensor(START, dtype=torch.float32)

    @classmethod
    def default_config(cls) -> FrankaOpenDrawerConfig:
        return FrankaOpenDrawerConfig()

    def tcp_actions(self, tcp: torch.Tensor, goal: torch.Tensor, grip: torch.Tensor, gain: float = 1.0) -> torch.Tensor:  # fmt: skip
        """Scripted actions: move the TCP ``gain`` of the way to ``goal`` (at most one
        ``tcp_step``), gripper ``grip`` (-1 open .. +1 closed)."""
        move = (gain * (goal - tcp) / self.cfg.tcp_step).clamp(-1.0, 1.0)
        return torch.cat([move, grip[:, None]], -1).float()

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        spec = franka.panda_scene()
        spec.geom("hand_capsule").conaffinity = 3  # the hand collides with the cabinet
        wood, metal = (0.55, 0.4, 0.3, 1.0), (0.7, 0.7, 0.75, 1.0)
        cab = spec.worldbody.add_body(name="cabinet", pos=[FRONT_X + 0.16, 0.0, 0.3])
        franka.add_box(cab, "cabinet_top", (0.16, 0.2, 0.01), wood, pos=(0, 0, 0.09))
        franka.add_box(cab, "cabinet_back", (0.01, 0.2, 0.1), wood, pos=(0.15, 0, 0))
        franka.add_box(cab, "cabinet_left", (0.16, 0.01, 0.1), wood, pos=(0, 0.19, 0))
        franka.add_box(cab, "cabinet_right", (0.16, 0.01, 0.1), wood, pos=(0, -0.19, 0))
        franka.add_box(cab, "cabinet_post", (0.01, 0.01, 0.15), wood, pos=(0.15, 0, -0.25))
        drawer = cab.add_body(name="drawer", pos=[0.0, 0.0, 0.0])
        j = drawer.add_joint(name="drawer", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1, 0, 0])
        j.range = [0.0, DRAWER_RANGE]
        j.damping = [5.0, 0.0, 0.0]
        j.armature = 0.01
        # The drawer: its front (x = FRONT_X), a floor, two sides; the handle bar and its posts.
        hx = HANDLE_POS[0] - (FRONT_X + 0.16)
        franka.add_box(drawer, "drawer_front", (0.01, 0.17, 0.07), wood, pos=(-0.15, 0, 0), mass=0.3)  # fmt: skip
        franka.add_box(drawer, "drawer_floor", (0.14, 0.17, 0.005), wood, pos=(0.0, 0, -0.06), mass=0.2)  # fmt: skip
        handle = drawer.add_body(name="handle", pos=[hx, 0.0, 0.0])
        franka.add_box(handle, "handle", (0.01, 0.06, 0.01), metal, mass=0.05)
        for y in (-0.05, 0.05):
            franka.add_box(handle, f"handle_post_{'l' if y > 0 else 'r'}", (0.055, 0.008, 0.008), metal, pos=(0.065, y, 0), mass=0.01)  # fmt: skip
        add_contact_sensors(spec, GRASP.contacts())
        return spec.compile()

    @classmethod
    def task_files(cls) -> list[Path]:
        return [Path(__file__).resolve(), Path(franka.__file__).resolve(), *franka.model_files()]

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.events.reset(sim, env_ids, gen)

    def state_spec(self) -> dict[str, StateField]:
        c = self.cfg
        return {
            "joint_pos": StateField((7,), "rad", "joint", "Arm joint angles joint1..joint7 (start pose [0, 0.19, 0, -1.69, 0, 1.88, -0.79]: TCP at (0.62, 0, 0.38) m, fingers down)."),
            "joint_vel": StateField((7,), "rad/s", "joint", "Arm joint velocities joint1..joint7."),
            "gripper_opening": StateField((), "m", "joint", "Distance between the fingers (0 closed, 0.08 fully open)."),
            "tcp_pos": StateField((3,), "m", "world", "Tool-centre point between the finger pads; the robot's base is at the origin, the floor at z = 0."),
            "tcp_quat": StateField((4,), "1", "world", "Orientation (w, x, y, z) of the hand; its z axis points from the wrist to the fingers, its y axis is the fingers' closing direction."),
            "left_finger_pos": StateField((3,), "m", "world", "Position of the left finger's body."),
            "right_finger_pos": StateField((3,), "m", "world", "Position of the right finger's body."),
            "handle_pos": StateField((3,), "m", "world", f"Centre of the drawer's handle bar (closed drawer: {list(HANDLE_POS)}); it moves -x as the drawer opens."),
            "drawer_opening": StateField((), "m", "joint", f"How far the drawer is open: 0 closed .. {DRAWER_RANGE} fully open (towards the robot, -x)."),
            "drawer_velocity": StateField((), "m/s", "joint", "Opening speed of the drawer (positive: opening)."),
            "target_opening": StateField((), "m", "joint", f"Opening that counts as open ({c.success_opening} m): success if drawer_opening reaches it at the end."),
            "tcp_to_handle": StateField((3,), "m", "world", "Vector from the TCP to the handle (handle_pos - tcp_pos)."),
            "tcp_handle_distance": StateField((), "m", "world", "Distance from the TCP to the handle's centre."),
            "left_touch": StateField((), "1", "contact", "1 while the left finger pad touches the handle, else 0."),
            "right_touch": StateField((), "1", "contact", "1 while the right finger pad touches the handle, else 0."),
            "grasped": StateField((), "1", "contact", "1 while both finger pads touch the drawer's handle (a grasp), else 0."),
            "last_action": StateField((4,), "1", "actuator", "Action of the previous control step in [-1, 1]: TCP motion (x, y, z; times tcp_step m per step, the arm follows by inverse kinematics, the hand keeps pointing down), then the gripper (closed above 0.5, else open)."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        f32 = torch.float32
        tcp = self.tcp.pos(sim)
        opening = sim.qpos[:, self._drawer_q]
        handle = sim.xpos[:, self._handle]
        touch = self.grasp.touching(sim)
        return {
            "joint_pos": sim.qpos[:, self._qpos_idx].to(f32),
            "joint_vel": sim.qvel[:, self._qvel_idx].to(f32),
            "gripper_opening": sim.qpos[:, self._finger_idx].sum(-1).to(f32),
            "tcp_pos": tcp.to(f32),
            "tcp_quat": self.tcp.quat(sim).to(f32),
            "left_finger_pos": sim.xpos[:, self._lf].to(f32),
            "right_finger_pos": sim.xpos[:, self._rf].to(f32),
            "handle_pos": handle.to(f32),
            "drawer_opening": opening.to(f32),
            "drawer_velocity": sim.qvel[:, self._drawer_v].to(f32),
            "target_opening": torch.full_like(opening, self.cfg.success_opening).to(f32),
            "tcp_to_handle": (handle - tcp).to(f32),
            "tcp_handle_distance": torch.linalg.vector_norm(handle - tcp, dim=-1).to(f32),
            "left_touch": touch[:, 0].to(f32),
            "right_touch": touch[:, 1].to(f32),
            "grasped": (touch[:, 0] * touch[:, 1]).to(f32),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        return torch.cat(
            [
                state["joint_pos"] - self._home.to(state["joint_pos"].device),
                0.1 * state["joint_vel"],
                10.0 * state["gripper_opening"][:, None],
                state["tcp_pos"],
                state["handle_pos"],
                state["tcp_to_handle"],
                state["drawer_opening"][:, None],
                state["left_touch"][:, None],
                state["right_touch"][:, None],
                state["last_action"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [
            ("joint_pos - start", 7), ("0.1 * joint_vel", 7), ("10 * gripper_opening", 1),
            ("tcp_pos", 3), ("handle_pos", 3), ("tcp_to_handle", 3), ("drawer_opening", 1),
            ("left_touch", 1), ("right_touch", 1), ("last_action", 4),
        ]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["drawer_opening"] >= self.cfg.success_opening

    def reward_terms(self) -> dict[str, RewardTerm]:
        target = self.cfg.success_opening

        def open_progress(state: State, action: torch.Tensor) -> torch.Tensor:
            """Opening as a fraction of the success opening."""
            return state["drawer_opening"] / target

        return self._weighted(
            {
                "reach": (tolerance("tcp_handle_distance", 0.1), 1.0),
                "grasp": (state_value("grasped"), 0.5),
                "open": (clipped(open_progress, 0.0, 1.0), 5.0),
                "action_rate": (action_rate_l2, -0.01),
            }
        )
