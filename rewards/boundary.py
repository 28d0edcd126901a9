"""The OS boundary around untrusted reward code: bubblewrap namespaces, an unprivileged user.

Every process that runs reward code is started by :func:`launch` as::

    bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts --unshare-cgroup-try
          --die-with-parent --new-session --clearenv
          --ro-bind <the interpreter, its packages, rewardlab's sources, /usr> ...
          --tmpfs /tmp (the one writable place, size-limited) --proc /proc --dev /dev
          [as root:  --cap-drop ALL ... -- setpriv --reuid 65534 --regid 65534 --clear-groups
                     --inh-caps=-all --bounding-set=-all --no-new-privs]
          [not root: --unshare-user --disable-userns (no capabilities)]
          -- python -I -m rewardlab.rewards.server FD

so the process has its own PID namespace (everything in it dies when the sandbox's first
process does, and bubblewrap dies with its parent), a network namespace without interfaces,
a mount namespace in which it sees only the Python installation it runs on (read-only,
wherever that is installed, ``/root/...`` included), the system's libraries (``/usr``,
read-only) and an empty scratch ``/tmp``; no environment variables but a few fixed ones; the
uid of ``nobody`` (when started by root) without capabilities, and ``no_new_privs``. Inside,
before any untrusted code runs, the server applies resource limits
(:mod:`rewardlab.rewards.limits`) and a seccomp filter
(:mod:`rewardlab.rewards.seccomp_filter`) for the rest of its life.

Why bubblewrap (``bwrap``, Debian's ``bubblewrap``, the sandbox Flatpak relies on): it is a
small, audited setuid-free tool packaged by every distribution, it works both as root and
unprivileged (user namespaces), and it starts in milliseconds. nsjail offers more in one binary
(rlimits, seccomp policies) but is not packaged by Debian 12 and would have to be built from
source or taken from an unofficial binary wheel; Landlock restricts file access only (no
namespaces) and needs kernel 5.13+. See ``docs/security.md`` for the comparison.

A machine that cannot provide this boundary gets :class:`SandboxUnavailable` with the reason,
unless the user opted out (``sandbox=none``: reward code runs in the caller's process, for code
the user trusts; a loud warning).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.rewards.errors import RewardError, SandboxUnavailable

NOBODY = 65534
"""The unprivileged uid/gid the sandbox runs as when started by root."""

SANDBOX_MODES = ("auto", "bwrap", "none")
"""Values of ``sandbox=``: ``auto``/``bwrap`` require the OS sandbox; ``none`` opts out."""

NONE_WARNING = (
    "WARNING: sandbox=none: reward code runs in this process with this user's rights -- no "
    "OS boundary, no limits. Use it only for reward code you wrote or reviewed yourself."
)
"""The warning printed (and recorded in the run directory) when the sandbox is off."""

_PACKAGE_DIRS = ("rewardlab", "rewardlab.core", "rewardlab.rewards", "rewardlab.envs", "rewardlab.envs.tasks", "rewardlab.sim_configs")  # fmt: skip
_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def find_bwrap() -> str | None:
    """Path of the ``bwrap`` executable, or ``None``."""
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap") if os.access(p, os.X_OK)), None
    )


@functools.lru_cache(maxsize=1)
def interpreter_paths() -> tuple[str, ...]:
    """What the sandboxed interpreter must read: its prefixes, its ``sys.path`` (as an
    isolated ``python -I`` sees it), and the source folders of rewardlab's packages (an
    editable install maps them outside ``site-packages``). Absolute, existing, deduplicated."""
    found: list[str] = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        found.append(p)
    exe = os.path.realpath(sys.executable)
    found.append(os.path.dirname(exe))
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-c", "import sys, json; print(json.dumps(sys.path))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        found += [p for p in json.loads(out) if isinstance(p, str) and p]
    except (OSError, subprocess.SubprocessError, ValueError):
        found += [p for p in sys.path if p and "site-packages" in p]
    for name in _PACKAGE_DIRS:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            found += list(spec.submodule_search_locations)
    # rewardlab's subpackages that are symlinks into the checkout (rewardlab/deploy -> ../deploy):
    # the reward process imports the tasks, and tasks import whatever they read (deploy's robot
    # configs), so every such folder is bound at its real place
    for top in list(found):
        if os.path.basename(top.rstrip("/")) == "rewardlab" and os.path.isdir(top):
            with contextlib.suppress(OSError):
                found += [e.path for e in os.scandir(top) if e.is_symlink() and e.is_dir()]
    # a folder reached through a symlink (rewardlab/rewards -> ../rewards) is bound at its
    # real place too, so that the link resolves inside the sandbox
    found += [os.path.realpath(p) for p in found]
    keep: list[str] = []
    for p in found:
        p = os.path.abspath(p)
        if not os.path.exists(p) or p in ("/", "/usr") or p.startswith("/usr/") or p in keep:
            continue
        keep.append(p)
    # a folder inside another one is bound with it
    keep.sort()
    out: list[str] = []
    for p in keep:
        if not any(p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return tuple(out)


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _binds() -> list[tuple[str, str]]:
    """``/usr`` read-only, the top-level ``/lib*``, ``/bin``, ``/sbin`` as on the host
    (symlinks into ``/usr`` on merged-usr systems, read-only binds otherwise), the dynamic
    linker's cache, the CPU topology, and :func:`interpreter_paths`."""
    binds = [("--ro-bind", "/usr")]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            binds.append(("--symlink", top))
        elif os.path.isdir(top):
            binds.append(("--ro-bind", top))
    for extra in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/sys/devices/system/cpu"):  # fmt: skip
        binds.append(("--ro-bind-try", extra))
    binds += [("--ro-bind", p) for p in interpreter_paths()]
    return binds


