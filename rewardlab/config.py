"""Training configs: YAML under ``sim_configs/`` validated into frozen dataclasses.

A training run is described by one :class:`TrainConfig`. It is assembled from layers, each
overriding the one before it, key by key (mappings merge, everything else replaces)::

    sim_configs/train/default.yaml      the project's defaults
    sim_configs/train/<task>.yaml       per-task defaults (when the file exists)
    <run_dir>/config.yaml               a run being resumed (the CLI adds it)
    --config FILE                       the user's file
    key=value ...                       command-line overrides, dotted keys, YAML scalars

e.g. ``rewardlab train task=cartpole_balance ppo.learning_rate=3e-4 task_cfg.episode_steps=200``.

Every value is checked against the dataclass field it lands in. A mistake raises
:class:`ConfigError` (a ``ValueError``) naming where the value came from (the file, or
"command line"), the dotted key, the bad value and what was expected (the type, the allowed
values, or -- for an unknown key -- the closest known key). ``task_cfg`` holds overrides of the
task's own config dataclass (``CartpoleConfig``, ...) and is validated against it with
``dataclasses.replace`` and the task's ``validate()``.

The dataclasses never change what the user wrote: values are only converted on load
(an integer where a float is expected becomes a float, a YAML list becomes a tuple).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import os
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardlab.agents.config import PPOConfig

AGENTS = ("ppo", "sb3_ppo", "sb3_sac")
"""Learners ``TrainConfig.agent`` may name."""

REWARD_KINDS = ("task", "code", "clip", "vlm")
"""Kinds of ``TrainConfig.reward`` (``code`` takes a file: ``code:<file.py>``)."""

SB3_WRAPPER_KEYS = ("normalize_obs", "normalize_reward")
"""Keys of ``TrainConfig.sb3`` that configure the env wrapper rather than the SB3 algorithm."""

COMMAND_LINE = "command line"
"""Source name of ``key=value`` overrides in error messages."""


def config_dir() -> Path:
    """The ``sim_configs/`` folder: ``$REWARDLAB_CONFIG_DIR`` or the one next to the package."""
    env = os.environ.get("REWARDLAB_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "sim_configs"


class ConfigError(ValueError):
    """A config value that cannot be used.

    ``str(error)`` reads ``"<source>: <key>: <problem>"``, e.g.
    ``"command line: ppo.num_steps: got 'abc' (str), expected an integer"``.

    Attributes:
        source: the file the value came from, or ``"command line"``.
        key: the dotted key path (``""`` for the file as a whole).
        problem: what is wrong and what was expected.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


