"""Batched soft actor-critic (SAC) for many parallel worlds: networks and the algorithm.

Haarnoja et al. 2018 (with automatic entropy tuning), written for batched simulators as
FastTD3/FastSAC run it: every env step adds one transition per world to a replay buffer on the
learner device (:class:`~rewardlab.agents.replay_buffer.ReplayBuffer`), and a configurable number
of large-batch updates follow (``SACConfig.updates_per_step``). Pieces:

- :class:`SquashedGaussianActor`: observation -> ``tanh(N(mean, std))`` actions in ``[-1, 1]``,
  with its log-density (change of variables through the tanh).
- :class:`TwinQ`: two ``Q(obs, action)`` MLPs; their minimum is the target (clipped double Q).
- :class:`SAC`: acting (uniform random before ``learning_starts``), storing, and the updates:
  critic to ``r + discount * (1 - terminated) * (min Q_target(s', a') - alpha * log pi(a'|s'))``,
  actor to ``alpha * log pi - min Q``, temperature to the entropy target, Polyak targets.
- :class:`SACInference`: the deterministic policy (normalizer, actor mean, tanh) for export.

Truncation: a world cut by the time limit stores its ``final_obs`` as next observation with
``terminated`` false, so its target bootstraps from the state it was cut in; a terminated world
does not bootstrap.

Everything random (init, action noise, random warm-up actions, batch sampling) comes from the
caller's seeded ``torch.Generator`` (and torch's global seed for init, forked by the runner).
What it cannot do: recurrent policies, image observations, several processes (torchrun).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.agents.config import SACConfig
from rewardlab.agents.networks import EmpiricalNormalization, mlp
from rewardlab.agents.replay_buffer import ReplayBatch, ReplayBuffer

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


class SquashedGaussianActor(nn.Module):
    """``obs -> (mean, log_std)`` of a Gaussian whose samples are squashed by ``tanh``.

    Args:
        obs_dim: (normalized) observation width.
        action_dim: action width.
        hidden: hidden widths.
        activation: ``elu``, ``tanh`` or ``relu``.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], activation: str
    ) -> None:
        super().__init__()
        self.action_dim = int(action_dim)
        self.net = mlp(obs_dim, tuple(hidden), 2 * action_dim, activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized observations ``[B, obs_dim]`` -> ``(mean, log_std)``, each ``[B, A]``
        (pre-tanh; the log-std squashed into ``[LOG_STD_MIN, LOG_STD_MAX]``)."""
        out = self.net(obs)
        mean, raw = out[..., : self.action_dim], out[..., self.action_dim :]
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
        return mean, log_std

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized actions ``[B, A]`` in ``(-1, 1)`` and their log-densities ``[B]``."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * noise
        action = torch.tanh(u)
        log_prob = (-0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2), stably: 2 * (log 2 - u - softplus(-2u))
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return action, log_prob


class TwinQ(nn.Module):
    """Two independent ``Q(obs, action)`` MLPs.

    Args:
        obs_dim: (normalized) observation width.
        action_dim: action width.
        hidden: hidden widths of each.
        activation: ``elu``, ``tanh`` or ``relu``.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], activation: str
    ) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, tuple(hidden), 1, activation)
        self.q2 = mlp(obs_dim + action_dim, tuple(hidden), 1, activation)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)``, each ``[B]``."""
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class SACInference(nn.Module):
    """Raw observations ``[B, obs_dim]`` -> deterministic actions ``tanh(mean)`` ``[B, A]``.

    Holds copies of the normalizer and the actor; TorchScript- and ONNX-exportable.
    """

    def __init__(self, normalizer: nn.Module, actor: SquashedGaussianActor, obs_dim: int):
        super().__init__()
        self.normalizer = normalizer
        self.actor = actor.net
        self.obs_dim = int(obs_dim)
        self.action_dim = int(actor.action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.actor(self.normalizer(obs))
        return torch.tanh(out[..., : self.action_dim])


def _adam(params: Any, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, fused where torch supports it on ``device``."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr)


class SAC:
    """Soft actor-critic over a batched env.

    Args:
        obs_dim: observation width.
        action_dim: action width.
        num_envs: worlds per env step (the replay buffer's width).
        cfg: hyper-parameters.
        device: device of the networks and the replay buffer.
        generator: random source of action noise, random actions and batch sampling.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        num_envs: int,
        cfg: SACConfig,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.device = torch.device(device)
        self.generator = generator or torch.Generator(device=self.device)
        dev = self.device
        self.normalizer: nn.Module = (
            EmpiricalNormalization(obs_dim) if cfg.normalize_obs else nn.Identity()
        ).to(dev)
        self.actor = SquashedGaussianActor(
            obs_dim, action_dim, cfg.actor_hidden, cfg.activation
        ).to(dev)
        self.critic = TwinQ(obs_dim, action_dim, cfg.critic_hidden, cfg.activation).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=dev, requires_grad=True)
        self.target_entropy = (
            float(cfg.target_entropy) if cfg.target_entropy is not None else -float(action_dim)
        )
        self.actor_optimizer = _adam(self.actor.parameters(), cfg.actor_learning_rate, dev)
        self.critic_optimizer = _adam(self.critic.parameters(), cfg.critic_learning_rate, dev)
        self.alpha_optimizer = _adam([self.log_alpha], cfg.alpha_learning_rate, dev)
        capacity = max(1, cfg.buffer_size // max(1, num_envs))
        self.buffer = ReplayBuffer(num_envs, capacity, obs_dim, action_dim, dev)
        self.num_updates = 0
        """Gradient updates of the critic so far."""
        self.demos: ReplayBuffer | None = None
        """Fixed demonstration transitions mixed into every batch (:meth:`set_demos`)."""
        self.demo_ratio = 0.0
        """Share of each batch drawn from :attr:`demos`."""
        self.demo_digest: str | None = None
        """sha256 of the demonstration transitions (a resume checks it); ``None``: no demos."""

    def set_demos(self, demos: ReplayBuffer, ratio: float, digest: str) -> None:
        """Draw ``ratio`` of every update's batch from ``demos`` (RLPD-style symmetric sampling;
        their rewards as stored: scaled like the online ones by the caller).

        Args:
            demos: fixed transitions (:meth:`ReplayBuffer.of_transitions`) on :attr:`device`.
            ratio: share of each batch, in ``[0, 1)``.
            digest: what identifies them in checkpoints (a sha256).

        Raises:
            ValueError: ``ratio`` out of range, or other observation/action widths.
        """
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"demo ratio: got {ratio!r}, expected a number in [0, 1)")
        if (demos.obs_dim, demos.action_dim) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"demos have obs/action widths {demos.obs_dim}/{demos.action_dim}, the agent "
                f"{self.obs_dim}/{self.action_dim}"
            )
        self.demos, self.demo_ratio, self.demo_digest = demos, float(ratio), digest

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy temperature (a scalar tensor, no gradient)."""
        return self.log_alpha.detach().exp()

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations -> normalized ones (identity when normalization is off)."""
        return self.normalizer(obs)

    # -- rollout ---------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: torch.Tensor, random: bool = False) -> torch.Tensor:
        """Actions ``[N, A]`` in ``[-1, 1]`` for raw observations ``[N, obs_dim]``: sampled from
        the policy, or uniform when ``random`` (the warm-up before ``learning_starts``)."""
        if random:
            shape = (obs.shape[0], self.action_dim)
            u = torch.rand(shape, generator=self.generator, device=self.device)
            return 2.0 * u - 1.0
        action, _ = self.actor.sample(self.normalize(obs), self.generator)
        return action

    @torch.no_grad()
    def store(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        """Add one step of every world to the replay buffer and the observation statistics.

        ``next_obs`` is the observation the step ended on: ``info["final_obs"]`` (which equals
        the new observation for worlds that did not finish).
        """
        self.buffer.add(
            obs, actions, rewards * self.cfg.reward_scale, next_obs, terminated, truncated
        )
        if isinstance(self.normalizer, EmpiricalNormalization):
            self.normalizer.update(obs)

    # -- updates ---------------------------------------------------------------------------------

    def update(self, num_updates: int) -> dict[str, float]:
        """Run ``num_updates`` gradient updates on batches from the replay buffer (a
        ``demo_ratio`` share of each from the demonstrations, when :meth:`set_demos` gave some).

        Returns:
            Means over the updates: ``losses/critic``, ``losses/actor``, ``losses/alpha``,
            ``charts/alpha``, ``charts/entropy`` (``-log pi`` of sampled actions), ``charts/q``.
        """
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(num_updates):
            batch = self.buffer.sample_mixed(
                self.demos,
                self.demo_ratio,
                self.cfg.batch_size,
                self.generator,
                self.cfg.n_step,
                self.cfg.gamma,
            )
            stats = self.update_step(batch)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
        return {k: sums[k] / counts[k] for k in sums}

    def update_step(self, batch: ReplayBatch) -> dict[str, float]:
        """One critic update, then (every ``policy_delay``-th) actor and temperature updates,
        then the Polyak target update."""
        cfg = self.cfg
        obs = self.normalize(batch.obs)
        next_obs = self.normalize(batch.next_obs)
        alpha = self.alpha
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_obs, self.generator)
            q1_t, q2_t = self.critic_target(next_obs, next_action)
            soft_v = torch.minimum(q1_t, q2_t) - alpha * next_log_prob
            target = batch.rewards + batch.discount * batch.not_terminated * soft_v
        q1, q2 = self.critic(obs, batch.actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self._step(self.critic_optimizer, critic_loss, self.critic)
        stats = {
            "losses/critic": float(critic_loss.detach()),
            "charts/q": float(q1.detach().mean()),
        }
        self.num_updates += 1

        if self.num_updates % cfg.policy_delay == 0:
            action, log_prob = self.actor.sample(obs, self.generator)
            q1_pi, q2_pi = self.critic(obs, action)
            actor_loss = (alpha * log_prob - torch.minimum(q1_pi, q2_pi)).mean()
            self._step(self.actor_optimizer, actor_loss, self.actor)
            self.critic_optimizer.zero_grad(set_to_none=True)  # grads the actor loss left there
            stats["losses/actor"] = float(actor_loss.detach())
            stats["charts/entropy"] = float(-log_prob.detach().mean())
            if cfg.autotune_alpha:
                alpha_loss = self.alpha_loss(log_prob.detach())
                self.alpha_optimizer.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optimizer.step()
                stats["losses/alpha"] = float(alpha_loss.detach())
        stats["charts/alpha"] = float(self.alpha)
        self.update_targets()
        return stats

    def alpha_loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        """``-log_alpha * (log pi + target_entropy)``: raises the temperature while the policy's
        entropy (``-log pi``) is below the target, lowers it while above."""
        return -(self.log_alpha * (log_prob + self.target_entropy)).mean()

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak: ``target <- (1 - tau) * target + tau * critic``."""
        for t, p in zip(self.critic_target.parameters(), self.critic.parameters(), strict=True):
            t.lerp_(p, self.cfg.tau)

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0.0:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.max_grad_norm)
        optimizer.step()

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self, replay: bool = True) -> dict[str, Any]:
        """The learned state (tensors and plain values): networks, targets, normalizer,
        temperature (under ``model``), optimizers, update count, the demonstrations' digest,
        and the replay buffer when ``replay`` (the demonstrations themselves are reloaded from
        their files)."""
        return {
            "model": {
                "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "normalizer": self.normalizer.state_dict(),
                "log_alpha": self.log_alpha.detach().cpu(),
            },
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "num_updates": self.num_updates,
            "demo_digest": self.demo_digest,
            "replay": self.buffer.state_dict() if replay else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore :meth:`state_dict` (extra keys ignored).

        Returns:
            Whether the replay buffer was restored (false: the state had none; the buffer is
            left empty and refills).
        """
        model = state["model"]
        self.actor.load_state_dict(model["actor"])
        self.critic.load_state_dict(model["critic"])
        self.critic_target.load_state_dict(model["critic_target"])
        self.normalizer.load_state_dict(model["normalizer"])
        with torch.no_grad():
            self.log_alpha.copy_(model["log_alpha"].to(self.device))
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.num_updates = int(state["num_updates"])
        replay = state.get("replay")
        if replay is None:
            return False
        self.buffer.load_state_dict(replay)
        return True

    def inference_policy(self) -> SACInference:
        """The deterministic policy as a CPU module in eval mode, gradients off (a copy)."""
        module = SACInference(
            copy.deepcopy(self.normalizer), copy.deepcopy(self.actor), self.obs_dim
        )
        module = module.cpu().eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module
