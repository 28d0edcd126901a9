"""Load reward code: detect its style, check it statically, trial-run it in a sandbox, compile it.

``rewardlab train task=cartpole_balance reward=code:my_reward.py`` goes through
:func:`load_reward_file`; the reward search goes through :func:`load_reward_source`. Both accept
three styles (see :mod:`rewardlab.rewards.compat`):

- ``native``: ``compute_reward(state, action) -> (total [N], {name: [N]})`` over ``env.state()``;
- ``eureka``: IsaacGymEnvs/Eureka ``compute_reward(root_states, actions, ...)`` (or
  IsaacGymEnvs' ``compute_<task>_reward``) with arguments bound by name (``@torch.jit.script``
  accepted, run eagerly), returning ``(total, {components})``, a tensor, or IsaacGymEnvs'
  ``(reward, reset[, successes])``;
- ``dreureka``: DrEureka's ``class EurekaReward`` (``compute_reward(self)`` or
  ``_reward_<name>(self)`` terms reading ``self.env.<name>``);
- ``text2reward``: ``compute_dense_reward(self, action) -> float`` on one world, vectorized.

Steps: static check (allow-list, signature, names) in this process -> the reward starts in
the OS sandbox (:class:`rewardlab.rewards.remote.RemoteReward`, its own process for its whole
life) -> trial run on recorded states (shape, dtype, finite, speed), checked here on the data
that came back. The function returned *is* that proxy: every training call goes through the
sandbox and is checked (shape, finite values, a per-call time budget). Any failure raises
:class:`rewardlab.rewards.sandbox.SandboxFailure` whose ``error`` is a :class:`RewardError`
naming the file and line; :func:`load_reward_file` raises :class:`RewardFileError`.

``sandbox="none"`` (``rewardlab train ... sandbox=none``) opts out for code the user trusts:
the reward is compiled into this process with a loud warning (:data:`NONE_WARNING`). A machine
without the sandbox otherwise refuses (:class:`SandboxUnavailable`, saying why).
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from rewardlab.core.files import FileTooLargeError, read_text_bounded
from rewardlab.core.reward import RewardFn
from rewardlab.rewards.boundary import NONE_WARNING, resolve_mode
from rewardlab.rewards.errors import RewardError, SandboxFailure, SandboxUnavailable
from rewardlab.rewards.guard import compile_reward, guard_reward
from rewardlab.rewards.limits import DEFAULT_LIMITS, SandboxLimits
from rewardlab.rewards.restricted import source_filename
from rewardlab.rewards.static_check import check_source, import_notes
from rewardlab.rewards.trial import evaluate_reward, record_states

MAX_SOURCE_BYTES = 256 * 1024
"""Largest reward file :func:`load_reward_file` reads (a reward is a page of Python)."""

STYLES = ("auto", "native", "eureka", "dreureka", "text2reward")
"""Values of ``style``."""

_STATES_CACHE: dict[tuple[str, int], dict[str, torch.Tensor]] = {}


class RewardFileError(SandboxFailure, ValueError):
    """A reward file could not be loaded; ``str()`` names the file (and line) and the failed
    check on its first line; the reward's own traceback frames follow, if any (bounded)."""

    def __init__(self, path: str | Path, error: RewardError) -> None:
        SandboxFailure.__init__(self, error)
        self.path = str(path)
        where = f"{self.path}:{error.line}" if error.line else self.path
        msg = f"{where}: reward rejected ({error.kind}): {error.message}"
        if error.traceback:
            msg += "\n" + error.traceback
        self.args = (msg,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.error))


def _spec_of(env_or_spec: Any) -> tuple[list[str], str | None, float, Any]:
    """``(state names, task name, control dt, env or None)`` from an env, spec or names."""
    if hasattr(env_or_spec, "state_spec"):
        env = env_or_spec
        task = getattr(getattr(env, "task", None), "name", None)
        return list(env.state_spec()), task, float(getattr(env, "control_dt", 0.02)), env
    if isinstance(env_or_spec, Mapping | Collection):
        return [str(k) for k in env_or_spec], None, 0.02, None
    raise TypeError(
        f"expected an env (with state_spec()), a state spec mapping or state names; got {type(env_or_spec).__name__}"  # fmt: skip
    )


def dedent_snippet(code: str) -> str:
    """``code`` without a common indentation, when that is what keeps it from parsing (a method
    body pasted as written, e.g. DrEureka's ``*_rewardonly.py`` files); else ``code``. Line
    numbers are unchanged."""
    if not isinstance(code, str) or not code[:1].isspace():
        return code
    try:
        ast.parse(code)
    except IndentationError:
        dedented = textwrap.dedent(code)
        try:
            ast.parse(dedented)
        except (SyntaxError, ValueError):
            return code
        return dedented
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return code
    return code


