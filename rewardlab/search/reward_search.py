"""Eureka-style reward search: an LLM writes reward code, PPO trains on it, the task scores it.

Per round, ``K`` candidate rewards are sampled from the LLM; each is extracted from its reply,
checked (static allow-list and a trial run on recorded states in a limited child process, see
:mod:`rewardlab.rewards.sandbox`), optionally reviewed by the LLM (critic), then trained with the
repository's PPO in a sandboxed worker process (:mod:`rewardlab.search.executors`). Fitness is
the success rate of the trained policy on the task's own ``success()`` over evaluation
episodes -- never the candidate's own reward. Successive halving spends the budget on the
promising ones. The best candidate's statistics (per-component curves sampled over training,
fitness, correlation with the task's reference reward, how failed episodes ended, human
feedback) go back to the LLM for the next round ("reward reflection"). After ``R`` rounds the
winner is retrained on several seeds and exported -- only if some candidate reached nonzero
fitness; otherwise the search reports that it has no winner (``search.json``'s ``no_winner``).

A reply may be written in the repository's native style or in Eureka/IsaacGymEnvs or
Text2Reward style: candidates go through the same style detection and static check as
:func:`rewardlab.rewards.loader.load_reward_source`, are trial-run with the style's adapter and
compiled the same way in the training worker; the detected ``style`` is kept per candidate.

Everything is written to the search directory as it happens::

    runs/search-<task>-<time>/
      search.json              config, state (rounds done, best so far), LLM usage
      states/                  recorded states of the trial runs
      llm_cache/               every LLM reply (a replay needs only this folder)
      round_1/prompt.json      the messages sent
      round_1/r1c0/            reply.md, code.py, result.json, checkpoint.pt, critic.md
      round_1/best.mp4         video of the round's best policy
      winner/                  reward.py, result.json, export/ (policy.pt/.onnx/.json), video
      report.md, plots/        the report (see rewardlab.search.report)

A search started again on the same directory resumes: finished candidates (and finished rungs of
halving) are loaded, not trained again, and LLM replies come from the cache. A new search given
an old search's cache (``llm.cache_dir=``, ``llm.offline=true``) replays it with no LLM.

What it cannot do: search hyper-parameters of PPO along with the reward, or share one policy
between candidates (each candidate trains from scratch); fitness is as noisy as a short
training run with one seed (the winner's retraining on several seeds reports that spread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rewardlab import pipeline
from rewardlab.agents.registry import make_agent
from rewardlab.config import load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.core.files import atomic_write
from rewardlab.envs import get_task
from rewardlab.rewards import prompting
from rewardlab.rewards.compat import detect_style
from rewardlab.rewards.llm import ChatClient
from rewardlab.rewards.loader import prepare_source
from rewardlab.rewards.sandbox import (
    CheckResult,
    SandboxFailure,
    SandboxLimits,
    record_states,
    trial_run,
)
from rewardlab.search.candidate import CandidateResult, CandidateSpec, candidate_job
from rewardlab.search.config import SearchConfig
from rewardlab.search.executors import Job, make_executor, preload_training_modules, run_all
from rewardlab.search.report import write_report

# -------------------------------------------------------------------------------------------------
# Files


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str))


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _curves(history: Sequence[Mapping[str, float]]) -> dict[str, list[list[float]]]:
    """``{metric: [[global_step, value], ...]}`` of the reward terms and episode metrics."""
    keep = ("reward/", "charts/success_rate", "charts/episode_length", "charts/episode_return")
    out: dict[str, list[list[float]]] = {}
    for row in history:
        for k, v in row.items():
            if k.startswith(keep) and v is not None and math.isfinite(float(v)):
                out.setdefault(k, []).append([float(row["global_step"]), float(v)])
    return out


def _merge_curves(a: Mapping[str, list], b: Mapping[str, list]) -> dict[str, list]:
    out = {k: list(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, []).extend(v)
    return out


def _error_dict(error: Any) -> dict[str, Any]:
    if error is None:
        return {}
    if isinstance(error, Mapping):
        return dict(error)
    return {
        "kind": error.kind,
        "message": error.message,
        "line": error.line,
        "traceback": error.traceback,
        "feedback": error.feedback(),
    }


def _fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -------------------------------------------------------------------------------------------------
# The search


class RewardSearch:
    """One reward search (see the module docstring).

    Args:
        cfg: the search settings.
        client: a chat client; by default one is built from ``cfg.llm`` with its cache in the
            search directory (or ``cfg.llm.cache_dir``).
        executor: where candidates train; by default the one ``cfg.executor`` names.
        log: called with every progress line (default: print).
        human_input: ``prompt()`` function for ``human_feedback=prompt`` (default: ``input``).
    """

    def __init__(
        self,
        cfg: SearchConfig,
        client: Any = None,
        executor: Any = None,
        log: Callable[[str], None] | None = None,
        human_input: Callable[[str], str] | None = None,
    ) -> None:

        cfg.validate()
        get_task(cfg.task)  # an unknown task fails here (KeyError listing the known ones)
        self.cfg = cfg
        self.root = Path(cfg.run_dir or f"runs/search-{cfg.task}-{time.strftime('%Y%m%d-%H%M%S')}")
        self._log = log or (lambda line: print(line, flush=True))
        self._human_input = human_input or input
        if client is None:
            cache = cfg.llm.cache_dir or self.root / "llm_cache"
            client = ChatClient(cfg.llm, cache_dir=cache, log=self._log)
        self.client = client
        self.root.mkdir(parents=True, exist_ok=True)
        if cfg.executor != "ray":
            preload_training_modules()  # before the trial runs start the sandbox's forkserver
        self._executor = executor
        self.train_cfg = self._train_config()
        self.t0 = time.perf_counter()
        self.state: dict[str, Any] = _read_json(self.root / "search.json") or {}
        self._prior_usage: dict[str, Any] = dict(self.state.get("llm_usage") or {})
        self.trained = 0
        """Training jobs that finished in this process (candidates' rungs and winner seeds)."""

    # -- set-up --------------------------------------------------------------------------------

    def _train_config(self) -> Any:
        overrides = {"task": self.cfg.task, "seed": self.cfg.seed, **self.cfg.train}
        workers = self.cfg.workers or os.cpu_count() or 1
        if "nthread" not in self.cfg.train and self.cfg.executor != "sequential" and workers > 1:
            overrides["nthread"] = 1  # parallel candidates: one physics thread each
        cfg = load_train_config(overrides)
        if not make_agent(cfg.agent).resumable:  # halving continues candidates from their state
            raise ConfigError(
                "search config", "train.agent", f"got {cfg.agent!r}, expected ppo (candidates "
                "continue from their learner state between rungs)",
            )  # fmt: skip
        # device=auto is resolved here, once, as `rewardlab train` does (make_env needs a device)
        return dataclasses.replace(cfg, device=cfg.resolved_device())

    def _limits(self) -> Any:
        lim = self.cfg.limits
        return SandboxLimits(
            cpu_seconds=float(lim.cpu_s or 4 * lim.timeout_s),
            memory_mb=lim.memory_mb,
            wall_seconds=lim.timeout_s,
        )

    def executor(self) -> Any:
        """The executor (built on first use)."""
        if self._executor is None:
            self._executor = make_executor(
                self.cfg.executor,
                self._limits(),
                workers=self.cfg.workers,
                num_cpus=self.cfg.num_cpus_per_candidate,
                num_gpus=self.cfg.num_gpus_per_candidate,
                address=self.cfg.ray_address,
            )
        return self._executor

    def _task_info(self) -> dict[str, Any]:
        env = pipeline.make_eval_env(self.train_cfg, num_envs=1)
        try:
            return {
                "schema": env.describe(),
                "state_names": list(env.state_spec()),
                "action_dim": int(env.action_dim),
                "control_dt": float(env.control_dt),
                "episode_steps": int(env.max_episode_steps),
            }
        finally:
            env.close()

    def log(self, line: str) -> None:
        """A progress line, prefixed with the elapsed time."""
        self._log(f"[search {_fmt_s(time.perf_counter() - self.t0)}] {line}")

    def _save_state(self) -> None:
        self.state["config"] = dataclasses.asdict(self.cfg)
        usage = self.client.usage.as_dict()  # this process's, plus earlier runs' (resumes)
        self.state["llm_usage"] = {k: v + self._prior_usage.get(k, 0) for k, v in usage.items()}
        _write_json(self.root / "search.json", self.state)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) the search; returns the final ``search.json`` content.

        Raises:
            rewardlab.rewards.llm.LLMError: the LLM could not be reached after retries (the
                search directory keeps everything done so far; run again to resume).
        """

        cfg = self.cfg
        info = self._task_info()
        self.info = info
        self.states = record_states(
            cfg.task,
            num_envs=64,
            steps=cfg.trial_steps,
            seed=cfg.seed,
            cache_dir=self.root / "states",
        )
        base = prompting.initial_messages(
            cfg.task,
            cfg.description,
            info["schema"],
            info["action_dim"],
            info["control_dt"],
            info["episode_steps"],
            cfg.safety_priors,
        )
        self.state.setdefault("rounds", [])
        self.log(
            f"task {cfg.task}: {cfg.rounds} rounds x {cfg.candidates} candidates, "
            f"rungs {cfg.rung_steps()} steps, executor {cfg.executor}, dir {self.root}"
        )
        messages = base
        all_results: list[dict[str, Any]] = []
        try:
            for r in range(1, cfg.rounds + 1):
                results = self._round(r, messages)
                all_results += results
                trained = [x for x in results if x.get("status") == "trained"]
                best_round = max(trained, key=_rank) if trained else None
                best_all = max(
                    (x for x in all_results if x.get("status") == "trained"),
                    key=_rank,
                    default=None,
                )
                self._record_round(r, results, best_round, best_all)
                if best_round is not None and cfg.videos != "none":
                    self._video(best_round, self.root / f"round_{r}" / "best.mp4")
                human, ranking = self._human_feedback(r, results)
                focus = best_round
                if ranking:
                    by_id = {x["id"]: x for x in results}
                    ranked = [
                        by_id[i]
                        for i in ranking
                        if i in by_id and by_id[i].get("status") == "trained"
                    ]
                    if ranked:
                        focus = ranked[0]
                        self.log(f"round {r}: human ranking puts {focus['id']} first")
                if (
                    cfg.success_threshold is not None
                    and best_all is not None
                    and best_all["fitness"] >= cfg.success_threshold
                ):
                    self.log(
                        f"round {r}: {best_all['id']} reached fitness {best_all['fitness']:.2f} "
                        f">= {cfg.success_threshold}; stopping early"
                    )
                    break
                if r < cfg.rounds:
                    messages = self._next_messages(base, results, focus or best_all, human)
            best = max(
                (x for x in all_results if x.get("status") == "trained"), key=_rank, default=None
            )
            if best is not None and best["fitness"] > 0:
                self.state.pop("no_winner", None)
                self.state["winner"] = self._winner(best)
            else:
                # a fitness-0 candidate is no better than none: no retraining, no export
                self.state["winner"] = None
                self.state["no_winner"] = _no_winner_reason(best)
                self.log(f"no winner: {self.state['no_winner']} (see the round folders)")
            self.state["finished"] = True
            self.state["seconds"] = self.state.get("seconds", 0.0) + time.perf_counter() - self.t0
            self._save_state()
        finally:
            if self._executor is not None:
                self._executor.close()
        try:
            path = write_report(self.root)
            self.log(f"report: {path}")
        except Exception as e:  # noqa: BLE001 - the search's results stay on disk regardless
            self.log(f"report failed: {type(e).__name__}: {e}")
        return self.state

    def _next_messages(
        self,
        base: list[dict[str, Any]],
        results: list[dict[str, Any]],
        focus: dict[str, Any] | None,
        human: str | None,
    ) -> list[dict[str, Any]]:

        cfg = self.cfg
        trained = sorted(
            (x for x in results if x.get("status") == "trained"), key=_rank, reverse=True
        )
        shown = [focus] if focus is not None else []
        shown += [x for x in trained if focus is None or x["id"] != focus["id"]][
            : cfg.reflect_top - len(shown)
        ]
        failures = [x for x in results if x.get("status") != "trained"]
        anchor = shown[0] if shown else (failures[0] if failures else None)
        msgs = list(base)
        if anchor is not None:
            msgs.append({"role": "assistant", "content": self._reply_text(anchor)})
            if not shown:  # every candidate failed: answer the anchor's own error
                others = [f for f in failures if f["id"] != anchor["id"]]
                msgs.append(prompting.error_message(anchor, others, human))
                return msgs
        msgs.append(prompting.reflection_message(shown, failures=failures, human=human))
        return msgs

    def _reply_text(self, result: Mapping[str, Any]) -> str:
        path = self.root / result["dir"] / "reply.md"
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    def _record_round(
        self,
        r: int,
        results: list[dict[str, Any]],
        best_round: dict[str, Any] | None,
        best_all: dict[str, Any] | None,
    ) -> None:
        rounds = self.state["rounds"]
        entry = {
            "round": r,
            "candidates": [
                {
                    k: x.get(k)
                    for k in ("id", "status", "style", "fitness", "steps", "dir", "correlation")
                }
                | {"error_kind": (x.get("error") or {}).get("kind")}
                for x in results
            ],
            "best": best_round["id"] if best_round else None,
            "best_fitness": best_round["fitness"] if best_round else None,
            "best_so_far": best_all["id"] if best_all else None,
            "best_so_far_fitness": best_all["fitness"] if best_all else None,
        }
        rounds[:] = [x for x in rounds if x["round"] != r] + [entry]
        self._save_state()
        kinds: dict[str, int] = {}
        for x in results:
            kinds[x.get("status", "?")] = kinds.get(x.get("status", "?"), 0) + 1
        best_txt = (
            f"{best_round['id']} fitness {best_round['fitness']:.2f}"
            if best_round
            else "none trained"
        )
        self.log(f"round {r} done: {kinds}; best {best_txt}; LLM {self._usage_line()}")

    def _usage_line(self) -> str:
        u = self.client.usage
        return (
            f"{u.requests} requests, {u.prompt_tokens}+{u.completion_tokens} tokens, "
            f"{u.cache_hits} cache hits, ${u.cost_usd:.4f}"
        )

    # -- one round -----------------------------------------------------------------------------

    def _round(self, r: int, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cfg = self.cfg
        rdir = self.root / f"round_{r}"
        _write_json(rdir / "prompt.json", messages)
        self.log(f"round {r}/{cfg.rounds}: asking the LLM for {cfg.candidates} candidates")
        replies = self.client.chat(messages, n=cfg.candidates)
        cands: list[dict[str, Any]] = []
        for k, reply in enumerate(replies):
            cid = f"r{r}c{k}"
            cdir = rdir / cid
            cdir.mkdir(parents=True, exist_ok=True)
            _write_text(cdir / "reply.md", reply.text)
            done = _read_json(cdir / "result.json")
            if done is not None and done.get("final"):
                cands.append(done)
                continue
            ex = prompting.extract_code(reply.text)
            cand: dict[str, Any] = {
                "id": cid,
                "round": r,
                "index": k,
                "dir": str(cdir.relative_to(self.root)),
                "cached_reply": reply.cached,
            }
            if ex.code is None:
                cand |= {
                    "status": "failed",
                    "error": {"kind": "no_code", "message": ex.problem},
                    "final": True,
                }
                _write_json(cdir / "result.json", cand)
            else:
                _write_text(cdir / "code.py", ex.code)
                cand["code"] = ex.code
            cands.append(cand)
        pending = [c for c in cands if not c.get("final")]
        self._trial(pending)
        if cfg.critic:
            self._critic([c for c in pending if not c.get("final")], r)
        self._train_rungs([c for c in pending if not c.get("final")])
        out = []
        for c in cands:
            c.pop("code", None)
            out.append(_read_json(self.root / c["dir"] / "result.json") or c)
        return out

    def _trial(self, cands: list[dict[str, Any]]) -> None:
        """Sandboxed trial run of each candidate on recorded states (in parallel threads)."""

        if not cands:
            return
        t = self.cfg.trial_timeout_s
        limits = SandboxLimits(cpu_seconds=t, wall_seconds=t)
        workers = min(len(cands), self.cfg.workers or os.cpu_count() or 1)

        def _check(c: dict[str, Any]) -> Any:
            # the loader's style detection and static check (native, Eureka, Text2Reward), then
            # the trial run in a limited child with the style's builder
            c["style"] = detect_style(c["code"])
            try:
                _, builder, args = prepare_source(
                    c["code"],
                    self.info["state_names"],
                    self.cfg.task,
                    self.info.get("control_dt", 0.02),
                    c["style"],
                )
            except SandboxFailure as exc:
                return CheckResult(False, exc.error)
            return trial_run(c["code"], self.states, limits, builder=builder, builder_args=args)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            checks = list(pool.map(_check, cands))
        for c, check in zip(cands, checks, strict=True):
            cdir = self.root / c["dir"]
            if check.ok:
                c["trial"] = {
                    "ms_per_call": check.ms_per_call,
                    "components": check.components,
                    "component_stats": check.component_stats,
                }
                continue
            c |= {"status": "failed", "error": _error_dict(check.error), "final": True}
            _write_json(cdir / "result.json", {k: v for k, v in c.items() if k != "code"})
            self.log(f"{c['id']}: rejected by the trial run: {check.error}")

    def _critic(self, cands: list[dict[str, Any]], r: int) -> None:
        for c in cands:
            msgs = prompting.critic_messages(
                self.cfg.task,
                self.cfg.description,
                self.info["schema"],
                self.info["action_dim"],
                c["code"],
            )
            reply = self.client.chat(msgs, n=1)[0].text
            _write_text(self.root / c["dir"] / "critic.md", reply)
            verdict = prompting.critic_verdict(reply)
            c["critic"] = {"verdict": verdict}
            if verdict is False:
                reasons = reply.rsplit("VERDICT", 1)[0].strip()
                c |= {
                    "status": "rejected",
                    "error": {
                        "kind": "critic",
                        "message": f"a reviewer rejected it before training: {reasons[-1500:]}",
                    },
                    "final": True,
                }
                _write_json(
                    self.root / c["dir"] / "result.json",
                    {k: v for k, v in c.items() if k != "code"},
                )
                self.log(f"{c['id']}: rejected by the critic")

    def _job(
        self, c: Mapping[str, Any], steps: int, checkpoint: bytes | None, seed: int | None = None
    ) -> Any:

        cfg = self.train_cfg if seed is None else dataclasses.replace(self.train_cfg, seed=seed)
        spec = CandidateSpec(
            train_cfg=cfg,
            steps=steps,
            code=c.get("code"),
            style=c.get("style"),
            checkpoint=checkpoint,
            eval_episodes=self.cfg.eval_episodes,
            analyst=self.cfg.analyst,
            correlation=self.cfg.correlation,
        )
        return Job(c["id"] if seed is None else f"{c['id']}/seed{seed}", candidate_job, (spec,))

    def _train_rungs(self, cands: list[dict[str, Any]]) -> None:
        """Successive halving over the rungs; writes each candidate's final ``result.json``."""
        rungs = self.cfg.rung_steps()
        alive = list(cands)
        for i, steps in enumerate(rungs):
            last = i == len(rungs) - 1
            if not last and len(alive) <= 1:
                started = [c for c in alive if (self.root / c["dir"] / f"rung_{i}.json").is_file()]
                if not started:
                    continue  # nothing to compare: go straight to the full budget
            todo, results = [], {}
            for c in alive:
                saved = _read_json(self.root / c["dir"] / f"rung_{i}.json")
                if saved is not None:
                    results[c["id"]] = saved
                else:
                    ckpt_path = self.root / c["dir"] / "checkpoint.pt"
                    ckpt = ckpt_path.read_bytes() if i > 0 and ckpt_path.is_file() else None
                    todo.append(self._job(c, steps, ckpt))
            if todo:
                progress = _RungProgress(
                    self, {c["id"]: c for c in alive}, i, len(rungs), len(todo)
                )
                for o in run_all(self.executor(), todo, progress):
                    results[o.key] = progress.results[o.key]
            ok = [c for c in alive if results[c["id"]]["status"] == "trained"]
            for c in alive:
                res = results[c["id"]]
                if res["status"] != "trained":
                    self._finalize(c, res, None)
            if last:
                for c in ok:
                    self._finalize(c, results[c["id"]], None)
                break
            ok.sort(key=lambda c: _rank(results[c["id"]]), reverse=True)
            keep = max(1, math.ceil(len(ok) / self.cfg.halving_eta))
            for c in ok[keep:]:
                self._finalize(c, results[c["id"]], stopped_at=results[c["id"]]["steps"])
            alive = ok[:keep]
            if alive:
                self.log(
                    f"halving: {len(ok)} -> {len(alive)} candidates go on to {rungs[i + 1]:,} steps"
                )

    def _absorb(self, c: dict[str, Any], o: Any, rung: int) -> dict[str, Any]:
        """Turn a job outcome into the rung's result (persisted as ``rung_<i>.json``)."""
        cdir = self.root / c["dir"]
        prev = _read_json(cdir / f"rung_{rung - 1}.json") if rung > 0 else None
        if not o.ok:
            res = {"status": "failed", "error": _error_dict(o.error), "seconds": o.seconds}
        else:
            v = CandidateResult.from_data(o.value)
            _write_bytes(cdir / "checkpoint.pt", v.checkpoint)
            self.trained += 1
            curves = _curves(v.history)
            if prev:
                curves = _merge_curves(prev.get("curves", {}), curves)
            res = {
                "status": "trained",
                "fitness": v.fitness,
                "eval": dataclasses.asdict(v.eval),
                "steps": v.steps,
                "correlation": v.correlation,
                "failure_analysis": v.failure_analysis,
                "curves": curves,
                "seconds": o.seconds + (prev or {}).get("seconds", 0.0),
                "train_seconds": v.train_seconds + (prev or {}).get("train_seconds", 0.0),
            }
        _write_json(cdir / f"rung_{rung}.json", res)
        return res

    def _finalize(self, c: dict[str, Any], res: Mapping[str, Any], stopped_at: int | None) -> None:
        out = {k: v for k, v in c.items() if k != "code"}
        out |= dict(res)
        out["eval_episodes"] = self.cfg.eval_episodes
        out["stopped_at"] = stopped_at
        out["final"] = True
        _write_json(self.root / c["dir"] / "result.json", out)
        c.update(out)

    # -- after a round -------------------------------------------------------------------------

    def _video(self, result: Mapping[str, Any], path: Path) -> None:
        """Render the candidate's policy (one episode, the task's own env) to ``path``."""
        ckpt = self.root / result["dir"] / "checkpoint.pt"
        if not ckpt.is_file() or path.is_file():
            return
        if self._render_policy(ckpt, path, f"video of {result['id']}"):
            self.log(f"video of {result['id']}: {path}")

    def _render_policy(self, checkpoint: bytes | Path, path: Path, what: str) -> bool:
        """One episode of a checkpoint's policy on the task's own env, to ``path``; a failure
        (e.g. no renderer) is logged as ``<what> failed: ...`` and returns false."""
        cfg = self.train_cfg
        try:
            data = checkpoint.read_bytes() if isinstance(checkpoint, Path) else checkpoint
            env = pipeline.make_eval_env(cfg, num_envs=1)
            try:
                policy = pipeline.policy_from_state(cfg, data, env)
                pipeline.evaluate(
                    cfg,
                    policy,
                    env=env,
                    episodes=1,
                    deterministic=True,
                    video=path,
                    video_episodes=1,
                )
            finally:
                env.close()
        except Exception as e:  # noqa: BLE001 - a missing renderer must not stop the search
            self.log(f"{what} failed: {type(e).__name__}: {e}")
            return False
        return True

    def _human_feedback(
        self, r: int, results: list[dict[str, Any]]
    ) -> tuple[str | None, list[str]]:
        """Text and/or a ranking of candidate ids from a person (``human_feedback`` option)."""
        mode = self.cfg.human_feedback
        if mode == "none":
            return None, []
        rdir = self.root / f"round_{r}"
        if mode == "file":
            if self.cfg.videos != "none":
                for x in results:
                    if x.get("status") == "trained" and self.cfg.videos == "all":
                        self._video(x, rdir / x["id"] / "video.mp4")
            path = rdir / "human_feedback.txt"
            lines = [f"# Round {r}: write feedback into {path.name} in this folder", ""]
            lines += [
                f"- {x['id']}: {x.get('status')} fitness {x.get('fitness', '-')}" for x in results
            ]
            lines += [
                "",
                "Text is passed to the LLM; a line `ranking: r1c2 r1c0 ...` (best first)",
                "chooses which candidate the next round improves on (ICPL).",
            ]
            _write_text(rdir / "HUMAN_FEEDBACK_REQUEST.md", "\n".join(lines) + "\n")
            deadline = time.monotonic() + self.cfg.human_wait_s
            while not path.is_file() and time.monotonic() < deadline:
                time.sleep(1.0)
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
        else:
            text = self._human_input(
                f"round {r} feedback (text, or 'ranking: id id ...'; empty: none): "
            )
        ranking: list[str] = []
        rest = []
        for line in text.splitlines():
            if line.lower().startswith("ranking:"):
                ranking = line.split(":", 1)[1].replace(",", " ").split()
            else:
                rest.append(line)
        human = "\n".join(rest).strip() or None
        if human or ranking:
            _write_json(rdir / "human_feedback.json", {"text": human, "ranking": ranking})
        return human, ranking

    # -- the winner ----------------------------------------------------------------------------

    def _winner(self, best: Mapping[str, Any]) -> dict[str, Any]:
        """Retrain the best candidate on ``winner_seeds`` seeds, export the best seed's policy."""
        cfg = self.cfg
        wdir = self.root / "winner"
        code = (self.root / best["dir"] / "code.py").read_text(encoding="utf-8")
        _write_text(wdir / "reward.py", code)
        steps = cfg.winner_steps or self.train_cfg.total_steps
        seeds = [cfg.seed + 1 + i for i in range(cfg.winner_seeds)]
        runs: list[dict[str, Any]] = []
        if seeds:
            self.log(
                f"winner {best['id']} (fitness {best['fitness']:.2f}): retraining on seeds {seeds} for {steps:,} steps"
            )
            cand = {"id": best["id"], "code": code, "style": best.get("style")}
            todo = []
            for s in seeds:
                saved = _read_json(wdir / f"seed_{s}.json")
                if saved is not None:
                    runs.append(saved)
                else:
                    todo.append(self._job(cand, steps, None, seed=s))

            def on_done(o: Any) -> None:
                s = int(o.key.rsplit("seed", 1)[1])
                if o.ok:
                    v = CandidateResult.from_data(o.value)
                    self.trained += 1
                    _write_bytes(wdir / f"seed_{s}.pt", v.checkpoint)
                    res = {
                        "seed": s,
                        "status": "trained",
                        "fitness": v.fitness,
                        "eval": dataclasses.asdict(v.eval),
                        "steps": v.steps,
                        "curves": _curves(v.history),
                        "seconds": o.seconds,
                    }
                else:
                    res = {"seed": s, "status": "failed", "error": _error_dict(o.error)}
                _write_json(wdir / f"seed_{s}.json", res)
                runs.append(res)
                self.log(f"winner seed {s}: {res.get('fitness', res.get('error'))}")

            if todo:
                run_all(self.executor(), todo, on_done)
        trained = [x for x in runs if x["status"] == "trained"]
        if trained:
            top = max(trained, key=lambda x: x["fitness"])
            ckpt = (wdir / f"seed_{top['seed']}.pt").read_bytes()
            fits = [x["fitness"] for x in trained]
        else:
            top = None
            ckpt = (self.root / best["dir"] / "checkpoint.pt").read_bytes()
            fits = [best["fitness"]]
        mean = sum(fits) / len(fits)
        std = math.sqrt(sum((f - mean) ** 2 for f in fits) / len(fits))
        summary = {
            "id": best["id"],
            "candidate_fitness": best["fitness"],
            "seeds": [x["seed"] for x in trained],
            "fitness_per_seed": fits if trained else [],
            "fitness_mean": mean,
            "fitness_std": std,
            "exported_seed": top["seed"] if top else None,
            "steps": steps if trained else best["steps"],
            "reward": "winner/reward.py",
        }
        summary["export"] = self._export(ckpt, wdir / "export", best["id"])
        if cfg.videos != "none":
            self._winner_video(ckpt, wdir / "winner.mp4")
        _write_json(wdir / "result.json", summary)
        self.log(
            f"winner {best['id']}: fitness {mean:.2f} +- {std:.2f} over {len(fits)} run(s); export {summary['export']}"
        )
        return summary

    def _export(self, checkpoint: bytes, out: Path, cid: str) -> str | None:
        cfg = self.train_cfg
        try:
            env = pipeline.make_eval_env(cfg, num_envs=1)
            try:
                policy = pipeline.policy_from_state(cfg, checkpoint, env)
            finally:
                env.close()
            pipeline.export(
                cfg, policy, out, onnx=False, reward="winner/reward.py", search_candidate=cid
            )
            return str(out.relative_to(self.root))
        except Exception as e:  # noqa: BLE001 - keep the search result even if export fails
            self.log(f"export failed: {type(e).__name__}: {e}")
            return None

    def _winner_video(self, checkpoint: bytes, path: Path) -> None:
        if not path.is_file():
            self._render_policy(checkpoint, path, "winner video")


