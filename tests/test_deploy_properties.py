"""Property-based tests of the deploy safety layer (hypothesis): random message sequences,
timings and policy outputs against the controller, random clamps against the action mapper,
random sidecars against the policy loader.

Invariants, checked after every step of every sequence:

- nothing raises (``on_*``, ``tick``, ``reset``, ``start``);
- every command is finite, inside the joint limits, and within ``rate_limit`` of the command
  before it (a segment of commands restarts only after PASSIVE: a tick that returned nothing, or
  an accepted reset);
- once HOLD or DAMP, the controller stays HOLD or DAMP until a reset is accepted (never RAMP or
  RUN from a latched trip), DAMP never becomes HOLD, and an engaged e-stop is never RAMP/RUN;
- every HOLD/DAMP command carries a reason, one bounded line.

Bounded for CI: ``derandomize=True`` (the examples are a function of the test: reproducible, no
example database), a fixed number of examples (``REWARDLAB_HYPOTHESIS_EXAMPLES`` raises it for a
longer local run), no deadline (a shared 2-core machine).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlab.deploy.actions import ActionMapper
from rewardlab.deploy.controller import Controller
from rewardlab.deploy.messages import ImuSample, JointStateSample, PointSample
from rewardlab.deploy.policy import Policy, PolicyLoadError, load_policy, seal_sidecar
from rewardlab.deploy.robot_config import RobotConfig, load_robot_config
from rewardlab.deploy.safety import SafetyState

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("REWARDLAB_HYPOTHESIS_EXAMPLES", "0")) or None
EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "arm_reach_export"
NAMES = ("base_yaw", "shoulder", "elbow")
POSE = (0.0, 0.4, 1.0)
LAYOUT = [
    {"name": "joint_pos", "start": 0, "width": 3},
    {"name": "joint_vel", "start": 3, "width": 3},
    {"name": "target_pos", "start": 6, "width": 3},
    {"name": "ee_to_target", "start": 9, "width": 3},
    {"name": "last_action", "start": 12, "width": 3},
]
META = {
    "format_version": 1, "obs_dim": 15, "action_dim": 3, "control_rate_hz": 50.0,
    "observation": {"layout": LAYOUT},
    "action": {"ctrl_mid": list(POSE), "ctrl_half": [2.5, 1.6, 1.6], "actuator_joints": list(NAMES)},
}  # fmt: skip
ROBOTS = {
    "arm": {"stale_timeout_s": 0.1},
    # the paths the arm alone does not take: IMU and attitude trip, heartbeat, no auto start
    "arm+imu+heartbeat": {
        "stale_timeout_s": 0.1, "topics": {"imu": "/imu", "heartbeat": "/hb"},
        "attitude_limit": 0.8, "heartbeat_timeout_s": 0.3, "auto_start": False,
    },
}  # fmt: skip
NAN, INF = math.nan, math.inf


@functools.cache
def robot(name: str) -> RobotConfig:
    return load_robot_config("arm", ROBOTS[name])


def controller_settings(examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------------------------------------
# Strategies: what a robot, an operator and a policy can do


plausible = st.floats(-2.7, 2.7, allow_nan=False)
special = st.sampled_from([NAN, INF, -INF, 1e9, -1e9, 5e-324, 3.0, -3.0])
value = st.one_of(plausible, plausible, plausible, special)


@st.composite
def arrays(draw: st.DrawFn, n: int) -> list[float]:
    """``n`` values, or (sometimes) a wrong count of them."""
    k = draw(st.one_of(st.just(n), st.just(n), st.just(n), st.integers(0, n + 2)))
    return draw(st.lists(value, min_size=k, max_size=k))


@st.composite
def receive_offset(draw: st.DrawFn) -> float:
    """Receive time relative to the controller's clock: mostly now or a little late."""
    return draw(
        st.one_of(
            st.just(0.0), st.just(0.0), st.floats(-0.3, 0.0), st.floats(0.0, 0.05),
            st.sampled_from([NAN, INF, -INF, 5.0, -100.0]),
        )
    )  # fmt: skip


@st.composite
def joint_state(draw: st.DrawFn) -> tuple:
    names = draw(
        st.one_of(
            st.permutations(NAMES), st.permutations(NAMES),
            st.lists(st.sampled_from([*NAMES, "gripper", ""]), max_size=5),
        )
    )  # fmt: skip
    k = len(names)
    pos = draw(st.one_of(st.lists(value, min_size=k, max_size=k), arrays(k), st.just([])))
    vel = draw(st.one_of(st.just([0.0] * k), st.lists(value, min_size=k, max_size=k), st.just([]), arrays(k)))  # fmt: skip
    eff = draw(st.one_of(st.just([]), arrays(k)))
    return ("js", tuple(names), pos, vel, eff, draw(receive_offset()), draw(value))


