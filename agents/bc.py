"""The ``bc`` agent: behaviour cloning from recorded demonstrations (:mod:`rewardlab.envs.demos`).

Split like the PPO agent: the network (:class:`BCPolicyNet`: observation normalizer from the
demos + MLP, the same :class:`~rewardlab.agents.networks.InferencePolicy` PPO exports), the
algorithm (:class:`BehaviourCloning`: mean-squared error of the action, Adam), the storage (the demos' ``(obs, action)`` transitions as tensors) and the runner
(:class:`BCRunner`: iterations, metrics, periodic evaluation, checkpoints, exact resume).

``total_steps`` counts **gradient steps** for this agent: one learner iteration is
``bc.steps_per_iteration`` minibatch updates, ``global_step`` in metrics and checkpoints is the
number of updates done. The training env runs only for the evaluation every ``bc.eval_every``
iterations (the task's own success, deterministic actions, ``charts/success_rate``), which also
picks the best checkpoint (``checkpoints/index.json``) and, with ``bc.keep_best``, the policy
that is returned and exported (the network of the best evaluation: BC from few demos overfits,
its success falls while the loss still does).

Checkpoints hold tensors and plain data (``weights_only`` loading): network, optimizer, the
minibatch generator and torch's RNG, iteration and step, and the demos' hash, so a resumed run
continues bit-identically (on the same machine) and refuses other demos.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from rewardlab.agents import checkpoints
from rewardlab.agents.config import BCConfig
from rewardlab.agents.distributed import DistContext
from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.networks import EmpiricalNormalization, InferencePolicy, mlp
from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.agents.runner import BaseRunner, _Interval
from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.demos import Episodes, load_episodes

CHECKPOINT_VERSION = 1
STD_FLOOR = 0.1
"""Lower bound of the observation std (nearly constant features are not amplified)."""


class ObsMask(nn.Module):
    """Multiplies observations by a fixed 0/1 mask (the columns BC must not read)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def obs_mask(env: BatchedEnv, ignore: tuple[str, ...]) -> torch.Tensor:
    """``[obs_dim]``: 0 on the columns of the observation layout entries named in ``ignore``
    (names the task's layout lacks are skipped), 1 elsewhere."""
    mask = torch.ones(env.obs_dim)
    layout = getattr(getattr(env, "task", None), "obs_layout", None)
    if not ignore or not callable(layout):
        return mask
    start = 0
    for name, width in layout():
        if name in ignore:
            mask[start : start + int(width)] = 0.0
        start += int(width)
    return mask


