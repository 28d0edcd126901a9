"""The reward sandbox: the static allow-list, the OS boundary, runtime guards, data-only results.

Malicious code must be caught with a structured error, and the caller must go on working. The
hostile-code corpus (tests/hostile/) attacks the same boundary with 40+ files; this module
checks each mechanism on its own.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from rewardlab.rewards import boundary
from rewardlab.rewards.errors import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS
from rewardlab.rewards.remote import RemoteReward
from rewardlab.rewards.sandbox import (
    ERROR_KINDS,
    RewardError,
    RewardRuntimeError,
    SandboxFailure,
    SandboxLimits,
    SandboxUnavailable,
    check_source,
    compile_reward,
    run_in_worker,
    trial_run,
)

pytestmark = pytest.mark.unit

needs_sandbox = pytest.mark.skipif(
    boundary.unavailable_reason() is not None,
    reason=f"no OS sandbox here: {boundary.unavailable_reason()}",
)

FIXTURES = Path(__file__).parent / "fixtures" / "rewards"
NAMES = ["cart_pos", "cart_vel", "pole_angle", "pole_angvel", "last_action", "prev_action"]
FAST = SandboxLimits(wall_seconds=20.0, cpu_seconds=10.0, call_seconds=5.0)

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


def _batch(n: int = 64) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    s = _states(n)
    return s, s.pop("action")


def _body(lines: str) -> str:
    """A native reward whose body is ``lines`` (indented) then a valid return."""
    body = "\n".join("    " + ln for ln in lines.strip().splitlines())
    return f'import torch\n\ndef compute_reward(state, action):\n{body}\n    return state["cart_pos"] * 1.0, {{}}\n'  # fmt: skip


# ---------------------------------------------------------------------------------------------
# static check: an allow-list


def test_good_code_passes_static_check():
    assert check_source(GOOD, NAMES) is None
    constants = (
        "import math\nimport torch\nTEMP = 0.5\nGOAL: float = 2 * math.pi\nW = (1.0, -0.5)\n"
    )
    assert check_source(constants + GOOD.replace("import torch\n", ""), NAMES) is None
    scripted = "import torch\nfrom typing import Dict, Tuple\n\n@torch.jit.script\n" + GOOD.split("\n\n", 1)[1]  # fmt: skip
    assert check_source(scripted, NAMES) is None  # the decorator is allowed, torch.jit not
    idioms = _body(
        "import torch.nn.functional as F\nimport numpy as np\n"
        "x = F.relu(torch.linalg.norm(state['cart_vel'][:, None], dim=-1))\n"
        "y = torch.clamp(x, min=0.0).sum().item() + np.clip(1.0, 0, 2) + math.exp(1)\n"
        "z = torch.where(x > 0, x, torch.zeros_like(x)).mean(dim=0, keepdim=True).values\n"
        "comps = {}\ncomps['a'] = x\ncomps.update({'b': x * 2})\nv, i = torch.max(x, dim=0)\n"
        "w = torch.finfo(torch.float32).eps * x.shape[0]\nq = f'{y:.3f}'"
    )
    assert check_source(idioms, NAMES) is None, check_source(idioms, NAMES)


FORBIDDEN = [
    (_body('x = open("/etc/passwd").read()'), "'open'"),
    # a disallowed import the code uses (an unused one is ignored with a note: test_reward_compat)
    (_body("import os\nos.getcwd()"), "'os'"),
    (_body("import subprocess\nsubprocess.run(['ls'])"), "'subprocess'"),
    (_body("from pathlib import Path\nPath('/etc/passwd').exists()"), "'pathlib'"),
    (_body("import socket\ns = socket.socket()"), "'socket'"),
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
    (_body("x = '{0.__class__}'.format(action)"), "format field"),
    # the attacks
    (_body("f = torch.functional.operator.attrgetter('os.system')"), "torch.functional"),
    (_body("f = torch.nn.modules.container.operator"), "torch.nn.modules"),
    (_body("f = torch.distributions.transforms.operator"), "torch.distributions"),
    (_body("s = '{0.os.environ[KEY]}'.format(torch)"), "format field"),
    (_body("s = '{t.functional}'.format(t=torch)"), "format field"),
    (_body("fmt = 'x'\ns = fmt.format(torch)"), "'.format' on anything but"),
    (_body("f = numpy.ma.mrecords.openfile('/etc/passwd')"), "numpy.ma"),
    (_body("p = torch.autograd.profiler_legacy"), "torch.autograd"),
    ("import torch.optim\n" + _body("torch.optim.Adam.step = None"), "torch.optim"),
    (_body("torch.exp = torch.log"), "assignment to the attribute"),
    (_body("state['cart_pos'].data.mul_(0)"), "data"),
    (_body("action.numpy()[:] = 0"), "item assignment"),
    (_body("torch.add(action, 1, out=action)"), "out="),
    (_body("numpy.random.seed(0)"), "numpy.random"),
    (_body("numpy.seterr(all='ignore')"), "seterr"),
    (_body("torch.manual_seed(0)"), "manual_seed"),
    (_body("x = action.untyped_storage()"), "untyped_storage"),
    (_body("action.tofile('/tmp/x')"), "tofile"),
    (_body("g = (x for x in range(3))"), "generator"),
    (_body("from torch import load\nx = load('x.pt')"), "'load'"),
    (_body("from numpy import ctypeslib\nx = ctypeslib.as_array"), "ctypeslib"),
    (_body("x = torch.from_file('/etc/passwd', size=10)"), "from_file"),
    (_body("t = torch.tensor([1.0]).grad_fn"), "grad_fn"),
    # older ones
    ("import torch\nclass A:\n    pass\n" + GOOD, "ClassDef"),
    ("import torch\nprint('side effect')\n" + GOOD, "top-level"),
    ("import torch\nX = torch.rand(()) > 0.5\n" + GOOD, "Call outside a function"),
    (GOOD.replace("(state, action)", "(state, action, x=torch.empty(10))"), "Call outside"),
    (GOOD.replace("(state, action)", "(state: torch.ones(3), action)"), "Call outside"),
    ("import torch\nS = [i for i in range(3)]\n" + GOOD, "ListComp outside"),
    ("from torch import *\n" + GOOD, "import *"),
    ("import numpy.ctypeslib\n" + _body("x = numpy.ctypeslib.as_array"), "numpy.ctypeslib"),
    (GOOD.replace("def compute", "@staticmethod\ndef compute"), "decorators"),
    (_body("cu = torch.jit.CompilationUnit('def f(x): return x')"), "torch.jit"),
    (_body("g = torch.fx.symbolic_trace(torch.cos)"), "torch.fx"),
    ("import typing\n" + _body("typing.get_type_hints(compute_reward)"), "get_type_hints"),
    (
        "from typing import get_type_hints\n" + _body("h = get_type_hints(compute_reward)"),
        "get_type_hints",
    ),
    (_body("torch.onnx.export(None, None, 'x.onnx')"), "torch.onnx"),
]


@pytest.mark.parametrize("code, fragment", FORBIDDEN)
def test_forbidden_constructs_are_rejected(code, fragment):
    err = check_source(code, NAMES)
    assert err is not None and err.kind == "forbidden", err
    assert fragment in err.message, err.message
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


def test_error_text_is_bounded():
    err = RewardError("exception", "x" * 50_000, 3, "frame\n" * 20_000, "f.py")
    assert len(err.message) <= MAX_MESSAGE_CHARS and err.message.endswith("more)")
    assert len(err.traceback) <= MAX_TRACEBACK_CHARS
    assert len(err.feedback()) < MAX_MESSAGE_CHARS + MAX_TRACEBACK_CHARS + 500
    assert str(err).startswith("f.py:3: exception")
    odd = RewardError.from_dict({"kind": "root-shell", "message": 7, "line": "12", "file": None})
    assert odd.kind == "exception" and odd.line is None and odd.message == "7"
    assert RewardError.from_dict([1, 2]).kind == "exception"
    assert {"crashed", "unavailable", "timeout"} <= set(ERROR_KINDS)


# ---------------------------------------------------------------------------------------------
# trial run (in the sandbox)


@needs_sandbox
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


@needs_sandbox
@pytest.mark.parametrize(
    "code, kind, fragment",
    [
        (
            GOOD.replace(
                'torch.cos(state["pole_angle"])', 'torch.log(torch.cos(state["pole_angle"]) - 2)'
            ),  # fmt: skip
            "nan",
            "NaN",
        ),
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


@needs_sandbox
def test_exception_traceback_points_into_candidate_code():
    code = _body("x = state['cart_pos']\ny = x.reshape(7, -1)")
    res = trial_run(code, _states(), FAST, filename="cand.py")
    assert not res.ok and res.error.kind == "exception"
    assert res.error.line == 5 and res.error.file == "cand.py"
    assert "line 5, in compute_reward" in res.error.traceback
    assert "x.reshape(7, -1)" in res.error.traceback
    assert "RuntimeError" in res.error.feedback()


@needs_sandbox
def test_unknown_state_name_is_caught_at_run_time():
    code = _body("key = 'cart_' + 'position'\nx = state[key]")
    assert check_source(code, NAMES) is None  # not visible statically
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "unknown_state"
    assert "'cart_position'" in res.error.message and "cart_pos" in res.error.message


@needs_sandbox
def test_too_slow_reward_is_rejected():
    code = _body("acc = []\nfor i in range(action.shape[0]):\n    acc.append(float(state['cart_pos'][i]))")  # fmt: skip
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=30, max_ms_per_call=0.5))
    assert not res.ok and res.error.kind == "too_slow", res.error
    assert res.ms_per_call > 0.5 and "4096 worlds" in res.error.message


@needs_sandbox
def test_infinite_loop_times_out_and_caller_continues():
    code = (FIXTURES / "malicious_infinite_loop.py").read_text()
    assert check_source(code, NAMES) is None  # loops are not forbidden: the timeout catches them
    t0 = time.monotonic()
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=2.0))
    assert not res.ok and res.error.kind == "timeout"
    assert time.monotonic() - t0 < 15
    assert trial_run(GOOD, _states(), FAST).ok  # the caller goes on


@needs_sandbox
def test_cpu_limit_kills_a_busy_reward():
    code = (FIXTURES / "malicious_infinite_loop.py").read_text()
    res = trial_run(code, _states(), SandboxLimits(wall_seconds=60.0, cpu_seconds=1.0))
    assert not res.ok and res.error.kind == "timeout" and "CPU" in res.error.message


@needs_sandbox
def test_huge_allocation_is_a_memory_error():
    code = (FIXTURES / "malicious_huge_alloc.py").read_text()
    res = trial_run(code, _states(), FAST)
    assert not res.ok and res.error.kind == "memory", res.error
    assert res.error.line == code.splitlines().index("    big = torch.empty(10**12)") + 1


@needs_sandbox
def test_memory_limit_applies_below_physical_memory():
    # 3 GiB actually touched: allowed by the machine, refused by a 1 GiB sandbox
    code = _body("x = torch.ones(768 * 1024 * 1024)")
    res = trial_run(code, _states(), SandboxLimits(memory_mb=1024, wall_seconds=20))
    assert not res.ok and res.error.kind == "memory", res.error


# ---------------------------------------------------------------------------------------------
# the OS boundary itself: code that escaped the static check and the restricted builtins

PROBE = r"""
import json, os, socket, ctypes

