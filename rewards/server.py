"""The sandboxed reward process: runs *inside* the OS sandbox (:mod:`rewardlab.rewards.boundary`).

``python -I -m rewardlab.rewards.server FD`` starts as the sandbox's *host*: it imports torch,
numpy and the reward adapters (while the files are readable), makes itself non-dumpable,
installs the host-level seccomp filter and says ``ready`` on the socket ``FD``. For each
``load`` request (a reward source, a socket and a shared-memory ``memfd`` passed with it) it
forks one *reward process*, and reports how that process ended (``exited``). Only one reward
process lives at a time; untrusted code never runs in the host.

The reward process closes everything but its own socket and memory, sets its resource limits
(:func:`rewardlab.rewards.limits.apply_rlimits`), installs the reward-level seccomp filter (no
new processes, no signals to others), sends its stdout/stderr to ``/dev/null``, and only then
executes the reward source (static check, restricted builtins, the style's adapter), and
serves ``call`` requests: the inputs are read-only views of the shared memory, the outputs are
written as float32 rows; errors go back as bounded JSON.

Nothing here is trusted by the trainer: the reward process runs hostile code, which can
replace any of these functions. The trainer's side (:mod:`rewardlab.rewards.remote`) checks
every answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import select
import signal
import socket
import sys
import warnings
from typing import Any

_PR_SET_DUMPABLE = 4


def _set_nondumpable() -> None:
    """No ``/proc/PID/mem`` and friends for processes of the same uid (the reward process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _status(raw: int) -> dict[str, Any]:
    if os.WIFSIGNALED(raw):
        return {"signal": os.WTERMSIG(raw)}
    return {"code": os.WEXITSTATUS(raw) if os.WIFEXITED(raw) else -1}


def host_main(fd: int) -> None:
    """The host loop (see the module docstring)."""
    from rewardlab.rewards import channel, seccomp_filter
    from rewardlab.rewards.channel import Conn

    ctrl = Conn(socket.socket(fileno=fd))

    # everything a reward process needs, imported while the files can be read
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from rewardlab.rewards import guard, restricted, static_check  # noqa: F401
    from rewardlab.rewards.static_check import module_allow_list, value_allow_list

    with contextlib.suppress(Exception):  # the adapters; a reward process imports it on demand
        from rewardlab.rewards import compat  # noqa: F401

    module_allow_list()
    value_allow_list()
    _set_nondumpable()
    applied = seccomp_filter.install(reward=False)
    ctrl.send({"op": "ready", "uid": os.getuid(), "pid": os.getpid(), "applied": applied})
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    while True:
        try:
            msg, fds = ctrl.recv(max_fds=channel.MAX_FDS)
        except channel.ChannelError:
            return  # the trainer went away
        op = msg.get("op")
        if op == "exit":
            return
        if op != "load" or len(fds) != 2:
            for f in fds:
                os.close(f)
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ctrl.close()
                code = reward_main(fds[0], fds[1], msg)
            finally:
                os._exit(code)
        for f in fds:
            os.close(f)
        _watch(ctrl, pid)


def _watch(ctrl: Any, pid: int) -> None:
    """Wait for reward process ``pid`` to end (killing it on request); report how it ended."""
    from rewardlab.rewards.channel import ChannelError

    pidfd = os.pidfd_open(pid)
    try:
        while True:
            if not ctrl.buf:
                ready, _, _ = select.select([ctrl.sock, pidfd], [], [])
                if pidfd in ready:
                    break
            try:
                msg, _ = ctrl.recv()
            except ChannelError:
                os.kill(pid, signal.SIGKILL)
                continue
            if msg.get("op") in ("kill", "exit"):
                os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    _, raw = os.waitpid(pid, 0)
    ctrl.send({"op": "exited", **_status(raw)})


# ---------------------------------------------------------------------------------------------
# The reward process


def _close_other_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class _Views:
    """Read-only input tensors and the writable output rows over the shared memory."""

    def __init__(self, mem_fd: int, layout_dict: dict[str, Any]) -> None:
        import numpy as np
        import torch

        from rewardlab.rewards.channel import Layout

        self.layout = lay = Layout.from_dict(layout_dict)
        if os.fstat(mem_fd).st_size < lay.size:
            raise ValueError("shared memory smaller than its layout")
        self.ro = mmap.mmap(mem_fd, lay.out_offset, mmap.MAP_SHARED, mmap.PROT_READ)
        self.rw = mmap.mmap(mem_fd, lay.size - lay.out_offset, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=lay.out_offset)  # fmt: skip
        os.close(mem_fd)
        full: dict[str, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the given buffer is not writable": on purpose
            for e in lay.entries:
                count = lay.capacity * max(1, int(np.prod(e.shape, dtype=np.int64)))
                if e.dtype == "bfloat16":
                    raw = np.frombuffer(self.ro, np.int16, count, e.offset)
                    t = torch.from_numpy(raw).view(torch.bfloat16)
                else:
                    raw = np.frombuffer(self.ro, np.dtype(e.dtype), count, e.offset)
                    t = torch.from_numpy(raw)
                full[e.name] = t.view(lay.capacity, *e.shape)
            out = np.frombuffer(self.rw, np.float32, (1 + _max_components()) * lay.capacity)
            self.out = torch.from_numpy(out).view(1 + _max_components(), lay.capacity)
        self.full = full
        self._cache: dict[int, tuple[dict[str, Any], Any]] = {}

    def inputs(self, n: int) -> tuple[dict[str, Any], Any]:
        if n not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            state = {k: v[:n] for k, v in self.full.items() if k != "action"}
            self._cache[n] = (state, self.full["action"][:n])
        return self._cache[n]


def _max_components() -> int:
    from rewardlab.rewards.channel import MAX_COMPONENTS

    return MAX_COMPONENTS


def _build(spec: dict[str, Any]) -> Any:
    """The guarded reward function of a ``load`` spec (static check and execution)."""
    from rewardlab.rewards import compat
    from rewardlab.rewards.errors import SandboxFailure
    from rewardlab.rewards.guard import compile_reward, guard_reward
    from rewardlab.rewards.restricted import classify_exception

    code, names, filename = spec["code"], list(spec["state_names"]), spec["filename"]
    style, task, dt = spec["style"], spec.get("task"), float(spec.get("control_dt", 0.02))
    if spec.get("unrestricted"):
        # tests of the OS boundary: the code runs with full Python, as if it had escaped the
        # static check and the restricted builtins
        import linecache

        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        namespace: dict[str, Any] = {"__name__": "hostile_reward"}
        exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - in the sandbox
        return guard_reward(namespace["compute_reward"], filename, check_every=1)
    if style == "native":
        return compile_reward(code, names, filename=filename, check_every=1)
    try:
        if style == "eureka":
            raw = compat.build_eureka(code, task, tuple(names), dt, spec.get("constants"), filename=filename)  # fmt: skip
        elif style == "dreureka":
            raw = compat.build_dreureka(code, task, tuple(names), dt, spec.get("constants"), filename=filename)  # fmt: skip
        elif style == "text2reward":
            raw = compat.build_text2reward(code, task, tuple(names), dt, spec.get("constants"), filename=filename)  # fmt: skip
        else:
            raise ValueError(f"unknown style {style!r}")
    except SandboxFailure:
        raise
    except Exception as exc:
        raise SandboxFailure(classify_exception(exc, filename)) from exc
    return guard_reward(raw, filename, check_every=1)


def reward_main(chan_fd: int, mem_fd: int, spec: dict[str, Any]) -> int:
    """Body of the reward process; returns its exit code."""
    import torch

    from rewardlab.rewards import seccomp_filter
    from rewardlab.rewards.channel import MAX_COMPONENTS, ChannelError, Conn
    from rewardlab.rewards.errors import RewardError, SandboxFailure
    from rewardlab.rewards.limits import SandboxLimits, apply_rlimits
    from rewardlab.rewards.restricted import StateDict, classify_exception

    chan = Conn(socket.socket(fileno=chan_fd))
    _close_other_fds({chan_fd, mem_fd})
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    limits = SandboxLimits(**spec["limits"])
    torch.set_num_threads(limits.torch_threads)
    views = _Views(mem_fd, spec["layout"])
    applied = apply_rlimits(limits, float(spec["cpu_seconds"]))
    applied += seccomp_filter.install(reward=True)
    filename = spec["filename"]

    def error(err: RewardError) -> int:
        chan.send({"op": "error", "error": err.as_dict()})
        return 0

    try:
        fn = _build(spec)
    except SandboxFailure as exc:
        return error(exc.error)
    except BaseException as exc:  # noqa: BLE001 - module-level code of the reward raised
        return error(classify_exception(exc, filename))
    chan.send({"op": "loaded", "applied": applied})
    sent_names: list[str] | None = None
    while True:
        try:
            msg, fds = chan.recv(max_fds=2)
        except ChannelError:
            return 0
        op = msg.get("op")
        if op == "layout":
            if len(fds) != 1:
                return 1
            views = _Views(fds[0], msg["layout"])
            continue
        if op != "call":
            return 0
        n = int(msg["n"])
        state, action = views.inputs(n)
        try:
            with torch.no_grad():
                total, parts = fn(StateDict(state), action)
            if len(parts) > MAX_COMPONENTS:
                return error(RewardError("shape", f"{len(parts)} components; at most {MAX_COMPONENTS}", file=filename))  # fmt: skip
            views.out[0, :n].copy_(total)
            for i, v in enumerate(parts.values()):
                views.out[1 + i, :n].copy_(v)
        except SandboxFailure as exc:
            return error(exc.error)
        except BaseException as exc:  # noqa: BLE001 - every failure is a structured error
            return error(classify_exception(exc, filename))
        names = list(parts)
        reply: dict[str, Any] = {"op": "ok", "k": len(names)}
        if names != sent_names:
            reply["names"] = names
            sent_names = names
        chan.send(reply)


def main(argv: list[str] | None = None) -> None:
    """``python -m rewardlab.rewards.server FD``."""
    args = sys.argv[1:] if argv is None else argv
    host_main(int(args[0]))


if __name__ == "__main__":
    main()
