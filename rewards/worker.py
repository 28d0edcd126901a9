"""Limited worker processes for the search's training jobs, whose results come back as data.

A reward candidate's training job (:func:`rewardlab.rewards.candidate.train_candidate`) is
*trusted* code -- the env, PPO, the evaluation -- whose reward is a
:class:`rewardlab.rewards.remote.RemoteReward`: the untrusted code itself runs in the OS sandbox,
never in the worker. The worker is a separate process for resource control: its own session
(the whole process group is killed at the wall-clock limit), CPU-time, memory, file-size and
open-file limits. Its result crosses back as data only: ``torch.save`` in the worker,
``torch.load(weights_only=True)`` here (plain containers, numbers, strings, bytes and tensors;
never a full unpickle), at most :data:`MAX_RESULT_BYTES`.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import threading
import time
import traceback as tb_module
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from rewardlab.rewards.errors import RewardError, SandboxFailure
from rewardlab.rewards.limits import DEFAULT_LIMITS, SandboxLimits, apply_rlimits
from rewardlab.rewards.restricted import classify_exception

MAX_RESULT_BYTES = 1 << 30
"""Largest result a worker may send back (a checkpoint and the training history)."""
_WORKER_OPEN_FILES = 4096
_WORKER_FILE_MB = 4096
_CTX_LOCK = threading.Lock()
_CTX: Any = None


def _timeout_message(limits: SandboxLimits) -> str:
    """One message whichever limit stopped the worker first (CPU time or wall clock: which one
    wins depends on the machine's load), so that the same work gets the same error everywhere."""
    return (
        f"did not finish within its limits ({limits.wall_seconds:g} s of wall time, "
        f"{limits.cpu_seconds:g} s of CPU time); killed"
    )


def _mp_context() -> Any:
    """A forkserver context that preloads torch, so a worker starts in ~0.1 s, not seconds."""
    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            ctx = multiprocessing.get_context("forkserver")
            with contextlib.suppress(Exception):
                ctx.set_forkserver_preload(["torch", "numpy", "rewardlab.rewards.sandbox"])
            _CTX = ctx
        return _CTX


def _start_without_main(proc: Any) -> None:
    """Start ``proc`` without re-running the caller's ``__main__`` in the child.

    multiprocessing's spawn/forkserver children import the parent's main script (so that
    functions defined there unpickle); a worker must not run the user's script, so the
    main-module entries are dropped from the preparation data. ``fn`` must therefore live in an
    importable module.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data

    def prep(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    config = multiprocessing.current_process()._config
    with _CTX_LOCK:
        spawn.get_preparation_data = prep
        # multiprocessing refuses children of daemonic processes (pool workers) because it
        # could not clean them up; run_in_worker kills and joins its child itself
        was_daemon = config.get("daemon")
        config["daemon"] = False
        try:
            proc.start()
        finally:
            spawn.get_preparation_data = original
            if was_daemon is not None:
                config["daemon"] = was_daemon


def encode_result(value: Any) -> bytes:
    """``value`` as bytes that :func:`decode_result` reads back without a full unpickle."""
    buf = io.BytesIO()
    torch.save(value, buf)
    return buf.getvalue()


def decode_result(data: bytes) -> Any:
    """Read :func:`encode_result`'s bytes with ``torch.load(weights_only=True)``.

    Raises:
        SandboxFailure: the bytes are not plain data (kind ``exception``).
    """
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, ...
        raise SandboxFailure(
            RewardError(
                "exception", f"the worker's result is not plain data: {type(exc).__name__}: {exc}"
            )  # fmt: skip
        ) from None


def _child_main(conn: Any, fn: Callable, args: tuple, limits: SandboxLimits) -> None:
    with contextlib.suppress(OSError):
        os.setsid()
    # trusted code: enough descriptors and file size for the sandboxed reward's shared memory
    # (a memfd is a file: RLIMIT_FSIZE applies to its size)
    worker = replace(limits, max_open_files=_WORKER_OPEN_FILES, file_size_mb=max(limits.file_size_mb, _WORKER_FILE_MB))  # fmt: skip
    apply_rlimits(worker, limits.cpu_seconds, nproc=False)
    signal.alarm(int(limits.wall_seconds) + 5)  # a backstop should the parent die
    torch.set_num_threads(max(1, limits.torch_threads))
    try:
        result: dict[str, Any] = {"status": "ok", "value": fn(*args)}
    except SandboxFailure as exc:
        result = {"status": "err", "error": exc.error.as_dict()}
    except MemoryError as exc:
        result = {"status": "err", "error": RewardError("memory", f"MemoryError: {exc}").as_dict()}
    except BaseException as exc:  # noqa: BLE001 - everything becomes a structured error
        err = classify_exception(exc, "<never>")
        text = "".join(tb_module.format_exception(exc))
        result = {"status": "err", "error": replace(err, traceback=text).as_dict()}
    try:
        data = encode_result(result)
    except Exception as exc:  # noqa: BLE001 - e.g. an object torch.save cannot write
        data = encode_result({"status": "err", "error": RewardError("exception", f"result could not be sent back: {exc!r}").as_dict()})  # fmt: skip
    try:
        conn.send_bytes(data)
    finally:
        conn.close()


def _kill_group(proc: Any) -> None:
    pid = proc.pid
    if pid is None:
        return
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            target()


def run_in_worker(
    fn: Callable[..., Any], args: tuple = (), limits: SandboxLimits = DEFAULT_LIMITS
) -> Any:
    """Run trusted ``fn(*args)`` in a limited worker process and return its result (as data).

    ``fn`` must be a picklable top-level callable and ``args`` picklable; the result must be
    plain data (containers, numbers, strings, bytes, tensors). The worker starts from a
    forkserver that has torch imported, gets its own session and the CPU, memory, file-size
    limits of ``limits``; past ``limits.wall_seconds`` it is killed with its process group.
    Untrusted reward code it loads runs in the OS sandbox, not in the worker.

    Raises:
        SandboxFailure: the worker raised (``error.kind`` from the exception: ``exception``,
            ``memory``, ``unknown_state``, a reward's own kinds ...), ran out of time
            (``timeout``), or died from a signal (``timeout`` for the CPU limit, ``memory``
            otherwise).
    """
    ctx = _mp_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child, fn, args, limits), daemon=True)
    _start_without_main(proc)
    child.close()
    deadline = time.monotonic() + limits.wall_seconds
    data = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if parent.poll(min(remaining, 0.5)):
                try:
                    data = parent.recv_bytes(MAX_RESULT_BYTES)
                except (EOFError, OSError):
                    data = None
                break
            if not proc.is_alive() and not parent.poll(0):
                break
    finally:
        _kill_group(proc)
        proc.join(5)
        parent.close()
    if data is not None:
        result = decode_result(data)
        if not isinstance(result, dict) or result.get("status") not in ("ok", "err"):
            raise SandboxFailure(RewardError("exception", "the worker sent a malformed result"))
        if result["status"] == "ok":
            return result.get("value")
        raise SandboxFailure(RewardError.from_dict(result.get("error")))
    if time.monotonic() >= deadline:
        raise SandboxFailure(
            RewardError("timeout", _timeout_message(limits))  # fmt: skip
        )
    code = proc.exitcode
    if code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        if -code == signal.SIGXCPU:
            raise SandboxFailure(RewardError("timeout", _timeout_message(limits)))
        raise SandboxFailure(
            RewardError("memory", f"the worker process was killed by {sig} (out of memory?)")
        )
    raise SandboxFailure(
        RewardError("exception", f"the worker process exited with status {code} and no result")
    )


run_in_sandbox = run_in_worker
"""The former name of :func:`run_in_worker` (the reward search's executors use it)."""


__all__ = ["MAX_RESULT_BYTES", "decode_result", "encode_result", "run_in_sandbox", "run_in_worker"]