class _RungProgress:
    """Callback of one rung's jobs: absorbs each outcome and prints a progress line."""

    def __init__(self, search: RewardSearch, by_id: dict, rung: int, rungs: int, jobs: int) -> None:
        self.search, self.by_id, self.rung, self.rungs, self.jobs = search, by_id, rung, rungs, jobs
        self.results: dict[str, dict[str, Any]] = {}
        self.started = time.perf_counter()

    def __call__(self, o: Any) -> None:
        c = self.by_id[o.key]
        res = self.search._absorb(c, o, self.rung)
        self.results[o.key] = res
        n = len(self.results)
        rate = n / max(time.perf_counter() - self.started, 1e-9)
        eta = (self.jobs - n) / max(rate, 1e-9)
        if res["status"] == "trained":
            what = f"fitness {res['fitness']:.2f} after {res['steps']:,} steps"
        else:
            err = res["error"]
            what = f"failed: {err.get('kind')}: {str(err.get('message', ''))[:120]}"
        self.search.log(
            f"{c['id']} rung {self.rung + 1}/{self.rungs}: {what} ({o.seconds:.1f} s) "
            f"| {n}/{self.jobs} | ETA {_fmt_s(eta)}"
        )


def _no_winner_reason(best: Mapping[str, Any] | None) -> str:
    """Why a search has no winner (``search.json``'s ``no_winner``, the report, the CLI)."""
    if best is None:
        return "no candidate trained successfully, so none reached nonzero fitness"
    return (
        f"no candidate reached nonzero fitness (the best, {best['id']}, scored "
        f"{best['fitness']:.2f} on the task's success)"
    )


def _rank(result: Mapping[str, Any]) -> tuple[float, float]:
    """Sort key of trained candidates: fitness, then the task's own evaluation return."""
    return (
        float(result.get("fitness", -1.0)),
        float((result.get("eval") or {}).get("return_mean", -math.inf)),
    )


def run_search(cfg: SearchConfig, **kwargs: Any) -> dict[str, Any]:
    """``RewardSearch(cfg, **kwargs).run()``."""
    return RewardSearch(cfg, **kwargs).run()
