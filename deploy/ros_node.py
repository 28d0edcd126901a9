"""The rclpy deploy node: robot topics in, the :class:`~rewardlab.deploy.controller.Controller`
in the middle, ros2_control commands out.

::

    rewardlab deploy policy=runs/arm/export robot=arm                 # this node (transport=rclpy)
    ros2 run rewardlab rewardlab-deploy --ros-args -p policy:=runs/arm/export -p robot:=arm

Inputs (QoS: sensor data, i.e. best effort, volatile, keep last 5 -- it matches reliable and
best-effort publishers alike):

- ``topics.joint_states`` ``sensor_msgs/JointState``: mapped by joint name (any order, any subset);
- ``topics.imu`` ``sensor_msgs/Imu``, ``topics.target`` ``geometry_msgs/PointStamped``;
- ``topics.cmd_vel`` ``geometry_msgs/Twist`` (velocity commands, e.g. teleop_twist_keyboard's;
  reliable and best-effort publishers alike) and ``topics.base_twist``
  ``geometry_msgs/TwistStamped`` (the base's velocity from the state estimator);
- ``topics.estop`` ``std_msgs/Bool``: ``true`` damps at once; ``topics.heartbeat``
  ``std_msgs/Header``: when configured, the robot only moves while heartbeats arrive;
- ``~/reset`` and ``~/start`` ``std_msgs/Empty``: re-arm after a trip / leave PASSIVE when the
  robot config has ``auto_start: false``.

Outputs (reliable, keep last 10): ``topics.command`` as ``std_msgs/Float64MultiArray`` (a
ros2_control ``forward_command_controller`` / ``position_controllers/JointGroupPositionController``,
joints in the robot config's order) or a one-point ``trajectory_msgs/JointTrajectory``
(``joint_trajectory_controller``), and ``topics.safety_state`` ``std_msgs/String`` on every change.

Timing: one node, one persistent single-threaded executor (rclpy's C++ ``EventsExecutor`` where
rclpy has it, else ``SingleThreadedExecutor``: the Python executor's wait-set bookkeeping was
over half of the node's CPU time at 500 Hz, ``benchmarks/control_latency.py``), so every
callback (and the controller, which is not thread-safe) runs on one thread. ``trigger=timer``
ticks on a wall-clock timer at the control rate. ``trigger=joint_state`` (default) ticks in the
joint-state callback that first arrives after a tick falls due, so the command leaves right after
the observation it used (lowest latency); a timer, reset by each of those ticks, ticks when the
next joint state is late, so ticks keep the control rate and the watchdog sees a blackout. Per-tick latency (joint state received -> command
published) and tick intervals are kept; ``stats_out`` writes them as JSON on exit.

Fails closed: every callback runs under :meth:`DeployNode._guarded`; an exception in a callback,
in a publish or in the executor itself (rclpy raises from ``spin_once`` when a message cannot be
taken) is reported to the controller (:meth:`~rewardlab.deploy.controller.Controller.fault`:
HOLD while the policy runs, with the reason on the safety-state topic) and the loop goes on.

rclpy is imported only when a node is built: importing this module needs no ROS. Not supported:
lifecycle (managed) nodes, services (std_srvs is not among the PyPI wheels), multi-threaded
executors, ROS time / ``use_sim_time`` (the controller runs on ``time.monotonic()``).
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.deploy.dds_env import apply_dds_environment
from rewardlab.deploy.messages import (
    Command,
    imu_from_msg,
    joint_state_from_msg,
    point_from_msg,
    twist_from_msg,
    twist_stamped_from_msg,
)

TRIGGERS = ("joint_state", "timer")
"""When the control tick runs: on the first joint state after it falls due, or on a timer."""
EXECUTORS = ("auto", "events", "single")
"""rclpy executor: ``events`` (``rclpy.experimental.EventsExecutor``, C++, where rclpy has it),
``single`` (``SingleThreadedExecutor``, pure Python), ``auto`` (events when available)."""


def make_executor(kind: str, context: Any) -> Any:
    """An rclpy executor of ``kind`` (see :data:`EXECUTORS`) on ``context``."""
    if kind in ("auto", "events"):
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            if kind == "events":
                raise ValueError(
                    "executor: events needs rclpy.experimental.EventsExecutor (rclpy >= 8)"
                ) from None
        else:
            return EventsExecutor(context=context)
    from rclpy.executors import SingleThreadedExecutor

    return SingleThreadedExecutor(context=context)


@dataclass
class LoopStats:
    """Timing of the control loop, kept by the node (seconds, ``time.monotonic()``)."""

    period: float
    """The control period."""
    tick_times: list[float] = field(default_factory=list)
    """Start time of every tick that published a command."""
    latencies: list[float] = field(default_factory=list)
    """Per published command: publish time - receive time of the newest joint state it used
    (NaN for HOLD/DAMP commands, which may rest on old joint states)."""
    states: list[str] = field(default_factory=list)
    """Safety state of every published command."""
    triggers: list[str] = field(default_factory=list)
    """What ran each published command's tick: ``joint_state`` (a joint state arrived after the
    tick fell due: its latency is the node's reaction time) or ``timer`` (its latency includes
    the age of the newest joint state)."""

    def summary(self) -> dict[str, float]:
        """Median / p99 / max latency (ms), interval jitter (ms) and missed deadlines."""
        out: dict[str, float] = {"commands": float(len(self.latencies))}
        lat = np.asarray(self.latencies, dtype=np.float64) * 1e3
        lat = lat[np.isfinite(lat)]
        if lat.size:
            out.update(
                latency_median_ms=float(np.median(lat)),
                latency_p99_ms=float(np.percentile(lat, 99)),
                latency_max_ms=float(lat.max()),
            )
        if len(self.tick_times) > 2:
            iv = np.diff(np.asarray(self.tick_times))
            out.update(
                interval_median_ms=float(np.median(iv) * 1e3),
                jitter_std_ms=float(np.std(iv) * 1e3),
                jitter_p99_ms=float(np.percentile(np.abs(iv - self.period), 99) * 1e3),
                missed_deadlines=float(np.sum(iv > 1.5 * self.period)),
                rate_hz=float((len(iv)) / (self.tick_times[-1] - self.tick_times[0])),
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "tick_times": self.tick_times,
            "latencies": self.latencies,
            "states": self.states,
            "triggers": self.triggers,
            "summary": self.summary(),
        }


def _exc(where: str, e: BaseException) -> str:
    text = " ".join(f"{where} raised {type(e).__name__}: {e}".split())
    return text if len(text) <= 240 else text[:237] + "..."


class DeployNode:
    """The rclpy node around one controller (build it with :func:`create_node`).

    Args:
        controller: the :class:`~rewardlab.deploy.controller.Controller`.
        node_name: ROS node name.
        trigger: ``joint_state`` or ``timer`` (see the module docstring).
        parameters: extra values to declare as read-only ROS parameters (introspection).
        log: where progress lines go (one every ``log_every_s``).
        log_every_s: seconds between progress lines (0: none).
        record: callback for every published command (the ros2 env backend, tests).
        recorder: a :class:`rewardlab.deploy.recording.BagRecorder`: the robot's inputs (as
            received, CDR) and every tick's action, observation, command and safety state go
            into a rosbag2.
        executor: ``auto`` (default), ``events`` or ``single`` (see :data:`EXECUTORS`).
    """

    def __init__(
        self,
        controller: Any,
        node_name: str = "rewardlab_deploy",
        trigger: str = "joint_state",
        parameters: dict[str, Any] | None = None,
        log: Callable[[str], None] = print,
        log_every_s: float = 5.0,
        record: Callable[[Command], None] | None = None,
        context: Any = None,
        recorder: Any = None,
        executor: str = "auto",
    ) -> None:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger: got {trigger!r}, expected one of {', '.join(TRIGGERS)}")
        if executor not in EXECUTORS:
            raise ValueError(f"executor: got {executor!r}, expected one of {', '.join(EXECUTORS)}")
        self.executor_kind = executor
        apply_dds_environment()
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from std_msgs.msg import Bool, Empty, Float64MultiArray, Header, String

        self.ctrl = controller
        self.robot = controller.robot
        self.trigger = trigger
        self.period = 1.0 / float(controller.control_rate_hz)
        self.stats = LoopStats(self.period)
        self.log = log
        self.log_every_s = log_every_s
        self.record = record
        self.recorder = recorder
        self._rec_queue: queue.SimpleQueue | None = None
        if recorder is not None:  # disk writes off the control thread
            self._rec_queue = queue.SimpleQueue()
            self._rec_thread = threading.Thread(
                target=self._record_loop, name="rosbag", daemon=True
            )
            self._rec_thread.start()
        self._next_due = -math.inf
        self._last_log = time.monotonic()
        self._last_status = ""
        self.errors = 0
        """Exceptions caught in callbacks, publishes and the executor (each reported as a fault)."""
        self._last_error_log = -math.inf
        self.lock = threading.Lock()
        """Held around every controller call (another thread may share the controller)."""
        if not rclpy.ok(context=context):
            rclpy.init(context=context)
        self.node: Node = Node(node_name, context=context)
        for name, value in (parameters or {}).items():
            self.node.declare_parameter(name, value)
        topics = self.robot.topics
        sensor = qos_profile_sensor_data
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

        from sensor_msgs.msg import JointState

        self.node.create_subscription(JointState, topics.joint_states, self._on_joint_state, sensor)
        if topics.imu:
            from sensor_msgs.msg import Imu

            self.node.create_subscription(Imu, topics.imu, self._on_imu, sensor)
        if topics.target:
            from geometry_msgs.msg import PointStamped

            self.node.create_subscription(PointStamped, topics.target, self._on_target, sensor)
        if topics.cmd_vel:
            from geometry_msgs.msg import Twist

            self.node.create_subscription(Twist, topics.cmd_vel, self._on_cmd_vel, sensor)
        if topics.base_twist:
            from geometry_msgs.msg import TwistStamped

            self.node.create_subscription(TwistStamped, topics.base_twist, self._on_base_twist, sensor)  # fmt: skip
        if topics.estop:
            self.node.create_subscription(Bool, topics.estop, self._on_estop, sensor)
        if topics.heartbeat:
            self.node.create_subscription(Header, topics.heartbeat, self._on_heartbeat, sensor)
        self.node.create_subscription(Empty, "~/reset", self._on_reset, reliable)
        self.node.create_subscription(Empty, "~/start", self._on_start, reliable)

        if self.robot.command_type == "trajectory":
            from builtin_interfaces.msg import Duration
            from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

            self._traj = (JointTrajectory, JointTrajectoryPoint, Duration)
            self.pub = self.node.create_publisher(JointTrajectory, topics.command, reliable)
        else:
            self._float_array = Float64MultiArray
            self.pub = self.node.create_publisher(Float64MultiArray, topics.command, reliable)
        self._string = String
        self.state_pub = (
            self.node.create_publisher(String, topics.safety_state, reliable)
            if topics.safety_state
            else None
        )
        # The timer ticks in timer mode; in joint_state mode it is the fallback that keeps the
        # watchdog running when joint states stop or come late: each joint-state tick resets it,
        # so it fires one period after the last tick, when the next one falls due.
        self.timer = self.node.create_timer(self.period, self._on_timer)

    # -- callbacks (all on the executor's one thread) ------------------------------------------

    def _on_joint_state_unlocked(self, msg: Any) -> None:
        now = time.monotonic()
        self.ctrl.on_joint_state(joint_state_from_msg(msg, now))
        if self.trigger == "joint_state" and now >= self._next_due:
            self._tick(now, "joint_state")
            self.timer.reset()  # the fallback fires one period from now, when the next is due

    def _on_imu_unlocked(self, msg: Any) -> None:
        self.ctrl.on_imu(imu_from_msg(msg, time.monotonic()))

    def _on_target_unlocked(self, msg: Any) -> None:
        self.ctrl.on_target(point_from_msg(msg, time.monotonic()))

    def _on_cmd_vel_unlocked(self, msg: Any) -> None:
        self.ctrl.on_cmd_vel(twist_from_msg(msg, time.monotonic()))

    def _on_base_twist_unlocked(self, msg: Any) -> None:
        self.ctrl.on_base_twist(twist_stamped_from_msg(msg, time.monotonic()))

    def _on_estop_unlocked(self, msg: Any) -> None:
        self.ctrl.on_estop(bool(msg.data), time.monotonic())
        self._publish_status()

    def _on_heartbeat_unlocked(self, _msg: Any) -> None:
        self.ctrl.on_heartbeat(time.monotonic())

    def _on_reset_unlocked(self, _msg: Any) -> None:
        ok = self.ctrl.reset()
        self.log(f"[deploy] reset {'accepted' if ok else 'refused (e-stop engaged?)'}")
        self._publish_status()

    def _on_timer_unlocked(self) -> None:
        now = time.monotonic()
        if self.trigger == "timer" or now >= self._next_due - 0.05 * self.period:
            self._tick(now)

    # Callbacks as the executor calls them: each under ``self.lock``, each guarded.
    def _guarded(self, where: str, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` under the lock; an exception becomes a controller fault (never raises)."""
        try:
            with self.lock:
                fn(*args)
        except Exception as e:  # noqa: BLE001 - no input may end the loop
            self._report(_exc(where, e))

    def _report(self, reason: str) -> None:
        """Tell the controller (HOLD while running) and log, at most once a second."""
        self.errors += 1
        now = time.monotonic()
        with contextlib.suppress(Exception), self.lock:  # reporting must not raise either
            self.ctrl.fault(reason, now)
            self._publish_status()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            with contextlib.suppress(Exception):
                self.log(f"[deploy] error ({self.errors} so far): {reason}")

    def _on_joint_state(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.joint_states} callback", self._on_joint_state_unlocked, msg)  # fmt: skip
        if self.recorder is not None:
            self._record_input(self.robot.topics.joint_states, "sensor_msgs/msg/JointState", msg)

    def _on_imu(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.imu} callback", self._on_imu_unlocked, msg)
        if self.recorder is not None:
            self._record_input(self.robot.topics.imu, "sensor_msgs/msg/Imu", msg)

    def _on_target(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.target} callback", self._on_target_unlocked, msg)
        if self.recorder is not None:
            self._record_input(self.robot.topics.target, "geometry_msgs/msg/PointStamped", msg)

    def _on_cmd_vel(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.cmd_vel} callback", self._on_cmd_vel_unlocked, msg)
        if self.recorder is not None:
            self._record_input(self.robot.topics.cmd_vel, "geometry_msgs/msg/Twist", msg)

    def _on_base_twist(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.base_twist} callback", self._on_base_twist_unlocked, msg)  # fmt: skip
        if self.recorder is not None:
            self._record_input(self.robot.topics.base_twist, "geometry_msgs/msg/TwistStamped", msg)

    def _on_estop(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.estop} callback", self._on_estop_unlocked, msg)
        if self.recorder is not None:
            self._record_input(self.robot.topics.estop, "std_msgs/msg/Bool", msg)

    def _on_heartbeat(self, msg: Any) -> None:
        self._guarded(f"{self.robot.topics.heartbeat} callback", self._on_heartbeat_unlocked, msg)

    def _on_reset(self, msg: Any) -> None:
        self._guarded("~/reset callback", self._on_reset_unlocked, msg)

    def _on_timer(self) -> None:
        self._guarded("control timer", self._on_timer_unlocked)

    def _record_input(self, topic: str, msgtype: str, msg: Any) -> None:
        from rclpy.serialization import serialize_message

        try:
            self._rec_queue.put((topic, msgtype, serialize_message(msg), time.time()))
        except Exception as e:  # noqa: BLE001 - a recording failure is a fault, not a crash
            self._report(_exc(f"recording {topic}", e))

    def _record_loop(self) -> None:
        """Write queued inputs and commands to the bag (its own thread); ``None`` ends it."""
        while (item := self._rec_queue.get()) is not None:
            try:
                self._record_item(item)
            except RuntimeError:  # the recorder was closed meanwhile
                pass
            except Exception as e:  # noqa: BLE001 - a recording failure is a fault, not a crash
                self._report(_exc("recording", e))

    def _record_item(self, item: tuple) -> None:
        from rewardlab.deploy.transport_dds import deserialize

        if isinstance(item[0], Command):
            self.recorder.record_command(*item)  # (command, wall time of the tick)
        else:  # (topic, msgtype, rclpy CDR, wall time received)
            # rclpy (Fast CDR) pads a message to 8 bytes, which rosbags' reader refuses;
            # re-serialize through the DDS transport's types for canonical CDR
            topic, msgtype, data, t = item
            self.recorder.write_msg(topic, msgtype, deserialize(data, msgtype), t)

    def _on_start(self, _msg: Any) -> None:
        self._guarded("~/start callback", self.ctrl.start)

    # -- the tick ------------------------------------------------------------------------------

    def _tick(self, now: float, trigger: str = "timer") -> None:
        # Next deadline one period on; after a long stall, re-anchor rather than burst.
        self._next_due = max(self._next_due + self.period, now + 0.5 * self.period)
        cmd = self.ctrl.tick(now)  # never raises
        if cmd is not None:
            try:
                self._publish(cmd)
            except Exception as e:  # noqa: BLE001 - the loop goes on (and holds)
                self.errors += 1
                self.ctrl.fault(_exc(f"publishing on {self.robot.topics.command}", e), now)
            t_pub = time.monotonic()
            self.stats.tick_times.append(now)
            # latency of the policy path only: HOLD/DAMP commands may rest on old joint states
            running = cmd.state in ("RAMP", "RUN")
            ok = running and cmd.obs_recv_time is not None and math.isfinite(cmd.obs_recv_time)
            self.stats.latencies.append(t_pub - cmd.obs_recv_time if ok else math.nan)
            self.stats.states.append(cmd.state)
            self.stats.triggers.append(trigger)
            if self.record is not None:
                try:
                    self.record(cmd)
                except Exception as e:  # noqa: BLE001 - a consumer's failure is a fault
                    self.errors += 1
                    self.ctrl.fault(_exc("command callback", e), now)
            if self._rec_queue is not None:
                self._rec_queue.put((cmd, time.time()))
        self._publish_status()
        if self.log_every_s and now - self._last_log >= self.log_every_s:
            self._last_log = now
            s = self.stats.summary()
            self.log(
                f"[deploy] {self.ctrl.status()} | ticks {self.ctrl.ticks} | commands "
                f"{int(s['commands'])} | {s.get('rate_hz', 0.0):.1f} Hz | latency median "
                f"{s.get('latency_median_ms', float('nan')):.2f} ms p99 "
                f"{s.get('latency_p99_ms', float('nan')):.2f} ms | missed "
                f"{int(s.get('missed_deadlines', 0))}"
            )

    def _publish(self, cmd: Command) -> None:
        positions = [float(x) for x in cmd.positions]
        if self.robot.command_type == "trajectory":
            traj_cls, point_cls, duration_cls = self._traj
            sec = int(self.period)
            point = point_cls(
                positions=positions,
                time_from_start=duration_cls(sec=sec, nanosec=int((self.period - sec) * 1e9)),
            )
            self.pub.publish(traj_cls(joint_names=list(cmd.names), points=[point]))
        else:
            self.pub.publish(self._float_array(data=positions))

    def _publish_status(self) -> None:
        status = self.ctrl.status()
        if status != self._last_status:
            self._last_status = status
            self.log(f"[deploy] safety: {status}")
            if self.state_pub is not None:
                try:
                    self.state_pub.publish(self._string(data=status))
                except Exception as e:  # noqa: BLE001 - the status is informative
                    self.errors += 1
                    self.ctrl.fault(_exc(f"publishing on {self.robot.topics.safety_state}", e))

    # -- running -------------------------------------------------------------------------------

    def spin(self, duration: float | None = None, stop: threading.Event | None = None) -> None:
        """Run the one executor until Ctrl-C, ``duration`` seconds, or ``stop`` is set."""
        from rclpy.executors import ExternalShutdownException

        executor = make_executor(self.executor_kind, self.node.context)
        executor.add_node(self.node)
        t_end = time.monotonic() + duration if duration else math.inf
        try:
            while time.monotonic() < t_end and not (stop is not None and stop.is_set()):
                try:
                    executor.spin_once(timeout_sec=min(0.1, max(0.0, t_end - time.monotonic())))
                except (KeyboardInterrupt, ExternalShutdownException):
                    raise
                except Exception as e:  # noqa: BLE001 - e.g. a message rclpy cannot take
                    if not self.node.context.ok():
                        break
                    self._report(_exc("rclpy executor", e))
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.remove_node(self.node)
            executor.shutdown()

    def write_stats(self, path: str | Path) -> None:
        """Write :class:`LoopStats` (and the safety events) as JSON."""
        data = self.stats.to_json()
        data["events"] = [
            {"time": e.time, "kind": e.kind.value, "reason": e.reason}
            for e in getattr(self.ctrl.safety, "events", [])
        ]
        Path(path).write_text(json.dumps(data))

    def close(self) -> None:
        """Flush the recording, destroy the node (and shut its context down)."""
        import rclpy

        if self._rec_queue is not None:
            self._rec_queue.put(None)
            self._rec_thread.join(timeout=30.0)
            self._rec_queue = None

        ctx = self.node.context
        self.node.destroy_node()
        if rclpy.ok(context=ctx):
            rclpy.shutdown(context=ctx)
