"""Checkpoint files of the on-policy runner: safe loading, the index, the best one, pruning.

A run's ``checkpoints/`` folder holds::

    latest.pt        the newest checkpoint (also written on Ctrl-C)
    model_<it>.pt    the last ``keep`` numbered checkpoints, plus the best one
    index.json       what each kept checkpoint scored, which one is best and why

Checkpoints hold only tensors and plain Python data (dicts, lists, tuples, numbers, strings),
so they load with ``torch.load(weights_only=True)``; nothing here ever unpickles a file fully.
A checkpoint that is empty, truncated, bit-flipped (the zip CRCs are checked) or not a
RewardLab checkpoint raises :class:`CheckpointError` naming the file;
:func:`newest_loadable` walks back to the newest checkpoint that does load.

The best checkpoint is chosen by :data:`BEST_METRIC`: the mean training success rate over the
iterations since the previous checkpoint (episodes that finished then, sampled actions),
ties broken by their mean return, then by the later checkpoint. Training success is measured
with exploration noise, so it can stay at 1.0 while the deterministic policy degrades; the
record says so, and a caller that evaluates checkpoints can pick by its own numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from rewardlab.core.files import atomic_write

INDEX_NAME = "index.json"
"""The index file inside a checkpoints folder."""

LATEST_NAME = "latest.pt"
"""The newest checkpoint inside a checkpoints folder."""

BEST_METRIC = (
    "charts/success_rate (then charts/episode_return, then the later checkpoint): means over "
    "the training episodes that finished since the previous checkpoint (sampled actions)"
)
"""How :func:`choose_best` ranks checkpoints, as written into ``index.json``."""

INDEX_VERSION = 1

_MODEL_RE = re.compile(r"model_(\d+)\.pt")
_REQUIRED_KEYS = ("model", "iteration", "global_step", "obs_dim", "action_dim")
_MAX_REASON = 200


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded (empty, truncated, corrupt, or not a checkpoint).

    A ``ValueError``, so command lines print its one-line message; ``path`` names the file.
    """

    def __init__(self, path: str | Path, reason: str, hint: str = "") -> None:
        reason = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
        if len(reason) > _MAX_REASON:
            reason = reason[:_MAX_REASON] + "..."
        super().__init__(f"{path}: corrupt checkpoint ({reason}){'; ' + hint if hint else ''}")
        self.path = Path(path)
        self.reason = reason


# -- plain data in, plain data out -------------------------------------------------------------


def data_digest(*arrays: np.ndarray | torch.Tensor) -> str:
    """sha256 of the arrays' bytes, in order: what identifies a learner's fixed data (demos) in
    its checkpoints, so that a resume can refuse other data."""
    h = hashlib.sha256()
    for a in arrays:
        h.update((a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a).tobytes())
    return h.hexdigest()


def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with numpy arrays and scalars turned into tensors (``weights_only``-loadable).

    Arrays become ``{"__ndarray__": tensor}`` so :func:`from_plain` gives them back as arrays.

    Raises:
        TypeError: something that is neither a tensor nor plain data (naming where it sits),
            so an unloadable checkpoint is never written.
    """
    if obj is None or isinstance(obj, bool | int | float | str | bytes | torch.Tensor):
        return obj
    if isinstance(obj, torch.dtype | torch.device | torch.Size):
        return obj
    if isinstance(obj, np.ndarray):
        try:
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj).copy())}
        except TypeError:
            raise TypeError(f"{where}: numpy dtype {obj.dtype} has no torch equivalent") from None
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: to_plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"{where}: a {type(obj).__name__} cannot go into a checkpoint "
        "(only tensors, numpy arrays and plain Python data load with weights_only=True)"
    )


def from_plain(obj: Any) -> Any:
    """Undo :func:`to_plain`: ``{"__ndarray__": tensor}`` becomes a numpy array again."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(from_plain(v) for v in obj)
    return obj


def to_bytes(state: Mapping[str, Any]) -> bytes:
    """Serialize a checkpoint dict (``torch.save`` format) into memory."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


# -- loading ---------------------------------------------------------------------------------


def load_checkpoint(source: str | Path | IO[bytes]) -> dict[str, Any]:
    """Load a runner checkpoint with ``weights_only=True``, checking it is whole.

    Args:
        source: a file path, or a binary file object (e.g. ``io.BytesIO``).

    Returns:
        The checkpoint dict (tensors on the CPU).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        CheckpointError: the file is empty, truncated, fails its zip CRC check, holds objects
            other than tensors and plain data, or lacks the runner's keys.
    """
    if isinstance(source, str | Path):
        name: str | Path = Path(source)
        try:
            data = Path(source).read_bytes()
        except IsADirectoryError:
            raise CheckpointError(name, "a directory, not a file") from None
    else:
        name = getattr(source, "name", None) or "<checkpoint in memory>"
        data = source.read()
    if not data:
        raise CheckpointError(name, "empty file")
    try:
        bad = zipfile.ZipFile(io.BytesIO(data)).testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise CheckpointError(name, f"truncated or not a torch.save zip archive: {e}") from None
    if bad is not None:
        raise CheckpointError(name, f"CRC mismatch in {bad} (the file was damaged)")
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the safe unpickler means "corrupt"
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = (
                "it holds objects other than tensors and plain data; RewardLab loads "
                "checkpoints only with weights_only=True"
            )
        else:
            reason = f"{type(e).__name__}: {e}"
        raise CheckpointError(name, reason) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(name, f"holds a {type(ckpt).__name__}, not a runner checkpoint")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(name, f"not a runner checkpoint: no {', '.join(missing)}")
    return ckpt


def numbered(folder: str | Path) -> list[tuple[int, Path]]:
    """The ``model_<it>.pt`` files in ``folder`` as ``(iteration, path)``, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _MODEL_RE.fullmatch(p.name)) and p.is_file()
    ]
    return sorted(found, reverse=True)


