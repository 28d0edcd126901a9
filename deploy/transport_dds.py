"""Pure-PyPI ROS 2 transport: Cyclone DDS speaking the ROS 2 wire format, no rclpy needed.

ROS 2 over ``rmw_cyclonedds_cpp`` is plain DDS with naming conventions; this module follows them
so that its endpoints match ROS 2 nodes on the same domain:

- topic ``/joint_states`` is the DDS topic ``rt/joint_states`` (:func:`dds_topic_name`);
- type ``sensor_msgs/msg/JointState`` is the DDS type ``sensor_msgs::msg::dds_::JointState_``
  (:func:`dds_type_name`), keyless, final, serialized as XCDR1 (CDR with the 4-byte
  encapsulation header ``00 01 00 00`` on little-endian hosts), the format rosbag2 stores;
- the endpoints carry ``typehash=RIHS01_...;`` in their USER_DATA, as Jazzy's rmw does.

Message classes are not written by hand: :func:`msg_class` generates a cyclonedds ``IdlStruct``
for any message type in rosbags' ROS 2 Jazzy typestore (nested types, fixed arrays, bounded and
unbounded sequences; a ``uint8[]`` field takes ``bytes`` and reads back as a list of ints). The byte-for-byte equality of our CDR with
rosbags' ``serialize_cdr`` is a test (``tests/test_deploy_dds.py``).

QoS: :data:`SENSOR_QOS` (best effort, keep last 5, volatile: ROS's ``qos_profile_sensor_data``)
and :data:`RELIABLE_QOS` (reliable, keep last 10, volatile: ROS's default profile). A
best-effort reader matches every writer; a reliable reader matches only reliable writers.

What it does not do: services, actions, parameters, ROS 2 graph introspection (``ros2 topic
list`` sees our topics, ``ros2 node list`` does not see a node: there is none), type
negotiation for types outside the typestore (register them in the typestore first).

The DDS domain is ``$ROS_DOMAIN_ID`` (default 0), as in ROS 2. ``local_only=True`` restricts
discovery and traffic to the loopback interface (tests; nothing leaves the machine).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.deploy.messages import (  # noqa: F401 - the *_from_msg converters, re-exported
    Command,
    ImuSample,
    JointStateSample,
    PointSample,
    TwistSample,
    imu_from_msg,
    joint_state_from_msg,
    point_from_msg,
    time_from_msg,
    twist_from_msg,
    twist_stamped_from_msg,
)

TYPESTORE = "ROS2_JAZZY"
"""rosbags typestore the message definitions come from."""

LOOPBACK_CONFIG = """<CycloneDDS><Domain Id="any"><General>
<Interfaces><NetworkInterface name="lo"/></Interfaces>
<AllowMulticast>false</AllowMulticast></General>
<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>
<Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>"""
"""Cyclone DDS configuration that keeps discovery and data on the loopback interface."""


# ------------------------------------------------------------------------------------------------
# Types


@functools.cache
def typestore() -> Any:
    """rosbags' ROS 2 Jazzy typestore (message definitions, CDR (de)serializer)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(getattr(Stores, TYPESTORE))


def dds_topic_name(topic: str) -> str:
    """ROS 2 topic -> DDS topic as rmw_cyclonedds names it: ``/joint_states`` -> ``rt/joint_states``."""
    if not topic.startswith("/"):
        raise ValueError(
            f"topic: got {topic!r}, expected an absolute ROS 2 name like /joint_states"
        )
    return "rt" + topic


def dds_type_name(msgtype: str) -> str:
    """``sensor_msgs/msg/JointState`` -> ``sensor_msgs::msg::dds_::JointState_``."""
    pkg, kind, name = _split(msgtype)
    return f"{pkg}::{kind}::dds_::{name}_"


