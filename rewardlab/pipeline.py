"""The training pipeline: env set-up, training, evaluation and export of a run, written once.

Everything that trains a policy goes through these functions -- ``rewardlab train`` / ``eval`` /
``play`` / ``export`` (:mod:`rewardlab.cli`), every candidate of a reward search and the
search's winner (:mod:`rewardlab.search`) -- so that a setting such as ``domain_rand`` means
the same everywhere::

    cfg = load_train_config(["task=cartpole_balance", "total_steps=200000"])
    run = start_run(cfg)                      # run directory: resume or start over, config.yaml
    result = train(run.cfg, run.run, resume=run.checkpoint)
    outputs = finish_run(run.cfg, run.run, result)   # export/, eval.json + video, plots/
    outputs.eval.success_rate

- :func:`make_train_env`: the task on the configured backend, with ``domain_rand`` and the
  reward ``cfg.reward`` names (:data:`rewardlab.reward_kinds.REWARD_KINDS`);
  :func:`make_eval_env`: the same task with its own reward and nominal physics (evaluation
  measures the task's own success on the nominal robot).
- :func:`train`: the agent ``cfg.agent`` names (:data:`rewardlab.agents.registry.AGENTS`),
  fresh or resumed, in one process or as one rank of a ``torchrun`` run.
- :func:`evaluate` -> :class:`EvalResult`, :func:`export` -> :class:`ExportResult`,
  :func:`load_policy` (a run's checkpoint or export).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab import offline_rewards  # noqa: F401  (registers iql.reward=preference)
from rewardlab.agents.distributed import DistContext, init_from_env
from rewardlab.agents.evaluate import evaluate as run_episodes
from rewardlab.agents.evaluate import video_grid
from rewardlab.agents.export import export_policy
from rewardlab.agents.policy import ExportedPolicy, Policy
from rewardlab.agents.registry import AGENTS, Agent, TrainSpec, agent_class, make_agent
from rewardlab.config import TrainConfig, load_train_config
from rewardlab.core.config import (
    COMMAND_LINE,
    ConfigError,
    clip_text,
    display_path,
    load_yaml,
    parse_overrides,
)
from rewardlab.core.files import DiskFullError, atomic_write
from rewardlab.envs import make_env
from rewardlab.envs.base import BatchedEnv
from rewardlab.plots import (
    metrics_from_tensorboard,
    plot_learning_curves,
    run_title,
    write_metrics,
)
from rewardlab.reward_kinds import REWARD_KINDS
from rewardlab.rewards.boundary import NONE_WARNING
from rewardlab.runs import RunDir, check_resumable, default_run_dir, git_info, write_run_files
from rewardlab.vlm_reward.rendering import EnvFrames, video_camera

SANDBOX_NONE_FILE = "SANDBOX_NONE.txt"
"""Written into a run directory trained with ``sandbox=none`` (reward code ran unsandboxed)."""

Log = Callable[[str], None]
"""Receives one progress line at a time (``print`` by default)."""

# -------------------------------------------------------------------------------------------------
# Envs


def _backend_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    if cfg.backend == "ros2":  # one robot over ROS 2 (cfg.ros2); the operator resets it
        r = cfg.ros2
        return {
            "policy": cfg.ros2_policy(),
            "robot": r.robot,
            "transport": r.transport,
            "prompt": input if r.prompt else None,
            "action_timeout_s": r.action_timeout_s,
            "start_timeout_s": r.start_timeout_s,
        }
    return {"nthread": cfg.nthread} if cfg.backend == "mujoco" else {}


def make_train_env(
    cfg: TrainConfig,
    num_envs: int | None = None,
    seed: int | None = None,
    reward: bool = True,
) -> BatchedEnv:
    """The training env of ``cfg``: task config, backend, ``domain_rand`` and the reward.

    Args:
        cfg: the run's config.
        num_envs: worlds; default ``cfg.num_envs``.
        seed: seed of the env; default ``cfg.seed``.
        reward: put the reward ``cfg.reward`` names on the env (:func:`apply_reward`); false
            keeps the task's own, for callers that set a reward of their own (search candidates).
    """
    kwargs = _backend_kwargs(cfg)
    dr = cfg.domain_rand_config()
    if dr is not None:
        kwargs["domain_rand"] = dr
    env = make_env(
        cfg.task,
        num_envs=cfg.num_envs if num_envs is None else num_envs,
        backend=cfg.backend,
        cfg=cfg.task_config(),
        seed=cfg.seed if seed is None else seed,
        device=cfg.resolved_device(),
        **kwargs,
    )
    return apply_reward(cfg, env) if reward else env


def make_eval_env(
    cfg: TrainConfig, num_envs: int | None = None, seed: int | None = None
) -> BatchedEnv:
    """An evaluation env of ``cfg``: the task's own reward and nominal physics (no domain
    randomization), its own seed.

    Args:
        cfg: the run's config.
        num_envs: worlds; default ``cfg.eval.resolved_num_envs()``.
        seed: default ``cfg.eval_seed()`` (never the training stream).
    """
    if cfg.backend == "ros2":  # the robot: one world
        num_envs = 1
    return make_env(
        cfg.task,
        num_envs=cfg.eval.resolved_num_envs() if num_envs is None else num_envs,
        backend=cfg.backend,
        cfg=cfg.task_config(),
        seed=cfg.eval_seed() if seed is None else seed,
        device=cfg.resolved_device(),
        **_backend_kwargs(cfg),
    )


def train_env(cfg: TrainConfig, dctx: DistContext | None = None) -> BatchedEnv:
    """This process's training env of ``cfg`` (:func:`make_train_env`): every world, or under
    ``torchrun`` this rank's share of them, its seed and its device.

    ``rewardlab train`` makes it before the run directory (:func:`start_run`), so that a reward
    file that fails its checks leaves nothing behind, and passes it to :func:`train`.
    """
    if dctx is None:
        return make_train_env(cfg)
    cfg = dataclasses.replace(cfg, device=dctx.device(cfg.resolved_device()))
    return make_train_env(cfg, num_envs=dctx.num_envs(cfg.num_envs), seed=dctx.seed(cfg.seed))


def apply_reward(cfg: TrainConfig, env: BatchedEnv) -> BatchedEnv:
    """Put the reward ``cfg.reward`` names on ``env``; returns the env to train on.

    ``task`` keeps the task's reward terms; ``code:<file.py>`` loads a reward file through the
    sandboxed loader of :mod:`rewardlab.rewards`; ``clip`` / ``vlm`` wrap the env so that rewards
    come from rendered frames scored by the model ``cfg.vlm`` configures (see
    :mod:`rewardlab.reward_kinds`).
    """
    name, _, argument = cfg.reward.partition(":")
    kind = REWARD_KINDS.get(name)()
    settings = getattr(cfg, kind.config_key) if kind.config_key else {}
    return kind.apply(env, argument, settings)


# -------------------------------------------------------------------------------------------------
# The run directory


def train_config(overrides: Sequence[str], config_file: str | Path | None = None) -> TrainConfig:
    """The config of ``rewardlab train``: when ``run_dir`` (on the command line or in
    ``config_file``) holds a run with a checkpoint and ``resume`` is not false, that run's
    ``config.yaml`` is a layer under ``config_file`` and ``overrides`` (the run continues as it
    was configured).

    Raises:
        ConfigError: a bad file, key or value.
    """
    cli = parse_overrides(overrides)
    from_file = load_yaml(config_file) if config_file else {}
    run_dir = cli.get("run_dir", from_file.get("run_dir"))
    resume = cli.get("resume", from_file.get("resume"))
    run_config = None
    if isinstance(run_dir, str) and resume is not False:
        existing = RunDir(Path(run_dir))
        if existing.config.is_file() and existing.latest_checkpoint() is not None:
            run_config = existing.config
            task, source = cli.get("task"), COMMAND_LINE
            if task is None:
                task, source = from_file.get("task"), display_path(config_file or "")
            _check_same_task(existing, task, source)
    return load_train_config(overrides, config_file=config_file, run_config=run_config)


def _check_same_task(run: RunDir, task: Any, source: str) -> None:
    """Raise :class:`ConfigError` when ``run`` holds a run of another task than ``task`` (the
    task's own settings would not fit the saved ``task_cfg``: say which run it is instead)."""
    saved = load_yaml(run.config).get("task")
    if task is None or not isinstance(saved, str) or task == saved:
        return
    raise ConfigError(
        source, "task",
        f"got {clip_text(repr(task), 80)}, but {run.root} holds a run of task {saved} ({run.config}); train into "
        f"another run_dir, or pass resume=false to start over there (its outputs move to previous-*/)",
    )  # fmt: skip


@dataclass(frozen=True)
class RunStart:
    """A run directory ready to train into (:func:`start_run`)."""

    run: RunDir
    """The run directory."""
    cfg: TrainConfig
    """The config as written to ``config.yaml``: ``run_dir`` and ``device`` resolved (under
    ``torchrun``, ``device`` is this rank's)."""
    checkpoint: Path | None
    """The checkpoint to resume from; ``None``: a fresh run."""
    archived: Path | None
    """Where earlier outputs were moved (``previous-<time>/``) for a fresh run, if anywhere."""


def start_run(cfg: TrainConfig, dctx: DistContext | None = None) -> RunStart:
    """Prepare ``cfg``'s run directory: continue its checkpoint (``resume``), or move earlier
    outputs aside; write ``config.yaml`` and ``git.json``.

    Under ``torchrun`` (``dctx``) every rank calls it; rank 0 alone writes.

    Raises:
        ConfigError: the run cannot be continued with ``cfg`` (another task, agent, network
            shape, ...), or the agent cannot resume or cannot run in several processes.
    """
    agent = agent_class(cfg.agent)
    run = RunDir(Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.task))
    main = dctx is None or dctx.is_main
    if dctx is not None:
        if not agent.distributed:
            raise ConfigError(
                COMMAND_LINE, "agent", f"agent {cfg.agent} cannot train in several processes "
                f"(torchrun); use one of {', '.join(_distributed_agents())}",
            )  # fmt: skip
        run = RunDir(dctx.broadcast_object(run.root))  # default run dirs carry the time
    checkpoint = run.latest_checkpoint() if run.root.is_dir() else None
    if dctx is not None:
        dctx.barrier()  # every rank has looked before rank 0 moves earlier outputs aside
    archived = None
    if checkpoint is not None and cfg.resume:
        check_resumable(run, cfg)
        if not agent.resumable:
            raise ConfigError(
                COMMAND_LINE, "resume",
                f"{run.root} has a checkpoint but agent {cfg.agent} cannot resume; "
                "pass resume=false (earlier outputs are kept in previous-*/) or another run_dir",
            )  # fmt: skip
    else:  # a fresh run never appends to an earlier one's metrics or checkpoints
        checkpoint = None
        if run.root.is_dir() and main:
            archived = run.archive_outputs()
    # The run directory keeps what was used: the path and the device ``auto`` resolved to.
    cfg = dataclasses.replace(cfg, run_dir=str(run.root), device=cfg.resolved_device())
    if main:
        try:
            write_run_files(run, cfg)
            if cfg.sandbox == "none":  # the run directory says its reward code ran unsandboxed
                atomic_write(run.root / SANDBOX_NONE_FILE, NONE_WARNING + "\n")
        except DiskFullError:
            raise
        except OSError as e:  # under a file, read-only, not permitted: one line, not a traceback
            where = f" ({e.filename})" if e.filename and str(e.filename) != str(run.root) else ""
            raise ConfigError(
                str(run.root),
                "",
                f"run_dir: cannot write the run directory: {e.strerror or e}{where}",
            ) from None
    if dctx is not None:
        dctx.barrier()
        cfg = dataclasses.replace(cfg, device=dctx.device(cfg.device))
    return RunStart(run, cfg, checkpoint, archived)


