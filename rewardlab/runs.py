"""Run directories: where one training run keeps everything it produced.

::

    runs/<task>-<YYYYmmdd-HHMMSS>/      (or the config's run_dir)
        config.yaml          the fully resolved TrainConfig (load it back with --config)
        git.json             git revision and dirty flag of the RewardLab checkout
        metrics.jsonl        one JSON object per learner iteration (PPO's runner; for SB3 converted
                             from its TensorBoard scalars after training)
        events.out.tfevents.*  TensorBoard scalars (the runner writes them): tensorboard --logdir runs
        checkpoints/         latest.pt, the last keep_checkpoints model_<iteration>.pt and the best
                             one, index.json (scores, which is best and why); SB3: sb3_<algo>.zip
        export/              policy.pt, policy.onnx, policy.json (see rewardlab.agents.export)
        videos/              eval.mp4, play.mp4
        plots/               learning_curve.png
        eval.json            the last evaluation's results

Training into a directory that already has a checkpoint resumes from it (``resume: true``);
with ``resume: false`` the earlier outputs are moved into ``previous-<timestamp>/`` first, so a
fresh run never mixes with an old one and nothing is deleted. A resumed run continues from the
newest checkpoint that loads (a corrupt ``latest.pt`` is skipped with a note), and PPO's runner
cuts metrics, TensorBoard events and checkpoints back to that iteration, so a run killed any
number of times reads like one that never was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardlab.config import TrainConfig, load_train_config, resolved_config_yaml
from rewardlab.core.config import ConfigError
from rewardlab.core.files import atomic_write

if TYPE_CHECKING:
    from rewardlab.agents.checkpoints import BestCheckpoint

SUBDIRS = ("checkpoints", "export", "videos", "plots")
"""Folders every run directory has."""

_OUTPUTS = (
    "checkpoints", "export", "videos", "plots", "metrics.jsonl", "eval.json", "config.yaml", "git.json",
)  # fmt: skip
"""What a fresh (``resume: false``) run moves aside; TensorBoard event files move too."""


def default_run_dir(task: str, root: str | Path = "runs") -> Path:
    """``runs/<task>-<YYYYmmdd-HHMMSS>`` (a ``-2``, ``-3``, ... suffix when it exists)."""
    base = Path(root) / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path
    """The run directory itself."""

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def git(self) -> Path:
        return self.root / "git.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def videos(self) -> Path:
        return self.root / "videos"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def eval_json(self) -> Path:
        return self.root / "eval.json"

    @property
    def checkpoint_index(self) -> Path:
        """``checkpoints/index.json``: each kept checkpoint's scores, the best one and why."""
        return self.checkpoints / "index.json"

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint to resume or evaluate: the newest PPO checkpoint that loads
        (``latest.pt``, else the ``model_<it>.pt`` with the highest iteration that loads), else
        the newest SB3 ``sb3_<algo>.zip``; ``None`` when the run has no checkpoint.

        A corrupt (empty, truncated, damaged) PPO checkpoint is skipped with one line on stderr
        naming it and the one used instead. When no PPO checkpoint loads, the most recent one
        is returned, so loading it raises :class:`~rewardlab.agents.checkpoints.CheckpointError`.
        """
        from rewardlab.agents import checkpoints

        found = checkpoints.candidates(self.checkpoints)
        if found:
            point, _ = checkpoints.newest_loadable(self.checkpoints)
            msg = point.message()
            if msg is not None and msg not in _NOTED:
                _NOTED.add(msg)
                print(f"[rewardlab] warning: {msg}", file=sys.stderr, flush=True)
            return point.path or found[0]
        sb3 = sorted(self.checkpoints.glob("sb3_*.zip"), key=lambda p: p.stat().st_mtime)
        return sb3[-1] if sb3 else None

    def best_checkpoint(self) -> BestCheckpoint | None:
        """The run's best PPO checkpoint as its runner recorded it in ``checkpoints/index.json``
        (path, scores, and the reason: see ``rewardlab.agents.checkpoints.BEST_METRIC``);
        ``None`` when there is no index or the file is gone. Whoever exports or evaluates the
        best checkpoint instead of the latest should say so with ``reason``."""
        from rewardlab.agents.checkpoints import best_checkpoint

        return best_checkpoint(self.checkpoints)

    def create(self) -> RunDir:
        """Make the directory and its :data:`SUBDIRS`."""
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    def archive_outputs(self) -> Path | None:
        """Move earlier outputs into ``previous-<timestamp>/``; returns it (``None`` if nothing)."""
        moving = [self.root / name for name in _OUTPUTS if (self.root / name).exists()]
        moving += sorted(self.root.glob("events.out.tfevents.*"))
        if not moving:
            return None
        dest = self.root / f"previous-{time.strftime('%Y%m%d-%H%M%S')}"
        i = 1
        while dest.exists():
            i += 1
            dest = self.root / f"previous-{time.strftime('%Y%m%d-%H%M%S')}-{i}"
        dest.mkdir()
        for p in moving:
            shutil.move(str(p), str(dest / p.name))
        return dest


def git_info(path: str | Path | None = None) -> dict[str, Any]:
    """Revision, branch and dirty flag of the git checkout holding ``path`` (default: the
    RewardLab sources); ``{"revision": "unknown", "dirty": "unknown"}`` outside a checkout or
    without git."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=True
        )
        return out.stdout.rstrip("\n")

    try:
        revision = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {"revision": "unknown", "dirty": "unknown"}
    info: dict[str, Any] = {"revision": revision, "dirty": "unknown"}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        status = git("status", "--porcelain", "--untracked-files=no")
        info["dirty"] = bool(status)
        info["changed_files"] = [line[3:] for line in status.splitlines() if line][:200]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["repo"] = git("rev-parse", "--show-toplevel")
    return info


