"""The step template of the simulator backends (``mujoco``, ``warp``); a backend fills its hooks.

:class:`SimTaskEnv` owns everything about a batched env that does not depend on the physics
engine, as Isaac Lab's ``DirectRLEnv.step`` does: checking and clipping actions, action delay,
writing controls, the task's state, reward, termination, truncation and divergence, the
episode bookkeeping, the ``info`` dict, auto-reset of finished worlds, observation noise,
reset, snapshots and rendering. One control step (:meth:`SimTaskEnv.step`)::

    action = check(actions)                        # [N, A] float32, clipped to [-1, 1]
    ctrl = mid + half * delay(action)              # _apply_action: domain-rand delay, scaling
    _physics_step()                                # backend: frame_skip physics steps
    episode_length += 1                            # the state's episode_step counts this step
    state = task.full_state(sim, action, previous) # the task's named quantities [N, ...]
    reward, terms = reward_fn(state, action)       # terms named signal/... are signals:
    terminated = task.terminated(state) | diverged # diverged: NaN/Inf physics, reward 0
                 | terms["signal/terminate"] > 0.5 # a reward's own termination (IsaacGymEnvs)
    truncated = episode length reached & ~terminated
    _end_step(...)                                 # book episodes, reset finished worlds, info
    _after_step()                                  # backend: optional checks

A backend (a subclass) builds its physics in ``__init__`` between :meth:`_init_task` and
:meth:`_init_buffers`, and implements these hooks (tensor shapes in their docstrings):

- :meth:`_physics_step`: advance every world one control step (``frame_skip`` physics steps),
  leaving the derived fields of ``sim`` current.
- :meth:`_restore_rows`: write the freshly reset integration state into some worlds' rows.
- :meth:`_forward`: recompute the derived fields of worlds whose rows were written.
- :meth:`_write_physics`: write per-world model values (domain randomization).
- :meth:`_physics_snapshot` and the backend's ``load_state_dict``: the physics rows of a
  snapshot.
- :meth:`_render_worlds`: fill an ``MjData`` with each requested world's state in turn.

Every tensor the task and the reward see lives on ``sim_device`` (the physics' device); the
returned tensors are moved to ``device`` when the two differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import TERMINATE, RewardFn, compose, split_signals
from rewardlab.envs.base import BatchedEnv, StateField, check_actions
from rewardlab.envs.randomization import DomainRandomizer
from rewardlab.envs.rendering import make_renderer
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig

EPISODE_STEP = StateField(
    (),
    "1",
    "episode",
    "Control steps taken in the current episode, this one included: 0 right after a reset, "
    "1 after the first step (IsaacGymEnvs' progress_buf).",
)
"""The ``episode_step`` entry every simulated task's state ends with."""

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]
"""``(obs [N, obs_dim], reward [N], terminated [N], truncated [N], info)``."""


def env_tensors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an env method with autograd off and inference mode off.

    The env's own buffers (episode sums, counters) persist across calls; created or updated
    inside a caller's ``torch.inference_mode()`` they would become inference tensors that a later
    call outside it may not update in place. The returned tensors are plain, grad-free tensors.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return method(*args, **kwargs)

    return wrapper


