"""An Isaac Lab env (``DirectRLEnv`` or ``ManagerBasedRLEnv``) as a
:class:`~rewardlab.envs.base.BatchedEnv`.

Isaac Lab 3 needs its own environment (Python 3.12, Isaac Sim or the kit-less Newton stack,
its pinned torch; see docs/isaac_and_multigpu.md). This module imports nothing from it: it wraps
an env object with Isaac Lab's attributes and step contract, so it imports and is tested
anywhere.

Isaac Lab's step returns ``(obs_dict, reward, terminated, time_outs, extras)`` with
``obs_dict["policy"]`` the policy observation, and resets finished worlds inside ``step`` before
it computes observations -- as the batched API does. The adapter maps:

==============================  ================================================================
Isaac Lab                       BatchedEnv
==============================  ================================================================
``obs_dict["policy"]``          ``obs``
``reward``                      ``reward``, or ``reward_fn(state, action)`` when one is given
``terminated``                  ``terminated``
``time_outs``                   ``truncated`` (``& ~terminated``)
``extras["log"]``               ``info["log"]`` as ``isaaclab/<key>``
==============================  ================================================================

Isaac Lab returns no terminal observation. The adapter captures it by wrapping the env's
``_reset_idx`` (called after rewards, before the reset): it evaluates the observation there
(``_get_observations()`` for a direct env, ``observation_manager.compute()`` for a manager-based
one) for the worlds about to reset, and returns it in ``info["final_obs"]`` so that PPO can
bootstrap time-outs. Tasks whose observation function has side effects beyond the buffers it
fills (rare) can switch this off with ``capture_final_obs=False``; ``final_obs`` then equals
``obs`` and time-outs are not bootstrapped.

With ``reward_fn``, the adapter also wraps the reward computation (``_get_rewards`` /
``reward_manager.compute``) so that the env's ``reward_buf`` is our reward; the state it reads
is the post-physics, pre-reset one.

What it cannot do: per-world frames (use a TiledCamera), exact snapshots for resume,
asymmetric ``critic`` observations, or the physics part of rewardlab's
:class:`~rewardlab.envs.randomization.DomainRandConfig` (Isaac Lab has its own event-based
randomization: ``EventTermCfg`` with ``randomize_rigid_body_mass`` and friends); its observation
noise and action delay are applied by the adapter.
"""

from __future__ import annotations

from typing import Any

import torch

from rewardlab.core.reward import RewardFn
from rewardlab.envs.adapters._isaac_common import (
    IsaacAdapterBase,
    StateMap,
    StateTerm,
    SuccessFn,
    wrap_angle,
)
from rewardlab.envs.base import StateField
from rewardlab.envs.randomization import DomainRandConfig

CARTPOLE_STATE: dict[str, StateTerm] = {
    "cart_pos": StateTerm(
        lambda e: e.joint_pos[:, e._cart_dof_idx[0]],
        StateField((), "m", "rail", "Cart position along the rail, 0 at the middle."),
    ),
    "cart_vel": StateTerm(
        lambda e: e.joint_vel[:, e._cart_dof_idx[0]],
        StateField((), "m/s", "rail", "Cart velocity along the rail."),
    ),
    "pole_angle": StateTerm(
        lambda e: wrap_angle(e.joint_pos[:, e._pole_dof_idx[0]]),
        StateField((), "rad", "joint", "Pole angle from upright in [-pi, pi]; 0 is upright."),
    ),
    "pole_angvel": StateTerm(
        lambda e: e.joint_vel[:, e._pole_dof_idx[0]],
        StateField((), "rad/s", "joint", "Pole angular velocity."),
    ),
}
"""State of Isaac Lab's ``CartpoleEnv`` (Isaac-Cartpole-Direct-v0), named as ``cartpole_balance``
names it."""

STATE_MAPS: dict[str, dict[str, StateTerm]] = {"CartpoleEnv": CARTPOLE_STATE}
"""Built-in state maps by Isaac Lab env class name."""


