"""Untrusted reward code: static checks, a limited child process, and a guarded compiled reward.

An LLM-written reward goes through three gates before a trainer calls it (Eureka runs the
candidate in the trainer with no checks; Text2Reward execs it in-process):

1. :func:`check_source` -- a static AST allow-list. Imports only of ``torch``, ``math``,
   ``numpy`` (and ``typing`` for annotations); no name or attribute starting with ``__``; no
   attribute starting with ``_``; no ``open``/``exec``/``eval``/``compile``/``__import__``/
   ``getattr``/``globals``/``locals``/``vars``/...; no attributes that reach the file system,
   the OS or other processes (``torch.load``, ``np.save``, ``torch.os``, ``torch.ops``, ...);
   no classes, ``global``, ``async``, generators' frames; a ``compute_reward(state, action)``
   signature; every ``state["name"]`` it reads must exist.
2. :func:`trial_run` -- the code runs on a batch of recorded states (:func:`record_states`) in a
   separate process (:func:`run_in_sandbox`) with CPU-time, memory, file-size, open-file and
   process limits, no network, no privileges and a wall-clock timeout that kills its process
   group. It checks output shape ``[N]``, float dtype, finite values and speed on a 4096-world
   batch, and returns per-component statistics.
3. :func:`compile_reward` -- only then is the code executed in the caller's process, with
   restricted builtins and a restricted ``__import__``, wrapped (:func:`guard_reward`) so that
   calls check the output types/shapes and that the total is finite (a
   :class:`RewardRuntimeError` otherwise; on the first calls, then every ``check_every``-th
   call), and so that an unknown state name raises an error listing the known ones.

Every failure is a :class:`RewardError` (``kind``, ``message``, ``line``, ``traceback``) whose
:meth:`RewardError.feedback` is text for the LLM's next prompt; nothing here raises on bad
candidate code except :func:`compile_reward` and :func:`run_in_sandbox`, which raise
:class:`SandboxFailure` carrying that error.

What this cannot do: the static check is a deny-list over attribute *names* on top of an import
allow-list; it is defence in depth, not a proof. The in-process compiled reward (gate 3) relies
on gates 1 and 2 -- it has no time or memory limit of its own (train candidates with
:func:`run_in_sandbox` for that). Rewards get the env's state tensors, not copies (copies
would cost as much as the reward); writing into them is caught by their version counters in
the trial run and on the checked calls of training, not prevented. ``RLIMIT_NPROC`` is only
applied when the child can drop to the unprivileged ``nobody`` user (the parent runs as root);
otherwise fork bombs are stopped by the static check and the process-group kill. Network
isolation needs Linux network namespaces (root, or unprivileged user namespaces).
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import hashlib
import linecache
import math
import multiprocessing
import os
import random
import resource
import signal
import threading
import time
import traceback as tb_module
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from rewardlab.core.reward import RewardFn

# ---------------------------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of a sandboxed child process (trial runs and candidate training)."""

    cpu_seconds: float = 60.0
    """CPU time the child may use (``RLIMIT_CPU``); it is killed after that."""
    memory_mb: int = 4096
    """Memory the child may allocate beyond what it had at start (``RLIMIT_DATA``; the address
    space, ``RLIMIT_AS``, gets twice this plus 1 GiB as a backstop, since torch maps large
    libraries)."""
    wall_seconds: float = 120.0
    """Wall-clock time after which the child's whole process group is killed."""
    max_ms_per_call: float = 50.0
    """Speed check: the most milliseconds one reward call may take on the recorded 4096-world
    batch (one CPU thread). A vectorized reward takes well under 1 ms; a Python loop over the
    worlds takes tens to hundreds."""
    file_size_mb: int = 0
    """Largest file the child may write (``RLIMIT_FSIZE``); 0 forbids writing files."""
    max_open_files: int = 256
    """``RLIMIT_NOFILE`` of the child (new file descriptors above this fail)."""
    max_processes: int = 512
    """``RLIMIT_NPROC`` for the unprivileged user the child runs as (threads count): stops fork
    bombs. Applied only when the child drops privileges (see ``drop_privileges``)."""
    drop_privileges: bool = True
    """When the parent runs as root, run the child as ``nobody`` (no write access to the
    project, and ``max_processes`` applies). Ignored when not root."""
    isolate_network: bool = True
    """Run the child in a new network namespace (no interfaces but a down loopback) where Linux
    allows it; silently skipped where it does not."""
    torch_threads: int = 1
    """``torch.set_num_threads`` in the child."""

    def __post_init__(self) -> None:
        positive = ("cpu_seconds", "memory_mb", "wall_seconds", "max_ms_per_call", "max_open_files", "max_processes", "torch_threads")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"SandboxLimits.{name}: got {value!r}, expected a number > 0")
        if isinstance(self.file_size_mb, bool) or not isinstance(self.file_size_mb, int) or self.file_size_mb < 0:  # fmt: skip
            raise ValueError(
                f"SandboxLimits.file_size_mb: got {self.file_size_mb!r}, expected an integer >= 0"
            )


DEFAULT_LIMITS = SandboxLimits()
"""The default :class:`SandboxLimits`."""

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
)
"""Every :attr:`RewardError.kind`."""

