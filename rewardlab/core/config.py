"""The config engine: YAML and ``key=value`` words -> frozen dataclasses, validated at load.

Every config in RewardLab (training runs, reward searches, VLM rewards, robots, tasks) is a
frozen dataclass with a docstring per field. This module turns plain data into them::

    data = load_yaml("sim_configs/train/default.yaml")        # bounded, safe YAML
    merged, sources = merge_layers([("default.yaml", data), (COMMAND_LINE, parse_overrides(argv))])
    cfg = build(TrainConfig, merged, "", sources)              # keys, types, validate()

A mistake raises :class:`ConfigError` (a ``ValueError``) whose one-line message names where the
value came from (the file, or "command line"), the dotted key, the bad value and what was
expected: the type, the allowed values, or -- for an unknown key -- the closest known key.
Values are only converted, never rewritten: an integer where a float is expected becomes a
float, a YAML list becomes a tuple.

Input is treated as hostile. A file must be a regular file of at most :data:`MAX_FILE_BYTES`,
UTF-8, and nest at most :data:`MAX_DEPTH` levels; duplicate keys, alias bombs (more than
:data:`MAX_NODES` values once aliases are expanded), non-finite numbers and integers beyond 64
bits are refused; every message is at most :data:`MAX_MESSAGE_CHARS` characters.

This module imports nothing from the rest of RewardLab, so every layer (deploy included) can
use it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import os
import re
import stat
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

COMMAND_LINE = "command line"
"""Source name of ``key=value`` overrides in error messages."""

MAX_FILE_BYTES = 1 << 20
"""Largest config file read (1 MiB): a config is a page of settings, not data."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists in a config."""

MAX_NODES = 100_000
"""Most values in a config once YAML aliases are expanded (an alias bomb has billions)."""

MAX_MESSAGE_CHARS = 600
"""Longest error message; values quoted in messages are cut to :data:`MAX_VALUE_CHARS`."""

MAX_VALUE_CHARS = 80
"""Longest quoted value in an error message."""

_INT64 = 1 << 63


class ConfigError(ValueError):
    """A config value that cannot be used.

    ``str(error)`` reads ``"<source>: <key>: <problem>"``, e.g.
    ``"command line: ppo.num_steps: got 'abc' (str), expected an integer"``, at most
    :data:`MAX_MESSAGE_CHARS` characters.

    Attributes:
        source: the file the value came from, or ``"command line"``.
        key: the dotted key path (``""`` for the file as a whole).
        problem: what is wrong and what was expected.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        msg = f"{source}: {key}: {problem}" if key else f"{source}: {problem}"
        super().__init__(clip_text(msg, MAX_MESSAGE_CHARS))


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut with ``... (N more)``."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text) - limit} more)"
    return text[: max(limit - len(tail), 0)] + tail


# -------------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML with the limits of this module; also reads ``1e-3`` and ``3E+4`` as floats
    (YAML 1.2, as users expect), and refuses duplicate keys."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if duplicate:
                raise yaml.YAMLError(
                    f"duplicate key {clip_text(repr(key), MAX_VALUE_CHARS)} "
                    f"(line {key_node.start_mark.line + 1})"
                )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _check_size(data: Any) -> None:
    """Raise ``yaml.YAMLError`` when ``data`` has more than :data:`MAX_NODES` values once
    shared (aliased) parts are counted every time they appear; stops counting at the limit."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise yaml.YAMLError(
                f"more than {MAX_NODES:,} values once aliases are expanded (an alias bomb?)"
            )
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def _safe_load(text: str) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except RecursionError:
        raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_size(data)
    return data


def parse_scalar(text: str) -> Any:
    """Parse a command-line value as YAML (``3e-4`` -> float, ``[64, 64]`` -> list, ``null``).

    Raises:
        yaml.YAMLError: not valid YAML, or beyond this module's limits.
    """
    return _safe_load(text) if text.strip() else None


