"""The ``warp`` backend: N worlds of one MJCF model on MuJoCo Warp (GPU, or slowly the CPU).

Physics runs in `MuJoCo Warp <https://github.com/google-deepmind/mujoco_warp>`_ (``mujoco_warp``,
on NVIDIA Warp): one :class:`mujoco_warp.Data` holds every world's state as rows of device
arrays (``nworld`` batching). The arrays are wrapped once with :func:`warp.to_torch` (no copy),
so that the task code of :mod:`rewardlab.envs.tasks` reads and writes them exactly as it does the
native backend's numpy views: every task runs here unchanged, with the same state names, success
metric and reward terms. Observations, rewards, terminations and resets are torch on the device;
resets write rows through the same views and recompute the position/velocity stages on device.

On CUDA the physics of a control step (``frame_skip`` substeps plus the stages that make derived
fields current) is captured once into a CUDA graph (``wp.ScopedCapture``) and replayed; so is the
forward pass after resets. Graphs need Warp's memory pool and a CUDA driver >= 12.4 (MuJoCo
Warp's solver loops are conditional graph nodes); otherwise the same calls run eagerly.

What this backend cannot do (see ``docs/gpu_simulation.md``):

- Physics is float32 (MuJoCo Warp has no float64): trajectories match the native float64
  backend closely for tens of control steps, then chaotic tasks (contacts) drift apart; the
  state names, units and distributions stay the same.
- Resetting some worlds needs their ids (``nonzero``): one small device-to-host sync per step,
  as in Isaac Lab; ``info["log"]`` means are Python floats, as on the native backend.
- Acceleration-stage sensors (accelerometer, force, touch) are not current after a step (as
  on the native backend, which stops at the velocity stage); no shipped task reads them.
- Models MuJoCo Warp rejects fail at construction with its ``NotImplementedError`` plus the
  task's name: PGS solver, plugins, some sensors and geom pairs (``mujoco_warp.put_model``).
- The CPU device runs Warp's kernels on one thread: correct, but much slower than the native
  ``mujoco`` backend; it exists for tests and machines without a GPU.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardFn, compose
from rewardlab.envs.mujoco_backend import _env_tensors
from rewardlab.envs.rendering import make_renderer
from rewardlab.envs.sim_env import SimTaskEnv
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig

# Rows of mujoco_warp.Data that are the integration state (as mjSTATE_INTEGRATION): restoring
# them and recomputing the position/velocity stages reproduces a world.
_STATE_FIELDS = (
    "time", "qpos", "qvel", "act", "qacc_warmstart", "ctrl", "qfrc_applied", "xfrc_applied",
    "mocap_pos", "mocap_quat", "userdata", "eq_active", "history",
)  # fmt: skip

# Model constants ``mjw.set_const`` derives from body masses: per world too when masses are.
_MASS_DERIVED = (
    "body_subtreemass", "body_invweight0", "dof_invweight0", "tendon_invweight0", "actuator_acc0",
)  # fmt: skip

CACHE_ENV = "REWARDLAB_WARP_CACHE"
"""Environment variable naming Warp's kernel cache directory (default below)."""
DEFAULT_CACHE = Path.home() / ".cache" / "rewardlab" / "warp"
"""Kernel cache used when ``REWARDLAB_WARP_CACHE`` is unset: compiled kernels survive runs."""