def _distributed_agents() -> list[str]:
    out = []
    for name in AGENTS.names():
        try:
            if AGENTS.get(name).distributed:
                out.append(name)
        except ImportError:  # an optional learner that is not installed
            continue
    return out


def init_distributed() -> DistContext | None:
    """The process group ``torchrun`` set up (``WORLD_SIZE`` > 1), else ``None``.

    Ranks other than 0 print nothing to stdout from here on (their errors still go to stderr).
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    dctx = init_from_env()
    if dctx is not None and not dctx.is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
    return dctx


# -------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    policy: Policy
    """The trained policy (deterministic ``__call__``, sampled ``sample``, exportable
    ``inference``)."""
    global_step: int
    """Env steps trained in total, including those before a resume."""
    seconds: float
    """Wall time of this call's training."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One metric row per learner iteration of this call (PPO)."""
    state: bytes | None = None
    """The learner's whole state (``keep_state``), to continue training from."""
    is_main: bool = True
    """False on ``torchrun`` ranks other than 0 (they export and evaluate nothing)."""


def train_spec(
    cfg: TrainConfig,
    agent: Agent,
    log_dir: Path | None,
    progress: bool = True,
    keep_state: bool = False,
) -> TrainSpec:
    """The :class:`~rewardlab.agents.registry.TrainSpec` of ``cfg`` for ``agent``."""
    return TrainSpec(
        total_steps=cfg.total_steps,
        seed=cfg.seed,
        device=cfg.resolved_device(),
        hyperparams=getattr(cfg, agent.config_key),
        log_dir=log_dir,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        progress=progress,
        keep_state=keep_state,
        sample_seed=cfg.eval_seed(),
    )


