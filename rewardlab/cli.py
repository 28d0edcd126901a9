"""The ``rewardlab`` command line: train, evaluate, play, export, list tasks.

::

    rewardlab train task=cartpole_balance run_dir=runs/cp        # train, export, evaluate, plot
    rewardlab train run_dir=runs/cp total_steps=400000           # continue that run
    rewardlab eval run_dir=runs/cp episodes=20 [video=true]      # ... ends with "success_rate: 0.97"
    rewardlab play run_dir=runs/cp [episodes=2] [out=cp.mp4]     # render the policy to a video
    rewardlab export run_dir=runs/cp [out=DIR]                   # policy.pt / .onnx / .json
    rewardlab tasks [NAME ...]                                   # tasks and their state schema

Settings are ``key=value`` words with dotted keys (``ppo.learning_rate=3e-4``,
``task_cfg.episode_steps=200``), values read as YAML scalars; ``rewardlab <command> --help``
lists every key. A bad setting or an unknown task prints one line to stderr and exits with
status 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.config import SB3_WRAPPER_KEYS, TrainConfig, load_train_config
from rewardlab.core.config import (
    COMMAND_LINE,
    ConfigError,
    build,
    load_yaml,
    merge_layers,
    parse_overrides,
    schema_lines,
)
from rewardlab.runs import (
    RunDir,
    check_resumable,
    default_run_dir,
    git_info,
    load_run_config,
    write_run_files,
)

EXIT_USAGE = 2
"""Exit status of a bad setting, unknown task or missing file (argparse uses it too)."""

EXTRA_COMMAND_MODULES = (
    "rewardlab.rewards.cli",
    "rewardlab.vlm_reward.cli",
    "rewardlab.deploy.cli",
)
"""Modules whose ``add_commands(subparsers, formatter_class)`` add the other parts' commands."""

# -------------------------------------------------------------------------------------------------
# Arguments of the commands other than train (train's are TrainConfig)