def attempt(fn):
    try:
        fn()
        return "allowed"
    except BaseException as e:
        return type(e).__name__ + ":" + str(getattr(e, "errno", ""))

def compute_reward(state, action):
    status = open("/proc/self/status").read()
    field = lambda k: [l.split(":", 1)[1].strip() for l in status.splitlines() if l.startswith(k + ":")][0]
    facts = {
        "uid": os.getuid(), "env": sorted(os.environ), "cap_eff": field("CapEff"),
        "seccomp": field("Seccomp"), "nnp": field("NoNewPrivs"),
        "ifaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]),
        "socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
        "raw": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)),
        "fork": attempt(os.fork),
        "exec": attempt(lambda: os.execv("/bin/sh", ["sh", "-c", "true"])),
        "write_usr": attempt(lambda: open("/usr/pwned", "w")),
        "write_venv": attempt(lambda: open(os.path.dirname(os.__file__) + "/pwned.py", "w")),
        "write_root": attempt(lambda: open("/pwned", "w")),
        "write_tmp": attempt(lambda: open("/tmp/ok", "w").write("x")),
        "kill_1": attempt(lambda: os.kill(1, 9)),
        "ptrace": ctypes.CDLL(None, use_errno=True).ptrace(16, 1, 0, 0),
        "mount": ctypes.CDLL(None, use_errno=True).mount(b"none", b"/tmp", b"tmpfs", 0, None),
        "unshare": ctypes.CDLL(None, use_errno=True).unshare(0x10000000),
        "top": sorted(os.listdir("/")),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "secret": os.environ.get("REWARDLAB_TEST_SECRET"),
    }
    raise RuntimeError("FACTS" + json.dumps(facts))
