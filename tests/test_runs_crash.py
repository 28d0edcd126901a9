"""Kill training with SIGKILL at random moments and during checkpoint writes, resume each time,
and check that the run directory reads like one uninterrupted run's.

The child process is the real runner on cartpole_balance (short episodes, a small network).
Kills: at random iterations, in the middle of writing a checkpoint's temp file, and between
writing the numbered checkpoint and ``latest.pt``. After the last resume the run must have
each iteration once in ``metrics.jsonl`` and TensorBoard, no temp files, at most
``keep_checkpoints`` numbered checkpoints plus the best, and the same final parameters and
losses as a run that was never killed (the runner claims exact resume on one machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.smoke

ITERATIONS = 30
KEEP = 2

CHILD = textwrap.dedent(
    """
    import os, signal, sys

    kill_at_fsync = int(os.environ.get("KILL_AT_CHECKPOINT_FSYNC", "0"))
    kill_after_numbered = int(os.environ.get("KILL_AFTER_NUMBERED_REPLACE", "0"))
    count = {"fsync": 0, "numbered": 0}
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "/checkpoints/." in name and name.endswith(".tmp"):
            count["fsync"] += 1
            if count["fsync"] == kill_at_fsync:  # die half-way through writing the temp file
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    def replace(src, dst, **kw):
        real_replace(src, dst, **kw)
        if os.path.basename(dst).startswith("model_"):
            count["numbered"] += 1
            if count["numbered"] == kill_after_numbered:  # before index.json and latest.pt
                os.kill(os.getpid(), signal.SIGKILL)

    os.fsync, os.replace = fsync, replace

    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.envs import make_env
    from rewardlab.envs.tasks.base import get_task, replace_config

    run_dir, iterations, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    task_cfg = replace_config(get_task("cartpole_balance").default_config(), episode_steps=40)
    env = make_env("cartpole_balance", num_envs=16, cfg=task_cfg, seed=0, nthread=1)
    cfg = PPOConfig(num_steps=16, num_epochs=2, num_minibatches=2,
                    actor_hidden=(32,), critic_hidden=(32,))
    runner = OnPolicyRunner(env, cfg, log_dir=run_dir, seed=7, checkpoint_every=2,
                            keep_checkpoints=keep, num_threads=1)
    runner.resume_if_possible()
    runner.learn(iterations * 16 * cfg.num_steps, progress=False)
    import torch
    torch.save({k: v for k, v in runner.policy.state_dict().items()},
               os.path.join(run_dir, "final_params.pt"))
    print("DONE", runner.iteration, flush=True)
    """
)


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a row being written
            out.append(json.loads(line))
    return out


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_child_left_behind():
    """Kill the children a failed assertion left running (each by its own handle)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _start(script: Path, run: Path, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run), str(ITERATIONS), str(KEEP)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _STARTED.append(proc)
    return proc


