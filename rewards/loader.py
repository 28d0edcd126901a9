"""Load reward code: detect its style, check it statically, trial-run it in a sandbox, compile it.

``rewardlab train task=cartpole_balance reward=code:my_reward.py`` goes through
:func:`load_reward_file`; the reward search goes through :func:`load_reward_source`. Both accept
three styles (see :mod:`rewardlab.rewards.compat`):

- ``native``: ``compute_reward(state, action) -> (total [N], {name: [N]})`` over ``env.state()``;
- ``eureka``: IsaacGymEnvs/Eureka ``compute_reward(root_states, actions, ...)`` with arguments
  bound by name (``@torch.jit.script`` accepted, run eagerly);
- ``text2reward``: ``compute_dense_reward(self, action) -> float`` on one world, vectorized.

Steps: static check (allow-list, signature, names) -> trial run on recorded states in a
limited child process (shape, dtype, finite, speed) -> compile in this process, wrapped with
per-call checks. Any failure raises :class:`rewardlab.rewards.sandbox.SandboxFailure` whose
``error`` is a :class:`RewardError`; :func:`load_reward_file` raises :class:`RewardFileError`
naming the file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from rewardlab.core.reward import RewardFn
from rewardlab.rewards.sandbox import (
    DEFAULT_LIMITS,
    RewardError,
    SandboxFailure,
    SandboxLimits,
    check_source,
    compile_reward,
    guard_reward,
    record_states,
    source_filename,
    trial_run,
)

STYLES = ("auto", "native", "eureka", "text2reward")
"""Values of ``style``."""

_STATES_CACHE: dict[tuple[str, int], dict[str, torch.Tensor]] = {}


class RewardFileError(SandboxFailure, ValueError):
    """A reward file could not be loaded; ``str()`` names the file and the failed check."""

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

    Returns:
        ``(style, builder, builder_args)``: the resolved style, and the picklable ``builder`` for
        :func:`rewardlab.rewards.sandbox.trial_run` (``None`` for native code) with its extra
        arguments.

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
        err = compat.check_eureka(code, task, names)
        builder, builder_args = compat.build_eureka, (task, tuple(names), float(control_dt))
    else:
        err = compat.check_text2reward(code, task, names)
        builder, builder_args = compat.build_text2reward, (task, tuple(names))
    if err:
        raise SandboxFailure(err)
    return style, builder, builder_args


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
) -> RewardFn:
    """Check and compile reward source of any style in this process, without a trial run.

    Call it only after a trial run of the same source passed (module-level code runs here); the
    reward search's training workers use it. Arguments as :func:`prepare_source` and
    :func:`load_reward_source`.

    Returns:
        ``compute_reward(state, action)`` with per-call checks
        (:func:`rewardlab.rewards.sandbox.guard_reward`) and ``.source``/``.style`` attributes.

    Raises:
        SandboxFailure: the static check failed or building the function raised.
    """
    style, builder, builder_args = prepare_source(code, state_names, task, control_dt, style)
    filename = filename or source_filename(code)
    return _build(
        code, state_names, style, builder, builder_args, filename, check_finite, check_every
    )


def _build(
    code: str,
    state_names: Collection[str],
    style: str,
    builder: Any,
    builder_args: tuple,
    filename: str,
    check_finite: bool,
    check_every: int,
) -> RewardFn:
    """Compile checked source of ``style`` (``builder`` from :func:`prepare_source`) in this
    process, wrapped with the per-call checks, with ``.source`` and ``.style`` attributes."""
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
        except Exception as exc:  # module-level code raised here but not in the child
            from rewardlab.rewards.sandbox import classify_exception

            raise SandboxFailure(classify_exception(exc, filename)) from exc
        fn = guard_reward(raw, filename, check_finite=check_finite, check_every=check_every)
    fn.source = code  # type: ignore[attr-defined]
    fn.style = style  # type: ignore[attr-defined]
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
) -> RewardFn:
    """Check, trial-run and compile reward source for an env.

    Args:
        code: the reward source (any of :data:`STYLES` but ``auto``).
        env_or_state_spec: the env the reward is for (its ``state_spec()``, task name and
            ``control_dt`` are used and, when ``states`` is not given, its task is run with
            random actions to record states), or a ``state_spec()`` mapping, or state names.
        style: ``auto`` (see :func:`rewardlab.rewards.compat.detect_style`) or a style.
        limits: limits of the trial run.
        states: recorded states with ``"action"`` for the trial run; default: recorded from the
            env's task, or standard-normal values of the spec's shapes if there is no env.
        task: task name for the compatibility maps when ``env_or_state_spec`` is not an env.
        filename: shown in tracebacks and errors (the file's path).
        check_finite: include "the total is finite" in the output checks.
        check_every: after the first ``check_every`` calls, check every ``check_every``-th
            call's output (:func:`rewardlab.rewards.sandbox.guard_reward`; 1: every call).

    Returns:
        ``compute_reward(state, action) -> (total, components)`` with ``.source``, ``.style``
        and ``.check`` (the :class:`CheckResult` of the trial run) attributes.

    Raises:
        SandboxFailure: a check failed; ``error`` is the :class:`RewardError`.
        ValueError: unknown ``style``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown reward style {style!r}; allowed: {', '.join(STYLES)}")
    names, env_task, dt, env = _spec_of(env_or_state_spec)
    task = task or env_task
    filename = filename or source_filename(code)
    style, builder, builder_args = prepare_source(code, names, task, dt, style)

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
    result = trial_run(
        code, states, limits, builder=builder, builder_args=builder_args, filename=filename
    )
    if not result.ok:
        assert result.error is not None
        raise SandboxFailure(result.error)

    fn = _build(code, names, style, builder, builder_args, filename, check_finite, check_every)
    fn.check = result  # type: ignore[attr-defined]
    return fn


def load_reward_file(
    path: str | Path,
    env: Any,
    style: str = "auto",
    limits: SandboxLimits = DEFAULT_LIMITS,
) -> RewardFn:
    """Load a reward file for ``env`` (``rewardlab train reward=code:<file.py>``).

    Raises:
        RewardFileError: the file is missing, unreadable or its reward fails a check; the
            message names the file (and line) and what was expected.
    """
    p = Path(path)
    try:
        code = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RewardFileError(p, RewardError("no_code", "no such file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RewardFileError(p, RewardError("no_code", f"cannot read the file: {exc}")) from None
    try:
        return load_reward_source(code, env, style, limits, filename=str(p))
    except RewardFileError:
        raise
    except SandboxFailure as exc:
        raise RewardFileError(p, exc.error) from None


__all__ = [
    "STYLES",
    "RewardFileError",
    "default_states",
    "load_reward_file",
    "compile_source",
    "load_reward_source",
    "prepare_source",
    "synthetic_states",
]
