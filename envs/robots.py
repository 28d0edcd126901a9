"""Robot constants in one place: joint names, default poses, limits, actuators.

The tasks read their joint names and default poses from here, and the deploy side (the ROS 2
policy runner, its safety layer, the MuJoCo sim-robot node) reads the same constants, so that a
policy trained in simulation commands the robot with the joint order and scaling it was trained
with. Plain Python and numpy only (no torch, no mujoco): a robot computer can import this module
without the trainer or the simulator installed.

Action convention of every task: an action ``a`` in ``[-1, 1]`` per actuator becomes the
actuator control ``ctrl = mid + half * a`` with ``mid, half`` the centre and half-width of
``ctrl_range``. For ``actuator_type == "position"`` the control is the joint position target
(rad); for ``"torque"`` the joint torque is ``gear * ctrl`` (N m). :meth:`RobotSpec.action_to_command`
does this conversion.

``tests/test_tasks_smoke.py`` checks every constant here against the compiled MJCF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RobotSpec:
    """Constants of one robot model, in action order (actuator i drives joint i)."""

    name: str
    """Robot name."""
    model_file: str
    """MJCF file under ``envs/assets/``."""
    joint_names: tuple[str, ...]
    """Actuated joints, in action order (also their order in ``joint_pos`` / ``joint_vel`` states)."""
    actuator_names: tuple[str, ...]
    """MJCF actuator names, in action order."""
    actuator_type: str
    """``"position"`` (ctrl is a joint position target, rad) or ``"torque"`` (torque = gear * ctrl)."""
    default_pose: tuple[float, ...]
    """Joint positions (rad) of the nominal pose the tasks reset around."""
    joint_limits: tuple[tuple[float, float], ...]
    """``(lower, upper)`` joint position limits in rad, as in the MJCF."""
    velocity_limits: tuple[float, ...]
    """Joint speed limits in rad/s for the deploy safety layer (not enforced in simulation)."""
    effort_limits: tuple[float, ...]
    """Largest torque (N m) each actuator can apply: the servo's force range, or gear * max |ctrl|."""
    ctrl_range: tuple[tuple[float, float], ...]
    """``(lower, upper)`` actuator control range (the MJCF ``ctrlrange``)."""
    gear: tuple[float, ...] = ()
    """Torque per unit control for torque actuators; empty for position servos."""
    kp: tuple[float, ...] = ()
    """Position gain (N m / rad) of position servos; empty for torque actuators."""
    kd: tuple[float, ...] = ()
    """Velocity gain (N m s / rad) of position servos (compiled from ``dampratio``); empty for torque."""
    base_height: float = 0.0
    """Height (m) of the root body in the default pose (floating-base robots); 0 if fixed."""

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        """Actions in ``[-1, 1]`` (clipped) -> actuator controls ``ctrl`` (as the simulator applies)."""
        lo, hi = np.asarray(self.ctrl_range, dtype=np.float64).T
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return (hi + lo) / 2 + (hi - lo) / 2 * a

    def action_to_command(self, action: np.ndarray) -> np.ndarray:
        """Actions -> joint position targets (rad, position servos) or joint torques (N m)."""
        ctrl = self.action_to_ctrl(action)
        if self.actuator_type == "torque":
            return ctrl * np.asarray(self.gear, dtype=np.float64)
        return ctrl

    def command_to_action(self, command: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`action_to_command` (not clipped)."""
        command = np.asarray(command, dtype=np.float64)
        if self.actuator_type == "torque":
            command = command / np.asarray(self.gear, dtype=np.float64)
        lo, hi = np.asarray(self.ctrl_range, dtype=np.float64).T
        return (command - (hi + lo) / 2) / ((hi - lo) / 2)


# ---------------------------------------------------------------------------------------------
# arm3: 3-DoF spatial arm with position servos (arm_reach)

ARM3_SHOULDER_HEIGHT = 0.30
"""Height (m) of the shoulder axis above the floor (the base yaw axis is the world z axis)."""
ARM3_UPPER_ARM = 0.25
"""Shoulder-to-elbow length (m)."""
ARM3_FOREARM = 0.25
"""Elbow-to-end-effector length (m)."""

_ARM3_LIMITS = ((-2.5, 2.5), (-1.2, 2.0), (-0.6, 2.6))

ARM3 = RobotSpec(
    name="arm3",
    model_file="arm3.xml",
    joint_names=("base_yaw", "shoulder", "elbow"),
    actuator_names=("base_yaw", "shoulder", "elbow"),
    actuator_type="position",
    default_pose=(0.0, 0.4, 1.0),
    joint_limits=_ARM3_LIMITS,
    velocity_limits=(5.0, 5.0, 5.0),
    effort_limits=(15.0, 30.0, 15.0),
    ctrl_range=_ARM3_LIMITS,
    kp=(40.0, 120.0, 60.0),
    kd=(1.453, 6.201, 1.863),
)


def arm_forward_kinematics(q: np.ndarray) -> np.ndarray:
    """End-effector position (m, world frame) of arm3 for joint angles ``q [..., 3]`` (rad)."""
    q = np.asarray(q, dtype=np.float64)
    yaw, sh, el = q[..., 0], q[..., 1], q[..., 2]
    r = ARM3_UPPER_ARM * np.sin(sh) + ARM3_FOREARM * np.sin(sh + el)
    z = ARM3_SHOULDER_HEIGHT + ARM3_UPPER_ARM * np.cos(sh) + ARM3_FOREARM * np.cos(sh + el)
    return np.stack([r * np.cos(yaw), r * np.sin(yaw), z], axis=-1)


# ---------------------------------------------------------------------------------------------
# ant: quadruped with torque motors (ant_run)

_ANT_HIP = (-math.radians(30), math.radians(30))
_ANT_ANKLE = (math.radians(30), math.radians(70))

_ANT_JOINTS = (
    "hip_fl",
    "ankle_fl",
    "hip_fr",
    "ankle_fr",
    "hip_bl",
    "ankle_bl",
    "hip_br",
    "ankle_br",
)

ANT = RobotSpec(
    name="ant",
    model_file="ant.xml",
    joint_names=_ANT_JOINTS,
    actuator_names=_ANT_JOINTS,  # one motor per joint, named after it
    actuator_type="torque",
    default_pose=(0.0, 1.0) * 4,
    joint_limits=(_ANT_HIP, _ANT_ANKLE) * 4,
    velocity_limits=(20.0,) * 8,
    effort_limits=(100.0,) * 8,
    ctrl_range=((-1.0, 1.0),) * 8,
    gear=(100.0,) * 8,
    base_height=0.565,
)

ANT_FEET = ("foot_fl", "foot_fr", "foot_bl", "foot_br")
"""Sites at the tips of the legs, in leg order."""

# ---------------------------------------------------------------------------------------------
# humanoid: 21-DoF torque-controlled humanoid (humanoid_stand, humanoid_walk)

_HUMANOID_JOINTS: tuple[tuple[str, float, float, float], ...] = (
    # name, lower (deg), upper (deg), gear (N m)
    ("abdomen_z", -45, 45, 40),
    ("abdomen_y", -75, 30, 40),
    ("abdomen_x", -35, 35, 40),
    ("right_hip_x", -25, 5, 40),
    ("right_hip_z", -60, 35, 40),
    ("right_hip_y", -110, 20, 120),
    ("right_knee", -160, 2, 80),
    ("right_ankle_y", -50, 50, 20),
    ("right_ankle_x", -50, 50, 20),
    ("left_hip_x", -25, 5, 40),
    ("left_hip_z", -60, 35, 40),
    ("left_hip_y", -110, 20, 120),
    ("left_knee", -160, 2, 80),
    ("left_ankle_y", -50, 50, 20),
    ("left_ankle_x", -50, 50, 20),
    ("right_shoulder1", -85, 60, 20),
    ("right_shoulder2", -85, 60, 20),
    ("right_elbow", -90, 50, 40),
    ("left_shoulder1", -60, 85, 20),
    ("left_shoulder2", -60, 85, 20),
    ("left_elbow", -90, 50, 40),
)

HUMANOID = RobotSpec(
    name="humanoid",
    model_file="humanoid.xml",
    joint_names=tuple(j[0] for j in _HUMANOID_JOINTS),
    actuator_names=tuple(j[0] for j in _HUMANOID_JOINTS),
    actuator_type="torque",
    default_pose=(0.0,) * len(_HUMANOID_JOINTS),
    joint_limits=tuple((math.radians(j[1]), math.radians(j[2])) for j in _HUMANOID_JOINTS),
    velocity_limits=(20.0,) * len(_HUMANOID_JOINTS),
    effort_limits=tuple(float(j[3]) for j in _HUMANOID_JOINTS),
    ctrl_range=((-1.0, 1.0),) * len(_HUMANOID_JOINTS),
    gear=tuple(float(j[3]) for j in _HUMANOID_JOINTS),
    base_height=1.285,
)

HUMANOID_STANDING_HEAD_HEIGHT = 1.475
"""Head (centre of the head sphere) height in m when standing straight in the default pose."""

ROBOTS: dict[str, RobotSpec] = {r.name: r for r in (ARM3, ANT, HUMANOID)}
"""Every robot by name."""

__all__ = [
    "ANT",
    "ANT_FEET",
    "ARM3",
    "ARM3_FOREARM",
    "ARM3_SHOULDER_HEIGHT",
    "ARM3_UPPER_ARM",
    "HUMANOID",
    "HUMANOID_STANDING_HEAD_HEIGHT",
    "ROBOTS",
    "RobotSpec",
    "arm_forward_kinematics",
]
