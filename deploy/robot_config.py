"""Robot description for deployment: ``sim_configs/robots/<name>.yaml`` -> :class:`RobotConfig`.

The file says which joints the policy drives (in policy order, by the names the robot publishes
in ``sensor_msgs/JointState``), their limits and servo gains, the safety settings, the topics and
the command interface, and -- for the MuJoCo sim robot -- the model to simulate. Every value is
checked when the file loads; a mistake raises :class:`RobotConfigError` (a ``ValueError``)
naming the file, the dotted key, the value and what was expected.

Loading goes through the project's one config engine, :mod:`rewardlab.core.config` (bounded,
hostile-input-safe YAML; types and unknown keys checked field by field); this module adds the
robot's own checks (:meth:`RobotConfig.validate`). It imports neither ROS nor the trainer:
``rewardlab.core`` is a leaf package.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.core.config import (
    ConfigError,
    Sources,
    convert_fields,
    display_path,
    load_yaml,
    merge_layers,
)
from rewardlab.core.resources import config_dir

COMMAND_TYPES = ("position", "trajectory")
"""``position``: ``std_msgs/Float64MultiArray`` to a ros2_control forward position controller;
``trajectory``: a one-point ``trajectory_msgs/JointTrajectory`` (joint_trajectory_controller)."""


class RobotConfigError(ConfigError):
    """A robot config value that cannot be used: ``"<file>: <key>: <problem>"`` (a
    :class:`~rewardlab.core.config.ConfigError`, so a ``ValueError``)."""


@dataclass(frozen=True)
class TopicsConfig:
    """ROS 2 topic names (``null`` disables the input; the DDS transport adds the ``rt`` prefix)."""

    joint_states: str = "/joint_states"
    """``sensor_msgs/JointState`` in (sensor-data QoS)."""
    imu: str | None = None
    """``sensor_msgs/Imu`` in (sensor-data QoS); null: the robot has no IMU."""
    command: str = "/forward_position_controller/commands"
    """Command out (reliable QoS): ``std_msgs/Float64MultiArray`` or ``trajectory_msgs/JointTrajectory``."""
    estop: str | None = "/estop"
    """``std_msgs/Bool`` in (reliable): ``true`` damps the robot until the controller is re-armed."""
    heartbeat: str | None = None
    """``std_msgs/Header`` in from the operator station; when set, the robot only moves while
    heartbeats arrive (``heartbeat_timeout_s``). null: no heartbeat required."""
    target: str | None = "/target"
    """``geometry_msgs/PointStamped`` in: the goal of goal-conditioned policies (``target_pos``)."""
    cmd_vel: str | None = None
    """``geometry_msgs/Twist`` in (as ``teleop_twist_keyboard`` publishes on ``/cmd_vel``): the
    velocity command of locomotion policies (``command``: linear.x, linear.y, angular.z); null:
    none."""
    base_twist: str | None = None
    """``geometry_msgs/TwistStamped`` in: the base's (trunk's) measured velocity in the base
    frame, from the robot's state estimator (``base_lin_vel``); null: none."""
    image: str | None = None
    """``sensor_msgs/Image`` (or ``.../compressed`` ``CompressedImage``) camera stream; null: none."""
    safety_state: str | None = "/rewardlab/safety_state"
    """``std_msgs/String`` out: the safety state and the reason of the last trip."""
    episode_request: str | None = None
    """``std_msgs/UInt32`` (reliable), the ``ros2`` env -> the sim robot: start a new episode
    (draw a target, reset the arm); the value is a token the sim robot echoes on
    ``episode_started``. The env sends it at each reset when no operator is asked
    (``ros2.prompt=false``); null: none (the env resets at once)."""
    episode_started: str | None = None
    """``std_msgs/UInt32`` (reliable), the sim robot -> the ``ros2`` env: the token of the request
    whose episode has started (its target published, the arm reset). Set with
    ``episode_request``."""

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and (not v.startswith("/") or " " in v or v.strip("/") == ""):
                raise ValueError(
                    f"{f.name}: got {v!r}, expected an absolute topic name like /joint_states"
                )