def synthetic_states(spec: Mapping[str, Any], action_dim: int, n: int = 4096, seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """Standard-normal states of the spec's shapes (for trial runs without an env)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, field in spec.items():
        shape = tuple(getattr(field, "shape", ()))
        out[name] = torch.randn((n, *shape), generator=gen)
    out["action"] = torch.rand((n, action_dim), generator=gen) * 2 - 1
    return out


def default_states(task: str, num_envs: int = 64, steps: int = 32) -> dict[str, torch.Tensor]:
    """Recorded states of ``task`` (memoized per process): :func:`record_states` with a small
    batch (``num_envs * steps`` rows; the speed check tiles them to 4096 worlds)."""
    key = (task, num_envs * steps)
    if key not in _STATES_CACHE:
        _STATES_CACHE[key] = record_states(task, num_envs=num_envs, steps=steps)
    return _STATES_CACHE[key]


def prepare_source(
    code: str,
    state_names: Collection[str],
    task: str | None,
    control_dt: float = 0.02,
    style: str = "auto",
    *,
    env: Any = None,
) -> tuple[str, Any, tuple]:
    """Detect the style of reward source and check it statically (no code runs).

    The first step of :func:`load_reward_source`, shared with the reward search (which trial-runs
    candidates itself and compiles them in its training workers with :func:`compile_source`).

    Args:
        code: the reward source.
        state_names: the task's state entries.
        task: task name for the compatibility maps (``None``: state names only).
        control_dt: the env's control step (Eureka's ``dt``).
        style: ``auto`` (see :func:`rewardlab.rewards.compat.detect_style`) or a style.
        env: the env the reward is for: the constants of foreign names (IsaacGymEnvs'
            ``max_episode_length``, joint limits, ...) come from its task instance
            (:func:`rewardlab.rewards.compat.env_constants`); ``None``: the task's defaults.

    Returns:
        ``(style, builder, builder_args)``: the resolved style, and the picklable ``builder`` for
        :func:`rewardlab.rewards.sandbox.trial_run` (``None`` for native code) with its extra
        arguments (for foreign styles ``(task, state names, dt, constants)``).

    Raises:
        SandboxFailure: the static check failed; ``error`` is the :class:`RewardError`.
        ValueError: unknown ``style``.
    """
    from rewardlab.rewards import compat  # lazily: `python -m rewardlab.rewards.compat` stays clean

    if style not in STYLES:
        raise ValueError(f"unknown reward style {style!r}; allowed: {', '.join(STYLES)}")
    names = list(state_names)
    if style == "auto":
        style = compat.detect_style(code)
    if style == "native":
        err = check_source(code, names)
        builder, builder_args = None, ()
    elif style == "eureka":
        consts = compat.env_constants(task, env)
        err = compat.check_eureka(code, task, names, consts)
        builder, builder_args = compat.build_eureka, (task, tuple(names), float(control_dt), consts)
    elif style == "dreureka":
        consts = compat.env_constants(task, env)
        err = compat.check_dreureka(code, task, names, consts)
        builder, builder_args = (
            compat.build_dreureka,
            (task, tuple(names), float(control_dt), consts),
        )
    else:
        consts = compat.env_constants(task, env)
        err = compat.check_text2reward(code, task, names, consts)
        builder, builder_args = (
            compat.build_text2reward,
            (task, tuple(names), float(control_dt), consts),
        )
    if err:
        raise SandboxFailure(err)
    return style, builder, builder_args


def _warn_unsandboxed(filename: str) -> None:
    print(f"{NONE_WARNING} ({filename})", file=sys.stderr, flush=True)


def _constants(builder_args: tuple) -> Any:
    """The constants of a foreign style's builder arguments (``None`` for native code)."""
    return builder_args[3] if len(builder_args) > 3 else None


def _start(
    code: str,
    names: list[str],
    style: str,
    task: str | None,
    control_dt: float,
    filename: str,
    limits: SandboxLimits,
    check_finite: bool,
    constants: Any = None,
) -> RewardFn:
    """The reward in the sandbox: a :class:`rewardlab.rewards.remote.RemoteReward`."""
    from rewardlab.rewards.remote import RemoteReward

    return RemoteReward(
        code, names, style, task, control_dt,
        filename=filename, limits=limits, check_finite=check_finite, constants=constants,
    )  # fmt: skip


