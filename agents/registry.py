"""Agents by name: the :class:`Agent` interface and the :data:`AGENTS` registry.

``TrainConfig.agent`` names an entry of :data:`AGENTS`; the training pipeline
(:mod:`rewardlab.pipeline`) builds it and calls :meth:`Agent.train` / :meth:`Agent.load`,
nothing agent-specific. Entries are lazy ``"module:Class"`` references, so listing or
validating names imports neither torch nor an optional learner (stable-baselines3).

Adding an algorithm is one module holding a class with the :class:`Agent` interface, and one
line here::

    AGENTS.register("my_algo", "rewardlab.agents.my_algo:MyAlgoAgent")

Its hyper-parameters come from the ``TrainConfig`` section its ``config_key`` names (``ppo``:
a ``PPOConfig``; ``sb3``: a mapping of keyword arguments).

This module imports no torch (it is read when the command line is parsed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rewardlab.core.registry import Registry

if TYPE_CHECKING:  # annotations only: the modules below import torch
    from rewardlab.agents.distributed import DistContext
    from rewardlab.agents.policy import Policy
    from rewardlab.envs.base import BatchedEnv


@dataclass(frozen=True)
class TrainSpec:
    """What an agent trains with, whatever the algorithm."""

    total_steps: int
    """Env steps (summed over worlds) to reach, counting those before a resume."""
    seed: int = 0
    """Seed of the learner and the env's first reset."""
    device: str = "cpu"
    """Torch device of the learner (``auto`` already resolved)."""
    hyperparams: Any = None
    """The algorithm's settings: the ``TrainConfig`` section its ``config_key`` names."""
    log_dir: Path | None = None
    """Where metrics, TensorBoard events and ``checkpoints/`` go; ``None``: nothing is written
    (agents that cannot train without a folder raise ``ValueError``)."""
    checkpoint_every: int = 50
    """Learner iterations between checkpoints (for agents that count iterations)."""
    keep_checkpoints: int = 5
    """Numbered checkpoints to keep besides the best one; 0 keeps all (for agents that keep
    several)."""
    progress: bool = True
    """Print progress lines while training."""
    keep_state: bool = False
    """Return the learner's whole state as bytes (:attr:`TrainOutcome.state`), for callers that
    cannot write files (sandboxed search candidates)."""
    sample_seed: int = 0
    """Seed of the returned policy's sampling noise (``Policy.sample``)."""


@dataclass
class TrainOutcome:
    """What :meth:`Agent.train` returns."""

    policy: Policy
    """The trained policy."""
    global_step: int
    """Env steps trained in total (including those before a resume)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One metric row per learner iteration of this call (empty for agents that log only to
    TensorBoard)."""
    state: bytes | None = None
    """The learner's state (``TrainSpec.keep_state``), loadable as a ``resume``."""


class Agent(Protocol):
    """A learner the pipeline can train, resume and load by name."""

    config_key: ClassVar[str]
    """The ``TrainConfig`` field holding its hyper-parameters (``ppo`` or ``sb3``)."""
    resumable: ClassVar[bool]
    """Whether :meth:`train` continues from a checkpoint of an earlier run."""
    distributed: ClassVar[bool]
    """Whether it trains one run in several processes (``torchrun``)."""
    checkpoint_suffix: ClassVar[str]
    """File suffix of its checkpoints (``.pt``, ``.zip``): picks the agent of a checkpoint file."""

    def train(
        self,
        env: BatchedEnv,
        spec: TrainSpec,
        resume: Path | bytes | None = None,
        dist: DistContext | None = None,
        log: Callable[[str], None] = print,
    ) -> TrainOutcome:
        """Train on every world of ``env`` until ``spec.total_steps``.

        Args:
            env: the training env (reward already applied).
            spec: budget, seed, device, hyper-parameters and where to write.
            resume: a checkpoint file or :attr:`TrainOutcome.state` bytes to continue from.
            dist: this process's place in a ``torchrun`` run (agents with ``distributed``).
            log: receives one-line messages (resuming, nothing left to train).
        """
        ...

    def load(self, path: Path | bytes, env: BatchedEnv, spec: TrainSpec) -> Policy:
        """The policy saved in the checkpoint ``path`` (or a :attr:`TrainOutcome.state`), for
        ``env``'s observation and action sizes."""
        ...


AGENTS: Registry[type[Agent]] = Registry("agent")
"""Agent name -> class (``TrainConfig.agent``)."""
AGENTS.register("ppo", "rewardlab.agents.ppo_agent:PPOAgent")
AGENTS.register("sac", "rewardlab.agents.sac_agent:SACAgent")
AGENTS.register("sb3_ppo", "rewardlab.agents.sb3:SB3PPOAgent")
AGENTS.register("sb3_sac", "rewardlab.agents.sb3:SB3SACAgent")
AGENTS.register("bc", "rewardlab.agents.bc:BCAgent")
AGENTS.register("iql", "rewardlab.agents.iql:IQLAgent")
AGENTS.register("residual_sac", "rewardlab.agents.residual_sac:ResidualSACAgent")


class AgentUnavailableError(ValueError):
    """A registered agent whose module cannot be imported (its optional extra is missing)."""


def agent_class(name: str) -> type[Agent]:
    """The class of the agent registered as ``name``.

    Raises:
        rewardlab.core.registry.UnknownNameError: no such agent (the message lists the known ones).
        AgentUnavailableError: its optional dependency is missing (one line naming it and the
            extra to install, e.g. stable-baselines3 for ``sb3_*``).
    """
    try:
        return AGENTS.get(name)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        extra = "sb3" if str(missing).startswith("stable_baselines3") else None
        hint = f"pip install 'rewardlab[{extra}]'" if extra else "install it"
        raise AgentUnavailableError(
            f"agent {name}: needs the module {missing!r}, which is not installed ({hint})"
        ) from None


def make_agent(name: str) -> Agent:
    """An instance of the agent registered as ``name`` (errors as :func:`agent_class`)."""
    return agent_class(name)()
