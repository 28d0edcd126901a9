"""The trainer's side of the sandboxed reward: a ``RewardFn`` that is a proxy to the sandbox.

:class:`RemoteReward` is what the loader returns for untrusted code. Calling it copies the
state and the action into shared memory, asks the sandboxed reward process
(:mod:`rewardlab.rewards.server`) to compute, waits at most ``call_seconds``, and returns
*new* tensors copied out of shared memory -- after checking them on every call:

- the answer is a bounded JSON frame with the expected fields (anything else: the process is
  killed and the call fails);
- the output has the shape ``[N]`` and dtype float32 by construction (it is read from fixed
  rows), the component names are short strings fixed after the first call, and every value
  of the total and the components is finite (``nan`` error otherwise);
- a reward that does not answer in time is killed (``timeout``); one that dies is reported
  with how it died (``crashed``: a fault, e.g. a write into its read-only inputs; ``timeout``:
  its CPU limit; ``memory``: killed by the kernel; ``exception``: anything else).

Every error is a :class:`RewardRuntimeError` whose :class:`RewardError` names the reward file
and line. The trainer's tensors never leave this process: the reward sees copies, read-only.

:class:`SandboxHost` is one running sandbox (a bubblewrap container with the server's host
process); hosts are reused one reward at a time through a small pool (:func:`acquire_host`),
so that starting a reward costs a fork, not a Python and torch start.
"""

from __future__ import annotations

import atexit
import contextlib
import mmap
import os
import re
import signal
import socket
import threading
import time
import weakref
from collections.abc import Collection, Mapping
from dataclasses import asdict
from typing import Any

import torch

from rewardlab.rewards import boundary
from rewardlab.rewards.channel import (
    MAX_COMPONENTS,
    MAX_NAME,
    ChannelError,
    Conn,
    Layout,
    create_memfd,
)
from rewardlab.rewards.errors import RewardError, RewardRuntimeError, SandboxFailure
from rewardlab.rewards.limits import DEFAULT_LIMITS, SandboxLimits

STARTUP_SECONDS = 180.0
"""How long a sandbox may take to start (a Python with torch imported) before it is given up."""
_NAME_RE = re.compile(rf"^[A-Za-z0-9_./:\-]{{1,{MAX_NAME}}}$")
_DTYPE_NAMES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
    torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32",
    torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool",
}  # fmt: skip


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class SandboxHost:
    """One running sandbox: bubblewrap with the server's host process inside.

    Raises:
        SandboxUnavailable: this machine cannot run the sandbox.
        SandboxFailure: the sandbox did not start (kind ``unavailable``, with its stderr).
    """

    def __init__(self, scratch_mb: int = DEFAULT_LIMITS.scratch_mb) -> None:
        boundary.resolve_mode("bwrap")
        self.scratch_mb = scratch_mb
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs.set_inheritable(True)
        try:
            self.proc = boundary.launch(theirs.fileno(), scratch_mb)
        finally:
            theirs.close()
        self.sock = Conn(ours)
        self.busy = False
        self.lock = threading.Lock()
        try:
            msg, _ = self.sock.recv(time.monotonic() + STARTUP_SECONDS)
            if msg.get("op") != "ready":
                raise ChannelError(f"unexpected first message {str(msg.get('op'))[:40]!r}")
        except ChannelError as exc:
            err = self._stderr()
            self.close()
            raise SandboxFailure(
                RewardError("unavailable", f"the reward sandbox did not start ({exc}): {err}")
            ) from None
        self.uid = msg.get("uid")
        self.applied = [str(a)[:40] for a in msg.get("applied", [])][:20]
        with contextlib.suppress(OSError):
            self.proc.stderr.close()  # type: ignore[union-attr]
        self._finalizer = weakref.finalize(self, _kill, self.proc)

    def _stderr(self) -> str:
        try:
            self.proc.kill()
            self.proc.wait(5)
            data = self.proc.stderr.read(4000) if self.proc.stderr else b""  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - best effort for an error message
            data = b""
        text = data.decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-6:])[:1500] or "no output"

    @property
    def alive(self) -> bool:
        """Whether the sandbox is still running."""
        return self.proc.poll() is None

    def load(self, spec: dict[str, Any], chan: socket.socket, mem_fd: int) -> None:
        """Ask the host to fork a reward process for ``spec`` on ``chan`` and ``mem_fd``."""
        self.sock.send({"op": "load", **spec}, (chan.fileno(), mem_fd))

    def wait_exit(self, seconds: float) -> dict[str, Any] | None:
        """How the current reward process ended (``{"code": c}`` / ``{"signal": s}``), or
        ``None`` if the host did not say within ``seconds``."""
        try:
            msg, _ = self.sock.recv(time.monotonic() + seconds)
        except ChannelError:
            return None
        if msg.get("op") != "exited":
            return None
        out: dict[str, Any] = {}
        for key in ("code", "signal"):
            if isinstance(msg.get(key), int):
                out[key] = msg[key]
        return out

    def kill_reward(self) -> dict[str, Any] | None:
        """Kill the current reward process; how it ended (see :meth:`wait_exit`)."""
        try:
            self.sock.send({"op": "kill"})
        except OSError:
            return None
        return self.wait_exit(5.0)

    def close(self) -> None:
        """Stop the sandbox (everything in its PID namespace dies with it)."""
        _kill(self.proc)
        with contextlib.suppress(OSError):
            self.sock.close()


