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
base_ang_vel        3          same as torso_angvel (legged_gym's name)
projected_gravity   3          gravity direction in the IMU frame, R^T [0, 0, -1]
base_lin_vel        3          ``TwistStamped.twist.linear`` on ``topics.base_twist`` (base frame)
command             3          the latest ``Twist`` on ``topics.cmd_vel``: linear.x, linear.y,
                               angular.z, each clipped into the command ranges; zero (stand
                               still) before the first one and once it is older than
                               ``command_timeout_s``
==================  =========  ============================================================

A slice name may scale a term and name one derived form, as tasks write their layouts:
``k * name`` (a number), ``(a, b, c) * name`` (one factor per component, as many as the
width) and ``joint_pos - default_pose`` (= ``joint_pos_rel``), e.g. go1_velocity's
``2 * base_lin_vel`` or ``(2, 2, 0.25) * command``.

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
import re
from collections.abc import Sequence

import numpy as np

from rewardlab.deploy.messages import ImuSample, JointStateSample, PointSample, TwistSample
from rewardlab.deploy.robot_config import KinematicsConfig, RobotConfig

JOINT_TERMS = ("joint_pos", "joint_vel", "joint_pos_rel", "last_action")
VEC3_TERMS = (
    "target_pos",
    "ee_pos",
    "ee_to_target",
    "torso_angvel",
    "base_angvel",
    "base_ang_vel",
    "projected_gravity",
    "base_lin_vel",
    "command",
)
QUAT_TERMS = ("torso_quat", "base_quat")
SUPPORTED_TERMS = JOINT_TERMS + VEC3_TERMS + QUAT_TERMS
DERIVED_TERMS = {"joint_pos - default_pose": "joint_pos_rel"}
"""Expressions of a layout name that are a supported term under another name."""
IMU_TERMS = ("torso_angvel", "base_angvel", "base_ang_vel", "projected_gravity") + QUAT_TERMS
TWIST_TERMS = ("base_lin_vel",)
COMMAND_TERMS = ("command",)
TARGET_TERMS = ("target_pos", "ee_to_target")
KINEMATIC_TERMS = ("ee_pos", "ee_to_target")


class ObservationError(ValueError):
    """The policy's observation layout cannot be built for this robot."""


class MalformedMessage(ValueError):
    """A robot message that cannot be read as what its topic carries (nothing of it was applied)."""


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SCALED = re.compile(rf"^\s*(?:(?P<scale>{_NUMBER}|\((?P<vec>[^()]*)\))\s*\*\s*)?(?P<term>.*?)\s*$")


def parse_slice_name(name: str) -> tuple[str, float | tuple[float, ...] | None]:
    """``"(2, 2, 0.25) * command"`` -> ``("command", (2.0, 2.0, 0.25))``; ``"0.05 * joint_vel"``
    -> ``("joint_vel", 0.05)``; ``"joint_pos - default_pose"`` -> ``("joint_pos_rel", None)``.

    Raises:
        ObservationError: a scale that is not a number or a tuple of numbers, or a term with
            no source on a robot.
    """
    m = _SCALED.match(name)
    if m is None:
        raise ObservationError(f"observation.layout: {name!r} is not 'term', 'k * term' or '(a, b, ...) * term'")  # fmt: skip
    term = " ".join(m["term"].split())
    term = DERIVED_TERMS.get(term, term)
    scale: float | tuple[float, ...] | None = None
    try:
        if m["vec"] is not None:
            scale = tuple(float(v) for v in m["vec"].split(",") if v.strip())
            if not scale:
                raise ValueError
        elif m["scale"] is not None:
            scale = float(m["scale"])
    except ValueError:
        raise ObservationError(f"observation.layout: {name!r}: the scale is not a number or a tuple of numbers") from None  # fmt: skip
    if term not in SUPPORTED_TERMS:
        raise ObservationError(
            f"observation.layout: {name!r} has no source on a robot; supported: "
            + ", ".join(SUPPORTED_TERMS)
            + " (optionally 'k * term', '(a, b, ...) * term'; joint_pos - default_pose)"
        )
    return term, scale


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
        command_ranges: ``(low, high)`` per command component (vx, vy, yaw rate), e.g. the
            sidecar's; ``None``: the robot config's ``command_limits``.

    Raises:
        ObservationError: a slice name with no robot-side source, a width that does not fit
            the robot, a layout that does not cover ``obs_dim``, ``ee_*`` without a kinematic
            chain, IMU terms without ``topics.imu``, target terms without ``topics.target``,
            ``base_lin_vel`` without ``topics.base_twist`` or ``command`` without
            ``topics.cmd_vel``.
    """

    def __init__(self, layout: Sequence[dict], robot: RobotConfig, obs_dim: int, command_ranges: Sequence[Sequence[float]] | None = None) -> None:  # fmt: skip
        if not layout:
            raise ObservationError(
                "policy.json has no observation.layout: cannot tell which robot quantity goes where"
            )
        n = robot.num_joints
        self.robot = robot
        self.obs_dim = int(obs_dim)
        self.slices: list[tuple[str, int, int]] = []
        """``(layout name, start, width)`` per slice."""
        self.terms: list[tuple[str, np.ndarray | float | None]] = []
        """``(term, scale)`` per slice (the parsed layout name)."""
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
            name_text = name
            name, scale = parse_slice_name(name_text)
            expected = n if name in JOINT_TERMS else 4 if name in QUAT_TERMS else 3
            if isinstance(scale, tuple) and len(scale) != width:
                raise ObservationError(
                    f"observation.layout: {name_text!r} has {len(scale)} factors for width {width}"
                )
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
            if name in TWIST_TERMS and robot.topics.base_twist is None:
                raise ObservationError(
                    f"observation.layout: {name!r} needs the base's velocity, but topics.base_twist is null"
                )
            if name in COMMAND_TERMS and robot.topics.cmd_vel is None:
                raise ObservationError(
                    f"observation.layout: {name!r} needs velocity commands, but topics.cmd_vel is null"
                )
            self.slices.append((name_text, start, width))
            self.terms.append(
                (name, np.asarray(scale, dtype=np.float64) if isinstance(scale, tuple) else scale)
            )
            start += width
        if start != self.obs_dim:
            raise ObservationError(
                f"observation.layout covers {start} values, the policy's obs_dim is {obs_dim}"
            )
        names = {t[0] for t in self.terms}
        self.needs_imu = bool(names & set(IMU_TERMS))
        self.needs_target = bool(names & set(TARGET_TERMS))
        self.needs_velocity = "joint_vel" in names
        self.needs_base_twist = bool(names & set(TWIST_TERMS))
        ranges = command_ranges if command_ranges is not None else robot.command_limits
        lim = np.asarray(ranges, dtype=np.float64).reshape(-1, 2) if len(ranges) else None
        if lim is not None and (lim.shape != (3, 2) or not (np.isfinite(lim).all() and (lim[:, 0] <= lim[:, 1]).all())):  # fmt: skip
            raise ObservationError(f"command ranges: got {np.asarray(ranges).tolist()}, expected 3 finite [low, high] (vx, vy, yaw rate)")  # fmt: skip
        self.command_low = lim[:, 0] if lim is not None else np.full(3, -np.inf)
        self.command_high = lim[:, 1] if lim is not None else np.full(3, np.inf)

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
        self.base_twist: TwistSample | None = None
        """Latest measured base velocity (``topics.base_twist``)."""
        self.cmd_vel: TwistSample | None = None
        """Latest velocity command (``topics.cmd_vel``)."""
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

    @staticmethod
    def _check_twist(sample: TwistSample, what: str) -> None:
        if sample.linear.shape != (3,) or sample.angular.shape != (3,):
            raise MalformedMessage(
                f"{what}: expected 3 linear and 3 angular values, got {sample.linear.size} and {sample.angular.size}"
            )
        if not (np.isfinite(sample.linear).all() and np.isfinite(sample.angular).all()):
            raise MalformedMessage(
                f"{what}: not finite: linear {sample.linear.tolist()}, angular {sample.angular.tolist()}"
            )

    def update_cmd_vel(self, sample: TwistSample) -> None:
        """Take a velocity command (``Twist``).

        Raises:
            MalformedMessage: not 3 + 3 finite values (the previous command stays, and ages).
        """
        self._check_twist(sample, "cmd_vel")
        self.cmd_vel = sample

    def update_base_twist(self, sample: TwistSample) -> None:
        """Take the base's measured velocity (``TwistStamped``, base frame).

        Raises:
            MalformedMessage: not 3 + 3 finite values.
        """
        self._check_twist(sample, "base_twist")
        self.base_twist = sample

    def command(self, now: float | None) -> np.ndarray:
        """The velocity command ``[vx, vy, yaw rate]`` in force at ``now``: the latest ``Twist``'s
        linear.x, linear.y, angular.z clipped into the command ranges; zero (stand still) when
        none arrived, when it is older than ``command_timeout_s`` or received in the future,
        or when ``now`` is not given."""
        c = self.cmd_vel
        if c is None or now is None:
            return np.zeros(3)
        age = now - c.recv_time
        if not 0.0 <= age <= self.robot.command_timeout_s:  # NaN: zero too
            return np.zeros(3)
        v = np.array([c.linear[0], c.linear[1], c.angular[2]], dtype=np.float64)
        return np.minimum(np.maximum(v, self.command_low), self.command_high)

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
        if self.needs_base_twist and self.base_twist is None:
            out.append(f"base_twist ({self.robot.topics.base_twist})")
        return out

    def ee_pos(self) -> np.ndarray:
        """End-effector position (m) from the latest joint positions (forward kinematics)."""
        if self._fk is None:
            self._fk = _Chain(self.robot.kinematics, self.robot.joint_names)
        return self._fk(self.position)

    def build(self, last_action: np.ndarray, now: float | None = None) -> np.ndarray:
        """The observation ``[obs_dim]`` float64 from the latest inputs (``now``: the controller
        time, for the age of the velocity command; ``None``: command zero).

        Raises:
            NotReady: some joint, the IMU, the target or the base velocity has not been
                received yet.
        """
        if (
            self.joint_recv.min() == -np.inf
            or (self.needs_imu and self.imu is None)
            or (self.needs_target and self.target is None)
            or (self.needs_base_twist and self.base_twist is None)
        ):
            raise NotReady(self.missing())
        obs = np.empty(self.obs_dim)
        ee = None
        for (name, scale), (_, start, width) in zip(self.terms, self.slices, strict=True):
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
            elif name in ("torso_angvel", "base_angvel", "base_ang_vel"):
                v = self.imu.angular_velocity
            elif name == "base_lin_vel":
                v = self.base_twist.linear
            elif name == "command":
                v = self.command(now)
            else:  # projected_gravity
                v = quat_xyzw_to_matrix(self.imu.orientation).T @ np.array([0.0, 0.0, -1.0])
            obs[start : start + width] = v if scale is None else scale * v
        return obs