_HINTS = {
    "syntax": "The code does not parse as Python.",
    "forbidden": (
        "Only torch, math and numpy may be used: no imports of other modules, no file, network "
        "or OS access, no exec/eval/getattr, no names or attributes starting with '_'."
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
        "The reward contains NaN or infinite values on recorded states; guard divisions, "
        "logs and square roots (e.g. add a small epsilon, clamp)."
    ),
    "timeout": "The function did not finish in time (an endless loop?).",
    "memory": "The function allocates too much memory; work on [N, ...] tensors only.",
    "too_slow": (
        "The function is too slow; vectorize over the batch of worlds with tensor operations "
        "instead of Python loops."
    ),
    "no_code": "The reply contains no Python code block with a reward function.",
}


@dataclass(frozen=True)
class RewardError:
    """Why a reward candidate was rejected, as structured data and as LLM feedback."""

    kind: str
    """One of :data:`ERROR_KINDS`."""
    message: str
    """What went wrong, naming the construct, state entry, shape or value."""
    line: int | None = None
    """Line in the candidate's source the error points at (1-based), when known."""
    traceback: str | None = None
    """The traceback restricted to the candidate's own frames, with its source lines."""

    def feedback(self) -> str:
        """Text for the LLM's next prompt: what failed, where, and how to fix it."""
        where = f" (line {self.line})" if self.line is not None else ""
        parts = [f"The reward function failed the '{self.kind}' check{where}: {self.message}"]
        if self.traceback:
            parts.append("Traceback (the reward code's frames):\n" + self.traceback.rstrip())
        hint = _HINTS.get(self.kind)
        if hint:
            parts.append(hint)
        return "\n".join(parts)

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.kind}{where}: {self.message}"


class SandboxFailure(Exception):
    """A sandboxed run or a reward compilation failed; ``error`` says how."""

    def __init__(self, error: RewardError) -> None:
        super().__init__(str(error))
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error,))


class RewardRuntimeError(SandboxFailure):
    """A compiled reward misbehaved during training (exception, bad shape, non-finite total)."""


class UnknownStateError(KeyError):
    """A reward read a state entry that the task does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class CheckResult:
    """Outcome of :func:`trial_run`."""

    ok: bool
    """True when every check passed."""
    error: RewardError | None
    """The first failed check (``None`` when ``ok``)."""
    components: list[str] = field(default_factory=list)
    """Names of the components the reward returned."""
    ms_per_call: float | None = None
    """Median milliseconds of one call on the 4096-world batch (``None`` if not reached)."""
    component_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{name: {"min", "mean", "max"}}`` over the recorded batch, ``"total"`` included."""
    load_seconds: float | None = None
    """Wall time of the trial run as seen by the caller (process start included)."""


# ---------------------------------------------------------------------------------------------
# Static check

ALLOWED_MODULES = frozenset({"torch", "math", "numpy", "typing"})
"""Top-level modules reward code may import (``typing`` for annotations only)."""

FORBIDDEN_NAMES = frozenset(
    {
        "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr",
        "hasattr", "globals", "locals", "vars", "dir", "input", "breakpoint", "help", "exit",
        "quit", "memoryview", "type", "object", "super", "classmethod", "staticmethod",
        "property", "id", "print", "bytearray", "copyright", "credits", "license",
    }
)  # fmt: skip
"""Builtins reward code may not name (used or called)."""

FORBIDDEN_ATTRIBUTES = frozenset(
    {
        # modules reachable as attributes (torch.os, np.sys, ...)
        "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "io", "pathlib", "shutil",
        "socket", "pickle", "multiprocessing", "threading", "signal", "inspect", "types", "gc",
        "platform", "glob", "tempfile", "ctypeslib", "f2py", "distutils", "testing", "lib",
        "hub", "utils", "package", "ops", "classes", "library", "distributed", "export",
        "compiler", "cuda", "backends", "overrides", "serialization", "storage", "fx", "jit",
        "CompilationUnit", "profiler", "onnx", "monitor", "get_type_hints", "ForwardRef",
        "evaluate_forward_ref",
        # file and process I/O
        "load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt",
        "genfromtxt", "fromfile", "tofile", "fromregex", "memmap", "open_memmap", "DataSource",
        "dump", "dumps", "from_file", "system", "popen", "spawn", "fork", "kill", "environ",
        "getenv", "compile", "untyped_storage", "share_memory_", "pin_memory",
        # global state of the process
        "manual_seed", "seed", "use_deterministic_algorithms",
        # frames and code objects (escapes through generators, tracebacks, functions)
        "mro", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "ag_frame",
        "ag_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame",
        "tb_next", "co_code", "func_globals", "with_traceback",
    }
)  # fmt: skip
"""Attribute names reward code may not use, on any object."""

FORBIDDEN_ATTRIBUTE_PREFIXES = ("_", "set_")
"""Attribute name prefixes reward code may not use (``x._C``, ``torch.set_num_threads``)."""

_FORBIDDEN_NODES = {
    ast.ClassDef: "class definitions",
    ast.Global: "'global'",
    ast.Nonlocal: "'nonlocal'",
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "'await'",
    ast.AsyncFor: "'async for'",
    ast.AsyncWith: "'async with'",
    ast.Yield: "generators ('yield')",
    ast.YieldFrom: "generators ('yield from')",
}
_TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.Pass)
_STATIC_NODES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Subscript, ast.Slice,
    ast.UnaryOp, ast.BinOp, ast.Load, ast.operator, ast.unaryop, ast.Compare, ast.cmpop,
    ast.BoolOp, ast.boolop, ast.IfExp, ast.Dict, ast.Set,
)  # fmt: skip
_JIT_DECORATORS = {"torch.jit.script", "jit.script", "torch.jit.ignore", "torch.jit.unused"}