def _kill(proc: Any) -> None:
    with contextlib.suppress(Exception):
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    with contextlib.suppress(Exception):
        if proc.stderr:
            proc.stderr.close()


# ---------------------------------------------------------------------------------------------
# A small pool of idle hosts

_POOL_LOCK = threading.Lock()
_POOL: list[SandboxHost] = []
MAX_IDLE_HOSTS = 2
"""Idle sandboxes kept for reuse (each is a Python with torch imported, ~300 MB)."""


def acquire_host(scratch_mb: int = DEFAULT_LIMITS.scratch_mb) -> SandboxHost:
    """An idle sandbox host (started if none is idle), marked busy for the caller."""
    with _POOL_LOCK:
        while _POOL:
            host = _POOL.pop()
            if host.alive and host.scratch_mb == scratch_mb:
                host.busy = True
                return host
            host.close()
    host = SandboxHost(scratch_mb)
    host.busy = True
    return host


def release_host(host: SandboxHost) -> None:
    """Give back a host whose reward process has ended (closed if the pool is full)."""
    host.busy = False
    with _POOL_LOCK:
        if host.alive and len(_POOL) < MAX_IDLE_HOSTS:
            _POOL.append(host)
            return
    host.close()


@atexit.register
def close_idle_hosts() -> None:
    """Stop every idle sandbox host."""
    with _POOL_LOCK:
        hosts, _POOL[:] = list(_POOL), []
    for h in hosts:
        h.close()


# ---------------------------------------------------------------------------------------------
# The proxy


