"""The trained-policy interface every agent returns, and its PPO and exported implementations.

A :class:`Policy` maps raw observations ``float32 [B, obs_dim]`` (on the CPU) to actions
``[B, action_dim]`` in ``[-1, 1]``:

- ``policy(obs)``: the deterministic action (the mean), what evaluation and export use;
- ``policy.sample(obs)``: an action drawn from the policy's distribution (``eval
  deterministic=false``), from the policy's own seeded generator;
- ``policy.inference``: the deterministic policy as a plain ``torch.nn.Module``, observation
  normalization included: what :func:`rewardlab.agents.export.export_policy` writes.

:class:`PPOPolicy` wraps :class:`~rewardlab.agents.runner.OnPolicyRunner`; :class:`ExportedPolicy`
wraps a loaded ``policy.pt``; the SB3 one is :class:`rewardlab.agents.sb3.SB3Policy` (it needs
stable-baselines3).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from rewardlab.agents.runner import OnPolicyRunner


@runtime_checkable
class Policy(Protocol):
    """Deterministic (``__call__``) and sampled (``sample``) actions of a trained policy."""

    inference: nn.Module
    """Raw observation ``[B, obs_dim]`` -> deterministic action ``[B, action_dim]`` (exportable)."""
    stochastic: bool
    """Whether :meth:`sample` draws from a distribution (false: it raises ``ValueError``)."""

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic (mean) action of raw observations ``[B, obs_dim]``."""
        ...

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        """An action drawn from the policy's distribution, clamped to ``[-1, 1]``.

        Raises:
            ValueError: the policy is deterministic (an exported one).
        """
        ...


class PPOPolicy:
    """The policy of an :class:`OnPolicyRunner`, frozen at construction.

    Args:
        runner: the trained runner (its networks are copied; later training does not change
            this policy).
        seed: seed of the generator that :meth:`sample` draws its noise from.
    """

    stochastic = True

    def __init__(self, runner: OnPolicyRunner, seed: int = 0) -> None:
        self.inference = runner.inference_policy()
        self.actor_critic = copy.deepcopy(runner.policy).cpu().eval()  # the runner's stays as is
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self.actor_critic(self.actor_critic.normalize(obs))
        noise = torch.randn(mean.shape, generator=self.generator)
        return (mean + self.actor_critic.action_std * noise).clamp(-1.0, 1.0)


class ExportedPolicy:
    """A policy loaded from an exported ``policy.pt`` (TorchScript): deterministic only."""

    stochastic = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.inference = torch.jit.load(str(self.path), map_location="cpu").eval()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        raise ValueError(
            "deterministic=false needs a stochastic policy (with a .sample method); "
            "exported policies are deterministic"
        )
