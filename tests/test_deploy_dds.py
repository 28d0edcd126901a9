"""The pure-PyPI DDS transport: golden CDR bytes against rosbags, ROS 2 naming and conversions
(unit), and DDS traffic between participants in a private network namespace (ros tier).

The ros-tier tests re-run themselves inside ``unshare -n`` (only ``lo``, multicast routed to it):
nothing they send can leave the machine.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rewardlab.deploy import transport_dds as dds
from rewardlab.deploy.messages import Command
from rewardlab.deploy.netns import in_netns, netns_available, run_in_netns

REPO = Path(__file__).resolve().parent.parent
EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "arm_reach_export"


def sample_messages() -> dict[str, object]:
    """One filled message of each type the deploy path uses (ours, generated)."""
    frame = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    return {
        "sensor_msgs/msg/JointState": dds.joint_state_msg(
            ["elbow", "base_yaw"], [1.5, -0.25], [0.1, 0.2], [], stamp=12.5
        ),
        "sensor_msgs/msg/Imu": dds.imu_msg(
            [0.1, 0.2, 0.3, 0.927], [0.01, -0.02, 0.03], [0.0, 0.0, 9.81], stamp=3.25
        ),
        "geometry_msgs/msg/PointStamped": dds.point_msg([0.3, -0.1, 0.45], stamp=7.0),
        "std_msgs/msg/Float64MultiArray": dds.command_msg(
            Command(("a", "b", "c"), np.array([0.5, -1.0, 2.0]), "RUN")
        ),
        "trajectory_msgs/msg/JointTrajectory": dds.command_msg(
            Command(("a", "b"), np.array([0.5, -1.0]), "RUN"), "trajectory", dt=0.02, stamp=1.0
        ),  # fmt: skip
        "sensor_msgs/msg/Image": dds.new_msg(
            "sensor_msgs/msg/Image",
            header=dds.header_msg(1.0, "cam"),
            height=4,
            width=5,
            encoding="rgb8",
            step=15,
            data=frame.tobytes(),
        ),  # fmt: skip
        "sensor_msgs/msg/CompressedImage": dds.new_msg(
            "sensor_msgs/msg/CompressedImage", format="jpeg", data=b"\xff\xd8\xff\x00"
        ),  # fmt: skip
        "std_msgs/msg/Bool": dds.new_msg("std_msgs/msg/Bool", data=True),
        "std_msgs/msg/String": dds.new_msg(
            "std_msgs/msg/String", data="HOLD stale: joint state 0.2 s old"
        ),
        "std_msgs/msg/Header": dds.header_msg(99.000000001, "operator"),
    }


# ------------------------------------------------------------------------------------------------
# Unit: wire format


@pytest.mark.unit
@pytest.mark.parametrize("msgtype", list(sample_messages()))
def test_golden_cdr_bytes_equal_rosbags(msgtype):
    """Our CDR decodes with rosbags' deserializer, and rosbags re-serializes it to the same bytes."""
    store = dds.typestore()
    ours = dds.serialize(sample_messages()[msgtype])
    assert ours[:4] == b"\x00\x01\x00\x00"  # XCDR1 little-endian encapsulation, as rmw_cyclonedds
    decoded = store.deserialize_cdr(ours, msgtype)
    assert bytes(store.serialize_cdr(decoded, msgtype)) == ours
    back = dds.deserialize(bytes(store.serialize_cdr(decoded, msgtype)), msgtype)
    assert dds.serialize(back) == ours


@pytest.mark.unit
def test_golden_field_values():
    store = dds.typestore()
    m = store.deserialize_cdr(
        dds.serialize(sample_messages()["sensor_msgs/msg/JointState"]), "sensor_msgs/msg/JointState"
    )
    assert (
        m.name == ["elbow", "base_yaw"]
        and m.position.tolist() == [1.5, -0.25]
        and m.effort.size == 0
    )
    assert (m.header.stamp.sec, m.header.stamp.nanosec) == (12, 500_000_000)
    img = store.deserialize_cdr(
        dds.serialize(sample_messages()["sensor_msgs/msg/Image"]), "sensor_msgs/msg/Image"
    )
    assert img.data.tolist() == list(range(60)) and img.encoding == "rgb8"
    traj = store.deserialize_cdr(dds.serialize(sample_messages()["trajectory_msgs/msg/JointTrajectory"]), "trajectory_msgs/msg/JointTrajectory")  # fmt: skip
    assert traj.joint_names == ["a", "b"] and traj.points[0].time_from_start.nanosec == 20_000_000
    # a rosbags-built message decodes with ours
    ros = store.types["sensor_msgs/msg/JointState"](
        header=store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="x"),
        name=["j"], position=np.array([3.0]), velocity=np.array([]), effort=np.array([]),
    )  # fmt: skip
    sample = dds.joint_state_from_msg(dds.deserialize(bytes(store.serialize_cdr(ros, "sensor_msgs/msg/JointState")), "sensor_msgs/msg/JointState"), recv_time=5.0)  # fmt: skip
    assert (
        sample.names == ("j",)
        and sample.position.tolist() == [3.0]
        and sample.stamp == pytest.approx(1.000000002)
    )


