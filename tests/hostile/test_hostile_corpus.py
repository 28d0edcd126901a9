"""The hostile-code corpus: every file in attacks/ attacks the reward sandbox.

Each attack file says in its header what it is (``# attack:``, ``# class:``), what the static
allow-list must answer (``# static: forbidden <fragment>`` or ``# static: pass``) and what may
happen when it runs in the sandbox (``# dynamic:`` error kinds, or ``contained``: it ran and its
effect was blocked). Every attack is checked twice:

- statically, by the allow-list (:func:`rewardlab.rewards.static_check.check_source`);
- dynamically, in the OS sandbox -- attacks the allow-list rejects run *with full Python* (as if
  they had escaped the static check and the restricted builtins), the others as the loader runs
  them -- called until past their delayed payload.

After each run: no file named ``*pwned*`` appeared anywhere the attacks aim at (outside the
sandbox's scratch folder), no process is left in the sandbox but its own two (bwrap's init and
the host), nothing reached the trainer's listening TCP/UDP/Unix sockets, the secret in the
trainer's environment is in no error or output, the trainer's torch/numpy are unpatched, and
the caller goes on: the next reward loads and computes correctly. Attacks share sandbox hosts
(one fork per attack), so the corpus takes well under a minute after the first start.
"""

from __future__ import annotations

import os
import re
import site
import socket
import time
from pathlib import Path

import numpy
import pytest
import torch

from rewardlab.rewards import boundary
from rewardlab.rewards.errors import MAX_MESSAGE_CHARS, RewardRuntimeError, SandboxFailure
from rewardlab.rewards.limits import SandboxLimits
from rewardlab.rewards.remote import RemoteReward, close_idle_hosts
from rewardlab.rewards.static_check import check_source

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(
        boundary.unavailable_reason() is not None,
        reason=f"no OS sandbox here: {boundary.unavailable_reason()}",
    ),
]

ATTACKS = sorted((Path(__file__).parent / "attacks").glob("h*.py"))
NAMES = ["cart_pos", "cart_vel", "pole_angle", "pole_angvel", "last_action", "prev_action"]
PORT = 47613
SECRET = "hunter2-corpus-secret"
LIMITS = SandboxLimits(memory_mb=1024, call_seconds=3.0, wall_seconds=30.0)
REPO = Path(__file__).resolve().parents[2]
GOOD = (
    "import torch\n\ndef compute_reward(state, action):\n"
    "    u = torch.cos(state['pole_angle'])\n    return u, {'u': u}\n"
)
_ORIGINALS = {
    "exp": torch.exp,
    "adam_step": torch.optim.Adam.step,
    "np_mean": numpy.mean,
    "save": torch.save,
}


def _header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"# (attack|class|static|dynamic): (.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def _payload_call(code: str) -> int:
    m = re.search(r"CALLS\[0\] == (\d+)", code)
    return int(m.group(1)) if m else 1


def _watched() -> list[Path]:
    dirs = [Path("/tmp"), Path("/root"), Path("/var/tmp"), Path("/dev/shm"), Path.home(), REPO]
    dirs += [REPO / "tests", Path.cwd()] + [Path(p) for p in site.getsitepackages()]
    return [d for d in dirs if d.is_dir()]


def _pwned() -> list[str]:
    """Files the attacks try to create outside the sandbox's scratch folder."""
    found = []
    for d in _watched():
        try:
            found += [str(p) for p in d.iterdir() if "pwned" in p.name]
        except OSError:
            continue
    return sorted(set(found))


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _sandbox_processes(host) -> list[int]:
    """PIDs (host's view) in the PID namespace of ``host``'s sandbox."""
    outer = host.proc.pid
    inits = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == outer:
                inits.append(int(entry.name))
    if not inits:
        return []
    ns = _pid_ns(inits[0])
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _pid_ns(int(p.name)) == ns]  # fmt: skip


