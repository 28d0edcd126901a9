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
from an env that cannot snapshot itself (it then starts new episodes). Checkpoints are loaded
with ``torch.load(weights_only=True)`` when possible; a checkpoint holding other objects falls
back to full unpickling, so only load checkpoints you trust.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import pickle
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.networks import ActorCritic, InferencePolicy
from rewardlab.agents.ppo import PPO
from rewardlab.envs.base import BatchedEnv

CHECKPOINT_VERSION = 1


class OnPolicyRunner:
    """Trains a PPO policy on a batched env.

    Args:
        env: the batched env (its ``num_envs`` worlds are the rollout batch).
        cfg: PPO hyper-parameters.
        log_dir: where ``metrics.jsonl``, TensorBoard events and ``checkpoints/`` go; nothing is
            written when ``None``.
        device: torch device of the networks and rollout buffers (the env may live elsewhere).
        seed: seeds network init, action noise, minibatch order and the env's first reset.
        checkpoint_every: write ``checkpoints/model_<iteration>.pt`` every this many iterations
            (and at the end of :meth:`learn`); 0 writes only at the end.
        log_every: print a progress line every this many iterations (and the last one).
        num_threads: torch intra-op threads on a CPU device; ``None`` picks 1, which is fastest
            for small MLPs while the physics runs on its own native threads. This sets
            process-wide torch state.
    """

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
    ) -> None:
        cfg.validate()
        self.env = env
        self.cfg = cfg
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.seed = int(seed)
        self.checkpoint_every = int(checkpoint_every)
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
        self._obs: torch.Tensor | None = None
        self._env_in_sync = True  # False while env.step() has run but self._obs is stale
        self._recent: deque[dict[str, float]] = deque(maxlen=1)

    # -- training --------------------------------------------------------------------------------

    def learn(self, total_steps: int, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps`` env steps in total (steps before a resume count).

        Every iteration collects ``num_steps`` steps of every world and runs one PPO update.
        Metrics go to the returned list, ``log_dir/metrics.jsonl`` and TensorBoard. On
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
        """
        steps_per_iter = self.num_envs_total * self.cfg.num_steps
        history: list[dict[str, float]] = []
        if self.global_step >= total_steps:
            return history
        if self._obs is None:
            self._obs = self.env.reset(seed=self.env_seed).to(self.device)
        writer, metrics_file = self._open_logs()
        session_start, session_steps = time.perf_counter(), 0
        try:
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                episodes = self._collect(self.cfg.num_steps)
                t1 = time.perf_counter()
                stats = self.alg.update(progress=self.global_step / total_steps)
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
                    self._save_checkpoints()
                if progress and (last or self.iteration % self.log_every == 0):
                    elapsed = time.perf_counter() - session_start
                    print(self._progress_line(row, total_steps, session_steps, elapsed), flush=True)
        except KeyboardInterrupt:
            if self.log_dir is not None:
                path = self._checkpoint_dir() / "latest.pt"
                self.save(path)
                print(f"[ppo] interrupted; saved {path}", flush=True)
            raise
        finally:
            if writer is not None:
                writer.close()
            if metrics_file is not None:
                metrics_file.close()
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

    # -- logging ---------------------------------------------------------------------------------

    def _open_logs(self) -> tuple[Any, Any]:
        if self.log_dir is None:
            return None, None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.log_dir))
        return writer, open(self.log_dir / "metrics.jsonl", "a", encoding="utf-8")

    def _write_metrics(self, row: dict[str, float], writer: Any, metrics_file: Any) -> None:
        if "charts/episode_return" in row:
            self._recent.append(row)
        if metrics_file is not None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
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
            f"[ppo] it {self.iteration} | step {self.global_step:,}/{total_steps:,} "
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

    # -- checkpoints -----------------------------------------------------------------------------

    def _checkpoint_dir(self) -> Path:
        if self.log_dir is None:
            raise ValueError("this runner has no log_dir")
        return self.log_dir / "checkpoints"

    def _save_checkpoints(self) -> None:
        d = self._checkpoint_dir()
        self.save(d / f"model_{self.iteration}.pt")
        self.save(d / "latest.pt")

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load` restores, as a ``torch.save``-able dict."""
        env_state = None
        if self._obs is not None and self._env_in_sync:
            try:
                env_state = _pack(self.env.get_state_dict())
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
            "model": self.policy.state_dict(),
            "optimizer": self.alg.optimizer.state_dict(),
            "normalizer": self.policy.obs_normalizer.state_dict(),
            "reward_normalizer": self.alg.reward_normalizer.state_dict(),
            "learning_rate": self.alg.learning_rate,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "cfg": dataclasses.asdict(self.cfg),
            "obs_dim": self.env.obs_dim,
            "action_dim": self.env.action_dim,
            "num_envs": self.env.num_envs,
            "seed": self.seed,
            "rng": rng,
            "env": env_state,
            "obs": None if env_state is None else self._obs.detach().cpu(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically: a temp file in the same directory, then ``os.replace``.

        A crash or interrupt while writing leaves any previous file at ``path`` intact.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def load(self, path: str | Path, load_env: bool = True) -> None:
        """Restore a checkpoint written by :meth:`save`, for an exact resume.

        Args:
            path: the checkpoint file.
            load_env: also restore the env snapshot and the current observation (same task and
                ``num_envs`` required). With ``False``, or when the checkpoint has no snapshot
                or the env cannot restore one, the next :meth:`learn` starts new episodes.

        Raises:
            ValueError: the checkpoint's observation or action width differs from the env's.
        """
        ckpt = _torch_load(path)
        for key in ("obs_dim", "action_dim"):
            if ckpt[key] != getattr(self.env, key):
                raise ValueError(
                    f"{path}: checkpoint has {key}={ckpt[key]}, env has {getattr(self.env, key)}"
                )
        saved_cfg = ckpt.get("cfg", {})
        if saved_cfg and saved_cfg != dataclasses.asdict(self.cfg):
            diff = sorted(k for k, v in saved_cfg.items() if getattr(self.cfg, k, None) != v)
            warnings.warn(
                f"{path}: PPO config differs from the checkpoint's in {diff}; using the new one",
                stacklevel=2,
            )
        self.policy.load_state_dict(ckpt["model"])
        self.alg.optimizer.load_state_dict(ckpt["optimizer"])
        self.alg._set_lr(float(ckpt["learning_rate"]))
        self.iteration = int(ckpt["iteration"])
        self.global_step = int(ckpt["global_step"])
        self.generator.set_state(ckpt["rng"]["generator"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        self._obs = None
        if load_env and ckpt.get("env") is not None:
            try:
                self.env.load_state_dict(_unpack(ckpt["env"]))
                self._obs = ckpt["obs"].to(self.device)
            except NotImplementedError:
                self._obs = None
        self._env_in_sync = True
        rn = self.alg.reward_normalizer
        if ckpt.get("reward_normalizer") is not None:
            saved = ckpt["reward_normalizer"]
            if self._obs is not None and saved["ret"].shape == rn.ret.shape:
                rn.load_state_dict(saved)
            else:  # new episodes: keep the statistics, restart the running returns
                saved = dict(saved, ret=torch.zeros_like(rn.ret))
                rn.load_state_dict(saved)

    def resume_if_possible(self, log_dir: str | Path | None = None) -> bool:
        """Load ``<log_dir>/checkpoints/latest.pt`` if it exists (default: this runner's log_dir).

        Returns:
            Whether a checkpoint was loaded.
        """
        root = Path(log_dir) if log_dir is not None else self.log_dir
        if root is None:
            return False
        path = root / "checkpoints" / "latest.pt"
        if not path.is_file():
            return False
        self.load(path)
        return True

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


def _pack(obj: Any) -> Any:
    """Make an env snapshot loadable with ``weights_only=True``: numpy arrays become tensors."""
    if isinstance(obj, np.ndarray):
        try:
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj).copy())}
        except TypeError:  # a dtype torch lacks
            return obj
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_pack(v) for v in obj)
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_unpack(v) for v in obj)
    return obj


def _torch_load(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        warnings.warn(
            f"{path}: not loadable with weights_only=True; unpickling it fully (trusted files only)",
            stacklevel=3,
        )
        return torch.load(path, map_location="cpu", weights_only=False)