def _split(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type: got {msgtype!r}, expected package/msg/Name")
    return parts[0], parts[1], parts[2]


_BASE: dict[str, Any] = {}


def _base_types() -> dict[str, Any]:
    if not _BASE:
        import cyclonedds.idl.types as t

        _BASE.update(
            bool=bool, byte=t.byte, char=t.char, int8=t.int8, uint8=t.uint8, int16=t.int16,
            uint16=t.uint16, int32=t.int32, uint32=t.uint32, int64=t.int64, uint64=t.uint64,
            float32=t.float32, float64=t.float64, string=str,
        )  # fmt: skip
    return _BASE


def _field_type(node: tuple[Any, Any]) -> Any:
    import cyclonedds.idl.types as t
    from rosbags.typesys.base import Nodetype

    kind, detail = node
    if kind == Nodetype.BASE:
        name, bound = detail
        if name in ("string", "wstring"):
            return t.bounded_str[bound] if bound else str
        return _base_types()[name]
    if kind == Nodetype.NAME:
        return msg_class(detail)
    if kind == Nodetype.ARRAY:
        sub, length = detail
        return t.array[_field_type(sub), length]
    if kind == Nodetype.SEQUENCE:
        sub, bound = detail
        inner = _field_type(sub)
        return t.sequence[inner, bound] if bound else t.sequence[inner]
    raise TypeError(f"unsupported field node {node!r}")


@functools.cache
def msg_class(msgtype: str) -> type:
    """A cyclonedds ``IdlStruct`` class for a ROS 2 message type, generated from the typestore.

    Args:
        msgtype: ``package/msg/Name`` (e.g. ``sensor_msgs/msg/JointState``).

    Raises:
        KeyError: the typestore does not know ``msgtype``.
    """
    from cyclonedds.idl import make_idl_struct

    store = typestore()
    if msgtype not in store.fielddefs:
        raise KeyError(f"message type {msgtype!r} is not in rosbags' {TYPESTORE} typestore")
    _, _, name = _split(msgtype)
    fields = {fname: _field_type(node) for fname, node in store.fielddefs[msgtype][1]}
    cls = make_idl_struct(f"{name}_", dds_type_name(msgtype), fields)
    cls.__ros_msgtype__ = msgtype
    return cls


def new_msg(msgtype: str, **values: Any) -> Any:
    """A message of ``msgtype`` with every field defaulted (zeros, empty) except ``values``."""
    cls = msg_class(msgtype)
    store = typestore()
    kwargs = {}
    for fname, node in store.fielddefs[msgtype][1]:
        kwargs[fname] = values.pop(fname) if fname in values else _default(node)
    if values:
        raise TypeError(f"{msgtype} has no field(s) {sorted(values)}")
    return cls(**kwargs)


def _default(node: tuple[Any, Any]) -> Any:
    from rosbags.typesys.base import Nodetype

    kind, detail = node
    if kind == Nodetype.BASE:
        name = detail[0]
        return (
            ""
            if name in ("string", "wstring")
            else False
            if name == "bool"
            else 0.0
            if name.startswith("float")
            else 0
        )
    if kind == Nodetype.NAME:
        return new_msg(detail)
    if kind == Nodetype.ARRAY:
        sub, length = detail
        return [_default(sub) for _ in range(length)]
    return []


def serialize(msg: Any) -> bytes:
    """CDR bytes of a generated message (XCDR1, with the encapsulation header), as rosbag2 stores."""
    return bytes(msg.serialize(use_version_2=False))


def deserialize(data: bytes, msgtype: str) -> Any:
    """CDR bytes (as :func:`serialize` or a rosbag2 writes them) -> a generated message."""
    return msg_class(msgtype).deserialize(bytes(data))


@functools.cache
def type_hash(msgtype: str) -> str:
    """``RIHS01_<sha256>`` of the type (what Jazzy's rmw advertises in USER_DATA)."""
    return typestore().hash_rihs01(msgtype)


# ------------------------------------------------------------------------------------------------
# Conversions between ROS messages and the core's dataclasses


def time_msg(t: float) -> Any:
    """Seconds -> ``builtin_interfaces/msg/Time``."""
    sec = int(np.floor(t))
    return msg_class("builtin_interfaces/msg/Time")(
        sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999)
    )


