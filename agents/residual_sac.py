"""Residual off-policy RL (``agent=residual_sac``): SAC learns a bounded correction of a fixed
base policy (e.g. behaviour cloning's export), as in residual RL / RLPD-style fine-tuning.

``action = clip(base(o) + residual_scale * r, -1, 1)`` with ``r ~ pi(. | o, base(o))`` the SAC
policy's action. It is the plain batched SAC (:mod:`rewardlab.agents.sac`) trained on
:class:`ResidualEnv`, a view of the env whose observation is ``[o, base(o)]`` and whose action
is the residual ``r`` (optionally with the task's success flag as a sparse reward), so the
replay buffer, exact resume and checkpoints are SAC's. The mean head of the residual actor
starts at zero, so the first deterministic policy is the base policy. The exported module
(:class:`ResidualInference`) holds the base policy and the residual: raw observation in, final
action out, like every other policy.

Demonstrations (``residual_sac.demos``, with ``sparse_reward``): their transitions, seen through
the same view (:meth:`ResidualEnv.view_transitions`) and labelled with their recorded success,
fill a fixed buffer from which ``demo_ratio`` of every batch is drawn, as RLPD mixes offline data
50/50 into online batches (Ball et al. 2023; without its critic ensemble and layer norm).

What it cannot do: a base policy other than an exported TorchScript ``policy.pt``.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardlab.agents import checkpoints
from rewardlab.agents.config import ResidualSACConfig
from rewardlab.agents.distributed import DistContext
from rewardlab.agents.off_policy_runner import OffPolicyRunner
from rewardlab.agents.offline_runner import load_task_episodes
from rewardlab.agents.policy import ExportedPolicy
from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.agents.replay_buffer import ReplayBuffer
from rewardlab.agents.sac import SACInference
from rewardlab.agents.sac_agent import SACPolicy
from rewardlab.envs.base import BatchedEnv, EnvWrapper


def load_base_policy(path: str | Path) -> nn.Module:
    """The TorchScript module of an export folder (its ``policy.pt``) or of a ``policy.pt``.

    Raises:
        FileNotFoundError: neither exists (one line naming the path).
    """
    p = Path(path)
    file = p / "policy.pt" if p.is_dir() else p
    if not str(path).strip() or not file.is_file():
        raise FileNotFoundError(
            f"residual_sac.base_policy: {str(path)!r} is neither an export folder with policy.pt "
            "nor a policy.pt file"
        )
    return ExportedPolicy(file).inference


class ResidualEnv(EnvWrapper):
    """``env`` seen by the residual learner: observation ``[o, base(o)]``, action the residual.

    Every other part of the env API (state, success, render, snapshots, a real-time env's
    ``hold`` and ``set_between_episodes``) is the wrapped env's (:class:`EnvWrapper`).
    """

    def __init__(
        self, env: BatchedEnv, base: nn.Module, scale: float, sparse_reward: bool = False
    ) -> None:
        super().__init__(env)
        self.base, self.scale, self.sparse_reward = base, float(scale), sparse_reward
        self.obs_dim = env.obs_dim + env.action_dim
        self._base_action: torch.Tensor | None = None
        self.real_time = bool(getattr(env, "real_time", False))
        """The wrapped env runs on a robot's clock (see :mod:`rewardlab.envs.ros2_backend`)."""

    @torch.no_grad()
    def _with_base(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.base(obs.float().cpu()).to(obs.device).clamp(-1.0, 1.0)
        return torch.cat([obs, base], dim=-1), base

    @torch.no_grad()
    def view_transitions(
        self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Recorded transitions of the wrapped env as the residual learner sees them.

        Args:
            obs: ``[S, obs_dim]`` observations the actions were taken on.
            actions: ``[S, action_dim]`` the actions, in ``[-1, 1]``.
            next_obs: ``[S, obs_dim]`` observations they led to.

        Returns:
            ``([o, base(o)], r, [o', base(o')], clipped)``: ``r = (a - base(o)) / scale``
            clipped to ``[-1, 1]``, the residual that reproduces ``a`` where it can, and
            ``clipped`` ``[S]`` bool, where it cannot (``|a - base(o)| > scale`` in some joint).
        """
        view, base = self._with_base(obs.to(self.device))
        next_view, _ = self._with_base(next_obs.to(self.device))
        raw = (actions.to(self.device) - base) / self.scale
        r = raw.clamp(-1.0, 1.0)
        return view, r, next_view, (raw != r).any(dim=-1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs, self._base_action = self._with_base(self.env.reset(seed=seed))
        return obs

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._base_action is None:
            raise RuntimeError("call reset() before step()")
        full = (self._base_action + self.scale * actions.to(self.device)).clamp(-1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(full)
        if self.sparse_reward:
            success = info["success"] if "success" in info else self.env.success()
            reward = success.to(reward.dtype)
        obs, self._base_action = self._with_base(obs)
        if "final_obs" in info:
            info = dict(info, final_obs=self._with_base(info["final_obs"])[0])
        return obs, reward, terminated, truncated, info

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)
        self._base_action = None  # set by restore_obs() from the checkpoint's observation

    def restore_obs(self, obs: torch.Tensor) -> None:
        """Set the base action of a restored observation ``[o, base(o)]`` (after a resume)."""
        self._base_action = obs[:, self.env.obs_dim :].to(self.device)


def demo_replay(
    cfg: ResidualSACConfig, view: ResidualEnv, device: torch.device
) -> tuple[ReplayBuffer, str, float]:
    """The transitions of ``cfg.demos`` (episodes of ``view.env``'s task) as the residual
    learner stores them.

    Each transition earns the recorded success of the state it led to (times the SAC
    ``reward_scale``, as online rewards are stored), seen through ``view``.

    Returns:
        The buffer (on ``device``), the sha256 of its contents and the share of demo actions the
        residual cannot reproduce (clipped).

    Raises:
        ValueError: a bad file, another task or widths, episodes without success labels (bags)
            or without a transition (one line).
    """
    files = cfg.demo_files()
    eps = load_task_episodes("residual_sac.demos", "residual_sac", files, view.env)
    if eps.meta.get("labels") == "none":
        raise ValueError(
            f"residual_sac.demos: {files[0]} has no success labels (recorded from a bag); "
            "label the episodes first"
        )
    tr = eps.step_transitions(eps.success.astype(np.float32))
    if len(tr) == 0:
        raise ValueError(f"residual_sac.demos: no transition in {', '.join(files)}")
    obs, nxt = torch.from_numpy(tr.obs), torch.from_numpy(tr.next_obs)
    view_obs, residual, view_next, clipped = view.view_transitions(
        obs, torch.from_numpy(tr.actions), nxt
    )
    rewards = torch.from_numpy(tr.rewards) * cfg.sac.reward_scale
    ends = torch.from_numpy(tr.episode_end.copy())
    buf = ReplayBuffer.of_transitions(view_obs, residual, rewards, view_next, ends, device)
    digest = checkpoints.data_digest(view_obs, residual, rewards, view_next, ends)
    return buf, digest, float(clipped.float().mean())


class ResidualInference(nn.Module):
    """Raw observation ``[B, obs_dim]`` -> ``clip(base(o) + scale * tanh(mean(o, base(o))))``."""

    def __init__(self, base: nn.Module, residual: SACInference, scale: float) -> None:
        super().__init__()
        self.base = base
        self.residual = residual
        self.scale = float(scale)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        base = self.base(obs).clamp(-1.0, 1.0)
        r = self.residual(torch.cat([obs, base], dim=-1))
        return (base + self.scale * r).clamp(-1.0, 1.0)


class ResidualSACPolicy:
    """The residual SAC policy on raw observations (see :class:`ResidualInference`)."""

    stochastic = True

    def __init__(self, runner: OffPolicyRunner, base: nn.Module, scale: float, seed: int = 0):
        for p in base.parameters():
            p.requires_grad_(False)
        self.residual = SACPolicy(runner, seed=seed)
        # scripted here: the base is a loaded TorchScript module, which ONNX's tracer cannot
        # call from inside a plain module (a scripted whole exports to TorchScript and ONNX)
        module = ResidualInference(base, self.residual.inference, scale).eval()
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.inference: nn.Module = torch.jit.script(module)
        self.base, self.scale = base, float(scale)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        base = self.base(obs).clamp(-1.0, 1.0)
        r = self.residual.sample(torch.cat([obs, base], dim=-1))
        return (base + self.scale * r).clamp(-1.0, 1.0)


class ResidualSACAgent:
    """Residual SAC on a base policy (``agent=residual_sac``); settings:
    ``TrainConfig.residual_sac`` (a ``ResidualSACConfig``)."""

    config_key = "residual_sac"
    resumable = True
    distributed = False
    checkpoint_suffix = ".pt"

    def runner(self, env: BatchedEnv, spec: TrainSpec) -> tuple[OffPolicyRunner, nn.Module]:
        """The SAC runner on the residual view of ``env``, and the base policy."""
        cfg: ResidualSACConfig = spec.hyperparams
        base = load_base_policy(cfg.base_policy)
        view = ResidualEnv(env, base, cfg.residual_scale, cfg.sparse_reward)
        runner = OffPolicyRunner(
            view,
            cfg.sac,
            log_dir=spec.log_dir,
            device=spec.device,
            seed=spec.seed,
            checkpoint_every=spec.checkpoint_every,
            keep_checkpoints=spec.keep_checkpoints,
        )
        head = runner.alg.actor.net[-1]
        assert isinstance(head, nn.Linear)
        with torch.no_grad():  # the residual's mean starts at 0: the base policy as it is
            head.weight[: env.action_dim].zero_()
            head.bias[: env.action_dim].zero_()
        return runner, base

    @staticmethod
    def add_demos(
        runner: OffPolicyRunner, cfg: ResidualSACConfig, log: Callable[[str], None]
    ) -> None:
        """Mix the transitions of ``cfg.demos`` (if any) into the runner's batches; one line on
        ``log`` says how many and the share of demo actions the residual cannot reproduce."""
        view = runner.env
        if not cfg.demo_files() or not isinstance(view, ResidualEnv):
            return
        demos, digest, clipped = demo_replay(cfg, view, runner.device)
        runner.alg.set_demos(demos, cfg.demo_ratio, digest)
        log(
            f"[rewardlab] residual_sac.demos: {demos.size:,} transitions, "
            f"{cfg.demo_ratio:.0%} of every batch; {clipped:.0%} of their actions lie beyond "
            f"the residual's reach (residual_scale {cfg.residual_scale:g}) and are clipped"
        )

    def train(
        self,
        env: BatchedEnv,
        spec: TrainSpec,
        resume: Path | bytes | None = None,
        dist: DistContext | None = None,
        log: Callable[[str], None] = print,
    ) -> TrainOutcome:
        """Train (or continue) the residual; see :meth:`rewardlab.agents.registry.Agent.train`."""
        if dist is not None:
            raise ValueError("agent residual_sac cannot train in several processes (torchrun)")
        runner, base = self.runner(env, spec)
        self.add_demos(runner, spec.hyperparams, log)
        if resume is not None:
            runner.load(io.BytesIO(resume) if isinstance(resume, bytes) else resume)
            view = runner.env
            if isinstance(view, ResidualEnv) and runner._obs is not None:
                view.restore_obs(runner._obs)
            if isinstance(resume, Path):
                log(f"[rewardlab] resuming from {resume} at step {runner.global_step:,}")
        history = runner.learn(spec.total_steps, progress=spec.progress)
        state = None
        if spec.keep_state:
            buf = io.BytesIO()
            torch.save(runner.state_dict(replay=False), buf)
            state = buf.getvalue()
        cfg: ResidualSACConfig = spec.hyperparams
        policy = ResidualSACPolicy(runner, base, cfg.residual_scale, seed=spec.sample_seed)
        return TrainOutcome(policy, runner.global_step, history, state)

    def load(self, path: Path | bytes, env: BatchedEnv, spec: TrainSpec) -> ResidualSACPolicy:
        """The policy of a residual SAC checkpoint for ``env`` (the base policy is loaded from
        ``residual_sac.base_policy``)."""
        runner, base = self.runner(env, dataclasses.replace(spec, log_dir=None))
        runner.load(io.BytesIO(path) if isinstance(path, bytes) else path, load_env=False)
        cfg: ResidualSACConfig = spec.hyperparams
        return ResidualSACPolicy(runner, base, cfg.residual_scale, seed=spec.sample_seed)
