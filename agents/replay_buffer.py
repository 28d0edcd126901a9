"""Replay storage of the off-policy agents: tensors ``[steps_per_world, num_envs, ...]`` on the
learner device, filled one step of every world at a time, sampled uniformly with n-step returns.

Each slot holds one transition of one world: the raw observation, the action taken, the reward,
the next observation (``info["final_obs"]`` where the episode ended, so a truncated episode is
bootstrapped from the state it was cut in), ``terminated`` (no bootstrap) and ``done``
(``terminated | truncated``: an n-step return stops there). Observations are stored raw and
normalized when sampled, with the learner's current statistics.

:meth:`ReplayBuffer.of_transitions` holds fixed transitions instead (demonstrations, for RLPD-style
batches that mix them with the online data: :func:`mix`).

What it cannot do: prioritized replay, image observations, or sequences for recurrent policies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "done")


@dataclasses.dataclass(frozen=True)
class ReplayBatch:
    """Sampled transitions, flat ``[B, ...]``; n-step targets are
    ``rewards + discount * (1 - terminated) * V(next_obs)``."""

    obs: torch.Tensor
    """Raw observations ``[B, obs_dim]`` the actions were taken on."""
    actions: torch.Tensor
    """Actions ``[B, action_dim]`` in ``[-1, 1]``."""
    rewards: torch.Tensor
    """Discounted sums ``[B]`` of up to ``n_step`` rewards (cut at an episode end)."""
    next_obs: torch.Tensor
    """Raw observations ``[B, obs_dim]`` to bootstrap from (the last of the summed steps)."""
    not_terminated: torch.Tensor
    """``[B]`` float: 0 where the last summed step terminated the episode (no bootstrap)."""
    discount: torch.Tensor
    """``[B]`` ``gamma ** k`` for the ``k`` summed steps."""


class ReplayBuffer:
    """A ring buffer of ``capacity`` steps of ``num_envs`` worlds.

    Args:
        num_envs: worlds written per :meth:`add`.
        capacity: steps kept per world (the oldest are overwritten).
        obs_dim: observation width.
        action_dim: action width.
        device: where the tensors live.
    """

    def __init__(
        self,
        num_envs: int,
        capacity: int,
        obs_dim: int,
        action_dim: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity: got {capacity}, expected >= 1 step per world")
        self.num_envs = int(num_envs)
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.device = torch.device(device)
        t, n, dev = self.capacity, self.num_envs, self.device
        self.obs = torch.zeros(t, n, obs_dim, device=dev)
        self.actions = torch.zeros(t, n, action_dim, device=dev)
        self.rewards = torch.zeros(t, n, device=dev)
        self.next_obs = torch.zeros(t, n, obs_dim, device=dev)
        self.terminated = torch.zeros(t, n, dtype=torch.bool, device=dev)
        self.done = torch.zeros(t, n, dtype=torch.bool, device=dev)
        self.pos = 0
        """Slot the next :meth:`add` writes."""
        self.size = 0
        """Steps per world stored (at most ``capacity``)."""

    @classmethod
    def of_transitions(
        cls,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        episode_end: torch.Tensor,
        device: str | torch.device = "cpu",
    ) -> ReplayBuffer:
        """A full buffer of fixed transitions ``[S, ...]`` in episode order (demonstrations).

        They are stored as one world's ``S`` steps; an n-step return stops after a step with
        ``episode_end`` (the last transition must have it) and bootstraps from its ``next_obs``
        (recorded episodes do not say whether they terminated: their ends count as time-outs).

        Raises:
            ValueError: no transition, mismatched lengths, or the last one not an episode end.
        """
        s = int(rewards.shape[0])
        if s == 0:
            raise ValueError("replay buffer of transitions: got none")
        lengths = {len(obs), len(actions), len(next_obs), len(episode_end)}
        if lengths != {s}:
            raise ValueError(f"replay buffer of transitions: lengths {sorted(lengths)} and {s}")
        if not bool(episode_end[-1]):
            raise ValueError("replay buffer of transitions: the last one must end its episode")
        buf = cls(1, s, int(obs.shape[1]), int(actions.shape[1]), device)
        buf.obs[:, 0] = obs.to(buf.device, torch.float32)
        buf.actions[:, 0] = actions.to(buf.device, torch.float32)
        buf.rewards[:, 0] = rewards.to(buf.device, torch.float32)
        buf.next_obs[:, 0] = next_obs.to(buf.device, torch.float32)
        buf.done[:, 0] = episode_end.to(buf.device, torch.bool)
        buf.pos, buf.size = 0, s
        return buf

    @property
    def num_transitions(self) -> int:
        """Transitions stored, summed over worlds."""
        return self.size * self.num_envs

    @torch.no_grad()
    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        """Store one step of every world (``[N, ...]`` tensors, raw observations)."""
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = actions
        self.rewards[i] = rewards
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.done[i] = terminated | truncated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    @torch.no_grad()
    def sample(
        self, batch_size: int, generator: torch.Generator, n_step: int = 1, gamma: float = 0.99
    ) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly (with replacement), with n-step returns.

        The return of a transition sums the rewards of its world's next ``n_step`` steps, stopping
        after a step that ended the episode or at the newest stored step.

        Raises:
            ValueError: the buffer is empty.
        """
        if self.size == 0:
            raise ValueError("replay buffer is empty")
        dev = self.device
        start = self.pos if self.size == self.capacity else 0  # slot of the oldest step
        age = torch.randint(0, self.size, (batch_size,), generator=generator, device=dev)
        env = torch.randint(0, self.num_envs, (batch_size,), generator=generator, device=dev)
        t = (start + age) % self.capacity
        rewards = self.rewards[t, env].clone()
        last = t
        discount = torch.full((batch_size,), float(gamma), device=dev)
        alive = ~self.done[t, env]
        for k in range(1, n_step):
            ok = alive & (age + k < self.size)
            tk = (start + age + k) % self.capacity
            rewards += torch.where(ok, discount * self.rewards[tk, env], 0.0)
            discount = torch.where(ok, discount * gamma, discount)
            last = torch.where(ok, tk, last)
            alive = ok & ~self.done[tk, env]
        return ReplayBatch(
            obs=self.obs[t, env],
            actions=self.actions[t, env],
            rewards=rewards,
            next_obs=self.next_obs[last, env],
            not_terminated=(~self.terminated[last, env]).float(),
            discount=discount,
        )

    def sample_mixed(
        self,
        demos: ReplayBuffer | None,
        demo_ratio: float,
        batch_size: int,
        generator: torch.Generator,
        n_step: int = 1,
        gamma: float = 0.99,
    ) -> ReplayBatch:
        """:meth:`sample`, with ``round(demo_ratio * batch_size)`` of the transitions drawn from
        ``demos`` instead (RLPD's symmetric sampling: Ball et al. 2023); the plain sample when
        ``demos`` is ``None``."""
        n_demo = int(round(demo_ratio * batch_size))
        if demos is None or n_demo == 0:
            return self.sample(batch_size, generator, n_step, gamma)
        return mix(
            self.sample(batch_size - n_demo, generator, n_step, gamma),
            demos.sample(n_demo, generator, n_step, gamma),
        )

    def state_dict(self) -> dict[str, Any]:
        """The stored steps (only the filled slots) and the write position: tensors and ints."""
        state: dict[str, Any] = {"pos": self.pos, "size": self.size, "capacity": self.capacity}
        for name in _FIELDS:
            state[name] = getattr(self, name)[: self.size].cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (same capacity, worlds and widths).

        Raises:
            ValueError: the saved buffer has another shape (the message names it).
        """
        size = int(state["size"])
        if int(state["capacity"]) != self.capacity or size > self.capacity:
            raise ValueError(
                f"replay buffer: saved capacity {state['capacity']} steps per world, "
                f"this run has {self.capacity} (buffer_size or num_envs changed)"
            )
        for name in _FIELDS:
            saved = state[name]
            mine = getattr(self, name)
            if tuple(saved.shape[1:]) != tuple(mine.shape[1:]):
                raise ValueError(
                    f"replay buffer: saved {name} has shape {list(saved.shape[1:])} per step, "
                    f"this run has {list(mine.shape[1:])}"
                )
            mine.zero_()
            mine[:size] = saved.to(self.device)
        self.pos = int(state["pos"])
        self.size = size


def mix(*batches: ReplayBatch) -> ReplayBatch:
    """The batches' transitions as one batch (concatenated in order)."""
    return ReplayBatch(
        **{
            f.name: torch.cat([getattr(b, f.name) for b in batches])
            for f in dataclasses.fields(ReplayBatch)
        }
    )