@dataclass(frozen=True)
class ChainLink:
    """One revolute joint of a serial chain: a fixed offset from the parent, then a rotation."""

    joint: str
    """Joint name (one of ``joint_names``)."""
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Position (m) of the joint's frame in the parent frame (before the joint's rotation)."""
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """Rotation axis in the joint's frame (unit vector)."""


@dataclass(frozen=True)
class KinematicsConfig:
    """Forward kinematics of the end effector, for observations such as ``ee_pos`` and
    ``ee_to_target`` (URDF-style serial chain of revolute joints, frames not rotated at rest)."""

    chain: tuple[ChainLink, ...] = ()
    """Joints from the base to the end effector."""
    ee_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """End-effector point in the last joint's frame (m)."""
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Position of the chain's base in the world (target) frame (m)."""


@dataclass(frozen=True)
class SimRobotConfig:
    """The MuJoCo sim robot (``python -m rewardlab.deploy.sim_robot``)."""

    model: str = ""
    """MJCF file: a name under ``envs/assets/`` or a path."""
    ee_site: str = "ee"
    """MJCF site of the end effector (target distance in the episode log)."""
    target_body: str | None = "target"
    """Mocap body moved onto the target (for renders); null: none."""
    imu_body: str | None = None
    """Body whose orientation and angular velocity the IMU reports (with ``topics.imu``)."""
    base_body: str | None = None
    """Floating-base robots: the body with the free joint (the trunk). It is reset upright at
    ``base_height`` over the origin, its velocity is published on ``topics.base_twist``, and
    its collision geoms touching the floor end a locomotion episode (a fall)."""
    collide_bodies: tuple[str, ...] = ()
    """Bodies whose collision geoms (group 3: Playground's feet-only Go1 has them collide with
    nothing) are made to collide with the floor, as the Go1 task does."""
    base_height: float = 0.3
    """Height (m) of the base body at a reset (Go1: Playground's ``home`` keyframe, 0.278)."""
    episode_s: float = 0.0
    """Locomotion episodes: reset to the default pose every this many seconds (and on a fall);
    0: no locomotion episodes."""
    success_lin_vel_error: float = 0.25
    """Locomotion success (m/s): episode mean of |cmd_xy - v_xy| (base frame) under this."""
    success_yaw_rate_error: float = 0.5
    """Locomotion success (rad/s): episode mean of |cmd_yaw - w_z| under this."""
    physics_rate_hz: float = 500.0
    """Physics and PD-loop rate."""
    publish_rate_hz: float = 250.0
    """Rate of ``/joint_states`` (and IMU) messages."""
    target_period_s: float = 3.0
    """A new reaching target every this many seconds (0: one target, never changed)."""
    target_joint_low: tuple[float, ...] = ()
    """Lower corner of the joint box whose end-effector positions are drawn as targets."""
    target_joint_high: tuple[float, ...] = ()
    """Upper corner of that box (empty: no targets published)."""
    reset_noise: float = 0.3
    """Half-width (rad) of the noise on the joints when the sim robot resets with a new target."""
    success_distance: float = 0.05
    """End-effector distance (m) under which an episode counts as a success in the sim log."""
    episodes_on_request: bool = False
    """New episodes only when one is requested on ``topics.episode_request`` (the ``ros2`` env's
    resets), never on the sim robot's clock (``target_period_s`` and ``episode_s`` are then not
    used; a locomotion robot's fall does not end an episode either); false: on the clock, and
    also on a request (the clock then counts from the request)."""
    camera: str | None = None
    """MJCF camera rendered into ``topics.image`` (null: no images)."""
    image_rate_hz: float = 5.0
    """Rate of rendered images."""
    image_size: tuple[int, int] = (120, 160)
    """Rendered image height and width (pixels)."""


