"""PPO, the algorithm (rsl_rl-style): acting, storing, GAE and the clipped update.

One :class:`PPO` object owns the :class:`~rewardlab.agents.networks.ActorCritic`, the Adam
optimizer, the learning-rate schedule and the :class:`~rewardlab.agents.storage.RolloutStorage`.
The runner (:mod:`rewardlab.agents.runner`) drives it: ``act`` -> env step -> ``process_env_step``
for ``num_steps`` steps, then ``compute_returns`` and ``update``. Loss terms are computed by
:func:`ppo_losses`, a pure function, so they can be checked on hand-made numbers.

How far one update may move the policy is bounded in KL (see :meth:`PPO.update`). The
``adaptive`` schedule keeps rsl_rl's rule (``lr / 1.5`` when the KL is over twice its target,
``* 1.5`` under half of it, checked before every minibatch step) but paces the target with the
update's progress: after ``k`` of the update's ``K`` steps the KL should be about
``desired_kl * k / K``, not already ``desired_kl``. rsl_rl compares every reading with the whole
``desired_kl``: the first minibatches of every update read a KL near 0 (the policy has barely
moved), so the rate was raised on each of them, climbed back to ``max_learning_rate`` at the
start of nearly every update, and was braked only after the KL had overshot. Measured here with
that rule: the KL of an update was over ``2 * desired_kl`` in 99% of Ant's updates (median 2.7x)
and reached 6.5x on cart-pole, where the action std shrinks to 0.07 by the end of training and
the same step moves the policy ~1/std^2 further in KL; the reporter's cart-pole ended on an
update of 10x and lost a fifth of its success. On top, an update stops early once the KL exceeds
``kl_stop_ratio * desired_kl`` (SB3's ``target_kl``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.networks import ActorCritic, EmpiricalNormalization
from rewardlab.agents.storage import RolloutStorage, Transition


@dataclass
class Losses:
    """The terms of one PPO minibatch loss (``total`` is what is minimized)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    clip_fraction: torch.Tensor


@dataclass(frozen=True)
class LossInputs:
    """What :func:`ppo_losses` needs of one minibatch, ``[B]`` each (``entropy`` a scalar)."""

    log_prob: torch.Tensor
    """Log-probability of the stored actions under the policy being trained."""
    old_log_prob: torch.Tensor
    """Their log-probability under the rollout policy."""
    advantages: torch.Tensor
    """Advantages (already normalized if wanted)."""
    values: torch.Tensor
    """Value predictions of the critic being trained."""
    old_values: torch.Tensor
    """Value predictions at collection time."""
    returns: torch.Tensor
    """Value targets."""
    entropy: torch.Tensor
    """Entropy of the action distribution (a scalar, or ``[B]`` averaged by the caller)."""


@dataclass(frozen=True)
class LossSettings:
    """The coefficients of the PPO loss."""

    clip_ratio: float
    """Clipping of the probability ratio (and of the value change when ``clip_value``)."""
    clip_value: bool
    """Clip the value update around the old value estimate."""
    value_coef: float
    """Weight of the value loss."""
    entropy_coef: float
    """Weight of the entropy bonus."""

    @classmethod
    def from_config(cls, cfg: PPOConfig) -> LossSettings:
        """The loss settings of a :class:`PPOConfig`."""
        return cls(cfg.clip_ratio, cfg.clip_value, cfg.value_coef, cfg.entropy_coef)


def ppo_losses(x: LossInputs, settings: LossSettings) -> Losses:
    """The clipped PPO objective on one minibatch.

    ``policy = mean(max(-A r, -A clip(r, 1-e, 1+e)))`` with ``r = exp(log_prob - old_log_prob)``;
    ``value = mean(max((V - R)^2, (V_old + clip(V - V_old, -e, e) - R)^2))`` when ``clip_value``,
    else ``mean((V - R)^2)``; ``total = policy + value_coef * value - entropy_coef * entropy``.
    """
    e = settings.clip_ratio
    ratio = torch.exp(x.log_prob - x.old_log_prob)
    surrogate = -x.advantages * ratio
    surrogate_clipped = -x.advantages * ratio.clamp(1.0 - e, 1.0 + e)
    policy = torch.max(surrogate, surrogate_clipped).mean()
    if settings.clip_value:
        clipped = x.old_values + (x.values - x.old_values).clamp(-e, e)
        value = torch.max((x.values - x.returns).square(), (clipped - x.returns).square()).mean()
    else:
        value = (x.values - x.returns).square().mean()
    total = policy + settings.value_coef * value - settings.entropy_coef * x.entropy
    clip_fraction = ((ratio - 1.0).abs() > e).float().mean()
    return Losses(total, policy, value, x.entropy, clip_fraction.detach())


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


