"""Command-line commands of the deploy part (added to ``rewardlab`` by ``rewardlab.cli``).

::

    rewardlab sim-robot robot=arm                                   # terminal 1: the MuJoCo arm
    rewardlab deploy policy=runs/arm_reach/export robot=arm         # terminal 2: the policy
    rewardlab deploy policy=... robot=my_robot.yaml transport=dds   # without ROS (cyclonedds)
    ros2 run rewardlab rewardlab-deploy policy:=... robot:=arm      # console script (see below)

Settings are ``key=value`` words, validated into the frozen dataclasses below (an unknown key,
a wrong type or a bad value is one line naming the key and what was expected, exit status 2).
``rewardlab-deploy`` (the console script ``ros2 run`` starts) takes the same words and also
``--ros-args -p policy:=DIR -p robot:=arm ...`` (ROS parameters named like the keys).

``transport=rclpy`` needs rclpy: a sourced ROS 2, or ``.venv-ros`` (``make install-ros``); when
rclpy does not import here and ``.venv-ros`` exists next to the package, the command re-runs
itself with that interpreter. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SOURCE = "command line"
TRANSPORTS = ("rclpy", "dds")
REPO = Path(__file__).resolve().parent.parent


class ArgsError(ValueError):
    """A bad ``key=value`` word: ``"command line: <key>: <problem>"``."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{SOURCE}: {key}: {problem}" if key else f"{SOURCE}: {problem}")


@dataclass(frozen=True)
class DeployArgs:
    """``rewardlab deploy``: run an exported policy on a robot (or the sim robot) over ROS 2."""

    policy: str = ""
    """Export folder of the policy (``<run_dir>/export``: policy.onnx/.pt + policy.json); required."""
    robot: str = "arm"
    """Robot config: a name under ``sim_configs/robots/`` or a YAML path."""
    transport: str = "rclpy"
    """``rclpy`` (a ROS 2 node; needs rclpy) or ``dds`` (cyclonedds speaking the ROS 2 wire format)."""
    trigger: str = "joint_state"
    """``joint_state``: tick on the first joint state after a tick falls due (lowest latency);
    ``timer``: tick on a timer. Either way a timer keeps the watchdog running (rclpy only)."""
    backend: str = "auto"
    """Policy runtime: ``auto`` (ONNX if onnxruntime imports, else TorchScript), ``onnx``, ``torch``."""
    control_rate_hz: float | None = None
    """Override the control rate (Hz); null: the robot config's, else the policy sidecar's."""
    duration: float | None = None
    """Stop after this many seconds; null: run until Ctrl-C."""
    node_name: str = "rewardlab_deploy"
    """ROS node name."""
    stats_out: str | None = None
    """Write loop timing (latency, tick intervals, safety events) to this JSON file on exit."""
    log_every_s: float = 5.0
    """Seconds between progress lines (state, rate, latency); 0: only state changes."""
    rt_priority: int | None = 50
    """Run the control loop (and the DDS threads it starts) with real-time scheduling,
    ``SCHED_FIFO`` at this priority (1-99), as ros2_control's controller manager does (50). Needs
    root, CAP_SYS_NICE or an ``rtprio`` limit; when refused the node says so and runs with
    normal scheduling. null: normal scheduling."""
    executor: str = "auto"
    """rclpy executor: ``events`` (rclpy's C++ EventsExecutor), ``single`` (the Python
    SingleThreadedExecutor) or ``auto`` (events where rclpy has it)."""
    record: str | None = None
    """Record the run as a rosbag2 (MCAP) in this folder: the robot's inputs and every tick's
    action, observation, command and safety state (score it later with ``rewardlab replay``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        if not self.policy:
            raise ValueError("policy: required (policy=runs/<run>/export)")
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"transport: got {self.transport!r}, expected one of {', '.join(TRANSPORTS)}"
            )
        if self.trigger not in ("joint_state", "timer"):
            raise ValueError(f"trigger: got {self.trigger!r}, expected joint_state or timer")
        if self.backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend: got {self.backend!r}, expected auto, onnx or torch")
        if self.control_rate_hz is not None and not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz: got {self.control_rate_hz!r}, expected > 0")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration: got {self.duration!r}, expected > 0 or null")
        if self.log_every_s < 0:
            raise ValueError(f"log_every_s: got {self.log_every_s!r}, expected >= 0")
        if self.rt_priority is not None and not 1 <= self.rt_priority <= 99:
            raise ValueError(f"rt_priority: got {self.rt_priority!r}, expected 1-99 or null")
        if self.executor not in ("auto", "events", "single"):
            raise ValueError(f"executor: got {self.executor!r}, expected auto, events or single")


@dataclass(frozen=True)
class SimRobotArgs:
    """``rewardlab sim-robot``: the MuJoCo model of a robot, speaking its ROS 2 topics (cyclonedds)."""

    robot: str = "arm"
    """Robot config: a name under ``sim_configs/robots/`` or a YAML path (its ``sim`` section)."""
    duration: float | None = None
    """Stop after this many seconds; null: run until Ctrl-C."""
    seed: int = 0
    """Seed of the targets and the reset noise."""
    latency_s: float = 0.0
    """Domain gap: delay (s) of every published sensor message."""
    noise_pos: float = 0.0
    """Domain gap: std of Gaussian noise on published joint positions (rad)."""
    noise_vel: float = 0.0
    """Domain gap: std of Gaussian noise on published joint velocities (rad/s)."""
    motor_delay_s: float = 0.0
    """Domain gap: delay (s) before a command reaches the servos."""
    episode_log: str | None = None
    """Append one JSON line per episode to this file (reaching: target, final distance, success;
    locomotion: mean velocity tracking errors, displacement, fall, success)."""
    camera: bool = False
    """Publish rendered camera images on the robot config's ``topics.image``."""
    reset_on_target: bool = True
    """Reset the arm near its home pose with each new target (an arm_reach episode)."""
    episodes_on_request: bool = False
    """New episodes (target, arm reset) only when the ``ros2`` env requests one on the robot
    config's ``topics.episode_request``, never on the clock (``sim.target_period_s``); false:
    the robot config's ``sim.episodes_on_request``."""
    local_only: bool = False
    """DDS discovery and traffic on loopback only (use it outside a network namespace)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        for key in ("latency_s", "noise_pos", "noise_vel", "motor_delay_s"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: got {getattr(self, key)!r}, expected >= 0")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration: got {self.duration!r}, expected > 0 or null")


# -------------------------------------------------------------------------------------------------
# key=value words -> frozen dataclass


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " or null"
    return {bool: "true or false", float: "a number", int: "an integer", str: "a string"}.get(
        tp, str(tp)
    )


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ArgsError:
                continue
    elif (
        tp is bool
        and isinstance(value, bool)
        or tp is int
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        return value
    elif tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif tp is str and isinstance(value, str):
        return value
    raise ArgsError(key, f"got {value!r} ({type(value).__name__}), expected {_describe(tp)}")


def parse_words(words: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}`` (``key:=value``, ROS style, also works)."""
    out: dict[str, str] = {}
    for word in words:
        key, sep, text = word.partition("=")
        key = key.strip().removesuffix(":")
        if not sep or not key:
            raise ArgsError(word, "expected key=value (e.g. robot=arm)")
        out[key] = text
    return out