@dataclass(frozen=True)
class RobotConfig:
    """One robot: joints in policy order, limits, gains, safety settings, topics, sim model."""

    name: str = ""
    """Robot name (the file's stem)."""
    joint_names: tuple[str, ...] = ()
    """Joint names as the robot publishes them in ``JointState``, in the policy's action order
    (and the command's order: list them in the forward controller's order)."""
    policy_joint_names: tuple[str, ...] = ()
    """The same joints as the policy's sidecar names them (``action.actuator_joints``); empty:
    same as ``joint_names``."""
    default_pose: tuple[float, ...] = ()
    """Joint positions (rad) of the nominal pose; ``default_pose + action_scale * action`` is the
    command when the policy sidecar does not give its own scaling."""
    action_scale: tuple[float, ...] = ()
    """Radians per unit action; empty: from the policy sidecar (``ctrl_mid``/``ctrl_half``)."""
    position_limits: tuple[tuple[float, float], ...] = ()
    """``(lower, upper)`` joint limits (rad): commands are clamped into them."""
    joint_limit_margin: float = 0.05
    """A measured position beyond a limit by more than this (rad) trips the safety layer (DAMP)."""
    velocity_limits: tuple[float, ...] = ()
    """Joint speed limits (rad/s); a measured speed above ``velocity_trip_ratio`` times this trips."""
    velocity_trip_ratio: float = 1.5
    """Measured speed / velocity limit at which the safety layer trips (HOLD)."""
    effort_limits: tuple[float, ...] = ()
    """Largest joint torques (N m): commands are clamped so that ``kp (q_cmd - q) - kd qd`` stays
    within them, and an estimate above ``torque_trip_ratio`` times this trips (HOLD)."""
    torque_trip_ratio: float = 1.5
    """Estimated torque / effort limit at which the safety layer trips."""
    kp: tuple[float, ...] = ()
    """Position gains of the robot's servos (N m / rad), for the torque estimate and the sim robot."""
    kd: tuple[float, ...] = ()
    """Velocity gains of the robot's servos (N m s / rad)."""
    rate_limit: float = 0.1
    """Largest change of a joint's command per control tick (rad)."""
    soft_start_s: float = 1.0
    """Duration (s) of the RAMP state: the command blends from the measured pose to the policy's."""
    stale_timeout_s: float = 0.1
    """Joint states (and IMU) older than this by receive time trip the watchdog (HOLD)."""
    heartbeat_timeout_s: float = 0.5
    """With ``topics.heartbeat`` set: no heartbeat for this long trips HOLD."""
    attitude_limit: float | None = None
    """Largest roll or pitch (rad) from the IMU before the safety layer trips (DAMP); null: none."""
    control_rate_hz: float | None = None
    """Policy rate; null: the policy sidecar's ``control_rate_hz``."""
    command_type: str = "position"
    """``position`` (Float64MultiArray) or ``trajectory`` (JointTrajectory)."""
    command_limits: tuple[tuple[float, float], ...] = ()
    """``(low, high)`` of the velocity command ``(vx, vy, yaw rate)`` (m/s, m/s, rad/s) read from
    ``topics.cmd_vel``: each component is clipped into it (the ranges the policy trained on;
    a policy sidecar's ``observation.command_ranges`` wins). Empty: no clipping."""
    command_timeout_s: float = 0.5
    """A velocity command older than this (by receive time) counts as zero: the robot stands."""
    auto_start: bool = True
    """Leave PASSIVE for RAMP by itself once every input is fresh (false: wait for ``start()``)."""
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    """Topic names."""
    kinematics: KinematicsConfig = field(default_factory=KinematicsConfig)
    """End-effector kinematics (for ``ee_pos`` / ``ee_to_target`` observations)."""
    sim: SimRobotConfig = field(default_factory=SimRobotConfig)
    """Settings of the MuJoCo sim robot."""

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def policy_names(self) -> tuple[str, ...]:
        """Joint names as the policy sidecar spells them."""
        return self.policy_joint_names or self.joint_names

    def validate(self) -> None:
        n = len(self.joint_names)
        if n == 0:
            raise ValueError(
                "joint_names: got an empty list, expected the joints the policy drives"
            )
        if len(set(self.joint_names)) != n:
            raise ValueError(f"joint_names: got {list(self.joint_names)}, expected unique names")
        per_joint = {
            "policy_joint_names": (self.policy_joint_names, True),
            "default_pose": (self.default_pose, False),
            "action_scale": (self.action_scale, True),
            "position_limits": (self.position_limits, False),
            "velocity_limits": (self.velocity_limits, False),
            "effort_limits": (self.effort_limits, False),
            "kp": (self.kp, True),
            "kd": (self.kd, True),
        }
        for key, (values, may_be_empty) in per_joint.items():
            if len(values) != n and not (may_be_empty and len(values) == 0):
                raise ValueError(
                    f"{key}: got {len(values)} values, expected {n} (one per joint in joint_names)"
                )
        for j, (lo, hi) in enumerate(self.position_limits):
            if not lo < hi:
                raise ValueError(f"position_limits[{j}]: got [{lo}, {hi}], expected lower < upper")
            if not lo <= self.default_pose[j] <= hi:
                raise ValueError(
                    f"default_pose[{j}]: {self.joint_names[j]} = {self.default_pose[j]} is outside "
                    f"position_limits [{lo}, {hi}]"
                )
        for key in ("velocity_limits", "effort_limits", "action_scale"):
            for j, v in enumerate(getattr(self, key)):
                if not (math.isfinite(v) and v > 0):
                    raise ValueError(f"{key}[{j}]: got {v}, expected a finite number > 0")
        for key in ("kp", "kd"):
            for j, v in enumerate(getattr(self, key)):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"{key}[{j}]: got {v}, expected a finite number >= 0")
        if len(self.command_limits) not in (0, 3):
            raise ValueError(
                f"command_limits: got {len(self.command_limits)} ranges, expected 3 (vx, vy, yaw rate) or none"
            )
        for j, (lo, hi) in enumerate(self.command_limits):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(
                    f"command_limits[{j}]: got [{lo}, {hi}], expected finite lower <= upper"
                )
        positive = ("rate_limit", "stale_timeout_s", "command_timeout_s", "heartbeat_timeout_s", "velocity_trip_ratio", "torque_trip_ratio")  # fmt: skip
        for key in positive:
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{key}: got {v}, expected a number > 0")
        for key in ("soft_start_s", "joint_limit_margin"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}: got {getattr(self, key)}, expected a number >= 0")
        if self.attitude_limit is not None and not 0 < self.attitude_limit <= math.pi:
            raise ValueError(f"attitude_limit: got {self.attitude_limit}, expected (0, pi] or null")
        if self.control_rate_hz is not None and not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz: got {self.control_rate_hz}, expected > 0 or null")
        if self.command_type not in COMMAND_TYPES:
            raise ValueError(
                f"command_type: got {self.command_type!r}, expected one of {', '.join(COMMAND_TYPES)}"
            )
        for i, link in enumerate(self.kinematics.chain):
            if link.joint not in self.joint_names:
                raise ValueError(
                    f"kinematics.chain[{i}].joint: got {link.joint!r}, expected one of {list(self.joint_names)}"
                )
            if math.hypot(*link.axis) < 1e-9:
                raise ValueError(
                    f"kinematics.chain[{i}].axis: got {list(link.axis)}, expected a non-zero vector"
                )
        s = self.sim
        if s.physics_rate_hz <= 0 or s.publish_rate_hz <= 0 or s.image_rate_hz <= 0:
            raise ValueError("sim: physics_rate_hz, publish_rate_hz and image_rate_hz must be > 0")
        if s.publish_rate_hz > s.physics_rate_hz:
            raise ValueError(
                f"sim.publish_rate_hz: got {s.publish_rate_hz}, expected <= physics_rate_hz ({s.physics_rate_hz})"
            )
        if len(s.target_joint_low) != len(s.target_joint_high) or len(s.target_joint_low) not in (
            0,
            n,
        ):
            raise ValueError(
                f"sim.target_joint_low: expected {n} values and as many in target_joint_high, "
                f"got {len(s.target_joint_low)} and {len(s.target_joint_high)}"
            )
        if not s.episode_s >= 0:
            raise ValueError(f"sim.episode_s: got {s.episode_s}, expected >= 0")
        if not s.base_height > 0:
            raise ValueError(f"sim.base_height: got {s.base_height}, expected > 0")
        if s.episode_s > 0 and not s.base_body:
            raise ValueError(
                "sim.base_body: locomotion episodes (sim.episode_s > 0) need the base body"
            )
        if s.target_period_s < 0:
            raise ValueError(f"sim.target_period_s: got {s.target_period_s}, expected >= 0")
        if (self.topics.episode_request is None) != (self.topics.episode_started is None):
            raise ValueError(
                "topics.episode_started: set topics.episode_request and topics.episode_started "
                "together (the reset request and its answer), or neither"
            )
        if s.episodes_on_request and self.topics.episode_request is None:
            raise ValueError(
                "sim.episodes_on_request: true needs topics.episode_request and "
                "topics.episode_started (the request topic and its answer)"
            )