# -------------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True)
class EvalConfig:
    """How a trained policy is evaluated after training and by ``rewardlab eval``."""

    episodes: int = 20
    """Episodes to evaluate over (each world counts its first ceil(episodes / num_envs))."""
    video: bool = True
    """Record an mp4 of world 0 into ``<run_dir>/videos/``."""
    video_episodes: int = 1
    """Episodes of world 0 to put in the video."""
    deterministic: bool = True
    """Act with the policy's mean action (false: sample from the policy's distribution)."""
    num_envs: int | None = None
    """Parallel worlds of the eval env; null: min(episodes, 32)."""
    seed: int | None = None
    """Seed of the eval env; null: the training seed + 10000 (never the training stream)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        if self.episodes < 1:
            raise ValueError(f"episodes: got {self.episodes!r}, expected >= 1")
        if self.video_episodes < 0:
            raise ValueError(f"video_episodes: got {self.video_episodes!r}, expected >= 0")
        if self.num_envs is not None and self.num_envs < 1:
            raise ValueError(f"num_envs: got {self.num_envs!r}, expected >= 1 or null")

    def resolved_num_envs(self) -> int:
        """Worlds of the eval env: ``num_envs`` or ``min(episodes, 32)``."""
        return self.num_envs if self.num_envs is not None else min(self.episodes, 32)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: task, simulator, learner, budget and evaluation."""

    task: str = ""
    """Registered task name (``rewardlab tasks`` lists them); required."""
    backend: str = "mujoco"
    """Simulator backend, one of ``rewardlab.envs.BACKENDS``."""
    num_envs: int = 64
    """Parallel worlds of the training env."""
    nthread: int = 0
    """Physics threads of the mujoco backend; 0: one per CPU core."""
    seed: int = 0
    """Seed of the training env and the learner."""
    device: str = "auto"
    """Torch device of the learner and the env tensors (``cpu``, ``cuda``, ``cuda:1``); ``auto``:
    ``cuda`` when the backend simulates on the GPU (``warp``) and CUDA is available, else ``cpu``
    (the CPU backend's worlds live in host memory; its small networks train fastest there)."""
    run_dir: str | None = None
    """Run directory; null: ``runs/<task>-<YYYYmmdd-HHMMSS>``."""
    resume: bool = True
    """Continue from the latest checkpoint when ``run_dir`` already has one."""
    agent: str = "ppo"
    """Learner: ``ppo`` (batched, this package), ``sb3_ppo`` or ``sb3_sac`` (stable-baselines3)."""
    total_steps: int = 1_000_000
    """Environment steps (summed over worlds) to train for, counting those before a resume."""
    checkpoint_every: int = 50
    """Learner iterations between checkpoints (``ppo``)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """Hyper-parameters of the ``ppo`` agent."""
    sb3: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the stable-baselines3 algorithm (``sb3_ppo`` / ``sb3_sac``), plus
    ``normalize_obs`` / ``normalize_reward`` (SB3 ``VecNormalize``, default false)."""
    task_cfg: dict[str, Any] = field(default_factory=dict)
    """Overrides of fields of the task's config dataclass (e.g. ``episode_steps``)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation after training and defaults of ``rewardlab eval``."""
    reward: str = "task"
    """Reward to train on: ``task`` (the task's own terms), ``code:<file.py>`` (a reward file,
    checked in a sandbox before use), ``clip`` or ``vlm`` (frames scored by the model ``vlm``
    configures). Evaluation always measures the task's own success."""
    vlm: dict[str, Any] = field(default_factory=dict)
    """Settings of the vision-language reward (``rewardlab.vlm_reward.config.VLMConfig`` fields:
    model, pretrained, goal prompts, ...); used when ``reward`` is ``clip`` or ``vlm``."""
    domain_rand: dict[str, Any] = field(default_factory=dict)
    """Domain randomization of the training env (``rewardlab.envs.randomization.DomainRandConfig``
    fields: masses, friction, actuator gains, observation noise, action delay); empty: none."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        from rewardlab.envs import BACKENDS

        checks = [
            ("backend", self.backend in BACKENDS, "one of " + ", ".join(BACKENDS)),
            ("agent", self.agent in AGENTS, "one of " + ", ".join(AGENTS)),
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("nthread", self.nthread >= 0, ">= 0"),
            ("total_steps", self.total_steps >= 1, ">= 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, ">= 1"),
            ("run_dir", self.run_dir is None or self.run_dir.strip() != "", "a path or null"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected {allowed}")
        kind, _, arg = self.reward.partition(":")
        if kind not in REWARD_KINDS or (kind == "code") != bool(arg.strip()):
            raise ValueError(
                f"reward: got {self.reward!r}, expected task, clip, vlm or code:<file.py>"
            )
        _check_device(self.device)

    def task_config(self) -> Any:
        """The task's config dataclass with ``task_cfg`` applied (a ``TaskConfig``)."""
        from rewardlab.envs import get_task

        return dataclasses.replace(get_task(self.task).default_config(), **self.task_cfg)

    def vlm_config(self) -> Any:
        """``vlm`` validated into the VLM reward's config dataclass (``VLMConfig``)."""
        from rewardlab.vlm_reward.config import VLMConfig

        return build(VLMConfig, self.vlm, "vlm")

    def domain_rand_config(self) -> Any:
        """``domain_rand`` validated into ``DomainRandConfig`` (``None`` when empty)."""
        if not self.domain_rand:
            return None
        from rewardlab.envs.randomization import DomainRandConfig

        return build(DomainRandConfig, self.domain_rand, "domain_rand")

    def resolved_device(self) -> str:
        """``device`` with ``auto`` resolved (see the field's docstring)."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if self.backend == "warp" and torch.cuda.is_available() else "cpu"

    def eval_seed(self) -> int:
        """Seed of the eval env (``eval.seed``, or the training seed + 10000)."""
        return self.eval.seed if self.eval.seed is not None else self.seed + 10_000


def _check_device(device: str) -> None:
    if device == "auto":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device: got {device!r}, expected auto, cpu, cuda or cuda:<index>"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: got {device!r}, expected cpu (no CUDA device is available)")


# -------------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-3`` and ``3E+4`` as floats (YAML 1.2, as users expect)."""


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


