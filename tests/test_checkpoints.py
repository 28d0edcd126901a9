"""Checkpoint files that survive crashes: corrupt files, safe loading, full disks, pruning,
the best checkpoint, and logs cut back to the iteration a run continues from."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rewardlab.agents import checkpoints
from rewardlab.agents.checkpoints import CheckpointError, CheckpointRecord
from rewardlab.agents.config import PPOConfig
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.core.files import DiskFullError
from rewardlab.envs import make_env
from rewardlab.envs.tasks.base import get_task, replace_config
from rewardlab.runs import RunDir

pytestmark = pytest.mark.unit

CFG = PPOConfig(
    num_steps=16, num_epochs=2, num_minibatches=2, actor_hidden=(16,), critic_hidden=(16,)
)
ITER_STEPS = 8 * CFG.num_steps  # env steps per iteration with 8 worlds


def small_env():
    cfg = replace_config(get_task("cartpole_balance").default_config(), episode_steps=20)
    return make_env("cartpole_balance", num_envs=8, cfg=cfg, seed=0, nthread=1)


def runner(log_dir: Path | None, **kw) -> OnPolicyRunner:
    return OnPolicyRunner(small_env(), CFG, log_dir=log_dir, seed=0, num_threads=1, **kw)


def trained(tmp_path: Path, iters: int = 4, **kw) -> OnPolicyRunner:
    r = runner(tmp_path, checkpoint_every=1, **kw)
    r.learn(iters * ITER_STEPS, progress=False)
    return r


# -- corrupt checkpoints ------------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "bitflip":  # a byte inside a tensor: torch.load alone would not notice
        tensor = torch.load(path, weights_only=True)["model"]["actor.0.weight"]
        i = data.find(tensor.numpy().tobytes()[:16])
        assert i > 0
        flipped = bytearray(data)
        flipped[i + 3] ^= 0x40
        path.write_bytes(bytes(flipped))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "bitflip"])
def test_corrupt_latest_is_named_and_the_previous_checkpoint_is_used(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture
) -> None:
    trained(tmp_path, iters=3)
    ckpts = tmp_path / "checkpoints"
    latest = ckpts / "latest.pt"
    _damage(latest, how)
    _damage(ckpts / "model_3.pt", how)  # the same state twice: both damaged

    with pytest.raises(CheckpointError) as info:
        runner(None).load(latest)
    msg = str(info.value)
    assert str(latest) in msg and "corrupt checkpoint" in msg and "\n" not in msg
    assert f"{ckpts / 'model_2.pt'} (iteration 2)" in msg, msg
    assert isinstance(info.value, ValueError) and len(msg) < 600

    capsys.readouterr()
    r = runner(None)
    assert r.resume_if_possible(tmp_path)
    assert r.iteration == 2
    out = capsys.readouterr().out
    assert f"{latest}: corrupt checkpoint" in out and "(and 1 more)" in out
    assert f"using {ckpts / 'model_2.pt'} (iteration 2) instead" in out

    # the CLI's view of the run directory falls back the same way, with a note on stderr
    assert RunDir(tmp_path).latest_checkpoint() == ckpts / "model_2.pt"
    assert "corrupt checkpoint" in capsys.readouterr().err


def test_no_loadable_checkpoint_raises_one_line(tmp_path: Path) -> None:
    trained(tmp_path, iters=1)
    for p in (tmp_path / "checkpoints").glob("*.pt"):
        _damage(p, "truncated")
    assert not runner(None).resume_if_possible(tmp_path)
    path = RunDir(tmp_path).latest_checkpoint()
    assert path == tmp_path / "checkpoints" / "latest.pt"  # loading it says what is wrong
    with pytest.raises(CheckpointError, match="no other checkpoint beside it loads"):
        runner(None).load(path)


class _Boom:
    """Unpickling this would create a file: proof that a checkpoint was fully unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoints_are_never_fully_unpickled(tmp_path: Path) -> None:
    r = runner(None)
    state = r.state_dict()
    marker = tmp_path / "unpickled"
    state["extra"] = _Boom(str(marker))
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        runner(None).load(path)
    assert not marker.exists()
    with pytest.raises(TypeError, match="cannot go into a checkpoint"):
        checkpoints.to_plain({"a": [1, _Boom("x")]})


def test_saved_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    trained(tmp_path, iters=2)
    ckpt = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["env"] is not None and ckpt["iteration"] == 2
    r2 = runner(None)
    r2.load(io.BytesIO((tmp_path / "checkpoints" / "latest.pt").read_bytes()))
    assert r2.iteration == 2


def test_the_runner_has_no_full_unpickle_fallback() -> None:
    import rewardlab.agents.checkpoints as mod_c
    import rewardlab.agents.runner as mod_r

    for mod in (mod_r, mod_c):
        src = Path(mod.__file__).read_text()
        assert "weights_only=False" not in src and "import pickle" not in src, mod.__name__


