"""The wire between the trainer and the sandboxed reward process: bounded JSON frames and a
shared-memory layout.

Messages are length-prefixed JSON objects on a Unix stream socket (4-byte big-endian length,
at most :data:`MAX_FRAME` bytes); file descriptors (the shared memory) travel with a frame as
``SCM_RIGHTS``, only from the trainer to the sandbox. Whatever the sandbox sends is parsed as
data with a size limit and checked field by field by the receiver: no pickle crosses the
boundary in either direction.

Tensors travel through one sealed ``memfd`` (:class:`Layout`): the trainer writes the state and
the action into the input region, the reward process maps that region read-only (an in-place
write into its inputs faults) and writes the total and the components into the output
region, one float32 row each. The trainer seals the size (``F_SEAL_GROW | F_SEAL_SHRINK``), so
the sandbox cannot make the trainer's mapping fault by truncating it.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

MAX_FRAME = 1 << 20
"""Largest frame either side accepts (the reward source travels in one)."""
MAX_FDS = 4
"""Most file descriptors accepted with one frame."""
MAX_COMPONENTS = 64
"""Most reward components one reward may return."""
MAX_NAME = 64
"""Longest component name."""
PAGE = mmap.PAGESIZE

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")  # fmt: skip
"""State dtypes that can cross (by name)."""


class ChannelError(Exception):
    """The peer broke the protocol, closed the socket, or did not answer in time."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class Conn:
    """A socket with a receive buffer: frames are read with as few system calls as possible
    (one ``poll`` and usually one ``recv``)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, obj: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        """Send one frame (and ``fds`` with it)."""
        data = json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()
        if len(data) > MAX_FRAME:
            raise ChannelError(f"message of {len(data)} bytes exceeds {MAX_FRAME}")
        frame = struct.pack(">I", len(data)) + data
        sent = socket.send_fds(self.sock, [frame], list(fds)) if fds else self.sock.send(frame)
        if sent < len(frame):
            self.sock.sendall(frame[sent:])

    def _fill(self, deadline: float | None, max_fds: int, fds: list[int]) -> None:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poll.poll(max(0, int(remaining * 1000) + 1)):
                raise ChannelError("no answer in time", timeout=True)
        try:
            if max_fds and not fds:
                chunk, got, _, _ = socket.recv_fds(self.sock, 1 << 16, max_fds)
                fds += got
            else:
                chunk = self.sock.recv(1 << 16)
        except OSError as exc:  # ECONNRESET: the peer died with data unread
            raise ChannelError(f"the connection broke: {exc.strerror or exc}") from None
        if not chunk:
            raise ChannelError("the peer closed the connection")
        self.buf += chunk
        if len(self.buf) > MAX_FRAME + 4:
            raise ChannelError("the peer sent more than one frame's worth of data")

    def recv(self, deadline: float | None = None, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:  # fmt: skip
        """Receive one frame: ``(object, fds)``; at most ``max_fds`` descriptors are accepted
        (others the kernel closes).

        Raises:
            ChannelError: end of stream, a malformed or oversized frame, or ``deadline``
                (``time.monotonic()``) passed (``.timeout`` true).
        """
        fds: list[int] = []
        try:
            while len(self.buf) < 4:
                self._fill(deadline, max_fds, fds)
            (size,) = struct.unpack(">I", self.buf[:4])
            if size > MAX_FRAME:
                raise ChannelError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            while len(self.buf) < 4 + size:
                self._fill(deadline, max_fds, fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        data = bytes(self.buf[4 : 4 + size])
        del self.buf[: 4 + size]
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ChannelError(f"malformed frame: {type(exc).__name__}") from None
        if not isinstance(obj, dict):
            raise ChannelError("malformed frame: not an object")
        return obj, fds


# ---------------------------------------------------------------------------------------------
# Shared memory layout


@dataclass(frozen=True)
class Entry:
    """One input tensor in shared memory: ``[capacity, *shape]`` of ``dtype`` at ``offset``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int

    def nbytes(self, rows: int) -> int:
        """Bytes of ``rows`` rows."""
        return rows * math.prod(self.shape) * _itemsize(self.dtype)


def _itemsize(dtype: str) -> int:
    return {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}.get(dtype, 1)  # fmt: skip


def _align(n: int, to: int = 64) -> int:
    return -(-n // to) * to


@dataclass(frozen=True)
class Layout:
    """Where everything lives in the shared memory of one reward process."""

    capacity: int
    """Rows (worlds) each region holds."""
    entries: tuple[Entry, ...]
    """The state entries and, last, ``"action"``."""
    out_offset: int
    """Start of the output region (page-aligned): ``1 + MAX_COMPONENTS`` float32 rows."""
    size: int
    """Total bytes (page-aligned)."""

    @staticmethod
    def build(specs: list[tuple[str, str, tuple[int, ...]]], capacity: int) -> Layout:
        """Lay out ``(name, dtype, per-world shape)`` inputs for ``capacity`` worlds."""
        entries, offset = [], 0
        for name, dtype, shape in specs:
            entry = Entry(name, dtype, tuple(shape), offset)
            entries.append(entry)
            offset = _align(offset + entry.nbytes(capacity))
        out_offset = _align(max(offset, 1), PAGE)
        size = _align(out_offset + (1 + MAX_COMPONENTS) * capacity * 4, PAGE)
        return Layout(capacity, tuple(entries), out_offset, size)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (sent to the reward process)."""
        return {
            "capacity": self.capacity,
            "entries": [[e.name, e.dtype, list(e.shape), e.offset] for e in self.entries],
            "out_offset": self.out_offset,
            "size": self.size,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Layout:
        """Parse and check the JSON form."""
        cap = int(d["capacity"])
        entries = tuple(Entry(str(n), str(t), tuple(int(x) for x in s), int(o)) for n, t, s, o in d["entries"])  # fmt: skip
        lay = Layout(cap, entries, int(d["out_offset"]), int(d["size"]))
        for e in entries:
            if e.dtype not in DTYPES or e.offset < 0 or e.offset + e.nbytes(cap) > lay.out_offset:
                raise ValueError(f"bad layout entry {e}")
        if lay.out_offset % PAGE or lay.out_offset + (1 + MAX_COMPONENTS) * cap * 4 > lay.size:
            raise ValueError("bad output region")
        return lay


def create_memfd(size: int) -> int:
    """A sealed ``memfd`` of ``size`` bytes (its size can no longer change)."""
    fd = os.memfd_create("rewardlab-reward", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        import fcntl

        seals = fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


__all__ = [
    "ChannelError",
    "DTYPES",
    "Entry",
    "Layout",
    "MAX_COMPONENTS",
    "MAX_FRAME",
    "MAX_NAME",
    "Conn",
    "create_memfd",
]
