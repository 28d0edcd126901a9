"""Rewards as code: the reward contract, weighted term composition, and the sandboxed loader.

Untrusted (LLM-written) reward code goes through :mod:`rewardlab.rewards.sandbox` (static
allow-list, trial run in a limited child process, guarded compile) via
:mod:`rewardlab.rewards.loader`; Eureka and Text2Reward styles load through
:mod:`rewardlab.rewards.compat`. The LLM client (:mod:`.llm`) and the prompts (:mod:`.prompting`)
that write rewards live here too; the search that trains and ranks them is application code
(:mod:`rewardlab.search`).

The names below (``from rewardlab.rewards import RewardTerm, load_reward_file, ...``) are
loaded on first use, so that importing a light part of this package (the LLM client, the
prompts) does not load torch and the sandbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and readers of the import graph
    from rewardlab.core.reward import (
        RewardFn,
        RewardTerm,
        action_l2,
        action_rate_l2,
        alive,
        compose,
    )
    from rewardlab.rewards.loader import RewardFileError, load_reward_file, load_reward_source
    from rewardlab.rewards.sandbox import (
        CheckResult,
        RewardError,
        RewardRuntimeError,
        SandboxFailure,
        SandboxLimits,
        check_source,
        compile_reward,
        record_states,
        run_in_sandbox,
        sandbox_capabilities,
        trial_run,
    )

_EXPORTS = {
    "rewardlab.core.reward": (
        "RewardFn", "RewardTerm", "action_l2", "action_rate_l2", "alive", "compose",
    ),
    "rewardlab.rewards.loader": ("RewardFileError", "load_reward_file", "load_reward_source"),
    "rewardlab.rewards.sandbox": (
        "CheckResult", "RewardError", "RewardRuntimeError", "SandboxFailure", "SandboxLimits",
        "check_source", "compile_reward", "record_states", "run_in_sandbox",
        "sandbox_capabilities", "trial_run",
    ),
}  # fmt: skip
"""Module -> the names this package re-exports from it (the same as the block above)."""

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CheckResult",
    "RewardError",
    "RewardFileError",
    "RewardFn",
    "RewardRuntimeError",
    "RewardTerm",
    "SandboxFailure",
    "SandboxLimits",
    "action_l2",
    "action_rate_l2",
    "alive",
    "check_source",
    "compile_reward",
    "compose",
    "load_reward_file",
    "load_reward_source",
    "record_states",
    "run_in_sandbox",
    "sandbox_capabilities",
    "trial_run",
]


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its module on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
