"""The reward sandbox: untrusted reward code runs only in an OS-isolated process, for its
whole life, and only data comes back.

The pieces, one concern per module:

- :mod:`~rewardlab.rewards.boundary` -- the OS boundary: a bubblewrap container (own PID,
  network, mount, IPC, UTS namespaces; the Python installation and ``/usr`` read-only; one
  scratch ``/tmp``; cleared environment; ``nobody`` without capabilities); refuses with a
  clear message where the machine cannot provide it (``sandbox=none`` opts out);
- :mod:`~rewardlab.rewards.seccomp_filter` -- the seccomp filter (no ``execve``, ``ptrace``,
  mounts, sockets, new processes, ...) installed before the reward's code runs;
- :mod:`~rewardlab.rewards.limits` -- :class:`SandboxLimits` and the ``setrlimit`` calls;
- :mod:`~rewardlab.rewards.server` -- what runs inside: a host that forks one reward process
  at a time, and the reward process serving calls over shared memory;
- :mod:`~rewardlab.rewards.channel` -- the wire: bounded JSON frames, a sealed ``memfd``;
- :mod:`~rewardlab.rewards.remote` -- the trainer's side: :class:`RemoteReward`, the
  ``RewardFn`` proxy that checks every answer (shape, finite values, per-call timeout);
- :mod:`~rewardlab.rewards.trial` -- recorded states and the trial run;
- :mod:`~rewardlab.rewards.static_check` -- the AST allow-list (defence in depth);
- :mod:`~rewardlab.rewards.restricted` -- executing checked source with restricted builtins;
- :mod:`~rewardlab.rewards.guard` -- per-call checks of a reward function, in-process compile
  (for the reward process itself, and for trusted code with ``sandbox=none``);
- :mod:`~rewardlab.rewards.errors` -- :class:`RewardError` (bounded text) and the exceptions;
- :mod:`~rewardlab.rewards.worker` -- limited worker processes for trusted training jobs whose
  results come back as data (``torch.load(weights_only=True)``).

This module re-exports their public names. The threat model is ``docs/security.md``.
"""

from __future__ import annotations

from rewardlab.rewards.boundary import NONE_WARNING, SANDBOX_MODES, resolve_mode, unavailable_reason
from rewardlab.rewards.errors import (
    ERROR_KINDS,
    MAX_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    RewardError,
    RewardRuntimeError,
    SandboxFailure,
    SandboxUnavailable,
    UnknownStateError,
)
from rewardlab.rewards.guard import compile_reward, guard_reward, validate_output
from rewardlab.rewards.limits import DEFAULT_LIMITS, SandboxLimits
from rewardlab.rewards.restricted import (
    StateDict,
    candidate_traceback,
    classify_exception,
    exec_source,
    safe_globals,
    source_filename,
)
from rewardlab.rewards.static_check import (
    ALLOWED_MODULES,
    FORBIDDEN_NAMES,
    PRELUDE_NAMES,
    check_ast,
    check_source,
    find_function,
    parse_allowed,
    parse_source,
    positional_params,
    state_reads,
    unknown_name_error,
)
from rewardlab.rewards.trial import (  # fmt: skip
    SPEED_BATCH,
    CheckResult,
    evaluate_reward,
    record_states,
    trial_run,
)
from rewardlab.rewards.worker import _mp_context, run_in_sandbox, run_in_worker

_TRIVIAL = "def compute_reward(state, action):\n    return action.sum(-1) * 0.0, {}\n"


def sandbox_capabilities(limits: SandboxLimits = DEFAULT_LIMITS) -> list[str]:
    """What a reward process gets on this machine, e.g. ``["pid-namespace",
    "network-namespace", "read-only-mounts", "clear-environment", "user=nobody", "core=0",
    "cpu", "data", "address-space", "fsize", "nofile", "nproc", "seccomp", "no-exec",
    "no-sockets", "no-mount", "no-ptrace", "no-fork", "no-signals"]``.

    Raises:
        SandboxUnavailable: this machine cannot run the sandbox (the message says why).
    """
    from rewardlab.rewards.remote import RemoteReward

    resolve_mode("bwrap")
    with RemoteReward(_TRIVIAL, [], filename="<capabilities>", limits=limits) as r:
        uid = r.host.uid
        applied = list(r.applied)
    user = "user=nobody" if uid == 65534 else f"user={uid}"
    return ["pid-namespace", "network-namespace", "read-only-mounts", "clear-environment", user, *applied]  # fmt: skip


__all__ = [
    "ALLOWED_MODULES",
    "DEFAULT_LIMITS",
    "ERROR_KINDS",
    "FORBIDDEN_NAMES",
    "MAX_MESSAGE_CHARS",
    "MAX_TRACEBACK_CHARS",
    "NONE_WARNING",
    "PRELUDE_NAMES",
    "SANDBOX_MODES",
    "SPEED_BATCH",
    "CheckResult",
    "RewardError",
    "RewardRuntimeError",
    "SandboxFailure",
    "SandboxLimits",
    "SandboxUnavailable",
    "StateDict",
    "UnknownStateError",
    "_mp_context",
    "candidate_traceback",
    "check_ast",
    "check_source",
    "classify_exception",
    "compile_reward",
    "evaluate_reward",
    "exec_source",
    "find_function",
    "guard_reward",
    "parse_allowed",
    "parse_source",
    "positional_params",
    "record_states",
    "resolve_mode",
    "run_in_sandbox",
    "run_in_worker",
    "safe_globals",
    "sandbox_capabilities",
    "source_filename",
    "state_reads",
    "trial_run",
    "unavailable_reason",
    "unknown_name_error",
    "validate_output",
]