def read_config_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a config file: a regular file of at most ``limit`` bytes, UTF-8.

    Raises:
        ConfigError: missing, not a regular file (``/dev/zero``, a folder), too large, not
            readable, or not UTF-8.
    """
    source = display_path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        with open(os.open(path, flags), "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(str(path))
            if not stat.S_ISREG(mode):
                raise ConfigError(source, "", "not a regular file, expected a YAML file")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory, expected a YAML file") from None
    except OSError as e:
        raise ConfigError(source, "", f"cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise ConfigError(source, "", f"larger than {limit:,} bytes; expected a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            source, "", f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping within this module's limits; an empty file is ``{}``.

    Raises:
        ConfigError: the file is missing, unreadable, too large, not UTF-8, not valid YAML,
            beyond the limits (depth, aliases, duplicate keys), or not a mapping.
    """
    source = display_path(path)
    text = read_config_text(path)
    try:
        data = _safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, "", f"invalid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"got {show(data)}, expected a mapping of keys to values")
    return data


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values parsed by :func:`parse_scalar`.

    Raises:
        ConfigError: an argument without ``=``, an empty key segment, or an unparsable value.
            A key given twice takes its last value.
    """
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            hint = ""
            if arg.startswith("--") and len(arg) > 2:
                hint = f"; options are written key=value, e.g. {arg[2:].replace('-', '_')}=..."
            raise ConfigError(
                COMMAND_LINE,
                clip_text(arg, MAX_VALUE_CHARS),
                f"expected key=value (e.g. ppo.learning_rate=3e-4){hint}",
            )
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(COMMAND_LINE, key, "empty segment in the dotted key")
        try:
            value = parse_scalar(text)
        except yaml.YAMLError as e:
            problem = f"cannot parse {clip_text(repr(text), MAX_VALUE_CHARS)} as a YAML value"
            if "deeper" in str(e) or "alias" in str(e):
                problem += f": {e}"
            raise ConfigError(COMMAND_LINE, key, problem) from None
        node = out
        for i, p in enumerate(parts[:-1]):
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    COMMAND_LINE, ".".join(parts[: i + 1]), "set both as a value and as a mapping"
                )
            node = child
        node[parts[-1]] = value
    return out


# -------------------------------------------------------------------------------------------------
# Layers


class Sources:
    """Which layer (file or command line) set each dotted key, for error messages."""

    def __init__(self, default: str = "config") -> None:
        self._by_key: dict[str, str] = {}
        self.default = default
        """Source of keys no layer set (a default value that fails validation)."""

    def record(self, key: str, source: str) -> None:
        """Remember that ``source`` set ``key``."""
        self._by_key[key] = source

    def of(self, key: str) -> str:
        """The source of ``key``, else of its closest ancestor, else of any descendant.

        List items (``key[2]``) belong to their list's key.
        """
        key = re.sub(r"\[\d+\]", "", key)
        k = key
        while k:
            if k in self._by_key:
                return self._by_key[k]
            k = k.rpartition(".")[0]
        for known, src in reversed(self._by_key.items()):
            if known.startswith(key + "."):
                return src
        return self.default


def merge_layers(
    layers: Sequence[tuple[str, Mapping[str, Any]]], default_source: str = "config"
) -> tuple[dict[str, Any], Sources]:
    """Deep-merge ``(source, mapping)`` layers, later ones winning key by key.

    Args:
        layers: ``(source name, mapping)``, lowest priority first.
        default_source: the source errors name for keys no layer set.

    Returns:
        The merged mapping and the :class:`Sources` of every key.
    """
    sources = Sources(default_source)
    merged: dict[str, Any] = {}

    def merge(dst: dict[str, Any], src: Mapping[str, Any], prefix: str, source: str) -> None:
        for k, v in src.items():
            key = f"{prefix}{k}"
            sources.record(key, source)
            if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
                merge(dst[k], v, key + ".", source)
            elif isinstance(v, Mapping):
                dst[k] = {}
                merge(dst[k], v, key + ".", source)
            else:
                dst[k] = v

    for source, layer in layers:
        merge(merged, layer, "", source)
    return merged, sources


# -------------------------------------------------------------------------------------------------
# Conversion of plain data into the dataclasses


def show(value: Any) -> str:
    """A value as error messages quote it: ``repr`` (cut short) and its type."""
    return f"{clip_text(repr(value), MAX_VALUE_CHARS)} ({type(value).__name__})"


def display_path(path: str | Path) -> str:
    """A path as errors show it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def _plural(words: str) -> str:
    return words.removeprefix("an ").removeprefix("a ") + "s"


def describe_type(tp: Any) -> str:
    """Plain-words name of a field type, as errors and ``--help`` show it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin in (tuple, list):
        if not args:
            return "a list"
        if origin is tuple and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_plural(describe_type(args[0]))}"
        return f"a list of {_plural(describe_type(args[0]))}"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _type_error(value: Any, tp: Any, key: str, sources: Sources) -> ConfigError:
    return ConfigError(sources.of(key), key, f"got {show(value)}, expected {describe_type(tp)}")


def convert(value: Any, tp: Any, key: str, sources: Sources) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert it (int -> float, list -> tuple).

    Numbers must be finite; integers must fit in 64 bits.

    Raises:
        ConfigError: ``value`` does not fit ``tp``.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return convert(value, a, key, sources)
            except ConfigError as e:
                errors.append(e)
        # A number that fails only for being non-finite or too large says so.
        specific = [e for e in errors if "finite" in e.problem or "64-bit" in e.problem]
        raise specific[0] if specific else _type_error(value, tp, key, sources)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, sources)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, tp, key, sources)
    if tp is int:
        if isinstance(value, float) and value.is_integer():  # 1e6 -> 1000000
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT64 <= value < _INT64:
                raise ConfigError(
                    sources.of(key), key, f"got {show(value)}, expected a 64-bit integer"
                )
            return value
        raise _type_error(value, tp, key, sources)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(
                    sources.of(key), key, f"got {show(value)}, expected a finite number"
                )
            return float(value)
        raise _type_error(value, tp, key, sources)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(value, tp, key, sources)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _type_error(value, tp, key, sources)
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed: tuple[float, float]
            if len(value) != len(args):
                raise _type_error(value, tp, key, sources)
            items = [
                convert(v, a, f"{key}[{i}]", sources)
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item = args[0] if args else Any
            items = [convert(v, item, f"{key}[{i}]", sources) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, key, sources)
        vt = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(sources.of(key), f"{key}.{k}", "keys must be strings")
            out[k] = convert(v, vt, f"{key}.{k}", sources)
        return out
    raise TypeError(f"config field {key}: unsupported type {tp!r}")  # a schema bug, not user error


def unknown_key(key: str, name: str, allowed: Sequence[str], sources: Sources) -> ConfigError:
    """The error of an unknown key, suggesting the closest allowed one."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = clip_text(name, MAX_VALUE_CHARS)
    return ConfigError(
        sources.of(key),
        key if shown == name else key.removesuffix(name) + shown,
        f"unknown key; {hint}allowed: {', '.join(allowed)}",
    )


