"""Resource limits of the processes that run reward code, and applying them (``setrlimit``).

:class:`SandboxLimits` is the one description of how much a reward process (and a candidate's
training worker) may use; :func:`apply_rlimits` applies it to the calling process. Inside the
OS sandbox it runs before any untrusted code does, so the limits hold for the reward's whole
life (an ``RLIMIT`` can only be lowered afterwards).
"""

from __future__ import annotations

import contextlib
import math
import resource
from dataclasses import dataclass

_MB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of a process that runs reward code (trial runs, training) or a training job."""

    cpu_seconds: float = 60.0
    """CPU time of a trial run's reward process, or of a training job's worker
    (``RLIMIT_CPU``); the process is killed after that."""
    memory_mb: int = 4096
    """Memory the process may allocate beyond what it had at start (``RLIMIT_DATA``; the
    address space, ``RLIMIT_AS``, gets twice this plus 1 GiB as a backstop, since torch maps
    large libraries)."""
    wall_seconds: float = 120.0
    """Wall-clock time of a trial run (or a training job) after which it is killed."""
    call_seconds: float = 10.0
    """Wall-clock budget of one reward call during training (a 4096-world call takes well
    under a millisecond); a reward past it is killed with a ``timeout`` error."""
    train_cpu_seconds: float = 7 * 24 * 3600.0
    """``RLIMIT_CPU`` of a reward process that serves a training run (its whole life)."""
    max_ms_per_call: float = 50.0
    """Speed check: the most milliseconds one reward call may take on the recorded 4096-world
    batch (one CPU thread). A vectorized reward takes well under 1 ms; a Python loop over the
    worlds takes tens to hundreds."""
    file_size_mb: int = 0
    """Largest file the reward process may write (``RLIMIT_FSIZE``), in its scratch
    directory, the only writable place it sees; 0 forbids writing files."""
    scratch_mb: int = 16
    """Size of the reward process's scratch directory (a tmpfs that dies with it)."""
    max_open_files: int = 64
    """``RLIMIT_NOFILE`` of the reward process (new file descriptors above this fail)."""
    max_processes: int = 256
    """``RLIMIT_NPROC`` of the sandbox's unprivileged user (threads count; new processes are
    refused by the seccomp filter anyway)."""
    torch_threads: int = 1
    """``torch.set_num_threads`` in the reward process."""

    def __post_init__(self) -> None:
        positive = ("cpu_seconds", "memory_mb", "wall_seconds", "call_seconds", "train_cpu_seconds", "max_ms_per_call", "scratch_mb", "max_open_files", "max_processes", "torch_threads")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or not math.isfinite(value):  # fmt: skip
                raise ValueError(f"SandboxLimits.{name}: got {value!r}, expected a number > 0")
        if isinstance(self.file_size_mb, bool) or not isinstance(self.file_size_mb, int) or self.file_size_mb < 0:  # fmt: skip
            raise ValueError(
                f"SandboxLimits.file_size_mb: got {self.file_size_mb!r}, expected an integer >= 0"
            )


DEFAULT_LIMITS = SandboxLimits()
"""The default :class:`SandboxLimits`."""


def status_kb(key: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmData``, ``VmSize``, ...); 0 if absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def apply_rlimits(limits: SandboxLimits, cpu_seconds: float, *, nproc: bool = True) -> list[str]:
    """Set the calling process's resource limits; returns the names of those applied.

    Args:
        limits: the limits (memory relative to what the process has now).
        cpu_seconds: ``RLIMIT_CPU`` (the caller picks trial or training time).
        nproc: also set ``RLIMIT_NPROC`` (counts every process of the user, so only for a
            dedicated unprivileged user).
    """
    applied: list[str] = []

    def setlim(res: int, value: int, name: str) -> None:
        _, hard = resource.getrlimit(res)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        soft_hard = (value, value + 1 if res == resource.RLIMIT_CPU else value)
        try:
            resource.setrlimit(res, soft_hard)
        except (ValueError, OSError):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(res, (value, hard))
            if resource.getrlimit(res)[0] != value:
                return
        applied.append(name)

    setlim(resource.RLIMIT_CORE, 0, "core=0")
    setlim(resource.RLIMIT_CPU, max(1, math.ceil(cpu_seconds)), "cpu")
    setlim(resource.RLIMIT_DATA, status_kb("VmData") * 1024 + limits.memory_mb * _MB, "data")
    setlim(resource.RLIMIT_AS, status_kb("VmSize") * 1024 + (2 * limits.memory_mb + 1024) * _MB, "address-space")  # fmt: skip
    setlim(resource.RLIMIT_FSIZE, limits.file_size_mb * _MB, "fsize")
    setlim(resource.RLIMIT_NOFILE, limits.max_open_files, "nofile")
    if nproc:
        setlim(resource.RLIMIT_NPROC, limits.max_processes, "nproc")
    return applied


__all__ = ["DEFAULT_LIMITS", "SandboxLimits", "apply_rlimits", "status_kb"]
