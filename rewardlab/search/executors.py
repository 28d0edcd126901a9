"""Where candidate jobs run: a local pool of sandboxed worker processes, or a Ray cluster.

A *job* is a picklable top-level function and its arguments (``train_candidate(spec)``). Every
job runs in a limited worker process (:func:`rewardlab.rewards.worker.run_in_worker`, alias
``run_in_sandbox``: CPU time, memory, wall-clock kill of its process group; its result comes
back as plain data, read with ``torch.load(weights_only=True)``). The job itself is trusted code;
the LLM-written reward it trains on runs in the OS sandbox (a
:class:`rewardlab.rewards.remote.RemoteReward`), never in the worker. Its outcome is a
:class:`JobOutcome`: the result, or the structured :class:`RewardError` of a failure
(exception, timeout, out of memory); an executor never raises for a failed job.

- :class:`ProcessExecutor` (default): up to ``workers`` jobs at once on this machine, each in
  its own limited worker process (a thread per job waits on it; the GIL is not held).
- :class:`RayExecutor`: one Ray task per job (``num_cpus`` / ``num_gpus`` reserved per job,
  ``max_calls=1`` so that every job gets a fresh worker process); inside the task the job runs
  in the same limited worker as locally. ``ray.init(address=...)`` joins a cluster, so a
  search that outgrows one machine runs unchanged across many.

What it cannot do: move files between machines (results travel back as the return value, so
they must stay small), pre-empt a running job for a better one, or retry a job whose worker
node died (it is reported as a failed job).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any

from rewardlab.rewards import sandbox
from rewardlab.rewards.sandbox import RewardError, SandboxFailure, SandboxLimits, run_in_sandbox

PRELOAD = ("torch", "numpy", "rewardlab.rewards.sandbox", "rewardlab.search.candidate")
"""Modules the sandbox's forkserver imports once, so that a training job's child starts in a
fraction of a second instead of importing torch, MuJoCo and the trainer (seconds) every time."""


def preload_training_modules() -> bool:
    """Ask the sandbox's forkserver to preload :data:`PRELOAD` (before it first starts).

    Returns:
        Whether the request can still take effect (the forkserver was not running yet).
    """
    ctx = sandbox._mp_context()
    server = forkserver._forkserver
    if getattr(server, "_forkserver_pid", None) is not None:
        return False
    ctx.set_forkserver_preload(list(PRELOAD))
    return True


@dataclass
class Job:
    """One unit of work: ``fn(*args)`` in a sandboxed process."""

    key: str
    """Identifies the job in callbacks and outcomes (e.g. ``r1c3/rung0``)."""
    fn: Callable[..., Any]
    """A picklable top-level function."""
    args: tuple
    """Its picklable arguments."""


@dataclass
class JobOutcome:
    """What became of a job."""

    key: str
    ok: bool
    value: Any = None
    """The job's return value when ``ok``."""
    error: RewardError | None = None
    """Why it failed, when not ``ok``."""
    seconds: float = 0.0
    """Wall time from start to end of the job, as the executor saw it."""


Callback = Callable[[JobOutcome], None]


def _run_local(job: Job, limits: SandboxLimits) -> JobOutcome:
    t0 = time.perf_counter()
    try:
        value = run_in_sandbox(job.fn, job.args, limits)
        return JobOutcome(job.key, True, value, None, time.perf_counter() - t0)
    except SandboxFailure as e:
        return JobOutcome(job.key, False, None, e.error, time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable argument: a failed job
        err = RewardError("exception", f"{type(e).__name__}: {e}")
        return JobOutcome(job.key, False, None, err, time.perf_counter() - t0)


class ProcessExecutor:
    """Runs jobs in sandboxed child processes on this machine, ``workers`` at a time.

    Args:
        limits: the sandbox limits of every job's process.
        workers: parallel jobs; 0: ``os.cpu_count()``.
    """

    name = "process"

    def __init__(self, limits: SandboxLimits, workers: int = 0) -> None:
        self.limits = limits
        self.workers = workers or os.cpu_count() or 1
        preload_training_modules()

    def run(self, jobs: Sequence[Job], on_done: Callback | None = None) -> list[JobOutcome]:
        """Run ``jobs``; ``on_done`` is called (in the caller's thread) as each one finishes.

        Returns:
            Outcomes in the order of ``jobs``.
        """
        out: dict[str, JobOutcome] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="candidate")
        try:
            pending: set[Future[JobOutcome]] = {
                pool.submit(_run_local, j, self.limits) for j in jobs
            }
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    o = f.result()
                    out[o.key] = o
                    if on_done is not None:
                        on_done(o)
        except BaseException:
            # Ctrl-C or a failing callback: start nothing new; running jobs end at their limits
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [out[j.key] for j in jobs]

    def close(self) -> None:
        """Nothing to release (children end with their jobs)."""


