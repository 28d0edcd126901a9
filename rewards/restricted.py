"""Executing checked reward source: restricted builtins, an import allow-list, tracebacks.

This is how reward code becomes a Python function, *inside the sandboxed reward process*
(:mod:`rewardlab.rewards.server`), or in the caller's process only when the user opted out of
the sandbox (``sandbox=none``, trusted code). The restrictions here are defence in depth, not the
boundary.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import math
import traceback as tb_module
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from rewardlab.rewards.errors import RewardError, SandboxFailure, UnknownStateError
from rewardlab.rewards.static_check import (
    ALLOWED_MODULES,
    JIT_DECORATORS,
    SAFE_BUILTIN_NAMES,
    dotted,
    strip_ignored_imports,
)


class StateDict(dict):
    """The state mapping a reward sees: a plain dict whose missing keys raise a clear error."""

    def __missing__(self, key: Any) -> Any:
        raise UnknownStateError(
            f"state has no entry {key!r}; known: {', '.join(sorted(map(str, self)))}"
        )


def _safe_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    root = name.split(".")[0]
    # submodules of torch and numpy: their own lazy imports (numpy._core._methods) come through
    # here from C with the reward's globals; the reward's import statements are checked statically
    if level or root not in ALLOWED_MODULES:
        raise ImportError(f"import of {name!r} is not allowed in reward code")
    import importlib

    module = importlib.import_module(name)
    return module if fromlist else importlib.import_module(root)


def safe_globals() -> dict[str, Any]:
    """Globals for exec'ing reward code: restricted builtins plus the prelude names."""
    import builtins
    import typing

    import numpy

    safe = {n: getattr(builtins, n) for n in SAFE_BUILTIN_NAMES}
    safe["__import__"] = _safe_import
    return {
        "__builtins__": safe,
        "__name__": "rewardlab_reward_candidate",
        "torch": torch,
        "math": math,
        "np": numpy,
        "numpy": numpy,
        "Tuple": typing.Tuple,  # noqa: UP006
        "Dict": typing.Dict,  # noqa: UP006
        "List": typing.List,  # noqa: UP006
        "Optional": typing.Optional,
        "Tensor": torch.Tensor,
    }


def source_filename(code: str, path: str | Path | None = None) -> str:
    """The filename tracebacks show for ``code``: the file's path, or ``<reward-XXXXXXXX>``."""
    if path is not None:
        return str(path)
    return f"<reward-{hashlib.sha1(code.encode()).hexdigest()[:8]}>"


def exec_source(
    code: str,
    filename: str,
    transform: Callable[[ast.Module], Any] | None = None,
    extra_globals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute checked source with :func:`safe_globals`; jit decorators removed (run eagerly).

    The source is registered with :mod:`linecache` so tracebacks show its lines. ``transform``
    may rewrite the parsed module in place before it is compiled (keeping line numbers);
    ``extra_globals`` are predefined names (trusted helpers, e.g. IsaacGym's quaternion utils).
    """
    tree = ast.parse(code, filename=filename)
    strip_ignored_imports(tree)  # imports the static check let through because nothing uses them
    if transform is not None:
        transform(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.decorator_list = [d for d in node.decorator_list if dotted(d) not in JIT_DECORATORS]  # fmt: skip
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace = safe_globals()
    namespace.update(extra_globals or {})
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 - checked by check_ast
    return namespace


def candidate_traceback(exc: BaseException, filename: str) -> tuple[str, int | None]:
    """The traceback of ``exc`` restricted to frames of ``filename``, and the innermost line."""
    frames = [f for f in tb_module.extract_tb(exc.__traceback__) if f.filename == filename]
    lines = []
    for f in frames[-8:]:
        lines.append(f"  line {f.lineno}, in {f.name}\n    {(f.line or '').strip()[:200]}")
    lines.append(f"{type(exc).__name__}: {str(exc)[:500]}")
    return "\n".join(lines), frames[-1].lineno if frames else None


def classify_exception(exc: BaseException, filename: str) -> RewardError:
    """A :class:`RewardError` for an exception raised while running reward code."""
    if isinstance(exc, SandboxFailure):
        return exc.error
    text, line = candidate_traceback(exc, filename)
    if isinstance(exc, UnknownStateError):
        return RewardError("unknown_state", str(exc), line, text, filename)
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("can't allocate memory" in str(exc) or "not enough memory" in str(exc))
    ):
        return RewardError("memory", f"{type(exc).__name__}: {exc}", line, text, filename)
    if isinstance(exc, RecursionError):
        return RewardError("exception", "RecursionError: maximum recursion depth exceeded", line, text, filename)  # fmt: skip
    return RewardError("exception", f"{type(exc).__name__}: {exc}", line, text, filename)


__all__ = [
    "StateDict",
    "candidate_traceback",
    "classify_exception",
    "exec_source",
    "safe_globals",
    "source_filename",
]