"""


@needs_sandbox
def test_the_boundary_holds_for_code_with_full_python(monkeypatch, tmp_path):
    monkeypatch.setenv("REWARDLAB_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("HF_TOKEN", "hf-test")
    r = RemoteReward(PROBE, NAMES, filename="probe.py", limits=FAST, unrestricted=True)
    with pytest.raises(RewardRuntimeError) as info:
        r(*_batch())
    msg = info.value.error.message
    facts = json.loads(msg[msg.index("FACTS") + 5 :])
    if os.getuid() == 0:
        assert facts["uid"] == boundary.NOBODY
    assert facts["cap_eff"] == "0000000000000000" and facts["nnp"] == "1"
    assert facts["seccomp"] == "2"  # a filter is installed
    assert facts["secret"] is None and "REWARDLAB_TEST_SECRET" not in facts["env"]
    # only the sandbox's fixed variables (and those rewardlab's import sets: MUJOCO_GL, ...)
    assert set(boundary._ENV) <= set(facts["env"]) and len(facts["env"]) <= len(boundary._ENV) + 4
    assert not any(w in k for k in facts["env"] for w in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
    assert "OPENAI_API_KEY" not in facts["env"] and "HF_TOKEN" not in facts["env"]
    assert facts["ifaces"] == ["lo"]  # a network namespace with no interface but loopback
    for key in ("socket", "raw", "fork", "exec"):
        assert facts[key].startswith("PermissionError"), (key, facts[key])  # seccomp: EPERM
    for key in ("write_usr", "write_venv", "write_root"):
        assert facts[key] != "allowed", (key, facts[key])  # read-only mounts
    assert facts["write_tmp"] == "allowed"  # the one scratch folder
    assert facts["kill_1"].startswith("PermissionError")
    assert facts["ptrace"] == -1 and facts["mount"] == -1 and facts["unshare"] == -1
    assert "work" not in facts["top"] or not (tmp_path / "x").exists()
    # system folders, plus the top folders of what the interpreter reads (read-only binds; a CI
    # checkout and its venv may live anywhere, e.g. /check/work/main)
    own = {Path(p).parts[1] for p in boundary.interpreter_paths() if len(Path(p).parts) > 1}
    assert set(facts["top"]) <= own | {"usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "etc", "sys", "proc", "dev", "tmp", "root", "home", "opt", "srv", "var"}  # fmt: skip
    assert len(facts["pids"]) <= 3  # its own PID namespace: bwrap's init, the host, itself
    assert not Path("/usr/pwned").exists() and not Path("/pwned").exists()


# ---------------------------------------------------------------------------------------------
# runtime guards on every call during training

COUNTER = """
import torch
CALLS = [0]

