"""The ``ppo`` agent: this package's batched PPO (:class:`~rewardlab.agents.runner.OnPolicyRunner`)
behind the :class:`~rewardlab.agents.registry.Agent` interface.

It resumes exactly from its checkpoints and trains one run in several processes under
``torchrun`` (:mod:`rewardlab.agents.distributed`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import torch

from rewardlab.agents.distributed import DistContext, detach
from rewardlab.agents.policy import PPOPolicy
from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.envs.base import BatchedEnv


class PPOAgent:
    """Batched PPO (``agent=ppo``); hyper-parameters: ``TrainConfig.ppo`` (a ``PPOConfig``)."""

    config_key = "ppo"
    resumable = True
    distributed = True
    checkpoint_suffix = ".pt"

    def runner(self, env: BatchedEnv, spec: TrainSpec) -> OnPolicyRunner:
        """The runner ``spec`` describes, on ``env`` (nothing loaded or trained yet)."""
        return OnPolicyRunner(
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
        """Train (or continue) PPO on ``env``; see :meth:`rewardlab.agents.registry.Agent.train`.

        Under ``dist`` every rank loads the checkpoint (only rank 0 restores its worlds) and the
        runner is attached to the process group for training, detached afterwards (plain
        normalizers, for export).
        """
        runner = self.runner(env, spec)
        main = dist is None or dist.is_main
        if resume is not None:
            runner.load(io.BytesIO(resume) if isinstance(resume, bytes) else resume, load_env=main)
            if isinstance(resume, Path):
                log(
                    f"[rewardlab] resuming from {resume} at step {runner.global_step:,} "
                    f"(iteration {runner.iteration})"
                )
            if runner.global_step >= spec.total_steps:
                log(
                    f"[rewardlab] already trained {runner.global_step:,} >= "
                    f"total_steps={spec.total_steps:,} steps; raise total_steps to train more"
                )
        if dist is not None:
            dist.attach(runner)
        history = runner.learn(spec.total_steps, progress=spec.progress and main)
        if dist is not None:
            detach(runner)
        state = None
        if spec.keep_state:
            buf = io.BytesIO()
            torch.save(runner.state_dict(), buf)
            state = buf.getvalue()
        return TrainOutcome(
            PPOPolicy(runner, seed=spec.sample_seed), runner.global_step, history, state
        )

    def load(self, path: Path | bytes, env: BatchedEnv, spec: TrainSpec) -> PPOPolicy:
        """The policy of a PPO checkpoint (``model_<it>.pt``, ``latest.pt``, or a learner state
        as bytes) for ``env``."""
        runner = self.runner(env, dataclasses.replace(spec, log_dir=None))
        runner.load(io.BytesIO(path) if isinstance(path, bytes) else path, load_env=False)
        return PPOPolicy(runner, seed=spec.sample_seed)