class SimTaskEnv(BatchedEnv):
    """Base of the backends that simulate a registered task (see the module docstring).

    Shapes: ``N`` worlds (``num_envs``), ``A`` actuators (``action_dim``).
    """

    model: mujoco.MjModel
    """The task's compiled MJCF (rendering and model constants; physics lives in the backend)."""
    task: Task
    """The task instance: state, observation, success, termination, resets, default reward."""
    cfg: TaskConfig
    """The task's config (``task.cfg``)."""
    sim: SimView
    """Live ``[N, ...]`` views of the physics rows (qpos, qvel, ctrl, the task's derived fields)."""
    sim_device: torch.device
    """Device of the physics and of every tensor the task and the reward see."""
    reward_fn: RewardFn
    """``reward_fn(state, action) -> (reward [N], {term: [N]})``."""
    _dr: DomainRandomizer | None
    """Domain randomization (physics values, obs noise, action delay); ``None`` when off."""
    _gen: torch.Generator
    """Generator of the reset distribution (on ``sim_device``)."""
    _ctrl_mid: torch.Tensor
    """``[A]`` centre of each actuator's control range (action 0); the dtype of ``sim.ctrl``."""
    _ctrl_half: torch.Tensor
    """``[A]`` half-width of each actuator's control range (action 1 - action 0)."""
    _last_action: torch.Tensor
    """``[N, A]`` float32: the action of the last control step (zero after a reset)."""
    _prev_action: torch.Tensor
    """``[N, A]`` float32: the action of the step before that (zero after a reset)."""
    _ep_len: torch.Tensor
    """``[N]`` int64: control steps of each world's current episode."""
    _ep_return: torch.Tensor
    """``[N]`` float32: sum of the rewards of each world's current episode."""
    _ep_terms: dict[str, torch.Tensor]
    """Reward term name -> ``[N]`` float32 episode sum (created on the first step)."""
    _ep_sums: torch.Tensor | None
    """``[1 + T, N]`` float32 whose rows ``_ep_return`` and the ``_ep_terms`` values are (views),
    so that a step adds all its terms and a reset zeroes all sums in one op each; ``None`` until
    the first step and whenever ``_ep_terms`` was replaced (gathered again at the next step)."""
    _state: dict[str, torch.Tensor] | None
    """The full state after the last step or reset; ``None`` before the first reset."""
    _renderer: mujoco.Renderer | None
    """Offscreen renderer of :meth:`render`, made on first use."""
    _render_data: mujoco.MjData | None
    """Scratch ``MjData`` that :meth:`render` fills with one world at a time."""
    _render_size: tuple[int, int]
    """``(height, width)`` of :meth:`render` frames."""
    _move_out: bool
    """Whether returned tensors are moved from ``sim_device`` to ``device``."""

    # -- construction ----------------------------------------------------------------------------

    def _init_task(
        self,
        task_cls: type[Task],
        cfg: TaskConfig | None,
        num_envs: int,
        device: torch.device,
        sim_device: torch.device,
        torch_threads: int | None,
    ) -> None:
        """Load the model, make the task, set the sizes (first part of a backend's ``__init__``).

        Raises:
            ValueError: ``num_envs`` < 1, or a task config value out of range.
        """
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if torch_threads is not None and sim_device.type == "cpu":
            torch.set_num_threads(torch_threads)
        self.device, self.sim_device = device, sim_device
        self._move_out = device != sim_device
        self.model = task_cls.load_model()
        self.task = task_cls(cfg if cfg is not None else task_cls.default_config(), self.model)
        self.cfg = self.task.cfg
        self.num_envs = num_envs
        self.max_episode_steps = self.cfg.episode_steps
        self.control_dt = float(self.model.opt.timestep) * self.cfg.frame_skip
        self.action_dim = self.task.action_dim  # the task's action map's, else model.nu

    def _init_buffers(
        self,
        seed: int,
        reward_fn: RewardFn | None,
        render_size: tuple[int, int],
        ctrl_dtype: torch.dtype,
    ) -> None:
        """Control scaling, reward, generator and episode buffers (after the physics exists)."""
        lo, hi = self.model.actuator_ctrlrange.T.copy()
        limited = self.model.actuator_ctrllimited.astype(bool)
        lo[~limited], hi[~limited] = -1.0, 1.0
        on = {"dtype": ctrl_dtype, "device": self.sim_device}
        self._ctrl_mid = torch.as_tensor((hi + lo) / 2, **on)
        self._ctrl_half = torch.as_tensor((hi - lo) / 2, **on)
        self.reward_fn = reward_fn or compose(self.task.reward_terms())
        self._gen = torch.Generator(device=self.sim_device)
        self._gen.manual_seed(seed)
        n, f32 = self.num_envs, {"dtype": torch.float32, "device": self.sim_device}
        self._last_action = torch.zeros(n, self.action_dim, **f32)
        self._prev_action = torch.zeros(n, self.action_dim, **f32)
        self._ep_len = torch.zeros(n, dtype=torch.long, device=self.sim_device)
        self._ep_return = torch.zeros(n, **f32)
        self._ep_terms = {}
        self._ep_sums = None
        self._signals: dict[str, torch.Tensor] = {}
        self._state = None
        self._renderer = None
        self._render_size = render_size
        self._render_data = None

    # -- hooks a backend implements --------------------------------------------------------------

    def _physics_step(self) -> None:
        """Advance every world by one control step (``cfg.frame_skip`` physics steps) under the
        controls in ``sim.ctrl``; afterwards the derived fields of ``sim`` are current."""
        raise NotImplementedError

    def _restore_rows(self, ids: torch.Tensor) -> None:
        """Write the freshly reset integration state (``mj_resetData``) into worlds ``ids``
        (``[M]`` int64 on ``sim_device``); the task then writes its initial qpos/qvel."""
        raise NotImplementedError

    def _forward(self, ids: torch.Tensor) -> None:
        """Recompute the position- and velocity-stage fields of worlds ``ids`` (``[M]``) after
        their rows were written (a backend may recompute every world)."""
        raise NotImplementedError

    def _write_physics(self, ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """Write per-world model values ``{MjModel field: [M, ...]}`` of worlds ``ids``
        (``DomainRandomizer.sample_physics``) and the constants derived from them."""
        raise NotImplementedError

    def _physics_snapshot(self) -> dict[str, Any]:
        """CPU copies of every world's integration-state rows, ``{field: [N, ...]}``."""
        raise NotImplementedError

    def _render_worlds(self, ids: list[int], data: mujoco.MjData) -> Iterator[mujoco.MjData]:
        """Yield ``data`` (or another ``MjData``) filled with each world of ``ids`` in turn."""
        raise NotImplementedError

    def _after_step(self) -> None:
        """Called at the end of every :meth:`step` (e.g. capacity checks); nothing by default."""

    def _model_fields_written(self, ids: torch.Tensor) -> None:
        """The task wrote per-world model fields (``sim.model``) of worlds ``ids`` at reset:
        recompute what the backend derives from them; nothing by default."""

    # -- BatchedEnv --------------------------------------------------------------------------------

    @env_tensors
    def reset(self, seed: int | None = None) -> torch.Tensor:
        all_ids = torch.arange(self.num_envs, device=self.sim_device)
        if seed is not None:
            self._gen.manual_seed(seed)
            if self._dr is not None:  # the seed decides the worlds' physics too
                self._dr.seed(seed)
                if self._dr.physics_fields and not self._dr.cfg.resample_on_reset:
                    self._write_physics(all_ids, self._dr.sample_physics(all_ids))
        self._reset_worlds(all_ids)
        self._state = self._full_state()
        obs = self.task.observation(self._state)
        if self._dr is not None:
            obs = self._dr.observe(obs)  # noise and latency
        return self._out(obs)

    @env_tensors
    def step(self, actions: torch.Tensor) -> StepResult:
        """One control step of every world (the template; see the module docstring and
        :meth:`BatchedEnv.step` for the returned values)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = check_actions(
            actions, self.num_envs, self.action_dim, self.sim_device, self.task.name
        )
        self._apply_action(action if self._dr is None else self._dr.delay(action))
        if self._dr is not None:  # random pushes (domain_rand.push_interval)
            self._dr.push(self.sim.qvel, self._ep_len)
        self._physics_step()
        self._prev_action, self._last_action = self._last_action, action
        self._ep_len += 1  # the state's episode_step counts this step (IsaacGymEnvs' progress_buf)

        state = self._full_state()
        reward, terms = self.reward_fn(state, action)
        terms, self._signals = split_signals(terms)  # signal/... components are not terms
        # A world whose physics blew up (NaN/Inf) ends as terminated with zero reward.
        diverged = ~torch.isfinite(self.sim.qpos.sum(-1) + self.sim.qvel.sum(-1))
        terminated = self.task.terminated(state) | diverged
        if TERMINATE in self._signals:  # the reward's own termination (an IsaacGymEnvs reset)
            terminated = terminated | (self._signals[TERMINATE] > 0.5)
        truncated = (self._ep_len >= self.max_episode_steps) & ~terminated
        success = self.task.success(state)
        if not self.task.success_survives_termination:
            success = success & ~terminated
        reward = reward.masked_fill(diverged, 0.0)
        self.task.after_step(self.sim, state, self._gen)  # e.g. a reached goal is redrawn
        obs, state, info = self._end_step(state, reward, terms, terminated, truncated, success)
        self._state = state
        self._after_step()
        if not self._move_out:
            return obs, reward.float(), terminated, truncated, info
        return (
            self._out(obs),
            self._out(reward.float()),
            self._out(terminated),
            self._out(truncated),
            self._info_out(info),
        )

    def state(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            raise RuntimeError("call reset() before state()")
        return {k: self._out(v) for k, v in self._state.items()}

    def state_spec(self) -> dict[str, StateField]:
        return {**self.task.full_state_spec(), "episode_step": EPISODE_STEP}

    def success(self) -> torch.Tensor:
        if self._state is None:
            raise RuntimeError("call reset() before success()")
        return self._out(self.task.success(self._state))

    def render(self, env_ids: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """Render worlds with MuJoCo's offscreen renderer, one world at a time, with the
        model's camera 0 (or the free camera); ``uint8 [n, H, W, 3]`` on the CPU."""
        ids = list(range(self.num_envs)) if env_ids is None else [int(i) for i in env_ids]
        h, w = self._render_size
        if not ids:
            return torch.zeros((0, h, w, 3), dtype=torch.uint8)
        if self._renderer is None:
            # Software EGL (no GPU) spends most of a frame on multisampling and the 4096^2 shadow
            # map; these settings make it several times faster at little visual cost.
            self.model.vis.quality.offsamples = 0
            self.model.vis.quality.shadowsize = min(int(self.model.vis.quality.shadowsize), 1024)
            self._renderer = make_renderer(self.model, height=h, width=w)
            self._render_data = mujoco.MjData(self.model)
        assert self._render_data is not None
        camera = 0 if self.model.ncam > 0 else -1
        frames = []
        for data in self._render_worlds(ids, self._render_data):
            mujoco.mj_forward(self.model, data)
            self._renderer.update_scene(data, camera=camera)
            frames.append(self._renderer.render().copy())
        return torch.from_numpy(np.stack(frames))

    def get_state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: physics rows, episode counters, RNG,
        task buffers and domain randomization (all on the CPU).

        Checkpoints store this so that a resumed run continues exactly where it stopped.
        """
        if self._state is None:
            raise RuntimeError("call reset() before get_state_dict()")
        return {
            "physics": self._physics_snapshot(),
            "ep_len": self._ep_len.cpu().clone(),
            "ep_return": self._ep_return.cpu().clone(),
            "ep_terms": {k: v.cpu().clone() for k, v in self._ep_terms.items()},
            "last_action": self._last_action.cpu().clone(),
            "prev_action": self._prev_action.cpu().clone(),
            "generator": self._gen.get_state(),
            "task": self.task.get_state_dict(),
            # the state as the last step built it (a task may read buffers its after_step has
            # moved on since, and derived fields such as actuator forces are not physics rows)
            "state": {k: v.cpu().clone() for k, v in self._state.items()},
            **({"domain_rand": self._dr.state_dict()} if self._dr is not None else {}),
        }

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def set_reward(self, reward_fn: RewardFn) -> None:
        """Replace the reward (an LLM-written or VLM reward under the same contract)."""
        self.reward_fn = reward_fn
        self._ep_terms = {}
        self._ep_sums = None

    # -- the shared steps of the template --------------------------------------------------------

    def _apply_action(self, applied: torch.Tensor) -> None:
        """Write controls for ``applied`` ``[N, A]`` in ``[-1, 1]``: each actuator's range
        centre plus the action times its half-width (``[-1, 1]`` for unlimited actuators), or
        what the task's action map says (``rewardlab.envs.tasks.authoring.ActionMap``)."""
        amap = self.task.action_map
        if amap is not None:  # task-space terms read the physics (frame, joint axes)
            if getattr(amap, "needs_sim", False):
                amap.apply(self.sim.ctrl, applied, self.sim)
            else:
                amap.apply(self.sim.ctrl, applied)
            return
        self.sim.ctrl.copy_(self._ctrl_mid + self._ctrl_half * applied.to(self._ctrl_mid.dtype))

    def _full_state(self) -> dict[str, torch.Tensor]:
        """The task's state plus ``prev_action`` and ``episode_step``, each ``[N, ...]`` on
        ``sim_device``."""
        out = self.task.full_state(self.sim, self._last_action, self._prev_action)
        out["episode_step"] = self._ep_len.to(torch.float32)
        return out

    def _reset_worlds(self, ids: torch.Tensor) -> None:
        """Start new episodes in worlds ``ids`` (``[M]`` int64 on ``sim_device``): fresh rows,
        new domain-randomization draws, the task's initial state, zero actions and sums."""
        self._restore_rows(ids)
        if self._dr is not None:
            if self._dr.physics_fields and self._dr.cfg.resample_on_reset:
                self._write_physics(ids, self._dr.sample_physics(ids))
            self._dr.reset(ids)
        if self.task.action_map is not None:  # controls start at the map's default pose
            self.task.action_map.reset(self.sim.ctrl, ids)
        self.task.reset(self.sim, ids, self._gen)
        if self.task.model_fields:
            self._model_fields_written(ids)
        self._last_action[ids] = 0.0
        self._prev_action[ids] = 0.0
        self._forward(ids)
        self._ep_len[ids] = 0
        if self._ep_sums is not None:  # the return and every term sum at once
            self._ep_sums.index_fill_(1, ids, 0.0)
        else:
            self._ep_return[ids] = 0.0
            for v in self._ep_terms.values():
                v[ids] = 0.0

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
            ``(obs, state, info)``: the observation ``[N, obs_dim]`` (first of the new episode
            where a world reset, noisy under domain randomization), the state after the
            resets, and ``info`` (see :meth:`BatchedEnv.step`).
        """
        self._ep_return += reward
        stacked = torch.stack(list(terms.values())) if terms else None
        if self._ep_sums is None or tuple(terms) != tuple(self._ep_terms):
            # the first step, a new or a missing term, a loaded snapshot: term by term
            for name, value in terms.items():
                acc = self._ep_terms.get(name)
                if acc is None:
                    acc = self._ep_terms[name] = torch.zeros_like(self._ep_return)
                acc += value
            self._gather_ep_sums()
        elif stacked is not None and stacked.dtype == self._ep_sums.dtype and stacked.shape[1:] == self._ep_sums.shape[1:]:  # fmt: skip
            self._ep_sums[1:] += stacked  # every term at once (the same elementwise adds)
        else:
            for name, value in terms.items():
                self._ep_terms[name] += value
        obs = self.task.observation(state)
        done = terminated | truncated
        # One device-to-host transfer per step: whether any world finished, and the log means.
        stats = [done.any().double()] + ([stacked.mean(-1)] if stacked is not None else [])
        host = torch.cat([s.reshape(-1).double() for s in stats]).tolist()  # exact floats
        any_done, means = bool(host[0]), host[1:]
        info: dict[str, Any] = {
            "log": {f"reward/{k}": m for k, m in zip(terms, means, strict=True)},
            "success": success,
        }
        if any_done:
            ids = done.nonzero().squeeze(-1)
            info["final_obs"] = obs.clone()
            if self._ep_sums is not None:  # one gather for the return and the term sums
                ended = self._ep_sums.index_select(1, ids).unbind(0)
                ret, ended_terms = ended[0], dict(zip(self._ep_terms, ended[1:], strict=True))
            else:
                ret = self._ep_return[ids].clone()
                ended_terms = {k: v[ids].clone() for k, v in self._ep_terms.items()}
            info["episode"] = {
                "env_ids": ids,
                "return": ret,
                "length": self._ep_len[ids].clone(),
                "success": success[ids],
                **{f"reward/{k}": v for k, v in ended_terms.items()},
                **{k: v[ids].clone() for k, v in self._signals.items()},  # on the last step
                **self.task.episode_metrics(ids),
            }
            self._reset_worlds(ids)
            after = self._full_state()
            fresh = self.task.observation(after)
            obs = torch.where(done[:, None], fresh, obs)
            # The worlds that reset start their new episode; the others keep the state this step
            # built (what the reward, success and observation saw), not one recomputed after the
            # task's after_step moved its buffers on (contact timers, previous velocities).
            state = {k: _rows_where(done, v, state[k]) for k, v in after.items()}
        else:
            info["final_obs"] = obs
        if self._dr is not None and self._dr.cfg.transforms_obs:
            final = info["final_obs"]
            obs = self._dr.observe(obs)  # noise and latency
            if any_done:  # some world finished: its final_obs gets its own noise
                info["final_obs"] = torch.where(done[:, None], self._dr.noise(final), obs)
            else:
                info["final_obs"] = obs
        return obs, state, info

    def _gather_ep_sums(self) -> None:
        """Copy the episode return and term sums into one :attr:`_ep_sums` matrix and make them
        views of its rows (left as they are unless all are alike: ``[N]``, one dtype)."""
        like = self._ep_return
        if any(v.dtype != like.dtype or v.shape != like.shape or v.device != like.device for v in self._ep_terms.values()):  # fmt: skip
            self._ep_sums = None
            return
        sums = torch.stack([like, *self._ep_terms.values()])
        self._ep_sums, self._ep_return = sums, sums[0]
        self._ep_terms = dict(zip(self._ep_terms, sums[1:].unbind(0), strict=True))

    # -- snapshots -------------------------------------------------------------------------------

    def _check_snapshot(self, state: dict[str, Any]) -> None:
        """Raise ``ValueError`` when a snapshot's domain randomization does not match this env."""
        if ("domain_rand" in state) != (self._dr is not None):
            raise ValueError(
                f"{self.task.name}: the snapshot was taken "
                f"{'with' if 'domain_rand' in state else 'without'} domain randomization, "
                f"this env is {'with' if self._dr is not None else 'without'}"
            )

    def _load_bookkeeping(self, state: dict[str, Any]) -> None:
        """Restore the episode counters, actions, generator and task buffers of a snapshot
        (after its physics rows), and recompute the state."""
        dev = self.sim_device
        self._ep_len.copy_(torch.as_tensor(state["ep_len"]))
        self._ep_return.copy_(torch.as_tensor(state["ep_return"]))
        self._ep_terms = {
            k: torch.as_tensor(v).to(dev).clone() for k, v in state["ep_terms"].items()
        }
        self._ep_sums = None
        self._last_action = torch.as_tensor(state["last_action"]).to(dev, torch.float32).clone()
        self._prev_action = torch.as_tensor(state["prev_action"]).to(dev, torch.float32).clone()
        self._gen.set_state(state["generator"])
        self.task.load_state_dict(state["task"])
        if getattr(self.task, "target", None) is not None:  # task buffers follow the device
            self.task.target = self.task.target.to(dev)
        state_now = self._full_state()
        saved = state.get("state")  # snapshots from before it was saved recompute it
        if isinstance(saved, dict) and saved.keys() == state_now.keys():
            state_now = {k: torch.as_tensor(v).to(dev, state_now[k].dtype).clone() for k, v in saved.items()}  # fmt: skip
        self._state = state_now

    # -- helpers ---------------------------------------------------------------------------------

    def _compute_obs_dim(self) -> int:
        self._reset_worlds(torch.arange(self.num_envs, device=self.sim_device))
        return self.task.observation(self._full_state()).shape[-1]

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on ``device`` (a no-op when physics runs there)."""
        return x.to(self.device, non_blocking=True) if self._move_out else x

    def _info_out(self, info: dict[str, Any]) -> dict[str, Any]:
        if not self._move_out:
            return info

        def move(v: Any) -> Any:
            return v.to(self.device) if isinstance(v, torch.Tensor) else v

        info = {k: move(v) for k, v in info.items()}
        if "episode" in info:
            info["episode"] = {k: move(v) for k, v in info["episode"].items()}
        return info


def _rows_where(rows: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` where ``rows`` ``[N]`` is true, else ``b`` (``[N, ...]`` each, same shape)."""
    return torch.where(rows.view(-1, *([1] * (a.dim() - 1))), a, b)
