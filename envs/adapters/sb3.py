"""A stable-baselines3 ``VecEnv`` view of a whole batched env.

:class:`Sb3VecEnv` turns the ``N`` worlds of a :class:`~rewardlab.envs.base.BatchedEnv` into
SB3's vectorized API: numpy in and out, ``step_async``/``step_wait``, one ``info`` dict per world.
All work is batched; the only per-world Python is building the ``infos`` list (an empty dict
per world, filled only for the worlds whose episode ended this step).

For a world whose episode ended, its ``info`` holds what SB3 and its ``Monitor`` would put there:

- ``terminal_observation``: the last observation of the finished episode (the returned ``obs``
  row is already the next episode's first, as SB3 expects);
- ``TimeLimit.truncated``: ``True`` when the time limit cut the episode (so SB3 bootstraps);
- ``episode``: ``{"r": return, "l": length, "t": seconds since reset()}`` (as ``Monitor``), so
  SB3's logger shows ``rollout/ep_rew_mean`` and ``evaluate_policy`` reads true returns;
- ``is_success``: the task's success of the episode (SB3 logs ``rollout/success_rate``);
- ``reward/<term>``: the episode's sum of each reward component.

:attr:`Sb3VecEnv.last_log` holds the batched env's per-step metrics (``reward/<term>`` means over
the worlds) of the latest step, for callbacks that log them.

What it cannot do: per-world seeds or reset options (the batched env has one seeded stream;
``seed(s)`` reseeds it at the next ``reset()``, options are refused); resetting single worlds
on demand; per-world attributes (``get_attr``/``set_attr``/``env_method`` act on the one batched
env and broadcast the result); ``render_mode="human"`` without OpenCV.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from rewardlab.envs.base import BatchedEnv


def _to_numpy(x: torch.Tensor, dtype: type = np.float32) -> np.ndarray:
    """A fresh CPU numpy array (never a view of a tensor the env may write again)."""
    x = x.detach()
    if x.device.type == "cpu":
        return x.numpy().astype(dtype, copy=True)
    return x.cpu().numpy().astype(dtype, copy=False)


class Sb3VecEnv(VecEnv):
    """Every world of a batched env as one SB3 ``VecEnv`` (``num_envs = env.num_envs``).

    Spaces: ``observation_space = Box(-inf, inf, (obs_dim,), float32)``,
    ``action_space = Box(-1, 1, (action_dim,), float32)``. ``reset()`` returns
    ``float32 [N, obs_dim]``; ``step_wait()`` returns ``(obs float32 [N, obs_dim],
    rewards float32 [N], dones bool [N], infos list[dict])``.

    ``render_mode`` is ``"rgb_array"``: ``render()`` tiles one frame per world (rendering every
    world: costly for large ``N``), ``get_images()`` returns the frames.
    ``env_is_wrapped(Monitor)`` answers ``True``: the ``episode`` infos are Monitor's.

    Non-finite values in a diverged world's ``terminal_observation`` are replaced by finite ones
    (NaN -> 0, +-Inf -> +-float32 max): SAC stores it as the next observation, and ``0 * NaN``
    in its target would poison the critic even though the transition is terminal.

    Args:
        env: the batched env; it stays owned by the caller until :meth:`close`.
    """

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.render_mode = "rgb_array"
        obs_space = spaces.Box(-np.inf, np.inf, shape=(env.obs_dim,), dtype=np.float32)
        act_space = spaces.Box(-1.0, 1.0, shape=(env.action_dim,), dtype=np.float32)
        super().__init__(env.num_envs, obs_space, act_space)
        self.last_log: dict[str, float] = {}
        self._actions: torch.Tensor | None = None
        self._pending_seed: int | None = None
        self._t0 = time.time()

    # -- VecEnv --------------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Reset every world, reseeding with the seed given to :meth:`seed` if any (once).

        Raises:
            ValueError: options were set with ``set_options`` (not supported).
        """
        if any(self._options):
            raise ValueError("Sb3VecEnv: reset options are not supported")
        obs = self.env.reset(seed=self._pending_seed)
        self._pending_seed = None
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._actions = None
        self._t0 = time.time()
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Store ``actions`` ``[N, action_dim]`` (clipped to ``[-1, 1]`` by the env)."""
        act = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        if act.ndim == 1 and self.env.action_dim == 1 and act.shape[0] == self.num_envs:
            act = act[:, None]
        self._actions = act.to(self.env.device)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every world with the stored actions; see the module docstring for ``infos``.

        Raises:
            RuntimeError: no ``step_async`` since the last ``step_wait``.
        """
        if self._actions is None:
            raise RuntimeError("Sb3VecEnv: step_wait() without step_async()")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.last_log = dict(info.get("log", {}))
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ep = info.get("episode")
        if ep is not None and len(ep["env_ids"]):
            ids = ep["env_ids"].cpu().numpy()
            final = _to_numpy(info["final_obs"][ep["env_ids"]])
            if not np.isfinite(final).all():
                big = np.finfo(np.float32).max
                final = np.nan_to_num(final, nan=0.0, posinf=big, neginf=-big)
            trunc = truncated[ep["env_ids"]].cpu().numpy()
            returns = ep["return"].cpu().numpy().tolist()
            lengths = ep["length"].cpu().numpy().tolist()
            success = ep["success"].cpu().numpy().tolist()
            terms = {k: v.cpu().numpy().tolist() for k, v in ep.items() if k.startswith("reward/")}
            t = round(time.time() - self._t0, 6)
            for j, i in enumerate(ids.tolist()):
                d = infos[i]
                d["terminal_observation"] = final[j]
                d["TimeLimit.truncated"] = bool(trunc[j])
                d["episode"] = {"r": float(returns[j]), "l": int(lengths[j]), "t": t}
                d["is_success"] = bool(success[j])
                for k, v in terms.items():
                    d[k] = float(v[j])
        return _to_numpy(obs), _to_numpy(reward), _to_numpy(done, np.bool_), infos

    def close(self) -> None:
        """Close the batched env."""
        self.env.close()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed the batched env at the next :meth:`reset` (SB3 calls this from ``set_random_seed``).

        Args:
            seed: the seed of the batched env's one reset stream; ``None`` keeps the stream.

        Returns:
            ``[seed] * num_envs``: every world shares the one seeded stream.
        """
        self._pending_seed = seed
        return [seed] * self.num_envs

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's attribute (this view's for ``render_mode``), once per index.

        Raises:
            AttributeError: neither has the attribute.
        """
        n = len(self._indices(indices))
        if attr_name == "render_mode":
            return [self.render_mode] * n
        return [getattr(self.env, attr_name)] * n

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by every world).

        Raises:
            ValueError: ``indices`` is not every world (a batched env has no per-world attributes).
        """
        self._all_worlds(indices, "set_attr")
        setattr(self.env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the batched env once; its result is repeated for each index."""
        n = len(self._indices(indices))
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * n

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """``True`` for SB3's ``Monitor`` (this view reports Monitor's episode infos), else ``False``."""
        return [wrapper_class is Monitor] * len(self._indices(indices))

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One ``uint8 [H, W, 3]`` frame per world."""
        return list(self.env.render().cpu().numpy())

    # -- helpers -----------------------------------------------------------------------------------

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        idx = list(self._get_indices(indices))
        bad = [i for i in idx if not 0 <= i < self.num_envs]
        if bad:
            raise IndexError(f"Sb3VecEnv: world indices {bad} out of range [0, {self.num_envs})")
        return idx

    def _all_worlds(self, indices: VecEnvIndices, what: str) -> None:
        if sorted(set(self._indices(indices))) != list(range(self.num_envs)):
            raise ValueError(f"Sb3VecEnv.{what}: only all worlds at once (indices=None)")


__all__ = ["Sb3VecEnv"]
