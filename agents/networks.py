"""Networks of the batched PPO: a Gaussian MLP actor-critic and a running observation normalizer.

Both are plain ``nn.Module`` s whose ``forward`` is TorchScript- and ONNX-friendly (no Python
control flow on tensor values), so that the deterministic policy (normalizer, then actor mean)
exports as it is. What they cannot do: recurrent policies, image observations, state-dependent
action noise, or separate (asymmetric) actor and critic observations.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _exp_elu(x: torch.Tensor) -> torch.Tensor:
    """``x`` where ``x > 0``, else ``exp(x) - 1``: exactly one of the two terms is non-zero."""
    return torch.exp(x.clamp(max=0.0)).sub_(1.0).add_(x.clamp(min=0.0))


class _ExpELUFunction(torch.autograd.Function):
    """ELU (alpha 1) from ``exp``; the backward is torch's own, from the saved output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _exp_elu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.elu_backward(grad, 1.0, 1.0, 1.0, True, y)


class ELU(nn.ELU):
    """``nn.ELU()`` (alpha 1), computed as ``exp(x) - 1`` for ``x <= 0``.

    On CPU, torch's ELU forward evaluates ``expm1`` one element at a time (about 9 ns per
    element on an AVX-512 machine with torch 2.14, against under 1 ns for the vectorized
    ``exp``), and its backward from the input is slower still, so with the small networks of
    robot control the activation cost more than the matrix products. This forward uses ``exp``
    and the backward torch's ELU gradient from the saved output. On ``[512, 128]`` the forward
    takes 0.09 ms against 0.57 ms, forward and backward 0.17 ms against 0.65 ms, and a PPO
    update of ant_run 77 ms against 122 ms (``benchmarks/results/activation_speed.md``).
    ``exp(x) - 1`` differs from ``expm1(x)`` by at most ~6e-8 (absolute), far below what
    training resolves. Every path computes the same formula with the same kernels (training,
    inference, ``torch.jit.script``/``trace``), so an exported TorchScript policy reproduces the
    trained one bit for bit (which torch's ``F.elu`` in the export would not, by up to ~1e-5 on
    large networks); ONNX gets ``Exp``, ``Clip``, ``Sub`` and ``Add`` nodes instead of ``Elu``.
    """

    def __init__(self) -> None:
        super().__init__(alpha=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see the class
        if torch.jit.is_scripting():
            return _exp_elu(x)
        return self._eager(x)

    @torch.jit.unused
    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing():
            return _ExpELUFunction.apply(x)
        return _exp_elu(x)


_ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": ELU, "tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(
    in_dim: int,
    hidden: tuple[int, ...],
    out_dim: int,
    activation: str = "elu",
    out_gain: float = 1.0,
) -> nn.Sequential:
    """Build ``Linear -> act -> ... -> Linear`` with orthogonal init (gain sqrt(2) inside).

    Args:
        in_dim: input width.
        hidden: hidden layer widths (may be empty: a linear map).
        out_dim: output width.
        activation: ``elu``, ``tanh`` or ``relu``.
        out_gain: orthogonal gain of the last layer (small for a policy head, 1 for a value head).

    Raises:
        ValueError: unknown activation.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: got {activation!r}, expected one of {sorted(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layer = nn.Linear(a, b)
        nn.init.orthogonal_(layer.weight, math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
        layers += [layer, _ACTIVATIONS[activation]()]
    head = nn.Linear(dims[-1], out_dim)
    nn.init.orthogonal_(head.weight, out_gain)
    nn.init.zeros_(head.bias)
    layers.append(head)
    return nn.Sequential(*layers)


class EmpiricalNormalization(nn.Module):
    """Running mean and variance of observations; ``forward`` maps ``x`` to ``(x - mean) / std``.

    Statistics live in buffers (``mean``, ``var``, ``std``, ``count``), so they are saved with the
    model's ``state_dict`` and exported with the policy. :meth:`update` merges a batch into the
    statistics (Chan et al.'s parallel algorithm, in float64, population variance) and does
    nothing in eval mode, so an exported or evaluated policy is frozen. ``forward`` never updates:
    the learner calls :meth:`update` explicitly during rollouts.

    Args:
        shape: per-sample shape, e.g. ``(obs_dim,)``.
        eps: added to the variance before the square root, so constant features map to 0 and
            never divide by zero.
        clip: when set, normalized values are clamped to ``[-clip, clip]``.
    """

    def __init__(self, shape: int | tuple[int, ...], eps: float = 1e-2, clip: float = 0.0) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps = float(eps)
        self.clip = float(clip)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("std", torch.ones(shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - self.mean) / self.std
        if self.clip > 0.0:
            y = y.clamp(-self.clip, self.clip)
        return y

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``x`` ``[B, *shape]`` into the statistics (no-op in eval mode)."""
        if not self.training:
            return
        x = x.reshape(-1, *self.mean.shape).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        count = self.count
        total = count + n
        delta = b_mean - self.mean.double()
        new_mean = self.mean.double() + delta * (n / total)
        m2 = self.var.double() * count + b_var * n + delta.square() * (count * n / total)
        new_var = m2 / total
        self.mean.copy_(new_mean)
        self.var.copy_(new_var)
        self.std.copy_(torch.sqrt(new_var + self.eps))
        self.count.copy_(total)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Map normalized values back to raw ones (ignores clipping)."""
        return y * self.std + self.mean


class ActorCritic(nn.Module):
    """Gaussian MLP policy with a state-independent learned log-std, and an MLP value function.

    The observation normalizer (an :class:`EmpiricalNormalization`, or ``nn.Identity`` when
    disabled) is a submodule, so ``state_dict`` carries it. Methods take *normalized*
    observations unless they say otherwise; call :meth:`normalize` first.

    Args:
        obs_dim: observation width.
        action_dim: action width.
        actor_hidden: hidden widths of the policy MLP.
        critic_hidden: hidden widths of the value MLP.
        activation: ``elu``, ``tanh`` or ``relu``.
        init_noise_std: initial action standard deviation.
        normalize_obs: keep a running observation normalizer.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        actor_hidden: tuple[int, ...] = (64, 64),
        critic_hidden: tuple[int, ...] = (64, 64),
        activation: str = "elu",
        init_noise_std: float = 1.0,
        normalize_obs: bool = True,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.obs_normalizer: nn.Module = (
            EmpiricalNormalization(obs_dim) if normalize_obs else nn.Identity()
        )
        self.actor = mlp(obs_dim, tuple(actor_hidden), action_dim, activation, out_gain=0.01)
        self.critic = mlp(obs_dim, tuple(critic_hidden), 1, activation, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_noise_std)))

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations ``[B, obs_dim]`` -> normalized ones (identity when disabled)."""
        return self.obs_normalizer(obs)

    def update_normalizer(self, obs: torch.Tensor) -> None:
        """Merge raw observations into the running statistics (no-op when disabled or in eval)."""
        if isinstance(self.obs_normalizer, EmpiricalNormalization):
            self.obs_normalizer.update(obs)

    @property
    def action_std(self) -> torch.Tensor:
        """Current action standard deviation ``[action_dim]``."""
        return self.log_std.exp()

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized observations -> ``(action mean [B, A], value [B])``."""
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalized observations -> state values ``[B]``."""
        return self.critic(obs).squeeze(-1)

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density ``[B]`` of ``actions`` under ``N(mean, std^2)`` (summed over dimensions)."""
        log_std = self.log_std
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the (state-independent) action distribution, a scalar."""
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum()


class InferencePolicy(nn.Module):
    """Raw observations ``[B, obs_dim]`` -> deterministic actions ``[B, action_dim]`` in [-1, 1].

    Normalizer, then actor mean, then clamp: the exported policy. Holds copies of the trained
    modules, so later training does not change it.
    """

    def __init__(self, normalizer: nn.Module, actor: nn.Module, obs_dim: int, action_dim: int):
        super().__init__()
        self.normalizer = normalizer
        self.actor = actor
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.normalizer(obs)).clamp(-1.0, 1.0)