def write_run_files(run: RunDir, cfg: TrainConfig) -> None:
    """Write ``config.yaml`` (the resolved config) and ``git.json`` into the run directory."""
    run.create()
    atomic_write(run.config, resolved_config_yaml(cfg))
    info = git_info()
    info["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write(run.git, json.dumps(info, indent=2) + "\n")


_NOTED: set[str] = set()
"""Corrupt-checkpoint notes already printed (each once per process)."""

_MUST_MATCH = ("task", "backend", "agent", "num_envs")
"""Settings a resumed run must share with the run it continues (the checkpoint depends on them)."""


def check_resumable(run: RunDir, cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` if ``cfg`` cannot continue the run saved in ``run``.

    Compares :data:`_MUST_MATCH` and the PPO network shape with the run's ``config.yaml``.
    """
    if not run.config.is_file():
        return
    import yaml

    saved = yaml.safe_load(run.config.read_text()) or {}
    keys = list(_MUST_MATCH)
    if cfg.agent == "ppo":
        keys += ["ppo.actor_hidden", "ppo.critic_hidden", "ppo.activation", "ppo.normalize_obs"]
    for key in keys:
        old: Any = saved
        for part in key.split("."):
            old = old.get(part) if isinstance(old, dict) else None
        new: Any = cfg
        for part in key.split("."):
            new = getattr(new, part)
        if isinstance(new, tuple):
            new = list(new)
        if old is not None and old != new:
            raise ConfigError(
                "command line",
                key,
                f"got {new!r}, but {run.config} (the run being resumed) has {old!r}; "
                "use the same value, another run_dir, or resume=false",
            )


def load_run_config(run_dir: str | Path, overrides: Any = ()) -> TrainConfig:
    """The :class:`TrainConfig` of an existing run (its ``config.yaml``, plus ``overrides``).

    Raises:
        ConfigError: the directory or its ``config.yaml`` is missing, or a value is invalid.
    """
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise ConfigError(
            "command line", "run_dir", f"got {str(run_dir)!r}, expected an existing run directory"
        )
    if not run.config.is_file():
        raise ConfigError(
            "command line",
            "run_dir",
            f"{str(run_dir)!r} has no config.yaml (not a RewardLab run directory)",
        )
    cfg = load_train_config(overrides, run_config=run.config)
    return dataclasses.replace(cfg, run_dir=str(run.root))
