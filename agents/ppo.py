"""PPO, the algorithm (rsl_rl-style): acting, storing, GAE and the clipped update.

One :class:`PPO` object owns the :class:`~rewardlab.agents.networks.ActorCritic`, the Adam
optimizer, the learning-rate schedule and the :class:`~rewardlab.agents.storage.RolloutStorage`.
The runner (:mod:`rewardlab.agents.runner`) drives it: ``act`` -> env step -> ``process_env_step``
for ``num_steps`` steps, then ``compute_returns`` and ``update``. Loss terms are computed by
:func:`ppo_losses`, a pure function, so they can be checked on hand-made numbers.

Multi-GPU training (one process per GPU) is :mod:`rewardlab.agents.distributed`, which sets
:attr:`PPO.dist` so that gradients and the KL that drives the learning rate are averaged over
processes. What it cannot do: recurrent policies, asymmetric critics, or discrete actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.networks import ActorCritic, EmpiricalNormalization
from rewardlab.agents.storage import RolloutStorage


@dataclass
class Losses:
    """The terms of one PPO minibatch loss (``total`` is what is minimized)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_losses(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_ratio: float,
    clip_value: bool,
    value_coef: float,
    entropy_coef: float,
) -> Losses:
    """The clipped PPO objective on one minibatch (advantages already normalized if wanted).

    ``policy = mean(max(-A r, -A clip(r, 1-e, 1+e)))`` with ``r = exp(log_prob - old_log_prob)``;
    ``value = mean(max((V - R)^2, (V_old + clip(V - V_old, -e, e) - R)^2))`` when ``clip_value``,
    else ``mean((V - R)^2)``; ``total = policy + value_coef * value - entropy_coef * entropy``.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    surrogate = -advantages * ratio
    surrogate_clipped = -advantages * ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio)
    policy = torch.max(surrogate, surrogate_clipped).mean()
    if clip_value:
        clipped = old_values + (values - old_values).clamp(-clip_ratio, clip_ratio)
        value = torch.max((values - returns).square(), (clipped - returns).square()).mean()
    else:
        value = (values - returns).square().mean()
    total = policy + value_coef * value - entropy_coef * entropy
    clip_fraction = ((ratio - 1.0).abs() > clip_ratio).float().mean()
    return Losses(total, policy, value, entropy, clip_fraction.detach())


def gaussian_kl(
    old_mean: torch.Tensor, old_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """``KL(N(old) || N(new))`` per sample ``[B]``, summed over action dimensions."""
    return (
        torch.log(std / old_std)
        + (old_std.square() + (old_mean - mean).square()) / (2.0 * std.square())
        - 0.5
    ).sum(-1)


class RewardNormalizer(nn.Module):
    """Scales rewards by the inverse running std of each world's discounted return (SB3's
    ``VecNormalize``), so that PPO does not depend on the reward's scale (an LLM-written reward
    may be in any units): values and advantages then live around unit scale. Rewards are not
    centered, so their signs are kept.

    Per step, :meth:`track` advances the per-world running return; once per rollout,
    :meth:`update` merges the returns seen into the statistics, and :meth:`scale` is the factor
    for that rollout's rewards. Its buffers (running returns, statistics) are checkpointed, so a
    resumed run scales rewards exactly as a straight run does.

    Args:
        num_envs: worlds.
        gamma: discount of the running return.
        clip: bound of the scaled rewards (SB3: 10).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.stats = EmpiricalNormalization((), eps=1e-8)
        self.register_buffer("ret", torch.zeros(num_envs))

    @torch.no_grad()
    def track(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Advance the running returns by one step; returns them ``[N]`` (before done resets)."""
        self.ret.mul_(self.gamma).add_(reward)
        out = self.ret.clone()
        self.ret.masked_fill_(done, 0.0)
        return out

    def update(self, returns: torch.Tensor) -> None:
        """Merge running returns (any shape) into the statistics."""
        self.stats.update(returns)

    def scale(self) -> torch.Tensor:
        """The factor rewards are multiplied by, a scalar tensor: ``1 / std(return)``."""
        return 1.0 / self.stats.std


def _dist() -> Any:
    from rewardlab.agents import distributed

    return distributed


def _adam(module: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, fused (one kernel for all parameters) where torch supports it on ``device``."""
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(module.parameters(), lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(module.parameters(), lr=lr)


class PPO:
    """Proximal policy optimization over a batched env.

    Args:
        policy: the actor-critic (moved to ``device``).
        cfg: hyper-parameters.
        num_envs: worlds per rollout.
        device: device of the networks and the storage.
        generator: random source of action noise and minibatch shuffling (on ``device``);
            a fresh unseeded one when ``None``.
    """

    def __init__(
        self,
        policy: ActorCritic,
        cfg: PPOConfig,
        num_envs: int,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.optimizer = _adam(self.policy, cfg.learning_rate, self.device)
        self.learning_rate = cfg.learning_rate
        self.generator = generator or torch.Generator(device=self.device)
        self.reward_normalizer = RewardNormalizer(num_envs, cfg.gamma).to(self.device)
        self.storage = RolloutStorage(
            num_envs, cfg.num_steps, policy.obs_dim, policy.action_dim, cfg.gamma, cfg.lam, device
        )
        # What the normalizers learn from, merged once per rollout in compute_returns().
        t, n = cfg.num_steps, num_envs
        self._raw_obs = torch.zeros(t, n, policy.obs_dim, device=self.device)
        self._returns = torch.zeros(t, n, device=self.device)
        self._pending: tuple[torch.Tensor, ...] | None = None
        self.dist: Any = None
        """A ``rewardlab.agents.distributed.DistContext`` in a multi-process run, else ``None``."""

    # -- rollout ---------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sample actions ``[N, A]`` for raw observations ``[N, obs_dim]``.

        The transition is completed by :meth:`process_env_step` after the env step. The
        observation statistics stay fixed during a rollout (updated in :meth:`compute_returns`).
        """
        self._raw_obs[self.storage.step].copy_(obs)
        nobs = self.policy.normalize(obs)
        mean, value = self.policy(nobs)
        std = self.policy.action_std.expand_as(mean)
        noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
        actions = mean + std * noise
        log_prob = self.policy.log_prob(mean, actions)
        self._pending = (nobs, actions, log_prob, mean, std, value)
        return actions

    @torch.no_grad()
    def process_env_step(
        self,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_obs: torch.Tensor | None,
    ) -> None:
        """Store the pending transition; bootstraps ``V(final_obs)`` into truncated rewards.

        ``final_obs`` (raw, ``[N, obs_dim]``) is evaluated only when some world was truncated,
        which costs one host sync per step on a GPU (the env already syncs on its resets).
        """
        if self._pending is None:
            raise RuntimeError("process_env_step() without a preceding act()")
        if self.cfg.normalize_rewards:
            self._returns[self.storage.step] = self.reward_normalizer.track(
                reward, terminated | truncated
            )
        final_value = None
        if final_obs is not None and bool(truncated.any()):
            final_value = self.policy.value(self.policy.normalize(final_obs))
        self.storage.add(*self._pending, reward, terminated, truncated, final_value)
        self._pending = None

    @torch.no_grad()
    def compute_returns(self, last_obs: torch.Tensor) -> None:
        """End the rollout: update the normalizers with it, then GAE with ``V(last_obs)``.

        ``last_obs`` are the raw observations after the rollout. The reward statistics include
        this rollout before its rewards are scaled; the observation statistics change after
        (the stored observations keep the normalization they were acted on).
        """
        steps = self.storage.step
        last_value = self.policy.value(self.policy.normalize(last_obs))
        scale: float | torch.Tensor = 1.0
        clip = math.inf
        if self.cfg.normalize_rewards:
            self.reward_normalizer.update(self._returns[:steps])
            scale, clip = self.reward_normalizer.scale(), self.reward_normalizer.clip
        self.storage.compute_returns(last_value, scale, clip)
        self.policy.update_normalizer(self._raw_obs[:steps].flatten(0, 1))

    # -- update ----------------------------------------------------------------------------------

    def update(self, progress: float = 0.0) -> dict[str, float]:
        """Epochs of minibatch gradient steps on the stored rollout, then clear it.

        Args:
            progress: fraction of training done in ``[0, 1]``, for the ``linear`` schedule.

        Returns:
            Means over minibatches: ``losses/value``, ``losses/policy``, ``losses/entropy``,
            ``losses/approx_kl``, ``losses/clip_fraction``, plus ``charts/learning_rate`` and
            ``charts/action_std`` after the update.
        """
        cfg = self.cfg
        if cfg.schedule == "linear":
            self._set_lr(cfg.learning_rate * max(1.0 - progress, 0.0))
        sums = torch.zeros(5, device=self.device)
        n = 0
        for batch in self.storage.minibatches(cfg.num_minibatches, cfg.num_epochs, self.generator):
            mean, values = self.policy(batch.obs)
            log_prob = self.policy.log_prob(mean, batch.actions)
            std = self.policy.action_std.expand_as(mean)
            with torch.no_grad():
                kl = gaussian_kl(batch.old_mean, batch.old_std, mean, std).mean()
                if self.dist is not None:
                    kl = _dist().all_reduce_mean(kl)
            if cfg.schedule == "adaptive":
                # rsl_rl's rule, applied before this minibatch's step; .item() is one sync.
                kl_value = kl.item()
                if kl_value > cfg.desired_kl * 2.0:
                    self._set_lr(max(cfg.min_learning_rate, self.learning_rate / 1.5))
                elif 0.0 < kl_value < cfg.desired_kl / 2.0:
                    self._set_lr(min(cfg.max_learning_rate, self.learning_rate * 1.5))
            adv = batch.advantages
            if cfg.normalize_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            losses = ppo_losses(
                log_prob,
                batch.old_log_prob,
                adv,
                values,
                batch.old_values,
                batch.returns,
                self.policy.entropy(),
                cfg.clip_ratio,
                cfg.clip_value,
                cfg.value_coef,
                cfg.entropy_coef,
            )
            self.optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            if self.dist is not None:
                _dist().average_gradients(self.policy)
            nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            with torch.no_grad():
                sums += torch.stack(
                    [losses.value, losses.policy, losses.entropy, kl, losses.clip_fraction]
                )
            n += 1
        self.storage.clear()
        means = (sums / max(n, 1)).tolist()
        keys = ("value", "policy", "entropy", "approx_kl", "clip_fraction")
        out = {f"losses/{k}": v for k, v in zip(keys, means, strict=True)}
        out["charts/learning_rate"] = self.learning_rate
        out["charts/action_std"] = float(self.policy.action_std.detach().mean())
        return out

    def _set_lr(self, lr: float) -> None:
        self.learning_rate = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
