"""Training configs: YAML under ``sim_configs/`` validated into frozen dataclasses.

A training run is described by one :class:`TrainConfig`. It is assembled from layers, each
overriding the one before it, key by key (mappings merge, everything else replaces)::

    sim_configs/train/default.yaml      the project's defaults
    the task file's ``train:`` section  a YAML task's own defaults (``Task.train_defaults``)
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

The schema is read when the command line is parsed (``--help`` lists it), so this module imports
no torch: the tasks (``rewardlab.envs``: torch and MuJoCo) and torch itself are imported inside
the methods that need them.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.agents.config import BCConfig, IQLConfig, PPOConfig, ResidualSACConfig, SACConfig
from rewardlab.agents.registry import AGENTS as AGENT_REGISTRY
from rewardlab.core import resources
from rewardlab.core.config import (
    COMMAND_LINE,
    ConfigError,
    Sources,
    build,
    convert_fields,
    display_path,
    dump_yaml,
    field_names,
    load_yaml,
    merge_layers,
    parse_overrides,
    raise_validation,
    show,
    to_plain,
    unknown_key,
)
from rewardlab.core.registry import did_you_mean
from rewardlab.reward_kinds import REWARD_KINDS as REWARD_KIND_REGISTRY
from rewardlab.reward_kinds import reward_kind_usage
from rewardlab.rewards.boundary import SANDBOX_MODES
from rewardlab.vlm_reward.config import VLMConfig

AGENTS = tuple(AGENT_REGISTRY.names())
"""Learners ``TrainConfig.agent`` may name: those of :data:`rewardlab.agents.registry.AGENTS`
when this module loaded (validation reads the registry, so later registrations count too)."""

REWARD_KINDS = tuple(REWARD_KIND_REGISTRY.names())
"""Kinds of ``TrainConfig.reward``: those of :data:`rewardlab.reward_kinds.REWARD_KINDS` when
this module loaded (``code`` takes a file: ``code:<file.py>``)."""

MAX_NUM_ENVS = 1 << 20
"""Most parallel worlds a run may ask for (a GPU simulator runs tens of thousands)."""


def config_dir() -> Path:
    """The ``sim_configs/`` folder: ``$REWARDLAB_CONFIG_DIR`` or the installation's own (a
    checkout's, a wheel's, an ament prefix's: :func:`rewardlab.core.resources.config_dir`)."""
    return resources.config_dir()


# -------------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True)
class EvalConfig:
    """How a trained policy is evaluated after training and by ``rewardlab eval``."""

    episodes: int = 20
    """Episodes to evaluate over (each world counts its first ceil(episodes / num_envs))."""
    video: bool = True
    """Record an mp4 into ``<run_dir>/videos/``: a grid of worlds, each captioned with its
    episode's outcome (success or failure, return, length)."""
    video_episodes: int = 9
    """Episodes in the video, one world each up to a 3x3 grid (more take turns); 0: no video."""
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
        if self.num_envs is not None and not 1 <= self.num_envs <= MAX_NUM_ENVS:
            raise ValueError(
                f"num_envs: got {self.num_envs!r}, expected in [1, {MAX_NUM_ENVS}] or null"
            )

    def resolved_num_envs(self) -> int:
        """Worlds of the eval env: ``num_envs`` or ``min(episodes, 32)``."""
        return self.num_envs if self.num_envs is not None else min(self.episodes, 32)


