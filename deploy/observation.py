"""Assemble the policy's observation from robot messages, exactly as the task built it in simulation.

The layout comes from the policy sidecar (``observation.layout``: named slices in order, e.g.
arm_reach's ``joint_pos, joint_vel, target_pos, ee_to_target, last_action``). Each name is
filled from the latest messages:

==================  =========  ============================================================
name                width      source
==================  =========  ============================================================
joint_pos           n joints   ``JointState.position``, picked BY NAME in policy joint order
joint_vel           n joints   ``JointState.velocity`` by name (finite differences if it sends none)
joint_pos_rel       n joints   joint_pos - default_pose
last_action         n joints   the policy's previous action (clipped), kept by the controller
target_pos          3          the last ``PointStamped`` on ``topics.target``
ee_pos              3          forward kinematics of the robot config's ``kinematics`` chain
ee_to_target        3          target_pos - ee_pos
torso_quat          4          IMU orientation, reordered to MuJoCo's ``w, x, y, z``
base_quat           4          same as torso_quat
torso_angvel        3          IMU angular velocity (rad/s, IMU frame)
base_angvel         3          same as torso_angvel
projected_gravity   3          gravity direction in the IMU frame, R^T [0, 0, -1]
==================  =========  ============================================================

Other names (a task's ``torso_pos[z]``, ``cos(pole_angle)``...) have no robot-side source here:
:class:`ObservationBuilder` refuses the policy when it is created, naming the slice.

Joint states are never trusted to come in the policy's order, nor to cover every joint in one
message: each sample updates the joints it names (others keep their last value and time). A
message is applied whole or not at all: one whose arrays do not match its names, or that names a
joint twice, raises :class:`MalformedMessage` and changes nothing. A message with names but an
empty ``position`` (legal ROS: effort- or velocity-only) refreshes no position, so it never keeps
a joint fresh.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from rewardlab.deploy.messages import ImuSample, JointStateSample, PointSample
from rewardlab.deploy.robot_config import KinematicsConfig, RobotConfig

JOINT_TERMS = ("joint_pos", "joint_vel", "joint_pos_rel", "last_action")
VEC3_TERMS = (
    "target_pos",
    "ee_pos",
    "ee_to_target",
    "torso_angvel",
    "base_angvel",
    "projected_gravity",
)
QUAT_TERMS = ("torso_quat", "base_quat")
SUPPORTED_TERMS = JOINT_TERMS + VEC3_TERMS + QUAT_TERMS
IMU_TERMS = ("torso_angvel", "base_angvel", "projected_gravity") + QUAT_TERMS
TARGET_TERMS = ("target_pos", "ee_to_target")
KINEMATIC_TERMS = ("ee_pos", "ee_to_target")


class ObservationError(ValueError):
    """The policy's observation layout cannot be built for this robot."""


class MalformedMessage(ValueError):
    """A robot message that cannot be read as what its topic carries (nothing of it was applied)."""


