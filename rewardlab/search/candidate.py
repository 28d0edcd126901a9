"""The training job of one reward candidate, run in a sandboxed worker process.

:func:`train_candidate` takes a :class:`CandidateSpec` and returns a :class:`CandidateResult`
(:func:`candidate_job`, what a worker process runs, returns it as plain data).
It builds the training env of the search's ``TrainConfig`` through the training pipeline
(:func:`rewardlab.pipeline.make_train_env`: backend, task config and ``domain_rand``, exactly
as ``rewardlab train`` does) with the candidate's reward (compiled by
:func:`rewardlab.rewards.loader.compile_source` in the style the search detected: native,
Eureka or Text2Reward; every call is checked), trains it with :func:`rewardlab.pipeline.train`
(the repository's PPO), and scores the policy on a separate env with the task's own reward and
``success()`` (:func:`rewardlab.pipeline.evaluate`). It runs in a child process that drops root
privileges, so everything it needs is imported here at module level: the child imports this
module while unpickling the job, before its limits apply (afterwards it may not be able to read
the Python installation).

What it cannot do: write files (results, including the learner's state, travel back as the
return value), or limit one reward call's time (the worker's wall-clock limit does).
"""

from __future__ import annotations

import cProfile  # noqa: F401 - imported lazily by torch._dynamo during the first optimizer step
import dataclasses
import math
import pstats  # noqa: F401
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch._dynamo  # noqa: F401 - loaded lazily by torch.optim; load it while files are readable

import rewardlab.agents.ppo_agent  # noqa: F401 - the agent registry imports it lazily: load it now
from rewardlab.config import TrainConfig
from rewardlab.envs.mujoco_backend import MujocoEnv  # noqa: F401
from rewardlab.pipeline import evaluate, make_eval_env, make_train_env, train
from rewardlab.rewards.compat import build_eureka, build_text2reward  # noqa: F401 - see above
from rewardlab.rewards.loader import compile_source


@dataclass(frozen=True)
class CandidateSpec:
    """One training job of a reward candidate (picklable: it travels to the worker process)."""

    train_cfg: TrainConfig
    """The search's training config (task, backend, worlds, PPO, ``domain_rand``, seed);
    ``device`` ``auto`` is resolved in the worker."""
    steps: int
    """Env steps in total to reach (counting those of ``checkpoint``)."""
    code: str | None = None
    """The candidate's reward source; ``None``: the task's own reward."""
    style: str | None = None
    """Style of ``code`` (``native``, ``eureka``, ``text2reward``); ``None``: detected."""
    checkpoint: bytes | None = None
    """A learner state (:attr:`CandidateResult.checkpoint`) to continue from (successive
    halving's next rung)."""
    eval_episodes: int = 20
    """Episodes of the fitness evaluation on the task's own success."""
    analyst: bool = True
    """Summarize how failed evaluation episodes ended (:attr:`CandidateResult.failure_analysis`)."""
    correlation: bool = True
    """Track the correlation of the candidate's reward with the task's own, step by step."""


@dataclass(frozen=True)
class CandidateEval:
    """The task's own evaluation of a candidate's policy."""

    success_rate: float
    """Share of evaluation episodes that ended in the task's ``success()`` (the fitness)."""
    return_mean: float
    """Mean episode return on the task's own reward."""
    return_std: float
    """Standard deviation of those returns."""
    length_mean: float
    """Mean episode length in control steps."""