class BCPolicyNet(nn.Module):
    """Observation normalizer (fixed, from the demos), the mask of ``bc.ignore_obs`` and an MLP.

    Args:
        obs_dim: observation width.
        action_dim: action width.
        cfg: hidden sizes and activation.
        mask: ``[obs_dim]`` 0/1 (see :func:`obs_mask`); all ones by default.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, cfg: BCConfig, mask: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.normalizer = EmpiricalNormalization(obs_dim, eps=0.0)
        mask = torch.ones(obs_dim) if mask is None else mask
        # the mask is the actor's first layer, so the export (normalizer, actor) carries it
        self.actor = nn.Sequential(
            ObsMask(mask),
            mlp(obs_dim, tuple(int(h) for h in cfg.hidden), action_dim, cfg.activation),
        )

    def set_normalization(self, obs: torch.Tensor) -> None:
        """Fix the normalizer to the mean and std (floored at :data:`STD_FLOOR`) of ``obs``."""
        mean = obs.double().mean(0)
        var = obs.double().var(0, unbiased=False)
        n = self.normalizer
        n.mean.copy_(mean)
        n.var.copy_(var)
        n.std.copy_(var.sqrt().clamp_min(STD_FLOOR))
        n.count.fill_(obs.shape[0])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.normalizer(obs))


@dataclasses.dataclass
class DemoStorage:
    """The demos' valid steps as tensors on the learner device."""

    obs: torch.Tensor
    """``[S, obs_dim]``."""
    actions: torch.Tensor
    """``[S, action_dim]``."""
    episodes: int
    """Episodes they came from."""
    digest: str
    """sha256 of the transitions (a resume checks it)."""

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A minibatch drawn uniformly with replacement."""
        idx = torch.randint(
            self.obs.shape[0], (batch,), generator=generator, device=generator.device
        )
        return self.obs[idx], self.actions[idx]


def demo_storage(cfg: BCConfig, env: BatchedEnv, device: torch.device) -> DemoStorage:
    """Load ``cfg.demos`` for ``env``'s task.

    Raises:
        ValueError: no demos named, a bad file, another task, other widths, or no episode left
            (one line naming what is wrong).
    """
    files = cfg.demo_files()
    if not files:
        raise ValueError(
            "bc.demos: required with agent=bc (an episode file: rewardlab demos record)"
        )
    eps: Episodes = load_episodes(files)
    task = getattr(getattr(env, "task", None), "name", None)
    if task is not None and eps.task != task:
        raise ValueError(f"bc.demos: {files[0]} holds episodes of {eps.task!r}, training {task!r}")
    obs_dim, act_dim = eps.observations.shape[2], eps.actions.shape[2]
    if (obs_dim, act_dim) != (env.obs_dim, env.action_dim):
        raise ValueError(
            f"bc.demos: episodes have obs/action widths {obs_dim}/{act_dim}, the env "
            f"{env.obs_dim}/{env.action_dim} (recorded with another task config?)"
        )
    if cfg.only_success and eps.meta.get("labels") != "none":
        eps = eps.select(eps.episode_success)
    if eps.num_episodes == 0:
        raise ValueError(
            f"bc.demos: no successful episode in {', '.join(files)} (bc.only_success=false "
            "trains on all)"
        )
    obs, act = eps.transitions()
    digest = hashlib.sha256(obs.tobytes() + act.tobytes()).hexdigest()
    return DemoStorage(
        torch.from_numpy(obs).to(device),
        torch.from_numpy(act).clamp(-1.0, 1.0).to(device),
        eps.num_episodes,
        digest,
    )


class BehaviourCloning:
    """The update: mean-squared action error, Adam(W) at a fixed learning rate (a schedule
    tied to ``total_steps`` would change when a finished run is continued with more steps)."""

    def __init__(self, net: BCPolicyNet, cfg: BCConfig, device: torch.device) -> None:
        self.net, self.cfg = net, cfg
        self.optimizer = torch.optim.AdamW(
            net.actor.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )

    def update(self, obs: torch.Tensor, actions: torch.Tensor) -> float:
        """One gradient step; returns the loss."""
        loss = (self.net(obs) - actions).square().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class BCRunner(BaseRunner):
    """Trains a :class:`BCPolicyNet` on demos; metrics, evaluation and checkpoints in ``log_dir``
    (logs, cut-back on resume, atomic indexed checkpoints and resume are
    :class:`~rewardlab.agents.runner.BaseRunner`'s, as for PPO and SAC; the best checkpoint is
    chosen by the periodic evaluations).

    Args:
        env: the training env (its task's demos; it runs only for evaluation).
        cfg: BC settings.
        log_dir: where ``metrics.jsonl``, TensorBoard events and ``checkpoints/`` go (``None``:
            nothing is written).
        device: torch device of the network.
        seed: seeds network init and minibatch order.
        checkpoint_every: iterations between checkpoints (and at the end).
        keep_checkpoints: numbered checkpoints kept besides the best (0: all).
    """

    log_prefix = "bc"

    def __init__(
        self,
        env: BatchedEnv,
        cfg: BCConfig,
        log_dir: Path | None = None,
        device: str = "cpu",
        seed: int = 0,
        checkpoint_every: int = 50,
        keep_checkpoints: int = 5,
    ) -> None:
        cfg.validate()
        self.env, self.cfg = env, cfg
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
            self.net = BCPolicyNet(
                env.obs_dim, env.action_dim, cfg, obs_mask(env, tuple(cfg.ignore_obs))
            ).to(self.device)
        self.alg = BehaviourCloning(self.net, cfg, self.device)
        self.storage: DemoStorage | None = None
        self.iteration = 0
        self.global_step = 0
        self._recent: deque[dict[str, float]] = deque(maxlen=1)
        self._interval = _Interval(first_iteration=1)
        self.best: dict[str, Any] | None = None
        """``{"success", "iteration", "model"}`` of the best periodic evaluation so far."""

    def load_demos(self) -> None:
        """Load the demos and fix the observation normalizer from them (once)."""
        if self.storage is not None:
            return
        self.storage = demo_storage(self.cfg, self.env, self.device)
        if self.cfg.normalize_obs and self.iteration == 0:
            self.net.set_normalization(self.storage.obs)

    # -- training --------------------------------------------------------------------------------

    def learn(self, total_steps: int, progress: bool = True) -> list[dict[str, float]]:
        """Train until ``total_steps`` gradient steps in total (those before a resume count)."""
        self.load_demos()
        assert self.storage is not None
        history: list[dict[str, float]] = []
        if self.global_step >= total_steps:
            return history
        writer, metrics = self._open_logs(progress)
        per_it = self.cfg.steps_per_iteration
        start = time.perf_counter()
        try:
            while self.global_step < total_steps:
                t0 = time.perf_counter()
                n = min(per_it, total_steps - self.global_step)
                self.net.train()
                losses = []
                for _ in range(n):
                    obs, act = self.storage.sample(self.cfg.batch_size, self.generator)
                    losses.append(self.alg.update(obs, act))
                    self.global_step += 1
                self.iteration += 1
                last = self.global_step >= total_steps
                row: dict[str, float] = {
                    "iteration": float(self.iteration),
                    "global_step": float(self.global_step),
                    "losses/bc": float(np.mean(losses)),
                    "charts/demo_transitions": float(self.storage.obs.shape[0]),
                    "charts/demo_episodes": float(self.storage.episodes),
                }
                t1 = time.perf_counter()
                if last or (self.cfg.eval_every and self.iteration % self.cfg.eval_every == 0):
                    row.update(self.evaluate())
                    self._track_best(row)
                t2 = time.perf_counter()
                row["perf/learn_s"] = t1 - t0
                row["perf/eval_s"] = t2 - t1
                row["perf/grad_steps_per_s"] = n / max(t1 - t0, 1e-9)
                row["perf/elapsed_s"] = t2 - start
                if not math.isfinite(row["losses/bc"]):
                    raise FloatingPointError(
                        f"non-finite BC loss at iteration {self.iteration}; check the demos for "
                        "NaN/Inf. The last checkpoint is untouched."
                    )
                history.append(row)
                self._write_metrics(row, writer, metrics)
                if self.log_dir is not None and (
                    last or self.iteration % self.checkpoint_every == 0
                ):
                    self._save_checkpoints(writer, metrics)
                if progress and ("charts/success_rate" in row or last):
                    sr = row.get("charts/success_rate", float("nan"))
                    print(
                        f"[bc] it {self.iteration} | step {self.global_step:,}/{total_steps:,} "
                        f"| loss {row['losses/bc']:.4f} | eval success {sr:.2f}",
                        flush=True,
                    )
        except KeyboardInterrupt:
            if self.log_dir is not None:
                path = self.save(self._checkpoint_dir() / checkpoints.LATEST_NAME)
                print(f"[bc] interrupted; saved {path}", flush=True)
            raise
        finally:
            if writer is not None:
                writer.close()
            if metrics is not None:
                metrics.close()
        return history

    def _track_best(self, row: dict[str, float]) -> None:
        """Remember the network of the best evaluation (ties: the later one)."""
        score = row["charts/success_rate"]
        if self.best is None or score >= self.best["success"]:
            self.best = {
                "success": score,
                "iteration": self.iteration,
                "model": copy.deepcopy(self.net.state_dict()),
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
            "agent": "bc",
            "model": self.net.state_dict(),
            "optimizer": self.alg.optimizer.state_dict(),
            "iteration": self.iteration,
            "global_step": self.global_step,
            "obs_dim": self.env.obs_dim,
            "action_dim": self.env.action_dim,
            "cfg": checkpoints.to_plain(dataclasses.asdict(self.cfg), "cfg"),
            "seed": self.seed,
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
            "demos_digest": self.storage.digest if self.storage is not None else None,
            "best": self.best,
            "interval": dataclasses.asdict(self._interval),
        }

    def _restore(self, ckpt: dict[str, Any], path: str | Path, load_env: bool) -> None:
        """Restore a loaded checkpoint (:meth:`BaseRunner.load` reads it as data).

        ``load_env`` means this run continues training: then the demos must be the ones the
        checkpoint was trained on. ``False`` restores the policy only (evaluation, export).

        Raises:
            CheckpointError: not a BC checkpoint.
            ValueError: other widths, or other demos than it was trained on.
        """
        name = path
        if ckpt.get("agent") != "bc":
            raise checkpoints.CheckpointError(name, "not a bc checkpoint")
        for key in ("obs_dim", "action_dim"):
            if ckpt[key] != getattr(self.env, key):
                raise ValueError(
                    f"{name}: checkpoint has {key}={ckpt[key]}, env has {getattr(self.env, key)}"
                )
        self.net.load_state_dict(ckpt["model"])
        self.alg.optimizer.load_state_dict(ckpt["optimizer"])
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
                raise ValueError(
                    f"{name}: trained on other demos than bc.demos={self.cfg.demos!r} "
                    "(resume=false starts over)"
                )

    def inference_policy(self, best: bool = False) -> nn.Module:
        """Raw observations -> deterministic actions in [-1, 1] (CPU copy, eval mode).

        Args:
            best: the network of the best periodic evaluation (:attr:`best`) instead of the
                current one (the current one when there was no evaluation).
        """
        net = self.net
        if best and self.best is not None:
            net = copy.deepcopy(self.net)
            net.load_state_dict(self.best["model"])
        module = InferencePolicy(
            copy.deepcopy(net.normalizer), copy.deepcopy(net.actor), net.obs_dim, net.action_dim
        )
        module = module.cpu().eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module


class BCPolicy:
    """A policy learnt from recorded episodes (BC, and IQL's actor): deterministic only (a
    regression has no action distribution).

    Args:
        runner: the trained runner (``inference_policy(best=...)`` and ``cfg.keep_best``).
        name: what :meth:`sample`'s error calls the policy.
    """

    stochastic = False

    def __init__(self, runner: Any, name: str = "a behaviour-cloning policy") -> None:
        self.inference = runner.inference_policy(best=runner.cfg.keep_best)
        self.name = name

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"deterministic=false: {self.name} is deterministic")


class BCAgent:
    """Behaviour cloning (``agent=bc``); settings: ``TrainConfig.bc`` (a ``BCConfig``).

    An agent that learns from recorded episodes in ``total_steps`` gradient steps (IQL) is this
    class with another :attr:`runner_class` and :attr:`policy_name`.
    """

    config_key = "bc"
    resumable = True
    distributed = False
    checkpoint_suffix = ".pt"
    runner_class: ClassVar[Callable[..., Any]] = BCRunner
    """Builds the runner: ``(env, cfg, log_dir, device, seed, checkpoint_every,
    keep_checkpoints)`` as :class:`BCRunner`."""
    policy_name: ClassVar[str] = "a behaviour-cloning policy"
    """What the trained policy's ``sample`` error calls it."""

    def runner(self, env: BatchedEnv, spec: TrainSpec) -> Any:
        """The runner ``spec`` describes (nothing loaded or trained yet)."""
        return self.runner_class(
            env,
            spec.hyperparams,
            log_dir=spec.log_dir,
            device=spec.device,
            seed=spec.seed,
            checkpoint_every=spec.checkpoint_every,
            keep_checkpoints=spec.keep_checkpoints,
        )

    def train(
        self,
        env: BatchedEnv,
        spec: TrainSpec,
        resume: Path | bytes | None = None,
        dist: DistContext | None = None,
        log: Callable[[str], None] = print,
    ) -> TrainOutcome:
        """Learn from the demos (``total_steps`` gradient steps); see
        :meth:`rewardlab.agents.registry.Agent.train`."""
        runner = self.runner(env, spec)
        if resume is not None:
            runner.load(io.BytesIO(resume) if isinstance(resume, bytes) else resume)
            if isinstance(resume, Path):
                log(f"[rewardlab] resuming from {resume} at gradient step {runner.global_step:,}")
            if runner.global_step >= spec.total_steps:
                log(
                    f"[rewardlab] already trained {runner.global_step:,} >= "
                    f"total_steps={spec.total_steps:,} gradient steps; raise total_steps to train more"
                )
        history = runner.learn(spec.total_steps, progress=spec.progress)
        state = checkpoints.to_bytes(runner.state_dict()) if spec.keep_state else None
        return TrainOutcome(BCPolicy(runner, self.policy_name), runner.global_step, history, state)

    def load(self, path: Path | bytes, env: BatchedEnv, spec: TrainSpec) -> BCPolicy:
        """The policy of a checkpoint of this agent (or learner state bytes) for ``env``."""
        runner = self.runner(env, dataclasses.replace(spec, log_dir=None))
        runner.load(io.BytesIO(path) if isinstance(path, bytes) else path, load_env=False)
        return BCPolicy(runner, self.policy_name)
