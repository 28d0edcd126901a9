"""Preference data (RL-VLM-F): labelled pairs of frames, labellers, and which pairs to ask about.

- :class:`PreferenceDataset`: frames and labels, saved and loaded atomically (``.pt``).
- :class:`Labeller`: anything with ``compare(frames_a, frames_b)`` (the generative judge of
  :mod:`rewardlab.vlm_reward.judge`).
- :func:`select_queries` (uniform, or PEBBLE's ensemble "disagreement") and
  :func:`collect_preferences` (ask a labeller, append to a dataset).
- :func:`record_frames`: frames of a task under random actions, rendered as training renders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from rewardlab.envs import make_env
from rewardlab.vlm_reward.preference_model import (
    UNSURE,
    RewardEnsemble,
    clip_sum,
    flat_inputs,
    frames_to_input,
    resize_frames,
    save_tensors,
)
from rewardlab.vlm_reward.rendering import EnvFrames


@dataclass
class PreferenceDataset:
    """Pairs of frames (or clips) with preference labels.

    ``frames_a``/``frames_b`` are ``uint8 [B, H, W, 3]`` (frames) or ``[B, T, H, W, 3]`` (clips),
    ``labels`` ``[B]`` float32 in {0, 1, 0.5, -1}. Frames are stored at the reward model's input
    size to keep the file small.
    """

    frames_a: torch.Tensor
    frames_b: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.frames_a.shape != self.frames_b.shape:
            raise ValueError(
                f"frames_a {tuple(self.frames_a.shape)} and frames_b "
                f"{tuple(self.frames_b.shape)} differ in shape"
            )
        if self.frames_a.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.frames_a.shape[0]} pairs but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def empty(cls, frame_shape: Sequence[int]) -> PreferenceDataset:
        """No pairs yet; ``frame_shape`` is one item's shape (``[H, W, 3]`` or ``[T, H, W, 3]``)."""
        z = torch.zeros((0, *frame_shape), dtype=torch.uint8)
        return cls(z, z.clone(), torch.zeros(0))

    def extend(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> None:
        """Append pairs (shapes as the stored ones)."""
        self.frames_a = torch.cat([self.frames_a, a.to(torch.uint8).cpu()])
        self.frames_b = torch.cat([self.frames_b, b.to(torch.uint8).cpu()])
        self.labels = torch.cat([self.labels, labels.float().cpu()])

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file, then rename), so a crash never leaves half a file."""
        save_tensors(
            {
                "frames_a": self.frames_a,
                "frames_b": self.frames_b,
                "labels": self.labels,
                "meta": self.meta,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> PreferenceDataset:
        """Read what :meth:`save` wrote.

        Raises:
            ValueError: the file is not a preference dataset (names the missing key).
        """
        data = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("frames_a", "frames_b", "labels"):
            if key not in data:
                raise ValueError(f"{path}: not a preference dataset (no {key!r})")
        return cls(data["frames_a"], data["frames_b"], data["labels"], dict(data.get("meta", {})))


# -------------------------------------------------------------------------------------------------
# Labelling and query selection


class Labeller(Protocol):
    """Anything that answers preference questions about pairs of frames.

    ``compare(frames_a, frames_b)`` takes ``uint8 [B, H, W, 3]`` (or clips ``[B, T, H, W, 3]``)
    and returns ``[B]`` labels: 0 (a better), 1 (b better), -1 (unsure).
    """

    def compare(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor: ...


@torch.no_grad()
def disagreement(ensemble: RewardEnsemble, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    """Std over members of ``P(b > a)``, ``[B]`` (inputs already prepared for the nets)."""
    ra, rb = ensemble(flat_inputs(xa)), ensemble(flat_inputs(xb))
    ra, rb = clip_sum(ra, xa), clip_sum(rb, xb)
    return torch.sigmoid(rb - ra).std(0) if ra.shape[0] > 1 else torch.zeros(ra.shape[1])


def select_queries(
    ensemble: RewardEnsemble | None,
    pool: torch.Tensor,
    k: int,
    method: str = "uniform",
    oversample: int = 4,
    generator: torch.Generator | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose ``k`` pairs of indices into ``pool`` to ask the labeller about.

    Args:
        ensemble: the current reward model (needed for ``disagreement``).
        pool: candidate frames/clips ``uint8 [P, ...]``.
        k: pairs wanted.
        method: ``uniform`` (random pairs) or ``disagreement`` (draw ``oversample * k`` random
            pairs, keep the ``k`` the ensemble members disagree on most).
        oversample: candidate factor of ``disagreement``.
        generator: random source.
        prepare: frames -> model inputs (default: resize to the ensemble's input size).

    Returns:
        ``(idx_a [k], idx_b [k])`` with ``idx_a != idx_b``.
    """
    if method not in ("uniform", "disagreement"):
        raise ValueError(f"query selection: got {method!r}, expected uniform or disagreement")
    n = int(pool.shape[0])
    if n < 2:
        raise ValueError(f"select_queries: need at least 2 frames in the pool, got {n}")
    m = k if method == "uniform" else k * max(oversample, 1)
    ia = torch.randint(0, n, (m,), generator=generator)
    ib = (ia + torch.randint(1, n, (m,), generator=generator)) % n
    if method == "uniform" or ensemble is None:
        return ia[:k], ib[:k]
    prep = prepare or (lambda f: frames_to_input(f, ensemble.hparams["image_size"]))
    score = disagreement(ensemble, prep(pool[ia]), prep(pool[ib]))
    top = torch.topk(score, k).indices
    return ia[top], ib[top]


