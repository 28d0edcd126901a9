"""The on-policy runner: rollouts on a :class:`BatchedEnv`, PPO updates, logs and checkpoints.

Usage::

    env = make_env("cartpole_balance", num_envs=64)
    runner = OnPolicyRunner(env, PPOConfig(), log_dir="runs/cp", seed=0)
    runner.resume_if_possible()          # continue from runs/cp/checkpoints/latest.pt if any
    runner.learn(total_steps=200_000)
    policy = runner.inference_policy()   # raw obs -> deterministic actions, CPU, eval mode

Everything random in training (network init, action noise, minibatch order) comes from the
runner's own seeded ``torch.Generator`` and the env's own generator, and both are checkpointed
with the env snapshot, so a run resumed from a checkpoint continues bit-identically (on the same
machine and thread counts; not across devices or library versions).

Several processes (one per GPU) train one run through :mod:`rewardlab.agents.distributed`,
which sets :attr:`OnPolicyRunner.env_seed` and :attr:`OnPolicyRunner.num_envs_total`.
What it cannot do: asymmetric actor/critic observations, recurrent policies, or resume exactly
from an env that cannot snapshot itself (it then starts new episodes).

Crashes leave no mess: checkpoints are written atomically and hold only tensors and plain data
(loaded with ``torch.load(weights_only=True)``, never fully unpickled; a corrupt one raises
:class:`~rewardlab.agents.checkpoints.CheckpointError` naming it, and
:meth:`OnPolicyRunner.resume_if_possible` falls back to the newest one that loads). When
:meth:`OnPolicyRunner.learn` starts, it cuts the log directory back to the iteration it
continues from: metrics rows, TensorBoard events and numbered checkpoints written after it by a
killed process are dropped, and temp files of interrupted writes removed. Only the last
``keep_checkpoints`` numbered checkpoints and the best one are kept; ``checkpoints/index.json``
says which is best and why (:func:`rewardlab.agents.checkpoints.best_checkpoint`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import io
import json
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import torch

from rewardlab.agents import checkpoints
from rewardlab.agents.checkpoints import CheckpointError
from rewardlab.agents.config import PPOConfig
from rewardlab.agents.networks import ActorCritic, InferencePolicy
from rewardlab.agents.ppo import PPO
from rewardlab.core.files import DiskFullError, atomic_write, remove_stale_temps
from rewardlab.envs.base import BatchedEnv

__all__ = [
    "BaseRunner",
    "CheckpointError",
    "OnPolicyRunner",
    "truncate_metrics",
    "truncate_tensorboard",
]

CHECKPOINT_VERSION = 1


class BaseRunner:
    """What every runner of this package shares: its log directory (``metrics.jsonl``,
    TensorBoard, cut back on resume), progress lines, and atomic, indexed checkpoints with
    resume (see the module docstring). Subclasses set the attributes below in ``__init__`` and
    implement :meth:`state_dict` and :meth:`_restore`."""

    log_prefix: ClassVar[str] = "runner"
    """Prefix of printed lines (``[ppo] ...``)."""
    env: BatchedEnv
    log_dir: Path | None
    keep_checkpoints: int
    iteration: int
    global_step: int
    _recent: deque[dict[str, float]]
    _interval: _Interval
    _logs: tuple[Any, Any] = (None, None)
    """``(writer, metrics_file)`` while :meth:`learn` runs (see :meth:`_learning_session`)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load` restores: tensors and plain data only."""
        raise NotImplementedError

    def _restore(self, ckpt: dict[str, Any], path: str | Path, load_env: bool) -> None:
        raise NotImplementedError

    @staticmethod
    def _episode_metrics(episodes: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        if not episodes:
            return {}
        keys = [k for k in episodes[0] if k != "env_ids"]
        cat = {k: torch.cat([e[k].reshape(-1) for e in episodes if k in e]) for k in keys}
        out = {"charts/episodes": float(cat["return"].numel())} if "return" in cat else {}
        names = {"return": "charts/episode_return", "length": "charts/episode_length"}
        names["success"] = "charts/success_rate"
        for k, v in cat.items():
            out[names.get(k, k)] = float(v.double().mean())
        return out

    @contextlib.contextmanager
    def _learning_session(self, progress: bool) -> Iterator[tuple[Any, Any]]:
        """One :meth:`learn` call's logs: opens them (:meth:`_open_logs`) and yields
        ``(writer, metrics_file)``, also kept in :attr:`_logs` meanwhile; on ``KeyboardInterrupt``
        saves ``checkpoints/latest.pt`` (with a log dir) and re-raises; always closes them."""
        writer, metrics_file = self._open_logs(progress)
        self._logs = (writer, metrics_file)
        try:
            yield writer, metrics_file
        except KeyboardInterrupt:
            if self.log_dir is not None:
                path = self.save(self._checkpoint_dir() / checkpoints.LATEST_NAME)
                print(f"[{self.log_prefix}] interrupted; saved {path}", flush=True)
            raise
        finally:
            self._logs = (None, None)
            if writer is not None:
                writer.close()
            if metrics_file is not None:
                metrics_file.close()

    def _open_logs(self, progress: bool) -> tuple[Any, Any]:
        """Open TensorBoard and ``metrics.jsonl`` after cutting the run back to this iteration.

        Metrics rows, TensorBoard scalars and numbered checkpoints from after
        :attr:`iteration` (written by a process that died before its next checkpoint, or a
        future being rewritten from an older checkpoint) are removed, as are temp files of
        interrupted writes, so every iteration appears once.
        """
        if self.log_dir is None:
            return None, None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        notes = self._cut_back_to_iteration()
        if notes and progress:
            print(
                f"[{self.log_prefix}] continuing at iteration {self.iteration}: {'; '.join(notes)}",
                flush=True,
            )
        from torch.utils.tensorboard import SummaryWriter

        _after_existing_event_files(self.log_dir)
        # purge_step: TensorBoard readers also hide any older event at a later step.
        writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=self.global_step + 1)
        return writer, open(self.log_dir / "metrics.jsonl", "a", encoding="utf-8")

    def _cut_back_to_iteration(self) -> list[str]:
        """Remove what an earlier process wrote past this iteration; returns notes for the user."""
        assert self.log_dir is not None
        notes = []
        ckpt_dir = self._checkpoint_dir()
        temps = remove_stale_temps(ckpt_dir)
        temps += remove_stale_temps(self.log_dir, "metrics.jsonl")
        temps += remove_stale_temps(self.log_dir, "events.out.tfevents")
        if temps:
            notes.append(f"removed {len(temps)} temp file(s) of interrupted writes")
        rows = truncate_metrics(self.log_dir / "metrics.jsonl", self.iteration)
        if rows:
            notes.append(f"dropped {rows} metrics.jsonl row(s) after iteration {self.iteration}")
        events = truncate_tensorboard(self.log_dir, self.global_step)
        if events:
            notes.append(f"dropped {events} TensorBoard event(s) after step {self.global_step:,}")
        gone = [p.name for p in checkpoints.forget_after(ckpt_dir, self.iteration)]
        latest = ckpt_dir / checkpoints.LATEST_NAME
        if latest.is_file():
            try:
                stale = int(checkpoints.load_checkpoint(latest)["iteration"]) > self.iteration
                what = latest.name
            except checkpoints.CheckpointError:
                stale, what = True, f"{latest.name} (corrupt)"
            if stale:
                latest.unlink(missing_ok=True)
                gone.append(what)
        if gone:
            notes.append("removed checkpoint(s) this run does not continue: " + ", ".join(gone))
        return notes

    def _write_metrics(self, row: dict[str, float], writer: Any, metrics_file: Any) -> None:
        if "charts/episode_return" in row:
            self._recent.append(row)
        self._interval.add(row)
        if metrics_file is not None:
            try:
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFullError(metrics_file.name) from None
                raise
        if writer is not None:
            step = int(row["global_step"])
            for k, v in row.items():
                if k not in ("iteration", "global_step"):
                    writer.add_scalar(k, v, step)

    def _progress_line(
        self, row: dict[str, float], total_steps: int, session_steps: int, elapsed: float
    ) -> str:
        rate = session_steps / max(elapsed, 1e-9)
        eta = max(total_steps - self.global_step, 0) / max(rate, 1e-9)
        line = (
            f"[{self.log_prefix}] it {self.iteration} | step {self.global_step:,}/{total_steps:,} "
            f"| {rate:,.0f} steps/s | elapsed {_fmt_s(elapsed)} | ETA {_fmt_s(eta)}"
        )
        if self._recent:
            ep = self._recent[-1]
            age = self.iteration - int(ep["iteration"])
            line += (
                f" | return {ep['charts/episode_return']:.2f}"
                f" | success {ep.get('charts/success_rate', float('nan')):.2f}"
                f" | len {ep.get('charts/episode_length', float('nan')):.0f}"
            )
            if age:
                line += f" (from it {int(ep['iteration'])})"
        else:
            line += " | no episode finished yet"
        return line

    def _checkpoint_dir(self) -> Path:
        if self.log_dir is None:
            raise ValueError("this runner has no log_dir")
        return self.log_dir / "checkpoints"

    def _save_checkpoints(self, writer: Any, metrics_file: Any) -> None:
        """Write ``latest.pt`` and ``model_<it>.pt``, index them, prune old ones.

        The logs are flushed first, so they cover every iteration up to the checkpoint. The
        order (numbered, index and pruning, then latest) means a crash at any point leaves
        ``latest.pt`` at a complete earlier checkpoint; resuming from it drops the newer
        numbered file and index entry, which training then writes again.
        """
        if writer is not None:
            writer.flush()
        if metrics_file is not None:
            metrics_file.flush()
            os.fsync(metrics_file.fileno())
        record = self._interval.record(self.iteration, self.global_step)
        self._interval = _Interval(self.iteration + 1)
        d = self._checkpoint_dir()
        numbered, latest = self._checkpoint_bytes()
        atomic_write(d / record.file, numbered)
        checkpoints.update_index(d, record, self.keep_checkpoints)
        atomic_write(d / checkpoints.LATEST_NAME, latest)

    def _checkpoint_bytes(self) -> tuple[bytes, bytes]:
        """The serialized ``(model_<it>.pt, latest.pt)`` of a checkpoint: both :meth:`state_dict`
        here; an off-policy runner keeps its replay buffer in ``latest.pt`` only."""
        data = checkpoints.to_bytes(self.state_dict())
        return data, data

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (serialized in memory, then
        :func:`rewardlab.core.files.atomic_write`: temp file in the same folder, ``os.replace``).

        A crash or interrupt while writing leaves any previous file at ``path`` intact.

        Raises:
            DiskFullError: no space left on the device (names ``path``; the old file is intact).
        """
        return atomic_write(Path(path), checkpoints.to_bytes(self.state_dict()))

    def load(self, path: str | Path | IO[bytes], load_env: bool = True) -> None:
        """Restore a checkpoint written by :meth:`save`, for an exact resume.

        The file is loaded with ``torch.load(weights_only=True)`` only, never fully unpickled.

        Args:
            path: the checkpoint file (or a binary file object holding one).
            load_env: also restore the env snapshot and the current observation (same task and
                ``num_envs`` required). With ``False``, or when the checkpoint has no snapshot
                or the env cannot restore one, the next :meth:`learn` starts new episodes.

        Raises:
            CheckpointError: the file is empty, truncated, damaged or not a checkpoint (a
                ``ValueError`` naming it, and the newest checkpoint beside it that loads).
            ValueError: the checkpoint's observation or action width differs from the env's.
        """
        try:
            ckpt = checkpoints.load_checkpoint(path)
        except checkpoints.CheckpointError as e:
            if not isinstance(path, str | Path):
                raise
            raise checkpoints.CheckpointError(e.path, e.reason, _previous_hint(e.path)) from None
        self._restore(ckpt, path if isinstance(path, str | Path) else _source_name(path), load_env)

    def resume_if_possible(self, log_dir: str | Path | None = None) -> bool:
        """Load the newest checkpoint of ``<log_dir>/checkpoints`` that loads.

        That is ``latest.pt``, or, when it is corrupt (empty, truncated, damaged), the newest
        ``model_<it>.pt`` that loads; a line on stdout then names the corrupt file and the
        one used instead. ``log_dir`` defaults to this runner's.

        Returns:
            Whether a checkpoint was loaded.
        """
        root = Path(log_dir) if log_dir is not None else self.log_dir
        if root is None:
            return False
        point, ckpt = checkpoints.newest_loadable(root / "checkpoints")
        if (msg := point.message()) is not None:
            print(f"[{self.log_prefix}] {msg}", flush=True)
        if ckpt is None or point.path is None:
            return False
        self._restore(ckpt, point.path, load_env=True)
        return True

    def best_checkpoint(self) -> checkpoints.BestCheckpoint | None:
        """The best checkpoint of this runner's log_dir so far (see
        :data:`rewardlab.agents.checkpoints.BEST_METRIC`); ``None`` without one."""
        if self.log_dir is None:
            return None
        return checkpoints.best_checkpoint(self._checkpoint_dir())


class OnPolicyRunner(BaseRunner):
    """Trains a PPO policy on a batched env.

    Args:
        env: the batched env (its ``num_envs`` worlds are the rollout batch).
        cfg: PPO hyper-parameters.
        log_dir: where ``metrics.jsonl``, TensorBoard events and ``checkpoints/`` go; nothing is
            written when ``None``.
        device: torch device of the networks and rollout buffers (the env may live elsewhere).
        seed: seeds network init, action noise, minibatch order and the env's first reset.
        checkpoint_every: write ``checkpoints/model_<iteration>.pt`` (and ``latest.pt``) every
            this many iterations and at the end of :meth:`learn`; 0 writes only at the end.
        keep_checkpoints: keep the last this many ``model_<iteration>.pt`` files, plus the best
            one (:data:`rewardlab.agents.checkpoints.BEST_METRIC`); older ones are deleted
            after each checkpoint, their scores stay in ``checkpoints/index.json``. 0 keeps
            all.
        log_every: print a progress line every this many iterations (and the last one).
        num_threads: torch intra-op threads on a CPU device; ``None`` picks 1, which is fastest
            for small MLPs while the physics runs on its own native threads. This sets
            process-wide torch state.
    """

    log_prefix = "ppo"

    def __init__(
        self,
        env: BatchedEnv,
        cfg: PPOConfig,
        log_dir: str | Path | None = None,
        device: str = "cpu",
        seed: int = 0,
        checkpoint_every: int = 50,
        log_every: int = 10,
        num_threads: int | None = None,
        keep_checkpoints: int = 5,
    ) -> None:
        cfg.validate()
        self.env = env
        self.cfg = cfg
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.seed = int(seed)
        self.checkpoint_every = int(checkpoint_every)
        if keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints: got {keep_checkpoints}, expected >= 0 (0: all)")
        self.keep_checkpoints = int(keep_checkpoints)
        self.log_every = max(1, int(log_every))
        if self.device.type == "cpu":
            torch.set_num_threads(num_threads or 1)

        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.policy = ActorCritic(
                env.obs_dim,
                env.action_dim,
                cfg.actor_hidden,
                cfg.critic_hidden,
                cfg.activation,
                cfg.init_noise_std,
                cfg.normalize_obs,
            )
        self.alg = PPO(self.policy, cfg, env.num_envs, self.device, self.generator)
        self.iteration = 0
        self.global_step = 0
        self.env_seed = self.seed
        """Seed of the env's first reset (per rank in a distributed run)."""
        self.num_envs_total = env.num_envs
        """Worlds per rollout over all processes (``global_step`` counts their steps)."""
        self.schedule_steps: int | None = None
        """Env steps the schedules (``linear`` learning rate, ``desired_kl_final`` anneal) count
        training progress against; ``None``: the ``total_steps`` of each :meth:`learn` call. Set
        it when training in several :meth:`learn` calls (benchmarks that stop to evaluate)."""
        self._obs: torch.Tensor | None = None
        self._env_in_sync = True  # False while env.step() has run but self._obs is stale
        self._recent: deque[dict[str, float]] = deque(maxlen=1)
        self._interval = _Interval(first_iteration=1)

    # -- training --------------------------------------------------------------------------------

    def learn(self, total_steps: int, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps`` env steps in total (steps before a resume count).

        Every iteration collects ``num_steps`` steps of every world and runs one PPO update.
        Metrics go to the returned list, ``log_dir/metrics.jsonl`` and TensorBoard (first cut
        back to :attr:`iteration`, see the module docstring). On
        ``KeyboardInterrupt`` a checkpoint is saved to ``checkpoints/latest.pt`` before the
        interrupt is re-raised; any other exception leaves the last checkpoint as it was.

        Args:
            total_steps: target of ``global_step`` (env steps summed over worlds).
            progress: print one progress line every ``log_every`` iterations and at the end.

        Returns:
            One metric dict per iteration run by this call. ``charts/episode_*``,
            ``charts/success_rate`` and ``reward/<term>`` appear only in iterations where at
            least one episode finished.

        Raises:
            FloatingPointError: a loss became NaN or infinite (e.g. a reward returned NaN).
            DiskFullError: no space left while writing a checkpoint or metrics (names the file).
        """
        steps_per_iter = self.num_envs_total * self.cfg.num_steps
        history: list[dict[str, float]] = []
        if self.global_step >= total_steps:
            return history
        if self._obs is None:
            self._obs = self.env.reset(seed=self.env_seed).to(self.device)
        with self._learning_session(progress) as (writer, metrics_file):
            session_start, session_steps = time.perf_counter(), 0
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                episodes = self._collect(self.cfg.num_steps)
                t1 = time.perf_counter()
                stats = self.alg.update(
                    progress=self.global_step / (self.schedule_steps or total_steps)
                )
                t2 = time.perf_counter()
                self.iteration += 1
                self.global_step += steps_per_iter
                session_steps += steps_per_iter
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
                if not all(math.isfinite(stats[k]) for k in ("losses/value", "losses/policy")):
                    raise FloatingPointError(
                        f"non-finite PPO loss at iteration {self.iteration} "
                        f"(value {stats['losses/value']}, policy {stats['losses/policy']}); "
                        "check the reward for NaN/Inf. The last checkpoint is untouched."
                    )
                if self.log_dir is not None and (
                    last
                    or (self.checkpoint_every > 0 and self.iteration % self.checkpoint_every == 0)
                ):
                    self._save_checkpoints(writer, metrics_file)
                if progress and (last or self.iteration % self.log_every == 0):
                    elapsed = time.perf_counter() - session_start
                    print(self._progress_line(row, total_steps, session_steps, elapsed), flush=True)
        return history

    def _collect(self, num_steps: int) -> list[dict[str, torch.Tensor]]:
        """Fill the rollout storage; returns the ``info["episode"]`` dicts seen."""
        alg, env, dev = self.alg, self.env, self.device
        alg.storage.clear()
        episodes: list[dict[str, torch.Tensor]] = []
        obs = self._obs
        assert obs is not None
        # The policy runs in inference mode; env.step runs outside it (under no_grad), because
        # tensors an env creates inside inference mode could not be updated in place after.
        with torch.no_grad():
            for _ in range(num_steps):
                with torch.inference_mode():
                    actions = alg.act(obs)
                self._env_in_sync = False
                obs, reward, terminated, truncated, info = env.step(actions.to(env.device))
                obs = obs.to(dev)
                self._obs = obs
                self._env_in_sync = True
                final_obs = info.get("final_obs")
                with torch.inference_mode():
                    alg.process_env_step(
                        reward.to(dev),
                        terminated.to(dev),
                        truncated.to(dev),
                        None if final_obs is None else final_obs.to(dev),
                    )
                if "episode" in info:
                    episodes.append(info["episode"])
            with torch.inference_mode():
                alg.compute_returns(obs)
        return episodes

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load` restores: tensors and plain data only.

        Numpy arrays of the env snapshot become tensors (see
        :func:`rewardlab.agents.checkpoints.to_plain`), so the dict loads with
        ``torch.load(weights_only=True)``.
        """
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
        return {
            "version": CHECKPOINT_VERSION,
            **self.alg.state_dict(),  # model, optimizer, reward_normalizer, learning_rate
            "iteration": self.iteration,
            "global_step": self.global_step,
            "cfg": checkpoints.to_plain(dataclasses.asdict(self.cfg), "cfg"),
            "obs_dim": self.env.obs_dim,
            "action_dim": self.env.action_dim,
            "num_envs": self.env.num_envs,
            "seed": self.seed,
            "rng": rng,
            "env": env_state,
            "obs": None if env_state is None else self._obs.detach().cpu(),
            "interval": dataclasses.asdict(self._interval),
        }

    def _restore(self, ckpt: dict[str, Any], path: str | Path, load_env: bool) -> None:
        for key in ("obs_dim", "action_dim"):
            if ckpt[key] != getattr(self.env, key):
                raise ValueError(
                    f"{path}: checkpoint has {key}={ckpt[key]}, env has {getattr(self.env, key)}"
                )
        saved_cfg = ckpt.get("cfg", {})
        current = dataclasses.asdict(self.cfg)
        if saved_cfg and saved_cfg != current:
            diff = sorted(k for k, v in saved_cfg.items() if _plain(current.get(k)) != _plain(v))
            if diff:
                warnings.warn(
                    f"{path}: PPO config differs from the checkpoint's in {diff}; using the new one",
                    stacklevel=3,
                )
        self._obs = None
        if load_env and ckpt.get("env") is not None:
            try:
                self.env.load_state_dict(checkpoints.from_plain(ckpt["env"]))
                self._obs = ckpt["obs"].to(self.device)
            except NotImplementedError:
                self._obs = None
        self._env_in_sync = True
        # the algorithm owns its state; without the env snapshot its reward normalizer
        # restarts the per-world running returns
        self.alg.load_state_dict(ckpt, new_episodes=self._obs is None)
        self.iteration = int(ckpt["iteration"])
        self.global_step = int(ckpt["global_step"])
        self.generator.set_state(ckpt["rng"]["generator"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        interval = ckpt.get("interval")
        self._interval = (
            _Interval(**interval) if isinstance(interval, dict) else _Interval(self.iteration + 1)
        )

    # -- the trained policy ----------------------------------------------------------------------

    def inference_policy(self) -> torch.nn.Module:
        """Raw observations ``[B, obs_dim]`` -> deterministic actions ``[B, action_dim]``.

        Observation normalizer, then actor mean, clamped to ``[-1, 1]``; a copy on the CPU in
        eval mode with gradients off, scriptable with ``torch.jit.script``/``trace`` and
        exportable to ONNX. Later training does not change the returned module.
        """
        module = InferencePolicy(
            copy.deepcopy(self.policy.obs_normalizer),
            copy.deepcopy(self.policy.actor),
            self.policy.obs_dim,
            self.policy.action_dim,
        )
        module = module.cpu().eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module


# -- helpers -------------------------------------------------------------------------------------


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@dataclass
class _Interval:
    """Training episodes since the last checkpoint (what the best checkpoint is chosen by)."""

    first_iteration: int
    episodes: float = 0.0
    success_episodes: float = 0.0
    success_sum: float = 0.0
    return_sum: float = 0.0

    def add(self, row: dict[str, float]) -> None:
        n = row.get("charts/episodes", 0.0)
        if n <= 0 or "charts/episode_return" not in row:
            return
        self.episodes += n
        self.return_sum += row["charts/episode_return"] * n
        if "charts/success_rate" in row:
            self.success_episodes += n
            self.success_sum += row["charts/success_rate"] * n

    def record(self, iteration: int, global_step: int) -> checkpoints.CheckpointRecord:
        return checkpoints.CheckpointRecord(
            file=f"model_{iteration}.pt",
            iteration=iteration,
            global_step=global_step,
            first_iteration=self.first_iteration,
            episodes=int(self.episodes),
            success_rate=self.success_sum / self.success_episodes
            if self.success_episodes
            else None,
            episode_return=self.return_sum / self.episodes if self.episodes else None,
        )


def _plain(value: Any) -> Any:
    """Tuples as lists, so a config read back from a checkpoint compares equal."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _source_name(source: str | Path | IO[bytes]) -> str | Path:
    if isinstance(source, str | Path):
        return source
    return getattr(source, "name", None) or "<checkpoint in memory>"