def train(
    cfg: TrainConfig,
    run: RunDir | None = None,
    *,
    env: BatchedEnv | None = None,
    resume: Path | bytes | None = None,
    dctx: DistContext | None = None,
    progress: bool = True,
    keep_state: bool = False,
    log: Log = print,
) -> TrainResult:
    """Train the agent ``cfg.agent`` names on ``cfg``'s training env until ``cfg.total_steps``.

    Args:
        cfg: the run's config (``device`` may still be ``auto``).
        run: the run directory for metrics, TensorBoard events and checkpoints; ``None``:
            nothing is written (search candidates in their sandbox).
        env: train on this env instead of :func:`make_train_env` (the caller closes it).
        resume: a checkpoint file, or :attr:`TrainResult.state` bytes, to continue from.
        dctx: this rank's place in a ``torchrun`` run (from :func:`init_distributed`); the
            process group is closed after training.
        progress: print the learner's progress lines.
        keep_state: return the learner's state in :attr:`TrainResult.state`.
        log: receives one-line messages (resuming, nothing left to train).

    Raises:
        KeyboardInterrupt: re-raised after the learner saved what it had (PPO: ``latest.pt``).
    """
    agent = make_agent(cfg.agent)
    main = dctx is None or dctx.is_main
    own_env = env is None
    if env is None:
        env = train_env(cfg, dctx)
    log_dir = run.root if run is not None and main else None
    spec = train_spec(cfg, agent, log_dir, progress=progress, keep_state=keep_state)
    t0 = time.perf_counter()
    try:
        outcome = agent.train(env, spec, resume=resume, dist=dctx, log=log)
    finally:
        if own_env:
            env.close()
    seconds = time.perf_counter() - t0
    if dctx is not None:
        dctx.close()
    if run is not None and main and not run.metrics.is_file():
        events = list(run.root.glob("events.out.tfevents.*"))
        if events:  # an agent that logs to TensorBoard only (SB3): metrics.jsonl from it
            write_metrics(metrics_from_tensorboard(run.root), run.metrics)
    return TrainResult(
        outcome.policy, outcome.global_step, seconds, outcome.history, outcome.state, main
    )