def collect_preferences(
    labeller: Labeller,
    pool: torch.Tensor,
    num_queries: int,
    dataset: PreferenceDataset | None = None,
    ensemble: RewardEnsemble | None = None,
    method: str = "uniform",
    batch: int = 16,
    seed: int = 0,
    store_size: int | None = 64,
    log: Callable[[str], None] | None = print,
) -> PreferenceDataset:
    """Ask ``labeller`` about ``num_queries`` pairs drawn from ``pool``; append to ``dataset``.

    Args:
        labeller: e.g. :class:`rewardlab.vlm_reward.judge.VLMJudge`.
        pool: frames ``uint8 [P, H, W, 3]`` (or clips ``[P, T, H, W, 3]``) at full resolution:
            the labeller sees these.
        num_queries: pairs to label.
        dataset: appended to (and returned); a new one when ``None``.
        ensemble: needed for ``method="disagreement"``.
        method: see :func:`select_queries`.
        batch: pairs per labeller call (the judge runs them concurrently).
        seed: pair sampling seed.
        store_size: frames are stored resized to this side (``None``: as given).
        log: progress lines (``None``: silent).
    """
    gen = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    done = 0
    while done < num_queries:
        k = min(batch, num_queries - done)
        ia, ib = select_queries(ensemble, pool, k, method, generator=gen)
        a, b = pool[ia], pool[ib]
        labels = labeller.compare(a, b).float()
        if store_size is not None:
            a, b = resize_frames(a, store_size), resize_frames(b, store_size)
        if dataset is None:
            dataset = PreferenceDataset.empty(a.shape[1:])
        dataset.extend(a, b, labels)
        done += k
        if log is not None:
            rate = done / max(time.monotonic() - t0, 1e-9)
            unsure = int((dataset.labels == UNSURE).sum())
            log(
                f"preferences: {done}/{num_queries} labelled ({unsure} unsure) "
                f"{rate:.1f} pairs/s, ETA {(num_queries - done) / max(rate, 1e-9):.0f}s"
            )
    assert dataset is not None
    return dataset


# -------------------------------------------------------------------------------------------------
# Frames to label


def record_frames(
    task: str, n: int, size: int, every: int = 4, seed: int = 0, num_envs: int = 8
) -> torch.Tensor:
    """``n`` frames ``uint8 [n, size, size, 3]`` of ``task`` under uniformly random actions,
    drawn like training draws them (the task's reward camera, ``EnvFrames``), so that a reward
    model trained on them sees the same pictures when it scores training frames."""
    env = make_env(task, num_envs=num_envs, seed=seed)
    frames_of = EnvFrames(env, size, task)
    try:
        env.reset(seed=seed)
        gen = torch.Generator().manual_seed(seed)
        frames: list[torch.Tensor] = []
        step = 0
        while sum(f.shape[0] for f in frames) < n:
            a = torch.rand(env.num_envs, env.action_dim, generator=gen) * 2 - 1
            env.step(a.to(env.device))
            step += 1
            if step % every == 0:
                frames.append(frames_of())
        return torch.cat(frames)[:n]
    finally:
        frames_of.close()
        env.close()
