"""Agent configs: frozen dataclasses with a docstring per field, validated at load."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PPOConfig:
    """Batched PPO (rsl_rl-style) hyper-parameters."""

    num_steps: int = 32
    """Control steps collected per world before each update (rollout length)."""
    num_epochs: int = 5
    """Passes over the rollout per update."""
    num_minibatches: int = 4
    """Minibatches per epoch; minibatch size = num_envs * num_steps / num_minibatches."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    clip_ratio: float = 0.2
    """PPO clipping of the probability ratio."""
    clip_value: bool = False
    """Clip the value update around the old value estimate by ``clip_ratio`` (rsl_rl's default is
    on; off here because the clip is absolute, so it stalls the critic when returns are large)."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    learning_rate: float = 1e-3
    """Initial Adam learning rate."""
    schedule: str = "adaptive"
    """``adaptive`` (before each minibatch step the rate is divided by 1.5 when the KL so far is
    over twice ``desired_kl * steps done / steps planned``, multiplied by 1.5 under half of it),
    ``linear`` (anneal to 0) or ``fixed``."""
    desired_kl: float = 0.01
    """KL (nats, mean over samples) one update should move the policy by: the target of the
    adaptive schedule and the unit of ``kl_stop_ratio``."""
    kl_stop_ratio: float = 2.0
    """End an update early (skip its remaining minibatches and epochs) once the KL between the
    current and the rollout policy exceeds ``kl_stop_ratio * desired_kl``, for every schedule
    (SB3's ``target_kl`` stops at 1.5x). 0 disables the stop."""
    min_learning_rate: float = 1e-5
    """Lower bound of the adaptive schedule's learning rate."""
    max_learning_rate: float = 3e-3
    """Upper bound of the adaptive schedule's learning rate (rsl_rl: 1e-2)."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    actor_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy MLP."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the value MLP."""
    activation: str = "elu"
    """Hidden activation: ``elu``, ``tanh`` or ``relu``."""
    init_noise_std: float = 1.0
    """Initial standard deviation of the Gaussian policy (state-independent, learned)."""
    normalize_obs: bool = True
    """Running mean/std observation normalization (exported with the policy). The std is floored
    at 0.1, so that nearly constant features (cos of an angle kept near 0) are not amplified."""
    normalize_rewards: bool = True
    """Divide rewards by the running std of the discounted return, so that learning does not
    depend on the reward's scale (useful for generated rewards); rewards are not centered."""
    normalize_advantages: bool = True
    """Normalize advantages per minibatch."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        floats = ("gamma", "lam", "clip_ratio", "value_coef", "entropy_coef", "learning_rate",
                  "desired_kl", "kl_stop_ratio", "min_learning_rate", "max_learning_rate",
                  "max_grad_norm", "init_noise_std")  # fmt: skip
        for name in floats:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"ppo.{name}: got {value!r}, expected a finite number")
        checks = [
            ("num_steps", self.num_steps >= 1, ">= 1"),
            ("num_epochs", self.num_epochs >= 1, ">= 1"),
            ("num_minibatches", self.num_minibatches >= 1, ">= 1"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"),
            ("lam", 0.0 <= self.lam <= 1.0, "in [0, 1]"),
            ("clip_ratio", self.clip_ratio > 0.0, "> 0"),
            ("learning_rate", self.learning_rate > 0.0, "> 0"),
            ("schedule", self.schedule in ("adaptive", "linear", "fixed"), "one of adaptive, linear, fixed"),
            ("desired_kl", self.desired_kl > 0.0, "> 0"),
            ("kl_stop_ratio", self.kl_stop_ratio == 0.0 or self.kl_stop_ratio >= 1.0, "0 (off) or >= 1"),
            ("min_learning_rate", self.min_learning_rate > 0.0, "> 0"),
            ("max_learning_rate", self.max_learning_rate >= self.min_learning_rate, ">= min_learning_rate"),
            ("max_grad_norm", self.max_grad_norm > 0.0, "> 0"),
            ("value_coef", self.value_coef >= 0.0, ">= 0"),
            ("entropy_coef", self.entropy_coef >= 0.0, ">= 0"),
            ("actor_hidden", all(int(h) >= 1 for h in self.actor_hidden), "widths >= 1"),
            ("critic_hidden", all(int(h) >= 1 for h in self.critic_hidden), "widths >= 1"),
            ("activation", self.activation in ("elu", "tanh", "relu"), "one of elu, tanh, relu"),
            ("init_noise_std", self.init_noise_std > 0.0, "> 0"),
        ]  # fmt: skip
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"ppo.{name}: got {getattr(self, name)!r}, expected {allowed}")