def _bind_args(binds: list[tuple[str, str]], made: Sequence[str] = ()) -> list[str]:
    """Arguments for ``binds``, each preceded by its missing parent folders made
    world-traversable (bwrap would create them with mode 0700, which the unprivileged user
    could not enter); ``made``: folders that exist already (the scratch ``/tmp``)."""
    args: list[str] = []
    done: set[str] = set(made)
    for flag, path in binds:
        if flag == "--ro-bind-try" and not os.path.exists(path):
            continue
        for parent in _parents(path):
            if parent not in done:
                args += ["--perms", "0755", "--dir", parent]
                done.add(parent)
        if flag == "--symlink":
            args += [flag, os.readlink(path), path]
        else:
            args += [flag, path, path]
        done.add(path)
    return args


def bwrap_argv(
    command: Sequence[str],
    scratch_mb: int,
    *,
    bwrap: str | None = None,
    extra_ro: Sequence[str] = (),
) -> list[str]:
    """The full ``bwrap ... -- command`` argument list (see the module docstring);
    ``extra_ro``: more folders to show read-only (benchmarks of the trainer-inside design)."""
    bwrap = bwrap or find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(RewardError("unavailable", unavailable_reason() or "no bwrap"))
    argv = [
        bwrap,
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "rewardlab-sandbox",
    ]  # fmt: skip
    for k, v in _ENV.items():
        argv += ["--setenv", k, v]
    # the scratch /tmp first: a venv or checkout that lives under /tmp is bound on top of it
    # (mounted after, the tmpfs would hide it)
    argv += ["--size", str(scratch_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
    argv += _bind_args(
        _binds() + [("--ro-bind", os.path.abspath(p)) for p in extra_ro], made=("/tmp",)
    )
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--remount-ro", "/", "--chdir", "/tmp"]
    if os.getuid() == 0:
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            argv += ["--cap-add", cap]
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        argv += ["--", setpriv, "--reuid", str(NOBODY), "--regid", str(NOBODY)]
        argv += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        argv += ["--unshare-user", "--disable-userns", "--"]
    return argv + list(command)


def server_command(fd: int) -> list[str]:
    """The sandboxed server's command line (:mod:`rewardlab.rewards.server`) on socket ``fd``."""
    return [sys.executable, "-I", "-m", "rewardlab.rewards.server", str(fd)]


# ---------------------------------------------------------------------------------------------
# Starting sandboxes from one long-lived thread

_LAUNCHER_LOCK = threading.Lock()
_LAUNCHER: Any = None


class _Launcher:
    """Starts every sandbox from one daemon thread that lives as long as the process.

    ``--die-with-parent`` ties bubblewrap to the *thread* that started it (Linux's parent-death
    signal), so a sandbox started from a pool thread would die with that thread; starting them
    all here keeps them alive until they are closed or this process ends.
    """

    def __init__(self) -> None:
        import queue

        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="rewardlab-sandbox-launcher", daemon=True).start()

    def _run(self) -> None:
        while True:
            kwargs, done, event = self.jobs.get()
            try:
                done.append(("ok", subprocess.Popen(**kwargs)))  # noqa: S603 - fixed argv
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                done.append(("err", exc))
            finally:
                event.set()

    def popen(self, **kwargs: Any) -> subprocess.Popen:
        event = threading.Event()
        done: list[tuple[str, Any]] = []
        self.jobs.put((kwargs, done, event))
        event.wait()
        status, value = done[0]
        if status == "err":
            raise value
        return value


def _launcher() -> _Launcher:
    global _LAUNCHER
    with _LAUNCHER_LOCK:
        if _LAUNCHER is None:
            _LAUNCHER = _Launcher()
        return _LAUNCHER


def launch(fd: int, scratch_mb: int) -> subprocess.Popen:
    """Start the sandboxed server on the socket ``fd`` (passed into the sandbox).

    Its stdout is closed and its stderr is a pipe (read only to explain a failed start).

    Raises:
        SandboxUnavailable: no ``bwrap`` here.
    """
    argv = bwrap_argv(server_command(fd), scratch_mb)
    return _launcher().popen(
        args=argv,
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        close_fds=True,
        env={},
        start_new_session=True,
    )


# ---------------------------------------------------------------------------------------------
# Can this machine do it?


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """``None`` when this machine can run the sandbox, else why not (one line, with the fix).

    Checks that ``bwrap`` exists, that libseccomp can build a filter, and that a sandboxed
    ``python -I`` starts as an unprivileged user in new namespaces (about 0.1 s, once).
    """
    from rewardlab.rewards import seccomp_filter

    if not sys.platform.startswith("linux"):
        return f"the reward sandbox needs Linux (namespaces, seccomp); this is {sys.platform}"
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap; dnf install bubblewrap)"
    if os.getuid() == 0 and not (shutil.which("setpriv") or os.path.exists("/usr/bin/setpriv")):
        return "setpriv (util-linux) is missing; it drops root to nobody inside the sandbox"
    why = seccomp_filter.available()
    if why:
        return why + " (apt-get install libseccomp2; pip install pyseccomp)"
    probe = "import os, sys; sys.stdout.write(str(os.getuid()))"
    try:
        res = subprocess.run(
            bwrap_argv([sys.executable, "-I", "-S", "-c", probe], 1, bwrap=bwrap),
            capture_output=True,
            text=True,
            timeout=60,
            env={},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not start: {exc}"
    if res.returncode != 0:
        err = " ".join(res.stderr.split())[:300]
        return (
            f"bwrap cannot create the sandbox here ({err or 'exit ' + str(res.returncode)}); "
            "it needs user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root"
        )
    if os.getuid() == 0 and res.stdout.strip() != str(NOBODY):
        return f"the sandbox did not drop root (uid {res.stdout.strip()!r})"
    return None


def resolve_mode(mode: str = "auto") -> str:
    """``"bwrap"`` or ``"none"`` for a ``sandbox=`` value.

    Raises:
        ValueError: an unknown mode.
        SandboxUnavailable: ``auto``/``bwrap`` on a machine without the boundary; the message
            says what is missing and that ``sandbox=none`` runs trusted code without it.
    """
    if mode not in SANDBOX_MODES:
        raise ValueError(f"sandbox: got {mode!r}, expected one of {', '.join(SANDBOX_MODES)}")
    if mode == "none":
        return "none"
    why = unavailable_reason()
    if why:
        raise SandboxUnavailable(
            RewardError(
                "unavailable",
                f"refusing to run untrusted reward code without an OS sandbox: {why}. To run "
                "reward code you trust in this process instead, pass sandbox=none.",
            )
        )
    return "bwrap"


__all__ = [
    "NONE_WARNING",
    "NOBODY",
    "SANDBOX_MODES",
    "bwrap_argv",
    "find_bwrap",
    "interpreter_paths",
    "launch",
    "resolve_mode",
    "server_command",
    "unavailable_reason",
]