def candidates(folder: str | Path) -> list[Path]:
    """Checkpoints to resume from, in order of preference: ``latest.pt``, then the
    ``model_<it>.pt`` files, newest first.

    ``latest.pt`` is written last, so it is the newest complete checkpoint (its numbered file
    and index entry are on disk); a numbered file newer than it belongs to a checkpoint that a
    crash cut short, and is used only when ``latest.pt`` does not load.
    """
    folder = Path(folder)
    latest = folder / LATEST_NAME
    return ([latest] if latest.is_file() else []) + [p for _, p in numbered(folder)]


@dataclass(frozen=True)
class ResumePoint:
    """The newest checkpoint of a folder that loads, and the newer ones that did not."""

    path: Path | None
    """The checkpoint to resume from; ``None`` when none loads (or there is none)."""
    iteration: int | None
    """Its learner iteration."""
    corrupt: tuple[CheckpointError, ...] = ()
    """Errors of the more recent files that did not load, most recent first."""

    def message(self) -> str | None:
        """One line about skipped corrupt files; ``None`` when there were none."""
        if not self.corrupt:
            return None
        first = str(self.corrupt[0])
        more = f" (and {len(self.corrupt) - 1} more)" if len(self.corrupt) > 1 else ""
        if self.path is None:
            return f"{first}{more}; no earlier checkpoint loads either"
        return f"{first}{more}; using {self.path} (iteration {self.iteration}) instead"


def newest_loadable(folder: str | Path) -> tuple[ResumePoint, dict[str, Any] | None]:
    """Find the most recent checkpoint in ``folder`` that loads.

    Returns:
        The :class:`ResumePoint` and the loaded checkpoint dict (``None`` with no path).
    """
    bad: list[CheckpointError] = []
    for path in candidates(folder):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            bad.append(e)
            continue
        except FileNotFoundError:  # removed meanwhile
            continue
        return ResumePoint(path, int(ckpt["iteration"]), tuple(bad)), ckpt
    return ResumePoint(None, None, tuple(bad)), None


# -- the index: what each checkpoint scored, and the best ------------------------------------


@dataclass(frozen=True)
class CheckpointRecord:
    """One numbered checkpoint and what training measured since the previous one."""

    file: str
    """File name inside the checkpoints folder (``model_<iteration>.pt``)."""
    iteration: int
    """Learner iteration the checkpoint was taken after."""
    global_step: int
    """Env steps (summed over worlds) at that point."""
    first_iteration: int
    """First iteration of the interval the scores below average over."""
    episodes: int
    """Training episodes that finished in the interval."""
    success_rate: float | None
    """Their mean success (sampled actions); ``None`` when none finished or the task has none."""
    episode_return: float | None
    """Their mean return; ``None`` when none finished."""

    def score(self) -> tuple[float, float, int]:
        """Rank under :data:`BEST_METRIC` (larger is better)."""
        s = -math.inf if self.success_rate is None else self.success_rate
        r = -math.inf if self.episode_return is None else self.episode_return
        return (s, r, self.iteration)


@dataclass(frozen=True)
class BestCheckpoint:
    """The best checkpoint of a run under :data:`BEST_METRIC`, and why."""

    path: Path
    """The checkpoint file."""
    record: CheckpointRecord
    """Its scores."""
    reason: str
    """One sentence: the metric, its value and how many checkpoints competed."""


@dataclass(frozen=True)
class CheckpointIndex:
    """Contents of ``checkpoints/index.json`` (written atomically after every checkpoint)."""

    checkpoints: tuple[CheckpointRecord, ...]
    """Numbered checkpoints on disk, oldest first."""
    best: str | None
    """File name of the best one."""
    best_reason: str
    """Why it is the best."""
    keep: int
    """How many recent numbered checkpoints are kept besides the best (0: all)."""
    metric: str = BEST_METRIC
    """How the best is chosen."""
    history: tuple[CheckpointRecord, ...] = field(default=())
    """Records of pruned checkpoints (files deleted), oldest first, so scores are never lost."""

    def record(self, name: str) -> CheckpointRecord | None:
        """The record of the checkpoint file ``name``."""
        return next((r for r in self.checkpoints if r.file == name), None)

    def to_json(self) -> str:
        """The ``index.json`` text."""
        data = {
            "version": INDEX_VERSION,
            "metric": self.metric,
            "keep": self.keep,
            "best": self.best,
            "best_reason": self.best_reason,
            "checkpoints": [asdict(r) for r in self.checkpoints],
            "pruned": [asdict(r) for r in self.history],
        }
        return json.dumps(data, indent=1, allow_nan=False) + "\n"


