"""Plain message dataclasses of the deploy core: what the transports (rclpy, DDS) convert to/from.

The core (observation builder, action mapper, safety monitor, controller) sees only these, so it
runs and is tested without ROS. Times are seconds as floats:

- ``stamp``: the sender's time stamp (``header.stamp``), informative only;
- ``recv_time``: when *this* process received the sample, on the clock the controller's
  ``tick(now)`` uses (``time.monotonic()`` in the transports). Staleness is always judged by
  ``recv_time``: a sender's clock may be wrong or frozen, the receive clock is ours.

Arrays are float64 numpy arrays. Nothing here validates sizes against a robot: the observation
builder does that, by joint name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _arr(values: object) -> np.ndarray:
    return np.asarray(values if values is not None else (), dtype=np.float64).reshape(-1)


@dataclass
class JointStateSample:
    """One ``sensor_msgs/JointState``: joint names and per-name position/velocity/effort.

    ``velocity`` / ``effort`` may be empty (the message allows it); ``position`` may cover only
    some joints of the robot (several publishers per robot are common): the observation builder
    merges samples by name.
    """

    names: tuple[str, ...]
    """Joint names, in the sender's order (never assumed to be the policy's order)."""
    position: np.ndarray
    """Joint positions (rad or m), one per name."""
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Joint velocities (rad/s), one per name, or empty."""
    effort: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Joint efforts (N m), one per name, or empty."""
    stamp: float = 0.0
    """Sender's time stamp (s)."""
    recv_time: float = 0.0
    """Receive time (s) on the controller's clock."""

    def __post_init__(self) -> None:
        self.names = tuple(str(n) for n in self.names)
        self.position = _arr(self.position)
        self.velocity = _arr(self.velocity)
        self.effort = _arr(self.effort)


@dataclass
class ImuSample:
    """One ``sensor_msgs/Imu`` (orientation as a quaternion ``x, y, z, w`` as ROS orders it)."""

    orientation: np.ndarray
    """Quaternion ``[x, y, z, w]`` of the IMU frame in the world frame."""
    angular_velocity: np.ndarray
    """Angular velocity ``[3]`` (rad/s) in the IMU frame."""
    linear_acceleration: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Specific force ``[3]`` (m/s^2) in the IMU frame."""
    stamp: float = 0.0
    """Sender's time stamp (s)."""
    recv_time: float = 0.0
    """Receive time (s) on the controller's clock."""

    def __post_init__(self) -> None:
        self.orientation = _arr(self.orientation)
        self.angular_velocity = _arr(self.angular_velocity)
        self.linear_acceleration = _arr(self.linear_acceleration)


@dataclass
class PointSample:
    """One ``geometry_msgs/PointStamped`` (e.g. the reaching target), metres in ``frame_id``."""

    point: np.ndarray
    """``[x, y, z]`` (m)."""
    frame_id: str = ""
    """Frame of the point (the robot's base frame for the reaching task)."""
    stamp: float = 0.0
    """Sender's time stamp (s)."""
    recv_time: float = 0.0
    """Receive time (s) on the controller's clock."""

    def __post_init__(self) -> None:
        self.point = _arr(self.point)


@dataclass
class TwistSample:
    """One ``geometry_msgs/Twist`` (a velocity command, ``topics.cmd_vel``) or
    ``geometry_msgs/TwistStamped`` (the trunk's measured velocity, ``topics.base_twist``)."""

    linear: np.ndarray
    """``[x, y, z]`` (m/s): for a command, forward, left, up in the robot's heading frame; for a
    measurement, the base's velocity in the base (trunk) frame."""
    angular: np.ndarray
    """``[x, y, z]`` (rad/s) in the same frame (``z``: the yaw rate)."""
    frame_id: str = ""
    """Frame of the twist (``TwistStamped`` only; ``Twist`` has none)."""
    stamp: float = 0.0
    """Sender's time stamp (s); 0 for a ``Twist``, which has no header."""
    recv_time: float = 0.0
    """Receive time (s) on the controller's clock."""

    def __post_init__(self) -> None:
        self.linear = _arr(self.linear)
        self.angular = _arr(self.angular)


