"""Shared helpers of the benchmarks: timing, system facts, result tables, gymnasium task ports.

The gymnasium side of the comparisons runs *ports* of our tasks: small
``gymnasium.envs.mujoco.MujocoEnv`` subclasses that load the task's own MJCF file and compute
the same observation, reward, termination, truncation and success in numpy, one world per env.
Physics work per control step is the same as in our ``mujoco`` backend: ``frame_skip`` calls of
``mj_step`` followed by ``mj_fwdPosition`` + ``mj_fwdVelocity`` (what our backend's
``Batch.step(stage=mjSTAGE_VEL)`` computes). :func:`check_port` steps a port and our backend
side by side from the same states with the same actions and fails loudly if they disagree.

This module imports neither torch nor rewardlab at import time, so that gymnasium worker
processes (``AsyncVectorEnv``) stay small; the functions that need them import them lazily.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv as GymMujocoEnv

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Rates:
    """Repeated throughput measurements of one configuration, in units per second."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repeats disagree (0.05 = 5 %)."""
        if len(self.samples) < 2:
            return 0.0
        return (max(self.samples) - min(self.samples)) / self.median


def run_for(fn: Callable[[], None], seconds: float, min_calls: int = 2) -> tuple[int, float]:
    """Call ``fn`` until ``seconds`` have passed (and at least ``min_calls`` times).

    Returns:
        ``(calls, elapsed seconds)`` measured with ``time.perf_counter``.
    """
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= min_calls:
            return calls, elapsed


def quiet_sb3_logger(model: Any) -> None:
    """Give an SB3 model a logger that writes nothing and makes no directory.

    Without one, every ``model.learn()`` call configures SB3's default logger, which creates an
    empty ``<tmp>/SB3-<date-time>`` directory: one per training iteration when a benchmark
    calls ``learn`` iteration by iteration (over a thousand for one interleaved ant_run run).
    """
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))


# ---------------------------------------------------------------------------------------------
# System facts and result files


def system_info() -> dict[str, Any]:
    """Versions, CPU and load of this machine, stored next to every result."""
    import gymnasium
    import torch

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mujoco": mujoco.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "git_rev": _git_rev(),
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        import stable_baselines3

        info["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        pass
    return info


def contention_note(info: Mapping[str, Any]) -> str:
    """A warning line when the machine was busy at the start (load average >= 0.5 per core)."""
    load, cores = info["loadavg_1min_at_start"], info["cpu_count"] or 1
    if load >= 0.5 * cores:
        return (
            f"**Contended machine**: 1-min load average {load} on {cores} cores at the start; "
            "these numbers are not representative."
        )
    return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are formatted by :func:`fmt`."""
    cells = [[fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    """Human formatting: thousands separators for large numbers, 2 decimals for ratios."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialize {type(o).__name__}")


# ---------------------------------------------------------------------------------------------
# Gymnasium ports of our tasks


@dataclass(frozen=True)
class GymTaskSpec:
    """Everything a port needs, as plain values (picklable, no torch) for worker processes."""

    task: str
    """Registered task name."""
    model_path: str
    """Absolute path of the task's MJCF file."""
    frame_skip: int
    episode_steps: int
    reset_noise: float
    params: dict[str, Any]
    """The task config's remaining fields (e.g. ``fall_angle``), by name."""


def gym_spec(task: str) -> GymTaskSpec:
    """Read a registered task's MJCF path and default config (imports rewardlab)."""
    from rewardlab.envs.tasks import get_task
    from rewardlab.envs.tasks.base import ASSETS

    task_cls = get_task(task)
    cfg = task_cls.default_config()
    path = Path(task_cls.model_file)
    if not path.is_absolute():
        path = ASSETS / path
    params = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if f.name not in ("frame_skip", "episode_steps", "reset_noise", "reward_weights")
    }
    if task == "ant_run":
        from rewardlab.envs.robots import ANT

        params["joint_names"] = tuple(ANT.joint_names)
    if cfg.reward_weights:
        raise ValueError(f"{task}: the gymnasium port only knows the default reward weights")
    return GymTaskSpec(task, str(path), cfg.frame_skip, cfg.episode_steps, cfg.reset_noise, params)


_MODELS: dict[str, mujoco.MjModel] = {}


