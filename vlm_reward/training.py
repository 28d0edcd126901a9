"""Training on a vision-language reward: the env wrapper behind ``reward=clip`` / ``reward=vlm``.

:func:`wrap_env` returns a :class:`VLMRewardEnv`: after every ``step`` it renders the worlds
(all of them, tiled into one offscreen buffer, see :mod:`.rendering`), scores the frames with the
configured :class:`~rewardlab.vlm_reward.base.FrameScorer`, and returns

    reward = weight * r_vlm + task_weight * r_task

where ``r_vlm`` is ``scale * norm(score) + offset`` of the frame reached (VLM-RM), or its
potential-based shaping ``gamma * Phi(s') - Phi(s)`` (``shaping``; on by default for
progress-like scorers; ``Phi = 0`` after a true termination, kept on truncation). The task's own
success, episode lengths and ``info["episode"]["success"]`` pass through untouched: evaluation
always measures the task's own metric.

Scheduling, so that scoring stalls the simulator as little as it can in a synchronous
``step``: with ``async_scoring``, frames are rendered in chunks and chunk ``k`` is encoded by the
model on a worker thread while chunk ``k + 1`` is rendered (torch releases the GIL); with
``frame_stride`` k > 1 all worlds are rendered and scored together every k-th step (plus, at
every step, the worlds that just reset), and skipped steps hold each world's last score. Linear
interpolation between scored frames needs the next scored frame, so it is used where both
neighbours exist (offline scoring of recorded episodes:
:func:`rewardlab.vlm_reward.evaluation.score_episode`), not online.

What it cannot do: the frame a finished world ended on is gone once the env auto-resets inside
``step``, so the last reward of an episode is that of the world's previous frame (one control
step earlier). Episode sums are reported in ``info["episode"]`` as ``reward/vlm``,
``reward/vlm_score`` (mean raw score per step), ``reward/task`` (weighted, when mixed) and
``reward/task_return`` (the task's own return, always), plus ``perf/vlm_render_ms`` and
``perf/vlm_score_ms`` per step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from rewardlab.core.config import build
from rewardlab.envs.base import BatchedEnv, EnvWrapper
from rewardlab.vlm_reward.base import FrameScorer, make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.prompts import with_task_prompts
from rewardlab.vlm_reward.rendering import EnvFrames
from rewardlab.vlm_reward.shaping import ScoreReward

_CHUNK = 32
"""Frames per render/encode chunk of the pipeline."""


def env_task_name(env: Any) -> str | None:
    """Registered task name of a batched env (``env.task.name``), or ``None``."""
    task = getattr(env, "task", None)
    name = getattr(task, "name", None)
    return name if isinstance(name, str) else None


def resolve_config(cfg: VLMConfig, task: str | None, kind: str = "vlm") -> VLMConfig:
    """``cfg`` with the task's default prompts filled in, checked against the reward kind.

    Raises:
        ValueError: ``kind`` is ``clip`` but ``cfg.scorer`` names another scorer, or no goal
            prompts can be found.
    """
    if kind == "clip" and cfg.scorer != "clip":
        raise ValueError(
            f"vlm.scorer: reward=clip uses the clip scorer, got vlm.scorer={cfg.scorer!r}; "
            "use reward=vlm to train on another scorer"
        )
    if cfg.scorer == "clip":
        return with_task_prompts(cfg, task)
    try:  # other scorers may read the prompts; they need not have any
        return with_task_prompts(cfg, task)
    except ValueError:
        return cfg


def wrap_env(
    env: BatchedEnv, kind: str, cfg: VLMConfig, scorer: FrameScorer | None = None
) -> VLMRewardEnv:
    """Wrap ``env`` so that its reward comes from rendered frames scored by ``cfg``'s model.

    Args:
        env: the batched training env (any backend; tiled rendering needs the MuJoCo one).
        kind: ``clip`` (the VLM-RM CLIP scorer) or ``vlm`` (the scorer ``cfg.scorer`` names).
        cfg: the validated ``TrainConfig.vlm``.
        scorer: an already built scorer to use instead of building one from ``cfg``.

    Raises:
        ValueError: unknown kind, scorer/kind mismatch, no prompts, or a model that cannot load
            (:class:`rewardlab.vlm_reward.models.ModelLoadError` names the ``vlm.*`` key).
    """
    if kind not in ("clip", "vlm"):
        raise ValueError(f"reward: wrap_env takes clip or vlm, got {kind!r}")
    task = env_task_name(env)
    cfg = resolve_config(cfg, task, kind)
    scorer = scorer if scorer is not None else make_scorer(cfg)
    if getattr(scorer, "scores_whole_episodes", False):
        raise ValueError(
            f"vlm.ot_match: {cfg.ot_match!r} scores whole recorded episodes (rewardlab vlm-eval); "
            "training scores one step at a time: use vlm.ot_match=frame"
        )
    return VLMRewardEnv(env, cfg, scorer, task)


class VLMRewardEnv(EnvWrapper):
    """A batched env whose reward is a VLM score of its rendered frames (see the module doc).

    Every other part of the env API is the wrapped env's (``state``, ``success``, ``render``,
    ``describe``, attributes not defined here: :class:`~rewardlab.envs.base.EnvWrapper`); its
    snapshots add the reward's running state.
    """

    def __init__(self, env: BatchedEnv, cfg: VLMConfig, scorer: FrameScorer, task: str | None):
        super().__init__(env)
        self.cfg, self.scorer, self.task_name = cfg, scorer, task
        size = int(cfg.render_size or scorer.image_size)
        self.frames = EnvFrames(env, size, task, zoom=cfg.camera_zoom)
        self.shaping = cfg.shaping_on(bool(scorer.progress_like))
        self.reward = ScoreReward(
            env.num_envs,
            self.shaping,
            cfg.gamma,
            cfg.normalize,
            scale=cfg.scale,
            offset=cfg.offset,
            name="vlm",
        )
        n = env.num_envs
        self._score = torch.zeros(n)
        self._t = 0
        self._ep = {k: torch.zeros(n) for k in ("vlm", "vlm_score", "task", "task_return")}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vlm-score") if cfg.async_scoring else None  # fmt: skip
        self.timing = {"env_s": 0.0, "render_s": 0.0, "score_s": 0.0, "steps": 0, "frames": 0}
        """Cumulative seconds in the wrapped env's step, in rendering and in scoring (the part of
        scoring not hidden behind rendering), steps and frames scored."""
        self._perf_since = dict(self.timing)

    # -- scoring ---------------------------------------------------------------------------------

    def score_worlds(self, ids: list[int] | None = None) -> torch.Tensor:
        """Render and score worlds ``ids`` (all when ``None``) now; ``float32 [n]``."""
        ids = list(range(self.num_envs)) if ids is None else ids
        if not ids:
            return torch.zeros(0)
        out: list[torch.Tensor] = []
        pending = None
        t_render = t_score = 0.0
        for start in range(0, len(ids), _CHUNK):
            t0 = time.perf_counter()
            frames = self.frames(ids[start : start + _CHUNK])
            t_render += time.perf_counter() - t0
            if self._pool is None:
                t0 = time.perf_counter()
                out.append(self.scorer.score(frames))
                t_score += time.perf_counter() - t0
                continue
            if pending is not None:
                t0 = time.perf_counter()
                out.append(pending.result())
                t_score += time.perf_counter() - t0
            pending = self._pool.submit(self.scorer.score, frames)
        if pending is not None:
            t0 = time.perf_counter()
            out.append(pending.result())
            t_score += time.perf_counter() - t0
        self.timing["render_s"] += t_render
        self.timing["score_s"] += t_score
        self.timing["frames"] += len(ids)
        scores = torch.cat(out).float().cpu()
        if scores.shape != (len(ids),) or not torch.isfinite(scores).all():
            raise RuntimeError(
                f"scorer {self.cfg.scorer!r} returned {list(scores.shape)} scores "
                f"(finite: {bool(torch.isfinite(scores).all())}) for {len(ids)} frames; "
                "expected one finite score per frame"
            )
        return scores

    def _due(self, done: torch.Tensor) -> list[int]:
        # All worlds together every k-th step (one render pass and few large model calls; the
        # fixed cost per call makes k staggered small batches ~1.6x dearer per frame on a CPU),
        # plus the worlds that just reset, whose held score would be their last episode's.
        if self._t % self.cfg.frame_stride == 0:
            return list(range(self.num_envs))
        return done.cpu().nonzero().squeeze(-1).tolist()

    # -- BatchedEnv ------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs = self.env.reset(seed=seed)
        self._score = self.score_worlds()
        self.reward.reset(self._score)
        self._t = 0
        for v in self._ep.values():
            v.zero_()
        return obs

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        t0 = time.perf_counter()
        obs, task_reward, terminated, truncated, info = self.env.step(actions)
        self.timing["env_s"] += time.perf_counter() - t0
        self.timing["steps"] += 1
        self._t += 1
        done = (terminated | truncated).cpu()
        ids = self._due(done)
        fresh = self._score.clone()
        if ids:
            fresh[ids] = self.score_worlds(ids)
        # Finished worlds were reset inside env.step: `fresh` is their new start frame; their
        # final frame is gone, so it is taken to score as their previous frame did.
        score_next = torch.where(done, self._score, fresh)
        r_vlm, parts = self.reward.step(
            score_next, terminated.cpu(), truncated.cpu(), score_reset=fresh
        )
        self._score = fresh
        task_r = task_reward.detach().float().cpu()
        total = self.cfg.weight * r_vlm
        if self.cfg.task_weight != 0.0:
            total = total + self.cfg.task_weight * task_r
            self._ep["task"] += self.cfg.task_weight * task_r
        self._ep["vlm"] += self.cfg.weight * r_vlm
        self._ep["vlm_score"] += parts["vlm_score"]
        self._ep["task_return"] += task_r
        log = dict(info.get("log", {}))
        log["reward/vlm"] = float((self.cfg.weight * r_vlm).mean())
        log["reward/vlm_score"] = float(parts["vlm_score"].mean())
        if self.cfg.task_weight != 0.0:
            log["reward/task"] = float((self.cfg.task_weight * task_r).mean())
        info = dict(info)
        info["log"] = log
        if "episode" in info:
            info["episode"] = self._episode_info(info["episode"], done)
        return obs, total.to(self.device), terminated, truncated, info

    def _episode_info(self, episode: dict[str, Any], done: torch.Tensor) -> dict[str, Any]:
        ids = episode["env_ids"].cpu()
        length = episode["length"].float().cpu().clamp(min=1)
        ep = dict(episode)
        ep["return"] = (self._ep["vlm"][ids] + self._ep["task"][ids]).to(episode["return"].device)
        ep["reward/vlm"] = self._ep["vlm"][ids].clone()
        ep["reward/vlm_score"] = self._ep["vlm_score"][ids] / length
        ep["reward/task_return"] = self._ep["task_return"][ids].clone()
        if self.cfg.task_weight != 0.0:
            ep["reward/task"] = self._ep["task"][ids].clone()
        steps = max(self.timing["steps"] - self._perf_since["steps"], 1)
        for key, name in (("render_s", "perf/vlm_render_ms"), ("score_s", "perf/vlm_score_ms")):
            ms = 1e3 * (self.timing[key] - self._perf_since[key]) / steps
            ep[name] = torch.full((len(ids),), ms)
        self._perf_since = dict(self.timing)
        for v in self._ep.values():
            v[ids] = 0.0
        return ep

    def get_state_dict(self) -> dict[str, Any]:
        """The wrapped env's snapshot plus the reward's running state (scores, normalizer,
        potentials, episode sums), so that a resumed run continues exactly."""
        state = self.env.get_state_dict()
        state["vlm_reward"] = {
            "score": self._score.clone(),
            "t": self._t,
            "episode": {k: v.clone() for k, v in self._ep.items()},
            "reward": self.reward.state_dict(),
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        own = state.pop("vlm_reward", None)
        self.env.load_state_dict(state)
        if own is None:  # a snapshot of the bare env: start the reward afresh
            self._score = self.score_worlds()
            self.reward.reset(self._score)
            return
        self._score = own["score"].clone()
        self._t = int(own["t"])
        self._ep = {k: v.clone() for k, v in own["episode"].items()}
        self.reward.load_state_dict(own["reward"])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.frames.close()
        self.env.close()

    def timing_shares(self) -> dict[str, float]:
        """Seconds and shares of wall time in env stepping, rendering and scoring so far."""
        t = self.timing
        inside = t["env_s"] + t["render_s"] + t["score_s"]
        return {**t, "vlm_share_of_step": (t["render_s"] + t["score_s"]) / max(inside, 1e-12)}


class VLMReward:
    """``reward=vlm``: frames scored by the scorer ``vlm.scorer`` names (a
    :class:`rewardlab.reward_kinds.RewardKind`; settings: ``TrainConfig.vlm``)."""

    kind = "vlm"
    argument = None
    config_key = "vlm"

    def apply(self, env: BatchedEnv, argument: str, settings: Mapping[str, Any]) -> VLMRewardEnv:
        """:func:`wrap_env` with ``settings`` validated into a :class:`VLMConfig`.

        Raises:
            rewardlab.core.config.ConfigError: a bad ``vlm.*`` setting.
            ValueError: as :func:`wrap_env`.
        """
        return wrap_env(env, self.kind, build(VLMConfig, settings, "vlm"))


class ClipReward(VLMReward):
    """``reward=clip``: the VLM-RM CLIP score of the frames (settings: ``TrainConfig.vlm``)."""

    kind = "clip"


def describe_config(cfg: VLMConfig) -> dict[str, Any]:
    """The config as a plain dict (for run files and reports)."""
    return dataclasses.asdict(cfg)
