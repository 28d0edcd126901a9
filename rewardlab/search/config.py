"""Settings of a reward search, as frozen dataclasses (the LLM endpoint's,
:class:`~rewardlab.rewards.llm.LLMConfig`, lives with the client).

Loaded from ``sim_configs/search/default.yaml``, then ``sim_configs/search/<task>.yaml`` when it
exists, then ``--config FILE``, then ``key=value`` words (``rewardlab reward-search --help``
lists every key). Values are checked by :func:`rewardlab.core.config.build`; nothing here rewrites
what the user wrote: defaults taken from the environment (base URL, model, key) are resolved
when used, by the ``resolved_*`` methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.core.config import COMMAND_LINE, build, load_yaml, merge_layers, parse_overrides
from rewardlab.core.resources import config_dir
from rewardlab.rewards.llm import LLMConfig

EXECUTORS = ("process", "ray", "sequential")
"""Where candidates train: a local process pool, a Ray cluster, or one after another."""

HUMAN_FEEDBACK = ("none", "file", "prompt")
"""How a person can steer the search between rounds."""

VIDEOS = ("none", "best", "all")
"""Which candidates of a round get an evaluation video."""


@dataclass(frozen=True)
class WorkerLimits:
    """Limits of the worker process that trains one candidate."""

    timeout_s: float = 900.0
    """Wall-clock seconds a candidate's training job may take before it is killed."""
    cpu_s: int = 0
    """RLIMIT_CPU of the worker in CPU seconds; 0: 4 x timeout_s (threads add up)."""
    memory_mb: int = 4096
    """Memory the worker may allocate beyond its start (RLIMIT_DATA, MiB): catches huge
    allocations."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: got {self.timeout_s!r}, expected > 0")
        if self.cpu_s < 0:
            raise ValueError(f"cpu_s: got {self.cpu_s!r}, expected >= 0")
        if self.memory_mb < 1:
            raise ValueError(f"memory_mb: got {self.memory_mb!r}, expected >= 1")


@dataclass(frozen=True)
class SearchConfig:
    """A Eureka-style reward search: K candidates per round, R rounds, fitness = task success."""

    task: str = ""
    """Registered task name (``rewardlab tasks`` lists them); required."""
    description: str = ""
    """What the policy should do, in one or a few sentences; required."""
    rounds: int = 4
    """LLM rounds (R); round 1 writes from scratch, later ones reflect on the best so far."""
    candidates: int = 8
    """Reward candidates sampled per round (K)."""
    seed: int = 0
    """Seed of candidate training (every candidate of a search trains with it)."""
    run_dir: str | None = None
    """Search directory; null: ``runs/search-<task>-<YYYYmmdd-HHMMSS>``. A directory with a
    ``search.json`` is resumed: finished candidates are not trained again."""
    executor: str = "process"
    """``process`` (local pool of worker processes), ``ray`` (one candidate per Ray task) or
    ``sequential`` (one worker process at a time)."""
    workers: int = 0
    """Parallel candidates of the process pool; 0: the number of CPU cores."""
    ray_address: str | None = None
    """Ray cluster address for ``executor=ray``; null: ``ray.init()`` finds or starts one."""
    num_cpus_per_candidate: float = 1.0
    """CPUs Ray reserves per candidate."""
    num_gpus_per_candidate: float = 0.0
    """GPUs Ray reserves per candidate (fractions share a GPU)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Overrides of the training config of candidates (``TrainConfig`` keys: num_envs, ppo.*,
    task_cfg.*); the base is ``sim_configs/train/<task>.yaml``."""
    candidate_steps: int = 100_000
    """Env steps a surviving candidate trains for (its full budget)."""
    halving: bool = True
    """Successive halving: all candidates train a first rung, only the better half goes on."""
    halving_rungs: int = 2
    """Rungs of successive halving (budgets candidate_steps / eta^(rungs-1) ... candidate_steps)."""
    halving_eta: int = 2
    """Keep the best 1/eta of candidates at each rung."""
    eval_episodes: int = 20
    """Episodes of the fitness evaluation (success rate on the task's own ``success()``)."""
    success_threshold: float | None = None
    """Stop the search early when a candidate reaches this fitness; null: run every round."""
    winner_seeds: int = 3
    """Seeds the winner is retrained on (0: keep the candidate's own policy)."""
    winner_steps: int | None = None
    """Env steps of each winner retraining; null: the training config's total_steps."""
    reflect_top: int = 1
    """Best candidates (with their statistics) shown to the LLM in reflection."""
    safety_priors: bool = False
    """Add DrEureka's deployment priors (action rate, torques, joint limits) to the prompt."""
    critic: bool = False
    """Let the LLM review each candidate against the state schema before training (rejected
    ones are not trained; the review becomes feedback)."""
    analyst: bool = True
    """Summarize failed evaluation episodes (length, how they ended, final state) into feedback."""
    correlation: bool = True
    """Report the correlation of each candidate's reward with the task's own reward."""
    human_feedback: str = "none"
    """Between rounds: ``none``; ``file`` (read ``round_<r>/human_feedback.txt`` -- text, or
    ``ranking: c2 c0 c1`` to choose the reflected candidate as in ICPL); ``prompt`` (ask on stdin)."""
    human_wait_s: float = 0.0
    """With ``human_feedback=file``: seconds to wait for the file before going on without it."""
    videos: str = "best"
    """Evaluation videos: ``none``, ``best`` (each round's best) or ``all`` (every candidate)."""
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    """Limits of each candidate's training worker."""
    trial_steps: int = 64
    """Recorded env steps (of 64 worlds, random actions) for the sandbox trial run."""
    trial_timeout_s: float = 60.0
    """Wall-clock and CPU seconds of a candidate's trial run (an endless loop ends there)."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    """The LLM endpoint."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        checks = [
            ("task", bool(self.task), "a task name (task=NAME)"),
            ("description", bool(self.description.strip()), "a sentence (--description TEXT)"),
            ("rounds", self.rounds >= 1, ">= 1"),
            ("candidates", self.candidates >= 1, ">= 1"),
            ("executor", self.executor in EXECUTORS, "one of " + ", ".join(EXECUTORS)),
            ("workers", self.workers >= 0, ">= 0"),
            ("num_cpus_per_candidate", self.num_cpus_per_candidate > 0, "> 0"),
            ("num_gpus_per_candidate", self.num_gpus_per_candidate >= 0, ">= 0"),
            ("candidate_steps", self.candidate_steps >= 1, ">= 1"),
            ("halving_rungs", self.halving_rungs >= 1, ">= 1"),
            ("halving_eta", self.halving_eta >= 2, ">= 2"),
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
            ("winner_seeds", self.winner_seeds >= 0, ">= 0"),
            ("winner_steps", self.winner_steps is None or self.winner_steps >= 1, ">= 1 or null"),
            ("reflect_top", self.reflect_top >= 1, ">= 1"),
            ("human_feedback", self.human_feedback in HUMAN_FEEDBACK, ", ".join(HUMAN_FEEDBACK)),
            ("human_wait_s", self.human_wait_s >= 0, ">= 0"),
            ("videos", self.videos in VIDEOS, "one of " + ", ".join(VIDEOS)),
            ("trial_steps", self.trial_steps >= 1, ">= 1"),
            ("trial_timeout_s", self.trial_timeout_s > 0, "> 0"),
            (
                "success_threshold",
                self.success_threshold is None or 0.0 <= self.success_threshold <= 1.0,
                "in [0, 1] or null",
            ),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected {allowed}")

    def rung_steps(self) -> list[int]:
        """Cumulative env-step budgets of the successive-halving rungs (last = candidate_steps)."""
        if not self.halving:
            return [self.candidate_steps]
        n = self.halving_rungs
        return [max(1, self.candidate_steps // self.halving_eta ** (n - 1 - i)) for i in range(n)]


def search_config_dir(configs: str | Path | None = None) -> Path:
    """``sim_configs/search`` (or ``<configs>/search``)."""
    return Path(configs) / "search" if configs is not None else config_dir() / "search"


def load_search_config(
    overrides: Sequence[str] | Mapping[str, Any] = (),
    config_file: str | Path | None = None,
    configs: str | Path | None = None,
    task: str | None = None,
) -> SearchConfig:
    """Assemble and validate a :class:`SearchConfig` from its YAML layers and overrides.

    Layers, later ones winning key by key: ``search/default.yaml``, ``search/<task>.yaml``
    (when present), ``config_file``, ``overrides`` (``key=value`` strings or a mapping).

    Raises:
        rewardlab.core.config.ConfigError: a bad file, key or value, naming where it came from.
    """
    folder = search_config_dir(configs)
    cli = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    default = folder / "default.yaml"
    if default.is_file():
        layers.append((str(default), load_yaml(default)))
    user = load_yaml(config_file) if config_file is not None else {}
    name = task or cli.get("task") or user.get("task")
    if name:
        per_task = folder / f"{name}.yaml"
        if per_task.is_file():
            layers.append((str(per_task), load_yaml(per_task)))
    if config_file is not None:
        layers.append((str(config_file), user))
    layers.append((COMMAND_LINE, cli))
    merged, sources = merge_layers(layers, default_source=COMMAND_LINE)
    return build(SearchConfig, merged, "", sources)