def join_key(prefix: str, name: str) -> str:
    """``prefix.name`` (``name`` when there is no prefix)."""
    return f"{prefix}.{name}" if prefix else name


def raise_validation(
    error: ValueError, prefix: str, names: Sequence[str], sources: Sources
) -> None:
    """Turn a ``validate()`` message ``"[prefix.]field...: problem"`` into a :class:`ConfigError`."""
    msg = str(error)
    for p in {prefix, prefix.rpartition(".")[2]} - {""}:
        msg = msg.removeprefix(p + ".")
    m = re.match(r"[A-Za-z_]\w*(?:\.\w+)*", msg)
    if m and m.group(0).split(".")[0] in names:
        key = join_key(prefix, m.group(0))
        raise ConfigError(sources.of(key), key, msg[m.end() :].lstrip(" :") or msg) from None
    raise ConfigError(sources.of(prefix) if prefix else sources.default, prefix, msg) from None


def build(cls: type, data: Any, prefix: str = "", sources: Sources | None = None) -> Any:
    """Build the frozen dataclass ``cls`` from a mapping, checking keys, types and ``validate()``.

    Args:
        cls: the dataclass.
        data: mapping of field name -> value (missing fields keep their defaults).
        prefix: dotted key of ``data`` inside the whole config, for errors.
        sources: where each key came from; ``"config"`` everywhere when ``None``.

    Raises:
        ConfigError: unknown key (with the closest known one), wrong type, or a value
            ``cls.validate()`` rejects.
    """
    sources = sources or Sources()
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(sources.of(prefix), prefix, f"got {show(data)}, expected a mapping")
    obj = cls(**convert_fields(cls, data, prefix, sources))
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise_validation(e, prefix, field_names(cls), sources)
    return obj


def field_names(cls: type) -> list[str]:
    """The init fields of dataclass ``cls``, in order."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def convert_fields(
    cls: type, data: Mapping[str, Any], prefix: str, sources: Sources
) -> dict[str, Any]:
    """Check the keys of ``data`` against the fields of dataclass ``cls`` and :func:`convert`
    each value to its field's type.

    Raises:
        ConfigError: unknown key (with the closest known one) or wrong type.
    """
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    out = {}
    for k, v in data.items():
        key = join_key(prefix, str(k))
        if k not in names:
            raise unknown_key(key, str(k), names, sources)
        out[k] = convert(v, hints[k], key, sources)
    return out


def to_plain(obj: Any) -> Any:
    """Dataclasses, mappings and tuples -> plain dicts and lists (for YAML and JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


class Dumper(yaml.SafeDumper):
    """Block-style mappings, flow-style lists (``actor_hidden: [64, 64]``)."""


Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump_yaml(data: Any) -> str:
    """``data`` (plain values) as YAML in :class:`Dumper`'s style, keys in their order."""
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)


# -------------------------------------------------------------------------------------------------
# Field documentation (for --help and for the docs)


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field of a dataclass."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def schema_lines(cls: type, prefix: str = "", instance: Any = None) -> list[str]:
    """``key (type, default): doc`` for every field of a dataclass, nested ones dotted."""
    instance = instance if instance is not None else cls()
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    lines = []
    for f in dataclasses.fields(cls):
        key = join_key(prefix, f.name)
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"{key}.*: {docs.get(f.name, '')}")
            lines += schema_lines(hints[f.name], key, value)
            continue
        default = (
            yaml.safe_dump(to_plain(value), default_flow_style=True)
            .strip()
            .removesuffix("...")
            .strip()
        )
        lines.append(
            f"{key} ({describe_type(hints[f.name])}, default {default}): {docs.get(f.name, '')}"
        )
    return lines