def header_msg(stamp: float, frame_id: str = "") -> Any:
    return msg_class("std_msgs/msg/Header")(stamp=time_msg(stamp), frame_id=frame_id)


def joint_state_msg(
    names: Any, position: Any, velocity: Any = (), effort: Any = (), stamp: float = 0.0
) -> Any:
    """``sensor_msgs/JointState`` from names and arrays."""
    return msg_class("sensor_msgs/msg/JointState")(
        header=header_msg(stamp),
        name=[str(n) for n in names],
        position=[float(v) for v in position],
        velocity=[float(v) for v in velocity],
        effort=[float(v) for v in effort],
    )


def imu_msg(orientation_xyzw: Any, angular_velocity: Any, linear_acceleration: Any, stamp: float = 0.0, frame_id: str = "imu") -> Any:  # fmt: skip
    q = [float(v) for v in orientation_xyzw]
    w, a = [float(v) for v in angular_velocity], [float(v) for v in linear_acceleration]
    return new_msg(
        "sensor_msgs/msg/Imu",
        header=header_msg(stamp, frame_id),
        orientation=msg_class("geometry_msgs/msg/Quaternion")(x=q[0], y=q[1], z=q[2], w=q[3]),
        angular_velocity=msg_class("geometry_msgs/msg/Vector3")(x=w[0], y=w[1], z=w[2]),
        linear_acceleration=msg_class("geometry_msgs/msg/Vector3")(x=a[0], y=a[1], z=a[2]),
    )


def point_msg(point: Any, stamp: float = 0.0, frame_id: str = "world") -> Any:
    """``geometry_msgs/PointStamped``."""
    x, y, z = (float(v) for v in point)
    return msg_class("geometry_msgs/msg/PointStamped")(
        header=header_msg(stamp, frame_id),
        point=msg_class("geometry_msgs/msg/Point")(x=x, y=y, z=z),
    )


def _vector3(v: Any) -> Any:
    x, y, z = (float(a) for a in v)
    return msg_class("geometry_msgs/msg/Vector3")(x=x, y=y, z=z)


def twist_msg(linear: Any, angular: Any) -> Any:
    """``geometry_msgs/Twist`` (a velocity command, as ``teleop_twist_keyboard`` sends it)."""
    return msg_class("geometry_msgs/msg/Twist")(linear=_vector3(linear), angular=_vector3(angular))


def twist_stamped_msg(linear: Any, angular: Any, stamp: float = 0.0, frame_id: str = "base") -> Any:  # fmt: skip
    """``geometry_msgs/TwistStamped`` (the base's velocity in the base frame ``frame_id``)."""
    return msg_class("geometry_msgs/msg/TwistStamped")(
        header=header_msg(stamp, frame_id), twist=twist_msg(linear, angular)
    )


COMMAND_MSGTYPES = {
    "position": "std_msgs/msg/Float64MultiArray",
    "trajectory": "trajectory_msgs/msg/JointTrajectory",
}
"""ROS message type of each ``RobotConfig.command_type``."""


def command_msg(
    cmd: Command, command_type: str = "position", dt: float = 0.02, stamp: float = 0.0
) -> Any:
    """A controller :class:`Command` as ``Float64MultiArray`` (ros2_control forward position
    controller: plain data in its joints' order) or a one-point ``JointTrajectory`` reaching the
    positions ``dt`` seconds from now."""
    positions = [float(v) for v in cmd.positions]
    if command_type == "position":
        return new_msg("std_msgs/msg/Float64MultiArray", data=positions)
    if command_type == "trajectory":
        sec = int(dt)
        point = new_msg(
            "trajectory_msgs/msg/JointTrajectoryPoint",
            positions=positions,
            time_from_start=msg_class("builtin_interfaces/msg/Duration")(
                sec=sec, nanosec=int(round((dt - sec) * 1e9))
            ),
        )
        return new_msg(
            "trajectory_msgs/msg/JointTrajectory",
            header=header_msg(stamp),
            joint_names=list(cmd.names),
            points=[point],
        )
    raise ValueError(f"command_type: got {command_type!r}, expected position or trajectory")