@pytest.mark.unit
def test_ros2_names_and_generated_types():
    assert dds.dds_topic_name("/joint_states") == "rt/joint_states"
    assert (
        dds.dds_topic_name("/forward_position_controller/commands")
        == "rt/forward_position_controller/commands"
    )
    assert dds.dds_type_name("sensor_msgs/msg/JointState") == "sensor_msgs::msg::dds_::JointState_"
    cls = dds.msg_class("sensor_msgs/msg/JointState")
    assert cls.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    assert dds.msg_class("sensor_msgs/msg/JointState") is cls  # generated once
    assert dds.type_hash("std_msgs/msg/String").startswith("RIHS01_")
    with pytest.raises(ValueError, match="expected an absolute ROS 2 name"):
        dds.dds_topic_name("joint_states")
    with pytest.raises(KeyError, match="not in rosbags' ROS2_JAZZY typestore"):
        dds.msg_class("my_msgs/msg/Nope")


@pytest.mark.unit
def test_command_conversions():
    names = ("base_yaw", "shoulder", "elbow")
    flat = dds.command_msg(Command(names, np.array([0.1, 0.2, 0.3]), "RUN"))
    np.testing.assert_allclose(dds.command_positions_from_msg(flat, names), [0.1, 0.2, 0.3])
    traj = dds.command_msg(
        Command(("elbow", "base_yaw", "shoulder"), np.array([0.3, 0.1, 0.2]), "RUN"), "trajectory"
    )
    np.testing.assert_allclose(
        dds.command_positions_from_msg(traj, names), [0.1, 0.2, 0.3]
    )  # by name
    with pytest.raises(ValueError, match="got 2 values, expected 3"):
        dds.command_positions_from_msg(
            dds.command_msg(Command(("a", "b"), np.zeros(2), "RUN")), names
        )
    t = dds.time_msg(1.999999999)
    assert (t.sec, t.nanosec) == (1, 999_999_999) and dds.time_from_msg(dds.time_msg(5.25)) == 5.25
    with pytest.raises(ValueError, match="command_type: got 'effort'"):
        dds.command_msg(Command(names, np.zeros(3), "RUN"), "effort")


# ------------------------------------------------------------------------------------------------
# ros tier: real DDS traffic, in a private network namespace


