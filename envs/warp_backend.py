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

import contextlib
import gc
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.core.reward import RewardFn
from rewardlab.envs.randomization import DomainRandomizer
from rewardlab.envs.sim_env import SimTaskEnv, env_tensors
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
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device: got {str(device)!r}, expected cpu, cuda or cuda:<index>")
        wp = self._wp = init_warp()
        import mujoco_warp as mjw

        self._mjw = mjw
        self._init_task(task_cls, cfg, num_envs, device, device, torch_threads)
        if self.task.model_fields:
            raise NotImplementedError(
                f"{self.task.name}: the warp backend cannot give per-world model fields at reset "
                f"({', '.join(self.task.model_fields)}: the task's object-property events); use "
                "backend=mujoco, or domain_rand for masses and friction"
            )
        self._wp_device = wp.device_from_torch(self.device)

        self._dr = None
        if domain_rand is not None and domain_rand.enabled:
            self._dr = DomainRandomizer(domain_rand, self.model, num_envs, seed, device=self.device)
        dr_fields = tuple(self._dr.physics_fields) if self._dr is not None else ()

        default_ncon, default_nj = _njmax_default(self.model)
        data0 = mujoco.MjData(self.model)  # mj_resetData state: the row every reset starts from
        try:
            with wp.ScopedDevice(self._wp_device):
                mass = {"body_mass", "body_ipos"} & set(dr_fields)
                batched = dr_fields + (_MASS_DERIVED if mass else ())
                self._m = mjw.put_model(self.model, batch_sizes={f: num_envs for f in batched})
                self._d = mjw.put_data(
                    self.model,
                    data0,
                    nworld=num_envs,
                    nconmax=nconmax or default_ncon,
                    njmax=njmax or default_nj,
                )
                # derived fields as the native backend's first reset leaves them (mujoco.batch
                # runs mj_forward: e.g. servo actuator_force at qpos0), so both read alike at reset
                mjw.forward(self._m, self._d)
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

        self._init_buffers(seed, reward_fn, render_size, ctrl_dtype=torch.float32)
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

    @env_tensors
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned (same task and num_envs).

        A snapshot of the ``mujoco`` backend loads too (its float64 rows are rounded to
        float32); the reverse does not hold for the generator on a CUDA device.
        """
        self._check_snapshot(state)
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
        self._forward_all()
        self._load_bookkeeping(state)

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

    def _physics_step(self) -> None:
        wp = self._wp
        with wp.ScopedDevice(self._wp_device), self._stream():
            if self._step_graph is not None:
                wp.capture_launch(self._step_graph)
            else:
                self._physics_calls()

    def _forward(self, ids: torch.Tensor) -> None:
        self._forward_all()

    def _forward_all(self) -> None:
        """Position and velocity stages for every world (after rows were written), and the
        actuator forces at that state (see :meth:`_forward_calls`)."""
        wp = self._wp
        with wp.ScopedDevice(self._wp_device), self._stream():
            if self._forward_graph is not None:
                wp.capture_launch(self._forward_graph)
            else:
                self._forward_calls()

    def _forward_calls(self) -> None:
        """``step1`` and ``fwd_actuation``: a reset world's ``actuator_force`` (the tasks'
        ``joint_torque``) then describes its reset state, as the native backend's full
        ``mj_forward`` of reset worlds does, instead of the world's last substep before the
        reset. The rest of the acceleration stage (the constraint solve, touch sensors) is not
        recomputed: it would cost most of a physics step on every step where a world resets.
        The next step's ``step2`` recomputes the forces with the new controls."""
        self._mjw.step1(self._m, self._d)
        self._mjw.fwd_actuation(self._m, self._d)

    def _stream(self) -> Any:
        """Run Warp on torch's current stream, so that torch and Warp work stay ordered."""
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
                    self._forward_calls()
                self._forward_graph = cap.graph
        finally:
            if enabled:
                gc.enable()
        self._forward_all()  # derived fields of the restored state

    def _write_physics(self, ids: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """Write per-world model values (``DomainRandomizer.sample_physics``) into the model."""
        ids = ids.to(self.device)
        for f, v in values.items():
            rows = self._model_rows[f]
            rows[ids] = v.to(self.device, rows.dtype).reshape(len(ids), *rows.shape[1:])
        if "body_mass" in values or "body_ipos" in values:  # derived constants follow
            groups = self._mjw.SetConstGroup.FIXED | self._mjw.SetConstGroup.INERT0
            with self._wp.ScopedDevice(self._wp_device), self._stream():
                self._mjw.set_const(self._m, self._d, groups=groups)

    def _restore_rows(self, ids: torch.Tensor) -> None:
        for f, rows in self._rows.items():
            rows[ids] = self._initial_row[f]

    def _physics_snapshot(self) -> dict[str, Any]:
        return {f: rows.cpu().clone() for f, rows in self._rows.items()}

    def _render_worlds(self, ids: list[int], data: mujoco.MjData) -> Iterator[mujoco.MjData]:
        """Copy the worlds' rows to the host once, then fill ``data`` world by world."""
        sel = torch.as_tensor(ids, device=self.device)
        rows = {f: v[sel].double().cpu().numpy() for f, v in self._rows.items()}
        for k in range(len(ids)):
            for f in ("time", "qpos", "qvel", "act", "mocap_pos", "mocap_quat"):
                if f in rows:
                    if f == "time":
                        data.time = float(rows[f][k])
                    else:
                        target = getattr(data, f)
                        target[...] = rows[f][k].reshape(target.shape)
            yield data

    def _after_step(self) -> None:
        self._nstep += 1
        n = self._nstep  # overflow flags are sticky: checks at steps 1, 2, 4, ... then every 1024
        if n & (n - 1) == 0 or n % 1024 == 0:
            self._check_overflow()

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
