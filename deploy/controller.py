"""The deploy controller: robot inputs in, one safe command per tick out. No ROS, no threads.

A transport (the rclpy node, the DDS loop, a test) feeds it messages as they arrive and calls
:meth:`Controller.tick` at the control rate::

    ctrl = Controller(load_policy("runs/arm/export"), load_robot_config("arm"))
    ctrl.on_joint_state(JointStateSample(names, pos, vel, recv_time=time.monotonic()))
    ctrl.on_target(PointSample([0.3, 0.1, 0.4], recv_time=time.monotonic()))
    cmd = ctrl.tick(time.monotonic())      # None in PASSIVE, else a Command to publish

Every tick, in RAMP and RUN: the clock and the inputs are checked (staleness by receive time,
receive times in the future, a clock that is not finite or went back, heartbeat, NaN/Inf, joint
limits, speed, attitude), the observation is built exactly as in training, the policy acts, the
action goes through the clamps of :class:`~rewardlab.deploy.actions.ActionMapper`, and the final
command's torque estimate is checked. Any failure trips the
:class:`~rewardlab.deploy.safety.SafetyMonitor` (see there for which trip holds and which damps);
the tick that trips already returns the HOLD/DAMP command, and HOLD/DAMP commands go through the
same rate limit and clamps.

Total: no message, value or timing makes a method raise. A malformed message (arrays that do not
match the names, a joint named twice, a 3-value quaternion) is refused whole and trips HOLD
(``malformed``) while the policy runs; an exception in the policy, the observation builder or the
controller itself trips HOLD (``fault``) with the exception in the reason; transports report
their own callback and publish failures through :meth:`Controller.fault`. In PASSIVE nothing is
commanded: refused inputs and faults are reasons in :meth:`Controller.status` and keep it from
starting.

Not thread-safe: call the ``on_*`` methods and ``tick`` from one thread (or under one lock).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rewardlab.deploy.actions import ActionMapper
from rewardlab.deploy.messages import Command, ImuSample, JointStateSample, PointSample, TwistSample
from rewardlab.deploy.observation import MalformedMessage, NotReady, ObservationBuilder, roll_pitch
from rewardlab.deploy.robot_config import RobotConfig
from rewardlab.deploy.safety import SafetyMonitor, SafetyState, Trip, TripEvent

REASON_CHARS = 240
"""Longest reason kept in a trip or status line (exception texts and arrays are cut)."""


def _short(text: object, limit: int = REASON_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _exc(where: str, e: BaseException) -> str:
    return _short(f"{where} raised {type(e).__name__}: {e}")


class ControllerError(ValueError):
    """The policy and the robot config do not fit together."""


class Controller:
    """Runs one exported policy on one robot, behind the safety layer.

    Args:
        policy: a :class:`~rewardlab.deploy.policy.Policy` (anything with ``meta``, ``obs_dim``,
            ``action_dim``, ``layout``, ``actuator_joints``, ``ctrl_mid``, ``ctrl_half``,
            ``control_rate_hz`` and ``__call__(obs) -> action``).
        robot: the robot config.

    Raises:
        ControllerError: the policy's action width is not the robot's joint count, its joints
            (sidecar ``action.actuator_joints``) are not the robot config's ``policy_joint_names``
            in the same order, or no control rate is known.
        ObservationError: the policy's observation cannot be built on this robot.
    """

    def __init__(self, policy: Any, robot: RobotConfig) -> None:
        n = robot.num_joints
        if policy.action_dim != n:
            raise ControllerError(
                f"policy has {policy.action_dim} actions, robot {robot.name!r} has {n} joints"
            )
        joints = list(policy.actuator_joints)
        if joints and joints != list(robot.policy_names):
            raise ControllerError(
                f"policy drives joints {joints} (policy.json action.actuator_joints), robot config "
                f"{robot.name!r} lists {list(robot.policy_names)} (set policy_joint_names to map "
                "the policy's names onto the robot's, in the policy's order)"
            )
        rate = robot.control_rate_hz or policy.control_rate_hz
        if not rate:
            raise ControllerError("no control rate: set control_rate_hz in the robot config")
        self.policy = policy
        self.robot = robot
        self.control_rate_hz = float(rate)
        self.dt = 1.0 / self.control_rate_hz
        meta = getattr(policy, "meta", None)
        ranges = meta.get("observation", {}).get("command_ranges") if isinstance(meta, dict) else None  # fmt: skip
        self.obs = ObservationBuilder(policy.layout, robot, policy.obs_dim, ranges)
        self.mapper = ActionMapper(robot, policy.ctrl_mid, policy.ctrl_half)
        self.safety = SafetyMonitor()
        self.names = tuple(robot.joint_names)
        self.lower, self.upper = np.asarray(robot.position_limits, dtype=np.float64).T
        self.vel_limits = np.asarray(robot.velocity_limits, dtype=np.float64)
        self.effort_limits = np.asarray(robot.effort_limits, dtype=np.float64)

        self.last_action = np.zeros(n)
        """The policy's previous action (clipped): the ``last_action`` observation."""
        self.last_command: np.ndarray | None = None
        """The last command returned by :meth:`tick` (``None`` after PASSIVE: the next command
        starts from its own target, clamped)."""
        self.hold_pose: np.ndarray | None = None
        """HOLD's position target (the measured pose when it tripped)."""
        self.heartbeat_time = -np.inf
        """Receive time of the newest heartbeat (``-inf``: none yet)."""
        self.last_tick_time = -np.inf
        """Controller time of the previous tick with a finite time (clock checks)."""
        self.rejected = 0
        """Inputs refused (malformed messages) and faults reported, in any state."""
        self.last_rejection: tuple[float, str] | None = None
        """Time and reason of the newest refused input or fault (shown while PASSIVE)."""
        self._start_requested = robot.auto_start
        self._ramp_t0 = 0.0
        self._ramp_start: np.ndarray | None = None
        self.waiting_for: list[str] = []
        """What PASSIVE waits for (empty once it can start)."""
        self.ticks = 0

    # -- inputs -----------------------------------------------------------------------------------

    @property
    def state(self) -> SafetyState:
        return self.safety.state

    @property
    def last_trip(self) -> TripEvent | None:
        return self.safety.last_trip

    def on_joint_state(self, sample: JointStateSample) -> None:
        """A ``JointState`` arrived (any joint order, any subset of joints)."""
        self._take(self.obs.update_joint_state, sample, "joint_states")

    def on_imu(self, sample: ImuSample) -> None:
        """An ``Imu`` sample arrived."""
        self._take(self.obs.update_imu, sample, "imu")

    def on_target(self, sample: PointSample) -> None:
        """A target point arrived."""
        self._take(self.obs.update_target, sample, "target")

    def on_cmd_vel(self, sample: TwistSample) -> None:
        """A velocity command (``Twist``) arrived; it is in force for ``command_timeout_s``."""
        self._take(self.obs.update_cmd_vel, sample, "cmd_vel")

    def on_base_twist(self, sample: TwistSample) -> None:
        """The base's measured velocity (``TwistStamped``, base frame) arrived."""
        self._take(self.obs.update_base_twist, sample, "base_twist")

    def on_estop(self, engaged: bool, now: float | None = None) -> None:
        """The ``/estop`` topic: ``True`` damps at once (also in PASSIVE); ``False`` only allows
        a later :meth:`reset`."""
        try:
            engaged = bool(engaged)
        except Exception:  # noqa: BLE001 - an e-stop value that is not a truth value: engaged
            engaged = True
        self.safety.estop = engaged
        if engaged:
            self.safety.trip(self._event_time(now), Trip.ESTOP, "e-stop engaged")
            self.hold_pose = self._measured_or_last()

    def on_heartbeat(self, recv_time: float) -> None:
        """An operator heartbeat arrived (receive time on the controller's clock). A receive time
        that is not a finite number, or lies in the future at the next tick, trips HOLD."""
        try:
            self.heartbeat_time = float(recv_time)
        except (TypeError, ValueError):
            self.heartbeat_time = math.nan

    def start(self) -> None:
        """Allow PASSIVE -> RAMP (needed when the robot config has ``auto_start: false``)."""
        self._start_requested = True

    def reset(self, start: bool | None = None) -> bool:
        """Re-arm after a trip (HOLD/DAMP -> PASSIVE); refused while the e-stop is engaged.

        Args:
            start: whether PASSIVE may go on to RAMP by itself; ``None``: the robot config's
                ``auto_start`` after a trip, unchanged otherwise. ``False`` keeps the robot
                PASSIVE (nothing commanded) until :meth:`start`, e.g. while a sim robot resets.
        """
        was_stopped = self.safety.state in (SafetyState.HOLD, SafetyState.DAMP)
        ok = self.safety.reset()
        if ok and was_stopped:
            self._start_requested = self.robot.auto_start
            self.hold_pose = None
            self.last_command = None
            self.last_rejection = None
        if ok and start is not None:
            self._start_requested = bool(start)
        return ok

    def fault(self, reason: str, now: float | None = None) -> None:
        """A transport's callback or publish failed (``reason`` says where and why): HOLD while
        the policy runs; in PASSIVE it keeps the controller from starting for a while."""
        self._refuse(Trip.FAULT, _short(reason), now)

    def _take(self, update: Any, sample: Any, topic: str) -> None:
        try:
            update(sample)
        except MalformedMessage as e:
            self._refuse(Trip.MALFORMED, _short(e), getattr(sample, "recv_time", None))
        except Exception as e:  # noqa: BLE001 - any input fails closed
            self._refuse(Trip.FAULT, _exc(f"{topic} input", e), getattr(sample, "recv_time", None))

    def _event_time(self, now: float | None) -> float:
        try:
            t = float(now) if now is not None else math.nan
        except (TypeError, ValueError):
            t = math.nan
        if math.isfinite(t):
            return t
        return self.last_tick_time if math.isfinite(self.last_tick_time) else 0.0

    def _refuse(self, kind: Trip, reason: str, now: float | None) -> None:
        t = self._event_time(now)
        self.rejected += 1
        self.last_rejection = (t, f"{kind.value}: {reason}")
        if self.safety.active:
            self.safety.trip(t, kind, reason)
            self.hold_pose = self._measured_or_last()

    # -- the tick ---------------------------------------------------------------------------------

    def tick(self, now: float) -> Command | None:
        """One control step at controller time ``now`` (the clock of the samples' ``recv_time``).

        Never raises (an exception inside trips HOLD, ``fault``).

        Returns:
            The command to publish, or ``None`` in PASSIVE (publish nothing) and when no pose
            was ever known.
        """
        self.ticks += 1
        try:
            return self._tick(now)
        except Exception as e:  # noqa: BLE001 - the last line of defence: hold, say why
            try:
                return self._trip(self._event_time(now), Trip.FAULT, _exc("controller", e))
            except Exception:  # noqa: BLE001 - nothing safe to command
                return None
        finally:
            try:
                t = float(now)
            except (TypeError, ValueError):
                t = math.nan
            if math.isfinite(t):
                self.last_tick_time = t

    def _tick(self, now: float) -> Command | None:
        state = self.safety.state
        if state == SafetyState.PASSIVE:
            if not self._try_start(now):
                return None
        elif state in (SafetyState.HOLD, SafetyState.DAMP):
            return self._stopped_command(now)

        trip = self._check_inputs(now)
        if trip is not None:
            return self._trip(now, *trip)
        q, qd = self.obs.position.copy(), self.obs.velocity.copy()
        try:
            obs = self.obs.build(self.last_action, now)
        except NotReady as e:  # an input vanished: cannot happen once started, but be safe
            return self._trip(now, Trip.STALE, _short(e))
        except Exception as e:  # noqa: BLE001 - fails closed
            return self._trip(now, Trip.FAULT, _exc("observation", e))
        if not np.isfinite(obs).all():
            bad = [n for n, s, w in self.obs.slices if not np.isfinite(obs[s : s + w]).all()]
            return self._trip(now, Trip.NONFINITE, _short(f"observation not finite in {bad}"))
        try:
            raw = self.policy(obs)
            action = np.asarray(raw, dtype=np.float64)
        except Exception as e:  # noqa: BLE001 - fails closed
            return self._trip(now, Trip.FAULT, _exc("policy", e))
        if action.shape != (len(self.names),):
            return self._trip(
                now,
                Trip.FAULT,
                f"policy action has shape {action.shape}, expected ({len(self.names)},)",
            )
        if not np.isfinite(action).all():
            return self._trip(
                now, Trip.NONFINITE, _short(f"policy action not finite: {action.tolist()}")
            )

        alpha = 1.0
        if self.safety.state == SafetyState.RAMP:
            alpha = (
                (now - self._ramp_t0) / self.robot.soft_start_s
                if self.robot.soft_start_s > 0
                else 1.0
            )
        previous = self.last_command if self.last_command is not None else self._clamped(q)
        mapped = self.mapper.map(action, previous, q, qd, min(alpha, 1.0), self._ramp_start)
        torque = self.mapper.estimated_torque(mapped.positions, q, qd)
        # trips where the joint-limit clamp keeps the command out of the torque band; a command
        # walking towards a band out of reach (the measured pose jumped) is rate limited instead
        over = np.abs(torque) > self.robot.torque_trip_ratio * self.effort_limits
        over &= ~mapped.torque_out_of_reach
        if over.any():
            j = int(np.argmax(over))
            return self._trip(
                now, Trip.TORQUE,
                f"{self.names[j]}: estimated torque {torque[j]:.2f} N m over "
                f"{self.robot.torque_trip_ratio} x limit {self.effort_limits[j]}",
            )  # fmt: skip
        if not np.isfinite(mapped.positions).all():  # cannot happen: inputs were checked
            return self._trip(now, Trip.NONFINITE, "command not finite")
        if self.safety.state == SafetyState.RAMP and alpha >= 1.0:
            self.safety.enter(SafetyState.RUN)
        self.last_action = mapped.clipped_action
        self.last_command = mapped.positions
        return Command(
            names=self.names,
            positions=mapped.positions.copy(),
            state=self.safety.state.value,
            time=now,
            action=mapped.clipped_action.copy(),
            observation=obs,
            obs_recv_time=float(self.obs.joint_recv.max()),
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _clamped(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(q, self.lower), self.upper)

    def _try_start(self, now: float) -> bool:
        missing = self.obs.missing()
        if not missing:
            check = self._check_inputs(now)
            if check is not None:
                missing = [f"{check[0].value}: {check[1]}"]
        if not missing and self.last_rejection is not None:
            t, reason = self.last_rejection
            if not now - t > self.robot.stale_timeout_s:  # NaN times keep it refusing
                missing = [f"inputs without errors for {self.robot.stale_timeout_s} s ({reason})"]
        if not missing and not self._start_requested:
            missing = ["start() (auto_start is false)"]
        self.waiting_for = missing
        if missing:
            return False
        q = self._clamped(self.obs.position)
        self._ramp_t0 = now
        self._ramp_start = q
        self.last_command = q
        self.last_action = np.zeros(len(self.names))
        self.last_rejection = None
        self.safety.enter(SafetyState.RAMP if self.robot.soft_start_s > 0 else SafetyState.RUN)
        return True

    def _check_time(self, name: str, recv: float, now: float) -> str | None:
        """Why an input received at ``recv`` is not fresh at ``now`` (None: fresh)."""
        age = now - recv
        if age < 0:
            return f"{name} received {-age:.3f} s in the future (clock jump?)"
        if not age <= self.robot.stale_timeout_s:  # NaN is stale too
            return f"{name} is {age:.3f} s old (> {self.robot.stale_timeout_s} s)"
        return None

    def _check_inputs(self, now: float) -> tuple[Trip, str] | None:
        r = self.robot
        if not isinstance(now, int | float) or not math.isfinite(now):
            return Trip.STALE, _short(f"controller clock is {now!r}, expected a finite time")
        if now < self.last_tick_time:
            return Trip.STALE, f"controller clock went back by {self.last_tick_time - now:.3f} s"
        age = now - self.obs.joint_recv
        bad = ~((age >= 0) & (age <= r.stale_timeout_s))
        if bad.any():
            j = int(np.argmax(bad))
            why = self._check_time(f"joint state of {self.names[j]}", self.obs.joint_recv[j], now)
            return Trip.STALE, why or f"joint state of {self.names[j]} is not fresh"
        if self.obs.needs_imu or r.attitude_limit is not None:
            if self.obs.imu is None:
                return Trip.STALE, "no IMU sample"
            why = self._check_time("IMU", self.obs.imu.recv_time, now)
            if why:
                return Trip.STALE, why
        if self.obs.needs_base_twist:
            if self.obs.base_twist is None:
                return Trip.STALE, "no base velocity sample"
            why = self._check_time("base velocity", self.obs.base_twist.recv_time, now)
            if why:
                return Trip.STALE, why
        if r.topics.heartbeat is not None:
            hb_age = now - self.heartbeat_time
            if hb_age < 0:
                return Trip.HEARTBEAT, (
                    f"heartbeat on {r.topics.heartbeat} received {-hb_age:.3f} s in the future"
                )
            if not hb_age <= r.heartbeat_timeout_s:
                return (
                    Trip.HEARTBEAT,
                    f"no heartbeat on {r.topics.heartbeat} for more than {r.heartbeat_timeout_s} s",
                )
        q, qd = self.obs.position, self.obs.velocity
        if not (np.isfinite(q).all() and np.isfinite(qd).all()):
            return (
                Trip.NONFINITE,
                f"joint state not finite: position {q.tolist()}, velocity {qd.tolist()}",
            )
        m = r.joint_limit_margin
        outside = (q < self.lower - m) | (q > self.upper + m)
        if outside.any():
            j = int(np.argmax(outside))
            return Trip.JOINT_LIMIT, (
                f"{self.names[j]} at {q[j]:.3f} rad, outside [{self.lower[j]}, {self.upper[j]}] + {m}"
            )
        fast = np.abs(qd) > r.velocity_trip_ratio * self.vel_limits
        if fast.any():
            j = int(np.argmax(fast))
            return Trip.VELOCITY, (
                f"{self.names[j]} at {qd[j]:.2f} rad/s, over {r.velocity_trip_ratio} x limit {self.vel_limits[j]}"
            )
        if r.attitude_limit is not None:
            ori = self.obs.imu.orientation
            if not np.isfinite(ori).all() or np.linalg.norm(ori) < 1e-6:
                return Trip.NONFINITE, _short(f"IMU orientation invalid: {ori.tolist()}")
            roll, pitch = roll_pitch(ori)
            if max(abs(roll), abs(pitch)) > r.attitude_limit:
                return (
                    Trip.ATTITUDE,
                    f"roll {roll:.2f} / pitch {pitch:.2f} rad over limit {r.attitude_limit}",
                )
        return None

    def _measured_or_last(self) -> np.ndarray | None:
        q = self.obs.position
        if np.isfinite(q).all():
            return q.copy()
        return None if self.last_command is None else self.last_command.copy()

    def _trip(self, now: float, kind: Trip, reason: str) -> Command | None:
        self.safety.trip(self._event_time(now), kind, reason)
        self.hold_pose = self._measured_or_last()
        return self._stopped_command(now)

    def _fresh_measurement(self, now: float) -> bool:
        age = now - self.obs.joint_recv
        return bool(
            ((age >= 0) & (age <= self.robot.stale_timeout_s)).all()
            and np.isfinite(self.obs.position).all()
            and np.isfinite(self.obs.velocity).all()
        )

    def _stopped_command(self, now: float) -> Command | None:
        """HOLD: towards the pose measured at the trip; DAMP: towards the current measured pose
        (fresh and finite), else the hold pose. Both through the rate limit, the torque clamp
        (with a fresh finite measurement) and the joint limits. ``None`` when no pose was ever
        known."""
        fresh = isinstance(now, int | float) and self._fresh_measurement(now)
        target = self.hold_pose
        if self.safety.state == SafetyState.DAMP and fresh:
            target = self.obs.position.copy()
        if target is None or not np.isfinite(target).all():
            target = self.last_command
        if target is None:
            return None
        previous = self.last_command
        if previous is None or not np.isfinite(previous).all():
            previous = self._clamped(target)
        q, qd = (self.obs.position, self.obs.velocity) if fresh else (None, None)
        cmd = self.mapper.limit(target, previous, q, qd)[0]
        self.last_command = cmd
        trip = self.safety.last_trip
        return Command(
            names=self.names,
            positions=cmd.copy(),
            state=self.safety.state.value,
            time=now,
            reason=f"{trip.kind.value}: {trip.reason}" if trip else "",
            obs_recv_time=float(self.obs.joint_recv.max()),
        )

    def status(self) -> str:
        """One line for the safety-state topic: state, and the last trip or what PASSIVE waits for."""
        trip = self.safety.last_trip
        if self.safety.state in (SafetyState.HOLD, SafetyState.DAMP) and trip is not None:
            return f"{self.safety.state.value} {trip.kind.value}: {trip.reason}"
        if self.safety.state == SafetyState.PASSIVE and self.waiting_for:
            return "PASSIVE waiting for " + ", ".join(self.waiting_for)
        return self.safety.state.value
