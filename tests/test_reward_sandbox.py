"""The reward sandbox: static allow-list, trial runs in a limited child, guarded compile.

Malicious code must be caught with a structured error, and the caller must go on working.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch

from rewardlab.rewards.sandbox import (
    ERROR_KINDS,
    RewardError,
    RewardRuntimeError,
    SandboxFailure,
    SandboxLimits,
    check_source,
    compile_reward,
    run_in_sandbox,
    trial_run,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "rewards"
NAMES = ["cart_pos", "cart_vel", "pole_angle", "pole_angvel", "last_action", "prev_action"]
FAST = SandboxLimits(wall_seconds=20.0, cpu_seconds=10.0)

GOOD = """
import torch

def compute_reward(state, action):
    upright = torch.cos(state["pole_angle"])
    effort = -0.01 * (action ** 2).sum(-1)
    return upright + effort, {"upright": upright, "effort": effort}
"""


def _states(n: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.randn(n, generator=g) for k in NAMES[:4]}
    out["last_action"] = torch.rand(n, 1, generator=g) * 2 - 1
    out["prev_action"] = torch.rand(n, 1, generator=g) * 2 - 1
    out["action"] = out["last_action"].clone()
    return out


def _body(lines: str) -> str:
    """A native reward whose body is ``lines`` (indented) then a valid return."""
    body = "\n".join("    " + ln for ln in lines.strip().splitlines())
    return f'import torch\n\ndef compute_reward(state, action):\n{body}\n    return state["cart_pos"] * 1.0, {{}}\n'  # fmt: skip


# ---------------------------------------------------------------------------------------------
# static check


def test_good_code_passes_static_check():
    assert check_source(GOOD, NAMES) is None
    constants = (
        "import math\nimport torch\nTEMP = 0.5\nGOAL: float = 2 * math.pi\nW = (1.0, -0.5)\n"
    )
    assert check_source(constants + GOOD.replace("import torch\n", ""), NAMES) is None
    scripted = "import torch\nfrom typing import Dict, Tuple\n\n@torch.jit.script\n" + GOOD.split("\n\n", 1)[1]  # fmt: skip
    assert (
        check_source(scripted, NAMES) is None
    )  # the decorator is allowed, torch.jit elsewhere not


@pytest.mark.parametrize(
    "code, fragment",
    [
        (_body('x = open("/etc/passwd").read()'), "'open'"),
        (_body("import os"), "'os'"),
        (_body("import subprocess"), "'subprocess'"),
        (_body("from pathlib import Path"), "'pathlib'"),
        (_body("import socket"), "'socket'"),
        (_body('eval("1")'), "'eval'"),
        (_body('exec("x = 1")'), "'exec'"),
        (_body('compile("1", "f", "eval")'), "'compile'"),
        (_body('__import__("os")'), "__import__"),
        (_body('getattr(torch, "os")'), "'getattr'"),
        (_body("g = globals()"), "'globals'"),
        (_body("v = vars(torch)"), "'vars'"),
        (_body("c = ().__class__.__bases__[0].__subclasses__()"), "__"),
        (_body("b = torch.__builtins__"), "__builtins__"),
        (_body('torch.os.system("ls")'), "torch.os"),
        (_body("torch.save(state, 'x.pt')"), "torch.save"),
        (_body("x = torch.load('x.pt')"), "torch.load"),
        (_body("numpy.save('x.npy', 1)"), "numpy.save"),
        (_body("torch.set_num_threads(64)"), "set_num_threads"),
        (_body("x = torch._C"), "torch._C"),
        (_body("torch.ops.load_library('x.so')"), "torch.ops"),
        (_body("x = '{0.__class__}'.format(action)"), "format strings"),
        ("import torch\nclass A:\n    pass\n" + GOOD, "ClassDef"),
        ("import torch\nprint('side effect')\n" + GOOD, "top-level"),
        ("import torch\nX = torch.rand(()) > 0.5\n" + GOOD, "Call outside a function"),
        (GOOD.replace("(state, action)", "(state, action, x=torch.empty(10))"), "Call outside"),
        (GOOD.replace("(state, action)", "(state: torch.ones(3), action)"), "Call outside"),
        ("import torch\nS = [i for i in range(3)]\n" + GOOD, "ListComp outside"),
        ("from torch import *\n" + GOOD, "import *"),
        ("import numpy.ctypeslib\n" + GOOD, "numpy.ctypeslib"),
        (GOOD.replace("def compute", "@staticmethod\ndef compute"), "decorators"),
        (_body("cu = torch.jit.CompilationUnit('def f(x): return x')"), "torch.jit"),
        (_body("g = torch.fx.symbolic_trace(torch.cos)"), "torch.fx"),
        ("import typing\n" + _body("typing.get_type_hints(compute_reward)"), "get_type_hints"),
        ("from typing import get_type_hints\n" + GOOD, "get_type_hints"),
        (_body("torch.onnx.export(None, None, 'x.onnx')"), "torch.onnx"),
    ],
)
def test_forbidden_constructs_are_rejected(code, fragment):
    err = check_source(code, NAMES)
    assert err is not None and err.kind == "forbidden", err
    assert fragment in err.message
    assert err.line is not None


def test_syntax_error_has_line():
    err = check_source("import torch\ndef compute_reward(state, action):\n    return (\n", NAMES)
    assert err is not None and err.kind == "syntax" and err.line in (3, 4)


def test_empty_source_is_no_code():
    assert check_source("   \n", NAMES).kind == "no_code"


@pytest.mark.parametrize(
    "code",
    [
        "def reward(state, action):\n    return state['cart_pos'], {}\n",
        "def compute_reward(state):\n    return state['cart_pos'], {}\n",
        "def compute_reward(state, action, extra):\n    return state['cart_pos'], {}\n",
    ],
)
def test_signature_is_checked(code):
    err = check_source(code, NAMES)
    assert err is not None and err.kind == "signature"


def test_unknown_state_name_is_caught_statically_with_suggestion():
    code = GOOD.replace('state["pole_angle"]', 'state["pole_angel"]')
    err = check_source(code, NAMES)
    assert err is not None and err.kind == "unknown_state"
    assert "'pole_angel'" in err.message and "did you mean 'pole_ang" in err.message
    assert "cart_vel" in err.message  # lists the known names
    assert err.line == 5
    assert "pole_angle" in err.feedback()


# ---------------------------------------------------------------------------------------------
# trial run in a child process


def test_trial_run_good_reward_reports_components_and_stats():
    states = _states()
    res = trial_run(GOOD, states, FAST)
    assert res.ok, res.error
    assert res.components == ["upright", "effort"]
    up = torch.cos(states["pole_angle"]).double()
    assert res.component_stats["upright"]["min"] == pytest.approx(float(up.min()), abs=1e-6)
    assert res.component_stats["upright"]["max"] == pytest.approx(float(up.max()), abs=1e-6)
    assert res.component_stats["upright"]["mean"] == pytest.approx(float(up.mean()), abs=1e-6)
    assert res.ms_per_call is not None and res.ms_per_call > 0


@pytest.mark.parametrize(
    "code, kind, fragment",
    [
        (
            GOOD.replace(
                'torch.cos(state["pole_angle"])', 'torch.log(torch.cos(state["pole_angle"]) - 2)'
            ),
            "nan",
            "NaN",
        ),  # fmt: skip
        (
            GOOD.replace('upright + effort, {"upright"', 'upright[:, None], {"upright"'),
            "shape",
            "[1000]",
        ),  # fmt: skip
        (GOOD.replace("upright + effort, {", "upright > 0, {"), "dtype", "torch.bool"),
        (GOOD.replace("upright + effort, {", "upright + effort, [upright], {"), "shape", "tuple"),
        (GOOD.replace('{"upright": upright,', '{"upright": upright.sum(),'), "shape", "upright"),
    ],
)
def test_trial_run_output_checks(code, kind, fragment):
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == kind, res.error
    assert fragment in res.error.message


def test_exception_traceback_points_into_candidate_code():
    code = _body("x = state['cart_pos']\ny = x.reshape(7, -1)")
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "exception"
    assert res.error.line == 5  # the reshape line
    assert "line 5, in compute_reward" in res.error.traceback
    assert "x.reshape(7, -1)" in res.error.traceback
    assert "RuntimeError" in res.error.feedback()


def test_unknown_state_name_is_caught_at_run_time():
    code = _body("key = 'cart_' + 'position'\nx = state[key]")
    assert check_source(code, NAMES) is None  # not visible statically
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "unknown_state"
    assert "'cart_position'" in res.error.message and "cart_pos" in res.error.message


def test_too_slow_reward_is_rejected():
    code = _body("acc = []\nfor i in range(action.shape[0]):\n    acc.append(float(state['cart_pos'][i]))")  # fmt: skip
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=30, max_ms_per_call=0.5))
    assert not res.ok and res.error.kind == "too_slow", res.error
    assert res.ms_per_call > 0.5 and "4096 worlds" in res.error.message


def test_infinite_loop_times_out_and_caller_continues():
    code = (FIXTURES / "malicious_infinite_loop.py").read_text()
    assert check_source(code, NAMES) is None  # loops are not forbidden: the timeout catches them
    t0 = time.monotonic()
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=2.0))
    assert not res.ok and res.error.kind == "timeout"
    assert time.monotonic() - t0 < 15
    assert trial_run(GOOD, _states(), FAST).ok  # the caller goes on


def test_cpu_limit_kills_a_busy_child():
    code = (FIXTURES / "malicious_infinite_loop.py").read_text()
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=60.0, cpu_seconds=1.0))
    assert not res.ok and res.error.kind == "timeout" and "CPU" in res.error.message


def test_huge_allocation_is_a_memory_error():
    code = (FIXTURES / "malicious_huge_alloc.py").read_text()
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "memory", res.error
    assert res.error.line == code.splitlines().index("    big = torch.empty(10**12)") + 1


def test_memory_limit_applies_below_physical_memory():
    # 3 GiB actually touched: allowed by the machine, refused by a 1 GiB sandbox
    code = _body("x = torch.ones(768 * 1024 * 1024)")
    res = trial_run(code, _states(), SandboxLimits(memory_mb=1024, wall_seconds=20))
    assert not res.ok and res.error.kind == "memory", res.error


# ---------------------------------------------------------------------------------------------
# the child process itself (defence in depth beyond the static check)


def _connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return "connected"


def _write_file(path: str) -> int:
    with open(path, "w") as f:
        f.write("x" * 100)
        f.flush()
    return os.path.getsize(path)


def _fork_many(n: int) -> str:
    pgid = os.getpgid(0)
    for i in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            raise RuntimeError(f"group {pgid}: fork {i} failed: {e}") from None
        if pid == 0:
            time.sleep(60)
            os._exit(0)
    raise RuntimeError(f"group {pgid}: forked {n}")


def _raise_value_error() -> None:
    raise ValueError("bad value 42")


def _return_pid_uid() -> tuple[int, int]:
    return os.getpid(), os.getuid()


def test_run_in_sandbox_returns_results_and_structured_errors():
    pid, uid = run_in_sandbox(_return_pid_uid, (), FAST)
    assert pid != os.getpid()
    if os.getuid() == 0:
        assert uid == 65534  # dropped to nobody
    with pytest.raises(SandboxFailure) as info:
        run_in_sandbox(_raise_value_error, (), FAST)
    assert info.value.error.kind == "exception"
    assert "bad value 42" in info.value.error.message


def test_child_has_no_network():
    from rewardlab.rewards.sandbox import sandbox_capabilities

    caps = sandbox_capabilities()
    assert {"session", "cpu", "data", "fsize", "nofile"} <= set(caps)
    if "no-network" not in caps:
        pytest.skip("no network namespaces on this machine (not root, no user namespaces)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert _connect(port) == "connected"  # reachable from here
        with pytest.raises(SandboxFailure) as info:
            run_in_sandbox(_connect, (port,), FAST)
        assert info.value.error.kind == "exception"
        assert "Error" in info.value.error.message  # unreachable / refused
    finally:
        server.close()


def test_child_cannot_write_files(tmp_path):
    tmp_path.chmod(0o777)
    target = tmp_path / "out.txt"
    with pytest.raises(SandboxFailure):
        run_in_sandbox(_write_file, (str(target),), FAST)
    assert not target.exists() or target.stat().st_size == 0


def _live_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def test_fork_bomb_is_limited_and_cleaned_up():
    limits = SandboxLimits(wall_seconds=20, max_processes=32)
    with pytest.raises(SandboxFailure) as info:
        run_in_sandbox(_fork_many, (200,), limits)
    msg = info.value.error.message
    pgid = int(msg.split("group ")[1].split(":")[0])
    if os.getuid() == 0:
        assert "failed" in msg  # RLIMIT_NPROC stopped it before 200 processes
    deadline = time.monotonic() + 5
    while _live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _live_members(pgid) == []  # the whole group was killed


# ---------------------------------------------------------------------------------------------
# compiled in-process reward


def test_compile_reward_matches_direct_call_and_guards_calls():
    fn = compile_reward(GOOD, NAMES)
    states = _states(64)
    action = states.pop("action")
    total, comps = fn(states, action)
    assert torch.allclose(total, torch.cos(states["pole_angle"]) - 0.01 * (action**2).sum(-1))
    assert set(comps) == {"upright", "effort"}
    with pytest.raises(RewardRuntimeError, match="known: .*cart_pos") as info:
        fn({k: v for k, v in states.items() if k != "pole_angle"}, action)
    assert info.value.error.kind == "unknown_state" and info.value.error.line == 5
    states["pole_angle"][3] = float("nan")
    with pytest.raises(RewardRuntimeError) as info:
        fn(states, action)
    assert info.value.error.kind == "nan"


def test_compile_reward_rejects_forbidden_code():
    with pytest.raises(SandboxFailure) as info:
        compile_reward((FIXTURES / "malicious_torch_os.py").read_text(), NAMES)
    assert info.value.error.kind == "forbidden"


def test_restricted_builtins_at_run_time():
    # even if the static check missed it, open/__import__ of other modules are not there
    from rewardlab.rewards.sandbox import exec_source

    ns = exec_source("import torch\n", "<t>")
    assert "open" not in ns["__builtins__"]
    with pytest.raises(ImportError):
        ns["__builtins__"]["__import__"]("os")


def test_error_feedback_names_kind_and_hint():
    assert set(ERROR_KINDS) >= {"syntax", "forbidden", "timeout", "memory", "too_slow", "nan"}
    text = RewardError("too_slow", "one call takes 80 ms", None).feedback()
    assert "too_slow" in text and "vectorize" in text


def test_guard_checks_later_calls_at_random():
    fn = compile_reward(GOOD, NAMES, check_every=4)
    states = _states(32)
    action = states.pop("action")
    for _ in range(10):
        fn(states, action)
    states["pole_angle"] = states["pole_angle"].clone()
    states["pole_angle"][0] = float("inf")
    raised_at = None
    for i in range(1, 201):  # each call is checked with probability 1/4: P(never) = 0.75**200
        try:
            fn(states, action)
        except RewardRuntimeError as exc:
            assert exc.error.kind == "nan" and "NaN or infinite in 1 of 32" in exc.error.message
            raised_at = i
            break
    assert raised_at is not None
    # a wrong shape that appears late is caught by a later checked call too
    late = compile_reward(
        GOOD.replace(
            "return upright + effort,",
            "return (upright + effort) if action.shape[0] > 1 else upright[None],",
        ),  # fmt: skip
        NAMES,
        check_every=4,
    )
    for _ in range(8):
        late(states | {"pole_angle": torch.zeros(32)}, action)
    one = {k: v[:1] for k, v in states.items()}
    with pytest.raises(RewardRuntimeError) as info:
        for _ in range(200):
            late(one | {"pole_angle": torch.zeros(1)}, action[:1])
    assert info.value.error.kind == "shape"


@pytest.mark.parametrize(
    "line",
    [
        "state['cart_pos'] += 1.0",
        "state['pole_angle'].zero_()",
        "x = state['cart_vel']\n    x[0] = 5.0",
        "action.clamp_(-0.1, 0.1)",
    ],
)
def test_in_place_changes_of_the_inputs_are_caught(line):
    code = GOOD.replace("    upright =", f"    {line}\n    upright =")
    assert check_source(code, NAMES) is None
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "forbidden" and "in place" in res.error.message
    fn = compile_reward(code, NAMES)
    states = _states(16)
    action = states.pop("action")
    with pytest.raises(RewardRuntimeError) as info:
        fn(states, action)
    assert info.value.error.kind == "forbidden"


def test_reward_gets_a_copy_of_the_state_dict():
    code = GOOD.replace("    upright =", "    state.pop('cart_pos')\n    state['fake'] = action\n    upright =")  # fmt: skip
    fn = compile_reward(code, NAMES)
    states = _states(16)
    action = states.pop("action")
    keys = set(states)
    fn(states, action)
    assert set(states) == keys


def test_concurrent_trial_runs_from_threads():
    # the reward search checks a round's candidates in parallel threads
    from concurrent.futures import ThreadPoolExecutor

    loop = (FIXTURES / "malicious_infinite_loop.py").read_text()
    nan = GOOD.replace('torch.cos(state["pole_angle"])', 'torch.log(torch.cos(state["pole_angle"]) - 2)')  # fmt: skip
    codes = [GOOD, loop, nan, GOOD.replace("0.01", "0.02")]
    limits = SandboxLimits(wall_seconds=5.0, cpu_seconds=10.0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: trial_run(c, _states(), limits), codes))
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].error.kind == "timeout" and results[2].error.kind == "nan"
    assert results[3].component_stats["effort"]["min"] < results[0].component_stats["effort"]["min"]


def _sandbox_from_pool_worker(_: int) -> str:
    return run_in_sandbox(_return_pid_uid, (), FAST)[0] != os.getpid() and "ok"


def test_run_in_sandbox_from_a_daemonic_pool_worker():
    import multiprocessing

    with multiprocessing.get_context("forkserver").Pool(1) as pool:
        assert pool.map(_sandbox_from_pool_worker, [0]) == ["ok"]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"cpu_seconds": 0}, "cpu_seconds: got 0"),
        ({"memory_mb": -1}, "memory_mb: got -1"),
        ({"wall_seconds": "10"}, "wall_seconds: got '10'"),
        ({"file_size_mb": -2}, "file_size_mb: got -2"),
    ],
)
def test_limits_are_validated(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SandboxLimits(**kwargs)