@dataclass(frozen=True)
class CandidateResult:
    """What a candidate's training job returns (plain data: it travels back from the worker)."""

    steps: int
    """Env steps trained in total."""
    fitness: float
    """The task's success rate of the trained policy (``eval.success_rate``)."""
    eval: CandidateEval
    """The task's own evaluation."""
    checkpoint: bytes
    """The learner's whole state, to continue training from (or to load the policy)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One metric row per PPO iteration of this job."""
    correlation: float | None = None
    """Pearson correlation of the candidate's reward with the task's own (``None``: not tracked
    or constant)."""
    failure_analysis: str | None = None
    """How failed evaluation episodes ended (length, termination, final state)."""
    train_seconds: float = 0.0
    """Wall time of training in the worker."""
    seconds: float = 0.0
    """Wall time of the whole job in the worker."""

    def to_data(self) -> dict[str, Any]:
        """Plain containers, numbers, strings and bytes only (what crosses back from a worker
        process as data, never as an unpickled object)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CandidateResult:
        """The inverse of :meth:`to_data`.

        Raises:
            ValueError: ``data`` is not a candidate result (a missing or unknown field).
        """
        try:
            return cls(**{**data, "eval": CandidateEval(**data["eval"])})
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a candidate result: {e}") from None


class _Correlation:
    """Running Pearson correlation of two per-step reward streams."""

    def __init__(self) -> None:
        self.n = 0.0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double().flatten(), y.double().flatten()
        ok = torch.isfinite(x) & torch.isfinite(y)
        x, y = x[ok], y[ok]
        self.n += x.numel()
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())
        self.sxy += float((x * y).sum())

    def value(self) -> float | None:
        if self.n < 2:
            return None
        cov = self.sxy / self.n - (self.sx / self.n) * (self.sy / self.n)
        vx = self.sxx / self.n - (self.sx / self.n) ** 2
        vy = self.syy / self.n - (self.sy / self.n) ** 2
        if vx <= 1e-12 or vy <= 1e-12:
            return None
        return float(max(-1.0, min(1.0, cov / math.sqrt(vx * vy))))


def _failure_analysis(policy: Any, env: Any, seed: int, max_fields: int = 8) -> str | None:
    """One episode per world: how failed ones ended (length, termination, final state)."""
    n, limit = env.num_envs, int(env.max_episode_steps)
    done = torch.zeros(n, dtype=torch.bool)
    failed: list[tuple[int, dict[str, torch.Tensor]]] = []
    total_failed = 0
    spec = env.state_spec()
    with torch.inference_mode():
        obs = env.reset(seed=seed)
        for _ in range(limit + 1):
            prev = {k: v.detach().cpu().clone() for k, v in env.state().items() if k in spec}
            obs, _, _, _, info = env.step(policy(obs.cpu()).to(env.device))
            ep = info.get("episode")
            if ep is not None:
                for j, w in enumerate(ep["env_ids"].tolist()):
                    if done[w]:
                        continue
                    done[w] = True
                    if not bool(ep["success"][j]):
                        total_failed += 1
                        failed.append((int(ep["length"][j]), {k: v[w] for k, v in prev.items()}))
            if bool(done.all()):
                break
    if not failed:
        return None
    lengths = [f[0] for f in failed]
    early = sum(1 for length in lengths if length < limit)
    lines = [
        f"{total_failed} of {int(done.sum())} episodes failed; {early} of them ended before the "
        f"time limit of {limit} steps (terminated); failed episode length mean "
        f"{sum(lengths) / len(lengths):.0f}, min {min(lengths)}, max {max(lengths)}.",
        "State one step before the end of failed episodes (mean [min, max] over them):",
    ]
    for k in list(spec)[:max_fields]:
        vals = torch.stack([f[1][k].float() for f in failed])
        if vals.dim() > 1:
            if vals.shape[1] > 3:
                vals, k = vals.norm(dim=1), f"|{k}|"
            else:
                mean = ", ".join(f"{float(v):.3g}" for v in vals.mean(0))
                lines.append(f"- {k}: [{mean}] (mean per axis)")
                continue
        lines.append(
            f"- {k}: {float(vals.mean()):.3g} [{float(vals.min()):.3g}, {float(vals.max()):.3g}]"
        )
    return "\n".join(lines)


def candidate_job(spec: CandidateSpec) -> dict[str, Any]:
    """The job a worker process runs: :func:`train_candidate`, its result as plain data
    (:meth:`CandidateResult.to_data`; the search rebuilds it with :meth:`CandidateResult.from_data`).
    """
    return train_candidate(spec).to_data()


def train_candidate(spec: CandidateSpec) -> CandidateResult:
    """Train one candidate (or continue it) and score it; the body of a sandboxed job.

    Raises:
        SandboxFailure: the reward failed during training (through the sandbox's guard).
    """
    t0 = time.perf_counter()
    cfg = dataclasses.replace(spec.train_cfg, total_steps=int(spec.steps))
    if cfg.device == "auto":  # a config straight from load_train_config (the search resolves it)
        cfg = dataclasses.replace(cfg, device=cfg.resolved_device())
    env = make_train_env(cfg, reward=False)  # the candidate's reward replaces the task's below
    corr = _Correlation()
    candidate: Any = None
    try:
        if spec.code is not None:
            human = env.reward_fn
            candidate = compile_source(
                spec.code,
                list(env.state_spec()),
                cfg.task,
                float(env.control_dt),
                spec.style or "auto",
                sandbox=cfg.sandbox,
                env=env,  # constants of foreign names (IsaacGymEnvs' max_episode_length, ...)
            )
            if spec.correlation:

                def tracked(state: Any, action: torch.Tensor) -> Any:
                    total, parts = candidate(state, action)
                    with torch.no_grad():
                        corr.add(total.detach(), human(state, action)[0])
                    return total, parts

                env.set_reward(tracked)
            else:
                env.set_reward(candidate)
        trained = train(cfg, None, env=env, resume=spec.checkpoint, progress=False, keep_state=True)
    finally:
        env.close()
        if hasattr(candidate, "close"):  # the sandboxed reward process
            candidate.close()
    train_s = time.perf_counter() - t0

    episodes = int(spec.eval_episodes)
    eval_seed = cfg.eval_seed()
    eval_env = make_eval_env(cfg, num_envs=min(episodes, 32), seed=eval_seed)
    try:
        ev = evaluate(cfg, trained.policy, env=eval_env, episodes=episodes, deterministic=True)
        analysis = None
        if spec.analyst and ev.success_rate < 1.0:
            analysis = _failure_analysis(trained.policy, eval_env, eval_seed + 1)
    finally:
        eval_env.close()
    assert trained.state is not None  # keep_state=True
    return CandidateResult(
        steps=trained.global_step,
        fitness=float(ev.success_rate),
        eval=CandidateEval(**ev.summary()),
        checkpoint=trained.state,
        history=trained.history,
        correlation=corr.value(),
        failure_analysis=analysis,
        train_seconds=train_s,
        seconds=time.perf_counter() - t0,
    )
