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
import contextlib
import dataclasses
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardlab import __version__
from rewardlab.config import MAX_NUM_ENVS, TrainConfig
from rewardlab.core.config import (
    COMMAND_LINE,
    build,
    clip_text,
    merge_layers,
    parse_overrides,
    schema_lines,
)
from rewardlab.core.files import DiskFullError
from rewardlab.core.registry import UnknownNameError
from rewardlab.rewards.errors import SandboxFailure
from rewardlab.runs import RunDir, load_run_config

if TYPE_CHECKING:  # an annotation only: the pipeline imports torch (see "Commands" below)
    from rewardlab.pipeline import EvalResult

EXIT_USAGE = 2
"""Exit status of a bad setting, unknown task or missing file (argparse uses it too)."""

MAX_VIDEO_TILES = 9
"""Worlds ``rewardlab play`` renders at once (``rewardlab.agents.evaluate.MAX_VIDEO_TILES``;
repeated here so that parsing needs no torch)."""

EXTRA_COMMAND_MODULES = (
    "rewardlab.search.cli",
    "rewardlab.vlm_commands",
    "rewardlab.deploy.cli",
    "rewardlab.demo_commands",
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
    """Also write an mp4 (``out`` or ``<run_dir>/videos/eval.mp4``): a grid of up to 9 worlds,
    each captioned with its episode's outcome."""
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
        if self.num_envs is not None and not 1 <= self.num_envs <= MAX_NUM_ENVS:
            raise ValueError(f"num_envs: got {self.num_envs!r}, expected in [1, {MAX_NUM_ENVS}]")


@dataclass(frozen=True)
class PlayArgs:
    """``rewardlab play`` settings."""

    run_dir: str = ""
    """The run directory whose policy to render (required)."""
    episodes: int = 2
    """Episodes to render: side by side, a grid of up to 9 worlds (more take turns)."""
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


@dataclass(frozen=True)
class ReplayArgs:
    """``rewardlab replay``: score a recorded episode (rosbag2) with any reward function."""

    bag: str = ""
    """rosbag2 folder recorded by ``rewardlab deploy record=DIR``; required."""
    reward: str = ""
    """``task:<task>`` (the task's own reward) or ``code:<file.py>`` (e.g. an LLM-written one)."""
    robot: str = "arm"
    """Robot config the bag was recorded with."""
    task: str | None = None
    """Task whose state schema a ``code:`` reward reads; default: the one in ``task:<task>``."""
    json: str | None = None
    """Also write the summary (reward/<term> sums, return, ticks) as JSON to this file."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        if not self.bag:
            raise ValueError("bag: required (bag=DIR, a folder written by deploy record=DIR)")
        if not self.reward.startswith(("task:", "code:")):
            raise ValueError(f"reward: got {self.reward!r}, expected task:<task> or code:<file.py>")


_SOURCES = ("auto", "checkpoint", "export")
"""Values of ``source`` (``rewardlab.pipeline.SOURCES``; repeated here so that parsing needs no
torch)."""


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
# Commands (each imports the pipeline when it runs: it loads torch and MuJoCo, and parsing the
# command line, --help included, stays fast without them)


def _print_eval(result: EvalResult) -> None:
    print(f"episodes: {result.episodes}")
    print(f"return_mean: {result.return_mean:.3f} (std {result.return_std:.3f})")
    print(f"length_mean: {result.length_mean:.1f}")
    if result.video:
        print(f"video: {result.video}")
    print(f"success_rate: {result.success_rate:.2f}")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while training (a scheduler's preemption, ``timeout``, ``docker stop``,
    ``kill``): handled like Ctrl-C, so the learner saves ``latest.pt`` on the way out; the
    command then exits with 143 (128 + SIGTERM)."""


@contextlib.contextmanager
def _sigterm_saves() -> Iterator[None]:
    """Turn the first SIGTERM into :class:`Terminated` while the block runs.

    Python's default for SIGTERM ends the process on the spot, losing every iteration since
    the last periodic checkpoint. A second SIGTERM while the checkpoint is being written is
    ignored (SIGKILL still works). Off the main thread (signal handlers cannot be set there)
    nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, then export, evaluate and plot into the run directory.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains its share of the worlds of one
    run (:mod:`rewardlab.agents.distributed`); rank 0 alone writes and prints.
    """
    from rewardlab import pipeline

    dctx = pipeline.init_distributed()
    cfg = pipeline.train_config(args.overrides, args.config)
    # The env (and its reward, e.g. a reward file's checks) before the run directory: a rejected
    # reward leaves nothing behind.
    env = pipeline.train_env(cfg, dctx)
    try:
        start = pipeline.start_run(cfg, dctx)
        cfg, run = start.cfg, start.run
        if start.archived is not None:
            print(
                f"[rewardlab] starting over: moved the earlier outputs of {run.root} to {start.archived}"
            )
        print(f"[rewardlab] run directory: {run.root}")
        print(
            f"[rewardlab] task {cfg.task}, agent {cfg.agent}, {cfg.num_envs} worlds on {cfg.backend}/{cfg.device}, {cfg.total_steps:,} steps"
        )
        try:
            with _sigterm_saves():
                result = pipeline.train(cfg, run, env=env, resume=start.checkpoint, dctx=dctx)
        except KeyboardInterrupt:
            print(f"[rewardlab] continue with: rewardlab train run_dir={run.root}", file=sys.stderr)
            raise
    finally:
        env.close()
    if not result.is_main:  # rank 0 exports and evaluates
        return 0
    out = pipeline.finish_run(cfg, run, result)
    ev = out.eval
    print(
        f"\n[rewardlab] done: {result.global_step:,} steps in {result.seconds:.0f} s (this session)"
    )
    print(f"  run dir:     {run.root}")
    print(f"  config:      {run.config}")
    print(f"  checkpoints: {run.latest_checkpoint() or run.checkpoints}")
    print(f"  export:      {out.export.pt} (+ .onnx, .json)")
    print(f"  video:       {ev.video or '-'}")
    print(f"  plot:        {out.plot or '-'}")
    print(f"  tensorboard: tensorboard --logdir {run.root}")
    print(
        f"  evaluation:  {ev.episodes} episodes, return {ev.return_mean:.2f}, success_rate {ev.success_rate:.2f}"
    )
    print(f"  next:        rewardlab eval run_dir={run.root} episodes=20")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run's policy and print mean return, length and success rate."""
    from rewardlab import pipeline

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
    env = pipeline.make_eval_env(cfg, num_envs, seed)
    try:
        loaded = pipeline.load_policy(cfg, run, env, a.source, a.checkpoint)
        mode = "deterministic" if ev.deterministic else "sampled"
        print(
            f"[rewardlab] evaluating {loaded.path} on {cfg.task}: {ev.episodes} episodes, {num_envs} worlds, seed {seed}, {mode} actions"
        )
        video = Path(a.out) if a.out else run.videos / "eval.mp4"
        result = pipeline.evaluate(cfg, loaded.policy, env=env, video=video if a.video else None)
    finally:
        env.close()
    pipeline.write_eval_json(
        run.eval_json, result, source=str(loaded.path), seed=seed, deterministic=ev.deterministic
    )
    _print_eval(result)
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Render a run's policy to an mp4."""
    from rewardlab import pipeline

    a: PlayArgs = _command_args(PlayArgs, args.overrides)
    cfg = load_run_config(a.run_dir)
    run = RunDir(Path(a.run_dir))
    seed = a.seed if a.seed is not None else cfg.eval_seed()
    env = pipeline.make_eval_env(cfg, min(a.episodes, MAX_VIDEO_TILES), seed)
    try:
        loaded = pipeline.load_policy(cfg, run, env, a.source, a.checkpoint)
        out = Path(a.out) if a.out else run.videos / "play.mp4"
        result = pipeline.evaluate(
            cfg,
            loaded.policy,
            env=env,
            episodes=a.episodes,
            seed=seed,
            deterministic=a.deterministic,
            video=out,
            video_episodes=a.episodes,
        )
    finally:
        env.close()
    print(
        f"[rewardlab] {loaded.path}: {a.episodes} episode(s), returns {', '.join(f'{r:.2f}' for r in result.returns)}, success {sum(result.successes)}/{a.episodes}"
    )
    print(f"video: {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a run's policy (TorchScript, ONNX, JSON sidecar)."""
    from rewardlab import pipeline

    a: ExportArgs = _command_args(ExportArgs, args.overrides)
    cfg = load_run_config(a.run_dir)
    run = RunDir(Path(a.run_dir))
    env = pipeline.make_eval_env(cfg, 1, cfg.seed)
    try:
        loaded = pipeline.load_policy(cfg, run, env, "checkpoint", a.checkpoint)
    finally:
        env.close()
    out = Path(a.out) if a.out else run.export
    paths = pipeline.export(
        cfg, loaded.policy, out, run=run, onnx=a.onnx, checkpoint=str(loaded.path)
    )
    print(f"[rewardlab] exported {loaded.path}:")
    for p in paths.paths():
        print(f"  {p}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Score a recorded robot episode with a reward function (:mod:`rewardlab.replay`)."""
    from rewardlab import replay  # torch, MuJoCo, the sandbox: when it runs

    a: ReplayArgs = _command_args(ReplayArgs, args.overrides)
    try:
        replay.replay(a.bag, a.reward, a.robot, a.task, a.json)
    except Exception as e:
        if not type(e).__module__.startswith("rosbags"):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__  # the bag reader's errors: one line
        raise ValueError(
            f"command line: bag: {a.bag!r} cannot be read as a rosbag2 recording ({msg})"
        ) from None
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the registered tasks with their sizes, rates and state schema.

    A name that is not registered is a one-line error with "did you mean" (before anything is
    listed); a registered task that cannot be loaded (an invalid YAML task file) is listed as one
    line with its error, and makes the exit status 1 when it was asked for by name.
    """
    # torch, MuJoCo: when it runs
    from rewardlab.envs import broken_tasks, get_task, make_env, task_names

    known = task_names()
    for name in args.names:
        if name not in known:
            raise UnknownNameError("task", name, known)
    broken = broken_tasks()
    status = 0
    for name in args.names or known:
        if name in broken:
            print(f"{name}: cannot load: {broken[name]}")
            status = 1 if args.names else status
            continue
        task_cls = get_task(name)
        env = make_env(name, num_envs=1, nthread=1)
        doc = task_cls.summary()
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
    return status


# -------------------------------------------------------------------------------------------------
# Parser


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: options (``--config FILE``) and ``key=value`` words in any order
    (argparse's intermixed parsing; plain ``parse_known_args`` stops taking ``key=value`` words
    after the first option)."""

    _parsing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._parsing:  # the passes of parse_known_intermixed_args
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        except TypeError:  # a parser that intermixed parsing does not support (subcommands)
            return super().parse_known_args(args, namespace)
        finally:
            self._parsing = False


def _is_value(word: str) -> bool:
    """Whether ``word``, after a ``--key`` word, is its value (not an option or a setting)."""
    if "=" in word:
        return False
    if not word.startswith("-"):
        return True
    try:
        float(word)  # -1, -3e-4
    except ValueError:
        return False
    return True


def _dashed_words_error(
    command: str, words: Sequence[str], extras: Sequence[str], settings: type
) -> str:
    """The one-line error for ``extras`` (words argparse did not take) of a command whose
    settings are the fields of ``settings``: ``--key value`` / ``--key=value`` words of known
    keys get the ``key=value`` to write instead."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    unknown = set(extras)
    typed, instead, other = [], [], []
    i = 0
    while i < len(words):
        word = words[i]
        if word in unknown and word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            key = key.replace("-", "_")
            head = fields.get(key.split(".")[0])
            if head is None:
                other.append(word)
            else:
                shown = word
                if not eq and i + 1 < len(words) and _is_value(words[i + 1]):
                    i += 1
                    value, shown = words[i], f"{word} {words[i]}"
                elif not eq:
                    value = "true" if head.type in (bool, "bool") and "." not in key else "VALUE"
                typed.append(shown)
                instead.append(f"{key}={value}")
        elif word in unknown:
            other.append(word)
        i += 1
    rule = "settings are key=value words, not --options"
    listed = f"`rewardlab {command} --help` lists the keys"
    if not instead:
        return f"unrecognized argument{'s' if len(other) > 1 else ''} {' '.join(other)}: {rule} ({listed})"
    parts = [f"{rule}: write {' '.join(instead)} instead of {' '.join(typed)}"]
    if other:
        parts.append(f"unrecognized: {' '.join(other)} ({listed})")
    return "; ".join(parts)


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
    parser.add_argument("--version", action="version", version=f"rewardlab {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )

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
    p.set_defaults(func=cmd_train, settings=TrainConfig)

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
        p.set_defaults(func=func, settings=cls)

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

    # Scoring a robot's recording combines deploy (the bag) with the tasks and the reward
    # loader, so it is an application command (after deploy's own, as it always was listed).
    p = sub.add_parser(
        "replay",
        help="score a recorded robot episode with a reward function",
        description=f"{ReplayArgs.__doc__}\n\nexample: rewardlab replay bag=runs/arm/bag reward=task:arm_reach",
        epilog=_keys_epilog("keys:", schema_lines(ReplayArgs)),
        formatter_class=fmt,
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. robot=arm")
    p.set_defaults(func=cmd_replay, settings=ReplayArgs)
    return parser


MAX_ERROR_CHARS = 800
"""An error message is cut to this many characters (one line, whatever the input)."""


def error_line(command: str | None, error: BaseException | str) -> str:
    """``rewardlab <command>: error: <message>``: one line, at most :data:`MAX_ERROR_CHARS`
    characters of message (a ``KeyError``'s message without its quotes)."""
    msg = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    msg = clip_text(" ".join(msg.split()), MAX_ERROR_CHARS)
    return f"rewardlab{' ' + command if command else ''}: error: {msg}"


EXIT_BROKEN_PIPE = 128 + 13
"""Exit status when stdout's reader went away (``rewardlab tasks | head``), as for a process
killed by SIGPIPE."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rewardlab`` command line; returns the exit status.

    Output into a pipe whose reader has gone (``rewardlab tasks | head``) ends the command
    quietly with :data:`EXIT_BROKEN_PIPE` (the Python documentation's recipe: the rest of the
    output goes to ``/dev/null``), not with a ``BrokenPipeError`` traceback. SIGPIPE itself is
    left ignored, so that a broken socket or worker pipe is still an error.
    """
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # not a file descriptor (captured output)
        return False


def _main(argv: Sequence[str] | None) -> int:
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; read when mujoco loads
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extras = parser.parse_known_args(words)
    if "--debug" in extras:  # `rewardlab train --debug ...` as well as `rewardlab --debug train`
        args.debug, extras = True, [w for w in extras if w != "--debug"]
    if extras:
        settings = getattr(args, "settings", None)
        if settings is None:  # a command with options of its own: argparse's error
            parser.parse_args(words)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        print(
            error_line(args.command, _dashed_words_error(args.command, words, extras, settings)),
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print("\n[rewardlab] terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("\n[rewardlab] interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader went away: main() ends quietly
        raise
    # ConfigError, CheckpointError, UnknownNameError, AgentUnavailableError: ValueError;
    # DiskFullError, ConfigsNotFoundError: OSError; RewardFileError, RewardRuntimeError,
    # SandboxUnavailable: SandboxFailure (kind, file:line)
    except (ValueError, KeyError, OSError, SandboxFailure, MemoryError) as e:
        if args.debug:
            raise
        print(error_line(args.command, _describe(args.command, e)), file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as e:
        if args.debug or not _out_of_memory(e):
            raise
        print(error_line(args.command, _describe(args.command, e)), file=sys.stderr)
        return EXIT_USAGE


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (``MemoryError``, torch's CPU or CUDA
    allocator)."""
    text = str(error).lower()
    return (
        isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text
    )


def _describe(command: str, error: BaseException) -> str | BaseException:
    """The message of an error main() prints as one line."""
    if _out_of_memory(error):
        what = "num_envs, ppo.num_steps" if command == "train" else "num_envs, episodes"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"out of memory ({clip_text(detail, 240)}); lower {what}"
    if isinstance(error, DiskFullError) or not isinstance(error, OSError):
        return error
    if error.errno is not None and error.strerror and error.filename:  # "path: reason"
        second = f" -> {error.filename2}" if error.filename2 else ""
        return f"{error.filename}{second}: {error.strerror}"
    return error


if __name__ == "__main__":
    sys.exit(main())