@dataclass(frozen=True)
class EvalArgs:
    """``rewardlab eval`` settings; unset ones come from the run's ``eval`` config."""

    run_dir: str = ""
    """The run directory to evaluate (required)."""
    episodes: int | None = None
    """Episodes to evaluate over; default: the run's eval.episodes."""
    video: bool = False
    """Also write an mp4 of world 0 (``out`` or ``<run_dir>/videos/eval.mp4``)."""
    video_episodes: int | None = None
    """Episodes in the video; default: the run's eval.video_episodes."""
    deterministic: bool | None = None
    """Mean actions (true) or sampled ones (false, checkpoints only); default: the run's."""
    num_envs: int | None = None
    """Parallel worlds; default: the run's eval.num_envs or min(episodes, 32)."""
    seed: int | None = None
    """Seed of the eval env; default: the run's eval.seed or its seed + 10000."""
    source: str = "auto"
    """Policy to load: ``auto`` (latest checkpoint, else the export), ``checkpoint`` or ``export``."""
    checkpoint: str | None = None
    """A specific checkpoint file (implies source=checkpoint)."""
    out: str | None = None
    """Video path (with video=true)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        _check_run_args(self)
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(f"episodes: got {self.episodes!r}, expected >= 1")
        if self.num_envs is not None and self.num_envs < 1:
            raise ValueError(f"num_envs: got {self.num_envs!r}, expected >= 1")


@dataclass(frozen=True)
class PlayArgs:
    """``rewardlab play`` settings."""

    run_dir: str = ""
    """The run directory whose policy to render (required)."""
    episodes: int = 2
    """Episodes to render, one after another."""
    out: str | None = None
    """Video path; default: ``<run_dir>/videos/play.mp4``."""
    deterministic: bool = True
    """Mean actions (true) or sampled ones (false, checkpoints only)."""
    seed: int | None = None
    """Seed of the env; default: the run's eval seed."""
    source: str = "auto"
    """Policy to load: ``auto`` (latest checkpoint, else the export), ``checkpoint`` or ``export``."""
    checkpoint: str | None = None
    """A specific checkpoint file (implies source=checkpoint)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        _check_run_args(self)
        if self.episodes < 1:
            raise ValueError(f"episodes: got {self.episodes!r}, expected >= 1")


@dataclass(frozen=True)
class ExportArgs:
    """``rewardlab export`` settings."""

    run_dir: str = ""
    """The run directory whose policy to export (required)."""
    out: str | None = None
    """Output folder; default: ``<run_dir>/export``."""
    checkpoint: str | None = None
    """A specific checkpoint file; default: the run's latest."""
    onnx: bool = True
    """Also write policy.onnx."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        if not self.run_dir:
            raise ValueError("run_dir: required (run_dir=DIR)")


_SOURCES = ("auto", "checkpoint", "export")


def _check_run_args(args: EvalArgs | PlayArgs) -> None:
    if not args.run_dir:
        raise ValueError("run_dir: required (run_dir=DIR)")
    if args.source not in _SOURCES:
        raise ValueError(f"source: got {args.source!r}, expected one of {', '.join(_SOURCES)}")


def _command_args(cls: type, words: Sequence[str]) -> Any:
    """Build one of the ``*Args`` dataclasses from ``key=value`` words (a bare first word that
    is not ``key=value`` is taken as ``run_dir``)."""
    words = list(words)
    if words and "=" not in words[0] and "run_dir" in {f.name for f in dataclasses.fields(cls)}:
        words[0] = f"run_dir={words[0]}"
    data = parse_overrides(words)
    merged, sources = merge_layers([(COMMAND_LINE, data)], default_source=COMMAND_LINE)
    return build(cls, merged, "", sources)


# -------------------------------------------------------------------------------------------------
# Helpers shared by the commands


def _make_env(
    cfg: TrainConfig, num_envs: int, seed: int, task_cfg: Any = None, training: bool = True
) -> Any:
    """The env of a run: backend, task config and, when ``training``, the configured reward.

    Evaluation envs (``training=False``) keep the task's own reward and nominal physics (no
    domain randomization): success on the nominal robot is what they measure.
    """
    from rewardlab.envs import make_env

    kwargs: dict[str, Any] = {"nthread": cfg.nthread} if cfg.backend == "mujoco" else {}
    if cfg.domain_rand and training:  # evaluation measures the nominal robot
        kwargs["domain_rand"] = cfg.domain_rand_config()
    env = make_env(
        cfg.task,
        num_envs=num_envs,
        backend=cfg.backend,
        cfg=task_cfg if task_cfg is not None else cfg.task_config(),
        seed=seed,
        device=cfg.resolved_device(),
        **kwargs,
    )
    return apply_reward(cfg, env) if training else env


def apply_reward(cfg: TrainConfig, env: Any) -> Any:
    """Put the reward ``cfg.reward`` names on ``env``; returns the env to train on.

    ``task`` keeps the task's reward terms; ``code:<file.py>`` loads a reward file through the
    sandboxed loader of :mod:`rewardlab.rewards`; ``clip`` / ``vlm`` wrap the env so that rewards
    come from rendered frames scored by the model ``cfg.vlm`` configures.
    """
    kind, _, arg = cfg.reward.partition(":")
    if kind == "task":
        return env
    if kind == "code":
        from rewardlab.rewards.loader import load_reward_file

        env.set_reward(load_reward_file(arg, env))
        return env
    from rewardlab.vlm_reward.training import wrap_env

    return wrap_env(env, kind, cfg.vlm_config())


class _PPOPolicy:
    """Deterministic (``__call__``) and sampled (``sample``) actions of a PPO actor-critic."""

    def __init__(self, runner: Any, seed: int) -> None:
        import torch

        self.inference = runner.inference_policy()
        self.actor_critic = copy.deepcopy(runner.policy).cpu().eval()  # the runner's stays as is
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: Any) -> Any:
        return self.inference(obs)

    def sample(self, obs: Any) -> Any:
        import torch

        mean, _ = self.actor_critic(self.actor_critic.normalize(obs))
        noise = torch.randn(mean.shape, generator=self.generator)
        return (mean + self.actor_critic.action_std * noise).clamp(-1.0, 1.0)


class _SB3Policy:
    """Deterministic (``__call__``) and sampled (``sample``) actions of an SB3 model."""

    def __init__(self, model: Any) -> None:
        from rewardlab.agents.sb3 import sb3_inference_policy

        self.model = model
        self.inference = sb3_inference_policy(model)

    def __call__(self, obs: Any) -> Any:
        return self.inference(obs)

    def sample(self, obs: Any) -> Any:
        import torch

        normalized = self.inference.normalizer(obs.cpu())  # what VecNormalize fed the model
        action, _ = self.model.predict(normalized.numpy(), deterministic=False)
        return torch.as_tensor(action, dtype=torch.float32).clamp(-1.0, 1.0)


def _ppo_runner(cfg: TrainConfig, env: Any, log_dir: Path | None) -> Any:
    from rewardlab.agents.runner import OnPolicyRunner

    return OnPolicyRunner(
        env,
        cfg.ppo,
        log_dir=log_dir,
        device=cfg.resolved_device(),
        seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every,
    )


def _load_policy(
    run: RunDir, cfg: TrainConfig, env: Any, source: str = "auto", checkpoint: str | None = None
) -> tuple[Any, Path]:
    """The run's policy for ``env``: from a checkpoint (ppo or sb3) or from the export.

    Returns:
        ``(policy, file it came from)``; the policy maps raw obs to actions and may ``sample``.
    """
    import torch

    if checkpoint is not None:
        path, source = Path(checkpoint), "checkpoint"
        if not path.is_file():
            raise FileNotFoundError(f"command line: checkpoint: {checkpoint!r} does not exist")
    else:
        path = run.latest_checkpoint()
        exported = run.export / "policy.pt"
        if source == "export" or (source == "auto" and path is None):
            if not exported.is_file():
                raise FileNotFoundError(
                    f"{run.root}: no checkpoint and no export/policy.pt; train it first "
                    f"(rewardlab train run_dir={run.root})"
                )
            with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(exported), map_location="cpu").eval()
            return module, exported
        if path is None:
            raise FileNotFoundError(f"{run.root}: no checkpoint in {run.checkpoints}")
    if path.suffix == ".zip" or cfg.agent.startswith("sb3_"):
        from rewardlab.agents.sb3 import load_sb3

        return _SB3Policy(load_sb3(path)), path
    runner = _ppo_runner(cfg, env, None)
    runner.load(path, load_env=False)
    return _PPOPolicy(runner, seed=cfg.eval_seed()), path


def _print_eval(result: dict[str, Any]) -> None:
    print(f"episodes: {result['episodes']}")
    print(f"return_mean: {result['return_mean']:.3f} (std {result['return_std']:.3f})")
    print(f"length_mean: {result['length_mean']:.1f}")
    if result.get("video"):
        print(f"video: {result['video']}")
    print(f"success_rate: {result['success_rate']:.2f}")


def _write_eval_json(path: Path, result: dict[str, Any], **meta: Any) -> None:
    data = {**meta, **result, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.write_text(json.dumps(data, indent=2) + "\n")


def _export(
    run: RunDir, cfg: TrainConfig, policy: Any, env: Any, out: Path, onnx: bool = True, **extra: Any
) -> dict[str, Path]:
    from rewardlab.agents.export import export_policy

    module = getattr(policy, "inference", policy)
    return export_policy(
        module,
        env,
        out,
        task=cfg.task,
        git_revision=git_info().get("revision", "unknown"),
        onnx=onnx,
        extra={"agent": cfg.agent, "run_dir": str(run.root), **extra},
    )


# -------------------------------------------------------------------------------------------------
# Commands


def _peek(args: argparse.Namespace, key: str) -> Any:
    """The value of a top-level key on the command line, else in ``--config`` (unvalidated)."""
    cli = parse_overrides(args.overrides)
    if key in cli:
        return cli[key]
    return load_yaml(args.config).get(key) if args.config else None


def cmd_train(args: argparse.Namespace) -> int:
    """Train, then export, evaluate and plot into the run directory.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains its share of the worlds of one
    run (:mod:`rewardlab.agents.distributed`); rank 0 alone writes and prints.
    """
    dctx = _init_distributed()
    run_dir, resume = _peek(args, "run_dir"), _peek(args, "resume")
    run_config = None
    if isinstance(run_dir, str) and resume is not False:
        existing = RunDir(Path(run_dir))
        if existing.config.is_file() and existing.latest_checkpoint() is not None:
            run_config = existing.config  # continue the run as configured, plus these overrides
    cfg = load_train_config(args.overrides, config_file=args.config, run_config=run_config)
    run = RunDir(Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.task))
    if dctx is not None:
        if cfg.agent != "ppo":
            raise ConfigError(COMMAND_LINE, "agent", "several processes (torchrun) need agent=ppo")
        run = RunDir(dctx.broadcast_object(run.root))  # default run dirs carry the time
    checkpoint = run.latest_checkpoint() if run.root.is_dir() else None
    if dctx is not None:
        dctx.barrier()  # every rank has looked before rank 0 moves earlier outputs aside
    if checkpoint is not None and cfg.resume:
        check_resumable(run, cfg)
        if cfg.agent != "ppo":
            raise ConfigError(
                COMMAND_LINE, "resume",
                f"{run.root} has a checkpoint but agent {cfg.agent} cannot resume; "
                "pass resume=false (earlier outputs are kept in previous-*/) or another run_dir",
            )  # fmt: skip
    else:  # a fresh run never appends to an earlier one's metrics or checkpoints
        checkpoint = None
        main = dctx is None or dctx.is_main
        moved = run.archive_outputs() if run.root.is_dir() and main else None
        if moved is not None:
            print(f"[rewardlab] starting over: moved the earlier outputs of {run.root} to {moved}")
    # The run directory keeps what was used: the path and the device ``auto`` resolved to.
    cfg = dataclasses.replace(cfg, run_dir=str(run.root), device=cfg.resolved_device())
    if dctx is None or dctx.is_main:
        write_run_files(run, cfg)
    if dctx is not None:
        dctx.barrier()
        cfg = dataclasses.replace(cfg, device=dctx.device(cfg.device))
    print(f"[rewardlab] run directory: {run.root}")
    print(
        f"[rewardlab] task {cfg.task}, agent {cfg.agent}, {cfg.num_envs} worlds on {cfg.backend}/{cfg.device}, {cfg.total_steps:,} steps"
    )

    task_cfg = cfg.task_config()
    if dctx is None:
        env = _make_env(cfg, cfg.num_envs, cfg.seed, task_cfg)
    else:
        env = _make_env(cfg, dctx.num_envs(cfg.num_envs), dctx.seed(cfg.seed), task_cfg)
    t0 = time.perf_counter()
    global_step = None
    if cfg.agent == "ppo":
        runner = _ppo_runner(cfg, env, run.root if dctx is None or dctx.is_main else None)
        if checkpoint is not None:
            runner.load(checkpoint, load_env=dctx is None or dctx.is_main)
            print(
                f"[rewardlab] resuming from {checkpoint} at step {runner.global_step:,} (iteration {runner.iteration})"
            )
            if runner.global_step >= cfg.total_steps:
                print(
                    f"[rewardlab] already trained {runner.global_step:,} >= total_steps={cfg.total_steps:,} steps; raise total_steps to train more"
                )
        if dctx is not None:
            dctx.attach(runner)
        try:
            runner.learn(cfg.total_steps, progress=dctx is None or dctx.is_main)
        except KeyboardInterrupt:
            print(f"[rewardlab] continue with: rewardlab train run_dir={run.root}", file=sys.stderr)
            raise
        if dctx is not None:
            from rewardlab.agents.distributed import detach

            detach(runner)
            dctx.close()
            if not dctx.is_main:  # rank 0 exports and evaluates
                env.close()
                return 0
        global_step = runner.global_step
        policy: Any = _PPOPolicy(runner, seed=cfg.eval_seed())
    else:
        from rewardlab.agents.sb3 import train_sb3

        hp = dict(cfg.sb3)
        wrapper = {k: bool(hp.pop(k)) for k in SB3_WRAPPER_KEYS if k in hp}
        model = train_sb3(
            cfg.agent.removeprefix("sb3_"), env, cfg.total_steps, run.root, cfg.seed, hp, **wrapper
        )
        global_step = int(model.num_timesteps)
        policy = _SB3Policy(model)
        if not run.metrics.is_file():  # SB3 logs to TensorBoard only
            from rewardlab.plots import metrics_from_tensorboard, write_metrics

            write_metrics(metrics_from_tensorboard(run.root), run.metrics)
    train_s = time.perf_counter() - t0
    env.close()

    paths = _export(run, cfg, policy, env, run.export, global_step=global_step)
    print(f"[rewardlab] exported {', '.join(str(p) for p in paths.values())}")

    eval_env = _make_env(
        cfg, cfg.eval.resolved_num_envs(), cfg.eval_seed(), task_cfg, training=False
    )
    from rewardlab.agents.evaluate import evaluate

    video = run.videos / "eval.mp4" if cfg.eval.video else None
    result = evaluate(
        policy,
        eval_env,
        cfg.eval.episodes,
        deterministic=cfg.eval.deterministic,
        video_path=video,
        video_episodes=cfg.eval.video_episodes,
        seed=cfg.eval_seed(),
    )
    eval_env.close()
    _write_eval_json(run.eval_json, result, source="training", global_step=global_step)

    plot = None
    if run.metrics.is_file():
        from rewardlab.plots import plot_learning_curves

        plot = plot_learning_curves(
            {cfg.agent: run.metrics},
            run.plots / "learning_curve.png",
            title=f"{cfg.task} ({run.root.name})",
        )

    print(f"\n[rewardlab] done: {global_step:,} steps in {train_s:.0f} s (this session)")
    print(f"  run dir:     {run.root}")
    print(f"  config:      {run.config}")
    print(f"  checkpoints: {run.latest_checkpoint() or run.checkpoints}")
    print(f"  export:      {paths['pt']} (+ .onnx, .json)")
    print(f"  video:       {result['video'] or '-'}")
    print(f"  plot:        {plot or '-'}")
    print(f"  tensorboard: tensorboard --logdir {run.root}")
    print(
        f"  evaluation:  {result['episodes']} episodes, return {result['return_mean']:.2f}, success_rate {result['success_rate']:.2f}"
    )
    print(f"  next:        rewardlab eval run_dir={run.root} episodes=20")
    return 0


def _init_distributed() -> Any:
    """The process group ``torchrun`` set up (``WORLD_SIZE`` > 1), else ``None``.

    Ranks other than 0 print nothing to stdout (their errors still go to stderr).
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    from rewardlab.agents.distributed import init_from_env

    dctx = init_from_env()
    if dctx is not None and not dctx.is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
    return dctx


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run's policy and print mean return, length and success rate."""
    a: EvalArgs = _command_args(EvalArgs, args.overrides)
    cfg = load_run_config(a.run_dir)
    run = RunDir(Path(a.run_dir))
    given = {
        k: getattr(a, k)
        for k in ("episodes", "video_episodes", "deterministic", "num_envs", "seed")
    }
    ev = dataclasses.replace(cfg.eval, **{k: v for k, v in given.items() if v is not None})
    cfg = dataclasses.replace(cfg, eval=ev)
    num_envs, seed = ev.resolved_num_envs(), cfg.eval_seed()
    env = _make_env(cfg, num_envs, seed, training=False)
    policy, path = _load_policy(run, cfg, env, a.source, a.checkpoint)
    mode = "deterministic" if ev.deterministic else "sampled"
    print(
        f"[rewardlab] evaluating {path} on {cfg.task}: {ev.episodes} episodes, {num_envs} worlds, seed {seed}, {mode} actions"
    )
    from rewardlab.agents.evaluate import evaluate

    video = Path(a.out) if a.out else run.videos / "eval.mp4"
    result = evaluate(
        policy,
        env,
        ev.episodes,
        deterministic=ev.deterministic,
        video_path=video if a.video else None,
        video_episodes=ev.video_episodes,
        seed=seed,
    )
    env.close()
    _write_eval_json(
        run.eval_json, result, source=str(path), seed=seed, deterministic=ev.deterministic
    )
    _print_eval(result)
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Render a run's policy to an mp4."""
    a: PlayArgs = _command_args(PlayArgs, args.overrides)
    cfg = load_run_config(a.run_dir)
    run = RunDir(Path(a.run_dir))
    seed = a.seed if a.seed is not None else cfg.eval_seed()
    env = _make_env(cfg, 1, seed, training=False)
    policy, path = _load_policy(run, cfg, env, a.source, a.checkpoint)
    out = Path(a.out) if a.out else run.videos / "play.mp4"
    from rewardlab.agents.evaluate import evaluate

    result = evaluate(
        policy,
        env,
        a.episodes,
        deterministic=a.deterministic,
        video_path=out,
        video_episodes=a.episodes,
        seed=seed,
    )
    env.close()
    print(
        f"[rewardlab] {path}: {a.episodes} episode(s), returns {', '.join(f'{r:.2f}' for r in result['returns'])}, success {sum(result['successes'])}/{a.episodes}"
    )
    print(f"video: {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run's policy (TorchScript, ONNX, JSON sidecar)."""
    a: ExportArgs = _command_args(ExportArgs, args.overrides)
    cfg = load_run_config(a.run_dir)
    run = RunDir(Path(a.run_dir))
    env = _make_env(cfg, 1, cfg.seed, training=False)
    policy, path = _load_policy(run, cfg, env, "checkpoint", a.checkpoint)
    out = Path(a.out) if a.out else run.export
    paths = _export(run, cfg, policy, env, out, onnx=a.onnx, checkpoint=str(path))
    env.close()
    print(f"[rewardlab] exported {path}:")
    for p in paths.values():
        print(f"  {p}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the registered tasks with their sizes, rates and state schema."""
    from rewardlab.envs import get_task, make_env, task_names

    names = args.names or task_names()
    for name in names:
        task_cls = get_task(name)
        env = make_env(name, num_envs=1, nthread=1)
        doc = (task_cls.__doc__ or "").strip().splitlines()[0] if task_cls.__doc__ else ""
        hz = 1.0 / env.control_dt
        print(
            f"{name}: obs {env.obs_dim}, action {env.action_dim}, {hz:g} Hz, {env.max_episode_steps} steps/episode"
        )
        if doc:
            print(f"  {doc}")
        if args.config:
            fields = dataclasses.asdict(env.cfg)
            print("  task_cfg: " + ", ".join(f"{k}={v!r}" for k, v in fields.items()))
        print("  state:")
        for line in env.describe().splitlines():
            print(f"    {line}")
        env.close()
    return 0


# -------------------------------------------------------------------------------------------------
# Parser


def _keys_epilog(title: str, lines: Sequence[str]) -> str:
    return title + "\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``rewardlab`` argument parser (one subparser per command)."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rewardlab",
        description="Train robot policies in batched simulation; evaluate, render and export them.",
        epilog="Settings are key=value words with dotted keys; `rewardlab <command> --help` lists them.",
        formatter_class=fmt,
    )
    from rewardlab import __version__

    parser.add_argument("--version", action="version", version=f"rewardlab {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train",
        help="train a policy, then export, evaluate and plot it",
        description=(
            "Train a policy into a run directory, then export it (export/), evaluate it (videos/,\n"
            "eval.json) and plot its learning curve (plots/). Training into a run directory that\n"
            "has a checkpoint resumes it (resume=false starts over, keeping the old outputs).\n\n"
            "Config layers, later winning: sim_configs/train/default.yaml, sim_configs/train/<task>.yaml,\n"
            "<run_dir>/config.yaml (when resuming), --config FILE, key=value words.\n\n"
            "example: rewardlab train task=cartpole_balance run_dir=runs/cp ppo.learning_rate=3e-4"
        ),
        epilog=_keys_epilog(
            "keys (task_cfg.<field> sets a field of the task's config; `rewardlab tasks --config` lists them):",
            schema_lines(TrainConfig),
        ),
        formatter_class=fmt,
    )
    p.add_argument(
        "--config", metavar="FILE", help="YAML file of settings (layered under key=value)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings, e.g. task=cartpole_balance num_envs=32",
    )
    p.set_defaults(func=cmd_train)

    for name, cls, func, help_, example in (
        ("eval", EvalArgs, cmd_eval, "evaluate a run's policy; ends with 'success_rate: X'", "rewardlab eval run_dir=runs/cp episodes=20 video=true"),
        ("play", PlayArgs, cmd_play, "render a run's policy to an mp4", "rewardlab play run_dir=runs/cp episodes=2 out=cp.mp4"),
        ("export", ExportArgs, cmd_export, "export a run's policy (TorchScript, ONNX, JSON)", "rewardlab export run_dir=runs/cp out=robot/policy"),
    ):  # fmt: skip
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{cls.__doc__}\n\nexample: {example}",
            epilog=_keys_epilog("keys:", schema_lines(cls)),
            formatter_class=fmt,
        )
        p.add_argument(
            "overrides", nargs="*", metavar="key=value", help="settings, e.g. run_dir=runs/cp"
        )
        p.set_defaults(func=func)

    p = sub.add_parser(
        "tasks",
        help="list the registered tasks and their state schema",
        description="List the registered tasks: observation and action sizes, control rate, episode\nlength and the named state that rewards read.",
        formatter_class=fmt,
    )
    p.add_argument("names", nargs="*", metavar="TASK", help="only these tasks")
    p.add_argument(
        "--config", action="store_true", help="also print each task's config fields (task_cfg keys)"
    )
    p.set_defaults(func=cmd_tasks)

    # Commands of the other parts (reward-search, vlm-eval, sim-robot, deploy, ...) live next to
    # their code; each module's ``add_commands(sub, formatter_class)`` adds its subparsers and
    # must import nothing heavy at that point (parsing the command line stays fast).
    for module in EXTRA_COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub, fmt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rewardlab`` command line; returns the exit status."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; read when mujoco loads
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\n[rewardlab] interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError) as e:  # ConfigError is a ValueError
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"rewardlab {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