def parse_scalar(text: str) -> Any:
    """Parse a command-line value as YAML (``3e-4`` -> float, ``[64, 64]`` -> list, ``null``)."""
    return yaml.load(text, Loader=_Loader) if text.strip() else None  # noqa: S506 (safe loader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is ``{}``.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or is not a mapping.
    """
    source = _display(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as e:
        raise ConfigError(source, "", f"cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as e:
        raise ConfigError(source, "", f"invalid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"got {_show(data)}, expected a mapping of keys to values")
    return data


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values parsed by :func:`parse_scalar`.

    Raises:
        ConfigError: an argument without ``=``, an empty key segment, or an unparsable value.
    """
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(COMMAND_LINE, arg, "expected key=value (e.g. ppo.learning_rate=3e-4)")
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(COMMAND_LINE, key, "empty segment in the dotted key")
        try:
            value = parse_scalar(text)
        except yaml.YAMLError:
            raise ConfigError(COMMAND_LINE, key, f"cannot parse {text!r} as a YAML value") from None
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
        self._by_key[key] = source

    def of(self, key: str) -> str:
        """The source of ``key``, else of its closest ancestor, else of any descendant."""
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


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _display(path: str | Path) -> str:
    """A path as errors show it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
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
    return ConfigError(sources.of(key), key, f"got {_show(value)}, expected {describe_type(tp)}")


def convert(value: Any, tp: Any, key: str, sources: Sources) -> Any:
    """Check ``value`` against the type hint ``tp`` and convert it (int -> float, list -> tuple).

    Raises:
        ConfigError: ``value`` does not fit ``tp``.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return convert(value, a, key, sources)
            except ConfigError:
                continue
        raise _type_error(value, tp, key, sources)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, sources)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, tp, key, sources)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 1e6 -> 1000000
            return int(value)
        raise _type_error(value, tp, key, sources)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _type_error(value, tp, key, sources)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(value, tp, key, sources)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _type_error(value, tp, key, sources)
        if (
            origin is tuple and args and args[-1] is not Ellipsis
        ):  # fixed length: tuple[float, float]
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


def _unknown_key(key: str, name: str, allowed: Sequence[str], sources: Sources) -> ConfigError:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(sources.of(key), key, f"unknown key; {hint}allowed: {', '.join(allowed)}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _raise_validation(
    error: ValueError, prefix: str, names: Sequence[str], sources: Sources
) -> None:
    """Turn a ``validate()`` message ``"[prefix.]field...: problem"`` into a :class:`ConfigError`."""
    msg = str(error)
    for p in {prefix, prefix.rpartition(".")[2]} - {""}:
        msg = msg.removeprefix(p + ".")
    m = re.match(r"[A-Za-z_]\w*(?:\.\w+)*", msg)
    if m and m.group(0).split(".")[0] in names:
        key = _join(prefix, m.group(0))
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
        raise ConfigError(sources.of(prefix), prefix, f"got {_show(data)}, expected a mapping")
    obj = cls(**convert_fields(cls, data, prefix, sources))
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            _raise_validation(e, prefix, _field_names(cls), sources)
    return obj


def _field_names(cls: type) -> list[str]:
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
    names = _field_names(cls)
    out = {}
    for k, v in data.items():
        key = _join(prefix, str(k))
        if k not in names:
            raise _unknown_key(key, str(k), names, sources)
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


# -------------------------------------------------------------------------------------------------
# TrainConfig loading


def _task_config(task: str, overrides: Mapping[str, Any], sources: Sources) -> dict[str, Any]:
    """Validate ``task_cfg`` overrides against the task's config dataclass; returns them converted."""
    from rewardlab.envs import get_task

    default = get_task(task).default_config()
    converted = convert_fields(type(default), overrides, "task_cfg", sources)
    try:
        dataclasses.replace(default, **converted).validate()
    except ValueError as e:
        _raise_validation(e, "task_cfg", _field_names(type(default)), sources)
    return converted