def private_netns(test):
    """Run the test in a fresh network namespace: outside one, re-run this test there."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if in_netns():
            return test(*args, **kwargs)
        if not netns_available():
            pytest.skip("cannot create a network namespace here (needs root or user namespaces)")
        node = f"{Path(__file__).resolve()}::{test.__name__}"
        r = run_in_netns([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", node], timeout=180, cwd=str(REPO))  # fmt: skip
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
        assert "1 passed" in r.stdout, r.stdout[-2000:]

    return wrapper


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.mark.ros
@private_netns
def test_dds_round_trip_and_qos_compatibility():
    a, b = dds.DdsNode(), dds.DdsNode()
    try:
        got, strict = [], []
        b.subscribe("/joint_states", "sensor_msgs/msg/JointState", lambda m, t: got.append(dds.joint_state_from_msg(m, t)))  # fmt: skip
        pub = a.publisher("/joint_states", "sensor_msgs/msg/JointState", qos="reliable")
        # ROS 2 QoS rule: a reliable reader never matches a best-effort writer
        b.subscribe(
            "/chatter", "std_msgs/msg/String", lambda m, t: strict.append(m.data), qos="reliable"
        )
        loose = a.publisher("/chatter", "std_msgs/msg/String", qos="sensor")
        fine = a.publisher("/chatter", "std_msgs/msg/String", qos="reliable")
        time.sleep(1.0)  # discovery
        for k in range(20):
            pub(
                dds.joint_state_msg(
                    ["shoulder", "base_yaw"], [0.1 * k, -0.1 * k], [1.0, 2.0], stamp=time.time()
                )
            )
            loose(dds.new_msg("std_msgs/msg/String", data=f"loose {k}"))
            fine(dds.new_msg("std_msgs/msg/String", data=f"fine {k}"))
            time.sleep(0.005)
        assert wait_for(lambda: len(got) == 20 and len(strict) == 20)
        assert [s.names for s in got] == [("shoulder", "base_yaw")] * 20
        np.testing.assert_allclose([s.position[0] for s in got], [0.1 * k for k in range(20)])
        now = time.monotonic()
        assert all(now - 5 < s.recv_time <= now for s in got)
        assert strict == [f"fine {k}" for k in range(20)]  # none of the best-effort writer's
    finally:
        a.close()
        b.close()


@pytest.mark.ros
@private_netns
def test_image_over_dds_decodes_to_frame():
    from rewardlab.deploy.camera import LatestFrame, encode_image_fields

    a, b = dds.DdsNode(), dds.DdsNode()
    try:
        latest = LatestFrame()
        b.subscribe("/camera/image_raw", "sensor_msgs/msg/Image", latest.update)
        pub = a.publisher("/camera/image_raw", "sensor_msgs/msg/Image", qos="sensor")
        frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        time.sleep(1.0)
        for _ in range(3):
            pub(dds.new_msg("sensor_msgs/msg/Image", header=dds.header_msg(time.time(), "cam"), **encode_image_fields(frame, "bgr8")))  # fmt: skip
            time.sleep(0.05)
        assert wait_for(lambda: latest.count >= 1)
        np.testing.assert_array_equal(latest.frame, frame)
    finally:
        a.close()
        b.close()


@pytest.mark.ros
@private_netns
def test_watchdog_holds_on_a_half_second_blackout_over_dds(tmp_path):
    """Sim robot process stops publishing joint states for 0.5 s: the DDS deploy loop holds at the
    first tick past the stale timeout and stays holding (latched) until a reset on
    /rewardlab_deploy/reset; the whole run is recorded and the bag replays."""
    from rewardlab.deploy.controller import Controller
    from rewardlab.deploy.policy import load_policy
    from rewardlab.deploy.recording import BagRecorder, bag_states
    from rewardlab.deploy.robot_config import load_robot_config

    robot = load_robot_config("arm")
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rewardlab.deploy.sim_robot",
            "--robot",
            "arm",
            "--duration-s",
            "11",
            "--quiet",
            "--blackout",
            "5:5.5",
        ],  # fmt: skip
        cwd=str(REPO),
    )
    operator = dds.DdsNode()
    reset = operator.publisher("/rewardlab_deploy/reset", "std_msgs/msg/Empty")
    log = []

    def on_command(c):
        log.append((c.time, c.state, c.obs_recv_time))
        if (
            c.state == "HOLD"
            and c.time > log[0][0] + 6.0
            and not getattr(on_command, "sent", False)
        ):
            on_command.sent = True
            reset(dds.new_msg("std_msgs/msg/Empty"))  # the operator re-arms

    try:
        ctrl = Controller(load_policy(EXPORT), robot)
        with BagRecorder(tmp_path / "bag") as rec:
            stats = dds.run_dds_controller(
                ctrl, duration_s=10.0, on_command=on_command, recorder=rec
            )
    finally:
        operator.close()
        sim.wait(timeout=30)
    assert [e.kind.value for e in ctrl.safety.events] == ["stale"], stats.trips
    trip = ctrl.safety.events[0]
    timeout = robot.stale_timeout_s
    last_js = max(r for t, s, r in log if t < trip.time)  # newest joint state before the trip
    before = [t for t, s, r in log if t < trip.time]
    # the trip came at the first tick past the timeout, well inside the 0.5 s blackout
    assert before[-1] - last_js <= timeout < trip.time - last_js < 0.5
    after = [(t, s) for t, s, _ in log if t >= trip.time]
    states = [s for _, s in after]
    held = after[: states.index("RAMP")]  # HOLD until the reset, though joint states came back
    assert {s for _, s in held} == {"HOLD"}
    assert held[-1][0] - trip.time > 0.6  # still holding after the 0.5 s blackout ended
    assert states[-1] == "RUN"
    assert stats.states["RUN"] > 100
    recorded = bag_states(tmp_path / "bag", robot)  # actions of RAMP/RUN ticks with their inputs
    assert len(recorded.times) > 200 and "distance" in recorded.state


@pytest.mark.ros
@private_netns
def test_joint_trajectory_commands_drive_the_sim_robot():
    """command_type: trajectory end to end: one-point JointTrajectory messages from the DDS deploy
    loop are received and applied by the sim robot (reordered by joint name)."""
    import threading

    from rewardlab.deploy.controller import Controller
    from rewardlab.deploy.policy import load_policy
    from rewardlab.deploy.robot_config import load_robot_config
    from rewardlab.deploy.sim_robot import run_sim_robot

    robot = load_robot_config("arm", {"command_type": "trajectory"})
    out = {}
    stop = threading.Event()
    sim = threading.Thread(target=lambda: out.update(stats=run_sim_robot(robot, stop=stop, progress=False)))  # fmt: skip
    sim.start()
    try:
        ctrl = Controller(load_policy(EXPORT), robot)
        stats = dds.run_dds_controller(ctrl, duration_s=5.0)
    finally:
        stop.set()
        sim.join(timeout=30)
    assert stats.trips == [] and stats.states.get("RUN", 0) > 50
    assert out["stats"].commands >= stats.commands - 5  # (the last few may be in flight)
