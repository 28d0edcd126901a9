"""Rollout storage of the batched PPO: tensors ``[num_steps, num_envs, ...]`` and GAE.

Time limits are handled the rsl_rl way: on a ``truncated`` step the value of the observation the
episode ended on, ``V(final_obs)``, is added to that step's reward times ``gamma``; then
``terminated | truncated`` ends the episode for GAE, so nothing is bootstrapped across the reset.
Rewards are kept raw and the bootstrap term apart, so that a reward scale known only at the end
of the rollout (:class:`~rewardlab.agents.ppo.RewardNormalizer`) can be applied in
:meth:`RolloutStorage.compute_returns`.
What it cannot do: recurrent (sequence) minibatches, or more than one critic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """One minibatch, flat ``[B, ...]``."""

    obs: torch.Tensor
    """Normalized observations ``[B, obs_dim]`` the actions were taken on."""
    actions: torch.Tensor
    """Sampled (unclipped) actions ``[B, action_dim]``."""
    old_log_prob: torch.Tensor
    """Log-probability ``[B]`` of the actions under the rollout policy."""
    old_mean: torch.Tensor
    """Action mean ``[B, action_dim]`` of the rollout policy."""
    old_std: torch.Tensor
    """Action std ``[B, action_dim]`` of the rollout policy."""
    old_values: torch.Tensor
    """Value estimates ``[B]`` at collection time."""
    advantages: torch.Tensor
    """GAE advantages ``[B]`` (not normalized)."""
    returns: torch.Tensor
    """Value targets ``[B]`` = advantages + old values."""


@dataclass(frozen=True)
class Transition:
    """One step of every world, as :meth:`RolloutStorage.add` records it (``N`` worlds)."""

    obs: torch.Tensor
    """Normalized observations ``[N, obs_dim]`` the actions were chosen on."""
    actions: torch.Tensor
    """Sampled (unclipped) actions ``[N, action_dim]``."""
    log_prob: torch.Tensor
    """Their log-probabilities ``[N]`` under the acting policy."""
    mean: torch.Tensor
    """Action means ``[N, action_dim]``."""
    std: torch.Tensor
    """Action stds, ``[N, action_dim]`` or ``[action_dim]``."""
    value: torch.Tensor
    """``V(obs)`` ``[N]``."""
    reward: torch.Tensor
    """Rewards ``[N]`` of this step (raw: the reward scale is applied in ``compute_returns``)."""
    terminated: torch.Tensor
    """``[N]`` bool: the task ended (no bootstrap)."""
    truncated: torch.Tensor
    """``[N]`` bool: the time limit cut the episode (bootstrap ``gamma * V(final_obs)``)."""
    final_value: torch.Tensor | None = None
    """``V(final_obs)`` ``[N]``; only its rows where ``truncated`` are used. ``None`` means no
    world was truncated."""


class RolloutStorage:
    """Fixed-size buffer of one rollout, filled step by step, then read in shuffled minibatches.

    Args:
        num_envs: worlds ``N``.
        num_steps: steps per world per rollout ``T``.
        obs_dim: observation width.
        action_dim: action width.
        gamma: discount, used both for truncation bootstrapping and GAE.
        lam: GAE lambda.
        device: device of every buffer.
    """

    def __init__(
        self,
        num_envs: int,
        num_steps: int,
        obs_dim: int,
        action_dim: int,
        gamma: float,
        lam: float,
        device: str | torch.device = "cpu",
    ) -> None:
        self.num_envs, self.num_steps = num_envs, num_steps
        self.gamma, self.lam = float(gamma), float(lam)
        self.device = torch.device(device)
        t, n = num_steps, num_envs

        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(t, n, *shape, device=self.device)

        self.obs = z(obs_dim)
        self.actions = z(action_dim)
        self.log_probs = z()
        self.means = z(action_dim)
        self.stds = z(action_dim)
        self.values = z()
        self.rewards = z()
        self.bootstraps = z()
        self.dones = z()
        self.advantages = z()
        self.returns = z()
        self.step = 0

    def add(self, step: Transition) -> None:
        """Record one step of every world.

        Raises:
            OverflowError: more than ``num_steps`` steps added since :meth:`clear`.
        """
        if self.step >= self.num_steps:
            raise OverflowError(f"rollout storage is full ({self.num_steps} steps); call clear()")
        i = self.step
        self.obs[i].copy_(step.obs)
        self.actions[i].copy_(step.actions)
        self.log_probs[i].copy_(step.log_prob)
        self.means[i].copy_(step.mean)
        self.stds[i].copy_(step.std.expand_as(step.mean))
        self.values[i].copy_(step.value)
        self.rewards[i].copy_(step.reward)
        if step.final_value is not None:
            truncated = step.truncated.to(step.final_value.dtype)
            self.bootstraps[i].copy_(self.gamma * step.final_value * truncated)
        else:
            self.bootstraps[i].zero_()
        self.dones[i].copy_((step.terminated | step.truncated).to(self.dones.dtype))
        self.step += 1

    def compute_returns(
        self,
        last_value: torch.Tensor,
        reward_scale: float | torch.Tensor = 1.0,
        reward_clip: float = math.inf,
    ) -> None:
        """GAE over the filled rollout.

        Args:
            last_value: ``V`` of the observation after the rollout ``[N]``.
            reward_scale: rewards are multiplied by this (then clipped to ``+-reward_clip``)
                before the truncation bootstrap ``gamma * V(final_obs)`` is added.
            reward_clip: bound of the scaled rewards.
        """
        adv = torch.zeros_like(last_value)
        next_value = last_value
        rewards = self.rewards[: self.step] * reward_scale
        if math.isfinite(reward_clip):
            rewards = rewards.clamp(-reward_clip, reward_clip)
        rewards = rewards + self.bootstraps[: self.step]
        for t in reversed(range(self.step)):
            not_done = 1.0 - self.dones[t]
            delta = rewards[t] + self.gamma * next_value * not_done - self.values[t]
            adv = delta + self.gamma * self.lam * not_done * adv
            self.advantages[t] = adv
            next_value = self.values[t]
        self.returns[: self.step] = self.advantages[: self.step] + self.values[: self.step]

    def clear(self) -> None:
        """Start a new rollout (buffers are overwritten, not freed)."""
        self.step = 0

    def minibatches(
        self, num_minibatches: int, num_epochs: int, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Yield ``num_epochs * num_minibatches`` shuffled minibatches of the filled rollout.

        Each epoch is a fresh permutation drawn from ``generator``; a remainder of
        ``T * N % num_minibatches`` samples is left out of that epoch.
        """
        total = self.step * self.num_envs
        size = total // num_minibatches
        if size < 1:
            raise ValueError(f"{total} samples cannot fill {num_minibatches} minibatches")
        flat = {
            "obs": self.obs[: self.step].flatten(0, 1),
            "actions": self.actions[: self.step].flatten(0, 1),
            "old_log_prob": self.log_probs[: self.step].flatten(),
            "old_mean": self.means[: self.step].flatten(0, 1),
            "old_std": self.stds[: self.step].flatten(0, 1),
            "old_values": self.values[: self.step].flatten(),
            "advantages": self.advantages[: self.step].flatten(),
            "returns": self.returns[: self.step].flatten(),
        }
        for _ in range(num_epochs):
            perm = torch.randperm(
                total, generator=generator, device=generator.device if generator else "cpu"
            )
            perm = perm.to(self.device)
            for k in range(num_minibatches):
                idx = perm[k * size : (k + 1) * size]
                yield Batch(**{name: v[idx] for name, v in flat.items()})