@st.composite
def policy_output(draw: st.DrawFn) -> object:
    return draw(
        st.one_of(
            st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
            st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
            st.lists(value, min_size=3, max_size=3),
            st.lists(value, min_size=0, max_size=5),
            st.sampled_from(["raise", "scalar", "matrix", "none", "string"]),
        )
    )


events = st.one_of(
    joint_state(), joint_state(), joint_state(),
    st.tuples(st.just("target"), arrays(3), receive_offset()),
    st.tuples(st.just("imu"), arrays(4), arrays(3), receive_offset()),
    st.tuples(st.just("estop"), st.booleans()),
    st.tuples(st.just("heartbeat"), receive_offset()),
    st.tuples(st.just("reset")),
    st.tuples(st.just("start")),
    st.tuples(st.just("fault")),
    st.tuples(st.just("tick"), st.floats(0.0, 0.06), policy_output()),
    st.tuples(st.just("tick"), st.floats(0.0, 0.06), policy_output()),
    st.tuples(st.just("tick"), st.floats(0.0, 0.06), policy_output()),
    st.tuples(st.just("clock"), st.sampled_from([-1.0, -0.01, NAN, INF, 0.5, 3.0])),
)  # fmt: skip


class Scripted:
    """A policy whose next output the test sets (or that raises)."""

    def __init__(self) -> None:
        self.out: object = [0.0, 0.0, 0.0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.out
        if out == "raise":
            raise RuntimeError("policy blew up")
        if out == "scalar":
            return np.float64(0.1)
        if out == "matrix":
            return np.zeros((2, 3))
        if out == "none":
            return None
        if out == "string":
            return "left"
        return np.asarray(out, dtype=np.float64)[None]


# ------------------------------------------------------------------------------------------------
# The controller


def warm_up(c: Controller, now: float) -> float:
    """Valid inputs for 1.2 s: the controller reaches RUN (the random part then attacks RUN)."""
    c.on_target(PointSample([0.3, 0.0, 0.4], recv_time=now))
    c.on_imu(ImuSample([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0], recv_time=now))
    c.start()
    for _ in range(60):
        c.on_joint_state(JointStateSample(NAMES, POSE, [0.0] * 3, recv_time=now))
        c.on_imu(ImuSample([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0], recv_time=now))
        c.on_heartbeat(now)
        c.tick(now)
        now += 0.02
    assert c.state == SafetyState.RUN, c.status()
    return now


@controller_settings(examples=150)
@given(robot_name=st.sampled_from(sorted(ROBOTS)), script=st.lists(events, min_size=1, max_size=150))  # fmt: skip
def test_random_inputs_never_break_the_invariants(robot_name: str, script: list[tuple]) -> None:
    cfg = robot(robot_name)
    policy = Scripted()
    c = Controller(Policy(dict(META), "numpy", None, policy), cfg)
    lower, upper = np.asarray(cfg.position_limits).T
    now = warm_up(c, 100.0)
    prev: np.ndarray | None = c.last_command.copy()
    latched = False
    estop = False
    for ev in script:
        kind = ev[0]
        clock = now
        if kind == "js":
            _, names, pos, vel, eff, off, stamp = ev
            c.on_joint_state(JointStateSample(names, pos, vel, eff, stamp=stamp, recv_time=now + off))  # fmt: skip
        elif kind == "target":
            c.on_target(PointSample(ev[1], recv_time=now + ev[2]))
        elif kind == "imu":
            c.on_imu(ImuSample(ev[1], ev[2], recv_time=now + ev[3]))
        elif kind == "estop":
            c.on_estop(ev[1], now)
            estop = ev[1]
        elif kind == "heartbeat":
            c.on_heartbeat(now + ev[1])
        elif kind == "reset":
            before = c.state
            if c.reset() and before in (SafetyState.HOLD, SafetyState.DAMP):
                latched, prev = False, None
            assert not (estop and c.state == SafetyState.PASSIVE and before != SafetyState.PASSIVE)
        elif kind == "start":
            c.start()
        elif kind == "fault":
            c.fault("transport callback raised OSError: injected")
        elif kind == "clock":
            clock = now + ev[1]  # one tick on a jumped / broken clock
        if kind in ("tick", "clock"):
            if kind == "tick":
                now += ev[1]
                clock = now
                policy.out = ev[2]
            before = c.state
            cmd = c.tick(clock)
            if cmd is None:
                prev = None
            else:
                q = cmd.positions
                assert q.shape == (3,) and np.all(np.isfinite(q)), cmd
                assert np.all(q >= lower) and np.all(q <= upper), cmd
                if prev is not None:
                    assert np.abs(q - prev).max() <= cfg.rate_limit + 1e-9, (prev, q, cmd)
                prev = q.copy()
                if cmd.state in ("HOLD", "DAMP"):
                    assert cmd.reason and "\n" not in cmd.reason and len(cmd.reason) <= 300
            if before == SafetyState.DAMP:
                assert c.state == SafetyState.DAMP  # never de-escalates
        state = c.state
        if latched:
            assert state in (SafetyState.HOLD, SafetyState.DAMP), (ev, c.status())
        if state in (SafetyState.HOLD, SafetyState.DAMP):
            latched = True
            assert c.last_trip is not None and c.last_trip.reason
        if estop:
            assert state not in (SafetyState.RAMP, SafetyState.RUN), c.status()
        assert len(c.status()) <= 400


# ------------------------------------------------------------------------------------------------
# The action mapper


@controller_settings(examples=300)
@given(
    desired=st.lists(value, min_size=3, max_size=3),
    previous=st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
    q=st.lists(value, min_size=3, max_size=3),
    qd=st.lists(value, min_size=3, max_size=3),
    measured=st.booleans(),
)
def test_limit_keeps_limits_and_rate(desired, previous, q, qd, measured) -> None:
    """From a previous command inside the limits, the next is inside them and within the rate
    limit, whatever the desired command (finite or not) and the measurement (any value)."""
    cfg = robot("arm")
    m = ActionMapper(cfg, np.array(POSE), np.array([2.5, 1.6, 1.6]))
    lower, upper = np.asarray(cfg.position_limits).T
    prev = np.clip(np.asarray(previous), lower, upper)
    d = np.asarray(desired)
    if not np.all(np.isfinite(d)):  # the controller never maps a non-finite target
        d = np.where(np.isfinite(d), d, prev)
    args = (np.asarray(q), np.asarray(qd)) if measured else (None, None)
    cmd, *_ = m.limit(d, prev, *args)
    assert np.all(np.isfinite(cmd)) and np.all(cmd >= lower) and np.all(cmd <= upper)
    assert np.abs(cmd - prev).max() <= cfg.rate_limit + 1e-12


# ------------------------------------------------------------------------------------------------
# The policy loader


json_value = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-3, 20), st.floats(allow_nan=False), st.text(max_size=8)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)  # fmt: skip
sidecar_keys = st.sampled_from(
    ["obs_dim", "action_dim", "format_version", "control_rate_hz", "observation", "action",
     "files", "joint_names", "observation.layout", "action.ctrl_mid", "action.ctrl_half",
     "action.actuator_joints", "files.policy.onnx", "files.policy.pt"]
)  # fmt: skip