def _kill_when(proc: subprocess.Popen, run: Path, rows: int, delay: float) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after ``metrics.jsonl`` reaches ``rows`` rows."""
    deadline = time.monotonic() + 120
    while len(_rows(run)) < rows:
        assert proc.poll() is None, f"child ended before row {rows}: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _tb_steps(run: Path, tag: str) -> tuple[list[int], list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    seen = [e.step for e in acc.Scalars(tag)]
    raw = []
    for f in sorted(run.glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            raw += [ev.step for v in ev.summary.value if v.tag == tag]
    return seen, raw


def test_sigkill_at_random_moments_then_resume_leaves_a_clean_exact_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("REWARDLAB_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    ctx = f"(kill seed {seed}; rerun with REWARDLAB_KILL_SEED={seed})"
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    reference = tmp_path / "reference"
    ref = _start(script, reference)  # runs beside the killed ones

    run = tmp_path / "killed"
    leftovers = []
    # 1. a kill at a random moment
    _kill_when(_start(script, run), run, rng.randint(3, 8), rng.uniform(0, 0.05))
    # 2. a kill half-way through writing a checkpoint's temp file
    proc = _start(script, run, KILL_AT_CHECKPOINT_FSYNC=str(rng.randint(2, 5)))
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.communicate()[0]
    leftovers += list(run.rglob(".*.tmp"))
    assert leftovers, f"the kill during a checkpoint write left no temp file {ctx}"
    # 3. a kill between writing model_<it>.pt and latest.pt
    proc = _start(script, run, KILL_AFTER_NUMBERED_REPLACE=str(rng.randint(1, 3)))
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.communicate()[0]
    # 4. one more at a random moment, later in the run
    done = len(_rows(run))
    _kill_when(_start(script, run), run, done + rng.randint(2, 6), rng.uniform(0, 0.05))
    # 5. resume to the end
    last = _start(script, run)
    out = last.communicate(timeout=300)[0]
    assert last.returncode == 0 and f"DONE {ITERATIONS}" in out, out[-2000:]
    out = ref.communicate(timeout=300)[0]
    assert ref.returncode == 0 and f"DONE {ITERATIONS}" in out, out[-2000:]

    rows = _rows(run)
    its = [r["iteration"] for r in rows]
    assert its == list(range(1, ITERATIONS + 1)), f"metrics iterations {its} {ctx}"
    ref_rows = _rows(reference)
    for a, b in zip(ref_rows, rows, strict=True):
        assert {k: v for k, v in a.items() if not k.startswith("perf/")} == {
            k: v for k, v in b.items() if not k.startswith("perf/")
        }, f"iteration {a['iteration']} differs from the uninterrupted run {ctx}"
    steps = [int(r["global_step"]) for r in ref_rows]
    for tag in ("losses/value", "charts/learning_rate"):
        seen, raw = _tb_steps(run, tag)
        assert seen == steps, f"TensorBoard {tag}: {seen} {ctx}"
        assert raw == steps, f"event files hold {tag} steps {raw} {ctx}"

    assert not list(run.rglob("*.tmp")), f"temp files left {ctx}"
    ckpts = run / "checkpoints"
    numbered = sorted(p.name for p in ckpts.glob("model_*.pt"))
    index = json.loads((ckpts / "index.json").read_text())
    assert len(numbered) <= KEEP + 1 and index["best"] in numbered, (numbered, index, ctx)
    assert {f"model_{ITERATIONS}.pt", f"model_{ITERATIONS - 2}.pt"} <= set(numbered)
    assert sorted(c["iteration"] for c in index["checkpoints"] + index["pruned"]) == list(
        range(2, ITERATIONS + 1, 2)
    ), ctx

    a = torch.load(reference / "final_params.pt", weights_only=True)
    b = torch.load(run / "final_params.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs from the uninterrupted run {ctx}"


def test_sigterm_saves_the_current_iteration_and_the_run_continues(tmp_path: Path) -> None:
    """``rewardlab train`` stopped with SIGTERM (a scheduler, ``timeout``, ``docker stop``)
    saves ``latest.pt`` at the iteration it was on, says how to continue and exits 143; the
    next ``rewardlab train run_dir=...`` resumes from that iteration (nothing lost since the
    last periodic checkpoint, which the default of Python's SIGTERM would lose)."""
    from rewardlab.agents.checkpoints import load_checkpoint

    run = tmp_path / "run"
    words = [f"run_dir={run}", "num_envs=16", "ppo.num_steps=16", "ppo.num_epochs=1",
             "ppo.actor_hidden=[16]", "ppo.critic_hidden=[16]", "checkpoint_every=1000",
             "eval.episodes=4", "eval.video=false"]  # fmt: skip
    cmd = [sys.executable, "-m", "rewardlab.cli", "train", "task=cartpole_balance"]
    proc = subprocess.Popen(
        [*cmd, "total_steps=100000000", *words],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _STARTED.append(proc)
    deadline = time.monotonic() + 120
    while len(_rows(run)) < 5:
        assert proc.poll() is None, f"training ended early: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "terminated (SIGTERM)" in out and f"rewardlab train run_dir={run}" in out, out
    assert "Traceback" not in out, out
    last = _rows(run)[-1]["iteration"]
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"]
    assert saved >= last >= 5, (saved, last)
    # continue a little past the saved iteration: the first new row follows it
    steps = (saved + 2) * 16 * 16
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "train", f"total_steps={steps}", *words],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    iterations = [r["iteration"] for r in _rows(run)]
    assert iterations == sorted(set(iterations)) and iterations[-1] == saved + 2, iterations
