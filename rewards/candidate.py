"""The training job of one reward candidate, run in a sandboxed worker process.

:func:`train_candidate` builds the task's env with the candidate's reward (compiled by
:func:`rewardlab.rewards.loader.compile_source` in the style the search detected: native,
Eureka or Text2Reward; every call is checked), trains it with the
repository's PPO (:class:`rewardlab.agents.runner.OnPolicyRunner`), and scores the policy on a
separate env with the task's own reward and ``success()``
(:func:`rewardlab.agents.evaluate.evaluate`). It runs in a child process that drops root
privileges, so everything it needs is imported here at module level: the child imports this
module while unpickling the job, before its limits apply (afterwards it may not be able to read
the Python installation).

What it cannot do: write files (results, including the runner checkpoint, travel back as the
return value), or limit one reward call's time (the worker's wall-clock limit does).
"""

from __future__ import annotations

import cProfile  # noqa: F401 - imported lazily by torch._dynamo during the first optimizer step
import dataclasses
import io
import math
import pstats  # noqa: F401
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch._dynamo  # noqa: F401 - loaded lazily by torch.optim; load it while files are readable

from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.envs import make_env
from rewardlab.envs.mujoco_backend import MujocoEnv  # noqa: F401
from rewardlab.rewards.compat import build_eureka, build_text2reward  # noqa: F401 - see above
from rewardlab.rewards.loader import compile_source


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


def train_candidate(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Train one candidate (or continue it) and score it; the body of a sandboxed job.

    Args:
        spec: ``train_cfg`` (a ``TrainConfig``), ``code`` (reward source, ``None`` for the
            task's own reward), ``style`` (of ``code``; default ``auto``: detected), ``steps``
            (total env steps to reach), ``checkpoint`` (bytes of a runner state to continue
            from, or ``None``), ``eval_episodes``, ``analyst``, ``correlation``.

    Returns:
        ``history`` (one metric row per PPO iteration of this call), ``checkpoint`` (bytes),
        ``steps``, ``eval`` (success rate, returns, lengths of the task's own evaluation),
        ``fitness``, ``correlation`` sums, ``failure_analysis``, ``seconds``.

    Raises:
        SandboxFailure: the reward failed during training (through the sandbox's guard).
    """
    t0 = time.perf_counter()
    cfg = spec["train_cfg"]
    if cfg.device == "auto":  # a config straight from load_train_config (the search resolves it)
        cfg = dataclasses.replace(cfg, device=cfg.resolved_device())
    kwargs = {"nthread": cfg.nthread} if cfg.backend == "mujoco" else {}
    env = make_env(
        cfg.task, cfg.num_envs, cfg.backend, cfg.task_config(), cfg.seed, cfg.device, **kwargs
    )
    corr = _Correlation()
    if spec.get("code") is not None:
        human = env.reward_fn
        candidate = compile_source(
            spec["code"],
            list(env.state_spec()),
            cfg.task,
            float(env.control_dt),
            spec.get("style") or "auto",
        )
        if spec.get("correlation", True):

            def tracked(state: Any, action: torch.Tensor) -> Any:
                total, parts = candidate(state, action)
                with torch.no_grad():
                    corr.add(total.detach(), human(state, action)[0])
                return total, parts

            env.set_reward(tracked)
        else:
            env.set_reward(candidate)
    runner = OnPolicyRunner(env, cfg.ppo, log_dir=None, device=cfg.device, seed=cfg.seed)
    if spec.get("checkpoint"):
        runner.load(io.BytesIO(spec["checkpoint"]))
    history = runner.learn(int(spec["steps"]), progress=False)
    buf = io.BytesIO()
    torch.save(runner.state_dict(), buf)
    train_s = time.perf_counter() - t0

    policy = runner.inference_policy()
    episodes = int(spec["eval_episodes"])
    eval_seed = cfg.eval_seed()
    eval_env = make_env(
        cfg.task, min(episodes, 32), cfg.backend, cfg.task_config(), eval_seed, cfg.device, **kwargs
    )
    ev = evaluate(policy, eval_env, episodes, seed=eval_seed)
    analysis = None
    if spec.get("analyst", True) and ev["success_rate"] < 1.0:
        analysis = _failure_analysis(policy, eval_env, eval_seed + 1)
    env.close()
    eval_env.close()
    return {
        "history": history,
        "checkpoint": buf.getvalue(),
        "steps": runner.global_step,
        "eval": {k: ev[k] for k in ("success_rate", "return_mean", "return_std", "length_mean")},
        "fitness": float(ev["success_rate"]),
        "correlation": corr.value(),
        "failure_analysis": analysis,
        "train_seconds": train_s,
        "seconds": time.perf_counter() - t0,
    }
