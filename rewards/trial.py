"""Recorded states and the trial run: a reward is exercised before anyone trains on it.

:func:`trial_run` starts the reward in the sandbox (:class:`rewardlab.rewards.remote.
RemoteReward`) and calls it from here on every recorded state (chunks of 4096 worlds):
output structure, dtype, finite values, speed on a 4096-world batch, component statistics.
The checks run in *this* process on the data that came back, so the reward cannot fake them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rewardlab.rewards.errors import RewardError, SandboxFailure
from rewardlab.rewards.guard import _mutation_error, _versions, validate_output
from rewardlab.rewards.limits import DEFAULT_LIMITS, SandboxLimits
from rewardlab.rewards.restricted import StateDict, classify_exception, source_filename


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
    speed_batch: int = SPEED_BATCH,
) -> CheckResult:
    """Run the checks of :func:`trial_run` on an already built reward (in this process); the
    speed check times calls on ``speed_batch`` worlds (the batch the reward will be called
    with: an env's ``num_envs`` when the loader knows it, 4096 in a search's trial)."""
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
    big = _speed_batch({**states, "action": action_all}, speed_batch)
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
                f"one call on {speed_batch} worlds takes {ms:.1f} ms; the limit is "
                f"{max_ms_per_call:g} ms",
            ),
            names,
            ms,
            stats,
        )
    return CheckResult(True, None, names, ms, stats)


def _style_of(builder: Any, builder_args: tuple, states: Mapping[str, Any]) -> tuple[str, str | None, list[str], float, Any]:  # fmt: skip
    """``(style, task, state names, dt, constants)`` from
    :func:`rewardlab.rewards.loader.prepare_source`'s builder and arguments."""
    names = [k for k in states if k != "action"]
    if builder is None:
        return "native", None, names, 0.02, None
    from rewardlab.rewards import compat

    styles = {compat.build_eureka: "eureka", compat.build_dreureka: "dreureka", compat.build_text2reward: "text2reward"}  # fmt: skip
    if builder in styles:
        task, names_, *rest = builder_args
        dt = float(rest[0]) if rest else 0.02
        return styles[builder], task, list(names_), dt, rest[1] if len(rest) > 1 else None
    raise ValueError(f"unknown reward builder {builder!r}")


def trial_run(
    code: str,
    states: Mapping[str, torch.Tensor],
    limits: SandboxLimits = DEFAULT_LIMITS,
    *,
    builder: Callable[..., Any] | None = None,
    builder_args: tuple = (),
    filename: str | None = None,
    style: str | None = None,
    task: str | None = None,
    state_names: Collection[str] | None = None,
    control_dt: float = 0.02,
) -> CheckResult:
    """Exercise reward code on recorded states in the sandbox.

    The sandboxed reward process checks the source statically and executes it; this process
    calls it on every recorded state in chunks of 4096 worlds (output ``(total [N], {name:
    [N]})``, float dtype, finite values), collects min/mean/max per component, and times
    calls on a 4096-world batch against ``limits.max_ms_per_call``. The reward process has
    ``limits.cpu_seconds`` of CPU and the whole trial ``limits.wall_seconds`` of wall time
    (after the sandbox started). Never raises for bad code: the outcome is a
    :class:`CheckResult` whose ``error`` says what failed.

    Args:
        code: the reward source.
        states: recorded states with an ``"action"`` entry (:func:`record_states`).
        limits: limits of the reward process.
        builder, builder_args: the style's builder and arguments from
            :func:`rewardlab.rewards.loader.prepare_source` (``None``: native code), or
        style, task, state_names, control_dt: the same given directly.
        filename: name shown in tracebacks.
    """
    from rewardlab.rewards.remote import RemoteReward

    filename = filename or source_filename(code)
    t0 = time.perf_counter()
    constants = None
    if style is None:
        style, task, names, control_dt, constants = _style_of(builder, builder_args, states)
    else:
        names = list(state_names if state_names is not None else [k for k in states if k != "action"])  # fmt: skip
    try:
        reward = RemoteReward(
            code, names, style, task, control_dt,
            filename=filename, limits=limits, cpu_seconds=limits.cpu_seconds, check_finite=False,
            constants=constants,
        )  # fmt: skip
    except SandboxFailure as exc:
        result = CheckResult(False, exc.error)
    else:
        try:
            reward.deadline = time.monotonic() + limits.wall_seconds
            result = evaluate_reward(reward, states, filename, limits.max_ms_per_call)
        finally:
            reward.close()
    result.load_seconds = time.perf_counter() - t0
    return result


__all__ = ["SPEED_BATCH", "CheckResult", "evaluate_reward", "record_states", "trial_run"]