class NotReady(RuntimeError):
    """Some input has not arrived yet (``missing`` lists what)."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__("waiting for " + ", ".join(self.missing))


class _Chain:
    """A kinematic chain's constants, computed once: per link the joint's index, its origin and
    the Rodrigues matrices ``K`` and ``K^2`` of its unit axis (``R = I + sin K + (1 - cos) K^2``)."""

    def __init__(self, kin: KinematicsConfig, joint_names: Sequence[str]) -> None:
        index = {n: i for i, n in enumerate(joint_names)}
        self.joints = np.array([index[link.joint] for link in kin.chain], dtype=np.intp)
        self.origins = [np.asarray(link.origin, dtype=np.float64) for link in kin.chain]
        ks = []
        for link in kin.chain:
            x, y, z = np.asarray(link.axis, dtype=np.float64) / np.linalg.norm(link.axis)
            ks.append(np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]]))
        self.k = np.array(ks).reshape(-1, 3, 3)
        self.k2 = self.k @ self.k
        self.base = np.asarray(kin.base_position, dtype=np.float64)
        self.ee = np.asarray(kin.ee_offset, dtype=np.float64)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        angles = np.asarray(q, dtype=np.float64)[self.joints]
        rots = (
            np.eye(3)
            + np.sin(angles)[:, None, None] * self.k
            + (1.0 - np.cos(angles))[:, None, None] * self.k2
        )
        pos, rot = self.base, None
        for origin, r in zip(self.origins, rots, strict=True):
            pos = pos + (origin if rot is None else rot @ origin)
            rot = r if rot is None else rot @ r
        return pos + (self.ee if rot is None else rot @ self.ee)


@functools.lru_cache(maxsize=32)
def _chain(kin: KinematicsConfig, joint_names: tuple[str, ...]) -> _Chain:
    return _Chain(kin, joint_names)


def forward_kinematics(
    kin: KinematicsConfig, joint_names: Sequence[str], q: np.ndarray
) -> np.ndarray:
    """End-effector position (m, world) of the serial chain ``kin`` at joint positions ``q``
    (in ``joint_names`` order)."""
    return _chain(kin, tuple(joint_names))(q)


def quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (normalized) ROS quaternion ``[x, y, z, w]``."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def roll_pitch(q_xyzw: np.ndarray) -> tuple[float, float]:
    """Roll and pitch (rad) of a ROS quaternion ``[x, y, z, w]`` (ZYX Euler angles)."""
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64) / np.linalg.norm(q_xyzw)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    return float(roll), float(pitch)


class ObservationBuilder:
    """Latest robot inputs -> the policy's observation vector.

    Args:
        layout: the sidecar's ``observation.layout`` (``[{"name", "start", "width"}]``).
        robot: the robot config (joint names in policy order, default pose, kinematics).
        obs_dim: the policy's ``obs_dim`` (the layout must cover it exactly).

    Raises:
        ObservationError: a slice name with no robot-side source, a width that does not fit
            the robot, a layout that does not cover ``obs_dim``, ``ee_*`` without a kinematic
            chain, IMU terms without ``topics.imu`` or target terms without ``topics.target``.
    """

    def __init__(self, layout: Sequence[dict], robot: RobotConfig, obs_dim: int) -> None:
        if not layout:
            raise ObservationError(
                "policy.json has no observation.layout: cannot tell which robot quantity goes where"
            )
        n = robot.num_joints
        self.robot = robot
        self.obs_dim = int(obs_dim)
        self.slices: list[tuple[str, int, int]] = []
        start = 0
        for i, item in enumerate(layout):
            try:
                name, width = str(item["name"]), int(item["width"])
                item_start = int(item.get("start", start))
            except (TypeError, KeyError, ValueError, AttributeError):
                raise ObservationError(
                    f"observation.layout[{i}]: got {str(item)[:80]!r}, expected "
                    '{"name": str, "start": int, "width": int}'
                ) from None
            if item_start != start:
                raise ObservationError(
                    f"observation.layout: {name} starts at {item['start']}, expected {start}"
                )
            if name not in SUPPORTED_TERMS:
                raise ObservationError(
                    f"observation.layout: {name!r} has no source on a robot; supported: "
                    + ", ".join(SUPPORTED_TERMS)
                )
            expected = n if name in JOINT_TERMS else 4 if name in QUAT_TERMS else 3
            if width != expected:
                raise ObservationError(
                    f"observation.layout: {name!r} has width {width}, expected {expected} for robot {robot.name!r}"
                )
            if name in IMU_TERMS and robot.topics.imu is None:
                raise ObservationError(
                    f"observation.layout: {name!r} needs an IMU, but topics.imu is null"
                )
            if name in TARGET_TERMS and robot.topics.target is None:
                raise ObservationError(
                    f"observation.layout: {name!r} needs a target, but topics.target is null"
                )
            if name in KINEMATIC_TERMS and not robot.kinematics.chain:
                raise ObservationError(
                    f"observation.layout: {name!r} needs kinematics.chain in the robot config"
                )
            self.slices.append((name, start, width))
            start += width
        if start != self.obs_dim:
            raise ObservationError(
                f"observation.layout covers {start} values, the policy's obs_dim is {obs_dim}"
            )
        names = {s[0] for s in self.slices}
        self.needs_imu = bool(names & set(IMU_TERMS))
        self.needs_target = bool(names & set(TARGET_TERMS))
        self.needs_velocity = "joint_vel" in names

        self._index = {name: i for i, name in enumerate(robot.joint_names)}
        self.position = np.full(n, np.nan)
        """Latest joint positions in policy order (NaN until received)."""
        self.velocity = np.zeros(n)
        """Latest joint velocities in policy order; when a message has no velocities, the finite
        difference of positions over the senders' stamps (receive times if stamps do not advance)."""
        self.velocity_estimated = np.zeros(n, dtype=bool)
        """Which joints' velocities are finite differences (the robot sent none)."""
        self._stamp = np.full(n, np.nan)
        self.effort = np.full(n, np.nan)
        """Latest joint efforts in policy order (NaN when the robot sends none)."""
        self.joint_recv = np.full(n, -np.inf)
        """Receive time of each joint's latest position."""
        self.named_without_position = np.zeros(n, dtype=bool)
        """Joints named by a message that carried no positions (effort- or velocity-only)."""
        self.imu: ImuSample | None = None
        self.target: PointSample | None = None
        self.default_pose = np.asarray(robot.default_pose, dtype=np.float64)
        self._fk: _Chain | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def update_joint_state(self, sample: JointStateSample) -> int:
        """Take the joints ``sample`` names (unknown names are ignored); returns how many positions
        were taken.

        Raises:
            MalformedMessage: ``position``, ``velocity`` or ``effort`` is neither empty nor as long
                as ``names``, or a name appears twice. Nothing of the message is applied.
        """
        names = sample.names
        k = len(names)
        for key in ("position", "velocity", "effort"):
            m = len(getattr(sample, key))
            if m not in (0, k):
                raise MalformedMessage(f"JointState: {k} names but {m} {key} values")
        if len(set(names)) != k:
            seen: set[str] = set()
            dup = next(n for n in names if n in seen or seen.add(n))
            raise MalformedMessage(f"JointState: duplicate joint name {dup[:60]!r}")
        rows = [(i, j) for i, name in enumerate(names) if (j := self._index.get(name)) is not None]
        if not rows:
            return 0
        src = np.fromiter((i for i, _ in rows), dtype=np.intp, count=len(rows))
        dst = np.fromiter((j for _, j in rows), dtype=np.intp, count=len(rows))
        if len(sample.effort):
            self.effort[dst] = sample.effort[src]
        if len(sample.velocity):
            self.velocity[dst] = sample.velocity[src]
            self.velocity_estimated[dst] = False
        if not len(sample.position):
            self.named_without_position[dst] = True
            return 0
        pos = sample.position[src]
        if not len(sample.velocity):  # finite differences over stamps, else receive times
            known = np.isfinite(self.position[dst])
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                dt = sample.stamp - self._stamp[dst]
                dt = np.where(dt > 0, dt, sample.recv_time - self.joint_recv[dst])
                ok = known & (dt > 0)
                est = (pos - self.position[dst]) / np.where(ok, dt, 1.0)
            self.velocity[dst[ok]] = est[ok]
            self.velocity_estimated[dst[ok]] = True
        self.position[dst] = pos
        self._stamp[dst] = sample.stamp
        self.joint_recv[dst] = sample.recv_time
        return len(rows)

    def update_imu(self, sample: ImuSample) -> None:
        """Take an IMU sample.

        Raises:
            MalformedMessage: not a 4-value orientation and a 3-value angular velocity.
        """
        if sample.orientation.shape != (4,) or sample.angular_velocity.shape != (3,):
            raise MalformedMessage(
                f"Imu: expected a 4-value orientation and a 3-value angular velocity, got "
                f"{sample.orientation.size} and {sample.angular_velocity.size}"
            )
        self.imu = sample

    def update_target(self, sample: PointSample) -> None:
        """Take a target point.

        Raises:
            MalformedMessage: not 3 values.
        """
        if sample.point.shape != (3,):
            raise MalformedMessage(f"target: expected 3 values, got {sample.point.size}")
        self.target = sample

    # -- state ----------------------------------------------------------------------------------

    def oldest_joint_recv(self) -> float:
        """Receive time of the stalest joint (``-inf`` if some joint never arrived)."""
        return float(self.joint_recv.min())

    def missing(self) -> list[str]:
        """Inputs the observation still waits for (empty when it can be built)."""
        out = [
            f"joint_states[{n}]" + (" (named without a position)" if blind else "")
            for n, t, blind in zip(
                self.robot.joint_names, self.joint_recv, self.named_without_position, strict=True
            )
            if t == -np.inf
        ]
        if self.needs_imu and self.imu is None:
            out.append(f"imu ({self.robot.topics.imu})")
        if self.needs_target and self.target is None:
            out.append(f"target ({self.robot.topics.target})")
        return out

    def ee_pos(self) -> np.ndarray:
        """End-effector position (m) from the latest joint positions (forward kinematics)."""
        if self._fk is None:
            self._fk = _Chain(self.robot.kinematics, self.robot.joint_names)
        return self._fk(self.position)

    def build(self, last_action: np.ndarray) -> np.ndarray:
        """The observation ``[obs_dim]`` float64 from the latest inputs.

        Raises:
            NotReady: some joint, the IMU or the target has not been received yet.
        """
        if (
            self.joint_recv.min() == -np.inf
            or (self.needs_imu and self.imu is None)
            or (self.needs_target and self.target is None)
        ):
            raise NotReady(self.missing())
        obs = np.empty(self.obs_dim)
        ee = None
        for name, start, width in self.slices:
            if name == "joint_pos":
                v = self.position
            elif name == "joint_vel":
                v = self.velocity
            elif name == "joint_pos_rel":
                v = self.position - self.default_pose
            elif name == "last_action":
                v = np.asarray(last_action, dtype=np.float64)
            elif name == "target_pos":
                v = self.target.point
            elif name in ("ee_pos", "ee_to_target"):
                ee = self.ee_pos() if ee is None else ee
                v = ee if name == "ee_pos" else self.target.point - ee
            elif name in QUAT_TERMS:
                x, y, z, w = self.imu.orientation
                v = np.array([w, x, y, z])
            elif name in ("torso_angvel", "base_angvel"):
                v = self.imu.angular_velocity
            else:  # projected_gravity
                v = quat_xyzw_to_matrix(self.imu.orientation).T @ np.array([0.0, 0.0, -1.0])
            obs[start : start + width] = v
        return obs