# -------------------------------------------------------------------------------------------------
# Evaluation, export, loading


@dataclass(frozen=True)
class EvalResult:
    """Episodes of a policy on the task's own reward and success (:func:`evaluate`)."""

    episodes: int
    """Episodes counted (each world its share, see :mod:`rewardlab.agents.evaluate`)."""
    return_mean: float
    """Mean episode return (the task's own reward)."""
    return_std: float
    """Standard deviation of the episode returns."""
    length_mean: float
    """Mean episode length in control steps."""
    success_rate: float
    """Share of episodes that ended in the task's ``success()``."""
    returns: list[float]
    """Per episode, ordered by (episode index in its world, world)."""
    lengths: list[int]
    """Per episode, same order."""
    successes: list[bool]
    """Per episode, same order."""
    video: str | None = None
    """The mp4 written, if any."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """From :func:`rewardlab.agents.evaluate.evaluate`'s result."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> dict[str, float]:
        """``success_rate``, ``return_mean``, ``return_std``, ``length_mean``."""
        keys = ("success_rate", "return_mean", "return_std", "length_mean")
        return {k: getattr(self, k) for k in keys}


def evaluate(
    cfg: TrainConfig,
    policy: Policy | Callable[[Any], Any],
    *,
    env: BatchedEnv | None = None,
    episodes: int | None = None,
    num_envs: int | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    video: str | Path | None = None,
    video_episodes: int | None = None,
) -> EvalResult:
    """Evaluate ``policy`` on ``cfg``'s task (its own reward and success, nominal physics).

    Unset arguments come from ``cfg.eval`` (episodes, worlds, seed, deterministic, video
    episodes).

    Args:
        cfg: the run's config.
        policy: a :class:`~rewardlab.agents.policy.Policy` (or any raw obs -> action callable
            when ``deterministic``).
        env: evaluate on this env (the caller closes it); default: :func:`make_eval_env`.
        episodes, num_envs, seed, deterministic, video_episodes: override ``cfg.eval``.
        video: write ``video_episodes`` episodes to this mp4, as a captioned grid of up to 9
            worlds (:mod:`rewardlab.agents.evaluate`), seen through the task's ``video_camera``.
    """
    ev = cfg.eval
    episodes = ev.episodes if episodes is None else episodes
    seed = cfg.eval_seed() if seed is None else seed
    video_episodes = ev.video_episodes if video_episodes is None else video_episodes
    own_env = env is None
    if env is None:
        env = make_eval_env(cfg, num_envs=num_envs, seed=seed)
    frames = None
    try:
        grid = video_grid(video_episodes, env.num_envs, episodes) if video else None
        if grid is not None:  # all tiles in one GL pass, no shadows: ~10x cheaper per world
            # the task's video camera (a walking robot's follows it), else the model's camera 0
            frames = EnvFrames(env, grid.tile, camera=video_camera(cfg.task))
        result = run_episodes(
            policy,
            env,
            episodes,
            deterministic=ev.deterministic if deterministic is None else deterministic,
            video_path=video,
            video_episodes=video_episodes,
            seed=seed,
            render=frames,
        )
    finally:
        if frames is not None:
            frames.close()
        if own_env:
            env.close()
    return EvalResult.from_dict(result)


