"""Run a command in a fresh network namespace whose only interface is loopback (tests, demos).

DDS discovery multicasts to the local network. Tests must keep every packet on this machine:
:func:`run_in_netns` starts the command under ``unshare -n`` (a new, empty network namespace;
needs root or user namespaces), brings ``lo`` up and routes multicast (``224.0.0.0/4``) to it,
so DDS participants inside find each other and nothing can leave. Processes started by the
command (a sim robot, a deploy node) share the namespace.

Linux only. :func:`netns_available` says whether it works here.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

SETUP = "ip link set lo up && ip route add 224.0.0.0/4 dev lo"
"""Shell commands run inside the namespace before the command."""


def in_netns() -> bool:
    """True inside a namespace made by :func:`run_in_netns` (it sets ``REWARDLAB_NETNS=1``)."""
    return os.environ.get("REWARDLAB_NETNS") == "1"


@functools.cache
def netns_available() -> bool:
    """``unshare -n`` and ``ip`` work here (root or unprivileged user namespaces)."""
    if (
        not sys.platform.startswith("linux")
        or not shutil.which("unshare")
        or not shutil.which("ip")
    ):
        return False
    for prefix in ([], ["-r"]):
        try:
            r = subprocess.run(
                ["unshare", *prefix, "-n", "sh", "-c", SETUP], capture_output=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return True
    return False


def netns_command(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped to run in a fresh loopback-only network namespace."""
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    inner = f"{SETUP} && exec {shlex.join(argv)}"
    return [*prefix, "sh", "-c", inner]


def run_in_netns(
    argv: Sequence[str],
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a fresh network namespace (loopback only) and wait for it.

    Args:
        argv: the command (e.g. ``[sys.executable, "-m", "pytest", ...]``).
        timeout: seconds before it is killed (``subprocess.TimeoutExpired``).
        env: extra environment variables (``REWARDLAB_NETNS=1`` is always set).
        cwd: working directory.

    Returns:
        The completed process (text stdout/stderr captured).
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["REWARDLAB_NETNS"] = "1"
    return subprocess.run(
        netns_command(argv), capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd
    )