@dataclass
class Command:
    """What the controller asks the transport to publish this tick.

    ``positions`` are joint position targets in the robot's joint order (``names``); the
    transport writes them as ``std_msgs/Float64MultiArray`` (a ros2_control forward position
    controller takes its joints' order from its own config: the robot config's ``joint_names``
    must list them in that order) or as a one-point ``trajectory_msgs/JointTrajectory``.
    """

    names: tuple[str, ...]
    """Joint names, in the robot config's order."""
    positions: np.ndarray
    """Joint position targets (rad), after every clamp of the safety layer."""
    state: str
    """Safety state that produced it: ``RAMP``, ``RUN``, ``HOLD`` or ``DAMP``."""
    time: float = 0.0
    """Controller time (s) of the tick that produced it."""
    action: np.ndarray | None = None
    """The policy's action (clipped to [-1, 1]) behind it; ``None`` in HOLD/DAMP."""
    observation: np.ndarray | None = None
    """The observation the policy acted on; ``None`` in HOLD/DAMP."""
    obs_recv_time: float | None = None
    """Receive time of the newest joint state the command is based on (latency measurements)."""
    reason: str = ""
    """Why the safety layer is holding or damping (empty while running)."""


# -- ROS messages -> samples ----------------------------------------------------------------------
# Each reads a ROS 2 message by its fields only, so the same function converts an rclpy message
# and a rosbags (cyclonedds) one.


def time_from_msg(msg: Any) -> float:
    """``builtin_interfaces/Time`` -> seconds."""
    return float(msg.sec) + float(msg.nanosec) * 1e-9


def joint_state_from_msg(msg: Any, recv_time: float) -> JointStateSample:
    """``sensor_msgs/JointState`` -> :class:`JointStateSample`."""
    return JointStateSample(
        names=tuple(msg.name),
        position=msg.position,
        velocity=msg.velocity,
        effort=msg.effort,
        stamp=time_from_msg(msg.header.stamp),
        recv_time=recv_time,
    )


def imu_from_msg(msg: Any, recv_time: float) -> ImuSample:
    """``sensor_msgs/Imu`` -> :class:`ImuSample` (orientation as ROS orders it: x, y, z, w)."""
    o, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
    return ImuSample(
        orientation=[o.x, o.y, o.z, o.w],
        angular_velocity=[w.x, w.y, w.z],
        linear_acceleration=[a.x, a.y, a.z],
        stamp=time_from_msg(msg.header.stamp),
        recv_time=recv_time,
    )


def point_from_msg(msg: Any, recv_time: float) -> PointSample:
    """``geometry_msgs/PointStamped`` -> :class:`PointSample`."""
    p = msg.point
    return PointSample(
        point=[p.x, p.y, p.z],
        frame_id=msg.header.frame_id,
        stamp=time_from_msg(msg.header.stamp),
        recv_time=recv_time,
    )


def twist_from_msg(msg: Any, recv_time: float) -> TwistSample:
    """``geometry_msgs/Twist`` -> :class:`TwistSample` (no stamp: a ``Twist`` has no header)."""
    v, w = msg.linear, msg.angular
    return TwistSample(linear=[v.x, v.y, v.z], angular=[w.x, w.y, w.z], recv_time=recv_time)


def twist_stamped_from_msg(msg: Any, recv_time: float) -> TwistSample:
    """``geometry_msgs/TwistStamped`` -> :class:`TwistSample` with its frame and stamp."""
    v, w = msg.twist.linear, msg.twist.angular
    return TwistSample(
        linear=[v.x, v.y, v.z],
        angular=[w.x, w.y, w.z],
        frame_id=msg.header.frame_id,
        stamp=time_from_msg(msg.header.stamp),
        recv_time=recv_time,
    )
