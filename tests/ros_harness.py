"""Run a test's ROS 2 / DDS processes inside a private network namespace.

DDS discovers peers by multicast. So that no test traffic ever leaves this machine (and tests
running side by side never see each other), every test that starts DDS participants does it in a
namespace of its own::

    with RosNamespace() as ns:
        robot = ns.popen([sys.executable, "-m", "rewardlab.deploy.sim_robot", "--robot", "arm"])
        ns.run([sys.executable, "probe.py"], timeout=30)

The namespace is created with ``unshare --net`` by a holder process (``sleep``); inside it only
``lo`` exists, it is brought up with multicast enabled and ``224.0.0.0/4`` routed to it, so DDS
discovery multicast stays on ``lo``. Processes join it with ``nsenter --net``. Nothing can be sent
to any other address: the namespace has no other interface and no other route.

Every process also gets a random ``ROS_DOMAIN_ID``, Fast DDS restricted to UDP
(``FASTDDS_BUILTIN_TRANSPORTS=UDPv4``: its shared-memory transport would otherwise be visible
across namespaces through ``/dev/shm``) and the Fast DDS profile that lets rclpy (Fast DDS) and
cyclonedds peers match (see ``rewardlab.deploy.dds_env``).

Needs root (``unshare --net``); on a machine where that is not allowed the tests that use it are
skipped with the reason, never passed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parent.parent

SETUP = (
    "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo "
    "&& echo ready && exec sleep infinity"
)


def ros_python() -> str:
    """The interpreter of the ROS tier: this one when it can import rclpy, else ``.venv-ros``'s."""
    try:
        import rclpy  # noqa: F401

        return sys.executable
    except ImportError:
        candidate = REPO / ".venv-ros" / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    pytest.skip("rclpy is not installed here: run `make test-ros` (it creates .venv-ros)")


def require_namespaces() -> None:
    """Skip (with the reason) where network namespaces cannot be created."""
    missing = [t for t in ("unshare", "nsenter", "ip") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"network namespaces need {', '.join(missing)} (util-linux, iproute2)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (unshare --net)")


class RosNamespace:
    """A private network namespace with only ``lo``, and the processes started inside it.

    Args:
        log_dir: where each process's stdout+stderr goes (``<name>.log``); a temp folder if None.
        domain_id: ``ROS_DOMAIN_ID`` of every process; random in [1, 100] when None.
    """

    def __init__(self, log_dir: str | Path | None = None, domain_id: int | None = None) -> None:
        require_namespaces()
        self.log_dir = (
            Path(log_dir)
            if log_dir
            else Path(subprocess.check_output(["mktemp", "-d"], text=True).strip())
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.domain_id = domain_id if domain_id is not None else random.randint(1, 100)
        self._holder: subprocess.Popen | None = None
        self._procs: list[tuple[subprocess.Popen, IO[Any]]] = []

    # -- lifetime ------------------------------------------------------------------------------

    def __enter__(self) -> RosNamespace:
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", SETUP],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._holder.stdout.readline().strip() if self._holder.stdout else ""
        if line != "ready":
            err = self._holder.stderr.read() if self._holder.stderr else ""
            self._holder.kill()
            raise RuntimeError(f"could not set up the network namespace: {err.strip() or line}")
        links = self.check_output(["ip", "-o", "link"])
        names = sorted(ln.split(":")[1].strip() for ln in links.splitlines() if ln.strip())
        if names != ["lo"]:
            self.close()
            raise RuntimeError(f"namespace has interfaces {names}, expected only lo")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process started here (SIGINT, then SIGTERM, then SIGKILL), then the namespace."""
        for proc, _ in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 5.0
        for proc, log in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=3.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
        self._procs.clear()
        if self._holder is not None and self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait()
        self._holder = None

    # -- processes -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Process id of the namespace holder."""
        assert self._holder is not None, "use RosNamespace as a context manager"
        return self._holder.pid

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of processes in the namespace (see the module docstring)."""
        from rewardlab.deploy.dds_env import dds_environment

        env = dict(os.environ)
        env.update(dds_environment(env))
        env["ROS_DOMAIN_ID"] = str(self.domain_id)
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
        env["PYTHONUNBUFFERED"] = "1"
        env["OMP_NUM_THREADS"] = "1"
        env.setdefault("MUJOCO_GL", "egl")
        if extra:
            env.update(extra)
        return env

    def _wrap(self, args: Sequence[str]) -> list[str]:
        return ["nsenter", f"--target={self.pid}", "--net", "--", *map(str, args)]

    def popen(
        self, args: Sequence[str], name: str, env: Mapping[str, str] | None = None, **kw: Any
    ) -> subprocess.Popen:
        """Start ``args`` in the namespace; stdout and stderr go to ``<log_dir>/<name>.log``."""
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed in close())
        proc = subprocess.Popen(
            self._wrap(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(env),
            cwd=kw.pop("cwd", REPO),
            **kw,
        )
        self._procs.append((proc, log))
        return proc

    def run(
        self,
        args: Sequence[str],
        timeout: float,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run ``args`` in the namespace to completion; output captured as text."""
        res = subprocess.run(
            self._wrap(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(env),
            cwd=REPO,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, args))} exited {res.returncode}\n--- stdout\n{res.stdout[-4000:]}"
                f"\n--- stderr\n{res.stderr[-4000:]}\n--- logs\n{self.logs()}"
            )
        return res

    def check_output(self, args: Sequence[str]) -> str:
        """Output of a short command run in the namespace."""
        return subprocess.check_output(self._wrap(args), text=True, timeout=10)

    def log(self, name: str) -> str:
        """The log of the process started with ``name`` so far."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 3000) -> str:
        """The tails of every process log (for assertion messages)."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )
