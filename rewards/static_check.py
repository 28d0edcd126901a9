"""The static check of reward code: an allow-list of what a reward may touch.

Defence in depth only: the boundary is the OS sandbox (:mod:`rewardlab.rewards.boundary`), and
code that passes this check still runs only there. The check rejects, with the line:

- imports of anything but ``torch``, ``math``, ``numpy`` and ``typing`` (and the computing
  submodules of torch and numpy in :data:`ALLOWED_SUBMODULES`) that the code *uses*: an import
  of another module whose name is never read (Text2Reward's ``from scipy.spatial import
  distance``), or one from IsaacGym's helper modules whose names RewardLab predefines
  (:data:`PREDEFINED_HELPERS`), is removed before the code runs and reported as a note
  (:func:`import_notes`), never refused;
- attributes of those modules that are not in the allow-list of *functions that compute*
  (tensor ops, ufuncs, math functions, dtypes and constants): no ``torch.load``,
  ``torch.functional.operator``, ``np.ma.mrecords``, ``torch.autograd.profiler_legacy``,
  ``torch.set_num_threads``, ``np.seterr``, ``np.random.seed``, ...;
- attributes of values (tensors, arrays, dicts, lists) outside the public methods and
  properties of ``torch.Tensor``, ``numpy.ndarray`` and the builtin containers, and those of
  :data:`DENIED_VALUE_ATTRIBUTES` (``.data``, ``.untyped_storage()``, ``.tofile()``, ...);
  any name or attribute starting with ``_``;
- assignments to anything but local names (``torch.optim.Adam.step = ...``, ``x.data[:] = 0``),
  the ``out=`` keyword (a write into an existing tensor);
- format strings whose fields read attributes or items (``"{0.os.environ[KEY]}"``, checked as
  attribute access), ``.format`` on anything but a string literal, ``.format_map``;
- builtins outside a small list of harmless ones (no ``open``, ``exec``, ``getattr``, ``type``,
  ``vars``, ...), classes, ``global``, generators, ``async``, decorators other than
  ``@torch.jit.script``, top-level code other than imports, functions and constants.
"""

from __future__ import annotations

import ast
import builtins
import functools
import string
import types
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from rewardlab.rewards.errors import RewardError

ALLOWED_MODULES = frozenset({"torch", "math", "numpy", "typing"})
"""Top-level modules reward code may import (``typing`` for annotations only)."""

ALLOWED_SUBMODULES = frozenset(
    {
        "torch.linalg", "torch.special", "torch.fft", "torch.nn", "torch.nn.functional",
        "numpy.linalg", "numpy.fft",
    }
)  # fmt: skip
"""Submodules of the allowed modules that reward code may reach (they only compute)."""

DENIED_MODULE_ATTRIBUTES = frozenset(
    {
        # files and processes
        "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt",
        "fromfile", "from_file", "fromregex", "memmap", "DataSource", "tofile", "frombuffer",
        "fromstring", "import_ir_module", "import_ir_module_from_buffer", "fork", "wait",
        "from_dlpack", "to_dlpack", "compile", "vmap", "while_loop",
        # global state of the process
        "manual_seed", "seed", "initial_seed", "get_rng_state", "use_deterministic_algorithms",
        "init_num_threads", "seterr", "seterrcall", "setbufsize", "printoptions",
        "set_printoptions", "info", "source", "lookfor", "show_config", "show_runtime",
        "get_include", "safe_eval", "byte_bounds", "add_docstring", "add_newdoc",
        "add_newdoc_ufunc", "frompyfunc", "nested_iters", "prepare_multiprocessing_environment",
        "thread_safe_generator", "get_file_path", "typename", "classproperty",
        "parse_ir", "parse_schema", "parse_type_comment", "merge_type_from_type_comment",
        "unify_type_list", "sym_fresh_size", "grad",
    }
)  # fmt: skip
"""Names never allowed as attributes of the allowed modules (I/O, global state, code)."""

DENIED_MODULE_PREFIXES = ("set_", "_", "autocast", "clear_", "is_autocast")
"""Name prefixes never allowed as attributes of the allowed modules."""

DENIED_VALUE_ATTRIBUTES = frozenset(
    {
        "data", "storage", "untyped_storage", "typed_storage", "_typed_storage", "tofile",
        "dump", "dumps", "ctypes", "flags", "setflags", "share_memory_", "is_shared",
        "pin_memory", "register_hook", "register_post_accumulate_grad_hook", "retain_grad",
        "grad_fn", "set_", "resize_", "resize_as_", "module_load", "format", "format_map",
        "apply_", "map_", "map2_", "storage_offset", "data_ptr", "untyped", "base",
        "__dlpack__", "to_dlpack", "numpy_", "grad", "backward", "requires_grad_",
    }
)  # fmt: skip
"""Attributes of values (tensors, arrays, ...) reward code may not use even though the types
have them: memory, storage and autograd internals, file I/O, formatting."""

EXTRA_VALUE_ATTRIBUTES = frozenset(
    {
        # torch.finfo / iinfo and namedtuple results (torch.max(x, 1).values, svd(...).S)
        "eps", "tiny", "smallest_normal", "resolution", "bits", "max", "min",
        "values", "indices", "U", "S", "V", "Vh", "Q", "R", "L", "LU", "eigenvalues",
        "eigenvectors", "solution", "residuals", "rank", "singular_values", "sign", "logabsdet",
        "pivots", "info", "mantissa", "exponent",
    }
)  # fmt: skip

FORBIDDEN_NAMES = frozenset(
    {
        "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr",
        "hasattr", "globals", "locals", "vars", "dir", "input", "breakpoint", "help", "exit",
        "quit", "memoryview", "type", "object", "super", "classmethod", "staticmethod",
        "property", "id", "print", "bytearray", "copyright", "credits", "license", "format",
        "chr", "ord", "callable", "hash", "aiter", "anext", "bytes",
    }
)  # fmt: skip
"""Builtins reward code may not name (used or called)."""

SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "frozenset",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum",
    "tuple", "zip", "True", "False", "None", "Ellipsis", "NotImplemented",
    "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError",
    "NotImplementedError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
    "ZeroDivisionError", "OverflowError", "AttributeError",
)  # fmt: skip
"""The builtins reward code gets (see :func:`rewardlab.rewards.restricted.safe_globals`)."""

PRELUDE_NAMES = ("torch", "math", "np", "numpy", "Tuple", "Dict", "List", "Optional", "Tensor")
"""Names defined for reward code without an import (Eureka's code assumes them)."""

PRELUDE_MODULES = {"torch": "torch", "np": "numpy", "numpy": "numpy", "math": "math"}
"""Prelude names bound to modules (their attributes are checked against the allow-list)."""

JIT_DECORATORS = frozenset({"torch.jit.script", "jit.script", "torch.jit.ignore", "torch.jit.unused"})  # fmt: skip
"""Decorators accepted (and removed before execution: the code runs eagerly)."""

FOREIGN_HELPER_MODULES = frozenset(
    {
        "isaacgym.torch_utils", "isaacgymenvs.utils.torch_jit_utils", "utils.torch_jit_utils",
        "torch_jit_utils", "isaacgym.gymtorch", "isaacgym.gymapi", "isaacgym",
        "forward_locomotion.go1_gym.utils.math_utils", "globe_walking.go1_gym.utils.math_utils",
        "go1_gym.utils.math_utils", "legged_gym.utils.math",
    }
)  # fmt: skip
"""Modules of IsaacGym / IsaacGymEnvs / DrEureka (legged_gym) whose imports reward files carry
(``from isaacgymenvs.utils.torch_jit_utils import *``): removed before the code runs, with a
note; the names the rewards call from them are predefined (:data:`PREDEFINED_HELPERS`)."""

PREDEFINED_HELPERS = (
    "quat_mul", "quat_conjugate", "quat_rotate", "quat_rotate_inverse", "quat_apply",
    "quat_unit", "quat_from_angle_axis", "quat_axis", "quat_diff_rad", "my_quat_rotate",
    "get_euler_xyz", "normalize", "normalize_angle", "wrap_to_pi", "copysign", "tensor_clamp",
    "scale", "unscale", "scale_transform", "unscale_transform", "saturate", "get_basis_vector",
    "tf_vector", "tf_apply", "tf_inverse", "tf_combine", "quat_apply_yaw", "to_torch",
)  # fmt: skip
"""Helpers of ``isaacgymenvs.utils.torch_jit_utils`` / ``isaacgym.torch_utils`` (and legged_gym's
``quat_apply_yaw``, ``wrap_to_pi``) that foreign-style reward code may call unqualified:
RewardLab's own implementations (``rewardlab.rewards.compat``); an import of these names from
a foreign module is satisfied by them."""

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
    ast.GeneratorExp: "generator expressions (use a list comprehension)",
}
_TOP_LEVEL_OK = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.Pass)
_STATIC_NODES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Subscript, ast.Slice,
    ast.UnaryOp, ast.BinOp, ast.Load, ast.operator, ast.unaryop, ast.Compare, ast.cmpop,
    ast.BoolOp, ast.boolop, ast.IfExp, ast.Dict, ast.Set,
)  # fmt: skip
_TYPING_NAMES = frozenset({"Tuple", "Dict", "List", "Optional", "Union", "Any", "Sequence", "Mapping"})  # fmt: skip
_TORCH_FUNCTIONS = frozenset(
    {
        "atleast_1d", "atleast_2d", "atleast_3d", "block_diag", "broadcast_shapes",
        "broadcast_tensors", "cartesian_prod", "cdist", "chain_matmul", "einsum", "is_tensor",
        "meshgrid", "norm", "split", "tensordot", "unique", "unique_consecutive",
        "unravel_index", "lstsq", "lu", "stft", "istft",
    }
)  # fmt: skip
_TORCH_CLASSES = frozenset({"Tensor", "Size", "finfo", "iinfo", "no_grad", "inference_mode", "dtype"})  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The allow-lists, built from the installed torch and numpy


def _module_denied(name: str) -> bool:
    return name in DENIED_MODULE_ATTRIBUTES or name.startswith(DENIED_MODULE_PREFIXES)


@functools.lru_cache(maxsize=1)
def module_allow_list() -> dict[str, frozenset[str]]:
    """``{module path: names a reward may use}`` for the allowed modules and submodules.

    Built by looking at the installed torch and numpy: their tensor ops (``torch``'s native
    functions, numpy's ufuncs and array functions), dtypes and numeric constants, the math
    module's functions; never modules (except :data:`ALLOWED_SUBMODULES`), classes other than
    dtypes and a few value types, or the names of :data:`DENIED_MODULE_ATTRIBUTES`.
    """
    import math

    import numpy as np
    import torch

    native = torch._C._VariableFunctions
    out: dict[str, set[str]] = {}

    def names(mod: types.ModuleType) -> list[str]:
        return [n for n in dir(mod) if not _module_denied(n)]

    t: set[str] = set()
    for n in names(torch):
        obj = getattr(torch, n, None)
        if (
            isinstance(obj, torch.dtype | float | int)
            and not isinstance(obj, bool)
            or isinstance(obj, types.BuiltinFunctionType)
            and hasattr(native, n)
            or n in _TORCH_FUNCTIONS
            or n in _TORCH_CLASSES
        ):
            t.add(n)
    out["torch"] = t
    for sub in ("linalg", "special", "fft"):
        mod = getattr(torch, sub)
        out[f"torch.{sub}"] = {
            n
            for n in names(mod)
            if isinstance(getattr(mod, n, None), types.BuiltinFunctionType | types.FunctionType)
        }
    out["torch.nn"] = set()
    fn_mod = torch.nn.functional
    out["torch.nn.functional"] = {
        n
        for n in names(fn_mod)
        if isinstance(getattr(fn_mod, n, None), types.BuiltinFunctionType | types.FunctionType)
    }
    npset: set[str] = set()
    dispatcher = type(np.add.reduce)  # builtin method
    for n in names(np):
        obj = getattr(np, n, None)
        if (
            isinstance(obj, np.ufunc | float | types.BuiltinFunctionType | types.FunctionType)
            or type(obj).__name__ == "_ArrayFunctionDispatcher"
            or isinstance(obj, dispatcher)
            or isinstance(obj, type)
            and (issubclass(obj, np.generic) or obj is np.ndarray)
        ):
            npset.add(n)
    npset -= {"asmatrix", "bmat", "matrix", "recarray", "record", "chararray", "iterable"}
    npset.add("newaxis")
    out["numpy"] = npset
    for sub in ("linalg", "fft"):
        mod = getattr(np, sub)
        out[f"numpy.{sub}"] = {
            n
            for n in names(mod)
            if callable(getattr(mod, n, None))
            and not isinstance(getattr(mod, n), type)  # fmt: skip
        }
    out["math"] = {n for n in dir(math) if not n.startswith("_")}
    out["typing"] = set(_TYPING_NAMES)
    return {k: frozenset(v) for k, v in out.items()}


@functools.lru_cache(maxsize=1)
def value_allow_list() -> frozenset[str]:
    """Attribute names reward code may use on values of unknown type: the public methods and
    properties of ``torch.Tensor``, ``numpy.ndarray`` and numpy scalars, ``dict``, ``list``,
    ``tuple``, ``str``, ``float`` and ``int``, and the fields of torch's result tuples, less
    :data:`DENIED_VALUE_ATTRIBUTES`."""
    import numpy as np
    import torch

    names: set[str] = set(EXTRA_VALUE_ATTRIBUTES)
    for typ in (torch.Tensor, np.ndarray, np.float64, dict, list, tuple, str, float, int):
        names.update(n for n in dir(typ) if not n.startswith("_"))
    return frozenset(n for n in names if n not in DENIED_VALUE_ATTRIBUTES)


# ---------------------------------------------------------------------------------------------
# Parsing


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
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
        msg = f"{e.msg}" + (f": {text.strip()[:200]!r}" if text else "")
        return RewardError("syntax", msg, e.lineno)
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        return RewardError("syntax", f"{type(e).__name__}: {e}")


def parse_allowed(code: str, free_roots: Collection[str] = ()) -> ast.Module | RewardError:
    """:func:`parse_source` then :func:`check_ast`: the tree, or the first error."""
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return tree
    return check_ast(tree, free_roots) or tree


# ---------------------------------------------------------------------------------------------
# Imports that are not used: ignored with a note (the code never reads them)

_SCOPE_NODES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.ClassDef)  # fmt: skip


class _Scopes:
    """Which scope each name read resolves to (Python's rules for functions, lambdas and
    comprehensions; the reward language has no ``global``/``nonlocal`` and no classes)."""

    def __init__(self, tree: ast.Module) -> None:
        self.parent: dict[int, ast.AST | None] = {id(tree): None}
        self.locals: dict[int, set[str]] = {id(tree): set()}
        self.loads: list[tuple[ast.Name, ast.AST]] = []
        self.scope_of: dict[int, ast.AST] = {}
        self._visit(tree, tree)

    def _new(self, node: ast.AST, parent: ast.AST) -> ast.AST:
        self.parent[id(node)] = parent
        self.locals[id(node)] = set()
        return node

    def _function_scope(self, scope: ast.AST) -> ast.AST:
        """The innermost enclosing scope that is not a comprehension (where ``:=`` binds)."""
        while isinstance(scope, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            scope = self.parent[id(scope)]  # type: ignore[assignment]
        return scope

    def _visit_args(self, args: ast.arguments, outer: ast.AST, inner: ast.AST) -> None:
        for d in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self._visit(d, outer)
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                self.locals[id(inner)].add(a.arg)
                if a.annotation is not None:
                    self._visit(a.annotation, outer)

    def _visit(self, node: ast.AST, scope: ast.AST) -> None:  # noqa: PLR0912 - one rule per node type
        self.scope_of[id(node)] = scope
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.locals[id(scope)].add(node.name)
            for d in node.decorator_list:
                self._visit(d, scope)
            if node.returns is not None:
                self._visit(node.returns, scope)
            inner = self._new(node, scope)
            self._visit_args(node.args, scope, inner)
            for stmt in node.body:
                self._visit(stmt, inner)
            return
        if isinstance(node, ast.Lambda):
            inner = self._new(node, scope)
            self._visit_args(node.args, scope, inner)
            self._visit(node.body, inner)
            return
        if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            gens = node.generators
            self._visit(gens[0].iter, scope)  # evaluated in the enclosing scope
            inner = self._new(node, scope)
            for i, gen in enumerate(gens):
                self._visit(gen.target, inner)
                if i:
                    self._visit(gen.iter, inner)
                for cond in gen.ifs:
                    self._visit(cond, inner)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for e in elts:
                self._visit(e, inner)
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.loads.append((node, scope))
            else:
                self.locals[id(scope)].add(node.id)
            return
        if isinstance(node, ast.NamedExpr):
            self.locals[id(self._function_scope(scope))].add(node.target.id)
            self._visit(node.value, scope)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    self.locals[id(scope)].add(_bound_name(node, alias))
            return
        if isinstance(node, ast.ExceptHandler) and node.name:
            self.locals[id(scope)].add(node.name)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def resolve(self, name: str, scope: ast.AST) -> ast.AST | None:
        """The scope whose binding a read of ``name`` in ``scope`` sees (``None``: a builtin)."""
        cur: ast.AST | None = scope
        while cur is not None:
            if name in self.locals[id(cur)]:
                return cur
            cur = self.parent[id(cur)]
        return None

    def read(self, name: str, scope: ast.AST) -> list[int]:
        """Lines where ``name`` bound in ``scope`` is read."""
        return [n.lineno for n, s in self.loads if n.id == name and self.resolve(name, s) is scope]


def _bound_name(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    """The local name an import alias binds (``import a.b`` binds ``a``)."""
    if alias.asname:
        return alias.asname
    return alias.name.split(".")[0] if isinstance(node, ast.Import) else alias.name


def _import_allowed(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> bool:
    """Whether the allow-list accepts this import (see :class:`_Checker.import_error`)."""
    modules = module_allow_list()

    def kind(path: str) -> str | None:
        if path in ALLOWED_MODULES or path in ALLOWED_SUBMODULES:
            return "module"
        mod, _, name = path.rpartition(".")
        return "leaf" if mod in modules and name in modules[mod] else None

    if isinstance(node, ast.Import):
        return alias.name.split(".")[0] in ALLOWED_MODULES and kind(alias.name) == "module"
    mod = node.module or ""
    if node.level or kind(mod) != "module" or alias.name == "*":
        return False
    return kind(f"{mod}.{alias.name}") is not None


@dataclass(frozen=True)
class IgnoredImport:
    """An import the static check lets through because the code never needs it (it is removed
    before the code runs)."""

    line: int
    """Line of the import statement."""
    name: str
    """What it imports, e.g. ``scipy.spatial.distance``."""
    why: str
    """Why it is harmless to drop it (``unused``, or RewardLab predefines its names)."""

    def __str__(self) -> str:
        return f"line {self.line}: import of {self.name!r} ignored: {self.why}"


def _dotted_chains(tree: ast.AST) -> set[str]:
    chains = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            path = dotted(node)
            if path:
                parts = path.split(".")
                chains.update(".".join(parts[:k]) for k in range(2, len(parts) + 1))
    return chains


def ignored_imports(tree: ast.Module) -> list[tuple[ast.stmt, ast.alias, IgnoredImport]]:
    """Imports the allow-list would refuse but that the code does not need: the bound name is
    never read (in the scope of the import, or a nested one that does not rebind it), or every
    name imported from an IsaacGym helper module is predefined (:data:`PREDEFINED_HELPERS`; a
    star import of such a module too). ``import torch.optim`` (an allowed root) counts as used
    when ``torch.optim`` appears in the code. A used disallowed import is not listed: the
    allow-list refuses it."""
    scopes = _Scopes(tree)
    chains: set[str] | None = None
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for alias in node.names:
            if _import_allowed(node, alias):
                continue
            mod = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            full = f"{mod}.{alias.name}" if mod else alias.name
            helper_mod = isinstance(node, ast.ImportFrom) and not node.level and mod in FOREIGN_HELPER_MODULES  # fmt: skip
            if alias.name == "*":
                if helper_mod:
                    why = "RewardLab predefines the helpers reward code calls from it (quat_mul, quat_rotate, ...)"  # fmt: skip
                    out.append((node, alias, IgnoredImport(node.lineno, full, why)))
                continue
            if helper_mod and alias.name in PREDEFINED_HELPERS and not alias.asname:
                why = f"RewardLab predefines {alias.name}"
                out.append((node, alias, IgnoredImport(node.lineno, full, why)))
                continue
            if isinstance(node, ast.Import) and alias.name.split(".")[0] in PRELUDE_MODULES and not alias.asname:  # fmt: skip
                if chains is None:
                    chains = _dotted_chains(tree)
                used = alias.name in chains
            else:
                used = bool(scopes.read(_bound_name(node, alias), scopes.scope_of[id(node)]))
            if not used:
                why = "it is never used; reward code may import only torch, math, numpy and typing, so remove this import"  # fmt: skip
                out.append((node, alias, IgnoredImport(node.lineno, full, why)))
    return out


def strip_ignored_imports(tree: ast.Module) -> list[IgnoredImport]:
    """Remove the imports of :func:`ignored_imports` from ``tree`` in place (a statement left
    without names is removed; a body left empty gets ``pass``); returns what was removed."""
    found = ignored_imports(tree)
    if not found:
        return []
    drop = {(id(stmt), id(alias)) for stmt, alias, _ in found}
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, field, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            kept = []
            for stmt in block:
                if isinstance(stmt, ast.Import | ast.ImportFrom):
                    stmt.names = [a for a in stmt.names if (id(stmt), id(a)) not in drop]
                    if not stmt.names:
                        continue
                kept.append(stmt)
            if not kept and field == "body" and not isinstance(node, ast.Module):
                kept = [ast.copy_location(ast.Pass(), block[0])]
            block[:] = kept
    return [note for _, _, note in found]


def import_notes(code: str) -> list[IgnoredImport]:
    """The imports of ``code`` that the static check ignores (see :func:`ignored_imports`), to
    tell the user; ``[]`` for code that does not parse."""
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return []
    try:
        return [note for _, _, note in ignored_imports(tree)]
    except RecursionError:
        return []


# ---------------------------------------------------------------------------------------------
# The check


def _format_fields(text: str) -> list[str] | None:
    """Field names of a ``str.format`` template (``None``: not a valid template)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError:
        return None


def _check_format_string(node: ast.Constant) -> RewardError | None:
    text = node.value
    if "{" not in text:
        return None
    fields = _format_fields(text)
    if fields is None:
        return None  # not a template; `.format` on anything but a literal is refused anyway
    allowed = value_allow_list()
    for f in fields:
        if "[" in f:
            return _forbidden(node, f"format field {{{f}}} reads an item (format fields are attribute access)")  # fmt: skip
        for part in f.split(".")[1:]:
            if part.startswith("_") or part not in allowed:
                return _forbidden(
                    node,
                    f"format field {{{f}}} reads the attribute {part!r} (format fields are attribute access)",  # fmt: skip
                )
    return None


class _Checker:
    """One pass over a module; :meth:`run` returns the first error."""

    def __init__(self, tree: ast.Module, free_roots: Collection[str]) -> None:
        self.tree = tree
        self.free_roots = set(free_roots)
        self.modules = module_allow_list()
        self.values = value_allow_list()
        self.aliases: dict[str, str] = dict(PRELUDE_MODULES)
        self.exempt: set[int] = set()

    # -- names bound by imports -------------------------------------------------------------

    def _module_or_leaf(self, path: str) -> str | None:
        """``"module"`` / ``"leaf"`` for an allowed dotted path, else ``None``."""
        if path in ALLOWED_MODULES or path in ALLOWED_SUBMODULES:
            return "module"
        mod, _, name = path.rpartition(".")
        if mod in self.modules and name in self.modules[mod]:
            return "leaf"
        return None

    def _used_at(self, node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
        """`` (used on line N)`` for a refused import whose name the code reads."""
        if not hasattr(self, "_scopes"):
            self._scopes = _Scopes(self.tree)
        scope = self._scopes.scope_of.get(id(node))
        lines = self._scopes.read(_bound_name(node, alias), scope) if scope is not None else []
        return f" (used on line {min(lines)})" if lines else ""

    def import_error(self, node: ast.Import | ast.ImportFrom) -> RewardError | None:
        allowed = ", ".join(sorted(ALLOWED_MODULES | ALLOWED_SUBMODULES))
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in ALLOWED_MODULES or self._module_or_leaf(alias.name) != "module":  # fmt: skip
                    return _forbidden(node, f"import of {alias.name!r}{self._used_at(node, alias)}; allowed modules: {allowed}")  # fmt: skip
                if alias.asname:
                    self.aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    self.aliases[root] = root
            return None
        mod = node.module or ""
        if node.level or self._module_or_leaf(mod) != "module":
            used = next((u for a in node.names if (u := self._used_at(node, a))), "")
            return _forbidden(node, f"import from {'.' * node.level + mod!r}{used}; allowed modules: {allowed}")  # fmt: skip
        for alias in node.names:
            if alias.name == "*":
                return _forbidden(node, f"'from {mod} import *'; import names explicitly")
            kind = self._module_or_leaf(f"{mod}.{alias.name}")
            if kind is None:
                return _forbidden(node, f"import of {alias.name!r} from {mod!r} (not a function that computes){self._used_at(node, alias)}")  # fmt: skip
            if kind == "module":
                self.aliases[alias.asname or alias.name] = f"{mod}.{alias.name}"
        return None

    # -- attribute access --------------------------------------------------------------------

    def attribute_error(self, node: ast.Attribute) -> RewardError | None:
        a = node.attr
        path = dotted(node)
        # a style's own check maps every chain of a free root (Text2Reward's self._target_pos,
        # self.env._get_pos_goal): only names declared for the task pass it
        free = path is not None and path.split(".")[0] in self.free_roots
        if a.startswith("__") or a.startswith("_") and not free:
            return _forbidden(node, f"attribute {path or '<expr>.' + a!r} (names starting with '_')")  # fmt: skip
        if isinstance(node.ctx, ast.Store | ast.Del):
            return _forbidden(
                node,
                f"assignment to the attribute {path or '<expr>.' + a!r}; only local names may be assigned",  # fmt: skip
            )
        if path is not None:
            root, *parts = path.split(".")
            if root in self.aliases:
                return self._module_chain_error(node, self.aliases[root], parts, path)
            if root in self.free_roots:  # e.g. Text2Reward's self.<path>, mapped by its check
                return _forbidden(node, f"attribute {path!r}") if a in DENIED_VALUE_ATTRIBUTES else None  # fmt: skip
        if a == "format":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return None  # its fields are checked as attribute access (_check_format_string)
            return _forbidden(node, "'.format' on anything but a string literal")
        if a not in self.values:
            return _forbidden(
                node,
                f"attribute {path or '<expr>.' + a!r} (not a method or property of tensors, arrays or containers)",  # fmt: skip
            )
        return None

    def _module_chain_error(self, node: ast.AST, mod: str, parts: list[str], path: str) -> RewardError | None:  # fmt: skip
        current = mod
        for i, part in enumerate(parts):
            sub = f"{current}.{part}"
            if sub in ALLOWED_SUBMODULES:
                current = sub
                continue
            if part in self.modules.get(current, ()):
                rest = parts[i + 1 :]  # attributes of the function / dtype / constant
                bad = next((p for p in rest if p not in self.values), None)
                if bad is None:
                    return None
                return _forbidden(node, f"attribute {path!r}")
            return _forbidden(node, f"attribute {path!r} ({part!r} is not a function of {current} that computes)")  # fmt: skip
        return None

    # -- the walk ----------------------------------------------------------------------------

    def top_level_error(self) -> RewardError | None:
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstring
            if not isinstance(stmt, _TOP_LEVEL_OK):
                return _forbidden(
                    stmt,
                    f"top-level {type(stmt).__name__} statement; only imports, function "
                    "definitions and constant assignments may appear outside functions",
                )
            # what runs when the module is executed must be deterministic: no calls in
            # module-level values, default arguments or annotations
            if isinstance(stmt, ast.FunctionDef):
                a = stmt.args
                parts = [*a.defaults, *(d for d in a.kw_defaults if d is not None), stmt.returns]
                parts += [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                parts = [stmt.value, getattr(stmt, "annotation", None)]
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if not all(isinstance(t, ast.Name) for t in targets):
                    return _forbidden(stmt, "module-level assignments may only bind names")
            else:
                parts = []
            for part in parts:
                if part is None:
                    continue
                call = next((n for n in ast.walk(part) if not isinstance(n, _STATIC_NODES)), None)  # fmt: skip
                if call is not None:
                    return _forbidden(
                        call,
                        f"{type(call).__name__} outside a function (module-level values, "
                        "default arguments and annotations must be constants)",
                    )
        return None

    def run(self) -> RewardError | None:
        err = self.top_level_error()
        if err:
            return err
        for fn in ast.walk(self.tree):  # the accepted decorators are removed before execution
            if isinstance(fn, ast.FunctionDef):
                for dec in fn.decorator_list:
                    if dotted(dec) in JIT_DECORATORS:
                        self.exempt.update(id(n) for n in ast.walk(dec))
        # imports first, wherever they are, so that aliases are known for every attribute
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                err = self.import_error(node)
                if err:
                    return err
        # names and constructs first (the most telling message: 'open' rather than '.read')
        nodes = [n for n in ast.walk(self.tree) if id(n) not in self.exempt]
        nodes.sort(key=lambda n: not isinstance(n, ast.Name | ast.stmt | ast.keyword))
        for node in nodes:
            err = self.node_error(node)
            if err:
                return err
        return None

    def node_error(self, node: ast.AST) -> RewardError | None:  # noqa: PLR0911 - one rule per node type
        kind = _FORBIDDEN_NODES.get(type(node))
        if kind:
            return _forbidden(node, f"{kind} are not allowed")
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                return _forbidden(node, f"name {node.id!r} (names starting with '__')")
            if node.id in FORBIDDEN_NAMES or (
                hasattr(builtins, node.id)
                and node.id not in SAFE_BUILTIN_NAMES
                and isinstance(node.ctx, ast.Load)  # fmt: skip
                and node.id not in self.aliases
                and node.id not in PRELUDE_NAMES
            ):
                return _forbidden(node, f"use of the builtin {node.id!r}")
        elif isinstance(node, ast.Attribute):
            return self.attribute_error(node)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
            base: ast.AST = node
            while isinstance(base, ast.Subscript):
                base = base.value
            if not isinstance(base, ast.Name):
                return _forbidden(node, "item assignment into anything but a local name")
        elif isinstance(node, ast.FunctionDef | ast.Lambda):
            if isinstance(node, ast.FunctionDef):
                if node.name.startswith("__"):
                    return _forbidden(node, f"function name {node.name!r}")
                for dec in node.decorator_list:
                    if dotted(dec) not in JIT_DECORATORS:
                        return _forbidden(dec, "decorators other than @torch.jit.script are not allowed")  # fmt: skip
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.arg.startswith("__"):
                    return _forbidden(node, f"argument name {arg.arg!r}")
        elif isinstance(node, ast.alias) and node.asname and node.asname.startswith("__"):
            return _forbidden(node, f"import alias {node.asname!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            return _check_format_string(node)
        elif isinstance(node, ast.keyword) and node.arg:
            if node.arg.startswith("__"):
                return _forbidden(node, f"keyword argument {node.arg!r}")
            if node.arg == "out":
                return _forbidden(node, "the 'out=' keyword (it writes into an existing tensor); use the returned value")  # fmt: skip
        elif isinstance(node, ast.ExceptHandler) and node.name and node.name.startswith("__"):
            return _forbidden(node, f"name {node.name!r}")
        elif isinstance(node, ast.NamedExpr) and node.target.id.startswith("__"):
            return _forbidden(node, f"name {node.target.id!r}")
        return None


def check_ast(tree: ast.Module, free_roots: Collection[str] = ()) -> RewardError | None:
    """The allow-list check of a parsed module (see the module docstring).

    Args:
        tree: the parsed reward source.
        free_roots: local names whose attribute chains a style's own check maps (Text2Reward's
            ``self``); only the deny-list applies to them here.

    Returns:
        ``None`` if the code passes, else the first :class:`RewardError` (kind ``forbidden``).

    Imports the code does not need (:func:`ignored_imports`) are removed from ``tree`` first.
    """
    try:
        strip_ignored_imports(tree)
        return _Checker(tree, free_roots).run()
    except RecursionError:
        return RewardError("forbidden", "the code is nested too deeply to be checked")


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


def suggest(name: str, known: Collection[str], prefix: str = "") -> str | None:
    """The one known name close enough to ``name`` to suggest, or ``None``.

    ``prefix`` (e.g. ``"self."``), shared by all names, is left out of the comparison (it
    would make every pair look alike). Dotted names must also agree on their first part
    (``self.cubeA.pose.p`` is not ``self.tcp.pose.p``).
    """
    import difflib

    def bare(n: str) -> str:
        return n[len(prefix) :] if prefix and n.startswith(prefix) else n

    target = bare(name)
    pool = {bare(k): k for k in known}
    for cand in difflib.get_close_matches(target, list(pool), n=5, cutoff=0.7):
        a, b = target.split(".", 1)[0], cand.split(".", 1)[0]
        if ("." in target or "." in cand) and a != b and difflib.SequenceMatcher(None, a, b).ratio() < 0.75:  # fmt: skip
            continue
        return pool[cand]
    return None


@dataclass(frozen=True)
class UnknownName:
    """A name reward code uses that the task does not provide."""

    name: str
    """The name as written (``'pole_angel'``, ``'self.cubeA.pose.p'``)."""
    line: int | None
    """Where it is first used."""
    reason: str | None = None
    """Why the task cannot provide it, when it is a known foreign name (``None``: unknown)."""


def unknown_names_error(
    unknown: Sequence[UnknownName], known: Collection[str], what: str, prefix: str = ""
) -> RewardError:
    """One ``unknown_state`` error for every unknown name at once (sorted by line), each with
    its line and a suggestion when a known name is close (:func:`suggest`), then the known
    names. The error's ``line`` is the first one's."""
    items = sorted(unknown, key=lambda u: (u.line or 0, u.name))

    def one(u: UnknownName, with_line: bool) -> str:
        where = f"line {u.line}: " if with_line and u.line else ""
        if u.reason:
            return f"{where}{what} {u.name!r} is not available: {u.reason}"
        close = suggest(u.name, known, prefix)
        hint = f" (did you mean {close!r}?)" if close else ""
        return f"{where}{what} {u.name!r} does not exist{hint}"

    listed = ", ".join(sorted(known))
    if len(items) == 1:
        text = f"{one(items[0], False)}; known: {listed}"
    else:
        text = f"{len(items)} unknown names: " + "; ".join(one(u, True) for u in items) + f". Known: {listed}"  # fmt: skip
    return RewardError("unknown_state", text, items[0].line)


def unknown_name_error(name: str, known: Collection[str], line: int | None, what: str) -> RewardError:  # fmt: skip
    """An ``unknown_state`` error for one name (see :func:`unknown_names_error`)."""
    return unknown_names_error([UnknownName(name, line)], known, what)


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
    unknown: dict[str, UnknownName] = {}
    for name, line in state_reads(fn, params[0]):
        if name not in known and (name not in unknown or line < (unknown[name].line or 0)):
            unknown[name] = UnknownName(name, line)
    if unknown:
        return unknown_names_error(list(unknown.values()), known, "state entry")
    return None


__all__ = [
    "ALLOWED_MODULES",
    "ALLOWED_SUBMODULES",
    "FORBIDDEN_NAMES",
    "PRELUDE_NAMES",
    "FOREIGN_HELPER_MODULES",
    "PREDEFINED_HELPERS",
    "IgnoredImport",
    "UnknownName",
    "check_ast",
    "check_source",
    "ignored_imports",
    "import_notes",
    "strip_ignored_imports",
    "suggest",
    "unknown_names_error",
    "find_function",
    "module_allow_list",
    "parse_allowed",
    "parse_source",
    "positional_params",
    "state_reads",
    "unknown_name_error",
    "value_allow_list",
]
