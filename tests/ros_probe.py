"""A scripted rclpy participant for the ROS 2 integration tests (run it inside a RosNamespace).

``python tests/ros_probe.py PLAN.json OUT.json``. The plan (all keys optional)::

    {
      "start_topic": "/cmd", "start_type": "std_msgs/msg/Float64MultiArray", "start_timeout": 60,
          # t = 0 is the first message on start_topic (default: the probe's start)
      "t0_file": "/tmp/t0",                            # t = 0 (time.monotonic()) written there
      "duration": 5.0,                                 # seconds after t = 0
      "record": {"/cmd": "std_msgs/msg/Float64MultiArray", "/state": "std_msgs/msg/String"},
      "fake_robot": {                                  # publish sensor_msgs/JointState
          "topic": "/joint_states", "names": ["c", "b", "a"], "positions": [0.3, 0.2, 0.1],
          "rate_hz": 250, "blackouts": [[2.0, 2.5]],   # [t0, t1) relative to t = 0: publish nothing
          "follow": {"topic": "/cmd", "names": ["a", "b", "c"]},  # perfect servo: q = command
          "floods": [[6.0, 7.0, 10000]],                # [t0, t1, rate_hz]: publish faster
      },
      "publish": [{"at": 3.0, "topic": "/estop", "type": "std_msgs/msg/Bool",
                   "fields": {"data": true}, "repeat": 3},
                  {"at": 4.0, "topic": "/joint_states", "type": "sensor_msgs/msg/JointState",
                   "raw": "truncated", "repeat": 20}],   # malformed CDR: truncated, garbage,
                                                        # huge_seq (see RAW_FAULTS)
      "periodic": [{"topic": "/target", "type": "geometry_msgs/msg/PointStamped",
                    "fields": {"point": {"x": 0.2, "y": 0.1, "z": 0.5}}, "rate_hz": 10,
                    "blackouts": [[6.9, 7.3]]}]
                                                       # from the probe's start, until the end
    }

Writes ``{"t0": ..., "records": {topic: [{"t": s, ...fields}]}}``: times in seconds relative to
t = 0 on ``time.monotonic()``. Records keep the fields the tests read (data, name/position,
point). Subscriptions use sensor-data QoS (best effort) for JointState and reliable otherwise.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from typing import Any


def raw_fault(kind: str, good: bytes) -> bytes:
    """CDR bytes that no deserializer accepts, made from a valid serialized message ``good``."""
    import struct

    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "garbage":
        return b"\x00\x01\x00\x00" + bytes(range(7, 200))
    if kind == "huge_seq":  # a header, then a sequence claiming 2^31 - 1 elements
        return (
            good[:4]
            + b"\x00" * 8
            + struct.pack("<I", 1)
            + b"\x00" * 4
            + struct.pack("<I", 2**31 - 1)
        )
    raise ValueError(f"raw fault: got {kind!r}, expected truncated, garbage or huge_seq")


def _msg_class(type_name: str) -> Any:
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _build(cls: Any, fields: dict[str, Any]) -> Any:
    """A message from nested plain fields (``{"point": {"x": 1.0}}``)."""
    msg = cls()
    for key, value in fields.items():
        if isinstance(value, dict):
            value = _build(type(getattr(msg, key)), value)
        setattr(msg, key, value)
    return msg


def _fields(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("data", "name", "position", "velocity"):
        if hasattr(msg, key):
            v = getattr(msg, key)
            out[key] = v if isinstance(v, bool | str | int | float) else list(v)
    if hasattr(msg, "point"):
        out["point"] = [msg.point.x, msg.point.y, msg.point.z]
    if hasattr(msg, "joint_names"):
        out["joint_names"] = list(msg.joint_names)
        out["data"] = list(msg.points[0].positions) if msg.points else []
    return out


def main(plan_path: str, out_path: str) -> int:
    from rewardlab.deploy.dds_env import apply_dds_environment

    apply_dds_environment()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import JointState

    with open(plan_path) as f:
        plan = json.load(f)
    rclpy.init()
    node = rclpy.create_node("rewardlab_test_probe")
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    sensor = qos_profile_sensor_data
    t0 = [None if plan.get("start_topic") else time.monotonic()]
    records: dict[str, list[dict[str, Any]]] = {}

    def recorder(topic: str) -> Any:
        def cb(msg: Any) -> None:
            now = time.monotonic()
            if t0[0] is None and topic == plan.get("start_topic"):
                t0[0] = now
            if t0[0] is not None:
                records[topic].append({"t": now - t0[0], **_fields(msg)})

        return cb

    record = dict(plan.get("record", {}))
    if plan.get("start_topic"):
        record.setdefault(plan["start_topic"], plan["start_type"])
    for topic, type_name in record.items():
        records[topic] = []
        cls = _msg_class(type_name)
        node.create_subscription(
            cls, topic, recorder(topic), sensor if cls is JointState else reliable
        )

    robot = plan.get("fake_robot")
    q = None
    if robot:
        js_pub = node.create_publisher(JointState, robot.get("topic", "/joint_states"), sensor)
        q = {n: float(p) for n, p in zip(robot["names"], robot["positions"], strict=True)}
        follow = robot.get("follow")
        if follow:
            cmd_cls = _msg_class(follow.get("type", "std_msgs/msg/Float64MultiArray"))

            def on_cmd(msg: Any) -> None:
                values = msg.data if hasattr(msg, "data") else msg.points[0].positions
                for n, v in zip(follow["names"], values, strict=True):
                    q[n] = float(v)

            node.create_subscription(cmd_cls, follow["topic"], on_cmd, reliable)
        blackouts = [tuple(b) for b in robot.get("blackouts", [])]

        def publish_js() -> None:
            if t0[0] is not None:
                t = time.monotonic() - t0[0]
                if any(a <= t < b for a, b in blackouts):
                    return
            msg = JointState()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.name = list(robot["names"])
            msg.position = [q[n] for n in robot["names"]]
            msg.velocity = [0.0] * len(robot["names"])
            js_pub.publish(msg)

        node.create_timer(1.0 / float(robot.get("rate_hz", 250)), publish_js)
        floods = [tuple(f) for f in robot.get("floods", [])]
        flood_sent = [0] * len(floods)

    events = sorted(plan.get("publish", []), key=lambda e: e["at"])
    pubs = {}
    for e in events:
        if e["topic"] not in pubs:
            pubs[e["topic"]] = node.create_publisher(_msg_class(e["type"]), e["topic"], reliable)

    def quiet(spans: list[tuple[float, float]]) -> bool:
        """Inside one of ``spans`` ([t0, t1) relative to t = 0)."""
        return t0[0] is not None and any(a <= time.monotonic() - t0[0] < b for a, b in spans)

    for spec in plan.get("periodic", []):
        pub = node.create_publisher(_msg_class(spec["type"]), spec["topic"], reliable)
        msg = _build(_msg_class(spec["type"]), spec.get("fields", {}))
        spans = [tuple(b) for b in spec.get("blackouts", [])]
        node.create_timer(
            1.0 / float(spec.get("rate_hz", 10)),
            lambda p=pub, m=msg, q=spans: None if quiet(q) else p.publish(m),
        )

    deadline = time.monotonic() + float(plan.get("start_timeout", 60.0))
    while t0[0] is None:
        rclpy.spin_once(node, timeout_sec=0.01)
        if time.monotonic() > deadline:
            print(f"probe: nothing on {plan['start_topic']} in {plan.get('start_timeout', 60)} s")
            node.destroy_node()
            rclpy.shutdown()
            return 3
    if plan.get("t0_file"):  # other processes of a test share the time line
        with open(plan["t0_file"] + ".tmp", "w") as f:
            f.write(repr(t0[0]))
        os.replace(plan["t0_file"] + ".tmp", plan["t0_file"])
    end = t0[0] + float(plan.get("duration", 5.0))
    pending = list(events)
    while time.monotonic() < end:
        t = time.monotonic() - t0[0]
        while pending and pending[0]["at"] <= t:
            e = pending.pop(0)
            msg = _build(_msg_class(e["type"]), e.get("fields", {}))
            if e.get("raw"):
                from rclpy.serialization import serialize_message

                msg = raw_fault(e["raw"], serialize_message(msg))
            for _ in range(int(e.get("repeat", 1))):
                pubs[e["topic"]].publish(msg)
            print(f"probe: t={t:.3f} published {e['topic']} {e.get('raw') or e.get('fields')}", flush=True)  # fmt: skip
        busy = False
        if robot:
            for i, (a, b, rate) in enumerate(floods):
                if a <= t < b:  # publish every message due since the flood began
                    busy = True
                    due = int((t - a) * rate)
                    while flood_sent[i] < due:
                        publish_js()
                        flood_sent[i] += 1
        rclpy.spin_once(node, timeout_sec=0.0 if busy else 0.002)
    if robot and floods:
        print(f"probe: flood messages sent {flood_sent}", flush=True)
    with open(out_path, "w") as f:
        json.dump({"t0": t0[0], "records": records}, f)
    counts = {k: len(v) for k, v in records.items()}
    print(f"probe: recorded {counts}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if not math.isnan(end) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
