"""What the Isaac Gym and Isaac Lab adapters share: named state read from the simulator's own
tensors, rewards from ``rewards/`` by state name, episode accounting, and the
:class:`~rewardlab.envs.base.BatchedEnv` surface.

Nothing here imports Isaac Gym or Isaac Lab; the adapters duck-type the wrapped env.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.core.reward import RewardFn
from rewardlab.envs.base import BatchedEnv, StateField, check_actions
from rewardlab.envs.randomization import DomainRandConfig, DomainRandomizer


@dataclass(frozen=True)
class StateTerm:
    """One named state quantity read from the wrapped env.

    Attributes:
        read: ``read(env) -> [N, *field.shape]`` tensor, from the env's own buffers (e.g.
            ``lambda t: t.dof_pos[:, 0]`` for an Isaac Gym task, ``lambda e:
            e.cartpole.data.joint_pos[:, 0]`` for an Isaac Lab one).
        field: shape, unit, frame and meaning, as the mujoco backend documents its state.
    """

    read: Callable[[Any], torch.Tensor]
    field: StateField


StateMap = Mapping[str, StateTerm]
SuccessFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    """Angles to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class IsaacAdapterBase(BatchedEnv):
    """The shared part of :class:`IsaacGymEnv` and :class:`IsaacLabEnv` (see their modules)."""

    def _setup(
        self,
        num_envs: int,
        obs_dim: int,
        action_dim: int,
        device: torch.device,
        max_episode_steps: int,
        control_dt: float,
        state_map: StateMap | None,
        reward_fn: RewardFn | None,
        success_fn: SuccessFn | None,
        name: str,
        domain_rand: DomainRandConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.num_envs = int(num_envs)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.device = torch.device(device)
        self.max_episode_steps = int(max_episode_steps)
        self.control_dt = float(control_dt)
        self.state_map: dict[str, StateTerm] = dict(state_map or {})
        self.reward_fn = reward_fn
        self.success_fn = success_fn
        self.name = name
        n, a, dev = self.num_envs, self.action_dim, self.device
        self._last_action = torch.zeros(n, a, device=dev)
        self._prev_action = torch.zeros(n, a, device=dev)
        self._ep_len = torch.zeros(n, dtype=torch.long, device=dev)
        self._ep_return = torch.zeros(n, device=dev)
        self._ep_terms: dict[str, torch.Tensor] = {}
        self._terms: dict[str, torch.Tensor] = {}
        self._started = False
        self._dr: DomainRandomizer | None = None
        if domain_rand is not None and domain_rand.enabled:
            self._dr = DomainRandomizer(domain_rand, None, self.num_envs, seed, device=self.device)
            self._dr.check_obs_dim(self.obs_dim)

    # -- domain randomization (observation noise and action delay only) ------------------------

    def _applied(self, action: torch.Tensor) -> torch.Tensor:
        """The action the simulator gets: the policy's, delayed per world when configured."""
        return action if self._dr is None else self._dr.delay(action)

    def _noisy(
        self, obs: torch.Tensor, final_obs: torch.Tensor, done: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Observation noise and latency (``domain_rand.obs_delay``) on ``obs``, noise on
        ``final_obs`` (rows of unfinished worlds equal); once per step and at reset."""
        if self._dr is None or not self._dr.cfg.transforms_obs:
            return obs, final_obs
        noisy = self._dr.observe(obs)
        if not bool(done.any()):
            return noisy, noisy
        return noisy, torch.where(done[:, None], self._dr.noise(final_obs), noisy)

    # -- state and rewards -----------------------------------------------------------------------

    def _read_state(self, source: Any) -> dict[str, torch.Tensor]:
        if not self.state_map:
            raise NotImplementedError(
                f"{self.name}: no state map; pass state_map={{name: StateTerm(read, field)}} "
                "so that rewards and success can read named quantities"
            )
        out = {k: t.read(source).to(self.device, torch.float32) for k, t in self.state_map.items()}
        out["last_action"] = self._last_action
        out["prev_action"] = self._prev_action
        return out

    def state_spec(self) -> dict[str, StateField]:
        spec = {k: t.field for k, t in self.state_map.items()}
        spec["last_action"] = StateField(
            (self.action_dim,), "1", "actuator", "Action of the last control step, in [-1, 1]."
        )
        spec["prev_action"] = StateField(
            (self.action_dim,), "1", "actuator", "Action one control step before last_action."
        )
        return spec

    def set_reward(self, reward_fn: RewardFn) -> None:
        """Train on ``reward_fn(state, action)`` instead of the wrapped env's own reward."""
        self.reward_fn = reward_fn
        self._ep_terms = {}

    def _check_action(self, actions: torch.Tensor) -> torch.Tensor:
        return check_actions(actions, self.num_envs, self.action_dim, self.device, self.name)

    def _our_reward(self, state: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """Evaluate ``reward_fn`` (checked), remembering its components for the logs."""
        assert self.reward_fn is not None
        total, terms = self.reward_fn(dict(state), action)
        if total.shape != (self.num_envs,):
            raise ValueError(
                f"{self.name}: reward must have shape [{self.num_envs}], got {list(total.shape)}"
            )
        self._terms = dict(terms)
        return total.float()

    # -- episodes --------------------------------------------------------------------------------

    def _account(
        self,
        reward: torch.Tensor,
        done: torch.Tensor,
        success: torch.Tensor | None,
        info: dict[str, Any],
    ) -> None:
        """Episode sums, ``info["episode"]`` for the finished worlds and ``info["log"]``."""
        self._ep_len += 1
        self._ep_return += reward
        for k, v in self._terms.items():
            acc = self._ep_terms.get(k)
            if acc is None:
                acc = self._ep_terms[k] = torch.zeros(self.num_envs, device=self.device)
            acc += v
        log = info.setdefault("log", {})
        for k, v in self._terms.items():
            log[f"reward/{k}"] = float(v.float().mean())
        if bool(done.any()):
            ids = done.nonzero().squeeze(-1)
            ep = {
                "env_ids": ids,
                "return": self._ep_return[ids].clone(),
                "length": self._ep_len[ids].clone(),
                **{f"reward/{k}": v[ids].clone() for k, v in self._ep_terms.items()},
            }
            if success is not None:
                ep["success"] = success[ids]
            info["episode"] = ep
            self._ep_len[ids] = 0
            self._ep_return[ids] = 0.0
            for v in self._ep_terms.values():
                v[ids] = 0.0
            self._last_action[ids] = 0.0
            self._prev_action[ids] = 0.0
            if self._dr is not None:
                self._dr.reset(ids)

    def _start(self, seed: int | None = None) -> None:
        self._ep_len.zero_()
        self._ep_return.zero_()
        for v in self._ep_terms.values():
            v.zero_()
        self._last_action.zero_()
        self._prev_action.zero_()
        if self._dr is not None:
            if seed is not None:
                self._dr.seed(seed)
            self._dr.reset(torch.arange(self.num_envs, device=self.device))
        self._started = True

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() before step()")

    def render(self, env_ids: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        raise NotImplementedError(
            f"{self.name}: per-world frames are not available through the adapter; use the "
            "simulator's own cameras (Isaac Gym camera sensors, Isaac Lab TiledCamera) and its "
            "video recording"
        )