@pytest.fixture(scope="module")
def export_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "export"
    shutil.copytree(EXPORT, out)
    return out


@settings(
    max_examples=EXAMPLES or 60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(st.tuples(sidecar_keys, json_value), min_size=1, max_size=3), reseal=st.booleans())  # fmt: skip
def test_any_sidecar_loads_or_is_a_policy_load_error(export_copy: Path, edits, reseal) -> None:
    """Random values at the keys deployment reads, the sidecar re-sealed or not: loading either
    succeeds with a policy that maps [obs_dim] to [action_dim], or raises PolicyLoadError (one
    line naming policy.json or a model file) -- never another exception."""
    meta = json.loads((EXPORT / "policy.json").read_text())
    for key, v in edits:
        node, *path = key.split(".", 1)
        if path and isinstance(meta.get(node), dict):
            meta[node][path[0]] = v
        else:
            meta[node] = v
    if reseal:
        meta = seal_sidecar(meta)
    (export_copy / "policy.json").write_text(json.dumps(meta))
    try:
        pol = load_policy(export_copy)
    except PolicyLoadError as e:
        text = str(e)
        assert "\n" not in text and len(text) < 600, text
        assert "policy.json" in text or "policy.onnx" in text or "policy.pt" in text, text
        return
    assert pol(np.zeros(pol.obs_dim)).shape == (pol.action_dim,)


@settings(max_examples=EXAMPLES or 40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    file=st.sampled_from(["policy.json", "policy.onnx", "policy.pt"]),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    ),  # fmt: skip
)
def test_any_flipped_byte_is_refused(export_copy: Path, file: str, flips) -> None:
    """A byte changed anywhere in the export (a damaged copy) is refused by PolicyLoadError."""
    for name in ("policy.json", "policy.onnx", "policy.pt"):
        shutil.copyfile(EXPORT / name, export_copy / name)
    data = bytearray((EXPORT / file).read_bytes())
    for at, xor in {int(where * len(data)): xor for where, xor in flips}.items():
        data[at] ^= xor
    (export_copy / file).write_bytes(bytes(data))
    with pytest.raises(PolicyLoadError, match=r"policy\.(json|onnx|pt)"):
        load_policy(export_copy)
