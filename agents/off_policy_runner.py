"""The off-policy runner: SAC on a :class:`BatchedEnv`, with the PPO runner's logs and checkpoints.

Usage::

    env = make_env("arm_reach", num_envs=64)
    runner = OffPolicyRunner(env, SACConfig(), log_dir="runs/reach", seed=0)
    runner.resume_if_possible()
    runner.learn(total_steps=200_000)
    policy = runner.inference_policy()   # raw obs -> tanh(mean), CPU, eval mode

One iteration steps every world ``num_steps`` times (uniform random actions until
``learning_starts`` env steps), then runs the updates due (``updates_per_step`` per step of all
worlds; a fraction carries over to the next iteration). Logs, progress lines, the cut-back of a
resumed run and the atomic, indexed checkpoints are :class:`~rewardlab.agents.runner.BaseRunner`'s,
as for PPO. ``latest.pt`` also holds the replay buffer, the env snapshot and every random state,
so a run resumed from it continues bit-identically (same machine and thread counts); numbered
``model_<it>.pt`` files hold the learner only (a resume from one refills the buffer).

A **real-time** env (``env.real_time``: a robot over ROS 2, :mod:`rewardlab.envs.ros2_backend`)
cannot wait for gradient updates between steps: its controller gives each tick ``action_timeout_s``
to answer and holds the robot otherwise. On such an env the runner collects only, and the
updates due (the same ``updates_per_step`` update-to-data ratio, counted as above) and the
checkpoints run between episodes, while the robot holds and before the next reset (the env calls
the runner back: ``env.set_between_episodes``), as robot learners such as SERL update off the
control loop. The updates due in the episode running when training stops are carried in the
checkpoint (``update_credit``). Such an env has no snapshot, so a resume starts a new episode.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import torch

from rewardlab.agents import checkpoints
from rewardlab.agents.config import SACConfig
from rewardlab.agents.runner import BaseRunner, _Interval, _plain
from rewardlab.agents.sac import SAC, SACInference
from rewardlab.envs.base import BatchedEnv, as_real_time

CHECKPOINT_VERSION = 1


class OffPolicyRunner(BaseRunner):
    """Trains a SAC policy on a batched env.

    Args:
        env: the batched env (each step adds ``num_envs`` transitions).
        cfg: SAC hyper-parameters.
        log_dir: where ``metrics.jsonl``, TensorBoard events and ``checkpoints/`` go; nothing is
            written when ``None``.
        device: torch device of the networks and the replay buffer.
        seed: seeds network init, action noise, batch sampling and the env's first reset.
        checkpoint_every: iterations between checkpoints (and one at the end); 0: only at the end.
        keep_checkpoints: numbered checkpoints to keep besides the best one; 0 keeps all.
        log_every: print a progress line every this many iterations (and the last one).
        num_threads: torch intra-op threads on a CPU device; ``None`` picks 1 (process-wide).
    """

    log_prefix = "sac"

    def __init__(
        self,
        env: BatchedEnv,
        cfg: SACConfig,
        log_dir: str | Path | None = None,
        device: str = "cpu",
        seed: int = 0,
        checkpoint_every: int = 50,
        log_every: int = 50,
        num_threads: int | None = None,
        keep_checkpoints: int = 5,
    ) -> None:
        cfg.validate()
        if keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints: got {keep_checkpoints}, expected >= 0 (0: all)")
        self.env = env
        self.cfg = cfg
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.seed = int(seed)
        self.checkpoint_every = int(checkpoint_every)
        self.keep_checkpoints = int(keep_checkpoints)
        self.log_every = max(1, int(log_every))
        if self.device.type == "cpu":
            torch.set_num_threads(num_threads or 1)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.alg = SAC(
                env.obs_dim, env.action_dim, env.num_envs, cfg, self.device, self.generator
            )
        self.iteration = 0
        self.global_step = 0
        self.update_credit = 0.0
        """Updates due but not yet run (the fraction ``updates_per_step`` leaves over)."""
        self._obs: torch.Tensor | None = None
        self._env_in_sync = True
        self._recent: deque[dict[str, float]] = deque(maxlen=1)
        self._interval = _Interval(first_iteration=1)
        self._robot = as_real_time(env)
        self.real_time = self._robot is not None
        """Updates and checkpoints run between episodes (see the module docstring)."""
        self._pending: dict[str, float] = {}
        self._checkpoint_due = False
        if self._robot is not None:
            self._robot.set_between_episodes(self._between_episodes)

    # -- training --------------------------------------------------------------------------------

    def learn(self, total_steps: int, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps`` env steps in total (steps before a resume count).

        Returns:
            One metric dict per iteration run by this call (``charts/``, ``losses/``,
            ``perf/``; episode metrics only where an episode finished, losses only once
            updates have begun).

        Raises:
            FloatingPointError: the critic loss became NaN or infinite.
            DiskFullError: no space left while writing a checkpoint or metrics.
        """
        cfg, env = self.cfg, self.env
        steps_per_iter = env.num_envs * cfg.num_steps
        history: list[dict[str, float]] = []
        if self.global_step >= total_steps:
            return history
        # the logs first: a real-time env's first tick waits for the first action from the reset on
        with self._learning_session(progress) as (writer, metrics_file):
            session_start, session_steps = time.perf_counter(), 0
            if self._obs is None:
                self._obs = self.env.reset(seed=self.seed).to(self.device)
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                episodes = self._collect(cfg.num_steps)
                t1 = time.perf_counter()
                self.iteration += 1
                self.global_step += steps_per_iter
                session_steps += steps_per_iter
                stats: dict[str, float] = {}
                if (
                    self.global_step >= cfg.learning_starts
                    and self.alg.buffer.num_transitions >= cfg.batch_size
                ):
                    self.update_credit += cfg.num_steps * cfg.updates_per_step
                    if not self.real_time:
                        stats = self._run_updates()
                if self._pending:  # a real-time env's updates, run between episodes
                    stats.update(self._pending)
                    self._pending = {}
                t2 = time.perf_counter()
                last = self.global_step >= total_steps
                row: dict[str, float] = {
                    "iteration": float(self.iteration),
                    "global_step": float(self.global_step),
                }
                row.update(self._episode_metrics(episodes))
                row.update(stats)
                row["perf/collect_s"] = t1 - t0
                row["perf/learn_s"] = t2 - t1
                row["perf/steps_per_s"] = steps_per_iter / max(t2 - t0, 1e-9)
                row["perf/elapsed_s"] = t2 - session_start
                history.append(row)
                self._write_metrics(row, writer, metrics_file)
                if "losses/critic" in stats and not math.isfinite(stats["losses/critic"]):
                    raise FloatingPointError(
                        f"non-finite SAC critic loss at iteration {self.iteration} "
                        f"({stats['losses/critic']}); check the reward for NaN/Inf. "
                        "The last checkpoint is untouched."
                    )
                due = self.checkpoint_every > 0 and self.iteration % self.checkpoint_every == 0
                if self.log_dir is not None and (last or due):
                    if self.real_time and not last:
                        self._checkpoint_due = True  # written between episodes
                    else:
                        if self._robot is not None:  # the robot holds while the learner writes
                            self._robot.hold()
                        self._save_checkpoints(writer, metrics_file)
                        self._checkpoint_due = False
                if progress and (last or self.iteration % self.log_every == 0):
                    elapsed = time.perf_counter() - session_start
                    print(self._progress_line(row, total_steps, session_steps, elapsed), flush=True)
        return history

    def _run_updates(self) -> dict[str, float]:
        """Run the whole updates due (``update_credit``); their loss statistics."""
        n = int(self.update_credit)
        self.update_credit -= n
        stats = self.alg.update(n)
        if n:
            stats["charts/updates"] = float(self.alg.num_updates)
        return stats

    def _between_episodes(self) -> None:
        """A real-time env's callback after each episode (the robot holds): the updates due and
        a checkpoint due."""
        t0 = time.perf_counter()
        with torch.enable_grad():  # called from inside the env step of _collect (no_grad)
            stats = self._run_updates()
        if stats:
            self._pending.update(stats)
        if self._checkpoint_due and self.log_dir is not None:
            self._save_checkpoints(*self._logs)
            self._checkpoint_due = False
        self._pending["perf/between_episodes_s"] = time.perf_counter() - t0

    def _collect(self, num_steps: int) -> list[dict[str, torch.Tensor]]:
        """Step every world ``num_steps`` times, storing the transitions; returns the
        ``info["episode"]`` dicts seen."""
        alg, env, dev = self.alg, self.env, self.device
        episodes: list[dict[str, torch.Tensor]] = []
        obs = self._obs
        assert obs is not None
        with torch.no_grad():
            for _ in range(num_steps):
                random = self.global_step < self.cfg.learning_starts
                with torch.inference_mode():
                    actions = alg.act(obs, random=random)
                self._env_in_sync = False
                new_obs, reward, terminated, truncated, info = env.step(actions.to(env.device))
                new_obs = new_obs.to(dev)
                final_obs = info.get("final_obs")
                next_obs = new_obs if final_obs is None else final_obs.to(dev)
                alg.store(
                    obs, actions, reward.to(dev), next_obs, terminated.to(dev), truncated.to(dev)
                )
                obs = new_obs
                self._obs = obs
                self._env_in_sync = True
                if "episode" in info:
                    episodes.append(info["episode"])
        return episodes

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self, replay: bool = True) -> dict[str, Any]:
        """Everything :meth:`load` restores (tensors and plain data only); the replay buffer
        only when ``replay``."""
        env_state = None
        if self._obs is not None and self._env_in_sync:
            try:
                env_state = checkpoints.to_plain(self.env.get_state_dict(), "env snapshot")
            except NotImplementedError:
                env_state = None
        rng: dict[str, Any] = {
            "generator": self.generator.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        assert self._obs is not None or env_state is None
        return {
            "version": CHECKPOINT_VERSION,
            "agent": "sac",
            **self.alg.state_dict(replay=replay),
            "iteration": self.iteration,
            "global_step": self.global_step,
            "update_credit": self.update_credit,
            "cfg": checkpoints.to_plain(dataclasses.asdict(self.cfg), "cfg"),
            "obs_dim": self.env.obs_dim,
            "action_dim": self.env.action_dim,
            "num_envs": self.env.num_envs,
            "seed": self.seed,
            "rng": rng,
            "env": env_state,
            "obs": None if env_state is None or self._obs is None else self._obs.detach().cpu(),
            "interval": dataclasses.asdict(self._interval),
        }

    def _checkpoint_bytes(self) -> tuple[bytes, bytes]:
        """``model_<it>.pt`` without the replay buffer, ``latest.pt`` with it."""
        return (
            checkpoints.to_bytes(self.state_dict(replay=False)),
            checkpoints.to_bytes(self.state_dict()),
        )

    def _restore(self, ckpt: dict[str, Any], path: str | Path, load_env: bool) -> None:
        model = ckpt["model"]
        if not isinstance(model, dict) or "actor" not in model or "critic" not in model:
            raise ValueError(f"{path}: not a SAC checkpoint (no actor/critic; another agent's?)")
        for key in ("obs_dim", "action_dim"):
            if ckpt[key] != getattr(self.env, key):
                raise ValueError(
                    f"{path}: checkpoint has {key}={ckpt[key]}, env has {getattr(self.env, key)}"
                )
        saved_cfg = ckpt.get("cfg", {})
        current = dataclasses.asdict(self.cfg)
        diff = sorted(k for k, v in saved_cfg.items() if _plain(current.get(k)) != _plain(v))
        if diff:
            warnings.warn(
                f"{path}: SAC config differs from the checkpoint's in {diff}; using the new one",
                stacklevel=3,
            )
        saved_demos = ckpt.get("demo_digest")
        if load_env and saved_demos != self.alg.demo_digest:
            had = "no demonstrations" if saved_demos is None else "other demonstrations"
            has = "none" if self.alg.demo_digest is None else "these"
            raise ValueError(
                f"{path}: the run was trained with {had} mixed into its batches, this one has "
                f"{has} (the demos setting or its files changed); resume with the same demos "
                "or start a new run_dir"
            )
        self._obs = None
        if load_env and ckpt.get("env") is not None:
            try:
                self.env.load_state_dict(checkpoints.from_plain(ckpt["env"]))
                self._obs = ckpt["obs"].to(self.device)
            except NotImplementedError:
                self._obs = None
        self._env_in_sync = True
        replay = ckpt.get("replay")
        if replay is not None and (
            int(ckpt["num_envs"]) != self.env.num_envs
            or int(replay["capacity"]) != self.alg.buffer.capacity
        ):
            replay = None  # another number of worlds or buffer size: refill
        self.alg.load_state_dict({**ckpt, "replay": replay})
        self.iteration = int(ckpt["iteration"])
        self.global_step = int(ckpt["global_step"])
        self.update_credit = float(ckpt.get("update_credit", 0.0))
        self.generator.set_state(ckpt["rng"]["generator"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        interval = ckpt.get("interval")
        self._interval = (
            _Interval(**interval) if isinstance(interval, dict) else _Interval(self.iteration + 1)
        )

    # -- the trained policy ----------------------------------------------------------------------

    def inference_policy(self) -> SACInference:
        """Raw observations ``[B, obs_dim]`` -> deterministic actions ``tanh(mean)``; a CPU copy
        in eval mode, scriptable and ONNX-exportable."""
        return self.alg.inference_policy()
