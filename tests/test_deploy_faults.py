"""Fault injection on the real transports (tier ``ros``): the rclpy deploy node and the DDS loop,
each in a private network namespace (tests/ros_harness.py: only ``lo``), driven by a scripted
rclpy robot (tests/ros_probe.py) that misbehaves on a timeline:

====== ========================================================================================
t (s)  what the robot / operator does                        what the deploy side must do
====== ========================================================================================
0-1    joint states at 250 Hz (a perfect servo), a target     RAMP, then RUN
1.5    60 malformed CDR JointStates (truncated, garbage,      nothing: the middleware drops them;
       a sequence claiming 2^31 elements)                     RUN goes on
2.0    a JointState with 3 names and 2 positions              HOLD ``malformed``
2.4    reset                                                  RAMP, RUN
3.8    a JointState naming ``shoulder`` twice (3.0 rad, over  HOLD ``malformed`` (no last-wins)
       its limit, then 1.0)
4.2    reset                                                  RAMP, RUN
5.5    a target the policy raises on                          HOLD ``fault: policy raised ...``
6.0    reset                                                  RAMP, RUN
7.5    a target on which the command consumer raises          HOLD ``fault: ... callback ...``
8.0    reset                                                  RAMP, RUN
9.5-10.5 joint states at 10 kHz (a flood)                     RUN, commands at the control rate
12.5   the joint states come from a second process only,      RUN
       large (512 kB, ~400 UDP fragments) JointStates, which
13.5   SIGKILLs itself in the middle of its writes            HOLD ``stale`` within the timeout
15.5   the first publisher is back; 16.0 reset                RAMP, RUN until the end (18.0)
====== ========================================================================================

Throughout: the loop never stops, no traceback, every command finite, inside the joint limits
and within the rate limit of the one before it.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ros_harness import REPO, RosNamespace, require_namespaces, ros_python  # noqa: E402

pytestmark = pytest.mark.ros

EXPORT = REPO / "tests" / "fixtures" / "deploy" / "arm_reach_export"
ARM = yaml.safe_load((REPO / "sim_configs" / "robots" / "arm.yaml").read_text())
NAMES = list(ARM["joint_names"])
LIMITS = np.asarray(ARM["position_limits"], dtype=np.float64)
CMD = ARM["topics"]["command"]
STATE = ARM["topics"]["safety_state"]
JS = ARM["topics"]["joint_states"]
STALE_TIMEOUT = 0.5  # wider than arm.yaml's 0.2: a loaded 2-core machine must not trip it here

DEPLOY = r"""
import json, sys, time
from rewardlab.deploy.controller import Controller
from rewardlab.deploy.policy import load_policy
from rewardlab.deploy.robot_config import load_robot_config

transport, robot, export, out = sys.argv[1:5]


class Flaky:
    # the exported policy, raising when the target's x is 0.777 (the probe sends one at t = 5.5)
    def __init__(self, policy):
        self._policy = policy

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def __call__(self, obs):
        if abs(obs[6] - 0.777) < 1e-9:
            raise RuntimeError("injected policy failure")
        return self._policy(obs)


js_times, cmd_times = [], []  # time.monotonic() of each joint state taken, command published


def on_command(cmd):  # a command consumer that raises on the target x = 0.888 (t = 7.5)
    cmd_times.append(time.monotonic())
    if cmd.observation is not None and abs(cmd.observation[6] - 0.888) < 1e-9:
        raise RuntimeError("injected callback failure")


ctrl = Controller(Flaky(load_policy(export)), load_robot_config(robot))
take_joint_state = ctrl.on_joint_state


def counted(sample):
    js_times.append(time.monotonic())
    take_joint_state(sample)


ctrl.on_joint_state = counted
res = {"transport": transport}
if transport == "dds":
    from rewardlab.deploy.transport_dds import run_dds_controller

    stats = run_dds_controller(ctrl, on_command=on_command)  # until SIGINT
    res.update(errors=stats.errors, ticks=stats.ticks, missed=stats.missed_deadlines)
else:
    from rewardlab.deploy.ros_node import DeployNode

    node = DeployNode(ctrl, record=on_command, log_every_s=0)
    node.spin()  # until SIGINT
    res.update(errors=node.errors, ticks=ctrl.ticks)
    node.close()
res["events"] = [[e.time, e.kind.value, e.state.value, e.reason] for e in ctrl.safety.events]
res["rejected"] = ctrl.rejected
res["state"] = ctrl.state.value
res["js_times"], res["cmd_times"] = js_times, cmd_times
with open(out, "w") as f:
    json.dump(res, f)
print("deploy: clean exit", flush=True)
"""

KILLER = r"""
# The robot's joint states from a second publisher (cyclonedds): large messages (the arm's three
# joints following the commands, and a 512 kB frame_id: about 400 UDP fragments each), written
# back to back from t = 12.0; at t = 13.5 a thread SIGKILLs the process, most likely while the
# writer is sending fragments (serializing a message takes a few ms, sending it most of the time).
import os, signal, sys, threading, time
from rewardlab.deploy import transport_dds as t