def command_positions_from_msg(msg: Any, names: tuple[str, ...]) -> np.ndarray:
    """Joint position targets in ``names`` order from a ``Float64MultiArray`` (taken as already in
    that order) or a ``JointTrajectory`` (reordered by its ``joint_names``; last point).

    Raises:
        ValueError: wrong count of values, or a trajectory that misses one of ``names``.
    """
    if hasattr(msg, "data"):
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (len(names),):
            raise ValueError(
                f"Float64MultiArray: got {data.size} values, expected {len(names)} ({', '.join(names)})"
            )
        return data
    if not msg.points:
        raise ValueError("JointTrajectory without points")
    index = {n: i for i, n in enumerate(msg.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(
            f"JointTrajectory: joints {missing} missing from joint_names {list(msg.joint_names)}"
        )
    pos = msg.points[-1].positions
    return np.asarray([pos[index[n]] for n in names], dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# Node


QOS_KINDS = ("sensor", "reliable")
MAX_TAKES_PER_CALLBACK = 256
"""Samples one listener call takes at most (readers keep 5 or 10: never reached in practice)."""


def make_qos(kind: str = "reliable", depth: int | None = None) -> Any:
    """``sensor`` (best effort, keep last 5) or ``reliable`` (keep last 10); both volatile."""
    from cyclonedds.core import Policy, Qos

    if kind == "sensor":
        return Qos(
            Policy.Reliability.BestEffort,
            Policy.History.KeepLast(depth or 5),
            Policy.Durability.Volatile,
        )
    if kind == "reliable":
        from cyclonedds.util import duration

        return Qos(
            Policy.Reliability.Reliable(duration(milliseconds=100)),
            Policy.History.KeepLast(depth or 10),
            Policy.Durability.Volatile,
        )
    raise ValueError(f"qos: got {kind!r}, expected one of {', '.join(QOS_KINDS)}")


def _with_type_hash(qos: Any, msgtype: str) -> Any:
    from cyclonedds.core import Policy, Qos

    try:
        userdata = Policy.Userdata(f"typehash={type_hash(msgtype)};".encode())
    except Exception:  # noqa: BLE001 - the hash is informative; never block a topic on it
        return qos
    return Qos(*qos, userdata)


@dataclass
class Subscription:
    """A live subscription; ``count`` messages received so far."""

    topic: str
    msgtype: str
    reader: Any
    count: int = 0


@dataclass
class DdsNode:
    """One DDS participant with ROS 2-named publishers and subscriptions.

    Callbacks run on Cyclone DDS's listener thread: keep them short and thread-safe.

    Args:
        domain_id: DDS domain; ``$ROS_DOMAIN_ID`` or 0 when ``None``.
        local_only: keep discovery and traffic on the loopback interface.
    """

    domain_id: int | None = None
    local_only: bool = False
    on_error: Callable[[str], None] | None = None
    """Called with a one-line reason when a sample cannot be taken (malformed CDR) or a callback
    raises; ``None``: print the reason (at most once a second). Never lets the error reach
    Cyclone's listener thread."""
    errors: int = field(init=False, default=0)
    """Samples that could not be taken and callbacks that raised."""
    participant: Any = field(init=False, default=None)
    subscriptions: list[Subscription] = field(init=False, default_factory=list)
    _writers: list[Any] = field(init=False, default_factory=list)
    _topics: dict[str, Any] = field(init=False, default_factory=dict)
    _domain: Any = field(init=False, default=None)
    _last_error_print: float = field(init=False, default=-float("inf"))

    def __post_init__(self) -> None:
        from cyclonedds.domain import Domain, DomainParticipant

        if self.domain_id is None:
            self.domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
        if self.local_only:
            self._domain = Domain(self.domain_id, LOOPBACK_CONFIG)
        self.participant = DomainParticipant(self.domain_id)

    def _topic(self, topic: str, msgtype: str) -> Any:
        from cyclonedds.topic import Topic

        name = dds_topic_name(topic)
        if name not in self._topics:
            self._topics[name] = Topic(self.participant, name, msg_class(msgtype))
        return self._topics[name]

    def publisher(
        self, topic: str, msgtype: str, qos: str = "reliable", depth: int | None = None
    ) -> Callable[[Any], None]:
        """A function that publishes one message (a generated ``msg_class(msgtype)`` instance)."""
        from cyclonedds.pub import DataWriter

        writer = DataWriter(
            self.participant,
            self._topic(topic, msgtype),
            qos=_with_type_hash(make_qos(qos, depth), msgtype),
        )
        self._writers.append(writer)
        return writer.write

    def subscribe(
        self,
        topic: str,
        msgtype: str,
        callback: Callable[[Any, float], None],
        qos: str = "sensor",
        depth: int | None = None,
    ) -> Subscription:
        """Call ``callback(msg, recv_time)`` for each message (``recv_time``: ``time.monotonic()``
        when the listener took it).

        Samples are taken one at a time: one that does not deserialize (malformed CDR) is lost
        alone and reported to :attr:`on_error`, as is an exception from ``callback``."""
        from cyclonedds.core import DDSException, Listener
        from cyclonedds.sub import DataReader

        sub = Subscription(topic, msgtype, None)
        node = self

        class _Listener(Listener):
            def on_data_available(self, reader: Any) -> None:
                for _ in range(MAX_TAKES_PER_CALLBACK):
                    if reader is None or sub.reader is None:  # the node is closing
                        return
                    try:
                        samples = reader.take(N=1)
                    except DDSException:  # a reader deleted while closing
                        return
                    except Exception as e:  # noqa: BLE001 - a sample that does not deserialize
                        node._error(f"{topic}: cannot read a {msgtype} sample", e)
                        continue
                    if not samples:
                        return
                    msg = samples[0]
                    now = time.monotonic()
                    if getattr(msg, "__class__", None) is not cls:  # invalid samples (disposals)
                        continue
                    sub.count += 1
                    try:
                        callback(msg, now)
                    except Exception as e:  # noqa: BLE001 - never into Cyclone's thread
                        node._error(f"{topic} callback", e)

        cls = msg_class(msgtype)
        sub.reader = DataReader(
            self.participant,
            self._topic(topic, msgtype),
            qos=_with_type_hash(make_qos(qos, depth), msgtype),
            listener=_Listener(),
        )
        self.subscriptions.append(sub)
        return sub

    def _error(self, where: str, e: BaseException) -> None:
        self.errors += 1
        reason = " ".join(f"{where} raised {type(e).__name__}: {e}".split())[:240]
        try:
            if self.on_error is not None:
                self.on_error(reason)
                return
        except Exception as e2:  # noqa: BLE001 - the handler failed: print both
            reason += f" (and on_error raised {type(e2).__name__}: {e2})"
        now = time.monotonic()
        if now - self._last_error_print >= 1.0:
            self._last_error_print = now
            print(f"[dds] error ({self.errors} so far): {reason}", flush=True)

    def close(self) -> None:
        """Delete every entity of this node (readers stop calling back)."""
        readers = [s.reader for s in self.subscriptions]
        for sub in self.subscriptions:
            sub.reader = None  # a listener still running sees the node closing
        entities = readers + self._writers + list(self._topics.values())
        entities += [self.participant, self._domain]
        for entity in entities:  # cyclonedds keeps every entity alive in a registry: delete them
            if entity is not None:
                entity.__del__()
        self.subscriptions.clear()
        self._writers.clear()
        self._topics.clear()
        self.participant = None
        self._domain = None

    def __enter__(self) -> DdsNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# The deploy loop over DDS


@dataclass
class LoopStats:
    """What a control loop did: ticks, commands per state, latency and timing."""

    ticks: int = 0
    commands: int = 0
    states: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    """Per command: publish time - receive time of the newest joint state behind it."""
    tick_jitter_s: list[float] = field(default_factory=list)
    """Per tick: actual start time - scheduled start time."""
    missed_deadlines: int = 0
    """Ticks that finished after the next tick's scheduled start."""
    trips: list[str] = field(default_factory=list)
    final_state: str = ""
    errors: int = 0
    """Samples that could not be read, callbacks and publishes that raised (each a fault)."""


def _exc(where: str, e: BaseException) -> str:
    return " ".join(f"{where} raised {type(e).__name__}: {e}".split())[:240]


def _stop_on_sigint(stop: threading.Event) -> Callable[[], None]:
    """In the main thread, make Ctrl-C (SIGINT) set ``stop`` instead of raising
    ``KeyboardInterrupt`` wherever the loop happens to be (mid-tick, or holding the lock the
    subscription threads wait on, which then never let the node close: a deploy process once hung
    on SIGINT); returns what restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    return lambda: signal.signal(signal.SIGINT, previous)


def run_dds_controller(
    controller: Any,
    duration_s: float | None = None,
    domain_id: int | None = None,
    local_only: bool = False,
    on_command: Callable[[Command], None] | None = None,  # pyright: ignore[reportRedeclaration]
    stop: threading.Event | None = None,
    node: DdsNode | None = None,
    node_name: str = "rewardlab_deploy",
    recorder: Any = None,
) -> LoopStats:
    """Run a :class:`~rewardlab.deploy.controller.Controller` on DDS: subscribe to the robot
    config's topics, tick at the control rate, publish commands and the safety state.

    Nothing a peer sends ends the loop: a sample that does not deserialize, a callback, a
    publish or ``on_command`` that raises is reported to the controller
    (:meth:`~rewardlab.deploy.controller.Controller.fault`: HOLD while the policy runs) and
    counted in :attr:`LoopStats.errors`. The tick time is read under the controller's lock, so
    no sample the controller holds was received after it.

    Args:
        controller: the controller (its ``robot`` config names the topics and command type).
        duration_s: stop after this long; ``None``: until ``stop`` is set (or Ctrl-C).
        domain_id, local_only: see :class:`DdsNode` (ignored when ``node`` is given).
        on_command: called with each published command (recording, tests).
        stop: an event that ends the loop.
        node: an existing node to use (not closed at the end).
        node_name: ``/<node_name>/reset`` and ``/<node_name>/start`` (``std_msgs/Empty``,
            reliable) re-arm the controller after a trip and leave PASSIVE (as the rclpy node's
            ``~/reset`` and ``~/start``).
        recorder: a ``recording.BagRecorder``: records the robot's input topics and every
            command (action, observation, command, safety state).

    Returns:
        :class:`LoopStats` of the run.
    """
    robot = controller.robot
    topics = robot.topics
    lock = threading.Lock()
    own = node is None
    node = node or DdsNode(domain_id, local_only)
    stats = LoopStats()
    last_print = [-float("inf")]

    def report(reason: str) -> None:
        stats.errors += 1
        with lock:
            controller.fault(reason, time.monotonic())
        now = time.monotonic()
        if now - last_print[0] >= 1.0:
            last_print[0] = now
            print(f"[deploy] error ({stats.errors} so far): {reason}", flush=True)

    previous_on_error = node.on_error
    node.on_error = report
    stop = stop if stop is not None else threading.Event()
    restore_signals = _stop_on_sigint(stop)
    try:

        def locked(fn: Callable[..., None]) -> Callable[[Any, float], None]:
            def cb(msg: Any, recv: float) -> None:
                with lock:
                    fn(msg, recv)

            return cb

        node.subscribe(topics.joint_states, "sensor_msgs/msg/JointState", locked(lambda m, t: controller.on_joint_state(joint_state_from_msg(m, t))))  # fmt: skip
        if topics.imu:
            node.subscribe(topics.imu, "sensor_msgs/msg/Imu", locked(lambda m, t: controller.on_imu(imu_from_msg(m, t))))  # fmt: skip
        if topics.target:
            node.subscribe(topics.target, "geometry_msgs/msg/PointStamped", locked(lambda m, t: controller.on_target(point_from_msg(m, t))))  # fmt: skip
        if topics.cmd_vel:
            node.subscribe(topics.cmd_vel, "geometry_msgs/msg/Twist", locked(lambda m, t: controller.on_cmd_vel(twist_from_msg(m, t))))  # fmt: skip
        if topics.base_twist:
            node.subscribe(topics.base_twist, "geometry_msgs/msg/TwistStamped", locked(lambda m, t: controller.on_base_twist(twist_stamped_from_msg(m, t))))  # fmt: skip
        if topics.estop:
            node.subscribe(topics.estop, "std_msgs/msg/Bool", locked(lambda m, t: controller.on_estop(bool(m.data), t)), qos="reliable")  # fmt: skip
        if topics.heartbeat:
            node.subscribe(topics.heartbeat, "std_msgs/msg/Header", locked(lambda m, t: controller.on_heartbeat(t)))  # fmt: skip

        def on_reset(_msg: Any, _t: float) -> None:
            ok = controller.reset()
            print(f"[deploy] reset {'accepted' if ok else 'refused (e-stop engaged?)'}", flush=True)

        node.subscribe(
            f"/{node_name}/reset", "std_msgs/msg/Empty", locked(on_reset), qos="reliable"
        )
        node.subscribe(f"/{node_name}/start", "std_msgs/msg/Empty", locked(lambda m, t: controller.start()), qos="reliable")  # fmt: skip
        if recorder is not None:
            recorder.attach_dds(node, robot)
            inner = on_command

            def on_command(cmd: Command) -> None:
                recorder.record_command(cmd)
                if inner is not None:
                    inner(cmd)

        msgtype = COMMAND_MSGTYPES[robot.command_type]
        publish = node.publisher(topics.command, msgtype, qos="reliable")
        publish_state = node.publisher(topics.safety_state, "std_msgs/msg/String", qos="reliable") if topics.safety_state else None  # fmt: skip
        string_cls = msg_class("std_msgs/msg/String")

        dt = controller.dt
        t0 = time.monotonic()
        k = 0
        last_status = ""
        while True:
            scheduled = t0 + k * dt
            now = time.monotonic()
            if scheduled > now:
                stop.wait(scheduled - now)
            if stop.is_set() or (duration_s is not None and time.monotonic() - t0 >= duration_s):
                break
            with lock:
                now = time.monotonic()  # after every sample the controller holds was received
                cmd = controller.tick(now)  # never raises
                status = controller.status()
            stats.tick_jitter_s.append(now - scheduled)
            stats.ticks += 1
            if cmd is not None:
                try:
                    publish(command_msg(cmd, robot.command_type, dt, stamp=time.time()))
                except Exception as e:  # noqa: BLE001 - the loop goes on (and holds)
                    report(_exc(f"publishing on {topics.command}", e))
                sent = time.monotonic()
                stats.commands += 1
                stats.states[cmd.state] = stats.states.get(cmd.state, 0) + 1
                if cmd.obs_recv_time is not None and np.isfinite(cmd.obs_recv_time):
                    stats.latencies_s.append(sent - cmd.obs_recv_time)
                if on_command is not None:
                    try:
                        on_command(cmd)
                    except Exception as e:  # noqa: BLE001 - a consumer's failure is a fault
                        report(_exc("on_command", e))
            if publish_state is not None and (status != last_status or k % 10 == 0):
                try:
                    publish_state(string_cls(data=status))
                except Exception as e:  # noqa: BLE001 - informative topic
                    report(_exc(f"publishing on {topics.safety_state}", e))
                last_status = status
            k += 1
            if time.monotonic() > t0 + k * dt:
                stats.missed_deadlines += 1
                k = max(k, int((time.monotonic() - t0) / dt) + 1)  # skip missed ticks, keep phase
    finally:
        restore_signals()
        node.on_error = previous_on_error
        stats.trips = [
            f"{e.time:.3f} {e.kind.value} -> {e.state.value}: {e.reason}"
            for e in controller.safety.events
        ]
        stats.final_state = controller.state.value
        if own:
            node.close()
    return stats