class SequentialExecutor(ProcessExecutor):
    """One sandboxed job at a time (the baseline of the throughput benchmark)."""

    name = "sequential"

    def __init__(self, limits: SandboxLimits, workers: int = 1) -> None:
        super().__init__(limits, 1)


def _ray_job(fn: Callable[..., Any], args: tuple, limits: SandboxLimits) -> tuple[str, Any, float]:
    """Body of a Ray task: the job in a sandboxed child of the Ray worker."""
    t0 = time.perf_counter()
    try:
        return "ok", run_in_sandbox(fn, args, limits), time.perf_counter() - t0
    except SandboxFailure as e:
        return "err", e.error, time.perf_counter() - t0


class RayExecutor:
    """Runs each job as a Ray task (one fresh worker process per job).

    Args:
        limits: the sandbox limits of every job's process (applied inside the Ray worker).
        num_cpus: CPUs reserved per job.
        num_gpus: GPUs reserved per job (Ray sets ``CUDA_VISIBLE_DEVICES`` for the task).
        address: cluster address for ``ray.init``; ``None``: join a running local cluster or
            start one; an already initialized Ray is used as is.
        init: more ``ray.init`` arguments (e.g. ``{"num_cpus": 2}`` for a local instance).
    """

    name = "ray"

    def __init__(
        self,
        limits: SandboxLimits,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        address: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray  # optional (the ray extra): imported only when this executor is used
        except ImportError as e:  # pragma: no cover - ray is in the test extras
            raise RuntimeError(
                "executor=ray needs Ray: pip install 'rewardlab[ray]' (or pip install ray)"
            ) from e
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": True, **(init or {})}
            ray.init(address=address, **kwargs)
            self._started = True
        self.limits = limits
        self._remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_calls=1, max_retries=0)(
            _ray_job
        )
        self._lock = threading.Lock()

    def run(self, jobs: Sequence[Job], on_done: Callback | None = None) -> list[JobOutcome]:
        """Submit every job to Ray; ``on_done`` is called as each finishes.

        Returns:
            Outcomes in the order of ``jobs``; a task that Ray could not run (worker died,
            cancelled) is a failed job with kind ``exception``.
        """
        ray = self._ray
        refs = {self._remote.remote(j.fn, j.args, self.limits): j.key for j in jobs}
        started = {r: time.perf_counter() for r in refs}
        out: dict[str, JobOutcome] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                key = refs[r]
                try:
                    status, value, seconds = ray.get(r)
                    o = (
                        JobOutcome(key, True, value, None, seconds)
                        if status == "ok"
                        else JobOutcome(key, False, None, value, seconds)
                    )
                except Exception as e:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                    err = RewardError("exception", f"Ray task failed: {type(e).__name__}: {e}")
                    o = JobOutcome(key, False, None, err, time.perf_counter() - started[r])
                out[key] = o
                if on_done is not None:
                    on_done(o)
        return [out[j.key] for j in jobs]

    def close(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(
    kind: str,
    limits: SandboxLimits,
    workers: int = 0,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    address: str | None = None,
    ray_init: dict[str, Any] | None = None,
) -> ProcessExecutor | RayExecutor:
    """The executor ``kind`` names: ``process``, ``sequential`` or ``ray``."""
    if kind == "process":
        return ProcessExecutor(limits, workers)
    if kind == "sequential":
        return SequentialExecutor(limits)
    if kind == "ray":
        return RayExecutor(limits, num_cpus, num_gpus, address, ray_init)
    raise ValueError(f"executor: got {kind!r}, expected process, sequential or ray")


def run_all(
    executor: Any, jobs: Iterable[Job], on_done: Callback | None = None
) -> list[JobOutcome]:
    """``executor.run(list(jobs), on_done)``; an empty job list returns at once."""
    jobs = list(jobs)
    return executor.run(jobs, on_done) if jobs else []