class _Listeners:
    """TCP and UDP on every address at PORT and an abstract Unix socket: the trainer side an
    attack would try to reach."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", PORT))
        self.tcp.listen(8)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", PORT))
        self.udp.setblocking(False)
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0rewardlab-hostile-corpus")
        self.unix.listen(8)
        self.unix.setblocking(False)

    def reached(self) -> list[str]:
        hits = []
        for name, sock, op in (("tcp", self.tcp, "accept"), ("unix", self.unix, "accept"), ("udp", self.udp, "recv")):  # fmt: skip
            try:
                getattr(sock, op)(*(() if op == "accept" else (100,)))
                hits.append(name)
            except (BlockingIOError, InterruptedError):
                pass
        return hits

    def close(self) -> None:
        for s in (self.tcp, self.udp, self.unix):
            s.close()


@pytest.fixture(scope="module")
def listeners():
    for p in _pwned():  # leftovers of an earlier, failed run
        Path(p).unlink(missing_ok=True)
    lst = _Listeners()
    yield lst
    lst.close()
    close_idle_hosts()


def test_the_corpus_covers_every_class():
    assert len(ATTACKS) >= 40
    classes = {_header(p).get("class") for p in ATTACKS}
    need = {"escape", "leak", "files", "sabotage", "pickle", "orphans", "resources", "output", "network", "privilege", "protocol"}  # fmt: skip
    assert need <= classes, need - classes
    for p in ATTACKS:
        h = _header(p)
        assert {"attack", "class", "static", "dynamic"} <= set(h), p.name


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem for p in ATTACKS])
def test_static_check(path):
    code = path.read_text()
    expect = _header(path)["static"]
    err = check_source(code, NAMES)
    if expect == "pass":
        assert err is None, err  # only the OS boundary and the runtime checks can stop it
        return
    assert err is not None and err.kind == "forbidden", err
    fragment = expect.removeprefix("forbidden").strip()
    assert fragment in err.message, (fragment, err.message)
    assert err.line is not None


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem for p in ATTACKS])
def test_dynamic_in_the_sandbox(path, listeners, monkeypatch):
    monkeypatch.setenv("REWARDLAB_TEST_SECRET", SECRET)
    code = path.read_text()
    h = _header(path)
    allowed = set(h["dynamic"].split())
    unrestricted = h["static"] != "pass"
    state = {k: torch.randn(64) for k in NAMES[:4]}
    state |= {k: torch.rand(64, 1) * 2 - 1 for k in NAMES[4:]}
    action = torch.rand(64, 1) * 2 - 1
    before = {k: v.clone() for k, v in state.items()}
    outcome, err, outputs = "contained", None, []
    t0 = time.monotonic()
    try:
        reward = RemoteReward(code, NAMES, filename=str(path), limits=LIMITS, unrestricted=unrestricted)  # fmt: skip
    except SandboxFailure as exc:  # failed while loading (module-level code)
        outcome, err, reward = exc.error.kind, exc.error, None
    host = reward.host if reward is not None else None
    if reward is not None:
        try:
            for _ in range(_payload_call(code) + 2):
                total, comps = reward(state, action)
                outputs.append(total)
        except RewardRuntimeError as exc:
            outcome, err = exc.error.kind, exc.error
        finally:
            reward.close()
    elapsed = time.monotonic() - t0
    assert outcome in allowed, (outcome, err)
    if err is not None:  # a structured, bounded error naming the file
        assert err.file == str(path), err
        assert len(err.message) <= MAX_MESSAGE_CHARS
        assert SECRET not in str(err) and SECRET not in (err.traceback or "")
    for total in outputs:  # no secret smuggled out through the values either
        text = "".join(chr(int(v)) for v in total[: len(SECRET)].tolist() if 0 < v < 0x110000)
        assert SECRET not in text
    assert elapsed < 60
    # nothing outside the scratch folder, no process left, nothing reached the trainer
    assert _pwned() == []
    if host is not None and host.alive:
        assert len(_sandbox_processes(host)) <= 2, _sandbox_processes(host)
    assert listeners.reached() == []
    assert all(torch.equal(before[k], state[k]) for k in state)  # the trainer's inputs
    assert torch.exp is _ORIGINALS["exp"] and torch.optim.Adam.step is _ORIGINALS["adam_step"]
    assert numpy.mean is _ORIGINALS["np_mean"] and torch.save is _ORIGINALS["save"]
    assert float(torch.exp(torch.zeros(()))) == 1.0
    # the caller goes on: the next reward loads and computes correctly
    with RemoteReward(GOOD, NAMES, filename="next.py", limits=LIMITS) as good:
        total, comps = good(state, action)
    assert torch.allclose(total, torch.cos(state["pole_angle"])) and list(comps) == ["u"]


def test_no_sandbox_process_survives_the_corpus(listeners):
    with RemoteReward(GOOD, NAMES, filename="last.py", limits=LIMITS) as r:
        host = r.host
        r({k: torch.zeros(4) for k in NAMES[:4]} | {k: torch.zeros(4, 1) for k in NAMES[4:]}, torch.zeros(4, 1))  # fmt: skip
    procs = _sandbox_processes(host)
    assert 1 <= len(procs) <= 2  # bwrap's init and the idle host
    close_idle_hosts()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in procs)


# ---------------------------------------------------------------------------------------------
# the trainer and the search go on


HANG_LATER = (REPO / "tests" / "hostile" / "attacks").glob("h*_bomb_endless_loop_25.py")


def test_training_stops_with_a_structured_error_and_the_next_reward_trains():
    from rewardlab.envs import make_env
    from rewardlab.rewards.loader import load_reward_source

    code = next(iter(HANG_LATER)).read_text()
    env = make_env("cartpole_balance", num_envs=32, seed=0)
    try:
        reward = load_reward_source(code, env, limits=LIMITS, filename="hang.py")
        env.set_reward(reward)
        env.reset(seed=0)
        t0 = time.monotonic()
        with pytest.raises(RewardRuntimeError) as info:
            for _ in range(200):
                env.step(torch.rand(32, env.action_dim) * 2 - 1)
        assert info.value.error.kind == "timeout" and info.value.error.file == "hang.py"
        assert time.monotonic() - t0 < 30
        good = load_reward_source(GOOD, env, limits=LIMITS)
        env.set_reward(good)
        for _ in range(5):
            _, rew, _, _, _ = env.step(torch.zeros(32, env.action_dim))
        assert rew.shape == (32,) and torch.isfinite(rew).all()
        good.close()
    finally:
        env.close()


def candidate_job(code: str, steps: int) -> dict:
    """A search candidate's job in a worker process: its reward is sandboxed inside it."""
    from rewardlab.envs import make_env
    from rewardlab.rewards.loader import compile_source

    env = make_env("cartpole_balance", num_envs=16, seed=0)
    fn = compile_source(code, list(env.state_spec()), "cartpole_balance", limits=LIMITS)
    env.set_reward(fn)
    env.reset(seed=0)
    total = 0.0
    for _ in range(steps):
        _, rew, _, _, _ = env.step(torch.zeros(16, env.action_dim))
        total += float(rew.sum())
    fn.close()
    env.close()
    return {"steps": steps, "return": total}


def test_the_search_goes_on_after_a_hostile_candidate():
    from rewardlab.rewards.worker import run_in_worker

    limits = SandboxLimits(wall_seconds=240.0, cpu_seconds=240.0)
    code = next(iter((REPO / "tests" / "hostile" / "attacks").glob("h*_nan_after_30.py"))).read_text()  # fmt: skip
    with pytest.raises(SandboxFailure) as info:
        run_in_worker(candidate_job, (code, 60), limits)
    assert info.value.error.kind == "nan" and "nan_after_30" in (info.value.error.file or "") or info.value.error.kind == "nan"  # fmt: skip
    out = run_in_worker(candidate_job, (GOOD, 10), limits)
    assert out["steps"] == 10 and out["return"] > 0
