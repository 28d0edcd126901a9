"""Control-loop latency and jitter of the deploy node over loopback, at 50 Hz and 500 Hz.

Latency = a joint state received -> the command based on it published, measured inside the
controlling process (``time.monotonic()``; the newest joint state behind each command). Jitter =
deviation of the tick intervals from the control period; a missed deadline is a tick interval
over 1.5 periods (a tick skipped). Target: p99 latency under 2 ms at 50 Hz.

Every configuration runs in one fresh network namespace (``lo`` only): a cyclonedds process
publishes ``/joint_states`` at 1 kHz (and the reaching target), the process under test subscribes
and publishes ``/forward_position_controller/commands``:

- ``rclpy_js``: ``rewardlab deploy`` with its defaults (rclpy, the arm_reach policy through the
  full safety layer, ticking on the first joint state after a tick falls due, rclpy's C++
  EventsExecutor, ``SCHED_FIFO`` 50 for the control and DDS threads, as ros2_control's
  controller manager);
- ``rclpy_js_normal``: the same with normal scheduling (``rt_priority=null``);
- ``rclpy_js_before``: the defaults before issue 13 (``executor=single``: rclpy's Python
  SingleThreadedExecutor, normal scheduling), for a same-run comparison;
- ``rclpy_timer``: the defaults, ticking on an rclpy wall timer (latency includes the age of
  the newest joint state, up to 1 ms here);
- ``dds`` / ``dds_normal``: ``rewardlab deploy transport=dds`` (cyclonedds, no rclpy;
  sleep-scheduled ticks), with the default ``SCHED_FIFO`` 50 / with normal scheduling;
- peer ``echo``: a bare rclpy node that republishes each joint state's positions as a command in
  its subscription callback -- no policy, no safety layer: the floor rclpy itself sets.

    python benchmarks/control_latency.py --seconds 20 --policy runs/arm_reach/export
    (trains a small arm_reach policy first when --policy is not given)
    python benchmarks/control_latency.py --kinds rclpy_js_normal --rates 500 --profile
    (py-spy samples the deploy process: where its CPU time goes, by function)

The joint-state publisher runs with the scheduling of the process under test (``SCHED_FIFO`` 50
with the defaults, as a robot's joint_state_broadcaster in ros2_control's controller manager;
normal scheduling with ``rt_priority=null`` and for the echo): a starved publisher would show as
stale data in the latency of timer ticks, not as the node's cost.

The machine is shared: each configuration records the load average when it starts, and the
table puts our latency next to the peer's from the same run. Writes
benchmarks/results/control_latency.{json,md} (and control_latency.profile.txt).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
ROS_PY = REPO / ".venv-ros" / "bin" / "python"
PROFILES: list[str] = []
"""py-spy summaries of this run (``--profile``), written to control_latency.profile.txt."""

PUBLISHER = r"""
import sys, time
from rewardlab.deploy import transport_dds as t
rate, seconds, rt = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
if rt:  # as a robot's joint_state_broadcaster, in ros2_control's SCHED_FIFO 50 thread
    import os
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt))
names = ["base_yaw", "shoulder", "elbow"]
with t.DdsNode() as node:
    js = node.publisher("/joint_states", "sensor_msgs/msg/JointState", qos="sensor")
    target = node.publisher("/target", "geometry_msgs/msg/PointStamped", qos="reliable")
    t0 = time.monotonic(); k = 0
    while time.monotonic() - t0 < seconds:
        due = t0 + k / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # no busy wait: the machine has 2 cores
        js(t.joint_state_msg(names, [0.0, 0.4, 1.0], [0.0, 0.0, 0.0], stamp=time.time()))
        if k % int(rate / 10) == 0:
            target(t.point_msg([0.25, 0.1, 0.45], stamp=time.time()))
        k += 1