def compile_source(
    code: str,
    state_names: Collection[str],
    task: str | None,
    control_dt: float = 0.02,
    style: str = "auto",
    *,
    filename: str | None = None,
    check_finite: bool = True,
    check_every: int = 16,
    limits: SandboxLimits = DEFAULT_LIMITS,
    sandbox: str = "auto",
    env: Any = None,
) -> RewardFn:
    """Check reward source of any style and start it in the sandbox, without a trial run.

    The reward search's training workers use it (after a trial run of the same source passed
    in the search). Arguments as :func:`prepare_source` (``env``: the constants of foreign
    names come from its task) and :func:`load_reward_source`.

    Returns:
        ``compute_reward(state, action)``, a proxy to the sandboxed reward process, checked on
        every call; ``.source``/``.style`` attributes; ``.close()`` ends the process. With
        ``sandbox="none"``: the function compiled in this process (trusted code only).

    Raises:
        SandboxFailure: the static check failed or loading the reward raised.
        SandboxUnavailable: no OS sandbox here and ``sandbox`` is not ``none``.
    """
    mode = resolve_mode(sandbox)
    code = dedent_snippet(code)
    style, builder, builder_args = prepare_source(code, state_names, task, control_dt, style, env=env)  # fmt: skip
    filename = filename or source_filename(code)
    if mode == "none":
        _warn_unsandboxed(filename)
        return _build_in_process(code, state_names, style, builder, builder_args, filename, check_finite, check_every)  # fmt: skip
    fn = _start(code, list(state_names), style, task, control_dt, filename, limits, check_finite, _constants(builder_args))  # fmt: skip
    return fn


def _build_in_process(
    code: str,
    state_names: Collection[str],
    style: str,
    builder: Any,
    builder_args: tuple,
    filename: str,
    check_finite: bool,
    check_every: int,
) -> RewardFn:
    """Compile checked source of ``style`` in *this* process (``sandbox=none``: trusted code),
    wrapped with the per-call checks, with ``.source`` and ``.style`` attributes."""
    if style == "native":
        fn = compile_reward(
            code,
            list(state_names),
            filename=filename,
            check_finite=check_finite,
            check_every=check_every,
        )
    else:
        try:
            raw = builder(code, *builder_args, filename=filename)
        except SandboxFailure:
            raise
        except Exception as exc:  # module-level code raised
            from rewardlab.rewards.restricted import classify_exception

            raise SandboxFailure(classify_exception(exc, filename)) from exc
        fn = guard_reward(raw, filename, check_finite=check_finite, check_every=check_every)
    fn.source = code  # type: ignore[attr-defined]
    fn.style = style  # type: ignore[attr-defined]
    fn.sandbox = "none"  # type: ignore[attr-defined]
    return fn