@dataclass(frozen=True)
class Ros2Config:
    """The robot of ``backend=ros2`` (one world over ROS 2, the deploy controller and its safety
    layer in the loop: :mod:`rewardlab.envs.ros2_backend`)."""

    robot: str = "arm"
    """Robot config name under ``sim_configs/robots/`` or a path to one (``rewardlab sim-robot
    robot=arm`` simulates the same robot)."""
    transport: str = "rclpy"
    """``rclpy`` (a ROS 2 node) or ``dds`` (cyclonedds, no ROS install)."""
    policy: str = ""
    """Export folder whose ``policy.json`` gives the observation layout, action scaling and
    control rate; empty: ``residual_sac.base_policy`` (``agent=residual_sac``)."""
    prompt: bool = True
    """Ask the operator (Enter) before each episode; false: no operator (the sim robot): each
    reset asks the sim robot for a new episode on the robot config's ``topics.episode_request``
    and waits for its answer (run it as ``rewardlab sim-robot episodes_on_request=true``, so that
    it changes the target only then); without that topic, start at once."""
    action_timeout_s: float | None = None
    """How long each control tick waits for the learner's action before the controller holds
    the robot; null: three quarters of a control period."""
    start_timeout_s: float = 60.0
    """How long a reset waits for the robot's joint states (and the sim robot's answer to a
    reset request) before failing."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        from rewardlab.envs.ros2_backend import TRANSPORTS  # torch: see the module docstring

        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"transport: got {self.transport!r}, expected one of {', '.join(TRANSPORTS)}"
            )
        if not self.robot.strip():
            raise ValueError("robot: got '', expected a robot config name or path")
        t = self.action_timeout_s
        if t is not None and not t > 0:
            raise ValueError(f"action_timeout_s: got {t!r}, expected > 0 or null")
        if not self.start_timeout_s > 0:
            raise ValueError(f"start_timeout_s: got {self.start_timeout_s!r}, expected > 0")


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
    """Learner: ``ppo`` or ``sac`` (batched, this package), ``residual_sac`` (SAC correcting
    ``residual_sac.base_policy``), ``bc`` (behaviour cloning from ``bc.demos``), ``iql`` (offline
    RL from ``iql.demos``), ``sb3_ppo`` or ``sb3_sac`` (stable-baselines3)."""
    total_steps: int = 1_000_000
    """Environment steps (summed over worlds) to train for, counting those before a resume."""
    checkpoint_every: int = 50
    """Learner iterations between checkpoints (``ppo``, ``sac``)."""
    keep_checkpoints: int = 5
    """Numbered PPO checkpoints to keep besides the best one (checkpoints/index.json says which
    is best and why); 0 keeps all."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """Hyper-parameters of the ``ppo`` agent."""
    sac: SACConfig = field(default_factory=SACConfig)
    """Hyper-parameters of the ``sac`` agent."""
    residual_sac: ResidualSACConfig = field(default_factory=ResidualSACConfig)
    """Settings of the ``residual_sac`` agent (``base_policy``, ``residual_scale``,
    ``sparse_reward``, and its own ``sac`` section)."""
    bc: BCConfig = field(default_factory=BCConfig)
    """Settings of the ``bc`` agent (behaviour cloning from ``bc.demos``; its ``total_steps``
    counts gradient steps)."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """Settings of the ``iql`` agent (offline Implicit Q-Learning from ``iql.demos``; its
    ``total_steps`` counts gradient steps)."""
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
    sandbox: str = "auto"
    """Where untrusted reward code (reward=code:..., search candidates) runs: ``auto`` in the OS
    sandbox (bubblewrap; refused with a clear message where it is unavailable), ``none`` in the
    trainer's own process -- only for reward code you trust; a loud warning, recorded in the run
    directory."""
    vlm: dict[str, Any] = field(default_factory=dict)
    """Settings of the vision-language reward (``rewardlab.vlm_reward.config.VLMConfig`` fields:
    model, pretrained, goal prompts, ...); used when ``reward`` is ``clip`` or ``vlm``."""
    domain_rand: dict[str, Any] = field(default_factory=dict)
    """Domain randomization of the training env (``rewardlab.envs.randomization.DomainRandConfig``
    fields: masses, friction, actuator gains, observation noise, action delay); empty: none."""
    ros2: Ros2Config = field(default_factory=Ros2Config)
    """The robot of ``backend=ros2`` (robot config, transport, layout export, operator prompt)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        from rewardlab.envs import BACKENDS  # torch, MuJoCo: see the module docstring

        checks = [
            ("backend", self.backend in BACKENDS, "one of " + ", ".join(BACKENDS)),
            ("agent", self.agent in AGENT_REGISTRY, "one of " + ", ".join(AGENT_REGISTRY)),
            ("num_envs", 1 <= self.num_envs <= MAX_NUM_ENVS, f"in [1, {MAX_NUM_ENVS}]"),
            ("nthread", self.nthread >= 0, ">= 0"),
            ("total_steps", self.total_steps >= 1, ">= 1"),
            ("checkpoint_every", self.checkpoint_every >= 1, ">= 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, ">= 0 (0 keeps all)"),
            ("sandbox", self.sandbox in SANDBOX_MODES, "one of " + ", ".join(SANDBOX_MODES)),
            ("run_dir", self.run_dir is None or self.run_dir.strip() != "", "a path or null"),
            (
                "run_dir",
                self.run_dir is None
                or not Path(self.run_dir).exists()
                or Path(self.run_dir).is_dir(),
                "a directory (that path is an existing file)",
            ),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected {allowed}")
        if self.backend == "ros2":
            if self.num_envs != 1:
                raise ValueError(f"num_envs: got {self.num_envs}, expected 1 with backend=ros2 (one robot)")  # fmt: skip
            if not self.ros2_policy():
                raise ValueError(
                    "ros2.policy: got '', expected the export folder whose observation layout the "
                    "robot's controller builds (with agent=residual_sac: residual_sac.base_policy)"
                )
        kind = self.reward.partition(":")[0]
        if kind not in REWARD_KIND_REGISTRY:  # its argument is checked by _check_reward
            raise ValueError(
                f"reward: got {self.reward!r}, expected a reward kind; "
                f"{did_you_mean(kind, REWARD_KIND_REGISTRY.names())}"
            )
        _check_device(self.device)

    def ros2_policy(self) -> str:
        """The layout export of ``backend=ros2``: ``ros2.policy``, else the residual's base."""
        if self.ros2.policy:
            return self.ros2.policy
        return self.residual_sac.base_policy if self.agent == "residual_sac" else ""

    def task_config(self) -> Any:
        """The task's config dataclass with ``task_cfg`` applied (a ``TaskConfig``)."""
        from rewardlab.envs import get_task  # torch, MuJoCo: see the module docstring

        return dataclasses.replace(get_task(self.task).default_config(), **self.task_cfg)

    def vlm_config(self) -> Any:
        """``vlm`` validated into the VLM reward's config dataclass (``VLMConfig``)."""
        return build(VLMConfig, self.vlm, "vlm")

    def domain_rand_config(self) -> Any:
        """``domain_rand`` validated into ``DomainRandConfig`` (``None`` when empty)."""
        if not self.domain_rand:
            return None
        from rewardlab.envs.randomization import DomainRandConfig  # MuJoCo (module docstring)

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
# TrainConfig loading


def _task_config(task: str, overrides: Mapping[str, Any], sources: Sources) -> dict[str, Any]:
    """Validate ``task_cfg`` overrides against the task's config dataclass; returns them converted."""
    from rewardlab.envs import get_task  # torch, MuJoCo: see the module docstring

    default = get_task(task).default_config()
    converted = convert_fields(type(default), overrides, "task_cfg", sources)
    try:
        dataclasses.replace(default, **converted).validate()
    except ValueError as e:
        raise_validation(e, "task_cfg", field_names(type(default)), sources)
    return converted


def _agent_hyperparams(cfg: TrainConfig, sources: Sources) -> None:
    """Check the keys of a mapping section of agent settings (``sb3``) against the names the
    agent accepts (``hyperparam_names()``), when the agent's optional dependency is installed."""
    params = cfg.sb3
    if not params or not cfg.agent.startswith("sb3_"):
        return
    try:
        agent = AGENT_REGISTRY.get(cfg.agent)
    except ImportError:  # stable-baselines3 missing: training says so when it starts
        return
    allowed = agent.hyperparam_names()
    for k in params:
        if k not in allowed:
            raise unknown_key(f"sb3.{k}", str(k), allowed, sources)


def _check_reward(reward: str, sources: Sources) -> None:
    """``reward``'s argument: required by kinds that take one (``code:<file.py>``), refused by
    the others (imports the kind's module)."""
    kind, colon, arg = reward.partition(":")
    wanted = REWARD_KIND_REGISTRY.get(kind).argument
    if (wanted is not None) != bool(arg.strip()) or (wanted is None and colon):
        raise ConfigError(
            sources.of("reward"),
            "reward",
            f"got {show(reward)}, expected {reward_kind_usage()}",
        )


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
    base = [(display_path(default), load_yaml(default))] if default.exists() else []
    top = []
    if run_config is not None:
        top.append((display_path(run_config), load_yaml(run_config)))
    if config_file is not None:
        top.append((display_path(config_file), load_yaml(config_file)))
    top.append((COMMAND_LINE, cli))

    task = next((layer["task"] for _, layer in reversed(base + top) if "task" in layer), None)
    own = _task_train_layer(task)  # the task file's own `train:` section (a YAML task)
    if own is not None:
        base.append(own)
    task_file = root / "train" / f"{task}.yaml"
    if isinstance(task, str) and task and "/" not in task and task_file.exists():
        task_layer = load_yaml(task_file)
        if task_layer.get("task", task) != task:
            raise ConfigError(
                display_path(task_file),
                "task",
                f"got {task_layer['task']!r}, expected {task!r} (the file's name)",
            )
        base.append((display_path(task_file), task_layer))
    merged, sources = merge_layers(base + top)
    return _build_train_config(merged, sources)


def _task_train_layer(task: Any) -> tuple[str, dict[str, Any]] | None:
    """``(source, settings)`` of the training defaults a task declares in its own file
    (``Task.train_defaults``: a YAML task's ``train:`` section), or ``None``."""
    if not isinstance(task, str) or not task:
        return None
    from rewardlab.envs import get_task, task_names  # torch, MuJoCo: see the module docstring

    if task not in task_names():
        return None  # reported by _build_train_config
    cls = get_task(task)
    own = getattr(cls, "train_defaults", None)
    if not own:
        return None
    spec = getattr(cls, "spec", None)
    where = f"{display_path(spec.path)}: train" if spec is not None else f"task {task}: train_defaults"  # fmt: skip
    return where, {**dict(own), "task": task}


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
            sources.of("task_cfg"), "task_cfg", f"got {show(task_cfg)}, expected a mapping"
        )
    _check_reward(cfg.reward, sources)
    _agent_hyperparams(cfg, sources)
    if cfg.vlm or cfg.reward in ("clip", "vlm"):
        build(VLMConfig, cfg.vlm, "vlm", sources)
    if cfg.domain_rand:
        from rewardlab.envs.randomization import DomainRandConfig  # MuJoCo (module docstring)

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
    return header + dump_yaml(data)