PRELUDE_NAMES = ("torch", "math", "np", "numpy", "Tuple", "Dict", "List", "Optional", "Tensor")
"""Names defined for reward code without an import (Eureka's code assumes them)."""


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _forbidden(node: ast.AST, what: str) -> RewardError:
    return RewardError("forbidden", what, getattr(node, "lineno", None))


def parse_source(code: str, filename: str = "<reward>") -> ast.Module | RewardError:
    """Parse ``code``; a :class:`RewardError` of kind ``syntax`` (or ``no_code``) if it fails."""
    if not isinstance(code, str) or not code.strip():
        return RewardError("no_code", "the reward source is empty")
    try:
        return ast.parse(code, filename=filename)
    except SyntaxError as e:
        text = (e.text or "").rstrip()
        msg = f"{e.msg}" + (f": {text.strip()!r}" if text else "")
        return RewardError("syntax", msg, e.lineno)
    except ValueError as e:  # null bytes
        return RewardError("syntax", str(e))


def parse_allowed(code: str) -> ast.Module | RewardError:
    """:func:`parse_source` then :func:`check_ast`: the tree, or the first error."""
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return tree
    return check_ast(tree) or tree


def check_ast(tree: ast.Module) -> RewardError | None:
    """The allow-list part of :func:`check_source`: imports, names, attributes, constructs."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        if not isinstance(stmt, _TOP_LEVEL_OK):
            return _forbidden(
                stmt,
                f"top-level {type(stmt).__name__} statement; only imports, function definitions "
                "and constant assignments may appear outside functions",
            )
        # what runs when the module is executed (in the trainer too) must be deterministic:
        # no calls in module-level values, default arguments or annotations
        if isinstance(stmt, ast.FunctionDef):
            a = stmt.args
            parts = [*a.defaults, *(d for d in a.kw_defaults if d is not None), stmt.returns]
            parts += [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            parts = [stmt.value, getattr(stmt, "annotation", None)]
        else:
            parts = []
        for part in parts:
            call = next((n for n in ast.walk(part) if not isinstance(n, _STATIC_NODES)), None) if part is not None else None  # fmt: skip
            if call is not None:
                return _forbidden(
                    call,
                    f"{type(call).__name__} outside a function (module-level values, default "
                    "arguments and annotations must be constants)",
                )
    # the allowed decorators (torch.jit.script) are removed before exec; their names are exempt
    exempt = {
        id(n)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef)
        for dec in fn.decorator_list
        if _dotted(dec) in _JIT_DECORATORS
        for n in ast.walk(dec)
    }
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        kind = _FORBIDDEN_NODES.get(type(node))
        if kind:
            return _forbidden(node, f"{kind} are not allowed")
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root not in ALLOWED_MODULES:
                    return _forbidden(
                        node,
                        f"import of {alias.name!r}; allowed modules: "
                        + ", ".join(sorted(ALLOWED_MODULES)),
                    )
                if any(p in FORBIDDEN_ATTRIBUTES or p.startswith("_") for p in alias.name.split(".")[1:]):  # fmt: skip
                    return _forbidden(node, f"import of {alias.name!r}")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.split(".")[0] not in ALLOWED_MODULES:
                return _forbidden(
                    node,
                    f"import from {'.' * node.level + mod!r}; allowed modules: "
                    + ", ".join(sorted(ALLOWED_MODULES)),
                )
            for part in mod.split(".")[1:]:
                if part in FORBIDDEN_ATTRIBUTES or part.startswith("_"):
                    return _forbidden(node, f"import from {mod!r}")
            for alias in node.names:
                if alias.name == "*":
                    return _forbidden(node, f"'from {mod} import *'; import names explicitly")
                if alias.name in FORBIDDEN_ATTRIBUTES or alias.name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):  # fmt: skip
                    return _forbidden(node, f"import of {alias.name!r} from {mod!r}")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__"):
                return _forbidden(node, f"name {node.id!r} (names starting with '__')")
            if node.id in FORBIDDEN_NAMES:
                return _forbidden(node, f"use of the builtin {node.id!r}")
        elif isinstance(node, ast.Attribute):
            a = node.attr
            if a.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES) or a in FORBIDDEN_ATTRIBUTES:
                target = _dotted(node) or f"<expr>.{a}"
                return _forbidden(node, f"attribute {target!r}")
        elif isinstance(node, ast.FunctionDef | ast.Lambda):
            if isinstance(node, ast.FunctionDef):
                if node.name.startswith("__"):
                    return _forbidden(node, f"function name {node.name!r}")
                for dec in node.decorator_list:
                    if _dotted(dec) not in _JIT_DECORATORS:
                        return _forbidden(
                            dec, "decorators other than @torch.jit.script are not allowed"
                        )
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.arg.startswith("__"):
                    return _forbidden(node, f"argument name {arg.arg!r}")
        elif isinstance(node, ast.alias) and node.asname and node.asname.startswith("__"):
            return _forbidden(node, f"import alias {node.asname!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # str.format can read dunder attributes: "{0.__class__}".format(x)
            if "__" in node.value and "{" in node.value:
                return _forbidden(node, "format strings that reach '__' attributes")
        elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("__"):
            return _forbidden(node, f"keyword argument {node.arg!r}")
        elif isinstance(node, ast.ExceptHandler) and node.name and node.name.startswith("__"):
            return _forbidden(node, f"name {node.name!r}")
    return None


def find_function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    """The last top-level ``def name`` of the module (the one exec would keep)."""
    found = None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            found = stmt
    return found


def positional_params(fn: ast.FunctionDef) -> list[str]:
    """Names of the positional parameters of ``fn``."""
    return [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]


def state_reads(tree: ast.AST, var: str) -> list[tuple[str, int]]:
    """Constant keys read from the mapping named ``var``: ``var["k"]`` and ``var.get("k")``."""
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.value, ast.Name)
            and node.value.id == var
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            out.append((node.slice.value, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == var
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.args[0].value, node.lineno))
    return out


def unknown_name_error(name: str, known: Collection[str], line: int | None, what: str) -> RewardError:  # fmt: skip
    """An ``unknown_state`` error listing the known names (and the closest one)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return RewardError(
        "unknown_state",
        f"{what} {name!r} does not exist{hint}; known: {', '.join(sorted(known))}",
        line,
    )