class RemoteReward:
    """``fn(state, action) -> (total [N], {name: [N]})`` evaluated in the sandbox.

    Args:
        code: the reward source (any style the loader detected).
        state_names: the task's state entries.
        style: ``native``, ``eureka`` or ``text2reward``.
        task: task name for the style's name maps.
        control_dt: the env's control step (Eureka's ``dt``).
        filename: shown in errors and tracebacks (the file's path).
        limits: limits of the reward process.
        cpu_seconds: its ``RLIMIT_CPU`` (default ``limits.train_cpu_seconds``).
        check_finite: check that every output value is finite on every call.
        constants: constants of the foreign names of ``task`` (JSON data,
            :func:`rewardlab.rewards.compat.env_constants`), computed here from the env.
        unrestricted: for tests of the OS boundary only: execute the code with full Python
            (no static check, all builtins), as if it had escaped both.

    Raises:
        SandboxFailure: the source failed the sandbox's checks or raised while loading.
        SandboxUnavailable: no sandbox on this machine.
    """

    def __init__(
        self,
        code: str,
        state_names: Collection[str],
        style: str = "native",
        task: str | None = None,
        control_dt: float = 0.02,
        *,
        filename: str,
        limits: SandboxLimits = DEFAULT_LIMITS,
        cpu_seconds: float | None = None,
        check_finite: bool = True,
        constants: Mapping[str, Any] | None = None,
        unrestricted: bool = False,
    ) -> None:
        self.source = code
        self.style = style
        self.filename = filename
        self.limits = limits
        self.check_finite = check_finite
        self.call_seconds = limits.call_seconds
        self.deadline: float | None = None
        """Absolute ``time.monotonic()`` no call may pass (a trial run's wall clock)."""
        self.components: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
        self._died = False
        self._status: dict[str, Any] | None = None
        self._layout: Layout | None = None
        self._key: Any = None
        self._mem: mmap.mmap | None = None
        self._in: dict[str, torch.Tensor] = {}
        self._out: torch.Tensor | None = None
        self._spec = {
            "code": code,
            "state_names": list(state_names),
            "style": style,
            "task": task,
            "control_dt": float(control_dt),
            "filename": filename,
            "limits": asdict(limits),
            "cpu_seconds": float(
                cpu_seconds if cpu_seconds is not None else limits.train_cpu_seconds
            ),
            "unrestricted": bool(unrestricted),
            "constants": dict(constants or {}),
        }
        self.host = acquire_host(limits.scratch_mb)
        self._chan: Conn | None = None
        try:
            self._start(self._initial_layout(state_names))
        except BaseException:
            self.close()
            raise
        self._finalizer = weakref.finalize(self, _finalize, self.host, self._chan)

    # -- set-up ------------------------------------------------------------------------------

    @staticmethod
    def _initial_layout(state_names: Collection[str]) -> Layout:
        specs = [(n, "float32", (1,)) for n in state_names] + [("action", "float32", (1,))]
        return Layout.build(specs, 1)

    def _map(self, layout: Layout) -> int:
        fd = create_memfd(layout.size)
        if self._mem is not None:
            self._in, self._out = {}, None
            with contextlib.suppress(BufferError):
                self._mem.close()
        self._mem = mmap.mmap(fd, layout.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        whole = torch.frombuffer(self._mem, dtype=torch.uint8)
        for e in layout.entries:
            dtype = getattr(torch, e.dtype)
            nbytes = e.nbytes(layout.capacity)
            self._in[e.name] = whole[e.offset : e.offset + nbytes].view(dtype).view(layout.capacity, *e.shape)  # fmt: skip
        out_bytes = (1 + MAX_COMPONENTS) * layout.capacity * 4
        self._out = whole[layout.out_offset : layout.out_offset + out_bytes].view(torch.float32).view(1 + MAX_COMPONENTS, layout.capacity)  # fmt: skip
        self._layout = layout
        return fd

    def _start(self, layout: Layout) -> None:
        fd = self._map(layout)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.host.load({**self._spec, "layout": layout.as_dict()}, theirs, fd)
        finally:
            theirs.close()
            os.close(fd)
        self._chan = Conn(ours)
        msg = self._receive(time.monotonic() + max(self.limits.wall_seconds, 60.0), "loading")
        if msg.get("op") != "loaded":
            self._fail(RewardError("exception", "the reward process answered out of turn"))
        self.applied = [str(a)[:40] for a in msg.get("applied", [])][:20] if isinstance(msg.get("applied"), list) else []  # fmt: skip

    # -- errors ------------------------------------------------------------------------------

    def _error(self, kind: str, message: str) -> RewardError:
        return RewardError(kind, message, file=self.filename)

    def _fail(self, err: RewardError, kill: bool = True) -> None:
        """End the reward process (killing it if still alive), then raise ``err`` naming the
        file. ``kill`` is kept for readability: the process is always ended."""
        self._stop()
        if not err.file:
            err = RewardError(err.kind, err.message, err.line, err.traceback, self.filename)
        raise RewardRuntimeError(err)

    def _timeout(self, what: str) -> RewardError:
        """One message whichever limit stops the reward first: CPU time or wall clock (which one
        wins depends on the machine's load), so that a reward gets the same error everywhere. A
        search's reflection prompt quotes it, and replaying the search from its LLM cache needs
        the prompt byte for byte."""
        seconds = self.call_seconds if self.deadline is None else None
        wall = f"{seconds:g} s per call" if seconds else "the trial's wall-clock limit"
        cpu = f"{self._spec['cpu_seconds']:g} s of CPU time"
        return self._error("timeout", f"no result within its limits ({wall}, {cpu}) while {what}; killed")  # fmt: skip

    def _death(self, status: dict[str, Any] | None, what: str) -> RewardError:
        if status is None:
            return self._error("crashed", f"the reward process stopped answering while {what}")
        sig = status.get("signal")
        if sig == signal.SIGXCPU:
            return self._timeout(what)
        if sig in (signal.SIGSEGV, signal.SIGBUS):
            return self._error(
                "crashed",
                f"the reward process crashed with {_signal_name(sig)} while {what}: it wrote "
                "into its read-only inputs (state or action), or native code faulted",
            )
        if sig == signal.SIGKILL:
            return self._error("memory", f"the reward process was killed (SIGKILL, out of memory?) while {what}")  # fmt: skip
        if sig is not None:
            return self._error("crashed", f"the reward process was killed by {_signal_name(sig)} while {what}")  # fmt: skip
        return self._error("exception", f"the reward process exited (status {status.get('code')}) while {what}")  # fmt: skip

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        assert self._chan is not None
        try:
            msg, _ = self._chan.recv(deadline)
        except ChannelError as exc:
            if exc.timeout:
                self._fail(self._timeout(what))
            # it died (the host says how) or broke the protocol (then it is killed)
            status = self._end(wait=1.0)
            broke = status is not None and status.get("signal") == signal.SIGKILL and not self._died
            err = self._death(status, what) if not broke else self._error("crashed", f"the reward process broke the protocol while {what} ({exc}); killed")  # fmt: skip
            self._fail(err)
        if msg.get("op") == "error":
            self._end(wait=2.0)
            self._fail(RewardError.from_dict(msg.get("error")))
        return msg

    # -- calls -------------------------------------------------------------------------------

    def _ensure_layout(self, state: Mapping[str, Any], action: torch.Tensor) -> None:
        n = int(action.shape[0])
        key = tuple((k, v.dtype, tuple(v.shape[1:])) for k, v in state.items()) + (("action", action.dtype, tuple(action.shape[1:])),)  # fmt: skip
        if key == self._key and self._layout is not None and n <= self._layout.capacity:
            return
        specs = []
        for name, dtype, shape in key:
            if dtype not in _DTYPE_NAMES:
                self._fail(self._error("dtype", f"state entry {name!r} has dtype {dtype}, which cannot be sent to the reward"))  # fmt: skip
            specs.append((name, _DTYPE_NAMES[dtype], shape))
        capacity = max(n, self._layout.capacity if self._layout and self._key == key else 0)
        layout = Layout.build(specs, capacity)
        fd = self._map(layout)
        try:
            assert self._chan is not None
            self._chan.send({"op": "layout", "layout": layout.as_dict()}, (fd,))
        except OSError:
            self._fail(self._death(self._end(wait=1.0), "receiving a new layout"))
        finally:
            os.close(fd)
        self._key = key

    def __call__(
        self, state: Mapping[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The reward of a batch; raises :class:`RewardRuntimeError` on any failure."""
        with self._lock:
            if self._closed:
                raise RewardRuntimeError(self._error("exception", "the reward was closed (after an error?)"))  # fmt: skip
            self.calls += 1
            state = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in state.items()}  # fmt: skip
            self._ensure_layout(state, action)
            n = int(action.shape[0])
            with torch.no_grad():
                for k, v in [*state.items(), ("action", action)]:
                    if v.shape[:1] != (n,):
                        raise RewardRuntimeError(self._error("shape", f"state entry {k!r} has shape {list(v.shape)}; expected [{n}, ...] like the action"))  # fmt: skip
                    self._in[k][:n].copy_(v)
            now = time.monotonic()
            deadline = now + self.call_seconds
            if self.deadline is not None:
                deadline = min(deadline, self.deadline) if self.deadline > now else now
            assert self._chan is not None
            try:
                self._chan.send({"op": "call", "n": n})
            except OSError:
                self._fail(self._death(self._end(wait=1.0), f"call {self.calls}"))
            msg = self._receive(deadline, f"call {self.calls}")
            return self._result(msg, n, action.device)

    def _result(self, msg: dict[str, Any], n: int, device: torch.device) -> Any:
        if msg.get("op") != "ok":
            self._fail(self._error("exception", "the reward process answered out of turn"))
        k = msg.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_COMPONENTS:
            self._fail(self._error("shape", "the reward process sent a malformed answer"))
        if "names" in msg:
            names = msg["names"]
            if (
                not isinstance(names, list)
                or len(names) != k
                or not all(isinstance(x, str) and _NAME_RE.match(x) for x in names)
                or len(set(names)) != k
            ):
                self._fail(self._error("shape", f"component names must be up to {MAX_COMPONENTS} distinct strings of 1-{MAX_NAME} letters, digits or _./:-"))  # fmt: skip
            if self.calls > 1 and names != self.components:
                self._fail(self._error("shape", f"the components changed from {self.components} to {names} at call {self.calls}"))  # fmt: skip
            self.components = names
        elif k != len(self.components):
            self._fail(self._error("shape", "the number of components changed"))
        assert self._out is not None
        out = self._out[: 1 + k, :n].clone()  # a private copy: the sandbox may keep writing
        if self.check_finite:
            finite = torch.isfinite(out)
            if not bool(finite.all()):
                bad_rows = (~finite).sum(1).tolist()
                names = ["total", *self.components]
                worst = [f"{names[i]} ({c} of {n})" for i, c in enumerate(bad_rows) if c][:4]
                self._fail(self._error("nan", f"NaN or infinite values at call {self.calls}: {', '.join(worst)}"))  # fmt: skip
        if device.type != "cpu":
            out = out.to(device, non_blocking=False)
        return out[0], {name: out[1 + i] for i, name in enumerate(self.components)}

    # -- life --------------------------------------------------------------------------------

    def _end(self, wait: float, kill: bool = True) -> dict[str, Any] | None:
        """Make sure the reward process has ended: wait ``wait`` s for the host to report its
        end, else kill it (when ``kill``); how it ended, once (``None``: the host did not say;
        then the whole sandbox is stopped)."""
        if self._ended:
            return self._status
        self._ended = True
        status = self.host.wait_exit(wait)
        self._died = status is not None
        if status is None and kill:
            status = self.host.kill_reward()
        if status is None:
            self.host.close()
        self._status = status
        return status

    def _stop(self) -> None:
        """End the reward process (see :meth:`_end`) and give its host back."""
        if self._closed:
            return
        self._closed = True
        if self._chan is not None:
            with contextlib.suppress(OSError):
                self._chan.close()
        self._end(wait=0.0)
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:  # the host may serve another reward from now on
            finalizer.detach()
        release_host(self.host)

    def close(self) -> None:
        """End the reward process (its sandbox host goes back to the pool)."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            if self._chan is not None and not self._ended:
                self._chan.send({"op": "close"})
                self._end(wait=5.0)
        with contextlib.suppress(Exception):
            self._stop()

    def __enter__(self) -> RemoteReward:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> Any:
        raise TypeError("a sandboxed reward cannot be pickled; load it again where it is used")


def _finalize(host: SandboxHost, chan: Conn | None) -> None:
    """Garbage-collected without close(): stop its sandbox (the host may be mid-reward)."""
    with contextlib.suppress(Exception):
        if chan is not None:
            chan.close()
    with contextlib.suppress(Exception):
        if host.busy:
            host.close()


__all__ = ["MAX_IDLE_HOSTS", "RemoteReward", "SandboxHost", "acquire_host", "close_idle_hosts", "release_host"]  # fmt: skip
