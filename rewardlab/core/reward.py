"""The reward contract: rewards as weighted terms (Isaac Lab's ``RewardTermCfg(func, weight, params)``).

Tasks (``rewardlab.envs``) implement it and reward code (``rewardlab.rewards``) fulfils it, so
it lives in this leaf module, which imports nothing from the rest of RewardLab.

A term is a plain function ``func(state, action, **params) -> Tensor [N]`` of the task's state
batch (see ``BatchedEnv.state_spec``) and the action ``[N, action_dim]`` in ``[-1, 1]``. Weights
live in config, never in the function. :func:`compose` turns named terms into a reward with the
contract of ``docs/design.md``::

    compute_reward(state, action) -> (total [N], {name: weighted term [N]})

The components returned are the weighted contributions, so they add up to the total and are
logged as ``reward/<name>``.

A component whose name starts with :data:`SIGNAL_PREFIX` is not a reward term but a per-world
signal to the env (:func:`split_signals`): ``signal/terminate`` (> 0.5 ends that world's
episode as terminated; the simulator backends honour it, e.g. the reset tensor of an
IsaacGymEnvs reward) and any other ``signal/<name>`` (recorded: its value on each finished
episode's last step goes to ``info["episode"]["signal/<name>"]``, e.g. ``signal/success``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

State = Mapping[str, torch.Tensor]
RewardFn = Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


SIGNAL_PREFIX = "signal/"
"""Components named ``signal/<name>`` are signals to the env, not reward terms."""
TERMINATE = "signal/terminate"
"""A signal > 0.5 ends the world's episode as terminated (besides the task's own terminations)."""
SUCCESS = "signal/success"
"""The reward's own success measure (recorded beside the task's success, not used for it)."""


def split_signals(
    components: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(terms, signals)``: the reward terms and the ``signal/...`` components of a reward."""
    terms = {k: v for k, v in components.items() if not k.startswith(SIGNAL_PREFIX)}
    if len(terms) == len(components):
        return terms, {}
    return terms, {k: v for k, v in components.items() if k.startswith(SIGNAL_PREFIX)}


@dataclass(frozen=True)
class RewardTerm:
    """One weighted reward term."""

    func: Callable[..., torch.Tensor]
    """``func(state, action, **params) -> [N]``; pure, batched, no side effects."""
    weight: float = 1.0
    """Multiplies the term; negative for penalties. A zero weight skips the term."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments bound to ``func``."""


def compose(terms: Mapping[str, RewardTerm]) -> RewardFn:
    """Build ``compute_reward(state, action) -> (total, components)`` from named terms.

    Terms with weight 0 are not evaluated. Each component is ``weight * func(...)``.
    """
    active = {name: t for name, t in terms.items() if t.weight != 0.0}

    def compute_reward(
        state: State, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        components = {
            name: t.weight * t.func(state, action, **t.params) for name, t in active.items()
        }
        if components:
            total = torch.stack(list(components.values())).sum(0)
        else:
            total = torch.zeros(action.shape[0], device=action.device)
        return total, components

    compute_reward.terms = dict(active)  # type: ignore[attr-defined]
    return compute_reward


# ---------------------------------------------------------------------------------------------
# Generic terms shared by tasks. Task-specific terms live next to their task.


def action_l2(state: State, action: torch.Tensor) -> torch.Tensor:
    """Squared norm of the action, ``[N]`` (penalize with a negative weight)."""
    return (action * action).sum(-1)


def action_rate_l2(state: State, action: torch.Tensor) -> torch.Tensor:
    """Squared change of the action since the previous control step, ``[N]``."""
    delta = action - state["prev_action"]
    return (delta * delta).sum(-1)


def alive(state: State, action: torch.Tensor) -> torch.Tensor:
    """Constant 1 per step: pays for not having terminated."""
    return torch.ones(action.shape[0], device=action.device)