def _sb3_hyperparams(agent: str, params: Mapping[str, Any], sources: Sources) -> None:
    """Check ``sb3`` keys against the stable-baselines3 algorithm's constructor, when installed."""
    if not params or not agent.startswith("sb3_"):
        return
    try:
        import stable_baselines3 as sb3
    except ImportError:
        return
    algo = sb3.PPO if agent == "sb3_ppo" else sb3.SAC
    allowed = [
        p for p in inspect.signature(algo.__init__).parameters
        if p not in ("self", "env", "seed", "tensorboard_log", "_init_setup_model")
    ] + list(SB3_WRAPPER_KEYS)  # fmt: skip
    for k in params:
        if k not in allowed:
            raise _unknown_key(f"sb3.{k}", str(k), allowed, sources)


def load_train_config(
    overrides: Sequence[str] | Mapping[str, Any] = (),
    config_file: str | Path | None = None,
    run_config: str | Path | None = None,
    configs: str | Path | None = None,
) -> TrainConfig:
    """Assemble and validate a :class:`TrainConfig` from its layers (see the module docstring).

    Args:
        overrides: ``key=value`` strings (the command line) or an already nested mapping.
        config_file: the user's YAML file (``--config``).
        run_config: ``config.yaml`` of a run being resumed or evaluated.
        configs: the ``sim_configs/`` folder; :func:`config_dir` when ``None``.

    Raises:
        ConfigError: any invalid file, key or value; the message names the file (or
            "command line"), the key, the value and what was expected.
    """
    root = Path(configs) if configs is not None else config_dir()
    cli = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    default = root / "train" / "default.yaml"
    base = [(_display(default), load_yaml(default))] if default.exists() else []
    top = []
    if run_config is not None:
        top.append((_display(run_config), load_yaml(run_config)))
    if config_file is not None:
        top.append((_display(config_file), load_yaml(config_file)))
    top.append((COMMAND_LINE, cli))

    task = next((layer["task"] for _, layer in reversed(base + top) if "task" in layer), None)
    task_file = root / "train" / f"{task}.yaml"
    if isinstance(task, str) and task and "/" not in task and task_file.exists():
        task_layer = load_yaml(task_file)
        if task_layer.get("task", task) != task:
            raise ConfigError(
                _display(task_file),
                "task",
                f"got {task_layer['task']!r}, expected {task!r} (the file's name)",
            )
        base.append((_display(task_file), task_layer))
    merged, sources = merge_layers(base + top)
    return _build_train_config(merged, sources)


def _build_train_config(merged: Mapping[str, Any], sources: Sources) -> TrainConfig:
    data = dict(merged)
    task_cfg = data.pop("task_cfg", None) or {}
    cfg = build(TrainConfig, data, "", sources)
    from rewardlab.envs import task_names  # after the type checks: errors there need no torch

    if not cfg.task:
        raise ConfigError(
            COMMAND_LINE, "task", f"required (task=NAME); known tasks: {', '.join(task_names())}"
        )
    if cfg.task not in task_names():
        close = difflib.get_close_matches(cfg.task, task_names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            sources.of("task"),
            "task",
            f"unknown task {cfg.task!r}; {hint}known tasks: {', '.join(task_names())}",
        )
    if not isinstance(task_cfg, Mapping):
        raise ConfigError(
            sources.of("task_cfg"), "task_cfg", f"got {_show(task_cfg)}, expected a mapping"
        )
    _sb3_hyperparams(cfg.agent, cfg.sb3, sources)
    if cfg.vlm or cfg.reward in ("clip", "vlm"):
        from rewardlab.vlm_reward.config import VLMConfig

        build(VLMConfig, cfg.vlm, "vlm", sources)
    if cfg.domain_rand:
        from rewardlab.envs.randomization import DomainRandConfig

        build(DomainRandConfig, cfg.domain_rand, "domain_rand", sources)
    return dataclasses.replace(cfg, task_cfg=_task_config(cfg.task, task_cfg, sources))


def train_config_from_dict(data: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """Validate a plain (possibly partial) mapping into a :class:`TrainConfig`, no files read."""
    merged, sources = merge_layers([(source, data)])
    return _build_train_config(merged, sources)


def resolved_config_yaml(cfg: TrainConfig) -> str:
    """The fully resolved config as YAML: every field, and the task's whole config in ``task_cfg``.

    Loading it back (as a ``--config`` file) gives the same run.
    """
    data = to_plain(cfg)
    data["task_cfg"] = to_plain(cfg.task_config())
    header = "# Resolved RewardLab training config: every value this run used.\n"
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False)


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, flow-style lists (``actor_hidden: [64, 64]``)."""


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


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
        key = _join(prefix, f.name)
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