def check_source(
    code: str, state_names: Collection[str], entry: str = "compute_reward"
) -> RewardError | None:
    """Static checks of a native reward: syntax, allow-list, signature, state names read.

    Args:
        code: Python source defining ``entry(state, action)``.
        state_names: the task's state entries (``env.state_spec()`` keys).
        entry: name of the reward function.

    Returns:
        ``None`` if the code passes, else the first :class:`RewardError` (kinds ``syntax``,
        ``no_code``, ``forbidden``, ``signature``, ``unknown_state``).

    Only constant keys (``state["pole_angle"]``, ``state.get("x")``) are checked here; computed
    keys are caught when the code runs (the state mapping raises a ``KeyError`` listing names).
    """
    tree = parse_allowed(code)
    if isinstance(tree, RewardError):
        return tree
    fn = find_function(tree, entry)
    if fn is None:
        defined = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
        return RewardError(
            "signature",
            f"no function {entry!r} defined"
            + (f" (found: {', '.join(defined)})" if defined else ""),
        )
    params = positional_params(fn)
    required = len(params) - len(fn.args.defaults)
    if (
        len(params) < 2
        or required > 2
        or fn.args.vararg
        or fn.args.kwonlyargs
        and any(d is None for d in fn.args.kw_defaults)
    ):
        return RewardError(
            "signature",
            f"{entry}({', '.join(params)}) must take exactly two positional arguments "
            "(state, action)",
            fn.lineno,
        )
    known = set(state_names)
    for name, line in state_reads(fn, params[0]):
        if name not in known:
            return unknown_name_error(name, known, line, "state entry")
    return None


# ---------------------------------------------------------------------------------------------
# Compilation (restricted exec)


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
    if level or root not in ALLOWED_MODULES:
        raise ImportError(f"import of {name!r} is not allowed in reward code")
    import importlib

    module = importlib.import_module(name)
    return module if fromlist else importlib.import_module(root)


_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum",
    "tuple", "zip", "True", "False", "None", "Ellipsis", "NotImplemented",
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError",
    "NotImplementedError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
    "ZeroDivisionError", "OverflowError", "AttributeError",
)  # fmt: skip


def safe_globals() -> dict[str, Any]:
    """Globals for exec'ing reward code: restricted builtins plus :data:`PRELUDE_NAMES`."""
    import builtins
    import typing

    import numpy

    safe = {n: getattr(builtins, n) for n in _SAFE_BUILTIN_NAMES}
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
    if transform is not None:
        transform(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.decorator_list = [d for d in node.decorator_list if _dotted(d) not in _JIT_DECORATORS]  # fmt: skip
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace = safe_globals()
    namespace.update(extra_globals or {})
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 - checked by check_ast
    return namespace


def candidate_traceback(exc: BaseException, filename: str) -> tuple[str, int | None]:
    """The traceback of ``exc`` restricted to frames of ``filename``, and the innermost line."""
    frames = [f for f in tb_module.extract_tb(exc.__traceback__) if f.filename == filename]
    lines = []
    for f in frames:
        lines.append(f"  line {f.lineno}, in {f.name}\n    {(f.line or '').strip()}")
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines), frames[-1].lineno if frames else None


def classify_exception(exc: BaseException, filename: str) -> RewardError:
    """A :class:`RewardError` for an exception raised while running candidate code."""
    text, line = candidate_traceback(exc, filename)
    if isinstance(exc, UnknownStateError):
        return RewardError("unknown_state", str(exc), line, text)
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("can't allocate memory" in str(exc) or "not enough memory" in str(exc))
    ):
        return RewardError("memory", f"{type(exc).__name__}: {exc}"[:500], line, text)
    if isinstance(exc, SandboxFailure):
        return exc.error
    return RewardError("exception", f"{type(exc).__name__}: {exc}"[:2000], line, text)


