"""An Isaac Gym task (IsaacGymEnvs ``VecTask``) as a :class:`~rewardlab.envs.base.BatchedEnv`.

Isaac Gym needs its own environment (Python 3.6-3.8, NVIDIA's download, an NVIDIA GPU; see
docs/isaac_and_multigpu.md). This module imports nothing from it: it wraps a task object that
has the ``VecTask`` attributes, so it imports and is tested anywhere.

What ``VecTask.step`` gives and what the adapter makes of it:

==========================  ==================================================================
VecTask                     BatchedEnv
==========================  ==================================================================
``obs_dict["obs"]``         ``obs`` (already clamped to ``clip_obs`` by the task)
``rew_buf``                 ``reward``, or ``reward_fn(state, action)`` when one is given
``reset_buf``               ``terminated | truncated``
``extras["time_outs"]``     ``truncated`` (``terminated = reset_buf & ~time_outs``)
``progress_buf``            episode lengths (the adapter keeps its own counters too)
==========================  ==================================================================

Resets: an IsaacGymEnvs task resets the worlds it flagged at the *start of the next* step (in
``post_physics_step``), so the observation it returns for a finished world is the terminal one.
The adapter resets those worlds at once instead -- ``task.reset_idx(ids)`` and then
``task.compute_observations()`` -- so that, as the batched API promises, ``obs`` is the first
observation of the new episode and ``info["final_obs"]`` the last of the old. ``reset_idx``
writes the task's state tensors (``dof_pos``, ``root_states``, ...) in place, which is what
``compute_observations`` reads; quantities only the next ``gym.simulate`` refreshes (contact
forces, rigid-body states) are one step stale in that first observation, as they are in
IsaacGymEnvs itself. A task without ``compute_observations`` keeps Isaac Gym's deferred resets
(then ``obs`` of a finished world is its terminal observation; a warning says so).

What it cannot do: render per-world frames (use Isaac Gym camera sensors), snapshot the
simulator for exact resume, asymmetric ``states``, or apply the physics part of rewardlab's
:class:`~rewardlab.envs.randomization.DomainRandConfig` (use the task's own
``randomization_params``); its observation noise and action delay are applied by the adapter.
"""

from __future__ import annotations

import warnings
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

# State maps for IsaacGymEnvs tasks, named as our tasks name them, so that a reward written for
# ``cartpole_balance`` (or by an LLM from its describe()) runs on Isaac Gym's Cartpole unchanged.
CARTPOLE_STATE: dict[str, StateTerm] = {
    "cart_pos": StateTerm(
        lambda t: t.dof_pos[:, 0],
        StateField((), "m", "rail", "Cart position along the rail, 0 at the middle."),
    ),
    "cart_vel": StateTerm(
        lambda t: t.dof_vel[:, 0], StateField((), "m/s", "rail", "Cart velocity along the rail.")
    ),
    "pole_angle": StateTerm(
        lambda t: wrap_angle(t.dof_pos[:, 1]),
        StateField((), "rad", "joint", "Pole angle from upright in [-pi, pi]; 0 is upright."),
    ),
    "pole_angvel": StateTerm(
        lambda t: t.dof_vel[:, 1], StateField((), "rad/s", "joint", "Pole angular velocity.")
    ),
}

ANT_STATE: dict[str, StateTerm] = {
    "torso_pos": StateTerm(
        lambda t: t.root_states[:, 0:3],
        StateField((3,), "m", "world", "Torso centre position."),
    ),
    "torso_quat": StateTerm(  # Isaac Gym stores (x, y, z, w); ours is (w, x, y, z)
        lambda t: t.root_states[:, [6, 3, 4, 5]],
        StateField((4,), "1", "world", "Torso orientation quaternion (w, x, y, z)."),
    ),
    "torso_linvel": StateTerm(
        lambda t: t.root_states[:, 7:10], StateField((3,), "m/s", "world", "Torso velocity.")
    ),
    "forward_vel": StateTerm(
        lambda t: t.root_states[:, 7],
        StateField((), "m/s", "world", "Torso velocity along +x."),
    ),
    "joint_pos": StateTerm(
        lambda t: t.dof_pos, StateField((8,), "rad", "joint", "Joint angles (Isaac Gym order).")
    ),
    "joint_vel": StateTerm(
        lambda t: t.dof_vel, StateField((8,), "rad/s", "joint", "Joint angular velocities.")
    ),
}

STATE_MAPS: dict[str, dict[str, StateTerm]] = {"Cartpole": CARTPOLE_STATE, "Ant": ANT_STATE}
"""Built-in state maps by IsaacGymEnvs task class name."""