def _value(text: str, tp: Any) -> Any:
    """A word's value: strings stay as typed (a path like ``1e3``), others read as YAML scalars."""
    if text.strip() in ("", "null", "~", "None"):
        return None
    optional_str = typing.get_origin(tp) in (
        typing.Union,
        types.UnionType,
    ) and str in typing.get_args(tp)
    if tp is str or optional_str:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def build_args(cls: type, words: dict[str, str]) -> Any:
    """Build the frozen dataclass ``cls`` from ``key -> text`` words, checking keys, types and
    ``validate()``.

    Raises:
        ArgsError: unknown key (with the closest known one), wrong type, or a bad value.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, text in words.items():
        if k not in names:
            close = difflib.get_close_matches(k, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ArgsError(k, f"unknown key; {hint}allowed: {', '.join(names)}")
        kwargs[k] = _convert(_value(text, hints[k]), hints[k], k)
    obj = cls(**kwargs)
    try:
        obj.validate()
    except ValueError as e:
        key, _, problem = str(e).partition(": ")
        raise ArgsError(key, problem) from None
    return obj


def _schema(cls: type) -> str:
    lines = []
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        lines.append(
            f"  {f.name + '=' + str(default):<30} ({_describe(hints[f.name])}) {docs.get(f.name, '')}"
        )
    return "\n".join(lines)


def _field_docs(cls: type) -> dict[str, str]:
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    out = {}
    for a, b in zip(body, body[1:], strict=False):
        if (
            isinstance(a, ast.AnnAssign)
            and isinstance(a.target, ast.Name)
            and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)
        ):
            out[a.target.id] = " ".join(str(b.value.value).split())
    return out


# -------------------------------------------------------------------------------------------------
# Commands


def _rclpy_available() -> bool:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


def _reexec_in_ros_venv(argv: Sequence[str]) -> None:
    """Re-run ``rewardlab-deploy argv`` with ``.venv-ros``'s python, or raise a clear error."""
    ros_python = REPO / ".venv-ros" / "bin" / "python"
    if ros_python.exists() and os.environ.get("_REWARDLAB_DEPLOY_REEXEC") != "1":
        os.environ["_REWARDLAB_DEPLOY_REEXEC"] = "1"
        print(f"[deploy] rclpy is not importable here; re-running with {ros_python}", flush=True)
        os.execv(str(ros_python), [str(ros_python), "-m", "rewardlab.deploy.cli", *argv])
    raise ArgsError(
        "transport",
        "rclpy is not importable: source a ROS 2 installation, or run `make install-ros` and use "
        ".venv-ros/bin/python (or transport=dds, which needs only cyclonedds)",
    )


