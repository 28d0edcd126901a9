"""Files: atomic writes, bounded reads, hashing. No project imports.

Everything RewardLab writes that another run or process reads (checkpoints, metrics, exports,
LLM caches, search state) goes through :func:`atomic_write`: the bytes go to a temp file in the
same folder (``.<name>.<random>.tmp``), are flushed to disk, and replace the target with
``os.replace``. A crash at any moment leaves either the old file or the new one, never a torn
one; :func:`remove_stale_temps` clears temp files that a killed process left behind. A full
disk raises :class:`DiskFullError` naming the file, never a library's internal error.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"
"""Suffix of the temp files :func:`atomic_write` makes (``.<name>.<random>.tmp``)."""


class DiskFullError(OSError):
    """No space left on the device while writing ``path`` (the old file, if any, is intact)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            errno.ENOSPC,
            f"no space left on device while writing {path}; free space there and retry "
            "(the previous file, if any, is intact)",
        )
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.strerror)


def atomic_write(path: str | Path, data: bytes | str, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    Args:
        path: the target; its folder is created when missing.
        data: bytes, or text written as UTF-8.
        fsync: flush the temp file to disk before the rename (off for files that are cheap to
            lose, such as caches).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DiskFullError: the device is full (the temp file is removed; ``path`` is untouched).
        OSError: any other write error (the temp file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from None
        raise
    return path


def remove_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temp files :func:`atomic_write` leaves when its process is killed mid-write.

    Args:
        folder: where to look (not recursive).
        name: only temps of this target file name; all of them when ``None``.

    Returns:
        The files removed. Call it only where no other process is writing the same files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{name}.*{TEMP_SUFFIX}" if name else f".*{TEMP_SUFFIX}"
    removed = []
    for p in folder.glob(pattern):
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


class FileTooLargeError(ValueError):
    """A file is larger than the caller allows (or is not a regular file)."""


def read_bytes_bounded(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FileTooLargeError: larger than ``limit``, or not a regular file (a device such as
            ``/dev/zero``, a FIFO, a folder); the message names the path and the limit.
        OSError: it cannot be read.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    with open(os.open(path, flags), "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode):  # as open() says for a folder
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise FileTooLargeError(f"{path}: not a regular file, expected a {what}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{path}: larger than {limit:,} bytes, expected a {what}")
    return data


def read_text_bounded(path: str | Path, limit: int, what: str = "text file") -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError, FileTooLargeError, OSError: as :func:`read_bytes_bounded`.
        UnicodeDecodeError: the file is not UTF-8 (``str()`` of it names the byte offset).
    """
    return read_bytes_bounded(path, limit, what).decode("utf-8")


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
