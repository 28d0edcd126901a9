"""Rewards as code: the reward contract, weighted term composition, and the sandboxed loader.

Untrusted (LLM-written) reward code goes through :mod:`rewardlab.rewards.sandbox` (static
allow-list, trial run in a limited child process, guarded compile) via
:mod:`rewardlab.rewards.loader`; Eureka and Text2Reward styles load through
:mod:`rewardlab.rewards.compat`.
"""

from rewardlab.core.reward import RewardFn, RewardTerm, action_l2, action_rate_l2, alive, compose
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