def run_deploy(args: DeployArgs, ros_argv: Sequence[str] = ()) -> int:
    """Load the policy and robot config, build the controller and run it over ``args.transport``."""
    from rewardlab.deploy.controller import Controller
    from rewardlab.deploy.policy import load_policy
    from rewardlab.deploy.robot_config import load_robot_config

    overrides = {"control_rate_hz": args.control_rate_hz} if args.control_rate_hz else None
    robot = load_robot_config(args.robot, overrides)
    policy = load_policy(args.policy, backend=args.backend)
    ctrl = Controller(policy, robot)
    print(
        f"[deploy] policy {args.policy} ({policy.backend}, obs {policy.obs_dim}, action "
        f"{policy.action_dim}) on robot {robot.name!r} at {ctrl.control_rate_hz:g} Hz over "
        f"{args.transport}; commands -> {robot.topics.command} ({robot.command_type})",
        flush=True,
    )
    if args.rt_priority is not None:
        # before any DDS thread exists: the threads rclpy / cyclonedds start inherit the policy
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
            print(f"[deploy] real-time scheduling: SCHED_FIFO {args.rt_priority}", flush=True)
        except (PermissionError, OSError) as e:
            print(f"[deploy] warning: SCHED_FIFO {args.rt_priority} refused ({e}); normal scheduling", flush=True)  # fmt: skip
    recorder = None
    if args.record:
        from rewardlab.deploy.recording import BagRecorder

        recorder = BagRecorder(args.record)
        print(f"[deploy] recording to {args.record}", flush=True)
    try:
        return _run_transport(args, ctrl, robot, recorder, ros_argv)
    finally:
        if recorder is not None:
            recorder.close()


def _freeze_gc() -> None:
    """Collect, then move every object alive now (modules, the policy, rclpy, the node) out of
    the cyclic GC's reach (``gc.freeze``): without it a full collection scanned them all and
    paused the control loop for 10-30 ms (measured with ``gc.callbacks``); ticks now only pay
    for the young objects they make. This is a process of its own, so nothing else is frozen."""
    import gc

    gc.collect()
    gc.freeze()


def _run_transport(
    args: DeployArgs, ctrl: Any, robot: Any, recorder: Any, ros_argv: Sequence[str]
) -> int:
    if args.transport == "dds":
        from rewardlab.deploy import transport_dds

        _freeze_gc()
        stats = transport_dds.run_dds_controller(
            ctrl, duration_s=args.duration, node_name=args.node_name, recorder=recorder
        )
        if args.stats_out:
            Path(args.stats_out).write_text(json.dumps(dataclasses.asdict(stats)))
        print(
            f"[deploy] stopped: {ctrl.status()} | {stats.commands} commands, states {stats.states}",
            flush=True,
        )
        return 0

    import rclpy

    from rewardlab.deploy.ros_node import DeployNode

    rclpy.init(args=["rewardlab-deploy", *ros_argv] if ros_argv else None)
    node = DeployNode(
        ctrl,
        node_name=args.node_name,
        trigger=args.trigger,
        executor=args.executor,
        parameters={
            "policy": str(args.policy),
            "robot": str(args.robot),
            "joint_names": list(robot.joint_names),
            "control_rate_hz": float(ctrl.control_rate_hz),
            "command_type": robot.command_type,
            "command_topic": robot.topics.command,
        },
        log=lambda s: print(s, flush=True),
        log_every_s=args.log_every_s,
        recorder=recorder,
    )
    try:
        _freeze_gc()
        node.spin(duration=args.duration)
    finally:
        if args.stats_out:
            node.write_stats(args.stats_out)
            print(f"[deploy] loop stats -> {args.stats_out}", flush=True)
        print(f"[deploy] stopped: {ctrl.status()} | {node.stats.summary()}", flush=True)
        node.close()
    return 0