def paced_learning_rate(
    lr: float,
    kl: float,
    steps_done: int,
    steps_planned: int,
    cfg: PPOConfig,
    desired_kl: float | None = None,
) -> float:
    """The adaptive schedule's next rate, given the KL after ``steps_done`` of an update's steps.

    The target is paced: ``desired_kl * steps_done / steps_planned`` (``desired_kl``: this
    update's bound, :meth:`PPOConfig.kl_target`; default ``cfg.desired_kl``). ``lr / 1.5`` when ``kl`` is
    over twice the target, ``lr * 1.5`` when under half of it, else ``lr``; clamped to
    ``[min_learning_rate, max_learning_rate]``.
    """
    bound = cfg.desired_kl if desired_kl is None else desired_kl
    target = bound * steps_done / steps_planned
    if kl > 2.0 * target:
        lr = lr / 1.5
    elif kl < target / 2.0:
        lr = lr * 1.5
    return min(max(lr, cfg.min_learning_rate), cfg.max_learning_rate)


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


@dataclass(frozen=True)
class PolicyStep:
    """What :meth:`PPO.act` decided for one step of every world, kept until the env answers."""

    obs: torch.Tensor
    """Normalized observations ``[N, obs_dim]``."""
    actions: torch.Tensor
    """Sampled actions ``[N, action_dim]``."""
    log_prob: torch.Tensor
    """Their log-probabilities ``[N]``."""
    mean: torch.Tensor
    """Action means ``[N, action_dim]``."""
    std: torch.Tensor
    """Action stds ``[N, action_dim]``."""
    value: torch.Tensor
    """``V(obs)`` ``[N]``."""


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
        self.loss_settings = LossSettings.from_config(cfg)
        # What the normalizers learn from, merged once per rollout in compute_returns().
        t, n = cfg.num_steps, num_envs
        self._raw_obs = torch.zeros(t, n, policy.obs_dim, device=self.device)
        self._returns = torch.zeros(t, n, device=self.device)
        self._pending: PolicyStep | None = None
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
        self._pending = PolicyStep(nobs, actions, log_prob, mean, std, value)
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
        p = self._pending
        if p is None:
            raise RuntimeError("process_env_step() without a preceding act()")
        if self.cfg.normalize_rewards:
            self._returns[self.storage.step] = self.reward_normalizer.track(
                reward, terminated | truncated
            )
        final_value = None
        if final_obs is not None and bool(truncated.any()):
            final_value = self.policy.value(self.policy.normalize(final_obs))
        self.storage.add(
            Transition(
                obs=p.obs,
                actions=p.actions,
                log_prob=p.log_prob,
                mean=p.mean,
                std=p.std,
                value=p.value,
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                final_value=final_value,
            )
        )
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

        Policy change per update is bounded in KL (``KL(rollout policy || current policy)``,
        averaged over samples, in nats). Before each minibatch step after the first, that
        minibatch's KL is measured (it reads the policy after the previous step, on samples that
        step did not use; one host sync):

        - **adaptive schedule**: after ``k`` of the ``K = num_epochs * num_minibatches`` planned
          steps the target is ``desired_kl * k / K``; the rate is divided by 1.5 when the KL is
          over twice the target and multiplied by 1.5 when it is under half of it, within
          ``[min_learning_rate, max_learning_rate]`` (rsl_rl's factors and band, with a paced
          target instead of the whole ``desired_kl`` at every step).
        - **early stop**: once the KL exceeds ``kl_stop_ratio * desired_kl``, the rest of the
          update (all epochs) is skipped, for every schedule (SB3's ``target_kl``).
        - with ``desired_kl_final`` set, ``desired_kl`` above is this update's annealed bound
          (:meth:`PPOConfig.kl_target` of ``progress``).

        Args:
            progress: fraction of training done in ``[0, 1]``, for the ``linear`` schedule and
                the KL anneal.

        Returns:
            Means over the minibatch steps taken: ``losses/value``, ``losses/policy``,
            ``losses/entropy``, ``losses/clip_fraction``; ``losses/approx_kl``, the KL of the
            whole update on the rollout; ``losses/minibatch_steps`` (gradient steps taken) and
            ``losses/early_stop`` (1 when the KL bound ended the update); plus
            ``charts/learning_rate`` (the rate of this update) and ``charts/action_std`` after it.
        """
        cfg = self.cfg
        if cfg.schedule == "linear":
            self.set_learning_rate(cfg.learning_rate * max(1.0 - progress, 0.0))
        desired_kl = cfg.kl_target(progress)
        kl_stop = cfg.kl_stop_ratio * desired_kl if cfg.kl_stop_ratio > 0 else math.inf
        adaptive = cfg.schedule == "adaptive"
        planned = cfg.num_epochs * cfg.num_minibatches
        sums = torch.zeros(4, device=self.device)
        n = 0
        stopped = False
        for batch in self.storage.minibatches(cfg.num_minibatches, cfg.num_epochs, self.generator):
            mean, values = self.policy(batch.obs)
            if n > 0 and (adaptive or math.isfinite(kl_stop)):
                with torch.no_grad():
                    kl_t = gaussian_kl(batch.old_mean, batch.old_std, mean, self.policy.action_std)
                    kl = float(self._mean_over_ranks(kl_t.mean()))  # one host sync
                if adaptive:
                    self.set_learning_rate(
                        paced_learning_rate(self.learning_rate, kl, n, planned, cfg, desired_kl)
                    )
                if kl > kl_stop:
                    stopped = True
                    break
            adv = batch.advantages
            if cfg.normalize_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            losses = ppo_losses(
                LossInputs(
                    log_prob=self.policy.log_prob(mean, batch.actions),
                    old_log_prob=batch.old_log_prob,
                    advantages=adv,
                    values=values,
                    old_values=batch.old_values,
                    returns=batch.returns,
                    entropy=self.policy.entropy(),
                ),
                self.loss_settings,
            )
            self.optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            if self.dist is not None:
                _dist().average_gradients(self.policy)
            nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            with torch.no_grad():
                sums += torch.stack(
                    [losses.value, losses.policy, losses.entropy, losses.clip_fraction]
                )
            n += 1
        update_kl = float(self._mean_over_ranks(self._rollout_kl()))
        self.storage.clear()
        means = (sums / max(n, 1)).tolist()
        keys = ("value", "policy", "entropy", "clip_fraction")
        out = {f"losses/{k}": v for k, v in zip(keys, means, strict=True)}
        out["losses/approx_kl"] = update_kl
        out["losses/minibatch_steps"] = float(n)
        out["losses/early_stop"] = float(stopped)
        out["charts/learning_rate"] = self.learning_rate
        out["charts/desired_kl"] = desired_kl
        out["charts/action_std"] = float(self.policy.action_std.detach().mean())
        return out

    @torch.no_grad()
    def _rollout_kl(self, chunk: int = 65_536) -> torch.Tensor:
        """Mean ``KL(rollout policy || current policy)`` over the stored rollout, a scalar."""
        s = self.storage
        obs = s.obs[: s.step].flatten(0, 1)
        old_mean = s.means[: s.step].flatten(0, 1)
        old_std = s.stds[: s.step].flatten(0, 1)
        std = self.policy.action_std
        total = torch.zeros((), device=self.device)
        for i in range(0, obs.shape[0], chunk):
            mean = self.policy.actor(obs[i : i + chunk])
            total += gaussian_kl(old_mean[i : i + chunk], old_std[i : i + chunk], mean, std).sum()
        return total / max(obs.shape[0], 1)

    def _mean_over_ranks(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.dist is None else _dist().all_reduce_mean(x)

    # -- learning rate and checkpoints -------------------------------------------------------------

    def set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's learning rate (the schedules change it from here on).

        Raises:
            ValueError: ``lr`` is not a finite positive number.
        """
        if not (math.isfinite(lr) and lr >= 0.0):
            raise ValueError(f"learning rate: got {lr!r}, expected a finite number >= 0")
        self.learning_rate = float(lr)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate

    def state_dict(self) -> dict[str, Any]:
        """The algorithm's learned state, ``torch.save``-able (tensors and plain values only).

        Keys: ``model`` (the actor-critic, its observation normalizer included),
        ``optimizer``, ``reward_normalizer`` and ``learning_rate``.
        """
        return {
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "reward_normalizer": self.reward_normalizer.state_dict(),
            "learning_rate": self.learning_rate,
        }

    def load_state_dict(self, state: Mapping[str, Any], new_episodes: bool = False) -> None:
        """Restore :meth:`state_dict` (extra keys are ignored, so a whole checkpoint will do).

        Args:
            state: what :meth:`state_dict` returned.
            new_episodes: the env will start new episodes rather than continue the ones the
                state was saved in (its snapshot was not restored), or it has another number of
                worlds: the reward normalizer keeps its statistics but restarts the per-world
                running returns at zero.
        """
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.set_learning_rate(float(state["learning_rate"]))
        saved = state.get("reward_normalizer")
        if saved is not None:
            rn = self.reward_normalizer
            if new_episodes or saved["ret"].shape != rn.ret.shape:
                saved = dict(saved, ret=torch.zeros_like(rn.ret))
            rn.load_state_dict(saved)
