"""What can go wrong with reward code, as structured, bounded data.

Every failure of untrusted reward code -- rejected by the static check, raised, hung, crashed,
killed by a limit -- is a :class:`RewardError` (``kind``, ``message``, ``line``,
``traceback``, ``file``). Its text is cut to a bounded size when it is made
(:data:`MAX_MESSAGE_CHARS`, :data:`MAX_TRACEBACK_CHARS`), so that nothing a reward prints or
raises can flood a log or the LLM's next prompt. Callers get it inside a
:class:`SandboxFailure` (or :class:`RewardRuntimeError` during training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardlab.core.config import clip_text

MAX_MESSAGE_CHARS = 1000
"""Longest :attr:`RewardError.message` (longer text is cut, marked ``... (N more)``)."""
MAX_TRACEBACK_CHARS = 2000
"""Longest :attr:`RewardError.traceback` (its innermost frames are kept)."""
MAX_FILE_CHARS = 300
"""Longest :attr:`RewardError.file`."""

ERROR_KINDS = (
    "syntax",
    "forbidden",
    "signature",
    "unknown_state",
    "exception",
    "shape",
    "dtype",
    "nan",
    "timeout",
    "memory",
    "too_slow",
    "no_code",
    "crashed",
    "unavailable",
)
"""Every :attr:`RewardError.kind`."""

_HINTS = {
    "syntax": "The code does not parse as Python.",
    "forbidden": (
        "Only torch, math and numpy functions that compute may be used: no imports of other "
        "modules, no file, network or OS access, no exec/eval/getattr, no names or attributes "
        "starting with '_', no assignments to attributes, and the inputs (state, action) are "
        "read-only."
    ),
    "signature": "Define `def compute_reward(state, action)` returning `(total, components)`.",
    "unknown_state": "Read only the state entries listed in the state schema.",
    "exception": "The function raised an exception on a batch of recorded states.",
    "shape": (
        "Return `(total, components)`: total a float tensor of shape [N] (one value per "
        "world) and components a dict of name -> float tensor [N]."
    ),
    "dtype": "Return floating-point tensors (torch.float32), not integers or booleans.",
    "nan": (
        "The reward contains NaN or infinite values; guard divisions, logs and square roots "
        "(e.g. add a small epsilon, clamp)."
    ),
    "timeout": "The function did not finish in time (an endless loop?).",
    "memory": "The function allocates too much memory; work on [N, ...] tensors only.",
    "too_slow": (
        "The function is too slow; vectorize over the batch of worlds with tensor operations "
        "instead of Python loops."
    ),
    "no_code": "The reply contains no Python code block with a reward function.",
    "crashed": "The reward's process crashed (e.g. it wrote into its read-only inputs).",
    "unavailable": "This machine cannot run reward code in an OS sandbox.",
}


def _clip_tail(text: str, limit: int) -> str:
    """``text`` cut to its last ``limit`` characters (a traceback's innermost frames)."""
    if len(text) <= limit:
        return text
    head = f"({len(text) - limit} characters cut) ..."
    return head + text[len(text) - max(limit - len(head), 0) :]


@dataclass(frozen=True)
class RewardError:
    """Why a reward was rejected or stopped, as structured data and as LLM feedback.

    Text fields are cut to bounded sizes when the error is made, whatever produced them.
    """

    kind: str
    """One of :data:`ERROR_KINDS`."""
    message: str
    """What went wrong, naming the construct, state entry, shape or value."""
    line: int | None = None
    """Line in the reward's source the error points at (1-based), when known."""
    traceback: str | None = None
    """The traceback restricted to the reward's own frames, with its source lines."""
    file: str | None = None
    """The reward file (or ``<reward-HASH>`` for source without one), when known."""

    def __post_init__(self) -> None:
        kind = self.kind if self.kind in ERROR_KINDS else "exception"
        line = self.line
        if isinstance(line, bool) or not isinstance(line, int) or not 0 < line < 10**7:
            line = None
        set_ = object.__setattr__
        set_(self, "kind", kind)
        set_(self, "line", line)
        set_(self, "message", clip_text(str(self.message), MAX_MESSAGE_CHARS))
        if self.traceback is not None:
            set_(self, "traceback", _clip_tail(str(self.traceback), MAX_TRACEBACK_CHARS))
        if self.file is not None:
            set_(self, "file", clip_text(str(self.file), MAX_FILE_CHARS))

    def where(self) -> str:
        """``file:line``, ``file``, ``line N`` or ``""``."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        if self.file:
            return self.file
        return f"line {self.line}" if self.line else ""

    def feedback(self) -> str:
        """Text for the LLM's next prompt: what failed, where, and how to fix it (bounded)."""
        where = f" (line {self.line})" if self.line is not None else ""
        parts = [f"The reward function failed the '{self.kind}' check{where}: {self.message}"]
        if self.traceback:
            parts.append("Traceback (the reward code's frames):\n" + self.traceback.rstrip())
        hint = _HINTS.get(self.kind)
        if hint:
            parts.append(hint)
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (see :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "message": self.message,
            "line": self.line,
            "traceback": self.traceback,
            "file": self.file,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RewardError:
        """Rebuild an error from untrusted data: unknown kinds become ``exception``, text is
        bounded, anything malformed becomes a generic error."""
        if not isinstance(data, dict):
            return cls("exception", f"malformed error report ({type(data).__name__})")

        def text(key: str) -> str | None:
            v = data.get(key)
            return None if v is None else str(v)

        return cls(
            str(data.get("kind", "exception")),
            text("message") or "",
            data.get("line") if isinstance(data.get("line"), int) else None,
            text("traceback"),
            text("file"),
        )

    def __str__(self) -> str:
        where = self.where()
        return f"{where + ': ' if where else ''}{self.kind}: {self.message}"


class SandboxFailure(Exception):
    """A sandboxed run or a reward compilation failed; ``error`` says how."""

    def __init__(self, error: RewardError) -> None:
        super().__init__(str(error))
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error,))


class RewardRuntimeError(SandboxFailure):
    """A loaded reward misbehaved during training (exception, bad shape, non-finite value,
    timeout, crash); ``error`` names the reward file and line."""


class SandboxUnavailable(SandboxFailure):
    """This machine cannot provide the OS boundary for untrusted code (kind ``unavailable``);
    the message says what is missing and how to opt out (``sandbox=none``)."""


class UnknownStateError(KeyError):
    """A reward read a state entry that the task does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


__all__ = [
    "ERROR_KINDS",
    "MAX_MESSAGE_CHARS",
    "MAX_TRACEBACK_CHARS",
    "RewardError",
    "RewardRuntimeError",
    "SandboxFailure",
    "SandboxUnavailable",
    "UnknownStateError",
]
