"""The seccomp filter of the sandboxed reward process (libseccomp through ``pyseccomp``).

Installed inside the sandbox before any untrusted code runs, and kept for the process's whole
life (a seccomp filter cannot be removed; further filters only restrict more; children and
threads inherit it). Two levels:

- the sandbox's *host* process (trusted code that forks one reward process at a time): no
  ``execve``, ``ptrace``, mounts, namespaces, new sockets (raw or any other), kernel modules,
  BPF, keyrings, ``io_uring``, identity changes, ...; it may fork, but not into new namespaces;
- the *reward* process adds: no new processes at all (``clone`` only for threads; ``fork``,
  ``vfork`` refused, ``clone3`` answers ``ENOSYS`` so glibc falls back to ``clone``), no
  signals to any process but itself, no ``pidfd`` tricks.

Denied calls fail with ``EPERM`` (an ``OSError`` in Python: a structured error, not a crash);
calls of another architecture's ABI (x32, i386) kill the process (libseccomp's default).
"""

from __future__ import annotations

import errno
import os
from typing import Any

DENIED_ALWAYS = (
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "acct", "swapon", "swapoff",
    "reboot", "sethostname", "setdomainname", "iopl", "ioperm", "quotactl",
    "name_to_handle_at", "open_by_handle_at", "lookup_dcookie", "fanotify_init", "mknod",
    "mknodat", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "personality", "vhangup", "socket", "socketpair", "connect", "bind", "listen", "accept",
    "accept4", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capset", "shmget", "semget", "msgget",
    "vfork", "fork",
)  # fmt: skip
"""System calls refused to every process in the sandbox (host and reward)."""

DENIED_IN_REWARD = ("pidfd_open", "pidfd_send_signal", "tkill")
"""System calls refused to the reward process on top of :data:`DENIED_ALWAYS`."""

_CLONE_THREAD = 0x00010000
_CLONE_NEW = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080,
}  # fmt: skip


def _filter() -> Any:
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_ALWAYS:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):  # a call this kernel/arch does not have
            continue
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are in memory: glibc falls back
    for flag in _CLONE_NEW.values():
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    return f


def install(reward: bool) -> list[str]:
    """Install the filter in the calling process (and its future threads and children).

    Args:
        reward: the reward process's level (no new processes, signals only to itself); else
            the host's.

    Returns:
        What was installed, e.g. ``["seccomp", "no-exec", "no-fork", "no-signals"]``.

    Raises:
        OSError: libseccomp is missing or the kernel refused the filter.
    """
    import pyseccomp as sc

    f = _filter()
    applied = ["seccomp", "no-exec", "no-sockets", "no-mount", "no-ptrace"]
    if reward:
        me = os.getpid()
        for name in DENIED_IN_REWARD:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        # threads only: a clone without CLONE_THREAD is a new process
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
        for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
            f.add_rule(sc.ERRNO(errno.EPERM), name, sc.Arg(0, sc.NE, me))
        applied += ["no-fork", "no-signals"]
    f.load()
    return applied


def available() -> str | None:
    """``None`` if a filter can be built here, else why not (one line)."""
    try:
        _filter()
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError from ctypes, ...
        return f"seccomp filters unavailable: {type(exc).__name__}: {exc}"
    return None


__all__ = ["DENIED_ALWAYS", "DENIED_IN_REWARD", "available", "install"]