class IsaacLabEnv(IsaacAdapterBase):
    """A batched env over an Isaac Lab ``DirectRLEnv`` or ``ManagerBasedRLEnv``.

    Args:
        env: the env (``gym.make(...)``; a gymnasium wrapper is unwrapped with ``.unwrapped``).
        state_map: named state read from the env; default: :data:`STATE_MAPS` by class name.
        reward_fn: ``compute_reward(state, action) -> (total, components)``; replaces the env's
            reward (and its ``reward_buf``).
        success_fn: ``success(state) -> [N] bool`` for :meth:`success` and episode stats.
        capture_final_obs: capture the terminal observation before resets (see the module).
        obs_group: the observation group the policy reads (Isaac Lab: ``"policy"``).
        domain_rand: observation noise and action delay (``obs_noise_std``, ``action_delay``)
            applied by the adapter; physics keys raise (use Isaac Lab's ``EventTermCfg``).
        seed: seed of those draws.
    """

    def __init__(
        self,
        env: Any,
        state_map: StateMap | None = None,
        reward_fn: RewardFn | None = None,
        success_fn: SuccessFn | None = None,
        domain_rand: DomainRandConfig | None = None,
        seed: int = 0,
        capture_final_obs: bool = True,
        obs_group: str = "policy",
    ) -> None:
        env = getattr(env, "unwrapped", env)
        self.env = env
        self.obs_group = obs_group
        self.manager_based = hasattr(env, "reward_manager")
        if state_map is None:
            state_map = STATE_MAPS.get(type(env).__name__)
        obs_space = env.single_observation_space[obs_group]
        self._setup(
            num_envs=env.num_envs,
            obs_dim=int(obs_space.shape[0]),
            action_dim=int(env.single_action_space.shape[0]),
            device=torch.device(env.device),
            max_episode_steps=int(env.max_episode_length),
            control_dt=float(env.step_dt),
            state_map=state_map,
            reward_fn=reward_fn,
            success_fn=success_fn,
            name=f"isaaclab:{type(env).__name__}",
            domain_rand=domain_rand,
            seed=seed,
        )
        self.capture_final_obs = capture_final_obs
        self._stepping = False
        self._pre_reset_state: dict[str, torch.Tensor] | None = None
        self._final_obs: torch.Tensor | None = None
        self._action: torch.Tensor | None = None
        self._install_hooks()

    # -- hooks into the env's step -------------------------------------------------------------

    def _install_hooks(self) -> None:
        env = self.env
        reset_idx = env._reset_idx

        def hooked_reset_idx(env_ids: Any, *args: Any, **kwargs: Any) -> Any:
            if self._stepping and self.capture_final_obs:
                self._final_obs = self._policy_obs(self._observe())
            return reset_idx(env_ids, *args, **kwargs)

        env._reset_idx = hooked_reset_idx
        if self.manager_based:
            compute = env.reward_manager.compute

            def hooked_reward(*args: Any, **kwargs: Any) -> torch.Tensor:
                out = compute(*args, **kwargs)
                return self._post_physics(out)

            env.reward_manager.compute = hooked_reward
        else:
            get_rewards = env._get_rewards

            def hooked_get_rewards() -> torch.Tensor:
                return self._post_physics(get_rewards())

            env._get_rewards = hooked_get_rewards

    def _post_physics(self, env_reward: torch.Tensor) -> torch.Tensor:
        """After physics and dones, before resets: read the state; our reward if we have one."""
        if not self._stepping:
            return env_reward
        state = self._read_state(self.env) if self.state_map else None
        self._pre_reset_state = state
        if self.reward_fn is None:
            return env_reward
        assert state is not None and self._action is not None
        return self._our_reward(state, self._action).to(env_reward.device)

    def _observe(self) -> dict[str, torch.Tensor]:
        env = self.env
        if self.manager_based:
            return env.observation_manager.compute()
        return env._get_observations()

    def _policy_obs(self, obs: Any) -> torch.Tensor:
        x = obs[self.obs_group] if isinstance(obs, dict) else obs
        return x.to(self.device, torch.float32)

    # -- BatchedEnv ------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every world (Isaac Lab's ``reset``; ``seed`` goes to it)."""
        obs, _ = self.env.reset(seed=seed)
        self._start(seed)
        obs = self._policy_obs(obs)
        return self._noisy(obs, obs, torch.zeros(self.num_envs, dtype=torch.bool))[0]

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        self._require_started()
        action = self._check_action(actions)
        self._prev_action, self._last_action = self._last_action, action
        self._action = action
        self._final_obs, self._pre_reset_state = None, None
        self._stepping = True
        try:
            obs_dict, rew, terminated, time_outs, extras = self.env.step(self._applied(action))
        finally:
            self._stepping = False
        obs = self._policy_obs(obs_dict)
        reward = rew.to(self.device, torch.float32)
        terminated = terminated.to(self.device).bool()
        truncated = time_outs.to(self.device).bool() & ~terminated
        done = terminated | truncated
        state = self._pre_reset_state
        success = None
        if self.success_fn is not None and state is not None:
            success = self.success_fn(state) & ~terminated
        info: dict[str, Any] = {"final_obs": obs}
        if success is not None:
            info["success"] = success
        if self._final_obs is not None and bool(done.any()):
            info["final_obs"] = torch.where(done[:, None], self._final_obs, obs)
        log = info.setdefault("log", {})
        for k, v in (extras.get("log") or {}).items():
            log[f"isaaclab/{k}"] = float(v) if not isinstance(v, torch.Tensor) else float(v.mean())
        self._account(reward, done, success, info)
        obs, info["final_obs"] = self._noisy(obs, info["final_obs"], done)
        return obs, reward, terminated, truncated, info

    def state(self) -> dict[str, torch.Tensor]:
        return self._read_state(self.env)

    def success(self) -> torch.Tensor:
        if self.success_fn is None:
            raise NotImplementedError(f"{self.name}: no success_fn given")
        return self.success_fn(self.state())

    def close(self) -> None:
        self.env.close()


def from_isaaclab(
    task_id: str, num_envs: int, device: str = "cuda:0", **kwargs: Any
) -> IsaacLabEnv:
    """Launch Isaac Lab headless, make a registered task (``gym.make``) and wrap it.

    Needs Isaac Lab 3 in its own environment (see docs/isaac_and_multigpu.md). Untested here.

    Raises:
        ImportError: Isaac Lab is not installed (with what to install).
    """
    try:
        from isaaclab.app import AppLauncher  # pyright: ignore[reportMissingImports]
    except ImportError as e:
        raise ImportError(
            "backend isaaclab needs Isaac Lab 3 (Python 3.12, its own pinned stack) installed in "
            f"its own environment; see docs/isaac_and_multigpu.md ({e})"
        ) from None
    AppLauncher(headless=True, device=device)  # must start before Isaac Lab modules import
    import gymnasium as gym
    import isaaclab_tasks  # pyright: ignore[reportMissingImports]  # noqa: F401 - registers the Isaac-* tasks
    from isaaclab_tasks.utils import parse_env_cfg  # pyright: ignore[reportMissingImports]

    cfg = parse_env_cfg(task_id, device=device, num_envs=num_envs)
    return IsaacLabEnv(gym.make(task_id, cfg=cfg), **kwargs)
