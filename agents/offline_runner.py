"""What the learners from recorded episodes (``bc``, ``iql``) share: the runner loop.

Both count ``total_steps`` in **gradient steps**: one learner iteration is
``steps_per_iteration`` minibatch updates; the training env runs only for the periodic evaluation
of the task's own success (deterministic actions, every ``eval_every`` iterations and at the end),
which also remembers the best network (``keep_best``). Logs, cut-back on resume and atomic
indexed checkpoints are :class:`~rewardlab.agents.runner.BaseRunner`'s, as for PPO and SAC.

A subclass supplies the algorithm through a few hooks (:meth:`OfflineRunner._build`,
:meth:`~OfflineRunner._make_storage`, :meth:`~OfflineRunner._update`, ...); the loop, the
evaluation, the best network, the checkpoint's common fields and exact resume live here once.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from rewardlab.agents import checkpoints
from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.networks import EmpiricalNormalization, InferencePolicy
from rewardlab.agents.runner import BaseRunner, _Interval
from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.demos import Episodes, load_episodes

CHECKPOINT_VERSION = 1
STD_FLOOR = 0.1
"""Lower bound of the observation std (nearly constant features are not amplified)."""


class OfflineConfig(Protocol):
    """The settings :class:`OfflineRunner` reads (``BCConfig``, ``IQLConfig``)."""

    @property
    def demos(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def normalize_obs(self) -> bool: ...
    @property
    def steps_per_iteration(self) -> int: ...
    @property
    def eval_every(self) -> int: ...
    @property
    def eval_episodes(self) -> int: ...
    @property
    def keep_best(self) -> bool: ...
    def validate(self) -> None: ...


class OfflineStorage(Protocol):
    """The data as tensors on the learner device (``DemoStorage``, ``TransitionStorage``)."""

    @property
    def obs(self) -> torch.Tensor: ...
    @property
    def episodes(self) -> int: ...
    @property
    def digest(self) -> str: ...
    def sample(self, batch: int, generator: torch.Generator) -> Any: ...


def fix_normalization(normalizer: EmpiricalNormalization, obs: torch.Tensor) -> None:
    """Fix ``normalizer`` to the mean and std (floored at :data:`STD_FLOOR`) of ``obs`` ``[S, D]``."""
    mean = obs.double().mean(0)
    var = obs.double().var(0, unbiased=False)
    normalizer.mean.copy_(mean)
    normalizer.var.copy_(var)
    normalizer.std.copy_(var.sqrt().clamp_min(STD_FLOOR))
    normalizer.count.fill_(obs.shape[0])


def load_task_episodes(key: str, agent: str, files: list[str], env: BatchedEnv) -> Episodes:
    """The episodes of ``files`` for ``env``'s task.

    Args:
        key: the config key that named the files (``bc.demos``), for the errors.
        agent: the agent's name (``bc``), for the errors.
        files: episode files (``rewardlab demos record``).
        env: the training env: its task and widths must match the episodes'.

    Raises:
        ValueError: no file named, a bad file, another task or other widths (one line naming
            what is wrong).
    """
    if not files:
        raise ValueError(
            f"{key}: required with agent={agent} (an episode file: rewardlab demos record)"
        )
    eps = load_episodes(files)
    task = getattr(getattr(env, "task", None), "name", None)
    if task is not None and eps.task != task:
        raise ValueError(f"{key}: {files[0]} holds episodes of {eps.task!r}, training {task!r}")
    obs_dim, act_dim = eps.observations.shape[2], eps.actions.shape[2]
    if (obs_dim, act_dim) != (env.obs_dim, env.action_dim):
        raise ValueError(
            f"{key}: episodes have obs/action widths {obs_dim}/{act_dim}, the env "
            f"{env.obs_dim}/{env.action_dim} (recorded with another task config?)"
        )
    return eps


class OfflineRunner(BaseRunner):
    """Trains a network from recorded episodes; metrics, evaluation and checkpoints in
    ``log_dir``.

    Args:
        env: the training env (its task's episodes; it runs only for evaluation).
        cfg: the agent's settings.
        log_dir: where ``metrics.jsonl``, TensorBoard events and ``checkpoints/`` go (``None``:
            nothing is written).
        device: torch device of the networks.
        seed: seeds network init and minibatch order.
        checkpoint_every: iterations between checkpoints (and at the end).
        keep_checkpoints: numbered checkpoints kept besides the best (0: all).
    """

    loss_keys: ClassVar[tuple[str, ...]] = ()
    """Row keys that must stay finite (a non-finite one stops training, naming it)."""
    data_hint: ClassVar[str] = "the data"
    """What to check when a loss is not finite (``"the demos"``)."""
    progress_keys: ClassVar[tuple[tuple[str, str], ...]] = ()
    """``(label, row key)`` pairs of the progress line."""

    cfg: OfflineConfig
    """The agent's settings (set by :meth:`_build`)."""
    net: nn.Module
    """The networks (``normalizer`` and ``actor`` are what the exported policy runs)."""

    def __init__(
        self,
        env: BatchedEnv,
        cfg: OfflineConfig,
        log_dir: Path | None = None,
        device: str = "cpu",
        seed: int = 0,
        checkpoint_every: int = 50,
        keep_checkpoints: int = 5,
    ) -> None:
        cfg.validate()
        self.env = env
        self.device = torch.device(device)
        self.log_dir = log_dir
        self.seed = int(seed)
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.keep_checkpoints = int(keep_checkpoints)
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build(cfg)
        self.storage: OfflineStorage | None = None
        self.iteration = 0
        self.global_step = 0
        self._recent: deque[dict[str, float]] = deque(maxlen=1)
        self._interval = _Interval(first_iteration=1)
        self.best: dict[str, Any] | None = None
        """``{"success", "iteration", "model"}`` of the best periodic evaluation so far
        (``model``: :meth:`_best_state`)."""

    # -- hooks -----------------------------------------------------------------------------------

    def _build(self, cfg: Any) -> None:
        """Set ``self.cfg``, ``self.net`` and the algorithm (under the run's torch seed)."""
        raise NotImplementedError

    def _make_storage(self) -> OfflineStorage:
        """Load the data (one-line ``ValueError`` when it does not fit)."""
        raise NotImplementedError

    def _update(self, batch: Any) -> dict[str, float]:
        """One gradient step on a minibatch of :meth:`_make_storage`'s ``sample``; its losses."""
        raise NotImplementedError

    def _optimizer_state(self) -> dict[str, Any]:
        """The checkpoint entries of the optimizers."""
        raise NotImplementedError

    def _load_optimizer_state(self, ckpt: dict[str, Any]) -> None:
        """Restore what :meth:`_optimizer_state` wrote."""
        raise NotImplementedError

    def _best_state(self) -> dict[str, torch.Tensor]:
        """What :attr:`best` keeps of the networks (the whole net's state by default)."""
        return self.net.state_dict()

    def _policy_parts(self, best: dict[str, torch.Tensor] | None) -> tuple[nn.Module, nn.Module]:
        """``(normalizer, actor)`` of the current network, or of ``best`` (a
        :meth:`_best_state`); copies, never the training modules themselves."""
        net = copy.deepcopy(self.net)
        if best is not None:
            net.load_state_dict(best)
        return net.normalizer, net.actor

    def _data_mismatch(self, path: str | Path) -> str:
        """The error when a resumed run is given other data than it was trained on."""
        raise NotImplementedError

    # -- training --------------------------------------------------------------------------------

    def load_demos(self) -> None:
        """Load the data and fix the observation normalizer from it (once)."""
        if self.storage is not None:
            return
        self.storage = self._make_storage()
        if self.cfg.normalize_obs and self.iteration == 0:
            fix_normalization(self.net.normalizer, self.storage.obs)  # type: ignore[arg-type]

    def learn(self, total_steps: int, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps`` gradient steps in total (those before a resume count)."""
        self.load_demos()
        assert self.storage is not None
        history: list[dict[str, float]] = []
        if self.global_step >= total_steps:
            return history
        cfg = self.cfg
        with self._learning_session(progress) as (writer, metrics):
            start = time.perf_counter()
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                n = min(cfg.steps_per_iteration, total_steps - self.global_step)
                self.net.train()
                stats: list[dict[str, float]] = []
                for _ in range(n):
                    stats.append(self._update(self.storage.sample(cfg.batch_size, self.generator)))
                    self.global_step += 1
                self.iteration += 1
                last = self.global_step >= total_steps
                row: dict[str, float] = {
                    "iteration": float(self.iteration),
                    "global_step": float(self.global_step),
                    **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]},
                    "charts/demo_transitions": float(self.storage.obs.shape[0]),
                    "charts/demo_episodes": float(self.storage.episodes),
                }
                t1 = time.perf_counter()
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    row.update(self.evaluate())
                    self._track_best(row)
                t2 = time.perf_counter()
                row["perf/learn_s"] = t1 - t0
                row["perf/eval_s"] = t2 - t1
                row["perf/grad_steps_per_s"] = n / max(t1 - t0, 1e-9)
                row["perf/elapsed_s"] = t2 - start
                bad = [k for k in self.loss_keys if not math.isfinite(row[k])]
                if bad:
                    raise FloatingPointError(
                        f"non-finite {bad[0]} at iteration {self.iteration}; check "
                        f"{self.data_hint} for NaN/Inf. The last checkpoint is untouched."
                    )
                history.append(row)
                self._write_metrics(row, writer, metrics)
                if self.log_dir is not None and (
                    last or self.iteration % self.checkpoint_every == 0
                ):
                    self._save_checkpoints(writer, metrics)
                if progress and ("charts/success_rate" in row or last):
                    fields = "".join(f"| {label} {row[k]:.4f} " for label, k in self.progress_keys)
                    sr = row.get("charts/success_rate", float("nan"))
                    print(
                        f"[{self.log_prefix}] it {self.iteration} | step "
                        f"{self.global_step:,}/{total_steps:,} {fields}| eval success {sr:.2f}",
                        flush=True,
                    )
        return history

    def _track_best(self, row: dict[str, float]) -> None:
        """Remember the network of the best evaluation (ties: the later one)."""
        score = row["charts/success_rate"]
        if self.best is None or score >= self.best["success"]:
            self.best = {
                "success": score,
                "iteration": self.iteration,
                "model": copy.deepcopy(self._best_state()),
            }

    def evaluate(self) -> dict[str, float]:
        """The task's own success of the deterministic policy on fresh episodes of the training
        env (reset with a fixed seed, so evaluations are comparable and resume is exact)."""
        episodes = min(self.cfg.eval_episodes, self.env.num_envs)
        with torch.random.fork_rng(devices=[]):
            out = evaluate(self.inference_policy(), self.env, episodes, seed=self.seed + 20_000)
        return {
            "charts/success_rate": float(out["success_rate"]),
            "charts/episode_return": float(out["return_mean"]),
            "charts/episode_length": float(out["length_mean"]),
            "charts/episodes": float(out["episodes"]),
        }

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load` restores (tensors and plain data)."""
        return {
            "version": CHECKPOINT_VERSION,
            "agent": self.log_prefix,
            "model": self.net.state_dict(),
            **self._optimizer_state(),
            "iteration": self.iteration,
            "global_step": self.global_step,
            "obs_dim": self.env.obs_dim,
            "action_dim": self.env.action_dim,
            "cfg": checkpoints.to_plain(dataclasses.asdict(self.cfg), "cfg"),  # type: ignore[arg-type]
            "seed": self.seed,
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
            "demos_digest": self.storage.digest if self.storage is not None else None,
            "best": self.best,
            "interval": dataclasses.asdict(self._interval),
        }

    def _restore(self, ckpt: dict[str, Any], path: str | Path, load_env: bool) -> None:
        """Restore a loaded checkpoint (:meth:`BaseRunner.load` reads it as data).

        ``load_env`` means this run continues training: then the data must be the one the
        checkpoint was trained on. ``False`` restores the policy only (evaluation, export).

        Raises:
            CheckpointError: another agent's checkpoint.
            ValueError: other widths, or other data than it was trained on.
        """
        agent = self.log_prefix
        if ckpt.get("agent") != agent:
            article = "an" if agent[0] in "aeiou" else "a"
            raise checkpoints.CheckpointError(path, f"not {article} {agent} checkpoint")
        for key in ("obs_dim", "action_dim"):
            if ckpt[key] != getattr(self.env, key):
                raise ValueError(
                    f"{path}: checkpoint has {key}={ckpt[key]}, env has {getattr(self.env, key)}"
                )
        self.net.load_state_dict(ckpt["model"])
        self._load_optimizer_state(ckpt)
        self.iteration = int(ckpt["iteration"])
        self.global_step = int(ckpt["global_step"])
        self.best = ckpt.get("best")
        self.generator.set_state(ckpt["rng"]["generator"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        interval = ckpt.get("interval")
        self._interval = (
            _Interval(**interval) if isinstance(interval, dict) else _Interval(self.iteration + 1)
        )
        if load_env:
            self.load_demos()
            assert self.storage is not None
            if ckpt.get("demos_digest") not in (None, self.storage.digest):
                raise ValueError(self._data_mismatch(path))

    def inference_policy(self, best: bool = False) -> nn.Module:
        """Raw observations -> deterministic actions in [-1, 1] (CPU copy, eval mode).

        Args:
            best: the network of the best periodic evaluation (:attr:`best`) instead of the
                current one (the current one when there was no evaluation).
        """
        normalizer, actor = self._policy_parts(
            self.best["model"] if best and self.best is not None else None
        )
        module = InferencePolicy(normalizer, actor, self.env.obs_dim, self.env.action_dim)
        module = module.cpu().eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module
