"""What the simulator backends (``mujoco``, ``warp``) share: a task's episode bookkeeping.

A backend steps its physics and computes the task's reward and done flags; :meth:`SimTaskEnv._end_step`
does the rest the same way on every backend: per-episode returns and reward terms, the ``info``
dict (``log``, ``success``, ``final_obs``, ``episode``), auto-reset of the finished worlds and
observation noise. Subclasses provide ``task``, ``sim``, ``reward_fn``, ``_dr``, ``_renderer``,
the episode buffers (``_ep_len``, ``_ep_return``, ``_ep_terms``), the actions (``_last_action``,
``_prev_action``) and ``_reset_worlds(ids)``.
"""

from __future__ import annotations

from typing import Any

import torch

from rewardlab.core.reward import RewardFn
from rewardlab.envs.base import BatchedEnv, StateField


class SimTaskEnv(BatchedEnv):
    """Base of the backends that simulate a registered task (see the module docstring)."""

    def state_spec(self) -> dict[str, StateField]:
        return self.task.full_state_spec()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def set_reward(self, reward_fn: RewardFn) -> None:
        """Replace the reward (an LLM-written or VLM reward under the same contract)."""
        self.reward_fn = reward_fn
        self._ep_terms = {}

    def _full_state(self) -> dict[str, torch.Tensor]:
        return self.task.full_state(self.sim, self._last_action, self._prev_action)

    def _reset_worlds(self, ids: torch.Tensor) -> None:
        raise NotImplementedError

    def _end_step(
        self,
        state: dict[str, torch.Tensor],
        reward: torch.Tensor,
        terms: dict[str, torch.Tensor],
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        success: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        """Book the step into the episodes, reset finished worlds, build ``info``.

        Args:
            state: the full state after the physics step.
            reward: ``[N]`` reward of the step (zero where the physics diverged).
            terms: the reward's components, each ``[N]``.
            terminated, truncated, success: ``[N]`` bool.

        Returns:
            ``(obs, state, info)``: the observation (first of the new episode where a world
            reset, noisy under domain randomization), the state after the resets, and ``info``.
        """
        self._ep_return += reward
        for name, value in terms.items():
            acc = self._ep_terms.get(name)
            if acc is None:
                acc = self._ep_terms[name] = torch.zeros_like(self._ep_return)
            acc += value
        obs = self.task.observation(state)
        done = terminated | truncated
        # One device-to-host transfer per step: whether any world finished, and the log means.
        stats = [done.any().double()] + (
            [torch.stack(list(terms.values())).mean(-1)] if terms else []
        )
        host = torch.cat([s.reshape(-1).double() for s in stats]).tolist()  # exact floats
        any_done, means = bool(host[0]), host[1:]
        info: dict[str, Any] = {
            "log": {f"reward/{k}": m for k, m in zip(terms, means, strict=True)},
            "success": success,
        }
        if any_done:
            ids = done.nonzero().squeeze(-1)
            info["final_obs"] = obs.clone()
            info["episode"] = {
                "env_ids": ids,
                "return": self._ep_return[ids].clone(),
                "length": self._ep_len[ids].clone(),
                "success": success[ids],
                **{f"reward/{k}": v[ids].clone() for k, v in self._ep_terms.items()},
            }
            self._reset_worlds(ids)
            state = self._full_state()
            fresh = self.task.observation(state)
            obs = torch.where(done[:, None], fresh, obs)
        else:
            info["final_obs"] = obs
        if self._dr is not None and self._dr.cfg.has_obs_noise:
            final = info["final_obs"]
            obs = self._dr.noise(obs)
            if any_done:  # some world finished: its final_obs gets its own noise
                info["final_obs"] = torch.where(done[:, None], self._dr.noise(final), obs)
            else:
                info["final_obs"] = obs
        return obs, state, info
