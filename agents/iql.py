"""The ``iql`` agent: Implicit Q-Learning (Kostrikov et al. 2021) on recorded episodes.

Offline RL from :class:`~rewardlab.envs.demos.Episodes` (successes, failures and partial
episodes alike), split like the BC agent (:mod:`rewardlab.agents.bc`), whose data loading,
observation normalization, evaluation, keep-best, checkpoints and export it mirrors:

- the networks (:class:`IQLNet`): the observation normalizer (fixed, from the data), a
  deterministic actor (the action mask of ``iql.ignore_obs`` + MLP, exported as the same
  :class:`~rewardlab.agents.networks.InferencePolicy` BC and PPO export), a state value ``V`` and a
  twin ``Q`` (:class:`~rewardlab.agents.sac.TwinQ`) with a Polyak-averaged target copy;
- the storage (:class:`TransitionStorage`): ``(s, a, r, s', done)`` of every valid step that has
  a next observation, with rewards from :func:`episode_rewards` (the seam for other rewards);
- the algorithm (:class:`IQL`): the value regresses onto the target ``min(Q1, Q2)`` with the
  asymmetric expectile loss (:func:`expectile_loss`), each Q onto ``r + discount * (1 - done) *
  V(s')``, and the actor by advantage-weighted regression (:func:`awr_weights`: ``exp(beta *
  (Q - V))`` clipped at ``max_weight``, times the squared action error -- the deterministic
  actor's form of the weighted log-likelihood);
- the runner (:class:`IQLRunner`, a :class:`~rewardlab.agents.runner.BaseRunner`).

Rewards and terminals. Episode step ``t`` pairs observation ``s_t`` with action ``a_t``; the
episodes' ``reward[t]`` and ``success[t]`` belong to the state ``s_t``, so the transition
``(s_t, a_t, s_{t+1})`` earns ``reward[t+1]`` (``iql.reward=task``) or ``success[t+1]``
(``iql.reward=success``); an episode's last valid step has no next observation and is not a
transition. The episode format does not record whether an episode ended by the task's
termination or by its time limit, so every transition bootstraps (``done = 0``): episode ends are
treated as time-outs. The storage keeps a ``done`` column for sources that record termination.

``total_steps`` counts gradient steps (one step = one update of V, Q and the actor), as for BC.
Checkpoints hold tensors and plain data (``weights_only`` loading) and the data's hash, so a
resumed run continues bit-identically (on the same machine) and refuses other data.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardlab.agents import checkpoints
from rewardlab.agents.bc import BCAgent, ObsMask, obs_mask
from rewardlab.agents.config import IQLConfig
from rewardlab.agents.networks import EmpiricalNormalization, mlp
from rewardlab.agents.offline_runner import OfflineRunner, fix_normalization, load_task_episodes
from rewardlab.agents.sac import TwinQ
from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.demos import Episodes


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean asymmetric squared error ``|tau - 1(diff < 0)| * diff**2`` (``diff = target - V``):
    errors where the target is above the value weigh ``tau``, below ``1 - tau``."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def awr_weights(advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """Advantage weights ``exp(beta * advantage)`` clipped at ``max_weight`` (no gradient)."""
    return torch.exp(beta * advantage.detach()).clamp(max=max_weight)


RewardSource = Callable[[Episodes, str], np.ndarray]
"""``source(episodes, model) -> [E, T]`` float32 reward of the state at each step (``model``:
``iql.reward_model``)."""

REWARD_SOURCES: dict[str, RewardSource] = {}
"""Rewards beyond the recorded ones, by ``iql.reward`` name. Layers above the agents register
theirs (``rewardlab.offline_rewards`` registers ``preference``: a ``vlm-prefs`` reward model
scoring each step's frame), since this layer knows neither renderers nor reward models."""


def register_reward_source(name: str, source: RewardSource) -> None:
    """Make ``iql.reward=name`` call ``source`` (see :data:`REWARD_SOURCES`)."""
    REWARD_SOURCES[name] = source


def episode_rewards(eps: Episodes, reward: str, model: str = "") -> np.ndarray:
    """``[E, T]`` float32 reward of the state at each step of ``eps``.

    The seam for rewards other than the recorded ones (code, CLIP, learned progress,
    preference models): anything that maps the episodes to a per-state reward
    (:data:`REWARD_SOURCES`).

    Args:
        eps: the episodes.
        reward: ``task`` (the recorded ``reward``), ``success`` (the success flag, 0/1) or a
            registered source (``preference``).
        model: the source's model file (``iql.reward_model``).

    Raises:
        ValueError: ``task`` on episodes without recorded rewards (``NaN``, e.g. from bags), an
            unknown or unregistered name, or what the source refuses (one line).
    """
    if reward in REWARD_SOURCES:
        out = np.asarray(REWARD_SOURCES[reward](eps, model), np.float32)
        if out.shape != eps.success.shape or not np.isfinite(out).all():
            raise ValueError(
                f"iql.reward: {reward} gave rewards of shape {out.shape} (finite: "
                f"{bool(np.isfinite(out).all())}), expected finite values of {eps.success.shape}"
            )
        return out
    if reward == "success":
        if eps.meta.get("labels") == "none":
            raise ValueError("iql.reward: success needs labelled episodes (these have none)")
        return eps.success.astype(np.float32)
    if reward == "task":
        mask = np.arange(eps.reward.shape[1])[None, :] < eps.length[:, None]
        if np.isnan(eps.reward[mask]).any():
            raise ValueError(
                "iql.reward: task, but the episodes have no recorded reward (NaN; e.g. from a "
                "bag); use iql.reward=success or label them"
            )
        return eps.reward.astype(np.float32)
    if reward == "preference":
        raise ValueError(
            "iql.reward: preference is registered by rewardlab.offline_rewards (the application "
            "imports it; import it before training from Python)"
        )
    known = ", ".join(["task", "success", *REWARD_SOURCES])
    raise ValueError(f"iql.reward: got {reward!r}, expected one of {known}")


class IQLNet(nn.Module):
    """Normalizer (fixed, from the data), deterministic actor, value and twin Q (+ target).

    Args:
        obs_dim: observation width.
        action_dim: action width.
        cfg: hidden sizes and activation.
        mask: ``[obs_dim]`` 0/1 of the columns the actor reads (see
            :func:`rewardlab.agents.bc.obs_mask`); all ones by default.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, cfg: IQLConfig, mask: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        hidden = tuple(int(h) for h in cfg.hidden)
        self.normalizer = EmpiricalNormalization(obs_dim, eps=0.0)
        mask = torch.ones(obs_dim) if mask is None else mask
        self.actor = nn.Sequential(ObsMask(mask), mlp(obs_dim, hidden, action_dim, cfg.activation))
        # the critics skip the same columns: a script's last action equals its next one, so a
        # value that reads it knows the action and the advantage carries no signal
        self.critic_mask = ObsMask(mask)
        self.value = mlp(obs_dim, hidden, 1, cfg.activation)
        self.q = TwinQ(obs_dim, action_dim, hidden, cfg.activation)
        self.q_target = copy.deepcopy(self.q)
        for p in self.q_target.parameters():
            p.requires_grad_(False)

    def set_normalization(self, obs: torch.Tensor) -> None:
        """Fix the normalizer to the mean and std (floored at
        :data:`~rewardlab.agents.offline_runner.STD_FLOOR`) of ``obs``."""
        fix_normalization(self.normalizer, obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions (unclamped) of raw observations."""
        return self.actor(self.normalizer(obs))


@dataclasses.dataclass
class TransitionStorage:
    """The data's transitions as tensors on the learner device."""

    obs: torch.Tensor
    """``[S, obs_dim]``."""
    actions: torch.Tensor
    """``[S, action_dim]`` in [-1, 1]."""
    rewards: torch.Tensor
    """``[S]``: reward of the state reached."""
    next_obs: torch.Tensor
    """``[S, obs_dim]``."""
    dones: torch.Tensor
    """``[S]`` 1 where the task terminated at the state reached (no bootstrap), else 0."""
    episodes: int
    """Episodes they came from."""
    digest: str
    """sha256 of the transitions (a resume checks it)."""

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(obs, actions, rewards, next_obs, dones)`` drawn uniformly with replacement."""
        idx = torch.randint(
            self.obs.shape[0], (batch,), generator=generator, device=generator.device
        )
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.dones[idx],
        )


def transitions(eps: Episodes, rewards: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(obs, actions, rewards, next_obs, dones)`` of every step with a next observation
    (:meth:`~rewardlab.envs.demos.Episodes.step_transitions`; ``dones`` all 0: see the module
    docstring).

    Args:
        eps: the episodes.
        rewards: ``[E, T]`` reward of the state at each step (:func:`episode_rewards`).
    """
    tr = eps.step_transitions(rewards)
    dones = np.zeros(len(tr), np.float32)  # episode ends are time-outs: see the module docstring
    return tr.obs, tr.actions, tr.rewards, tr.next_obs, dones


def transition_storage(cfg: IQLConfig, env: BatchedEnv, device: torch.device) -> TransitionStorage:
    """Load ``cfg.demos`` for ``env``'s task as transitions with ``cfg.reward``.

    Raises:
        ValueError: no data named, a bad file, another task, other widths, no transition, or no
            reward (one line naming what is wrong).
    """
    files = cfg.demo_files()
    eps = load_task_episodes("iql.demos", "iql", files, env)
    obs, act, rew, nxt, dones = transitions(eps, episode_rewards(eps, cfg.reward, cfg.reward_model))
    if len(obs) == 0:
        raise ValueError(f"iql.demos: no transition in {', '.join(files)} (episodes of 1 step)")
    digest = checkpoints.data_digest(obs, act, rew, nxt, dones)

    def put(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return TransitionStorage(
        put(obs), put(act).clamp(-1.0, 1.0), put(rew), put(nxt), put(dones), eps.num_episodes,
        digest,
    )  # fmt: skip


class IQL:
    """The updates (Adam at a fixed learning rate for the value, the Q pair and the actor)."""

    def __init__(self, net: IQLNet, cfg: IQLConfig) -> None:
        self.net, self.cfg = net, cfg
        lr = cfg.learning_rate
        self.v_optimizer = torch.optim.Adam(net.value.parameters(), lr=lr)
        self.q_optimizer = torch.optim.Adam(net.q.parameters(), lr=lr)
        self.actor_optimizer = torch.optim.Adam(net.actor.parameters(), lr=lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """By name (checkpoints)."""
        return {"value": self.v_optimizer, "q": self.q_optimizer, "actor": self.actor_optimizer}

    def update(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        """One step of V, Q, the actor and the target Q; returns the losses and statistics."""
        obs, act, rew, nxt, done = batch
        cfg, net = self.cfg, self.net
        s, s2 = net.critic_mask(net.normalizer(obs)), net.critic_mask(net.normalizer(nxt))
        with torch.no_grad():
            q_t = torch.minimum(*net.q_target(s, act))
        v = net.value(s).squeeze(-1)
        v_loss = expectile_loss(q_t - v, cfg.expectile)
        self._step(self.v_optimizer, v_loss)
        with torch.no_grad():
            target = rew + cfg.discount * (1.0 - done) * net.value(s2).squeeze(-1)
        q1, q2 = net.q(s, act)
        q_loss = 0.5 * ((q1 - target).square().mean() + (q2 - target).square().mean())
        self._step(self.q_optimizer, q_loss)
        adv = q_t - v.detach()
        w = awr_weights(adv, cfg.beta, cfg.max_weight)
        err = (net.actor(net.normalizer(obs)) - act).square().sum(-1)
        actor_loss = (w * err).mean()
        self._step(self.actor_optimizer, actor_loss)
        with torch.no_grad():
            for p, tp in zip(net.q.parameters(), net.q_target.parameters(), strict=True):
                tp.lerp_(p, cfg.polyak)
        return {
            "losses/value": float(v_loss.detach()),
            "losses/q": float(q_loss.detach()),
            "losses/actor": float(actor_loss.detach()),
            "losses/value_mean": float(v.detach().mean()),
            "losses/advantage_mean": float(adv.mean()),
            "losses/weight_mean": float(w.mean()),
        }

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


class IQLRunner(OfflineRunner):
    """Trains an :class:`IQLNet` on recorded episodes; metrics, evaluation and checkpoints in
    ``log_dir`` as :class:`~rewardlab.agents.bc.BCRunner` (the loop is
    :class:`~rewardlab.agents.offline_runner.OfflineRunner`'s; ``cfg`` an :class:`IQLConfig`)."""

    log_prefix = "iql"
    loss_keys = ("losses/value", "losses/q", "losses/actor")
    data_hint = "the episodes' rewards"
    progress_keys = (("q", "losses/q"), ("actor", "losses/actor"))
    cfg: IQLConfig
    net: IQLNet
    alg: IQL

    def _build(self, cfg: IQLConfig) -> None:
        self.cfg = cfg
        self.net = IQLNet(
            self.env.obs_dim, self.env.action_dim, cfg, obs_mask(self.env, tuple(cfg.ignore_obs))
        ).to(self.device)
        self.alg = IQL(self.net, cfg)

    def _make_storage(self) -> TransitionStorage:
        return transition_storage(self.cfg, self.env, self.device)

    def _update(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        return self.alg.update(batch)

    def _optimizer_state(self) -> dict[str, Any]:
        return {"optimizers": {k: o.state_dict() for k, o in self.alg.optimizers().items()}}

    def _load_optimizer_state(self, ckpt: dict[str, Any]) -> None:
        for name, opt in self.alg.optimizers().items():
            opt.load_state_dict(ckpt["optimizers"][name])

    def _best_state(self) -> dict[str, torch.Tensor]:
        return self.net.actor.state_dict()  # the critics are not part of the policy

    def _policy_parts(self, best: dict[str, torch.Tensor] | None) -> tuple[nn.Module, nn.Module]:
        actor = copy.deepcopy(self.net.actor)
        if best is not None:
            actor.load_state_dict(best)
        return copy.deepcopy(self.net.normalizer), actor

    def _data_mismatch(self, path: str | Path) -> str:
        return (
            f"{path}: trained on other data than iql.demos={self.cfg.demos!r} with "
            f"iql.reward={self.cfg.reward} (resume=false starts over)"
        )


class IQLAgent(BCAgent):
    """Implicit Q-Learning (``agent=iql``); settings: ``TrainConfig.iql`` (an ``IQLConfig``).
    Training, resume and loading are :class:`~rewardlab.agents.bc.BCAgent`'s with the
    :class:`IQLRunner`; the policy is its deterministic actor."""

    config_key = "iql"
    runner_class = IQLRunner
    policy_name = "an IQL policy"