def validate_output(out: Any, n: int) -> RewardError | None:
    """Check ``(total [n] float, {name: [n] float})``; finite values are checked elsewhere."""
    if not (isinstance(out, tuple | list) and len(out) == 2):
        return RewardError(
            "shape",
            f"returned {type(out).__name__}; expected a tuple (total, components)",
        )
    total, comps = out
    items = [("total", total)]
    if not isinstance(comps, dict):
        return RewardError(
            "shape", f"components is a {type(comps).__name__}; expected a dict of name -> [N]"
        )
    items += list(comps.items())
    for name, value in items:
        if not isinstance(name, str):
            return RewardError("shape", f"component name {name!r} is not a string")
        if not isinstance(value, torch.Tensor):
            return RewardError(
                "shape",
                f"{name} is a {type(value).__name__}; expected a torch tensor of shape [{n}]",
            )
        if tuple(value.shape) != (n,):
            return RewardError(
                "shape",
                f"{name} has shape {list(value.shape)}; expected [{n}] (one value per world)",
            )
        if not value.dtype.is_floating_point:
            return RewardError("dtype", f"{name} has dtype {value.dtype}; expected a float dtype")
    return None


def _runtime_error(exc: BaseException, state: Mapping[str, Any], filename: str) -> RewardError:
    """Classify an exception of a guarded call; a ``KeyError`` of a missing state entry becomes
    ``unknown_state`` listing the known names (the state is not copied into a
    :class:`StateDict` per call: that would cost more than the check)."""
    if type(exc) is KeyError and exc.args and isinstance(exc.args[0], str):
        key = exc.args[0]
        if key not in state:
            text, line = candidate_traceback(exc, filename)
            known = ", ".join(sorted(map(str, state)))
            return RewardError(
                "unknown_state", f"state has no entry {key!r}; known: {known}", line, text
            )
    return classify_exception(exc, filename)


def _versions(state: Mapping[str, Any], action: torch.Tensor) -> list[int] | None:
    """Version counters of the state's tensors and the action (``None``: not tracked, e.g.
    inference tensors, which refuse in-place updates outside inference mode anyway)."""
    try:
        return [t._version for t in state.values()] + [action._version]
    except (AttributeError, RuntimeError):
        return None


def _mutation_error(
    before: list[int] | None, state: Mapping[str, Any], action: torch.Tensor
) -> RewardError | None:
    after = _versions(state, action) if before is not None else None
    if before is None or after is None or after == before:
        return None
    names = [*state, "action"]
    changed = [n for n, b, a in zip(names, before, after, strict=True) if a != b]
    return RewardError(
        "forbidden",
        f"the reward modified its input in place ({', '.join(changed)}); compute new tensors "
        "instead of writing into the state or the action (no +=, [...] =, or *_() methods on them)",
    )