def write_eval_json(path: Path, result: EvalResult, **meta: Any) -> Path:
    """Write ``result`` (plus ``meta`` and the time) as the run's ``eval.json``."""
    data = {**meta, **dataclasses.asdict(result), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return atomic_write(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class ExportResult:
    """The files :func:`export` wrote."""

    pt: Path
    """``policy.pt`` (TorchScript)."""
    json: Path
    """``policy.json`` (the sidecar)."""
    onnx: Path | None = None
    """``policy.onnx``, when written."""

    def paths(self) -> list[Path]:
        """Every file written: pt, onnx (if any), json."""
        return [p for p in (self.pt, self.onnx, self.json) if p is not None]


def export(
    cfg: TrainConfig,
    policy: Policy | Any,
    out: str | Path,
    *,
    run: RunDir | None = None,
    onnx: bool = True,
    **extra: Any,
) -> ExportResult:
    """Export ``policy`` for ``cfg``'s task into the folder ``out`` (policy.pt/.onnx/.json).

    Args:
        cfg: the run's config (the sidecar records its task and agent).
        policy: a :class:`~rewardlab.agents.policy.Policy` (its ``inference`` module is written)
            or a plain module.
        out: the export folder.
        run: recorded as ``run_dir`` in the sidecar.
        onnx: also write ``policy.onnx``.
        **extra: more JSON entries for the sidecar (``global_step``, ``checkpoint``, ...).
    """
    module = getattr(policy, "inference", policy)
    meta = {"agent": cfg.agent, **({"run_dir": str(run.root)} if run is not None else {}), **extra}
    # the task, robot and rates it records; a ros2 run's from simulation (the robot's layout is
    # its policy's, simulated: see TrainConfig.ros2_policy)
    sim = cfg if cfg.backend != "ros2" else dataclasses.replace(cfg, backend="mujoco")
    env = make_eval_env(sim, num_envs=1, seed=cfg.seed)
    try:
        paths = export_policy(
            module,
            env,
            Path(out),
            task=cfg.task,
            git_revision=git_info().get("revision", "unknown"),
            onnx=onnx,
            extra=meta,
        )
    finally:
        env.close()
    return ExportResult(pt=paths["pt"], json=paths["json"], onnx=paths.get("onnx"))


@dataclass(frozen=True)
class LoadedPolicy:
    """A run's policy and the file it came from (:func:`load_policy`)."""

    policy: Policy
    path: Path


SOURCES = ("auto", "checkpoint", "export")
"""Where :func:`load_policy` takes a run's policy from."""


def load_policy(
    cfg: TrainConfig,
    run: RunDir,
    env: BatchedEnv,
    source: str = "auto",
    checkpoint: str | Path | None = None,
) -> LoadedPolicy:
    """The run's policy for ``env``: from a checkpoint (of any agent) or from the export.

    Args:
        cfg: the run's config.
        run: the run directory.
        env: an env of the run's task (for the policy's observation and action sizes).
        source: ``auto`` (the latest checkpoint, else ``export/policy.pt``), ``checkpoint`` or
            ``export``.
        checkpoint: this checkpoint file (implies ``checkpoint``).

    Raises:
        FileNotFoundError: no such checkpoint, or nothing to load (the message says how to
            train it).
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"command line: checkpoint: {str(checkpoint)!r} does not exist")
        if not path.is_file():  # a folder, /dev/zero, a FIFO
            raise ConfigError(
                COMMAND_LINE,
                "checkpoint",
                f"{str(checkpoint)!r} is not a regular file, expected a checkpoint file",
            )
    else:
        latest = run.latest_checkpoint()
        exported = run.export / "policy.pt"
        if source == "export" or (source == "auto" and latest is None):
            if not exported.is_file():
                raise FileNotFoundError(
                    f"{run.root}: no checkpoint and no export/policy.pt; train it first "
                    f"(rewardlab train run_dir={run.root})"
                )
            return LoadedPolicy(ExportedPolicy(exported), exported)
        if latest is None:
            raise FileNotFoundError(f"{run.root}: no checkpoint in {run.checkpoints}")
        path = latest
    agent = _agent_of_checkpoint(cfg.agent, path)
    return LoadedPolicy(agent.load(path, env, train_spec(cfg, agent, None)), path)


def policy_from_state(cfg: TrainConfig, state: bytes, env: BatchedEnv) -> Policy:
    """The policy in a learner state (:attr:`TrainResult.state`, a search candidate's
    ``checkpoint.pt``), loaded on the CPU for ``env``'s observation and action sizes."""
    agent = make_agent(cfg.agent)
    return agent.load(state, env, train_spec(dataclasses.replace(cfg, device="cpu"), agent, None))


def _agent_of_checkpoint(name: str, path: Path) -> Agent:
    """The run's agent, unless ``path`` has another agent's checkpoint suffix."""
    agent = make_agent(name)
    if path.suffix == agent.checkpoint_suffix:
        return agent
    for other in AGENTS.names():
        try:
            cls = AGENTS.get(other)
        except ImportError:  # an optional learner that is not installed
            continue
        if cls.checkpoint_suffix == path.suffix:
            return cls()
    return agent


# -------------------------------------------------------------------------------------------------
# After training


@dataclass(frozen=True)
class RunOutputs:
    """What :func:`finish_run` wrote into the run directory."""

    export: ExportResult
    """export/policy.pt, .onnx, .json."""
    eval: EvalResult
    """The evaluation after training (also in ``eval.json``)."""
    plot: Path | None
    """plots/learning_curve.png, when the run has metrics."""


def finish_run(cfg: TrainConfig, run: RunDir, result: TrainResult, log: Log = print) -> RunOutputs:
    """Export the trained policy, evaluate it (``eval.json``, a video with ``eval.video``) and
    plot the learning curve, into the run directory."""
    exported = export(cfg, result.policy, run.export, run=run, global_step=result.global_step)
    log(f"[rewardlab] exported {', '.join(str(p) for p in exported.paths())}")
    video = run.videos / "eval.mp4" if cfg.eval.video and cfg.backend != "ros2" else None
    ev = evaluate(cfg, result.policy, video=video)  # ros2: on the robot, no camera for a video
    write_eval_json(run.eval_json, ev, source="training", global_step=result.global_step)
    return RunOutputs(exported, ev, plot_run(cfg, run))


def plot_run(cfg: TrainConfig, run: RunDir) -> Path | None:
    """``plots/learning_curve.png`` from the run's ``metrics.jsonl`` (``None`` without one)."""
    if not run.metrics.is_file():
        return None
    return plot_learning_curves(
        {cfg.agent: run.metrics},
        run.plots / "learning_curve.png",
        title=run_title(cfg.task, run.root.name),
    )