# -- full disks ---------------------------------------------------------------------------------


def test_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = runner(tmp_path)
    path = r.save(tmp_path / "checkpoints" / "latest.pt")
    good = path.read_bytes()
    real_fdopen = os.fdopen

    class FullFile(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.f = real_fdopen(fd, "wb")

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.f.close()
            super().close()

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullFile(fd))
    with pytest.raises(DiskFullError) as info:
        r.save(path)
    assert str(info.value).startswith(f"no space left on device while writing {path}")
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temp file left


_FULL_DISK_CHILD = textwrap.dedent(
    """
    import sys
    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.core.files import DiskFullError
    from rewardlab.envs import make_env

    env = make_env("cartpole_balance", num_envs=64, seed=0, nthread=1)
    cfg = PPOConfig(actor_hidden=(256, 256), critic_hidden=(256, 256))
    r = OnPolicyRunner(env, cfg, log_dir=sys.argv[1], seed=0)
    try:
        r.learn(64 * cfg.num_steps, progress=False)
    except DiskFullError as e:
        print("DISKFULL", e)
    """
)


def test_full_tmpfs_says_no_space_left_and_where(tmp_path: Path) -> None:
    """A real full file system: a 256 KiB tmpfs in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a private mount namespace")
    mnt = tmp_path / "small"
    mnt.mkdir()
    run = mnt / "run"
    script = tmp_path / "child.py"
    script.write_text(_FULL_DISK_CHILD)
    shell = (
        f"mount -t tmpfs -o size=256k tmpfs {mnt} && "
        f"{sys.executable} {script} {run}; echo FILES; ls -a {run}/checkpoints {run}"
    )
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {mnt}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace: {probe.stderr.strip()[:200]}")
    res = subprocess.run(
        ["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, timeout=300
    )
    out = res.stdout + res.stderr
    assert "DISKFULL no space left on device while writing" in res.stdout, out[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("DISKFULL"))
    assert str(run) in line and "enforce fail" not in out, line
    listing = res.stdout.split("FILES", 1)[1]
    assert ".tmp" not in listing, listing


# -- pruning and the best checkpoint ------------------------------------------------------------


def test_keeps_the_last_k_and_the_best(tmp_path: Path) -> None:
    r = trained(tmp_path, iters=8, keep_checkpoints=2)
    ckpts = tmp_path / "checkpoints"
    index = json.loads((ckpts / "index.json").read_text())
    best = index["best"]
    kept = sorted(p.name for p in ckpts.glob("model_*.pt"))
    assert set(kept) == {"model_7.pt", "model_8.pt", best}
    assert [c["file"] for c in index["checkpoints"]] == sorted(kept, key=lambda n: int(n[6:-3]))
    # every checkpoint's score stays in the index, pruned or not
    scored = index["checkpoints"] + index["pruned"]
    assert sorted(c["iteration"] for c in scored) == list(range(1, 9))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for c in scored:  # the scores are the episode-weighted means of the interval's rows
        span = [x for x in rows if x["iteration"] == c["iteration"] and "charts/episodes" in x]
        n = sum(x["charts/episodes"] for x in span)
        assert c["episodes"] == n
        if n:
            mean = sum(x["charts/success_rate"] * x["charts/episodes"] for x in span) / n
            assert c["success_rate"] == pytest.approx(mean)
    top = max(scored, key=lambda c: (c["success_rate"] if c["success_rate"] is not None
                                     else -1, c["episode_return"] or -1e9, c["iteration"]))  # fmt: skip
    assert best == top["file"]
    assert "success rate" in index["best_reason"] and index["metric"] == checkpoints.BEST_METRIC

    found = RunDir(tmp_path).best_checkpoint()
    assert found is not None and found.path == ckpts / best
    assert found.record.iteration == top["iteration"] and found.reason == index["best_reason"]
    assert r.best_checkpoint() == found


def test_keep_zero_keeps_every_checkpoint(tmp_path: Path) -> None:
    trained(tmp_path, iters=4, keep_checkpoints=0)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("model_*.pt"))
    assert names == [f"model_{i}.pt" for i in range(1, 5)]
    with pytest.raises(ValueError, match="keep_checkpoints"):
        runner(None, keep_checkpoints=-1)


def test_best_is_chosen_by_success_then_return_then_later() -> None:
    def rec(it, s, r):
        return CheckpointRecord(f"model_{it}.pt", it, it * 10, it, 5, s, r)

    best, why = checkpoints.choose_best([rec(1, 0.5, 9.0), rec(2, 1.0, 3.0), rec(3, 1.0, 2.0)])
    assert best is not None and best.iteration == 2 and "1.000" in why and "3 checkpoints" in why
    best, _ = checkpoints.choose_best([rec(1, None, 1.0), rec(2, None, 4.0), rec(3, None, None)])
    assert best is not None and best.iteration == 2
    best, _ = checkpoints.choose_best([rec(1, 1.0, 2.0), rec(2, 1.0, 2.0)])
    assert best is not None and best.iteration == 2


# -- cutting the logs back to the checkpoint ----------------------------------------------------


def _crash_after(r: OnPolicyRunner, iterations: int) -> None:
    """Make ``r.learn`` die (like a kill) in the rollout after ``iterations`` iterations."""
    env, real = r.env, r.env.step
    calls = {"n": 0}

    def step(actions):
        calls["n"] += 1
        if calls["n"] > iterations * CFG.num_steps:
            raise RuntimeError("simulated crash")
        return real(actions)

    env.step = step  # type: ignore[method-assign]


def _tensorboard_steps(log_dir: Path, tag: str = "losses/value") -> tuple[list, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    seen = [e.step for e in acc.Scalars(tag)]
    raw = []  # what a reader without purge semantics sees, file after file
    for f in sorted(log_dir.glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            raw += [ev.step for v in ev.summary.value if v.tag == tag]
    return seen, raw


def test_resume_cuts_metrics_tensorboard_and_checkpoints_back(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    straight = runner(tmp_path / "straight", checkpoint_every=3)
    hist = straight.learn(10 * ITER_STEPS, progress=False)

    r = runner(tmp_path / "run", checkpoint_every=3)
    _crash_after(r, 8)  # checkpoints at 3 and 6; rows 7 and 8 written, then a crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        r.learn(10 * ITER_STEPS, progress=False)
    run = tmp_path / "run"
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 9, "glob')  # a row torn by a kill
    (run / "checkpoints" / ".model_9.pt.abc123.tmp").write_bytes(b"partial")
    (run / ".metrics.jsonl.xyz.tmp").write_bytes(b"partial")
    (run / "checkpoints" / "model_7.pt").write_bytes(b"from a future being rewritten")

    again = runner(run, checkpoint_every=3)
    assert again.resume_if_possible() and again.iteration == 6
    capsys.readouterr()
    again.learn(10 * ITER_STEPS, progress=True)
    note = capsys.readouterr().out.splitlines()[0]
    assert note.startswith("[ppo] continuing at iteration 6:"), note
    assert "removed 2 temp file(s)" in note and "dropped 3 metrics.jsonl row(s)" in note
    assert "model_7.pt" in note and "TensorBoard" in note

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in rows] == list(range(1, 11))
    for a, b in zip(hist, rows, strict=True):  # exact resume: the same numbers
        assert a["losses/value"] == b["losses/value"] and a["global_step"] == b["global_step"]
    seen, raw = _tensorboard_steps(run)
    steps = [ITER_STEPS * i for i in range(1, 11)]
    assert seen == steps and raw == steps, (seen, raw)
    assert not list(run.rglob("*.tmp"))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["index.json", "latest.pt", "model_10.pt", "model_3.pt", "model_6.pt",
                     "model_9.pt"]  # fmt: skip
    for a, b in zip(straight.policy.parameters(), again.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_purge_step_alone_hides_duplicates_from_tensorboard(tmp_path: Path) -> None:
    """Our event files honour TensorBoard's purge semantics too (readers that use them)."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for s in range(1, 6):
        w.add_scalar("x", s, s)
    w.close()
    w = SummaryWriter(str(tmp_path), purge_step=3)
    for s in range(3, 5):
        w.add_scalar("x", 10 * s, s)
    w.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("x")] == [(1, 1), (2, 2), (3, 30), (4, 40)]


def test_corrupt_bytes_in_memory_raise_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="<checkpoint in memory>: corrupt checkpoint"):
        runner(None).load(io.BytesIO(b"not a checkpoint"))


@pytest.mark.unit
def test_a_new_tensorboard_file_is_named_after_the_existing_ones(tmp_path: Path) -> None:
    """TensorBoard reads event files in name order, and a name starts with its creation second:
    a writer opened in the same second as an earlier file (per-process counter 10 < 9 as text, or
    another pid) would sort first and its steps would be read out of order. The runner waits for
    the next second before it opens one."""
    import time

    from rewardlab.agents.runner import _after_existing_event_files

    now = int(time.time())
    (tmp_path / f"events.out.tfevents.{now}.host.99999.9").write_bytes(b"")
    _after_existing_event_files(tmp_path)
    assert int(time.time()) > now
    future = now + 3600  # a file from a machine whose clock runs ahead: no hour-long wait
    (tmp_path / f"events.out.tfevents.{future}.host.1.0").write_bytes(b"")
    start = time.monotonic()
    _after_existing_event_files(tmp_path)
    assert time.monotonic() - start < 3.0
