"""From per-frame VLM scores to per-step rewards: normalization, potential-based shaping, mixing.

A frame scorer (CLIP, progress model, judge, preference model) says how good a *state* looks.
A reinforcement learner wants a reward per *transition*. Two ways to get one:

- the score itself, ``r_t = c * norm(score(s_{t+1}))`` (VLM-RM's choice), or
- potential-based shaping (Ng, Harada & Russell 1999) with ``Phi = c * norm(score)``::

      r_t = gamma * Phi(s_{t+1}) - Phi(s_t)

  The sum of shaped rewards over an episode telescopes to ``gamma^T Phi(s_T) - Phi(s_0)``
  (discounted) so the optimal policy of any reward it is added to is unchanged, and a dense
  progress signal cannot be farmed by hovering at a half-done state. This is the default for
  progress-like scores (``FrameScorer.progress_like``).

Episode boundaries are where shaping goes wrong in practice, and this module is careful there:

- **True termination** (``terminated``): the episode entered an absorbing state whose value is
  zero, so ``Phi(s_T) = 0`` and the last reward is ``-Phi(s_{T-1})``.
- **Truncation** (``truncated``, the time limit): the state is not absorbing; the learner
  bootstraps from ``V(s_T)``, so the last reward keeps ``gamma * Phi(s_T)``.
- **Auto-reset**: the batched env resets finished worlds inside ``step``. The first transition
  of the new episode starts from ``Phi`` of the new start state, never from the previous
  episode's last state. Pass ``phi_reset`` when the final frame and the new start frame were
  both scored; when only the post-reset frame exists (an env that renders after auto-reset),
  pass no ``phi_reset`` and the row of ``phi_next`` is taken as the new start state; a truncated
  world's missing ``Phi(s_T)`` is then estimated by ``Phi(s_{T-1})`` (documented approximation).

What this module cannot do: it does not render or score anything (the scorers and
``rewardlab.vlm_reward.training`` do), and running normalization makes ``Phi`` drift while its
statistics move, so the telescoping identity holds exactly only for ``normalize="none"`` or
once the statistics are frozen (``freeze_after``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

NORMALIZE_MODES = ("none", "running", "minmax", "std")
"""Score normalizations (the first three are ``VLMConfig.normalize``'s): none; running z-score;
running min-max (to ``[0, 1]``); divide by the running std only (sign kept)."""


class ScoreNormalizer:
    """Normalizes a stream of score batches with running statistics.

    Modes:
        ``none``: identity.
        ``running``: ``(x - mean) / std`` with the mean and variance of every score seen so far
            (Chan et al. parallel update, float64), like ``VecNormalize`` without the clip.
        ``std``: ``x / std``, no mean shift, so the sign of a score is kept.
        ``minmax``: ``(x - min) / (max - min)`` with the running min and max, so scores land in
            ``[0, 1]`` (a spread below ``eps`` maps to 0).

    Args:
        mode: one of :data:`NORMALIZE_MODES`.
        eps: floor of the standard deviation / range.
        freeze_after: stop updating after this many scores (``None``: never freeze). A frozen
            normalizer is a fixed affine map, so potential-based shaping stays exact.

    Raises:
        ValueError: unknown ``mode`` or non-positive ``eps``.
    """

    def __init__(self, mode: str = "none", eps: float = 1e-6, freeze_after: int | None = None):
        if mode not in NORMALIZE_MODES:
            raise ValueError(
                f"normalize: got {mode!r}, expected one of {', '.join(NORMALIZE_MODES)}"
            )
        if eps <= 0:
            raise ValueError(f"normalize eps: got {eps!r}, expected > 0")
        if freeze_after is not None and freeze_after < 1:
            raise ValueError(f"freeze_after: got {freeze_after!r}, expected >= 1 or None")
        self.mode, self.eps, self.freeze_after = mode, eps, freeze_after
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    @property
    def frozen(self) -> bool:
        """Whether the statistics no longer change."""
        return self.freeze_after is not None and self.count >= self.freeze_after

    @property
    def std(self) -> float:
        """Running standard deviation (population), at least ``eps``."""
        var = self.m2 / self.count if self.count > 0 else 1.0
        return max(var**0.5, self.eps)

    def update(self, x: torch.Tensor) -> None:
        """Fold the finite values of ``x`` into the statistics (no-op when frozen or ``none``)."""
        if self.mode == "none" or self.frozen:
            return
        x = x.detach().reshape(-1).double()
        x = x[torch.isfinite(x)]
        n = int(x.numel())
        if n == 0:
            return
        b_mean = float(x.mean())
        b_m2 = float(((x - b_mean) ** 2).sum())
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` with the current statistics (identity before any update)."""
        if self.mode == "none" or self.count == 0:
            return x
        if self.mode == "std":
            return x / self.std
        if self.mode == "running":
            return (x - self.mean) / self.std
        span = self.max - self.min
        if span < self.eps:
            return torch.zeros_like(x)
        return (x - self.min) / span

    def state_dict(self) -> dict[str, Any]:
        """The statistics, for checkpoints."""
        keys = ("count", "mean", "m2", "min", "max")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for k in ("count", "mean", "m2", "min", "max"):
            setattr(self, k, state[k])


def potential_shaping(
    phi: torch.Tensor, phi_next: torch.Tensor, gamma: float, terminated: torch.Tensor
) -> torch.Tensor:
    """Stateless shaping of one transition: ``gamma * Phi(s') * (1 - terminated) - Phi(s)``.

    ``phi`` must be ``Phi`` of the state the transition started from *in the same episode* and
    ``phi_next`` that of the state it reached (before any auto-reset); truncation is not
    termination (pass only ``terminated``). :class:`PotentialShaping` keeps ``phi`` per world
    across auto-resets for you.
    """
    return gamma * phi_next.masked_fill(terminated.bool(), 0.0) - phi


class PotentialShaping:
    """Per-world potential-based shaping ``r = gamma * Phi(s') - Phi(s)`` across auto-resets.

    Keeps ``Phi`` of every world's current state. Call :meth:`reset` with ``Phi(s_0)`` after
    ``env.reset()``, then :meth:`step` after every ``env.step``.

    Args:
        num_envs: worlds ``N``.
        gamma: discount of the learner, in ``(0, 1]``; use the learner's own ``gamma`` or the
            optimal policy is no longer guaranteed to be unchanged.
        device: device of the returned rewards.

    Raises:
        ValueError: ``gamma`` outside ``(0, 1]`` or ``num_envs < 1``.
    """

    def __init__(self, num_envs: int, gamma: float, device: str | torch.device = "cpu"):
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma: got {gamma!r}, expected 0 < gamma <= 1")
        if num_envs < 1:
            raise ValueError(f"num_envs: got {num_envs!r}, expected >= 1")
        self.num_envs, self.gamma = num_envs, float(gamma)
        self.device = torch.device(device)
        self.phi: torch.Tensor | None = None

    def reset(self, phi: torch.Tensor, env_ids: torch.Tensor | None = None) -> None:
        """Set ``Phi`` of the current (start) state of all worlds, or of ``env_ids`` only.

        Args:
            phi: ``[N]`` (all worlds) or ``[len(env_ids)]``.
            env_ids: worlds to set; all when ``None``.
        """
        phi = self._check(phi.to(self.device, torch.float32), "phi", env_ids)
        if env_ids is None:
            self.phi = phi.clone()
            return
        if self.phi is None:
            raise RuntimeError("PotentialShaping.reset(phi) for all worlds must come first")
        self.phi[env_ids.to(self.device)] = phi

    def step(
        self,
        phi_next: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        phi_reset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Shaped rewards of one batched transition, ``[N]`` float32.

        Args:
            phi_next: ``[N]`` ``Phi`` of the state each world reached. With ``phi_reset``, rows of
                finished worlds are their final state ``s_T``; without it, rows of finished
                worlds are the first state of their next episode.
            terminated: ``[N]`` bool, true termination (``Phi(s_T) = 0``).
            truncated: ``[N]`` bool, time limit (``Phi(s_T)`` kept: the learner bootstraps).
            phi_reset: ``[N]`` ``Phi`` of the first state of the next episode; only rows of
                finished worlds are read. ``None``: see ``phi_next``.

        Raises:
            RuntimeError: :meth:`reset` was never called.
            ValueError: a shape is not ``[N]``.
        """
        if self.phi is None:
            raise RuntimeError("PotentialShaping.step before reset(phi): Phi(s_0) is unknown")
        phi_next = self._check(phi_next.to(self.device, torch.float32), "phi_next")
        term = self._check(terminated.to(self.device, torch.bool), "terminated")
        trunc = self._check(truncated.to(self.device, torch.bool), "truncated") & ~term
        done = term | trunc
        if phi_reset is not None:
            phi_reset = self._check(phi_reset.to(self.device, torch.float32), "phi_reset")
            end_value = phi_next.masked_fill(term, 0.0)
            new_phi = torch.where(done, phi_reset, phi_next)
        else:
            # Final state unseen: Phi(s_T) ~ Phi(s_{T-1}) on truncation, 0 on termination.
            end_value = torch.where(trunc, self.phi, phi_next).masked_fill(term, 0.0)
            new_phi = phi_next
        reward = self.gamma * end_value - self.phi
        self.phi = new_phi.clone()
        return reward

    def state_dict(self) -> dict[str, Any]:
        """``Phi`` of the current states, for checkpoints."""
        return {"phi": None if self.phi is None else self.phi.cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        phi = state["phi"]
        self.phi = None if phi is None else self._check(phi.to(self.device), "phi").clone()

    def _check(
        self, x: torch.Tensor, name: str, env_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = self.num_envs if env_ids is None else int(env_ids.numel())
        if x.shape != (n,):
            raise ValueError(f"{name}: got shape {tuple(x.shape)}, expected ({n},)")
        return x


class ScoreReward:
    """Scores of frames -> rewards per step: scale, offset, normalization, optional shaping.

    With ``v = scale * norm(score) + offset`` (the order of ``VLMConfig``'s fields), the reward is
    ``v(s')`` without shaping and ``gamma * v(s') - v(s)`` with shaping (``Phi = v``). The
    components returned name what was paid: ``{name: reward}`` plus ``{name + "_score": raw
    score}`` (a diagnostic, not part of the total) to log as ``reward/<name>``.

    Args:
        num_envs: worlds ``N``.
        shaping: potential-based shaping on or off.
        gamma: the learner's discount (used only with ``shaping``).
        normalize: one of :data:`NORMALIZE_MODES`.
        scale: multiplies the normalized score.
        offset: added after ``scale``.
        freeze_after: freeze the normalizer after this many scores.
        name: component name (``reward/<name>`` in the logs).
        device: device of the returned rewards.
    """

    def __init__(
        self,
        num_envs: int,
        shaping: bool,
        gamma: float = 0.99,
        normalize: str = "none",
        scale: float = 1.0,
        offset: float = 0.0,
        freeze_after: int | None = None,
        name: str = "vlm",
        device: str | torch.device = "cpu",
    ):
        self.num_envs, self.shaping, self.name = num_envs, shaping, name
        self.scale, self.offset = float(scale), float(offset)
        self.normalizer = ScoreNormalizer(normalize, freeze_after=freeze_after)
        self.shaper = PotentialShaping(num_envs, gamma, device) if shaping else None
        self.device = torch.device(device)

    def _value(self, score: torch.Tensor) -> torch.Tensor:
        return score.to(self.device, torch.float32)

    def potential(self, score: torch.Tensor) -> torch.Tensor:
        """``scale * norm(score) + offset`` with the current statistics (no update)."""
        return self.scale * self.normalizer(self._value(score)) + self.offset

    def reset(self, score: torch.Tensor, env_ids: torch.Tensor | None = None) -> None:
        """Scores of the start states (all worlds, or ``env_ids``) after ``env.reset()``."""
        self.normalizer.update(self._value(score))
        if self.shaper is not None:
            self.shaper.reset(self.potential(score), env_ids)

    def step(
        self,
        score_next: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        score_reset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reward ``[N]`` and its components for one step; see :meth:`PotentialShaping.step`."""
        self.normalizer.update(self._value(score_next))
        if score_reset is not None:
            done = (terminated | truncated).to(score_reset.device)
            if done.any():
                self.normalizer.update(self._value(score_reset[done]))
        if self.shaper is None:
            reward = self.potential(score_next)
        else:
            phi_reset = None if score_reset is None else self.potential(score_reset)
            reward = self.shaper.step(self.potential(score_next), terminated, truncated, phi_reset)
        raw = score_next.to(self.device, torch.float32)
        return reward, {self.name: reward, f"{self.name}_score": raw}

    def state_dict(self) -> dict[str, Any]:
        """Normalizer statistics and current potentials, for checkpoints."""
        return {
            "normalizer": self.normalizer.state_dict(),
            "shaper": None if self.shaper is None else self.shaper.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.normalizer.load_state_dict(state["normalizer"])
        if self.shaper is not None and state.get("shaper") is not None:
            self.shaper.load_state_dict(state["shaper"])


def mix_rewards(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of named reward terms, RewardTerm-style: ``(total [N], {name: weighted})``.

    Use it to mix a VLM reward with code rewards, e.g.
    ``mix_rewards({"vlm": vlm_r, **code_components}, {"vlm": 1.0, "upright": 0.5})``.
    Missing weights default to 1; terms with weight 0 are dropped (as in
    :func:`rewardlab.rewards.compose`). Log every returned component as ``reward/<name>``.

    Raises:
        ValueError: no terms, a weight names no term, or the terms' shapes differ.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"reward weights name unknown terms {unknown}; terms: {sorted(terms)}")
    if not terms:
        raise ValueError("mix_rewards: no reward terms given")
    shapes = {name: tuple(t.shape) for name, t in terms.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"reward terms differ in shape: {shapes}")
    components = {
        name: float(weights.get(name, 1.0)) * t
        for name, t in terms.items()
        if weights.get(name, 1.0) != 0.0
    }
    if not components:
        first = next(iter(terms.values()))
        return torch.zeros_like(first, dtype=torch.float32), {}
    total = torch.stack(list(components.values())).sum(0)
    return total, components