def load_reward_source(
    code: str,
    env_or_state_spec: Any,
    style: str = "auto",
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    states: Mapping[str, torch.Tensor] | None = None,
    task: str | None = None,
    filename: str | None = None,
    check_finite: bool = True,
    check_every: int = 16,
    sandbox: str = "auto",
) -> RewardFn:
    """Check reward source, start it in the sandbox, trial-run it, and return it.

    Args:
        code: the reward source (any of :data:`STYLES` but ``auto``).
        env_or_state_spec: the env the reward is for (its ``state_spec()``, task name and
            ``control_dt`` are used and, when ``states`` is not given, its task is run with
            random actions to record states), or a ``state_spec()`` mapping, or state names.
        style: ``auto`` (see :func:`rewardlab.rewards.compat.detect_style`) or a style.
        limits: limits of the reward process (the trial: ``wall_seconds``, ``cpu_seconds``;
            training: ``call_seconds`` per call, ``train_cpu_seconds``; memory, files). The
            speed check (``max_ms_per_call``) times a call on the env's ``num_envs`` worlds (at
            most 4096; 4096 without an env): the batch the reward will be called with.
        states: recorded states with ``"action"`` for the trial run; default: recorded from the
            env's task, or standard-normal values of the spec's shapes if there is no env.
        task: task name for the compatibility maps when ``env_or_state_spec`` is not an env.
        filename: shown in tracebacks and errors (the file's path).
        check_finite: check that every output value is finite on every call.
        check_every: with ``sandbox="none"`` only: check every call's output structure for
            the first ``check_every`` calls, then at random 1 in ``check_every``.
        sandbox: ``auto`` (the OS sandbox, refused where unavailable) or ``none`` (compile in
            this process: trusted code only; a loud warning).

    Returns:
        ``compute_reward(state, action) -> (total, components)`` -- a proxy to the sandboxed
        reward process -- with ``.source``, ``.style``, ``.check`` (the trial run's
        :class:`CheckResult`), ``.components``, ``.notes`` (imports the static check ignored:
        :class:`rewardlab.rewards.static_check.IgnoredImport`) and ``.close()``.

    Raises:
        SandboxFailure: a check failed; ``error`` is the :class:`RewardError`.
        SandboxUnavailable: no OS sandbox here and ``sandbox`` is not ``none``.
        ValueError: unknown ``style`` or ``sandbox``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown reward style {style!r}; allowed: {', '.join(STYLES)}")
    mode = resolve_mode(sandbox)
    code = dedent_snippet(code)
    names, env_task, dt, env = _spec_of(env_or_state_spec)
    task = task or env_task
    filename = filename or source_filename(code)
    style, builder, builder_args = prepare_source(code, names, task, dt, style, env=env)

    if states is None:
        if env is not None and task is not None:
            states = default_states(task)
        else:
            if env is not None:
                spec = env.state_spec()
            elif isinstance(env_or_state_spec, Mapping):
                spec = env_or_state_spec
            else:
                spec = dict.fromkeys(names)  # bare names: scalars per world
            action_dim = int(getattr(env, "action_dim", 1)) if env is not None else 1
            states = synthetic_states(spec, action_dim)
    import time

    from rewardlab.rewards.trial import SPEED_BATCH

    # the speed check times the batch the reward will be called with (the env's worlds)
    speed = min(SPEED_BATCH, int(getattr(env, "num_envs", SPEED_BATCH) or SPEED_BATCH))
    t0 = time.perf_counter()
    if mode == "none":
        _warn_unsandboxed(filename)
        fn = _build_in_process(code, names, style, builder, builder_args, filename, check_finite, check_every)  # fmt: skip
        result = evaluate_reward(fn, states, filename, limits.max_ms_per_call, speed_batch=speed)
    else:
        fn = _start(code, names, style, task, dt, filename, limits, False, _constants(builder_args))
        try:
            fn.deadline = time.monotonic() + limits.wall_seconds  # type: ignore[attr-defined]
            result = evaluate_reward(
                fn, states, filename, limits.max_ms_per_call, speed_batch=speed
            )
        except BaseException:
            fn.close()  # type: ignore[attr-defined]
            raise
        fn.deadline = None  # type: ignore[attr-defined]
        fn.check_finite = check_finite  # type: ignore[attr-defined]
        if not result.ok:
            fn.close()  # type: ignore[attr-defined]
    result.load_seconds = time.perf_counter() - t0
    if not result.ok:
        assert result.error is not None
        raise SandboxFailure(result.error)
    fn.check = result  # type: ignore[attr-defined]
    fn.notes = import_notes(code)  # type: ignore[attr-defined]
    return fn


def load_reward_file(
    path: str | Path,
    env: Any,
    style: str = "auto",
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    sandbox: str = "auto",
) -> RewardFn:
    """Load a reward file for ``env`` (``rewardlab train reward=code:<file.py>``).

    The file is read with a size limit (:data:`MAX_SOURCE_BYTES`; a regular file only, so
    ``/dev/zero`` or a FIFO is refused at once), then goes through :func:`load_reward_source`.
    Imports the static check ignored (unused, or IsaacGym helpers RewardLab predefines) are
    printed to stderr as ``FILE:LINE: note: ...``.

    Raises:
        RewardFileError: the file is missing, unreadable, too large or not UTF-8, or its reward
            fails a check; the message names the file (and line) and what was expected.
        SandboxUnavailable: no OS sandbox here and ``sandbox`` is not ``none``.
    """
    p = Path(path)
    try:
        code = read_text_bounded(p, MAX_SOURCE_BYTES, "reward file (Python source)")
    except FileNotFoundError:
        raise RewardFileError(p, RewardError("no_code", "no such file")) from None
    except FileTooLargeError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise RewardFileError(p, RewardError("no_code", reason)) from None
    except IsADirectoryError:
        raise RewardFileError(p, RewardError("no_code", "not a regular file (a folder), expected a reward file (Python source)")) from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise RewardFileError(p, RewardError("no_code", f"not UTF-8 text (byte {exc.start})")) from None  # fmt: skip
    except OSError as exc:
        raise RewardFileError(p, RewardError("no_code", f"cannot read the file: {exc.strerror or exc}")) from None  # fmt: skip
    try:
        fn = load_reward_source(code, env, style, limits, filename=str(p), sandbox=sandbox)
    except (RewardFileError, SandboxUnavailable):
        raise
    except SandboxFailure as exc:
        raise RewardFileError(p, exc.error) from None
    for note in getattr(fn, "notes", []):
        print(f"{p}:{note.line}: note: import of {note.name!r} ignored: {note.why}", file=sys.stderr, flush=True)  # fmt: skip
    return fn


__all__ = [
    "MAX_SOURCE_BYTES",
    "STYLES",
    "RewardFileError",
    "default_states",
    "load_reward_file",
    "compile_source",
    "load_reward_source",
    "prepare_source",
    "synthetic_states",
]