def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] >= 5:
        {payload}
    return x, {{"x": x}}
"""


@needs_sandbox
@pytest.mark.parametrize(
    "payload, kind, fragment",
    [
        ("x = x / 0.0 * 0.0", "nan", "call 5"),
        ("x = x[:-1]", "shape", "[63]"),
        ("x = torch.ones(256 * 1024 * 1024)", "memory", ""),
        ("raise ValueError('v' * 100000)", "exception", "ValueError"),
        ("state['cart_pos'].add_(1)", "crashed", "read-only inputs"),
        ("return x, {'y': x}", "shape", "components changed"),
        ("return x.long(), {'x': x}", "dtype", "torch.int64"),
    ],
)
def test_misbehaviour_after_n_calls_is_a_structured_error(payload, kind, fragment):
    code = COUNTER.format(payload=payload)
    assert check_source(code, NAMES) is None
    limits = SandboxLimits(memory_mb=512, call_seconds=10.0)
    r = RemoteReward(code, NAMES, filename="/rewards/late.py", limits=limits)
    state, action = _batch()
    for _ in range(4):
        total, comps = r(state, action)
        assert torch.equal(total, state["cart_pos"]) and list(comps) == ["x"]
    with pytest.raises(RewardRuntimeError) as info:
        r(state, action)
    err = info.value.error
    assert err.kind == kind, err
    assert fragment in err.message
    assert err.file == "/rewards/late.py"
    assert len(str(info.value)) < MAX_MESSAGE_CHARS + 200
    with pytest.raises(RewardRuntimeError):  # a failed reward stays failed
        r(state, action)
    assert RemoteReward(GOOD, NAMES, filename="next.py")(state, action)[0].shape == (64,)


@needs_sandbox
def test_a_reward_that_hangs_later_is_stopped_with_a_timeout():
    code = COUNTER.format(payload="while True:\n            pass")
    r = RemoteReward(code, NAMES, filename="hang.py", limits=SandboxLimits(call_seconds=1.0))
    state, action = _batch()
    for _ in range(4):
        r(state, action)
    t0 = time.monotonic()
    with pytest.raises(RewardRuntimeError) as info:
        r(state, action)
    assert time.monotonic() - t0 < 10
    assert info.value.error.kind == "timeout" and "1 s per call" in info.value.error.message
    assert info.value.error.file == "hang.py"
    assert RemoteReward(GOOD, NAMES, filename="next.py")(state, action)[0].shape == (64,)


@needs_sandbox
def test_inputs_are_copies_and_outputs_are_fresh_tensors():
    code = _body("y = state['cart_pos']")
    state, action = _batch()
    before = {k: v.clone() for k, v in state.items()}
    with RemoteReward(code, NAMES, filename="copy.py") as r:
        total, _ = r(state, action)
        total2, _ = r({**state, "cart_pos": state["cart_pos"] + 1}, action)
    assert all(torch.equal(before[k], state[k]) for k in state)
    assert torch.equal(total, state["cart_pos"]) and torch.equal(total2, state["cart_pos"] + 1)
    assert total.data_ptr() != total2.data_ptr()


@needs_sandbox
def test_batch_size_and_layout_can_change_between_calls():
    with RemoteReward(GOOD, NAMES, filename="sizes.py") as r:
        for n in (8, 4096, 3, 100):
            state, action = _batch(n)
            total, comps = r(state, action)
            expect = torch.cos(state["pole_angle"]) - 0.01 * (action**2).sum(-1)
            assert torch.allclose(total, expect, atol=1e-6) and comps["upright"].shape == (n,)
        state, action = _batch(16)
        state["pole_angle"] = state["pole_angle"].double()
        assert r(state, action)[0].dtype == torch.float32


def test_a_sandboxed_reward_cannot_be_pickled():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(RemoteReward.__new__(RemoteReward))


# ---------------------------------------------------------------------------------------------
# a machine without the boundary refuses; sandbox=none opts out loudly


def test_no_bwrap_refuses_untrusted_code_with_a_clear_message(monkeypatch, capsys):
    from rewardlab.rewards.loader import load_reward_source

    monkeypatch.setattr(boundary, "find_bwrap", lambda: None)
    boundary.unavailable_reason.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable) as info:
            load_reward_source(GOOD, NAMES, states=_states())
        msg = str(info.value)
        assert "bubblewrap is not installed" in msg and "sandbox=none" in msg
        assert "\n" not in msg and info.value.error.kind == "unavailable"
        fn = load_reward_source(GOOD, NAMES, states=_states(), sandbox="none")
        assert fn.sandbox == "none" and fn.check.ok
        assert "WARNING: sandbox=none" in capsys.readouterr().err
    finally:
        boundary.unavailable_reason.cache_clear()
    with pytest.raises(ValueError, match="sandbox: got 'off'"):
        boundary.resolve_mode("off")


# ---------------------------------------------------------------------------------------------
# trusted in-process compile (sandbox=none, and inside the reward process)


def test_compile_reward_matches_direct_call_and_guards_calls():
    fn = compile_reward(GOOD, NAMES)
    states = _states()
    action = states.pop("action")
    total, comps = fn(states, action)
    expect = torch.cos(states["pole_angle"]) - 0.01 * (action**2).sum(-1)
    assert torch.allclose(total, expect)
    bad = compile_reward(GOOD.replace("upright + effort, {", "upright[:3], {"), NAMES)
    with pytest.raises(RewardRuntimeError) as info:
        bad(states, action)
    assert info.value.error.kind == "shape"


def test_restricted_builtins_at_run_time():
    # bypassing the static check: exec'd code still lacks open/__import__ of other modules
    from rewardlab.rewards.restricted import exec_source

    ns = exec_source(_body("x = 1"), "<t>")
    assert "open" not in ns["__builtins__"] and "getattr" not in ns["__builtins__"]
    with pytest.raises(ImportError):
        ns["__builtins__"]["__import__"]("os")


# ---------------------------------------------------------------------------------------------
# training workers: trusted code, results as data only


def _raise_value_error() -> None:
    raise ValueError("bad value 42")


def _plain_result() -> dict:
    return {"x": [1.0, None, "s"], "b": b"\x00\x01", "t": torch.arange(3)}


class _Payload:
    def __reduce__(self):  # what a full unpickle would run
        return (os.system, ("touch /tmp/rewardlab-worker-pwned",))


def _pickle_bomb() -> dict:
    return {"ok": _Payload()}


def test_worker_results_come_back_as_data_only():
    out = run_in_worker(_plain_result, (), FAST)
    assert out["x"] == [1.0, None, "s"] and out["b"] == b"\x00\x01" and out["t"].tolist() == [0, 1, 2]  # fmt: skip
    with pytest.raises(SandboxFailure) as info:
        run_in_worker(_raise_value_error, (), FAST)
    assert info.value.error.kind == "exception" and "bad value 42" in info.value.error.message
    marker = Path("/tmp/rewardlab-worker-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(SandboxFailure) as info:
        run_in_worker(_pickle_bomb, (), FAST)
    assert "not plain data" in info.value.error.message
    assert not marker.exists()  # never unpickled fully


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"cpu_seconds": 0}, "cpu_seconds"),
        ({"memory_mb": -1}, "memory_mb"),
        ({"wall_seconds": True}, "wall_seconds"),
        ({"call_seconds": float("inf")}, "call_seconds"),
        ({"file_size_mb": -1}, "file_size_mb"),
    ],
)
def test_limits_are_validated(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SandboxLimits(**kwargs)
