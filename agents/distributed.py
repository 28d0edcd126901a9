"""Multi-GPU (multi-process) PPO through ``torch.distributed``: one process per GPU, one run.

Launch with ``torchrun``; ``rewardlab train`` notices ``WORLD_SIZE`` and does the rest::

    torchrun --nproc_per_node=4 -m rewardlab.cli train task=ant_run backend=warp \\
        device=cuda num_envs=16384

Every process (rank) owns ``num_envs / world_size`` worlds on its own device (``cuda:<local
rank>``; ``cpu`` stays ``cpu``) and steps them with its own seed, so the ranks explore different
worlds. What is shared (rsl_rl's multi-GPU scheme):

- parameters start equal (broadcast from rank 0) and stay equal: after every minibatch's
  backward pass the gradients are averaged over ranks (one all-reduce of one flat buffer),
  before gradient clipping, so every rank takes the same optimizer step;
- the approximate KL that drives the adaptive learning rate is averaged, so the learning rate
  stays equal;
- the observation normalizer and the reward-scale statistics merge every rank's batch
  (:class:`SyncedNormalization`), so the policy normalizes identically everywhere;
- ``global_step`` counts the steps of all ranks, and the episode statistics in the logs
  (``charts/episode_return``, ``charts/success_rate``, ``reward/<term>``, ...) are over the
  episodes every rank finished in the iteration.

Only rank 0 writes logs, metrics, checkpoints, the export and the evaluation.

What it cannot do: multi-node rendezvous beyond what ``torchrun`` provides (untested here),
SB3 agents (``agent=ppo`` only), exact resume (on resume every rank loads rank 0's checkpoint;
rank 0 restores its worlds, the other ranks start new episodes), or uneven shares of worlds
without a slight bias (ranks with fewer worlds weigh as much in the average gradient).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rewardlab.agents.networks import EmpiricalNormalization

RANK_SEED_STRIDE = 100_003
"""Rank ``r`` seeds its worlds and its action noise with ``seed + r * RANK_SEED_STRIDE``."""


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as ``torchrun`` sets it; 1 when unset."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(
            f"WORLD_SIZE: got {os.environ['WORLD_SIZE']!r}, expected an integer (set by torchrun)"
        ) from None


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run.

    Attributes:
        rank: global rank, 0 .. world_size - 1; rank 0 is the one that writes.
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
        backend: ``nccl`` (CUDA) or ``gloo`` (CPU).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """This rank's device: ``cuda`` or ``cuda:i`` becomes ``cuda:<local_rank>``."""
        return f"cuda:{self.local_rank}" if torch.device(requested).type == "cuda" else requested

    def num_envs(self, total: int) -> int:
        """This rank's share of ``total`` worlds (the first ``total % world_size`` get one more).

        Raises:
            ValueError: fewer worlds than ranks.
        """
        if total < self.world_size:
            raise ValueError(
                f"num_envs: got {total}, expected at least one world per process "
                f"({self.world_size} processes)"
            )
        base, extra = divmod(total, self.world_size)
        return base + (1 if self.rank < extra else 0)

    def seed(self, seed: int) -> int:
        """This rank's seed for its worlds and its action noise."""
        return seed + self.rank * RANK_SEED_STRIDE

    def barrier(self) -> None:
        """Wait until every rank got here."""
        dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable), on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def close(self) -> None:
        """Leave the process group, after every rank got here (a rank tearing gloo down while
        another still talks to it can abort the process: "terminate called without an active
        exception", seen once in CI)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def attach(self, runner: Any) -> None:
        """Make an :class:`~rewardlab.agents.runner.OnPolicyRunner` train as one of the ranks.

        Call after the runner is built (and after it loaded a checkpoint, when resuming), on
        every rank, with the env already holding this rank's worlds. Broadcasts rank 0's
        parameters, optimizer-relevant state and normalizers; reseeds the rank's action noise
        and first reset; installs the gradient averaging and the synced normalizers.
        """
        policy, alg = runner.policy, runner.alg
        broadcast_module(policy)
        policy.obs_normalizer = _synced(policy.obs_normalizer)
        alg.reward_normalizer.stats = _synced(alg.reward_normalizer.stats)
        lr = torch.tensor([alg.learning_rate], dtype=torch.float64, device=_comm_device())
        dist.broadcast(lr, 0)
        alg.set_learning_rate(float(lr.item()))
        if not self.is_main:
            runner.generator.manual_seed(self.seed(runner.seed) + runner.iteration)
        runner.env_seed = self.seed(runner.seed)
        n = torch.tensor([runner.env.num_envs], dtype=torch.long, device=_comm_device())
        dist.all_reduce(n)
        runner.num_envs_total = int(n.item())
        runner._episode_metrics = _gathered_episode_metrics
        alg.dist = self


_EPISODE_NAMES = {
    "return": "charts/episode_return",
    "length": "charts/episode_length",
    "success": "charts/success_rate",
}


def _gathered_episode_metrics(episodes: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """The runner's episode metrics over the episodes of every rank (a collective call)."""
    local: dict[str, tuple[float, int]] = {}
    for ep in episodes:
        for k, v in ep.items():
            if k == "env_ids":
                continue
            s, c = local.get(k, (0.0, 0))
            local[k] = (s + float(v.double().sum()), c + v.numel())
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    merged: dict[str, tuple[float, int]] = {}
    for part in everyone:
        for k, (s, c) in part.items():
            s0, c0 = merged.get(k, (0.0, 0))
            merged[k] = (s0 + s, c0 + c)
    out: dict[str, float] = {}
    if merged.get("return", (0.0, 0))[1]:
        out["charts/episodes"] = float(merged["return"][1])
    for k, (s, c) in merged.items():
        if c:
            out[_EPISODE_NAMES.get(k, k)] = s / c
    return out


