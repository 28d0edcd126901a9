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
        task/                the task files it trained on: task.json (each file's path and sha256),
                             a YAML task's YAML and MJCF files (so eval/play find the task
                             anywhere), a Python task's module source (its model files: hashes)

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
    "task",
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
    """Write ``config.yaml`` (the resolved config), ``git.json`` and ``task/`` (the task's
    files: :func:`record_task_files`) into the run directory."""
    run.create()
    atomic_write(run.config, resolved_config_yaml(cfg))
    info = git_info()
    info["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write(run.git, json.dumps(info, indent=2) + "\n")
    record_task_files(run, cfg.task)


TASK_RECORD = "task"
"""Folder of a run directory holding the task files it trained on."""
_RECORD_LIMIT = 64 << 20
"""Most bytes of task files a run directory copies (larger trees are recorded by hash only)."""


def mjcf_files(path: Path) -> list[Path]:
    """An MJCF file and every file it reads that exists: ``<include>`` files (recursively) and
    asset files (meshes, textures, height fields, skins; ``compiler`` meshdir / texturedir /
    assetdir honoured)."""
    import xml.etree.ElementTree as ET

    out: list[Path] = []
    dirs: dict[str, Path] = {}

    def walk(p: Path, model_dir: Path) -> None:
        if p in out or not p.is_file():
            return
        out.append(p)
        try:
            root = ET.parse(p).getroot()
        except (ET.ParseError, OSError):
            return
        for comp in root.iter("compiler"):
            for key in ("assetdir", "meshdir", "texturedir"):
                if comp.get(key):
                    dirs[key] = model_dir / str(comp.get(key))
        for el in root.iter():
            f = el.get("file")
            if not f or el.tag == "compiler":
                continue
            if el.tag == "include":
                walk((p.parent / f).resolve(), model_dir)
                continue
            key = {"mesh": "meshdir", "skin": "meshdir", "texture": "texturedir"}.get(el.tag, "assetdir")  # fmt: skip
            base = dirs.get(key) or dirs.get("assetdir") or model_dir
            q = (base / f).resolve()
            if q.is_file() and q not in out:
                out.append(q)

    path = Path(path).resolve()
    walk(path, path.parent)
    return out


def record_task_files(run: RunDir, task: str) -> Path | None:
    """Record the files that define ``task`` in ``<run>/task/``: ``task.json`` lists each with
    its sha256; a YAML task's YAML and the MJCF files it reads (those under the YAML's folder)
    are copied, so that ``eval`` and ``play`` find the task from the run directory alone; a
    Python task's module sources are copied and its model files hashed. Returns the folder
    (``None`` when the task is not registered)."""
    import shutil

    from rewardlab.core.files import sha256
    from rewardlab.envs import get_task, task_names

    if task not in task_names():
        return None
    cls = get_task(task)
    dest = run.root / TASK_RECORD
    spec = getattr(cls, "spec", None)
    if spec is not None:  # a YAML task
        kind, base = "yaml", Path(spec.path).parent
        files = [Path(spec.path), *mjcf_files(Path(spec.model))]
    else:
        kind, base = "python", None
        files = [Path(f) for f in cls.task_files()]
    entries, total = [], 0
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not f.is_file():
            continue
        entry: dict[str, Any] = {"path": str(f), "sha256": sha256(f), "copy": None}
        size = f.stat().st_size
        if kind == "yaml" and base is not None and f.is_relative_to(base) and total + size <= _RECORD_LIMIT:  # fmt: skip
            rel = f.relative_to(base)
        elif kind == "python" and f.suffix == ".py":
            rel = Path("source") / f.name
        else:
            rel = None
        if rel is not None:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest / rel)
            entry["copy"] = str(rel)
            total += size
        entries.append(entry)
    record = {"task": task, "kind": kind, "files": entries}
    if kind == "yaml":
        record["yaml"] = str(Path(spec.path).relative_to(base))
    atomic_write(dest / "task.json", json.dumps(record, indent=2) + "\n")
    return dest


def register_recorded_task(run: RunDir, task: str) -> str | None:
    """Make a run's task available from its ``task/`` record: a YAML task that is not
    registered (trained from another folder, another machine) is registered from the copy;
    a registered YAML task whose file differs from the recorded one gets a warning on stderr.
    Returns what was done, or ``None``."""
    from rewardlab.core.files import sha256
    from rewardlab.envs import task_names

    record_path = run.root / TASK_RECORD / "task.json"
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("task") != task or record.get("kind") != "yaml":
        return None
    copy = run.root / TASK_RECORD / str(record.get("yaml"))
    if task not in task_names():
        from rewardlab.envs.tasks.mjcf_yaml import register_yaml_task

        register_yaml_task(copy)
        return f"registered task {task!r} from {copy}"
    first = record["files"][0] if record.get("files") else None
    if first and Path(first["path"]).is_file() and sha256(Path(first["path"])) != first["sha256"]:
        msg = f"task {task!r}: {first['path']} changed since this run trained (the run recorded it in {copy})"  # fmt: skip
        print(f"[rewardlab] warning: {msg}", file=sys.stderr, flush=True)
        return msg
    return None


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
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
        task = (yaml.safe_load(run.config.read_text()) or {}).get("task")
        if isinstance(task, str):
            register_recorded_task(run, task)  # a YAML task trained elsewhere: from task/
    cfg = load_train_config(overrides, run_config=run.config)
    return dataclasses.replace(cfg, run_dir=str(run.root))