class IsaacGymEnv(IsaacAdapterBase):
    """A batched env over an IsaacGymEnvs ``VecTask``.

    Args:
        task: the constructed task (``isaacgymenvs.make(...)`` or the task class itself).
        state_map: named state read from the task's tensors; default: :data:`STATE_MAPS` by the
            task's class name, else none (then :meth:`state`, ``reward_fn`` and ``success_fn``
            are unavailable and the task's ``rew_buf`` is the reward).
        reward_fn: ``compute_reward(state, action) -> (total, components)`` from ``rewards/``;
            replaces ``rew_buf``. The state it sees is the one after the physics step, before
            any reset (the terminal state of finished worlds).
        success_fn: ``success(state) -> [N] bool``; fills ``info["episode"]["success"]`` and
            :meth:`success`.
        domain_rand: observation noise and action delay (``obs_noise_std``, ``action_delay``)
            applied by the adapter; physics keys raise (use the task's ``randomization_params``).
        seed: seed of those draws.
    """

    def __init__(
        self,
        task: Any,
        state_map: StateMap | None = None,
        reward_fn: RewardFn | None = None,
        success_fn: SuccessFn | None = None,
        domain_rand: DomainRandConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.task = task
        if state_map is None:
            state_map = STATE_MAPS.get(type(task).__name__)
        self._setup(
            num_envs=task.num_envs,
            obs_dim=task.num_obs,
            action_dim=task.num_actions,
            device=torch.device(task.rl_device),
            max_episode_steps=int(task.max_episode_length),
            control_dt=float(task.dt) * int(getattr(task, "control_freq_inv", 1)),
            state_map=state_map,
            reward_fn=reward_fn,
            success_fn=success_fn,
            name=f"isaacgym:{type(task).__name__}",
            domain_rand=domain_rand,
            seed=seed,
        )
        self._immediate = callable(getattr(task, "compute_observations", None))
        if not self._immediate:
            warnings.warn(
                f"{self.name}: the task has no compute_observations(); finished worlds reset at "
                "the start of the next step (Isaac Gym's way), so their obs is the terminal one",
                stacklevel=2,
            )
        self._state: dict[str, torch.Tensor] | None = None

    # -- BatchedEnv ------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every world (``reset_idx`` on all of them).

        Args:
            seed: seeds torch's global generator, which IsaacGymEnvs tasks draw their resets
                from (``torch_rand_float``); Isaac Gym's PhysX itself is not reseeded.
        """
        if seed is not None:
            torch.manual_seed(seed)
        t = self.task
        ids = torch.arange(self.num_envs, device=t.device)
        t.reset_idx(ids)
        self._clear_flags(ids)
        if self._immediate:
            t.compute_observations()
        self._start(seed)
        self._state = self._maybe_state()
        obs = self._obs()
        return self._noisy(obs, obs, torch.zeros(self.num_envs, dtype=torch.bool))[0]

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        self._require_started()
        action = self._check_action(actions)
        t = self.task
        obs_dict, rew, reset, extras = t.step(self._applied(action).to(t.rl_device))
        self._prev_action, self._last_action = self._last_action, action
        obs = obs_dict["obs"].to(self.device, torch.float32)
        done = reset.to(self.device).bool()
        time_outs = extras.get("time_outs")
        timed_out = (
            torch.zeros_like(done) if time_outs is None else time_outs.to(self.device).bool()
        )
        truncated = done & timed_out
        terminated = done & ~timed_out

        state = self._maybe_state()
        if self.reward_fn is not None:
            assert state is not None
            reward = self._our_reward(state, action)
        else:
            reward = rew.to(self.device, torch.float32)
        success = self.success_fn(state) if (self.success_fn and state is not None) else None
        info: dict[str, Any] = {"final_obs": obs}
        if success is not None:
            info["success"] = success & ~terminated
        self._account(reward, done, info.get("success"), info)
        if bool(done.any()) and self._immediate:
            ids = done.nonzero().squeeze(-1)
            info["final_obs"] = obs.clone()
            t.reset_idx(ids.to(t.device))
            self._clear_flags(ids.to(t.device))
            t.compute_observations()
            obs = torch.where(done[:, None], self._obs(), obs)
            state = self._maybe_state()
        self._state = state
        obs, info["final_obs"] = self._noisy(obs, info["final_obs"], done)
        return obs, reward, terminated, truncated, info

    def state(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            self._state = self._read_state(self.task)
        return dict(self._state)

    def success(self) -> torch.Tensor:
        if self.success_fn is None:
            raise NotImplementedError(f"{self.name}: no success_fn given")
        return self.success_fn(self.state())

    # -- helpers ---------------------------------------------------------------------------------

    def _maybe_state(self) -> dict[str, torch.Tensor] | None:
        return self._read_state(self.task) if self.state_map else None

    def _obs(self) -> torch.Tensor:
        t = self.task
        clip = getattr(t, "clip_obs", float("inf"))
        return torch.clamp(t.obs_buf, -clip, clip).to(self.device, torch.float32)

    def _clear_flags(self, ids: torch.Tensor) -> None:
        """What IsaacGymEnvs tasks' ``reset_idx`` clears, in case a task does not."""
        t = self.task
        t.reset_buf[ids] = 0
        t.progress_buf[ids] = 0


def from_isaacgymenvs(
    task: str,
    num_envs: int,
    seed: int = 0,
    sim_device: str = "cuda:0",
    rl_device: str = "cuda:0",
    headless: bool = True,
    **kwargs: Any,
) -> IsaacGymEnv:
    """Make an IsaacGymEnvs task (``isaacgymenvs.make``) and wrap it.

    Needs ``isaacgym`` (NVIDIA's Isaac Gym Preview 4, Python <= 3.8) and ``isaacgymenvs``; see
    docs/isaac_and_multigpu.md. Untested here (neither installs on our machines).

    Raises:
        ImportError: Isaac Gym or IsaacGymEnvs is not installed (with what to install).
    """
    try:
        import isaacgym  # noqa: F401 - must be imported before torch-using isaacgymenvs modules
        import isaacgymenvs  # pyright: ignore[reportMissingImports] (not installable here)
    except ImportError as e:
        raise ImportError(
            "backend isaacgym needs NVIDIA Isaac Gym (Preview 4, Python 3.8, download from "
            "developer.nvidia.com/isaac-gym) and IsaacGymEnvs (pip install -e IsaacGymEnvs) in "
            f"their own environment; see docs/isaac_and_multigpu.md ({e})"
        ) from None
    vec_task = isaacgymenvs.make(
        seed=seed,
        task=task,
        num_envs=num_envs,
        sim_device=sim_device,
        rl_device=rl_device,
        graphics_device_id=-1 if headless else 0,
        headless=headless,
        force_render=False,
    )
    return IsaacGymEnv(vec_task, **kwargs)