names_cmd = sys.argv[1].split(",")
cmd_topic, js_topic, t0_file = sys.argv[2], sys.argv[3], sys.argv[4]
t0, q = [None], [None]

def on_cmd(msg, recv):
    q[0] = list(msg.data)

with t.DdsNode() as node:
    node.subscribe(cmd_topic, "std_msgs/msg/Float64MultiArray", on_cmd, qos="reliable")
    pub = node.publisher(js_topic, "sensor_msgs/msg/JointState", qos="sensor")
    while not os.path.exists(t0_file) or q[0] is None:  # the probe's t = 0
        time.sleep(0.01)
    t0[0] = float(open(t0_file).read())
    while time.monotonic() < t0[0] + 12.0:
        time.sleep(0.01)
    threading.Timer(t0[0] + 13.5 - time.monotonic(), lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    print("killer: writing", flush=True)
    padding = "x" * (512 << 10)
    while True:
        msg = t.joint_state_msg(names_cmd, q[0], [0.0] * len(names_cmd), stamp=time.time())
        msg.header.frame_id = padding
        pub(msg)
"""


def plan(duration: float) -> dict[str, Any]:
    rev = NAMES[::-1]
    pose = dict(zip(NAMES, ARM["default_pose"], strict=True))
    js_type = "sensor_msgs/msg/JointState"
    reset = {"topic": "/rewardlab_deploy/reset", "type": "std_msgs/msg/Empty", "fields": {}}
    target = "geometry_msgs/msg/PointStamped"

    def point(x: float) -> dict[str, Any]:
        return {"header": {"frame_id": "world"}, "point": {"x": x, "y": 0.1, "z": 0.45}}

    return {
        "start_topic": CMD,
        "start_type": "std_msgs/msg/Float64MultiArray",
        "start_timeout": 90,
        "duration": duration,
        "record": {CMD: "std_msgs/msg/Float64MultiArray", STATE: "std_msgs/msg/String"},
        "fake_robot": {
            "topic": JS,
            "names": rev,
            "positions": [pose[n] for n in rev],
            "rate_hz": 250,
            "follow": {"topic": CMD, "names": NAMES},
            "floods": [[9.5, 10.5, 10000]],
            "blackouts": [[12.5, 15.5]],
        },
        "periodic": [
            {
                "topic": ARM["topics"]["target"],
                "type": target,
                "fields": point(0.25),
                "rate_hz": 20,
                "blackouts": [[5.4, 5.8], [7.4, 7.8]],  # the fault targets stay a while
            }
        ],
        "publish": [
            *(
                {
                    "at": 1.5,
                    "topic": JS,
                    "type": js_type,
                    "raw": kind,
                    "repeat": 20,
                    "fields": {"name": NAMES, "position": [0.0, 0.4, 1.0]},
                }
                for kind in ("truncated", "garbage", "huge_seq")
            ),  # fmt: skip
            {
                "at": 2.0,
                "topic": JS,
                "type": js_type,
                "fields": {"name": NAMES, "position": [0.0, 0.4]},
            },  # fmt: skip
            {"at": 2.4, **reset},
            {
                "at": 3.8,
                "topic": JS,
                "type": js_type,
                "fields": {"name": [*NAMES, "shoulder"], "position": [0.0, 3.0, 1.0, 1.0]},
            },  # fmt: skip
            {"at": 4.2, **reset},
            {"at": 5.5, "topic": ARM["topics"]["target"], "type": target, "fields": point(0.777)},
            {"at": 6.0, **reset},
            {"at": 7.5, "topic": ARM["topics"]["target"], "type": target, "fields": point(0.888)},
            {"at": 8.0, **reset},
            {"at": 16.0, **reset},
        ],
    }


def first(seq: list[tuple[float, str]], prefix: str, after: float) -> float:
    return next((t for t, s in seq if s.startswith(prefix) and t >= after), float("nan"))


@pytest.fixture(scope="module")
def py() -> str:
    require_namespaces()
    return ros_python()


@pytest.mark.parametrize("transport", ["rclpy", "dds"])
def test_transport_survives_malformed_input_floods_exceptions_and_a_dying_publisher(
    py: str, transport: str, tmp_path: Path
) -> None:
    robot = tmp_path / "arm.yaml"
    robot.write_text(yaml.safe_dump({**ARM, "name": "arm", "stale_timeout_s": STALE_TIMEOUT}))
    out, plan_file, rec = tmp_path / "deploy.json", tmp_path / "plan.json", tmp_path / "probe.json"
    duration = 18.0
    plan_file.write_text(json.dumps({**plan(duration), "t0_file": str(tmp_path / "t0")}))
    with RosNamespace(log_dir=tmp_path / "logs") as ns:
        deploy = ns.popen([py, "-c", DEPLOY, transport, str(robot), str(EXPORT), str(out)], "deploy")  # fmt: skip
        t0_file = tmp_path / "t0"
        killer = ns.popen([py, "-c", KILLER, ",".join(NAMES), CMD, JS, str(t0_file)], "killer")
        probe = ns.run([py, str(REPO / "tests" / "ros_probe.py"), str(plan_file), str(rec)], 90 + duration + 30)  # fmt: skip
        alive = deploy.poll() is None
        deploy.send_signal(signal.SIGINT)
        rc = deploy.wait(timeout=30)
        killer_rc = killer.wait(timeout=10)
        logs = ns.logs(tail=6000)
        deploy_log = ns.log("deploy")
    assert alive and rc == 0, logs
    assert "Traceback" not in deploy_log, deploy_log[-6000:]
    assert killer_rc == -signal.SIGKILL, logs  # it died by its own SIGKILL, while writing
    res = json.loads(out.read_text())
    probe_out = json.loads(rec.read_text())
    records = probe_out["records"]
    # trips on the probe's time line (one clock: time.monotonic() on one machine); the deploy
    # process ran on after the probe stopped the robot, where it tripped stale (not counted)
    events = [(e[0] - probe_out["t0"], e[1], e[3]) for e in res["events"]]
    events = [e for e in events if e[0] < duration]
    seq = [(r["t"], r["data"]) for r in records[STATE]]
    cmds = np.array([r["data"] for r in records[CMD]])
    times = np.array([r["t"] for r in records[CMD]])

    # every command finite, inside the limits, within the rate limit of the previous one
    assert np.all(np.isfinite(cmds))
    assert np.all(cmds >= LIMITS[:, 0] - 1e-9) and np.all(cmds <= LIMITS[:, 1] + 1e-9)
    steps = np.abs(np.diff(cmds, axis=0)).max(axis=1)
    assert steps.max() <= ARM["rate_limit"] + 1e-6, (steps.max(), times[np.argmax(steps) + 1])

    # the trips, in order, each with its reason, and nothing else
    kinds = [e[1] for e in events]
    assert kinds == ["malformed", "malformed", "fault", "fault", "stale"], (events, seq, logs)
    reasons = [e[2] for e in events]
    assert reasons[0] == "JointState: 3 names but 2 position values"
    assert reasons[1] == "JointState: duplicate joint name 'shoulder'"
    assert reasons[2] == "policy raised RuntimeError: injected policy failure"
    assert "raised RuntimeError: injected callback failure" in reasons[3]
    assert reasons[4].startswith("joint state of") and f"(> {STALE_TIMEOUT} s)" in reasons[4]
    assert res["errors"] >= 1  # the consumer's exception, counted by the transport

    # the timeline on the safety-state topic
    assert not any(s != "RUN" for t, s in seq if 1.2 <= t < 2.0), seq  # raw CDR dropped
    assert 2.0 <= first(seq, "HOLD malformed: JointState: 3 names", 0) <= 2.4, seq
    assert 3.8 <= first(seq, "HOLD malformed: JointState: duplicate", 2.4) <= 4.2, seq
    assert not any(s != "RUN" for t, s in seq if 9.2 <= t < 12.5), seq  # the flood
    # the flood as the deploy process took it (the middleware drops what it cannot take: sensor
    # QoS keeps the last 5): joint states and commands per 0.25 s
    js, sent = np.asarray(res["js_times"]), np.asarray(res["cmd_times"])
    bins = np.arange(js.min(), js.max() + 0.25, 0.25)
    taken, _ = np.histogram(js, bins)
    flooded = np.flatnonzero(taken >= 2 * np.median(taken))  # over twice the robot's 250 Hz
    assert flooded.size >= 1, (taken.max() * 4, probe.stdout[-1000:])
    commands, _ = np.histogram(sent, bins)
    # the loop kept its rate (a quarter of it at worst on this shared 2-core machine), and no gap
    # between commands came near the watchdog's timeout
    assert commands[flooded].sum() >= 0.25 * 50 * 0.25 * flooded.size, (taken[flooded], commands[flooded])  # fmt: skip
    during = sent[(sent >= bins[flooded[0]]) & (sent < bins[flooded[-1] + 1])]
    assert np.diff(during).max() < 0.5 * STALE_TIMEOUT, np.diff(during).max()
    assert 5.5 <= first(seq, "HOLD fault: policy raised", 4.2) <= 6.0, seq
    assert 7.5 <= first(seq, "HOLD fault:", 6.0) <= 8.0, seq
    t_stale = first(seq, "HOLD stale: joint state", 8.0)
    assert 13.5 <= t_stale <= 13.5 + STALE_TIMEOUT + 0.5, seq
    # HOLD kept publishing while no joint state came (the loop did not stop with the publisher)
    assert np.sum((times > t_stale) & (times < 15.5)) >= 0.5 * 50 * (15.5 - t_stale), times
    assert first(seq, "RUN", 16.0) <= 17.5, seq