class PortEnv(GymMujocoEnv):
    """Base of the ports: one world of a task as a ``gymnasium.Env``, actions in ``[-1, 1]``.

    Subclasses implement :meth:`reset_state`, :meth:`observe`, :meth:`reward`,
    :meth:`is_terminated` and :meth:`is_success` in numpy, exactly as the task does in torch.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, spec: GymTaskSpec, **kwargs: Any) -> None:
        self.spec_ = spec
        self.p = spec.params
        super().__init__(spec.model_path, spec.frame_skip, observation_space=None, **kwargs)
        self.setup()
        obs_dim = self.observe().shape[0]
        self.observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        lo, hi = self.model.actuator_ctrlrange.T.copy()
        limited = self.model.actuator_ctrllimited.astype(bool)
        lo[~limited], hi[~limited] = -1.0, 1.0
        self._ctrl_mid, self._ctrl_half = (hi + lo) / 2, (hi - lo) / 2
        self.action_space = spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self._last_action = np.zeros(self.model.nu, np.float32)
        self._t = 0

    # -- to implement ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Per-task constants from ``self.model`` (called once, before the first observation)."""

    def reset_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Initial ``(qpos, qvel)`` drawn from ``self.np_random``."""
        raise NotImplementedError

    def observe(self) -> np.ndarray:
        raise NotImplementedError

    def reward(self, action: np.ndarray) -> float:
        raise NotImplementedError

    def is_terminated(self) -> bool:
        raise NotImplementedError

    def is_success(self) -> bool:
        raise NotImplementedError

    # -- gymnasium ----------------------------------------------------------------------------------

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        # One compiled model per process, shared read-only by its envs: building 1024 ports
        # would otherwise compile the MJCF 1024 times (setup cost only, not measured).
        model = _MODELS.get(self.fullpath)
        if model is None:
            model = _MODELS[self.fullpath] = mujoco.MjModel.from_xml_path(self.fullpath)
        return model, mujoco.MjData(model)

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        # The physics work of our backend: frame_skip mj_steps, then the position and velocity
        # stages at the new state (Batch.step(..., stage=mjSTAGE_VEL)).
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)
        mujoco.mj_fwdPosition(self.model, self.data)
        mujoco.mj_fwdVelocity(self.model, self.data)

    def reset_model(self) -> np.ndarray:
        qpos, qvel = self.reset_state()
        self.set_state(qpos, qvel)
        self._last_action[:] = 0.0
        self._t = 0
        return self.observe()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self.do_simulation(self._ctrl_mid + self._ctrl_half * action, self.frame_skip)
        diverged = not (np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all())
        reward = 0.0 if diverged else self.reward(action)
        terminated = diverged or self.is_terminated()
        self._t += 1
        truncated = self._t >= self.spec_.episode_steps and not terminated
        self._last_action[:] = action
        info: dict[str, Any] = {}
        if terminated or truncated:
            info["success"] = (not terminated) and self.is_success()
        return self.observe(), float(reward), terminated, truncated, info


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class CartpoleBalancePort(PortEnv):
    """``cartpole_balance`` (envs/tasks/cartpole.py) in numpy."""

    def reset_state(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec_.reset_noise
        qpos = s * self.np_random.uniform(-1.0, 1.0, 2)
        qpos[1] += self.p["initial_angle"]
        return qpos, s * self.np_random.uniform(-1.0, 1.0, 2)

    def observe(self) -> np.ndarray:
        x, th = self.data.qpos
        a = _wrap_angle(th)
        xd, thd = self.data.qvel
        return np.array([x, math.cos(a), math.sin(a), xd, thd], np.float32)

    def reward(self, action: np.ndarray) -> float:
        x, th = self.data.qpos
        a = _wrap_angle(th)
        upright = 0.5 * (1.0 + math.cos(a))
        centered = math.exp(-(x**2))
        effort = float(action @ action)
        return upright + 0.1 * centered - 0.01 * effort - 0.005 * self.data.qvel[1] ** 2

    def is_terminated(self) -> bool:
        x, th = self.data.qpos
        out = abs(x) > self.p["rail_limit"]
        if self.p["fall_angle"] > 0:
            out = out or abs(_wrap_angle(th)) > self.p["fall_angle"]
        return bool(out)

    def is_success(self) -> bool:
        x, th = self.data.qpos
        return abs(_wrap_angle(th)) < self.p["success_angle"] and abs(x) < self.p["rail_limit"]


class AntRunPort(PortEnv):
    """``ant_run`` (envs/tasks/ant.py) in numpy: obs 27, reward forward_vel + 1 - 0.1 |a|^2."""

    def setup(self) -> None:
        model = self.model
        jnt = [model.joint(n).id for n in self.p["joint_names"]]
        self._qpos_idx = np.array([model.jnt_qposadr[j] for j in jnt])
        self._qvel_idx = np.array([model.jnt_dofadr[j] for j in jnt])
        self._home = model.key("home").qpos.copy()

    def reset_state(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec_.reset_noise
        qpos = self._home.copy()
        qpos[self._qpos_idx] += s * self.np_random.uniform(-1.0, 1.0, len(self._qpos_idx))
        return qpos, s * self.np_random.uniform(-1.0, 1.0, self.model.nv)

    def observe(self) -> np.ndarray:
        qpos, qvel = self.data.qpos, self.data.qvel
        return np.concatenate(
            [qpos[2:7], qpos[self._qpos_idx], qvel[0:6], qvel[self._qvel_idx]]
        ).astype(np.float32)

    def _up_z(self) -> float:
        q = self.data.qpos[3:7]
        return 1.0 - 2.0 * (q[1] ** 2 + q[2] ** 2)

    def reward(self, action: np.ndarray) -> float:
        return float(self.data.qvel[0]) + 1.0 - 0.1 * float(action @ action)

    def is_terminated(self) -> bool:
        z = self.data.qpos[2]
        lo, hi = self.p["healthy_z_range"]
        return bool(z < lo or z > hi or self._up_z() < self.p["min_up_z"])

    def is_success(self) -> bool:
        return bool(self.data.qpos[0] >= self.p["success_distance"])


GYM_PORTS: dict[str, type[PortEnv]] = {
    "cartpole_balance": CartpoleBalancePort,
    "ant_run": AntRunPort,
}
"""Task name -> numpy port; a task without a port has no gymnasium side in the benchmarks."""


def make_port(spec: GymTaskSpec) -> PortEnv:
    """Create the port of ``spec.task`` (picklable as ``functools.partial(make_port, spec)``)."""
    return GYM_PORTS[spec.task](spec)


class ChunkEnv(gym.Env):
    """``k`` ports stepped in one process, seen as one env (for ``AsyncVectorEnv`` workers).

    ``AsyncVectorEnv`` runs one env per process. To spread ``N`` worlds over ``P`` processes
    (``P`` = cores), each worker gets one ``ChunkEnv`` holding a ``SyncVectorEnv`` of ``N / P``
    ports (same-step auto-reset). Its observation is ``[k, obs_dim]``, its reward ``[k]``; the
    per-world ``terminated`` / ``truncated`` flags travel in ``info`` (the outer
    ``terminated`` is always ``False`` so that the worker never resets the whole chunk).
    """

    def __init__(self, spec: GymTaskSpec, k: int) -> None:
        from functools import partial

        self.venv = gym.vector.SyncVectorEnv(
            [partial(make_port, spec) for _ in range(k)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        one = self.venv.single_observation_space
        self.observation_space = spaces.Box(-np.inf, np.inf, (k, *one.shape), np.float32)
        act = self.venv.single_action_space
        self.action_space = spaces.Box(-1.0, 1.0, (k, *act.shape), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, _ = self.venv.reset(seed=seed)
        return obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.venv.step(action)
        out = {"terminated": terminated, "truncated": truncated}
        if "success" in info:
            out["success"] = info["success"]
        return obs, reward, False, False, out

    def close(self) -> None:
        self.venv.close()


def make_chunk(spec: GymTaskSpec, k: int) -> ChunkEnv:
    return ChunkEnv(spec, k)


# ---------------------------------------------------------------------------------------------
# Port check against our backend


def check_port(task: str, steps: int = 300, seed: int = 0, atol: float = 1e-4) -> dict[str, float]:
    """Step the port and our backend (1 world) from the same states with the same actions.

    After every episode end (they must end on the same step) the port is moved to our
    backend's next initial state, so the reset distributions need not share an RNG.

    Returns:
        The largest absolute differences of observation and reward seen.

    Raises:
        AssertionError: the port disagrees with the task beyond ``atol``.
    """
    import torch

    from rewardlab.envs import make_env

    ours = make_env(task, num_envs=1, seed=seed)
    port = make_port(gym_spec(task))
    port.reset(seed=seed)
    rng = np.random.default_rng(seed)

    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(port.model, spec))

    def sync() -> np.ndarray:
        # the whole integration state (warm start included), as the port's own reset leaves it
        data = ours._batch.get_data(0)  # type: ignore[attr-defined]
        mujoco.mj_getState(port.model, data, state, spec)
        mujoco.mj_setState(port.model, port.data, state, spec)
        mujoco.mj_forward(port.model, port.data)
        port._t = 0
        port._last_action[:] = 0.0
        return port.observe()

    obs_ours = ours.reset(seed=seed)[0].numpy()
    obs_port = sync()
    worst = {"obs": float(np.abs(obs_ours - obs_port).max()), "reward": 0.0}
    episodes = 0
    for t in range(steps):
        a = rng.uniform(-1.0, 1.0, ours.action_dim).astype(np.float32)
        o, r, te, tr, info = ours.step(torch.from_numpy(a)[None])
        po, pr, pte, ptr, pinfo = port.step(a)
        final = info["final_obs"][0].numpy()
        worst["obs"] = max(worst["obs"], float(np.abs(final - po).max()))
        worst["reward"] = max(worst["reward"], abs(float(r[0]) - pr))
        assert (bool(te[0]), bool(tr[0])) == (pte, ptr), (
            f"{task} port: step {t}: terminated/truncated {pte, ptr}, "
            f"task says {bool(te[0]), bool(tr[0])}"
        )
        if pte or ptr:
            episodes += 1
            ok = bool(info["episode"]["success"][0])
            assert ok == pinfo["success"], f"{task} port: step {t}: success differs"
            sync()
        assert worst["obs"] <= atol and worst["reward"] <= atol, (
            f"{task} port disagrees with the task at step {t}: {worst}"
        )
    ours.close()
    port.close()
    worst["episodes"] = episodes
    return worst