def choose_best(records: Iterable[CheckpointRecord]) -> tuple[CheckpointRecord | None, str]:
    """The best record under :data:`BEST_METRIC`, and a sentence saying why."""
    records = list(records)
    if not records:
        return None, "no checkpoint yet"
    best = max(records, key=CheckpointRecord.score)
    span = f"iterations {best.first_iteration}-{best.iteration}"
    if best.success_rate is not None:
        why = f"highest mean training success rate {best.success_rate:.3f}"
        if best.episode_return is not None:
            why += f" (mean return {best.episode_return:.3f})"
    elif best.episode_return is not None:
        why = f"highest mean training return {best.episode_return:.3f}"
    else:
        why = "no training episode finished in any interval; the latest one"
    return best, (
        f"{why} over {best.episodes} episodes in {span}, among {len(records)} checkpoints "
        "(training episodes with sampled actions)"
    )


def read_index(folder: str | Path) -> CheckpointIndex | None:
    """The index of a checkpoints folder; ``None`` if there is none or it does not parse."""
    path = Path(folder) / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {f.name for f in fields(CheckpointRecord)}
        recs = tuple(
            CheckpointRecord(**{k: v for k, v in r.items() if k in names})
            for r in data["checkpoints"]
        )
        hist = tuple(
            CheckpointRecord(**{k: v for k, v in r.items() if k in names})
            for r in data.get("pruned", [])
        )
        return CheckpointIndex(
            recs, data.get("best"), str(data.get("best_reason", "")), int(data.get("keep", 0)),
            str(data.get("metric", BEST_METRIC)), hist,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def best_checkpoint(folder: str | Path) -> BestCheckpoint | None:
    """The best checkpoint recorded in ``folder/index.json``; ``None`` without one on disk."""
    folder = Path(folder)
    index = read_index(folder)
    if index is None or index.best is None:
        return None
    rec = index.record(index.best)
    path = folder / index.best
    if rec is None or not path.is_file():
        return None
    return BestCheckpoint(path, rec, index.best_reason)


def update_index(
    folder: str | Path, new: CheckpointRecord | None, keep: int
) -> tuple[CheckpointIndex, list[Path]]:
    """Add ``new`` to the index, choose the best, delete numbered checkpoints beyond the last
    ``keep`` and the best, and write ``index.json`` atomically (before deleting anything).

    Numbered files on disk without a record (a crash between writing one and the index) are
    indexed with unknown scores. With ``keep`` 0 nothing is deleted.

    Returns:
        The new index and the files deleted.
    """
    folder = Path(folder)
    old = read_index(folder)
    known = {r.file: r for r in (old.checkpoints if old else ())}
    history = list(old.history) if old else []
    if new is not None:
        known[new.file] = new
    on_disk = numbered(folder)
    records = []
    for it, path in sorted(on_disk):
        rec = known.get(path.name) or CheckpointRecord(path.name, it, -1, it, 0, None, None)
        records.append(rec)
    best, reason = choose_best(records)
    doomed: list[CheckpointRecord] = []
    if keep > 0:
        recent = {r.file for r in records[-keep:]}
        doomed = [r for r in records if r.file not in recent and (best is None or r is not best)]
    kept = tuple(r for r in records if r not in doomed)
    index = CheckpointIndex(
        kept, None if best is None else best.file, reason, keep, BEST_METRIC,
        tuple(history + doomed),
    )  # fmt: skip
    atomic_write(folder / INDEX_NAME, index.to_json())
    removed = []
    for r in doomed:
        p = folder / r.file
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return index, removed


def forget_after(folder: str | Path, iteration: int) -> list[Path]:
    """Delete numbered checkpoints taken after ``iteration`` and drop them from the index.

    A run resumed from ``iteration`` writes that future again; keeping the old files would
    mix two histories (and count against ``keep``).

    Returns:
        The files deleted.
    """
    folder = Path(folder)
    removed = []
    for it, path in numbered(folder):
        if it > iteration:
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    old = read_index(folder)
    if old is not None and (
        removed
        or any(r.iteration > iteration for r in old.checkpoints)
        or any(r.iteration > iteration for r in old.history)
    ):
        recs = tuple(r for r in old.checkpoints if r.iteration <= iteration)
        hist = tuple(r for r in old.history if r.iteration <= iteration)
        best, reason = choose_best(recs)
        index = CheckpointIndex(
            recs, None if best is None else best.file, reason, old.keep, old.metric, hist
        )
        atomic_write(folder / INDEX_NAME, index.to_json())
    return removed