def guard_reward(
    fn: Callable[..., Any],
    filename: str,
    *,
    check_finite: bool = True,
    check_every: int = 16,
) -> RewardFn:
    """Wrap a candidate ``fn(state, action)`` with the per-call checks of :func:`compile_reward`.

    Complete checks -- the output is ``(tensor, dict)`` with a floating ``[N]`` total and
    floating components of the same shape, and (``check_finite``) every value of the total is
    finite -- run on each of the first ``check_every`` calls and then on every
    ``check_every``-th call, so that a loaded reward costs about as much as the function itself
    (benchmarks/sandbox_overhead.py). Exceptions are caught on every call. A NaN that appears
    only between two checked calls is not seen here; PPO's runner then stops on the non-finite
    loss it causes. ``check_every=1`` checks every call.

    After the first calls, the checked calls are drawn at random (probability
    ``1 / check_every``, from an unseeded generator), so a reward cannot time its misbehaviour
    between checks. Checked calls also verify, through the tensors' version counters, that the
    reward did not modify the state or the action in place (kind ``forbidden``); the reward
    gets a copy of the state dict, so adding or removing entries never reaches the env.
    """
    every = max(1, int(check_every))
    calls = 0
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))

    def complete_check(out: Any, action: torch.Tensor) -> RewardError | None:
        try:
            total, comps = out
            shape = total.shape
            ok = (
                shape == action.shape[:1]
                and total.is_floating_point()
                and type(comps) is dict
                and all(v.shape == shape and v.is_floating_point() for v in comps.values())
            )
        except (TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            return validate_output(out, action.shape[0]) or RewardError("shape", "bad output")
        # a sum is NaN/inf iff some value is (or, rarely, it overflows): ~20x cheaper on the CPU
        # than isfinite().all(); the exact count only runs when the sum is not finite
        if check_finite and not math.isfinite(total.sum().item()):
            finite = torch.isfinite(total)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                return RewardError(
                    "nan", f"total is NaN or infinite in {bad} of {shape[0]} worlds (call {calls})"
                )
        return None

    def compute_reward(
        state: Mapping[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nonlocal calls
        calls += 1
        check = calls <= every or rng.random() * every < 1.0
        before = _versions(state, action) if check else None
        try:
            out = fn(dict(state), action)  # a plain dict: the fastest lookups
        except Exception as exc:
            raise RewardRuntimeError(_runtime_error(exc, state, filename)) from exc
        if check:
            err = complete_check(out, action) or _mutation_error(before, state, action)
            if err:
                raise RewardRuntimeError(err)
        return out

    compute_reward.filename = filename  # type: ignore[attr-defined]
    compute_reward.__wrapped__ = fn  # type: ignore[attr-defined]
    return compute_reward


def compile_reward(
    code: str,
    state_names: Collection[str],
    *,
    entry: str = "compute_reward",
    filename: str | None = None,
    check_finite: bool = True,
    check_every: int = 16,
) -> RewardFn:
    """Statically check and compile a native reward in this process.

    Call it only after :func:`trial_run` passed (top-level assignments run here).

    Args:
        code: source defining ``entry(state, action) -> (total [N], {name: [N]})``.
        state_names: the task's state entries.
        entry: name of the reward function.
        filename: name shown in tracebacks (the file's path; default ``<reward-hash>``).
        check_finite: include "the total is finite" in the output checks.
        check_every: after the first ``check_every`` calls, check every ``check_every``-th
            call's output (see :func:`guard_reward`; 1 checks every call).

    Returns:
        ``compute_reward(state, action)`` that raises :class:`RewardRuntimeError` (a
        :class:`SandboxFailure`) if the candidate raises, returns a wrong shape or dtype, or a
        non-finite total; reading an unknown state entry is such an exception (kind
        ``unknown_state``).

    Raises:
        SandboxFailure: the static check failed, or executing the module raised.
    """
    err = check_source(code, state_names, entry=entry)
    if err:
        raise SandboxFailure(err)
    filename = filename or source_filename(code)
    try:
        namespace = exec_source(code, filename)
    except Exception as exc:
        raise SandboxFailure(classify_exception(exc, filename)) from exc
    fn = guard_reward(
        namespace[entry], filename, check_finite=check_finite, check_every=check_every
    )
    fn.source = code  # type: ignore[attr-defined]
    fn.style = "native"  # type: ignore[attr-defined]
    return fn


# ---------------------------------------------------------------------------------------------
# Child processes

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_NOBODY = 65534
_CTX_LOCK = threading.Lock()
_CTX: Any = None


def _mp_context() -> Any:
    """A forkserver context that preloads torch, so a child starts in ~0.1 s, not seconds."""
    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            ctx = multiprocessing.get_context("forkserver")
            with contextlib.suppress(Exception):
                ctx.set_forkserver_preload(["torch", "numpy", "rewardlab.rewards.sandbox"])
            _CTX = ctx
        return _CTX


def _start_without_main(proc: Any) -> None:
    """Start ``proc`` without re-running the caller's ``__main__`` in the child.

    multiprocessing's spawn/forkserver children import the parent's main script (so that
    functions defined there unpickle); a sandbox child must not run the user's script, so the
    main-module entries are dropped from the preparation data. ``fn`` must therefore live in an
    importable module.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data

    def prep(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    config = multiprocessing.current_process()._config
    with _CTX_LOCK:
        spawn.get_preparation_data = prep
        # multiprocessing refuses children of daemonic processes (pool workers) because it
        # could not clean them up; run_in_sandbox kills and joins its child itself
        was_daemon = config.get("daemon")
        config["daemon"] = False
        try:
            proc.start()
        finally:
            spawn.get_preparation_data = original
            if was_daemon is not None:
                config["daemon"] = was_daemon


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _isolate_network() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if libc.unshare(_CLONE_NEWNET) == 0:
        return True
    if os.getuid() != 0:
        return libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0
    return False


def apply_limits(limits: SandboxLimits) -> list[str]:
    """Limit the calling process (a sandbox child); returns what was applied.

    New session (so the parent can kill the group), network namespace, resource limits,
    then privileges dropped to ``nobody`` when running as root.
    """
    applied = []
    with contextlib.suppress(OSError):
        os.setsid()
        applied.append("session")
    if limits.isolate_network and _isolate_network():
        applied.append("no-network")
    mb = 1024 * 1024

    def setlim(res: int, value: int, name: str) -> None:
        _, hard = resource.getrlimit(res)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(res, (value, value if res != resource.RLIMIT_CPU else value + 1))
        except (ValueError, OSError):
            try:
                resource.setrlimit(res, (value, hard))
            except (ValueError, OSError):
                return
        applied.append(name)

    setlim(resource.RLIMIT_CORE, 0, "core=0")
    setlim(resource.RLIMIT_CPU, max(1, math.ceil(limits.cpu_seconds)), "cpu")
    data_now = _status_kb("VmData") * 1024
    vm_now = _status_kb("VmSize") * 1024
    setlim(resource.RLIMIT_DATA, data_now + limits.memory_mb * mb, "data")
    setlim(resource.RLIMIT_AS, vm_now + (2 * limits.memory_mb + 1024) * mb, "address-space")
    setlim(resource.RLIMIT_FSIZE, limits.file_size_mb * mb, "fsize")
    setlim(resource.RLIMIT_NOFILE, limits.max_open_files, "nofile")
    if limits.drop_privileges and os.getuid() == 0:
        setlim(resource.RLIMIT_NPROC, limits.max_processes, "nproc")
        try:
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
            applied.append("user=nobody")
        except OSError:
            pass
    # a backstop should the parent die without killing us: SIGALRM's default action ends us
    signal.alarm(math.ceil(limits.wall_seconds) + 5)
    applied.append("alarm")
    torch.set_num_threads(max(1, limits.torch_threads))
    return applied


APPLIED: list[str] = []
"""In a sandbox child: what :func:`apply_limits` applied (see :func:`sandbox_capabilities`)."""


def _applied() -> list[str]:
    return list(APPLIED)


def sandbox_capabilities(limits: SandboxLimits = DEFAULT_LIMITS) -> list[str]:
    """What a sandbox child gets on this machine, e.g. ``["session", "no-network", "core=0",
    "cpu", "data", "address-space", "fsize", "nofile", "nproc", "user=nobody"]``."""
    return run_in_sandbox(_applied, (), replace(limits, wall_seconds=max(limits.wall_seconds, 30)))


def _child_main(conn: Any, fn: Callable, args: tuple, limits: SandboxLimits) -> None:
    try:
        APPLIED[:] = apply_limits(limits)
        result: tuple[str, Any] = ("ok", fn(*args))
    except SandboxFailure as exc:
        result = ("err", exc.error)
    except MemoryError as exc:
        result = ("err", RewardError("memory", f"MemoryError: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - everything becomes a structured error
        err = classify_exception(exc, "<never>")
        text = "".join(tb_module.format_exception(exc))[-4000:]
        result = ("err", replace(err, traceback=text))
    try:
        conn.send(result)
    except Exception as exc:  # unpicklable result
        conn.send(("err", RewardError("exception", f"result could not be sent back: {exc!r}")))
    finally:
        conn.close()


def _kill_group(proc: Any) -> None:
    pid = proc.pid
    if pid is None:
        return
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            target()


def run_in_sandbox(
    fn: Callable[..., Any], args: tuple = (), limits: SandboxLimits = DEFAULT_LIMITS
) -> Any:
    """Run ``fn(*args)`` in a limited child process and return its result.

    ``fn`` must be a picklable top-level callable, and ``args`` and the result picklable. The
    child starts from a forkserver that has torch imported, enters a new session and network
    namespace, gets the resource limits of ``limits`` and drops root privileges (see
    :class:`SandboxLimits`). A child that runs past ``limits.wall_seconds`` is killed with its
    whole process group.

    Raises:
        SandboxFailure: the child raised (``error.kind`` from the exception: ``exception``,
            ``memory``, ``unknown_state``, ...), ran out of time (``timeout``), or died from a
            signal (``timeout`` for the CPU limit, ``memory`` otherwise).
    """
    ctx = _mp_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child, fn, args, limits), daemon=True)
    _start_without_main(proc)
    child.close()
    deadline = time.monotonic() + limits.wall_seconds
    result = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if parent.poll(min(remaining, 0.5)):
                try:
                    result = parent.recv()
                except (EOFError, OSError):
                    result = None
                break
            if not proc.is_alive() and not parent.poll(0):
                break
    finally:
        _kill_group(proc)
        proc.join(5)
        parent.close()
    if result is not None:
        status, value = result
        if status == "ok":
            return value
        raise SandboxFailure(value)
    if time.monotonic() >= deadline:
        raise SandboxFailure(
            RewardError(
                "timeout", f"did not finish within {limits.wall_seconds:g} s of wall time (killed)"
            )
        )
    code = proc.exitcode
    if code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        if -code == signal.SIGXCPU:
            raise SandboxFailure(
                RewardError("timeout", f"used more than {limits.cpu_seconds:g} s of CPU time")
            )
        raise SandboxFailure(
            RewardError("memory", f"the sandboxed process was killed by {sig} (out of memory?)")
        )
    raise SandboxFailure(
        RewardError("exception", f"the sandboxed process exited with status {code} and no result")
    )


# ---------------------------------------------------------------------------------------------
# Recorded states and the trial run

SPEED_BATCH = 4096
"""Worlds in the batch the speed check times."""


def record_states(
    task: str,
    num_envs: int = 256,
    steps: int = 50,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, torch.Tensor]:
    """States of ``task`` under uniformly random actions, for trial runs.

    Runs ``num_envs`` worlds for ``steps`` control steps (auto-resetting) and stacks every
    step's ``env.state()``, so each entry is ``[steps * num_envs, *shape]``; ``"action"`` holds
    the action of that step. With ``cache_dir`` the batch is saved to / loaded from
    ``<cache_dir>/states_<task>_<num_envs>x<steps>_seed<seed>.pt``.

    Random actions visit the start distribution and early falls, not the states of a trained
    policy; rewards that only misbehave there are caught by the per-call checks instead.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"states_{task}_{num_envs}x{steps}_seed{seed}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
    from rewardlab.envs import make_env

    env = make_env(task, num_envs=num_envs, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    frames: dict[str, list[torch.Tensor]] = {}
    try:
        with torch.inference_mode():
            env.reset(seed=seed)
            for _ in range(steps):
                action = torch.rand(num_envs, env.action_dim, generator=gen) * 2 - 1
                env.step(action)
                for k, v in env.state().items():
                    frames.setdefault(k, []).append(v.detach().cpu().clone())
                frames.setdefault("action", []).append(action)
    finally:
        env.close()
    out = {k: torch.cat(v, 0) for k, v in frames.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(out, tmp)
        os.replace(tmp, path)
    return out


def _speed_batch(states: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    b = next(iter(states.values())).shape[0]
    reps = -(-n // b)
    return {k: (v.repeat(reps, *([1] * (v.dim() - 1))) if reps > 1 else v)[:n] for k, v in states.items()}  # fmt: skip


def _stats(values: torch.Tensor) -> dict[str, float]:
    v = values.double()
    return {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max())}


def evaluate_reward(
    fn: Callable[..., Any],
    states: Mapping[str, torch.Tensor],
    filename: str,
    max_ms_per_call: float,
    chunk: int = SPEED_BATCH,
) -> CheckResult:
    """Run the checks of :func:`trial_run` on an already built reward (in this process)."""
    states = dict(states)
    if "action" not in states:
        return CheckResult(False, RewardError("exception", "recorded states have no 'action'"))
    action_all = states.pop("action")
    total_rows = action_all.shape[0]
    totals: list[torch.Tensor] = []
    comps: dict[str, list[torch.Tensor]] = {}
    names: list[str] = []
    for start in range(0, total_rows, chunk):
        sl = slice(start, start + chunk)
        batch = StateDict({k: v[sl] for k, v in states.items()})
        action = action_all[sl]
        n = action.shape[0]
        before = _versions(batch, action)
        try:
            with torch.no_grad():
                out = fn(StateDict(batch), action)
        except Exception as exc:
            return CheckResult(False, classify_exception(exc, filename))
        err = validate_output(out, n) or _mutation_error(before, batch, action)
        if err:
            return CheckResult(False, err)
        total, parts = out
        if start == 0:
            names = list(parts)
        for name, value in [("total", total), *parts.items()]:
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                rows = (~finite).nonzero().flatten()[:3].tolist()
                example = {k: v[sl][rows[0]].tolist() for k, v in list(states.items())[:6]}
                return CheckResult(
                    False,
                    RewardError(
                        "nan",
                        f"{name} is NaN or infinite in {bad} of {n} recorded worlds; one such "
                        f"state: {example}",
                    ),
                    names,
                )
        totals.append(total.detach().float().cpu())
        for name, value in parts.items():
            comps.setdefault(name, []).append(value.detach().float().cpu())
    stats = {"total": _stats(torch.cat(totals))} if totals else {}
    stats.update({k: _stats(torch.cat(v)) for k, v in comps.items()})
    # speed: median of timed calls on a 4096-world batch
    big = _speed_batch({**states, "action": action_all}, SPEED_BATCH)
    big_action = big.pop("action")
    big_state = StateDict(big)
    times = []
    budget = time.perf_counter() + max(1.0, 20 * max_ms_per_call / 1000)
    with torch.no_grad():
        for i in range(7):
            t0 = time.perf_counter()
            try:
                fn(big_state, big_action)
            except Exception as exc:
                return CheckResult(False, classify_exception(exc, filename), names)
            if i:  # the first call warms up
                times.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > budget and times:
                break
    ms = sorted(times)[len(times) // 2] if times else None
    if ms is not None and ms > max_ms_per_call:
        return CheckResult(
            False,
            RewardError(
                "too_slow",
                f"one call on {SPEED_BATCH} worlds takes {ms:.1f} ms; the limit is "
                f"{max_ms_per_call:g} ms",
            ),
            names,
            ms,
            stats,
        )
    return CheckResult(True, None, names, ms, stats)


def _trial_child(
    code: str,
    states: Mapping[str, torch.Tensor],
    max_ms_per_call: float,
    builder: Callable[..., Any] | None,
    builder_args: tuple,
    filename: str,
) -> CheckResult:
    """Body of :func:`trial_run` in the child: build the reward, then evaluate it."""
    state_names = [k for k in states if k != "action"]
    try:
        if builder is None:
            err = check_source(code, state_names)
            if err:
                return CheckResult(False, err)
            namespace = exec_source(code, filename)
            fn = namespace["compute_reward"]
        else:
            fn = builder(code, *builder_args, filename=filename)
    except SandboxFailure as exc:
        return CheckResult(False, exc.error)
    except Exception as exc:
        return CheckResult(False, classify_exception(exc, filename))
    return evaluate_reward(fn, states, filename, max_ms_per_call)


def trial_run(
    code: str,
    states: Mapping[str, torch.Tensor],
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    builder: Callable[..., Any] | None = None,
    builder_args: tuple = (),
    filename: str | None = None,
) -> CheckResult:
    """Exercise reward code on recorded states in a limited child process.

    The child checks the source (native rewards), executes it, calls it on every recorded
    state in chunks of 4096 worlds (output ``(total [N], {name: [N]})``, float dtype, finite
    values), collects min/mean/max per component, and times calls on a 4096-world batch
    against ``limits.max_ms_per_call``. Never raises for bad code: the outcome is a
    :class:`CheckResult` whose ``error`` says what failed.

    Args:
        code: the reward source.
        states: recorded states with an ``"action"`` entry (:func:`record_states`).
        limits: limits of the child process.
        builder: for other reward styles (see :mod:`rewardlab.rewards.compat`), a picklable
            top-level ``builder(code, *builder_args, filename=...) -> fn(state, action)`` used in
            the child instead of the native ``compute_reward`` lookup.
        builder_args: extra picklable arguments of ``builder``.
        filename: name shown in tracebacks.
    """
    filename = filename or source_filename(code)
    t0 = time.perf_counter()
    try:
        result = run_in_sandbox(
            _trial_child,
            (code, dict(states), limits.max_ms_per_call, builder, builder_args, filename),
            limits,
        )
    except SandboxFailure as exc:
        result = CheckResult(False, exc.error)
    result.load_seconds = time.perf_counter() - t0
    return result