def _previous_hint(path: Path) -> str:
    """Where to resume from instead of the corrupt ``path`` (the newest checkpoint beside it
    that loads), for :class:`CheckpointError` messages."""
    folder = path.parent
    for other in checkpoints.candidates(folder):
        if other.name == path.name:
            continue
        try:
            it = int(checkpoints.load_checkpoint(other)["iteration"])
        except (checkpoints.CheckpointError, OSError):
            continue
        return f"the newest checkpoint beside it that loads is {other} (iteration {it})"
    return "no other checkpoint beside it loads"


def truncate_metrics(path: str | Path, iteration: int) -> int:
    """Keep the rows of a ``metrics.jsonl`` up to ``iteration``; rewrite it atomically.

    Rows after ``iteration`` and lines that do not parse (a row torn by a kill) are dropped.

    Returns:
        How many lines were dropped (0: the file was left as it was).
    """
    path = Path(path)
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and int(row["iteration"]) <= iteration
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            keep.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        atomic_write(path, "".join(keep))
    return dropped


def _after_existing_event_files(log_dir: Path) -> None:
    """Wait (at most about a second) until a new event file's name sorts after every existing
    one. TensorBoard reads a folder's event files in name order; the names start with the
    creation second, then host, pid and a per-process counter, so a file made in the same second
    as an earlier one could sort before it (counter 10 < 9 as text, another pid) and its steps
    would be read before the older file's: out of order, and purged from the display."""
    stamps = []
    for f in log_dir.glob("events.out.tfevents.*"):
        part = f.name.split(".")[3:4]
        if part and part[0].isdigit():
            stamps.append(int(part[0]))
    if not stamps:
        return
    newest, give_up = max(stamps), time.monotonic() + 1.5  # a file from the future: no wait
    while int(time.time()) <= newest and time.monotonic() < give_up:
        time.sleep(0.05)


def truncate_tensorboard(log_dir: str | Path, global_step: int) -> int:
    """Drop TensorBoard scalar events after ``global_step`` from the event files in ``log_dir``.

    Each changed file is rewritten atomically (a torn last record, left by a kill, goes too),
    so any reader sees every step once and in order. Readers that honour ``purge_step``
    would hide such events anyway; raw readers would not.

    Returns:
        How many events were dropped.
    """
    files = sorted(Path(log_dir).glob("events.out.tfevents.*"))
    if not files:
        return 0
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in files:
        records = list(RawEventFileLoader(str(path)).Load())
        buf = io.BytesIO()
        out = RecordWriter(buf)
        n = 0
        for raw in records:
            event = event_pb2.Event.FromString(raw)
            if event.HasField("summary") and event.step > global_step:
                n += 1
                continue
            out.write(raw)
        if n or len(buf.getvalue()) != path.stat().st_size:  # dropped events or a torn tail
            atomic_write(path, buf.getvalue())
        dropped += n
    return dropped