"""

ECHO = r"""
import json, sys, time
from rewardlab.deploy.dds_env import apply_dds_environment
apply_dds_environment()
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
seconds, out = float(sys.argv[1]), sys.argv[2]
rclpy.init()
node = rclpy.create_node("echo")
pub = node.create_publisher(Float64MultiArray, "/forward_position_controller/commands",
                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
lat, ticks = [], []
def cb(msg):
    t = time.monotonic()
    pub.publish(Float64MultiArray(data=list(msg.position)))
    lat.append(time.monotonic() - t); ticks.append(t)
node.create_subscription(JointState, "/joint_states", cb, qos_profile_sensor_data)
t_end = time.monotonic() + seconds
while time.monotonic() < t_end:
    rclpy.spin_once(node, timeout_sec=0.1)
json.dump({"latencies": lat, "tick_times": ticks}, open(out, "w"))
"""


def summarize(latencies: list[float], intervals: list[float] | None, period: float) -> dict:
    lat = np.asarray(latencies) * 1e3
    out: dict[str, Any] = {"commands": int(lat.size)}
    if lat.size:
        out.update(
            latency_median_ms=float(np.median(lat)),
            latency_p99_ms=float(np.percentile(lat, 99)),
            latency_max_ms=float(lat.max()),
        )
    if intervals is not None and len(intervals):
        iv = np.asarray(intervals)
        dev = np.abs(iv - period) * 1e3
        out.update(
            jitter_median_ms=float(np.median(dev)),
            jitter_p99_ms=float(np.percentile(dev, 99)),
            jitter_max_ms=float(dev.max()),
            missed_deadlines=int(np.sum(iv > 1.5 * period)),
            ticks=int(iv.size + 1),
            rate_hz=float(1.0 / np.mean(iv)),
        )
    return out


KINDS: dict[str, list[str]] = {
    "rclpy_js": ["transport=rclpy", "trigger=joint_state"],
    "rclpy_js_normal": ["transport=rclpy", "trigger=joint_state", "rt_priority=null"],
    "rclpy_js_before": ["transport=rclpy", "trigger=joint_state", "rt_priority=null", "executor=single"],
    "rclpy_timer": ["transport=rclpy", "trigger=timer"],
    "dds": ["transport=dds"],
    "dds_normal": ["transport=dds", "rt_priority=null"],
}  # fmt: skip
"""Each configuration under test: ``rewardlab deploy`` words (the peer ``echo`` is separate)."""


def profile_summary(raw: Path, top: int = 30) -> str:
    """py-spy's collapsed stacks -> the functions holding the most samples (inclusive), as text."""
    total, incl = 0, collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        seen = set()
        for frame in stack.split(";"):
            key = re.sub(r" \((?:[^)]*/)?([^/)]*):\d+\)", r" (\1)", frame)
            if key not in seen:
                seen.add(key)
                incl[key] += int(n)
    lines = [f"{total} samples of the busy thread(s); share of samples in each function:"]
    lines += [f"{100 * v / max(total, 1):5.1f}%  {k[:140]}" for k, v in incl.most_common(top)]
    return "\n".join(lines)


def run_config(
    ns: Any, kind: str, rate: float, seconds: float, policy: str, tmp: Path, profile: bool = False
) -> dict:
    """Start the publisher and the process under test in the namespace ``ns``; their stats."""
    py = str(ROS_PY if ROS_PY.exists() else sys.executable)
    stats = tmp / f"{kind}_{int(rate)}.json"
    warmup = 6.0  # process start, policy load, discovery, 1 s soft start
    rt = "0" if kind == "echo" or "rt_priority=null" in KINDS.get(kind, []) else "50"
    pub = ns.popen([py, "-c", PUBLISHER, "1000", str(seconds + warmup + 4), rt], f"pub_{kind}_{rate}")  # fmt: skip
    robot = tmp / "arm_bench.yaml"
    if kind == "echo":
        proc = ns.popen([py, "-c", ECHO, str(seconds + warmup), str(stats)], f"{kind}_{rate}")
    else:
        proc = ns.popen(
            [py, "-m", "rewardlab.deploy.cli", f"policy={policy}", f"robot={robot}",
             f"control_rate_hz={rate}", f"duration={seconds + warmup}", f"stats_out={stats}",
             "log_every_s=0", *KINDS[kind]],
            f"{kind}_{rate}",
        )  # fmt: skip
    spy = shutil.which("py-spy") if profile and kind != "echo" else None
    if spy:  # sample the measured window (after the start-up and soft start)
        time.sleep(warmup - 1.0)
        raw = tmp / f"profile_{kind}_{int(rate)}.txt"
        subprocess.run(
            [spy, "record", "-p", str(proc.pid), "-d", str(int(seconds)), "-r", "250", "-f",
             "raw", "-o", str(raw), "--nonblocking"],
            capture_output=True, timeout=seconds + 60,
        )  # fmt: skip
        if raw.exists():
            PROFILES.append(f"## {LABELS[kind]} at {rate:g} Hz (py-spy --nonblocking, {seconds:g} s)\n" + profile_summary(raw) + "\n")  # fmt: skip
    proc.wait(timeout=seconds + warmup + 120)
    pub.wait(timeout=60)
    if not stats.exists():
        raise RuntimeError(f"{kind} at {rate} Hz wrote no stats:\n{ns.logs()}")
    data = json.loads(stats.read_text())
    period = 1.0 / rate
    if kind.startswith("dds"):
        lat = data["latencies_s"]
        skip = int(warmup * rate) // 2
        jit = np.asarray(data["tick_jitter_s"][skip:])
        res = summarize(lat[len(lat) // 4 :], None, period)  # drop the start-up quarter
        dev = np.abs(jit) * 1e3
        res.update(
            jitter_median_ms=float(np.median(dev)),
            jitter_p99_ms=float(np.percentile(dev, 99)),
            jitter_max_ms=float(dev.max()),
            missed_deadlines=int(data["missed_deadlines"]),
            ticks=int(data["ticks"]),
            rate_hz=float(data["ticks"] / (seconds + warmup)),
            note="jitter: tick start - scheduled start",
        )
        return res
    ticks = np.asarray(data["tick_times"])
    lat = np.asarray(data["latencies"])
    if kind == "echo":
        keep = ticks > ticks[-1] - seconds
        return summarize(list(lat[keep]), None, period) | {
            "note": "one command per joint state (1 kHz)"
        }
    states = np.asarray(data["states"])
    triggers = np.asarray(data.get("triggers") or ["timer"] * len(ticks))
    t_start = ticks[0] + (warmup - 4.0)
    keep = (ticks >= t_start) & (states == "RUN")
    run_ticks = ticks[keep]
    res = summarize(list(lat[keep]), list(np.diff(run_ticks)), period)
    reaction = lat[keep & (triggers == "joint_state")] * 1e3
    res["timer_ticks"] = float(1.0 - reaction.size / max(int(keep.sum()), 1))
    if reaction.size:
        res.update(
            reaction_median_ms=float(np.median(reaction)),
            reaction_p99_ms=float(np.percentile(reaction, 99)),
        )
    return res


def inner(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import yaml
    from ros_harness import RosNamespace

    tmp = Path(tempfile.mkdtemp(prefix="control_latency_"))
    robot = yaml.safe_load((REPO / "sim_configs" / "robots" / "arm.yaml").read_text())
    robot.update(name="arm", stale_timeout_s=0.5)  # a loaded machine must not trip the watchdog
    (tmp / "arm_bench.yaml").write_text(yaml.safe_dump(robot))
    results: list[dict] = []
    for rate in args.rates:
        for kind in args.kinds:
            with RosNamespace(log_dir=tmp / f"logs_{kind}_{int(rate)}") as ns:
                t0, load = time.monotonic(), os.getloadavg()[0]
                res = run_config(ns, kind, rate, args.seconds, args.policy, tmp, args.profile)
            res.update(kind=kind, rate_hz_target=rate, wall_s=time.monotonic() - t0, load1=load)
            print(json.dumps(res), flush=True)
            results.append(res)
    write_results(results, args)


LABELS = {
    "rclpy_js": "rclpy node, defaults (trigger=joint_state, EventsExecutor, SCHED_FIFO 50)",
    "rclpy_js_normal": "rclpy node, defaults but rt_priority=null (normal scheduling)",
    "rclpy_js_before": "rclpy node, defaults before issue 13 (executor=single, normal scheduling)",
    "rclpy_timer": "rclpy node, trigger=timer (other defaults)",
    "dds": "dds loop, transport=dds (SCHED_FIFO 50)",
    "dds_normal": "dds loop, transport=dds, rt_priority=null",
    "echo": "peer: bare rclpy echo (no policy, no safety)",
}


def write_results(results: list[dict], args: argparse.Namespace) -> None:
    import platform

    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}".strip(
            ", "
        ),
        "python": platform.python_version(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),  # fmt: skip
        "seconds": args.seconds,
        "loadavg": os.getloadavg(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "control_latency.json").write_text(
        json.dumps({"info": info, "results": results}, indent=1)
    )
    echo = {r["rate_hz_target"]: r for r in results if r["kind"] == "echo"}

    def f(x: Any, d: int = 2) -> str:
        return "-" if x is None else f"{x:.{d}f}" if isinstance(x, float) else str(x)

    lines = [
        "# Control-loop latency and jitter over loopback",
        "",
        f"`python benchmarks/control_latency.py --seconds {args.seconds}` at git `{info['git']}`, "
        f"{info['machine']}; at the end: `{info['uptime']}` (a shared 2-core machine with other "
        "jobs running: tails are inflated by them; `load` is the 1-minute load average when each "
        "configuration started).",
        "",
        "Latency: receive time of the newest joint state behind a command -> the command "
        "published, in the controlling process, over every command in RUN (a tick that runs on "
        "a timer adds the age of that joint state: a publisher that stalls shows here). "
        "Reaction: the same over the ticks a joint state's arrival ran (trigger=joint_state); "
        "timer ticks: the share of the others. Jitter: |tick interval - period| (dds loop: tick "
        "start - scheduled start). Missed: tick intervals over 1.5 periods. Joint states at "
        "1 kHz from a cyclonedds publisher (SCHED_FIFO 50 where the node under test is); arm_reach policy (ONNX) through the full safety "
        "layer. The echo's latency is its callback's publish time only.",
        "",
        "| rate | process | load | commands | latency median ms | p99 ms | max ms | reaction p99 ms | timer ticks | / echo median | jitter p99 ms | missed | achieved Hz |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        peer = echo.get(r["rate_hz_target"])
        ratio = (
            (r.get("latency_median_ms", 0) / peer["latency_median_ms"])
            if peer and r["kind"] != "echo"
            else None
        )
        lines.append(
            f"| {r['rate_hz_target']:g} Hz | {LABELS[r['kind']]} | {r.get('load1', 0):.1f} | {r.get('commands')} | "
            f"{f(r.get('latency_median_ms'), 3)} | {f(r.get('latency_p99_ms'), 3)} | "
            f"{f(r.get('latency_max_ms'), 2)} | {f(r.get('reaction_p99_ms'), 3)} | "
            f"{'-' if r.get('timer_ticks') is None else format(r['timer_ticks'], '.0%')} | "
            f"{f(ratio, 1) if ratio else '-'} | "
            f"{f(r.get('jitter_p99_ms'))} | {r.get('missed_deadlines', '-')} | {f(r.get('rate_hz'), 1)} |"
        )
    (RESULTS / "control_latency.md").write_text("\n".join(lines) + "\n")
    if PROFILES:
        head = f"# py-spy profiles of benchmarks/control_latency.py at git {info['git']}\n\n"
        (RESULTS / "control_latency.profile.txt").write_text(head + "\n".join(PROFILES))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per configuration")
    p.add_argument("--rates", type=float, nargs="+", default=[50.0, 500.0])
    p.add_argument("--kinds", nargs="+", default=list(LABELS)[-1:] + list(LABELS)[:-1], choices=list(LABELS))  # fmt: skip
    p.add_argument("--profile", action="store_true", help="sample each deploy process with py-spy")
    p.add_argument(
        "--policy", default=None, help="export folder (default: train arm_reach briefly)"
    )
    args = p.parse_args()
    if args.policy is None:
        run_dir = Path(tempfile.mkdtemp(prefix="latency_policy_"))
        print(f"training a small arm_reach policy into {run_dir} ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "rewardlab.cli", "train", "task=arm_reach", f"run_dir={run_dir}",
             "total_steps=50000", "eval.video=false"],
            check=True, cwd=REPO, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        args.policy = str(run_dir / "export")
    inner(args)


if __name__ == "__main__":
    main()
