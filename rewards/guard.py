"""Per-call checks of a reward function, and compiling trusted reward source in-process.

:func:`guard_reward` wraps a reward ``fn(state, action)``: exceptions become structured
:class:`RewardRuntimeError` errors naming the reward file and line, and the output's structure
(``(total [N] float, {name: [N] float})``), finiteness and the inputs' version counters are
checked. It runs inside the sandboxed reward process (:mod:`rewardlab.rewards.server`), where
it gives honest rewards precise messages; the caller's own checks on the data that comes back
(:mod:`rewardlab.rewards.remote`) are the ones an attacker cannot bypass.

:func:`compile_reward` executes source in *this* process: only for code the user trusts
(``sandbox=none``) and inside the sandboxed reward process.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch

from rewardlab.core.reward import RewardFn
from rewardlab.rewards.errors import RewardError, RewardRuntimeError, SandboxFailure
from rewardlab.rewards.restricted import (
    candidate_traceback,
    classify_exception,
    exec_source,
    source_filename,
)
from rewardlab.rewards.static_check import check_source


def with_file(err: RewardError, filename: str) -> RewardError:
    """``err`` naming ``filename`` when it names no file yet."""
    return err if err.file else dataclasses.replace(err, file=filename)


def validate_output(out: Any, n: int) -> RewardError | None:
    """Check ``(total [n] float, {name: [n] float})``; finite values are checked elsewhere."""
    if not (isinstance(out, tuple | list) and len(out) == 2):
        return RewardError(
            "shape",
            f"returned {type(out).__name__}; expected a tuple (total, components)",
        )
    total, comps = out
    items = [("total", total)]
    if not isinstance(comps, dict):
        return RewardError(
            "shape", f"components is a {type(comps).__name__}; expected a dict of name -> [N]"
        )
    items += list(comps.items())
    for name, value in items:
        if not isinstance(name, str):
            return RewardError("shape", f"component name {name!r} is not a string")
        if not isinstance(value, torch.Tensor):
            return RewardError(
                "shape",
                f"{name} is a {type(value).__name__}; expected a torch tensor of shape [{n}]",
            )
        if tuple(value.shape) != (n,):
            return RewardError(
                "shape",
                f"{name} has shape {list(value.shape)}; expected [{n}] (one value per world)",
            )
        if not value.dtype.is_floating_point:
            return RewardError("dtype", f"{name} has dtype {value.dtype}; expected a float dtype")
    return None


def _runtime_error(exc: BaseException, state: Mapping[str, Any], filename: str) -> RewardError:
    """Classify an exception of a guarded call; a ``KeyError`` of a missing state entry becomes
    ``unknown_state`` listing the known names (the state is not copied into a
    :class:`StateDict` per call: that would cost more than the check)."""
    if type(exc) is KeyError and exc.args and isinstance(exc.args[0], str):
        key = exc.args[0]
        if key not in state:
            text, line = candidate_traceback(exc, filename)
            known = ", ".join(sorted(map(str, state)))
            return RewardError(
                "unknown_state", f"state has no entry {key!r}; known: {known}", line, text, filename
            )
    return classify_exception(exc, filename)


def _versions(state: Mapping[str, Any], action: torch.Tensor) -> list[int] | None:
    """Version counters of the state's tensors and the action (``None``: not tracked, e.g.
    inference tensors, which refuse in-place updates outside inference mode anyway)."""
    try:
        return [t._version for t in state.values()] + [action._version]
    except (AttributeError, RuntimeError):
        return None


def _mutation_error(
    before: list[int] | None, state: Mapping[str, Any], action: torch.Tensor
) -> RewardError | None:
    after = _versions(state, action) if before is not None else None
    if before is None or after is None or after == before:
        return None
    names = [*state, "action"]
    changed = [n for n, b, a in zip(names, before, after, strict=True) if a != b]
    return RewardError(
        "forbidden",
        f"the reward modified its input in place ({', '.join(changed)}); compute new tensors "
        "instead of writing into the state or the action (no +=, [...] =, or *_() methods on them)",
    )


def guard_reward(
    fn: Callable[..., Any],
    filename: str,
    *,
    check_finite: bool = True,
    check_every: int = 16,
) -> RewardFn:
    """Wrap a candidate ``fn(state, action)`` with the per-call checks of :func:`compile_reward`.

    Complete checks -- the output is ``(tensor, dict)`` with a floating ``[N]`` total and
    floating components of the same shape, and (``check_finite``) every value of the total is
    finite -- run on each of the first ``check_every`` calls and then on every
    ``check_every``-th call, so that a loaded reward costs about as much as the function itself
    (benchmarks/sandbox_overhead.py). Exceptions are caught on every call. A NaN that appears
    only between two checked calls is not seen here; PPO's runner then stops on the non-finite
    loss it causes. ``check_every=1`` checks every call.

    After the first calls, the checked calls are drawn at random (probability
    ``1 / check_every``, from an unseeded generator), so a reward cannot time its misbehaviour
    between checks. Checked calls also verify, through the tensors' version counters, that the
    reward did not modify the state or the action in place (kind ``forbidden``); the reward
    gets a copy of the state dict, so adding or removing entries never reaches the env.
    """
    every = max(1, int(check_every))
    calls = 0
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))

    def complete_check(out: Any, action: torch.Tensor) -> RewardError | None:
        try:
            total, comps = out
            shape = total.shape
            ok = (
                shape == action.shape[:1]
                and total.is_floating_point()
                and type(comps) is dict
                and all(v.shape == shape and v.is_floating_point() for v in comps.values())
            )
        except (TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            return validate_output(out, action.shape[0]) or RewardError("shape", "bad output")
        # a sum is NaN/inf iff some value is (or, rarely, it overflows): ~20x cheaper on the CPU
        # than isfinite().all(); the exact count only runs when the sum is not finite
        if check_finite and not math.isfinite(total.sum().item()):
            finite = torch.isfinite(total)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                return RewardError(
                    "nan", f"total is NaN or infinite in {bad} of {shape[0]} worlds (call {calls})"
                )
        return None

    def compute_reward(
        state: Mapping[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nonlocal calls
        calls += 1
        check = calls <= every or rng.random() * every < 1.0
        before = _versions(state, action) if check else None
        try:
            out = fn(dict(state), action)  # a plain dict: the fastest lookups
        except Exception as exc:
            raise RewardRuntimeError(_runtime_error(exc, state, filename)) from exc
        if check:
            err = complete_check(out, action) or _mutation_error(before, state, action)
            if err:
                raise RewardRuntimeError(with_file(err, filename))
        return out

    compute_reward.filename = filename  # type: ignore[attr-defined]
    compute_reward.__wrapped__ = fn  # type: ignore[attr-defined]
    return compute_reward


def compile_reward(
    code: str,
    state_names: Collection[str],
    *,
    entry: str = "compute_reward",
    filename: str | None = None,
    check_finite: bool = True,
    check_every: int = 16,
) -> RewardFn:
    """Statically check and compile a native reward in this process.

    Call it only after :func:`trial_run` passed (top-level assignments run here).

    Args:
        code: source defining ``entry(state, action) -> (total [N], {name: [N]})``.
        state_names: the task's state entries.
        entry: name of the reward function.
        filename: name shown in tracebacks (the file's path; default ``<reward-hash>``).
        check_finite: include "the total is finite" in the output checks.
        check_every: after the first ``check_every`` calls, check every ``check_every``-th
            call's output (see :func:`guard_reward`; 1 checks every call).

    Returns:
        ``compute_reward(state, action)`` that raises :class:`RewardRuntimeError` (a
        :class:`SandboxFailure`) if the candidate raises, returns a wrong shape or dtype, or a
        non-finite total; reading an unknown state entry is such an exception (kind
        ``unknown_state``).

    Raises:
        SandboxFailure: the static check failed, or executing the module raised.
    """
    err = check_source(code, state_names, entry=entry)
    if err:
        raise SandboxFailure(err)
    filename = filename or source_filename(code)
    try:
        namespace = exec_source(code, filename)
    except Exception as exc:
        raise SandboxFailure(classify_exception(exc, filename)) from exc
    fn = guard_reward(
        namespace[entry], filename, check_finite=check_finite, check_every=check_every
    )
    fn.source = code  # type: ignore[attr-defined]
    fn.style = "native"  # type: ignore[attr-defined]
    return fn


__all__ = ["compile_reward", "guard_reward", "validate_output", "with_file"]
