"""The ``sac`` agent: batched SAC (:class:`~rewardlab.agents.off_policy_runner.OffPolicyRunner`)
behind the :class:`~rewardlab.agents.registry.Agent` interface, and its :class:`SACPolicy`.

It resumes exactly from ``latest.pt`` (replay buffer included); it does not train in several
processes.
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import torch

from rewardlab.agents.distributed import DistContext
from rewardlab.agents.off_policy_runner import OffPolicyRunner
from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.envs.base import BatchedEnv


class SACPolicy:
    """The policy of an :class:`OffPolicyRunner`, frozen at construction.

    ``policy(obs)`` is ``tanh(mean)``; :meth:`sample` draws ``tanh(N(mean, std))`` from its own
    generator seeded with ``seed``.
    """

    stochastic = True

    def __init__(self, runner: OffPolicyRunner, seed: int = 0) -> None:
        self.inference = runner.inference_policy()
        self.actor = copy.deepcopy(runner.alg.actor).cpu().eval()
        self.normalizer = copy.deepcopy(runner.alg.normalizer).cpu().eval()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        action, _ = self.actor.sample(self.normalizer(obs), self.generator)
        return action.clamp(-1.0, 1.0)


class SACAgent:
    """Batched soft actor-critic (``agent=sac``); hyper-parameters: ``TrainConfig.sac``."""

    config_key = "sac"
    resumable = True
    distributed = False
    checkpoint_suffix = ".pt"

    def runner(self, env: BatchedEnv, spec: TrainSpec) -> OffPolicyRunner:
        """The runner ``spec`` describes, on ``env`` (nothing loaded or trained yet)."""
        return OffPolicyRunner(
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
        """Train (or continue) SAC on ``env``; see :meth:`rewardlab.agents.registry.Agent.train`."""
        if dist is not None:
            raise ValueError("agent sac cannot train in several processes (torchrun)")
        runner = self.runner(env, spec)
        if resume is not None:
            runner.load(io.BytesIO(resume) if isinstance(resume, bytes) else resume)
            if isinstance(resume, Path):
                refill = "" if runner.alg.buffer.size else "; the replay buffer refills"
                log(
                    f"[rewardlab] resuming from {resume} at step {runner.global_step:,} "
                    f"(iteration {runner.iteration}){refill}"
                )
            if runner.global_step >= spec.total_steps:
                log(
                    f"[rewardlab] already trained {runner.global_step:,} >= "
                    f"total_steps={spec.total_steps:,} steps; raise total_steps to train more"
                )
        history = runner.learn(spec.total_steps, progress=spec.progress)
        state = None
        if spec.keep_state:
            buf = io.BytesIO()
            torch.save(runner.state_dict(replay=False), buf)
            state = buf.getvalue()
        return TrainOutcome(
            SACPolicy(runner, seed=spec.sample_seed), runner.global_step, history, state
        )

    def load(self, path: Path | bytes, env: BatchedEnv, spec: TrainSpec) -> SACPolicy:
        """The policy of a SAC checkpoint (``model_<it>.pt``, ``latest.pt`` or a learner state
        as bytes) for ``env``."""
        runner = self.runner(env, dataclasses.replace(spec, log_dir=None))
        runner.load(io.BytesIO(path) if isinstance(path, bytes) else path, load_env=False)
        return SACPolicy(runner, seed=spec.sample_seed)