# ------------------------------------------------------------------------------------------------
# Loading


def robots_dir() -> Path:
    """``sim_configs/robots/``: ``$REWARDLAB_CONFIG_DIR/robots`` or the installation's own
    (:func:`rewardlab.core.resources.config_dir`)."""
    return config_dir() / "robots"


def robot_names() -> list[str]:
    """Robots with a config file in :func:`robots_dir`."""
    return sorted(p.stem for p in robots_dir().glob("*.yaml"))


def load_robot_config(
    name_or_path: str | Path, overrides: Mapping[str, Any] | None = None
) -> RobotConfig:
    """Load and validate a robot config.

    Args:
        name_or_path: a robot name (``arm`` -> ``sim_configs/robots/arm.yaml``) or a YAML path.
        overrides: nested mapping merged over the file (``{"topics": {"heartbeat": "/hb"}}``).

    Raises:
        RobotConfigError: missing file, invalid YAML, unknown key, wrong type or bad value; the
            message names the file, the dotted key and what was expected.
    """
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or os.sep in text):
        path = robots_dir() / f"{text}.yaml"
        if not path.exists():
            known = ", ".join(robot_names()) or "none"
            raise RobotConfigError(
                display_path(path), "", f"no robot named {text!r}; known robots: {known}"
            )
    source = display_path(path)
    try:
        data = load_yaml(path)
    except ConfigError as e:
        raise RobotConfigError(e.source, e.key, e.problem) from None
    data.setdefault("name", path.stem)
    layers = [(source, data)]
    if overrides:
        layers.append((f"{source} (with overrides)", overrides))
    merged, sources = merge_layers(layers, default_source=source)
    return _from_dict(merged, sources)


def robot_config_from_dict(data: Mapping[str, Any], source: str = "robot config") -> RobotConfig:
    """Validate a plain mapping into a :class:`RobotConfig` (see :func:`load_robot_config`)."""
    return _from_dict(data, Sources(source))


def _from_dict(data: Any, sources: Sources) -> RobotConfig:
    try:
        if not isinstance(data, Mapping):
            raise ConfigError(sources.default, "", f"got {data!r:.80}, expected a mapping")
        kwargs = convert_fields(RobotConfig, data, "", sources)  # nested configs: build()
        cfg = RobotConfig(**kwargs)
    except ConfigError as e:
        raise RobotConfigError(e.source, e.key, e.problem) from None
    try:
        cfg.validate()
    except ValueError as e:  # "<key>[<index>]...: <problem>"
        key, _, problem = str(e).partition(": ")
        raise RobotConfigError(sources.of(key.split("[")[0]), key, problem) from None
    return cfg