def detach(runner: Any) -> None:
    """Undo :meth:`DistContext.attach`: plain normalizers (for export), no gradient averaging."""
    policy, alg = runner.policy, runner.alg
    for owner, name in ((policy, "obs_normalizer"), (alg.reward_normalizer, "stats")):
        norm = getattr(owner, name)
        if isinstance(norm, SyncedNormalization):
            plain = EmpiricalNormalization(tuple(norm.mean.shape), eps=norm.eps, clip=norm.clip)
            plain.load_state_dict(norm.state_dict())
            plain.to(norm.mean.device).train(norm.training)
            setattr(owner, name, plain)
    alg.dist = None
    runner.__dict__.pop("_episode_metrics", None)


def init_from_env(timeout_s: float = 600.0) -> DistContext | None:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``,
    ...); ``None`` when ``WORLD_SIZE`` is 1 or unset.

    The backend is ``nccl`` when CUDA is available and ``gloo`` otherwise.
    """
    world = world_size_from_env()
    if world <= 1:
        return None
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            backend, timeout=datetime.timedelta(seconds=timeout_s), rank=rank, world_size=world
        )
    return DistContext(rank, world, local_rank, backend)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer with rank ``src``'s."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def average_gradients(module: nn.Module) -> None:
    """Replace each parameter's gradient by its mean over ranks (one flat all-reduce).

    Every rank must hold gradients for the same parameters (as PPO's loss gives them).
    """
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (a new tensor)."""
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


class SyncedNormalization(EmpiricalNormalization):
    """:class:`EmpiricalNormalization` whose :meth:`update` merges every rank's batch.

    Each rank passes its own batch; the batch mean and variance over all ranks are formed with
    two all-reduces (counts and sums, then squared deviations from the global mean), and every
    rank merges the same numbers, so the statistics stay identical across ranks.
    """

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        if not self.training:
            return
        x = x.reshape(-1, *self.mean.shape).to(torch.float64)
        dev = _comm_device()
        n_local = torch.tensor([float(x.shape[0])], dtype=torch.float64, device=dev)
        s = torch.cat([n_local, x.sum(0).reshape(-1).to(dev)])
        dist.all_reduce(s)
        n = s[0].item()
        if n == 0:
            return
        b_mean = (s[1:] / n).reshape(self.mean.shape).to(x.device)
        m2 = (x - b_mean).square().sum(0).reshape(-1).to(dev)
        dist.all_reduce(m2)
        b_var = (m2 / n).reshape(self.mean.shape).to(self.mean.device)
        b_mean = b_mean.to(self.mean.device)
        count = self.count
        total = count + n
        delta = b_mean - self.mean.double()
        new_mean = self.mean.double() + delta * (n / total)
        new_m2 = self.var.double() * count + b_var * n + delta.square() * (count * n / total)
        new_var = new_m2 / total
        self.mean.copy_(new_mean)
        self.var.copy_(new_var)
        self.std.copy_(torch.sqrt(new_var + self.eps))
        self.count.copy_(total)


def _synced(norm: nn.Module) -> nn.Module:
    """A :class:`SyncedNormalization` with ``norm``'s settings and rank 0's statistics (other
    normalizers, e.g. the identity when ``normalize_obs`` is off, are returned as they are)."""
    if not isinstance(norm, EmpiricalNormalization) or isinstance(norm, SyncedNormalization):
        return norm
    synced = SyncedNormalization(tuple(norm.mean.shape), eps=norm.eps, clip=norm.clip)
    synced.load_state_dict(norm.state_dict())
    synced.to(norm.mean.device)
    synced.train(norm.training)
    broadcast_module(synced)
    return synced
