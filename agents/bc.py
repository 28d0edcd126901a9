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

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rewardlab.agents import checkpoints
from rewardlab.agents.config import BCConfig
from rewardlab.agents.distributed import DistContext
from rewardlab.agents.networks import EmpiricalNormalization, mlp
from rewardlab.agents.offline_runner import OfflineRunner, fix_normalization, load_task_episodes
from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.envs.base import BatchedEnv


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
        """Fix the normalizer to the mean and std (floored at
        :data:`~rewardlab.agents.offline_runner.STD_FLOOR`) of ``obs``."""
        fix_normalization(self.normalizer, obs)

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
    eps = load_task_episodes("bc.demos", "bc", files, env)
    if cfg.only_success and eps.meta.get("labels") != "none":
        eps = eps.select(eps.episode_success)
    if eps.num_episodes == 0:
        raise ValueError(
            f"bc.demos: no successful episode in {', '.join(files)} (bc.only_success=false "
            "trains on all)"
        )
    obs, act = eps.transitions()
    digest = checkpoints.data_digest(obs, act)
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


class BCRunner(OfflineRunner):
    """Trains a :class:`BCPolicyNet` on demos; metrics, evaluation and checkpoints in ``log_dir``
    (the loop, periodic evaluation, best network and exact resume are
    :class:`~rewardlab.agents.offline_runner.OfflineRunner`'s; the best checkpoint is chosen by
    the periodic evaluations). Arguments as ``OfflineRunner``'s, ``cfg`` a :class:`BCConfig`."""

    log_prefix = "bc"
    loss_keys = ("losses/bc",)
    data_hint = "the demos"
    progress_keys = (("loss", "losses/bc"),)
    cfg: BCConfig
    net: BCPolicyNet
    alg: BehaviourCloning

    def _build(self, cfg: BCConfig) -> None:
        self.cfg = cfg
        self.net = BCPolicyNet(
            self.env.obs_dim, self.env.action_dim, cfg, obs_mask(self.env, tuple(cfg.ignore_obs))
        ).to(self.device)
        self.alg = BehaviourCloning(self.net, cfg, self.device)

    def _make_storage(self) -> DemoStorage:
        return demo_storage(self.cfg, self.env, self.device)

    def _update(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        return {"losses/bc": self.alg.update(*batch)}

    def _optimizer_state(self) -> dict[str, Any]:
        return {"optimizer": self.alg.optimizer.state_dict()}

    def _load_optimizer_state(self, ckpt: dict[str, Any]) -> None:
        self.alg.optimizer.load_state_dict(ckpt["optimizer"])

    def _data_mismatch(self, path: str | Path) -> str:
        return (
            f"{path}: trained on other demos than bc.demos={self.cfg.demos!r} "
            "(resume=false starts over)"
        )


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