def warp_cache_dir() -> Path:
    """The directory Warp's compiled kernels are cached in (``$REWARDLAB_WARP_CACHE``)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def init_warp() -> Any:
    """Import and initialise Warp once, with the kernel cache at :func:`warp_cache_dir`.

    Compiling MuJoCo Warp's kernels for a new model takes seconds to tens of seconds (about
    90 s of CPU time for every shipped task together on the CPU device, cold; about 7 s from
    the cache: ``benchmarks/warp_compile_time.py``). When Warp was initialised before (by other
    code), its cache directory is kept.

    Returns:
        The ``warp`` module.
    """
    import warp as wp

    try:
        from warp._src import context as _ctx
    except ImportError:  # older warp layouts
        from warp import context as _ctx  # type: ignore[no-redef]
    if getattr(_ctx, "runtime", None) is None:
        cache = warp_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        wp.config.kernel_cache_dir = str(cache)
        if not os.environ.get("REWARDLAB_WARP_VERBOSE"):  # no per-module compile/load lines
            wp.config.log_level = wp.LOG_WARNING
        wp.init()
    return wp


def _njmax_default(model: mujoco.MjModel) -> tuple[int, int]:
    """Per-world contact and constraint-row capacities, from the model.

    MuJoCo Warp allocates fixed-size contact and constraint-row buffers; its own defaults (48
    contacts, 64 rows per world) do not look at the model's geoms. This budget does: every joint
    limit, every equality (6 rows), and two contacts (a capsule on a plane makes two) per
    colliding geom, each with the rows its ``condim`` needs under the model's friction cone, so
    that a robot lying with every geom on the floor still fits (rarely reached: a falling
    humanoid used at most 25 rows in 120 random steps).
    """
    collide = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    ncol = (
        int(collide.sum())
        if not (model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT)
        else 0
    )
    condim = int(model.geom_condim[collide].max()) if ncol else 1
    pyramidal = model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    rows = (2 * (condim - 1) if condim > 1 else 1) if pyramidal else condim
    nlimit = int(model.jnt_limited.sum()) + int(getattr(model, "tendon_limited", np.zeros(0)).sum())
    nconmax = max(48, 2 * ncol)
    njmax = (
        nlimit + 6 * model.neq + 2 * ncol * rows + int(model.dof_frictionloss.astype(bool).sum())
    )
    return nconmax, max(64, -(-njmax // 16) * 16)


class WarpEnv(SimTaskEnv):
    """A :class:`BatchedEnv` on MuJoCo Warp: every tensor lives on ``device``.

    Args:
        task_cls: the task class (see ``rewardlab.envs.tasks``).
        cfg: the task config; ``task_cls.default_config()`` when ``None``.
        num_envs: number of worlds (Warp's ``nworld``).
        seed: seeds the reset distribution; on the CPU device the same seed gives the same
            resets as the ``mujoco`` backend (the task's own torch reset code draws them).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``: where physics and tensors live.
        reward_fn: ``compute_reward(state, action) -> (total, components)``; the task's default
            weighted terms when ``None``.
        render_size: ``(height, width)`` of :meth:`render` frames.
        cuda_graph: capture the step in a CUDA graph where possible (CUDA only).
        nconmax: contacts per world to allocate; a model-based default when ``None``.
        njmax: constraint rows per world to allocate; a model-based default when ``None``.
        domain_rand: a ``rewardlab.envs.randomization.DomainRandConfig``; randomized model
            fields get one row per world (``put_model(batch_sizes=...)``).
        torch_threads: ``torch.set_num_threads`` on the CPU device (process-wide), as the
            ``mujoco`` backend does; ``None`` leaves torch alone.

    Raises:
        NotImplementedError: MuJoCo Warp does not support something in the task's model (the
            message names the task and the feature).
    """

    def __init__(
        self,
        task_cls: type[Task],
        cfg: TaskConfig | None = None,
        num_envs: int = 64,
        seed: int = 0,
        device: str | torch.device = "cpu",
        reward_fn: RewardFn | None = None,
        render_size: tuple[int, int] = (240, 320),
        cuda_graph: bool = True,
        nconmax: int | None = None,
        njmax: int | None = None,
        domain_rand: Any = None,
        torch_threads: int | None = 1,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device: got {str(device)!r}, expected cpu, cuda or cuda:<index>")
        if torch_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(torch_threads)
        wp = self._wp = init_warp()
        import mujoco_warp as mjw

        self._mjw = mjw
        self.model = task_cls.load_model()
        self.task = task_cls(cfg if cfg is not None else task_cls.default_config(), self.model)
        self.cfg = self.task.cfg
        self.num_envs = num_envs
        self.max_episode_steps = self.cfg.episode_steps
        self.control_dt = float(self.model.opt.timestep) * self.cfg.frame_skip
        self.action_dim = self.model.nu
        self._wp_device = wp.device_from_torch(self.device)

        self._dr = None
        if domain_rand is not None and domain_rand.enabled:
            from rewardlab.envs.randomization import DomainRandomizer

            self._dr = DomainRandomizer(domain_rand, self.model, num_envs, seed, device=self.device)
        dr_fields = tuple(self._dr.physics_fields) if self._dr is not None else ()

        default_ncon, default_nj = _njmax_default(self.model)
        data0 = mujoco.MjData(self.model)  # mj_resetData state: the row every reset starts from
        try:
            with wp.ScopedDevice(self._wp_device):
                batched = dr_fields + (_MASS_DERIVED if "body_mass" in dr_fields else ())
                self._m = mjw.put_model(self.model, batch_sizes={f: num_envs for f in batched})
                self._d = mjw.put_data(
                    self.model,
                    data0,
                    nworld=num_envs,
                    nconmax=nconmax or default_ncon,
                    njmax=njmax or default_nj,
                )
        except NotImplementedError as e:
            raise NotImplementedError(
                f"task {self.task.name!r} ({task_cls.model_file}): MuJoCo Warp does not support "
                f"its model: {e}"
            ) from e
        self._rk4 = self.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4

        # Zero-copy torch views of the warp arrays: the task reads and writes these.
        def view(name: str) -> torch.Tensor:
            return wp.to_torch(getattr(self._d, name))

        self._rows = {f: view(f) for f in _STATE_FIELDS if getattr(self._d, f, None) is not None}
        self._rows = {f: v for f, v in self._rows.items() if v.numel()}
        self._initial_row = {f: v[0].clone() for f, v in self._rows.items()}
        self.sim = SimView(
            qpos=view("qpos"),
            qvel=view("qvel"),
            ctrl=view("ctrl"),
            derived={f: view(f) for f in self.task.sim_fields},
        )
        self._model_rows = {f: wp.to_torch(getattr(self._m, f)) for f in dr_fields}

        lo, hi = self.model.actuator_ctrlrange.T.copy()
        limited = self.model.actuator_ctrllimited.astype(bool)
        lo[~limited], hi[~limited] = -1.0, 1.0
        f32 = {"dtype": torch.float32, "device": self.device}
        self._ctrl_mid = torch.as_tensor((hi + lo) / 2, **f32)
        self._ctrl_half = torch.as_tensor((hi - lo) / 2, **f32)
        self.reward_fn: RewardFn = reward_fn or compose(self.task.reward_terms())

        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._last_action = torch.zeros(num_envs, self.action_dim, **f32)
        self._prev_action = torch.zeros(num_envs, self.action_dim, **f32)
        self._ep_len = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._ep_return = torch.zeros(num_envs, **f32)
        self._ep_terms: dict[str, torch.Tensor] = {}
        self._state: dict[str, torch.Tensor] | None = None
        self._renderer: mujoco.Renderer | None = None
        self._render_size = render_size
        self._render_data: mujoco.MjData | None = None
        self._nstep = 0
        self._overflow_warned = False

        self._use_graph = cuda_graph and self.device.type == "cuda" and self._graphs_possible()
        self._step_graph: Any = None
        self._forward_graph: Any = None
        if self._dr is not None:
            ids = torch.arange(num_envs, device=self.device)
            self._write_physics(ids, self._dr.sample_physics(ids))
        self.obs_dim = int(self._compute_obs_dim())  # also compiles / loads every kernel
        if self._dr is not None:
            self._dr.check_obs_dim(self.obs_dim)
        if self._use_graph:
            self._capture()

    # -- BatchedEnv ------------------------------------------------------------------------------

    @_env_tensors
    def reset(self, seed: int | None = None) -> torch.Tensor:
        all_ids = torch.arange(self.num_envs, device=self.device)
        if seed is not None:
            self._gen.manual_seed(seed)
            if self._dr is not None:  # the seed decides the worlds' physics too
                self._dr.seed(seed)
                if self._model_rows and not self._dr.cfg.resample_on_reset:
                    self._write_physics(all_ids, self._dr.sample_physics(all_ids))
        self._reset_worlds(all_ids)
        self._state = self._full_state()
        obs = self.task.observation(self._state)
        return obs if self._dr is None else self._dr.noise(obs)

    @_env_tensors
    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(actions)
        applied = action if self._dr is None else self._dr.delay(action)
        self.sim.ctrl.copy_(self._ctrl_mid + self._ctrl_half * applied)
        self._physics()
        self._prev_action, self._last_action = self._last_action, action

        state = self._full_state()
        reward, terms = self.reward_fn(state, action)
        # A world whose physics blew up (NaN/Inf) ends as terminated with zero reward.
        diverged = ~torch.isfinite(self.sim.qpos.sum(-1) + self.sim.qvel.sum(-1))
        terminated = self.task.terminated(state) | diverged
        self._ep_len += 1
        truncated = (self._ep_len >= self.max_episode_steps) & ~terminated
        success = self.task.success(state) & ~terminated
        reward = reward.float().masked_fill(diverged, 0.0)
        obs, state, info = self._end_step(state, reward, terms, terminated, truncated, success)
        self._state = state
        self._nstep += 1
        n = self._nstep  # overflow flags are sticky: checks at steps 1, 2, 4, ... then every 1024
        if n & (n - 1) == 0 or n % 1024 == 0:
            self._check_overflow()
        return obs, reward, terminated, truncated, info

    def state(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            raise RuntimeError("call reset() before state()")
        return dict(self._state)

    def success(self) -> torch.Tensor:
        if self._state is None:
            raise RuntimeError("call reset() before success()")
        return self.task.success(self._state)

    def render(self, env_ids: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """Render worlds with MuJoCo's CPU renderer (their state rows are copied to the host)."""
        ids = list(range(self.num_envs)) if env_ids is None else [int(i) for i in env_ids]
        h, w = self._render_size
        if not ids:
            return torch.zeros((0, h, w, 3), dtype=torch.uint8)
        if self._renderer is None:
            # Same settings as the mujoco backend: fast software rendering.
            self.model.vis.quality.offsamples = 0
            self.model.vis.quality.shadowsize = min(int(self.model.vis.quality.shadowsize), 1024)
            self._renderer = make_renderer(self.model, height=h, width=w)
            self._render_data = mujoco.MjData(self.model)
        data = self._render_data
        assert data is not None
        sel = torch.as_tensor(ids, device=self.device)
        rows = {f: v[sel].double().cpu().numpy() for f, v in self._rows.items()}
        camera = 0 if self.model.ncam > 0 else -1
        frames = []
        for k in range(len(ids)):
            for f in ("time", "qpos", "qvel", "act", "mocap_pos", "mocap_quat"):
                if f in rows:
                    target = getattr(data, f)
                    if f == "time":
                        data.time = float(rows[f][k])
                    else:
                        target[...] = rows[f][k].reshape(target.shape)
            mujoco.mj_forward(self.model, data)
            self._renderer.update_scene(data, camera=camera)
            frames.append(self._renderer.render().copy())
        return torch.from_numpy(np.stack(frames))

    def get_state_dict(self) -> dict[str, Any]:
        """Physics rows (on the CPU), episode counters, RNG and task buffers, for exact resume."""
        if self._state is None:
            raise RuntimeError("call reset() before get_state_dict()")
        return {
            "physics": {f: rows.cpu().clone() for f, rows in self._rows.items()},
            "ep_len": self._ep_len.cpu().clone(),
            "ep_return": self._ep_return.cpu().clone(),
            "ep_terms": {k: v.cpu().clone() for k, v in self._ep_terms.items()},
            "last_action": self._last_action.cpu().clone(),
            "prev_action": self._prev_action.cpu().clone(),
            "generator": self._gen.get_state(),
            "task": self.task.get_state_dict(),
            **({"domain_rand": self._dr.state_dict()} if self._dr is not None else {}),
        }

    @_env_tensors
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned (same task and num_envs).

        A snapshot of the ``mujoco`` backend loads too (its float64 rows are rounded to
        float32); the reverse does not hold for the generator on a CUDA device.
        """
        if ("domain_rand" in state) != (self._dr is not None):
            raise ValueError(
                f"{self.task.name}: the snapshot was taken "
                f"{'with' if 'domain_rand' in state else 'without'} domain randomization, "
                f"this env is {'with' if self._dr is not None else 'without'}"
            )
        for f, value in state["physics"].items():
            value = torch.as_tensor(value)
            target = self._rows.get(f)
            if target is None and value.numel() == 0:
                continue
            if target is None or target.numel() != value.numel():
                raise ValueError(
                    f"{self.task.name}: saved physics field {f!r} has shape {tuple(value.shape)}, "
                    f"this env has {None if target is None else tuple(target.shape)} "
                    "(different num_envs or model?)"
                )
            target.copy_(value.reshape(target.shape))
        if self._dr is not None:
            self._dr.load_state_dict(state["domain_rand"])
            ids = torch.arange(self.num_envs, device=self.device)
            self._write_physics(ids, self._dr.current_physics())
        self._forward()
        dev = self.device
        self._ep_len.copy_(torch.as_tensor(state["ep_len"]))
        self._ep_return.copy_(torch.as_tensor(state["ep_return"]))
        self._ep_terms = {
            k: torch.as_tensor(v).to(dev).clone() for k, v in state["ep_terms"].items()
        }
        self._last_action = torch.as_tensor(state["last_action"]).to(dev, torch.float32).clone()
        self._prev_action = torch.as_tensor(state["prev_action"]).to(dev, torch.float32).clone()
        self._gen.set_state(state["generator"])
        self.task.load_state_dict(state["task"])
        if getattr(self.task, "target", None) is not None:  # task buffers follow the device
            self.task.target = self.task.target.to(dev)
        self._state = self._full_state()

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def uses_cuda_graph(self) -> bool:
        """Whether steps replay a captured CUDA graph."""
        return self._step_graph is not None

    def _physics_calls(self) -> None:
        """One control step of physics, then the stages that make derived fields current.

        With the Euler/implicit integrators a step is ``step1`` (position and velocity stages,
        already current) then ``step2``; so the control step is ``step2``, ``frame_skip - 1``
        full steps, and ``step1`` at the new state: exactly ``frame_skip`` steps of work.
        RK4 has no such split: full steps, then ``step1``.
        """
        mjw, m, d = self._mjw, self._m, self._d
        if self._rk4:
            for _ in range(self.cfg.frame_skip):
                mjw.step(m, d)
        else:
            mjw.step2(m, d)
            for _ in range(self.cfg.frame_skip - 1):
                mjw.step(m, d)
        mjw.step1(m, d)

    def _physics(self) -> None:
        wp = self._wp
        with wp.ScopedDevice(self._wp_device), self._stream():
            if self._step_graph is not None:
                wp.capture_launch(self._step_graph)
            else:
                self._physics_calls()

    def _forward(self) -> None:
        """Position and velocity stages for every world (after rows were written)."""
        wp = self._wp
        with wp.ScopedDevice(self._wp_device), self._stream():
            if self._forward_graph is not None:
                wp.capture_launch(self._forward_graph)
            else:
                self._mjw.step1(self._m, self._d)

    def _stream(self) -> Any:
        """Run Warp on torch's current stream, so that torch and Warp work stay ordered."""
        import contextlib

        if self.device.type != "cuda":
            return contextlib.nullcontext()
        wp = self._wp
        return wp.ScopedStream(wp.stream_from_torch(torch.cuda.current_stream(self.device)))

    def _graphs_possible(self) -> bool:
        wp = self._wp
        dev = self._wp_device
        if not wp.is_mempool_enabled(dev):
            return False
        check = getattr(wp, "is_conditional_graph_supported", None)
        if check is not None:
            return bool(check())
        driver = wp.get_cuda_driver_version()  # (major, minor) or None
        return driver is not None and tuple(driver) >= (12, 4)

    def _capture(self) -> None:
        """Capture the step and the forward pass as CUDA graphs (arrays must not move after)."""
        import gc

        wp = self._wp
        # Capture on Warp's own stream of the device (torch's default stream may be the legacy
        # stream, on which CUDA cannot capture); replays are launched on torch's stream.
        saved = {f: v.clone() for f, v in self._rows.items()}
        with wp.ScopedDevice(self._wp_device), self._stream():
            self._physics_calls()  # compile and load every kernel before capturing
        for f, v in saved.items():
            self._rows[f].copy_(v)
        torch.cuda.synchronize(self.device)
        enabled = gc.isenabled()
        gc.disable()  # a collected stale graph inside a capture would corrupt it (as mjlab notes)
        try:
            with wp.ScopedDevice(self._wp_device):
                with wp.ScopedCapture() as cap:
                    self._physics_calls()
                self._step_graph = cap.graph
                with wp.ScopedCapture() as cap:
                    self._mjw.step1(self._m, self._d)
                self._forward_graph = cap.graph
        finally:
            if enabled:
                gc.enable()
        self._forward()  # derived fields of the restored state

    def _write_physics(self, ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """Write per-world model values (``DomainRandomizer.sample_physics``) into the model."""
        ids = ids.to(self.device)
        for f, v in values.items():
            rows = self._model_rows[f]
            rows[ids] = v.to(self.device, rows.dtype).reshape(len(ids), *rows.shape[1:])
        if "body_mass" in values:  # derived constants (subtree masses, invweights) follow
            groups = self._mjw.SetConstGroup.FIXED | self._mjw.SetConstGroup.INERT0
            with self._wp.ScopedDevice(self._wp_device), self._stream():
                self._mjw.set_const(self._m, self._d, groups=groups)

    def _reset_worlds(self, ids: torch.Tensor) -> None:
        for f, rows in self._rows.items():
            rows[ids] = self._initial_row[f]
        if self._dr is not None:
            if self._model_rows and self._dr.cfg.resample_on_reset:
                self._write_physics(ids, self._dr.sample_physics(ids))
            self._dr.reset(ids)
        self.task.reset(self.sim, ids, self._gen)
        self._last_action[ids] = 0.0
        self._prev_action[ids] = 0.0
        self._forward()
        self._ep_len[ids] = 0
        self._ep_return[ids] = 0.0
        for v in self._ep_terms.values():
            v[ids] = 0.0

    def _check_action(self, actions: torch.Tensor) -> torch.Tensor:
        actions = torch.as_tensor(actions)
        expected = (self.num_envs, self.action_dim)
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"{self.task.name}: actions must have shape {list(expected)} "
                f"[num_envs, action_dim], got {list(actions.shape)}"
            )
        actions = actions.detach().to(self.device, torch.float32)
        finite = torch.isfinite(actions).all(-1)
        if not bool(finite.all()):
            bad = (~finite).nonzero().squeeze(-1)[:8].tolist()
            raise ValueError(
                f"{self.task.name}: actions contain NaN or Inf (worlds {bad}); "
                "expected finite values in [-1, 1]"
            )
        return actions.clamp(-1.0, 1.0)

    def _check_overflow(self) -> None:
        """Warn once when a world ran out of contact or constraint capacity."""
        if self._overflow_warned:
            return
        ov = getattr(self._d, "overflow", None)
        if ov is None:
            return
        t = self._mjw.OverflowType
        mask = int(t.NEFC | t.NJMAX_NNZ | t.BROADPHASE | t.NARROWPHASE | t.CCD)
        flags = self._wp.to_torch(ov)
        hit = int((flags & mask).amax()) if flags.numel() else 0
        if hit:
            self._overflow_warned = True
            names = [o.name for o in t if o.value and (hit & o.value) and o.name != "ALL"]
            warnings.warn(
                f"{self.task.name}: MuJoCo Warp ran out of capacity ({', '.join(map(str, names))}):"
                f" contacts or constraint rows were dropped; pass larger nconmax= / njmax= to "
                f"make_env (now nconmax={self._d.naconmax // self.num_envs}, "
                f"njmax={self._d.njmax})",
                RuntimeWarning,
                stacklevel=3,
            )

    def _compute_obs_dim(self) -> int:
        self._reset_worlds(torch.arange(self.num_envs, device=self.device))
        return self.task.observation(self._full_state()).shape[-1]