def _split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``words... --ros-args ...``. Our keys given as ROS parameters (``-p key:=value``, or
    in a ``--params-file`` as ``launch_ros`` writes them) become ``key=value`` words."""
    argv = list(argv)
    if "--ros-args" not in argv:
        return argv, []
    i = argv.index("--ros-args")
    words, ros = argv[:i], argv[i:]
    keys = {f.name for f in dataclasses.fields(DeployArgs)}
    for j, tok in enumerate(ros[:-1]):
        if tok in ("-p", "--param"):
            name, sep, value = ros[j + 1].partition(":=")
            if sep and name in keys:
                words.append(f"{name}={value}")
        elif tok == "--params-file":
            try:
                data = yaml.safe_load(Path(ros[j + 1]).read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                raise ArgsError("--params-file", f"cannot read {ros[j + 1]}: {e}") from None
            for entry in data.values() if isinstance(data, dict) else ():
                params = entry.get("ros__parameters", {}) if isinstance(entry, dict) else {}
                words += [f"{k}={v}" for k, v in params.items() if k in keys]
    return words, ros


def deploy_main(argv: Sequence[str] | None = None) -> int:
    """Console script ``rewardlab-deploy`` (what ``ros2 run rewardlab rewardlab-deploy`` runs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(
            f"usage: rewardlab-deploy key=value ... [--ros-args ...]\n\nkeys:\n{_schema(DeployArgs)}"
        )
        return 0
    words, ros_argv = _split_ros_args(argv)
    try:
        args = build_args(DeployArgs, parse_words(words))
        if args.transport == "rclpy" and not _rclpy_available():
            _reexec_in_ros_venv(argv)
        return run_deploy(args, ros_argv)
    except KeyboardInterrupt:
        return 130
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"rewardlab-deploy: error: {e}", file=sys.stderr)
        return 2


def _cmd_deploy(ns: argparse.Namespace) -> int:
    words, ros_argv = _split_ros_args(ns.overrides)
    args = build_args(DeployArgs, parse_words(words))
    if args.transport == "rclpy" and not _rclpy_available():
        _reexec_in_ros_venv(ns.overrides)
    return run_deploy(args, ros_argv)


def _cmd_sim_robot(ns: argparse.Namespace) -> int:
    args = build_args(SimRobotArgs, parse_words(ns.overrides))
    from rewardlab.deploy import sim_robot

    argv = ["--robot", args.robot, "--seed", str(args.seed)]
    flags = {"duration": "--duration-s", "latency_s": "--latency-s", "noise_pos": "--noise-pos",
             "noise_vel": "--noise-vel", "motor_delay_s": "--motor-delay-s",
             "episode_log": "--episode-log"}  # fmt: skip
    for key, flag in flags.items():
        value = getattr(args, key)
        if value not in (None, 0.0):
            argv += [flag, str(value)]
    argv += ["--camera"] if args.camera else []
    argv += [] if args.reset_on_target else ["--no-reset"]
    argv += ["--episodes-on-request"] if args.episodes_on_request else []
    argv += ["--local-only"] if args.local_only else []
    return int(sim_robot.main(argv) or 0)


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add ``deploy`` and ``sim-robot`` to the ``rewardlab`` command line (imports nothing heavy)."""
    for name, cls, func, help_, example in (
        ("deploy", DeployArgs, _cmd_deploy, "run an exported policy on a robot over ROS 2",
         "rewardlab deploy policy=runs/arm_reach/export robot=arm"),
        ("sim-robot", SimRobotArgs, _cmd_sim_robot, "simulate a robot that speaks its ROS 2 topics",
         "rewardlab sim-robot robot=arm"),
    ):  # fmt: skip
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{cls.__doc__}\n\nexample: {example}",
            epilog=f"keys:\n{_schema(cls)}",
            formatter_class=formatter_class,
        )
        p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. robot=arm")
        p.set_defaults(func=func)


if __name__ == "__main__":
    sys.exit(deploy_main())
