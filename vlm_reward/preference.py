"""Preference learning from VLM labels (RL-VLM-F): a Bradley-Terry reward-model ensemble.

RL-VLM-F (Wang et al., 2024) asks a vision-language model which of two images better achieves
the goal ("answer 0, 1, or -1 if unsure"), and trains a reward model on those labels with the
Bradley-Terry likelihood ``P(b > a) = sigmoid(r(b) - r(a))``. The reward model, not the VLM,
is then the reward, so the VLM is asked a few thousand questions instead of once per step.

This module holds the pieces:

- :func:`bradley_terry_loss`: the BT cross-entropy on frames or clips (a clip's reward is the
  sum of its frames' rewards, as in Christiano et al. 2017), unsure labels dropped.
- :class:`FrameRewardNet`: a small CNN on ``64 x 64`` frames (the paper's choice: an image
  reward model), or an MLP over frozen embeddings from any ``encoder`` (e.g. a CLIP image
  tower) when one is given.
- :class:`RewardEnsemble`: ``M`` members with different initializations and data orders; the
  ensemble mean is the reward, the spread across members is the disagreement used to choose
  queries (:func:`select_queries`, PEBBLE's "disagreement" sampling).
- :class:`PreferenceDataset`: frames and labels, saved and loaded atomically (``.pt``).
- :func:`collect_preferences` and :func:`train_ensemble`: query a labeller (the generative
  judge of :mod:`rewardlab.vlm_reward.judge`, or anything with ``compare(frames_a, frames_b)``),
  then fit the ensemble.
- :class:`PreferenceScorer`: a trained ensemble behind the ``FrameScorer`` interface, registered
  as ``preference`` (``vlm.scorer=preference vlm.preference_checkpoint=...``).

What it cannot do (yet): the online loop of the paper (query, retrain and relabel the replay
buffer while the policy trains) is not wired into training; the ensemble is trained offline on
frames recorded beforehand (``rewardlab vlm-prefs`` style) and then used as a fixed reward. A
pixel CNN trained on a few hundred labels generalizes only to frames that look like its
training frames (same camera, same task).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.vlm_reward.base import check_frames, register_scorer
from rewardlab.vlm_reward.prefs_command import PrefsArgs

UNSURE = -1
"""Label of a pair the labeller could not decide (dropped from the loss)."""


# -------------------------------------------------------------------------------------------------
# Loss


def bradley_terry_loss(
    r_a: torch.Tensor, r_b: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Bradley-Terry cross-entropy of preference labels.

    ``P(b preferred) = sigmoid(R_b - R_a)`` where ``R`` is the reward of a frame (``[B]``) or the
    sum over a clip (``[B, T]``). Label 0: ``a`` preferred; 1: ``b`` preferred; 0.5: equally
    good (a soft label); -1 (:data:`UNSURE`): dropped.

    Args:
        r_a: rewards of the first items, ``[B]`` or ``[B, T]``.
        r_b: rewards of the second items, same shape.
        labels: ``[B]``, values in {0, 1, 0.5, -1}.
        reduction: ``mean`` (over kept pairs; 0 when none is kept), ``sum`` or ``none``
            (``[B]``, 0 for dropped pairs).

    Raises:
        ValueError: shapes disagree or a label is not one of the allowed values.
    """
    if r_a.shape != r_b.shape or r_a.shape[:1] != labels.shape:
        raise ValueError(
            f"bradley_terry_loss: r_a {tuple(r_a.shape)}, r_b {tuple(r_b.shape)} and labels "
            f"{tuple(labels.shape)} must agree ([B] or [B, T], labels [B])"
        )
    labels = labels.to(r_a.dtype)
    allowed = (labels == 0) | (labels == 1) | (labels == 0.5) | (labels == UNSURE)
    if not bool(allowed.all()):
        bad = labels[~allowed][:3].tolist()
        raise ValueError(f"labels: got {bad}, expected 0, 1, 0.5 or -1")
    if r_a.ndim == 2:
        r_a, r_b = r_a.sum(1), r_b.sum(1)
    keep = labels != UNSURE
    logit = r_b - r_a
    per_pair = F.binary_cross_entropy_with_logits(
        logit, labels.clamp(min=0.0), reduction="none"
    ) * keep.to(logit.dtype)
    if reduction == "none":
        return per_pair
    if reduction == "sum":
        return per_pair.sum()
    if reduction != "mean":
        raise ValueError(f"reduction: got {reduction!r}, expected mean, sum or none")
    return per_pair.sum() / keep.sum().clamp(min=1)


# -------------------------------------------------------------------------------------------------
# Reward models


def frames_to_input(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``uint8 [..., H, W, 3]`` -> ``float32 [..., 3, size, size]`` in ``[-1, 1]`` (area resize)."""
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.reshape(*lead, 3, size, size)


class FrameRewardNet(nn.Module):
    """Reward of one frame: a small CNN on pixels, or an MLP on frozen embeddings.

    Args:
        image_size: side of the square input the CNN sees (frames are area-resized to it).
        width: channels of the first conv layer (doubled once).
        embed_dim: with an encoder, the embedding size; the net is then an MLP over embeddings
            (``image_size`` is unused).
    """

    def __init__(self, image_size: int = 64, width: int = 16, embed_dim: int | None = None):
        super().__init__()
        self.image_size, self.embed_dim = image_size, embed_dim
        if embed_dim is not None:
            self.net = nn.Sequential(
                nn.Linear(embed_dim, 128),
                nn.ReLU(),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Linear(64, 1),
            )
            return
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * w * 16, 64),
            nn.ReLU(),
            nn.Linear(64, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` pixels (or ``[B, D]`` embeddings) -> ``[B]`` rewards."""
        return self.net(x).squeeze(-1)


class RewardEnsemble(nn.Module):
    """``M`` independently initialized reward nets; the mean is the reward.

    Args:
        members: ensemble size ``M`` (RL-VLM-F and PEBBLE use 3).
        image_size: CNN input side.
        width: CNN width.
        embed_dim: embedding size when frames are encoded by a frozen ``encoder`` first.
        seed: initialization seed (member ``k`` uses ``seed + k``).
    """

    def __init__(
        self,
        members: int = 3,
        image_size: int = 64,
        width: int = 16,
        embed_dim: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if members < 1:
            raise ValueError(f"members: got {members!r}, expected >= 1")
        nets = []
        for k in range(members):
            torch.manual_seed(seed + k)
            nets.append(FrameRewardNet(image_size, width, embed_dim))
        self.members = nn.ModuleList(nets)
        self.hparams = {
            "members": members,
            "image_size": image_size,
            "width": width,
            "embed_dim": embed_dim,
            "seed": seed,
        }
        self.register_buffer("out_mean", torch.zeros(()))
        self.register_buffer("out_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``[B, ...]`` -> per-member rewards ``[M, B]`` (raw, not standardized)."""
        return torch.stack([m(x) for m in self.members])

    def reward(self, x: torch.Tensor) -> torch.Tensor:
        """Ensemble-mean reward ``[B]``, standardized by :meth:`calibrate`'s statistics."""
        return (self(x).mean(0) - self.out_mean) / self.out_std

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Store mean/std of the ensemble-mean reward over ``x`` (BT rewards have no scale or
        offset of their own; this fixes one, so the reward is ~N(0, 1) on the data)."""
        r = self(x).mean(0)
        self.out_mean.fill_(float(r.mean()))
        self.out_std.fill_(max(float(r.std()) if r.numel() > 1 else 1.0, 1e-6))


# -------------------------------------------------------------------------------------------------
# Data


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
        _atomic_save(
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


def _atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    ra, rb = ensemble(_flat(xa)), ensemble(_flat(xb))
    ra, rb = _clip_sum(ra, xa), _clip_sum(rb, xb)
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
            a, b = _resize_uint8(a, store_size), _resize_uint8(b, store_size)
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


def _resize_uint8(frames: torch.Tensor, size: int) -> torch.Tensor:
    if frames.shape[-3:-1] == (size, size):
        return frames
    x = frames_to_input(frames, size)
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)


def _flat(x: torch.Tensor) -> torch.Tensor:
    # [B, T, C, S, S] clips -> [B*T, C, S, S]; frames pass through.
    return x.reshape(-1, *x.shape[2:]) if x.ndim == 5 else x


def _clip_sum(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # per-member [M, B*T] -> [M, B] summed over a clip's frames.
    return r.reshape(r.shape[0], x.shape[0], -1).sum(-1) if x.ndim == 5 else r


# -------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    """What :func:`train_ensemble` reports."""

    loss: float
    """Mean BT loss of the members over the last epoch."""
    accuracy: float
    """Share of decided training pairs the ensemble mean orders like the labels."""
    epochs: int
    pairs: int
    """Decided pairs trained on (unsure ones dropped)."""
    history: list[dict[str, float]] = field(default_factory=list)


def train_ensemble(
    ensemble: RewardEnsemble,
    dataset: PreferenceDataset,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    log: Callable[[str], None] | None = print,
    log_every: int = 10,
) -> TrainResult:
    """Fit every member to the labels with the BT cross-entropy (Adam), then calibrate.

    Members see the pairs in different orders (seed ``seed + k``), as in PEBBLE; unsure pairs
    are dropped. With ``encoder`` (frames ``uint8 [n, H, W, 3]`` -> embeddings ``[n, D]``), the
    frames are encoded once up front and the members are MLPs over the embeddings.

    Raises:
        ValueError: no decided pair in ``dataset``.
    """
    keep = dataset.labels != UNSURE
    if int(keep.sum()) == 0:
        raise ValueError("train_ensemble: every label is unsure (-1); nothing to learn from")
    xa, xb = (
        _prepare(ensemble, dataset.frames_a[keep], encoder),
        _prepare(ensemble, dataset.frames_b[keep], encoder),
    )
    labels = dataset.labels[keep]
    n = int(labels.shape[0])
    opts = [
        torch.optim.Adam(m.parameters(), lr=lr, weight_decay=weight_decay) for m in ensemble.members
    ]
    history: list[dict[str, float]] = []
    ensemble.train()
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        losses = []
        for k, (member, opt) in enumerate(zip(ensemble.members, opts, strict=True)):
            perm = torch.randperm(
                n, generator=torch.Generator().manual_seed(seed + 1000 * k + epoch)
            )
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                ra = _member_reward(member, xa[idx])
                rb = _member_reward(member, xb[idx])
                loss = bradley_terry_loss(ra, rb, labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        row = {"epoch": float(epoch), "loss": sum(losses) / max(len(losses), 1)}
        history.append(row)
        if log is not None and (epoch % log_every == 0 or epoch == epochs):
            el = time.monotonic() - t0
            log(
                f"reward model: epoch {epoch}/{epochs} loss {row['loss']:.4f} "
                f"({el:.1f}s, ETA {el / epoch * (epochs - epoch):.0f}s)"
            )
    ensemble.eval()
    with torch.no_grad():
        ensemble.calibrate(torch.cat([_flat(xa), _flat(xb)]))
        ra = _clip_sum(ensemble(_flat(xa)), xa).mean(0)
        rb = _clip_sum(ensemble(_flat(xb)), xb).mean(0)
        decided = labels != 0.5
        pred = (rb > ra).float()
        acc = (
            float((pred[decided] == labels[decided]).float().mean()) if decided.any() else math.nan
        )
    return TrainResult(history[-1]["loss"], acc, epochs, n, history)


def _member_reward(member: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r = member(_flat(x))
    return r.reshape(x.shape[0], -1) if x.ndim == 5 else r


def _prepare(
    ensemble: RewardEnsemble,
    frames: torch.Tensor,
    encoder: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    if encoder is None:
        return frames_to_input(frames, ensemble.hparams["image_size"])
    lead = frames.shape[:-3]
    with torch.no_grad():
        emb = encoder(frames.reshape(-1, *frames.shape[-3:])).float()
    return emb.reshape(*lead, emb.shape[-1])


# -------------------------------------------------------------------------------------------------
# Checkpoints and the scorer


def save_ensemble(ensemble: RewardEnsemble, path: str | Path, meta: dict[str, Any] | None = None):
    """Write ``{"hparams", "state_dict", "meta"}`` atomically."""
    _atomic_save(
        {
            "kind": "rewardlab-preference-ensemble",
            "hparams": ensemble.hparams,
            "state_dict": ensemble.state_dict(),
            "meta": dict(meta or {}),
        },
        path,
    )


def load_ensemble(path: str | Path) -> RewardEnsemble:
    """Read what :func:`save_ensemble` wrote.

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: the file is not a preference ensemble.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vlm.preference_checkpoint: {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("kind") != "rewardlab-preference-ensemble":
        raise ValueError(f"{path}: not a reward ensemble written by save_ensemble")
    ens = RewardEnsemble(**data["hparams"])
    ens.load_state_dict(data["state_dict"])
    return ens.eval()


class PreferenceScorer:
    """A trained reward ensemble as a ``FrameScorer``: the score is the ensemble-mean reward.

    ``progress_like`` is false by default: a BT reward ranks states, like a CLIP score, and is
    paid per step (RL-VLM-F's use); set ``vlm.shaping=on`` to use it as a potential instead.

    Args:
        ensemble: a trained :class:`RewardEnsemble`.
        batch_size: frames per forward pass.
        encoder: for an ensemble over embeddings (``embed_dim`` set), the same frozen encoder
            it was trained with (frames -> ``[n, D]``), e.g. ``CLIPReward.embed_images``.
        image_size: frame side the encoder wants (with ``encoder``).
    """

    progress_like = False

    def __init__(
        self,
        ensemble: RewardEnsemble,
        batch_size: int = 256,
        encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        image_size: int | None = None,
    ):
        if (ensemble.hparams.get("embed_dim") is not None) != (encoder is not None):
            raise ValueError(
                "PreferenceScorer: an ensemble over embeddings needs its encoder, and a pixel "
                "ensemble takes none"
            )
        self.ensemble = ensemble.eval()
        self.encoder = encoder
        self.image_size = int(image_size or ensemble.hparams["image_size"])
        self.batch_size = batch_size

    def _inputs(self, frames: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            return self.encoder(frames).float().cpu()
        return frames_to_input(frames, self.image_size)

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [n, H, W, 3]`` -> ensemble-mean reward ``float32 [n]``."""
        frames = check_frames(frames).cpu()
        out = [
            self.ensemble.reward(self._inputs(frames[i : i + self.batch_size]))
            for i in range(0, frames.shape[0], self.batch_size)
        ]
        return torch.cat(out).float() if out else torch.zeros(0)

    @torch.inference_mode()
    def uncertainty(self, frames: torch.Tensor) -> torch.Tensor:
        """Std of the members' rewards per frame, ``[n]`` (in calibrated units)."""
        x = self._inputs(check_frames(frames).cpu())
        return (self.ensemble(x) / self.ensemble.out_std).std(0)


class OnlinePreferenceScorer:
    """RL-VLM-F's online loop as a ``FrameScorer``: the reward model improves while the policy
    trains on it.

    Every frame scored goes into a reservoir sample (``buffer_size`` frames, uniform over all
    frames seen). Each time another ``every`` frames have been scored, a round starts:
    ``queries`` pairs are drawn from the reservoir (uniformly in the first round, then by
    ensemble disagreement), labelled by ``labeller``, and the ensemble is trained further on all
    labels so far; with ``folder``, the labels (``prefs.pt``) and the ensemble (``reward.pt``)
    are written atomically after every round, and a new scorer over the same folder continues
    from them. Before the first round the reward is 0 (no labels, no reward; RL-VLM-F explores
    without reward first too). Labelling stops after ``max_queries`` pairs.

    With ``background`` a round runs on a worker thread over a snapshot of the reservoir and
    trains a copy of the ensemble, which replaces the live one when it is done: scoring (and
    so the simulator) never waits for the judge. Without it the round runs inside the
    :meth:`score` call that triggers it. A failed round (server down, ...) is logged and tried
    again ``every`` frames later; ``max_failures`` failures in a row raise.

    Args:
        labeller: e.g. :class:`rewardlab.vlm_reward.judge.VLMJudge`.
        ensemble: the reward model (new or loaded).
        image_size: side of the frames the training wrapper renders (what the labeller sees).
        folder: where labels and ensemble are kept (``None``: in memory only).
        queries: pairs labelled per round.
        every: frames scored between rounds.
        max_queries: total label budget.
        buffer_size: frames kept for querying.
        epochs: training epochs per round.
        background: run rounds on a worker thread.
        max_failures: consecutive failed rounds before the error is raised.
        seed: sampling seed.
        log: progress lines (``None``: silent).
    """

    progress_like = False

    def __init__(
        self,
        labeller: Labeller,
        ensemble: RewardEnsemble,
        image_size: int,
        folder: str | Path | None = None,
        queries: int = 64,
        every: int = 10_000,
        max_queries: int = 2_000,
        buffer_size: int = 512,
        epochs: int = 20,
        background: bool = False,
        max_failures: int = 3,
        seed: int = 0,
        log: Callable[[str], None] | None = print,
    ):
        for name, v in (("queries", queries), ("every", every), ("buffer_size", buffer_size)):
            if v < 1:
                raise ValueError(f"preference {name}: got {v!r}, expected >= 1")
        self.labeller, self.ensemble = labeller, ensemble
        self.image_size = int(image_size)
        self.folder = Path(folder) if folder is not None else None
        self.queries, self.every, self.max_queries = queries, every, max_queries
        self.buffer_size, self.epochs, self.seed, self.log = buffer_size, epochs, seed, log
        self.background, self.max_failures = background, max_failures
        self.buffer: torch.Tensor | None = None
        self.seen = 0
        self.rounds = 0
        self.failures = 0
        self.dataset: PreferenceDataset | None = None
        self.trained = False
        self._gen = torch.Generator().manual_seed(seed)
        self._next_round = every
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="preference") if background else None
        if self.folder is not None and (self.folder / "prefs.pt").is_file():
            self.dataset = PreferenceDataset.load(self.folder / "prefs.pt")
            if (self.folder / "reward.pt").is_file():
                self.ensemble = load_ensemble(self.folder / "reward.pt")
                self.trained = True
            self._log(f"continuing from {len(self.dataset)} labelled pairs in {self.folder}")

    @property
    def labelled(self) -> int:
        """Pairs labelled so far."""
        return 0 if self.dataset is None else len(self.dataset)

    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Ensemble-mean reward ``float32 [n]`` (0 before the first round); may start a round."""
        frames = check_frames(frames).cpu()
        n = int(frames.shape[0])
        if n == 0:
            return torch.zeros(0)
        self._remember(frames)
        self.seen += n
        self._collect_finished()
        if self.seen >= self._next_round and self._pending is None:
            self._next_round = self.seen + self.every
            if self.labelled < self.max_queries and self.buffer is not None:
                if self._pool is None:
                    self._run_round(self.buffer)
                else:
                    self._pending = self._pool.submit(self._run_round, self.buffer.clone())
        with self._lock:
            ensemble, trained = self.ensemble, self.trained
        if not trained:
            return torch.zeros(n)
        with torch.inference_mode():
            size = ensemble.hparams["image_size"]
            return ensemble.reward(frames_to_input(frames, size)).float()

    def update(self) -> None:
        """One round now, in this thread (waits for a background round first)."""
        self.wait()
        if self.buffer is not None:
            self._run_round(self.buffer)

    def wait(self) -> None:
        """Wait for a background round to finish (raises what it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Finish the background round and stop the worker thread."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _collect_finished(self) -> None:
        if self._pending is not None and self._pending.done():
            pending, self._pending = self._pending, None
            pending.result()  # _run_round handles its errors; anything else is a bug: raise

    def _run_round(self, buffer: torch.Tensor) -> None:
        if buffer.shape[0] < 2:
            return
        k = min(self.queries, self.max_queries - self.labelled)
        if k < 1:
            return
        t0 = time.monotonic()
        with self._lock:
            live, trained = self.ensemble, self.trained
            dataset = None if self.dataset is None else PreferenceDataset(
                self.dataset.frames_a, self.dataset.frames_b, self.dataset.labels,
                dict(self.dataset.meta),
            )  # fmt: skip
        model = copy.deepcopy(live) if self._pool is not None else live
        method = "disagreement" if trained and len(model.members) > 1 else "uniform"
        try:
            dataset = collect_preferences(
                self.labeller,
                buffer,
                k,
                dataset,
                model if trained else None,
                method,
                batch=k,
                seed=self.seed + 7919 * self.labelled,
                store_size=model.hparams["image_size"],
                log=None,
            )
        except Exception as e:  # noqa: BLE001 - a failed round must not end a long run
            self.failures += 1
            self._log(
                f"round failed ({self.failures}/{self.max_failures} in a row): "
                f"{type(e).__name__}: {e}; next try after {self.every} more frames"
            )
            if self.failures >= self.max_failures:
                raise
            return
        self.failures = 0
        decided = int((dataset.labels != UNSURE).sum()) > 0
        acc = "no decided pair yet"
        if decided:
            res = train_ensemble(model, dataset, self.epochs, seed=self.seed, log=None)
            acc = f"train accuracy {res.accuracy:.3f}"
        with self._lock:
            self.dataset, self.ensemble = dataset, model
            self.trained = self.trained or decided
            self.rounds += 1
        if self.folder is not None:
            dataset.save(self.folder / "prefs.pt")
            if self.trained:
                save_ensemble(model, self.folder / "reward.pt")
        self._log(
            f"round {self.rounds}: {self.labelled}/{self.max_queries} pairs ({method}), {acc}, "
            f"{time.monotonic() - t0:.1f}s, after {self.seen} frames"
        )

    def _remember(self, frames: torch.Tensor) -> None:
        # Reservoir sampling (Vitter's algorithm R) over every frame ever scored.
        if self.buffer is None:
            self.buffer = frames[: self.buffer_size].clone()
            start = self.buffer.shape[0]
        else:
            start = 0
            if self.buffer.shape[0] < self.buffer_size:
                room = self.buffer_size - self.buffer.shape[0]
                self.buffer = torch.cat([self.buffer, frames[:room]])
                start = min(room, frames.shape[0])
        for i in range(start, frames.shape[0]):
            j = int(torch.randint(0, self.seen + i + 1, (1,), generator=self._gen))
            if j < self.buffer_size:
                self.buffer[j] = frames[i]

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(f"[preference] {line}")


@register_scorer("preference")
def _make_preference(cfg: Any) -> PreferenceScorer | OnlinePreferenceScorer:
    path = getattr(cfg, "preference_checkpoint", None)
    if getattr(cfg, "preference_online", False):
        from rewardlab.vlm_reward.judge import judge_from_config

        judge = judge_from_config(cfg)
        # The reward CNN sees 64x64 frames, or the judge's frames when they are smaller.
        size = min(64, judge.image_size)
        ensemble = load_ensemble(path) if path else RewardEnsemble(3, image_size=size)
        if ensemble.hparams.get("embed_dim") is not None:
            raise ValueError("vlm.preference_online: only pixel ensembles are trained online")
        return OnlinePreferenceScorer(
            judge,
            ensemble,
            image_size=judge.image_size,
            folder=getattr(cfg, "preference_dir", None),
            queries=getattr(cfg, "preference_queries", 64),
            every=getattr(cfg, "preference_every", 10_000),
            max_queries=getattr(cfg, "preference_max_queries", 2_000),
            background=getattr(cfg, "preference_background", True),
        )
    if not path:
        raise ValueError(
            "vlm.preference_checkpoint: required by scorer=preference (a reward ensemble "
            "trained with rewardlab vlm-prefs), or set vlm.preference_online=true"
        )
    ensemble = load_ensemble(path)
    if ensemble.hparams.get("embed_dim") is None:
        return PreferenceScorer(ensemble, batch_size=cfg.batch_size)
    # An ensemble over frozen CLIP image embeddings: the clip model vlm.model names encodes.
    from dataclasses import replace

    from rewardlab.vlm_reward.base import make_scorer

    clip = make_scorer(replace(cfg, scorer="clip"))
    return PreferenceScorer(
        ensemble, cfg.batch_size, encoder=clip.embed_images, image_size=clip.image_size
    )


# -------------------------------------------------------------------------------------------------
# The command: rewardlab vlm-prefs


def record_frames(
    task: str, n: int, size: int, every: int = 4, seed: int = 0, num_envs: int = 8
) -> torch.Tensor:
    """``n`` frames ``uint8 [n, size, size, 3]`` of ``task`` under uniformly random actions,
    drawn like training draws them (the task's reward camera, ``EnvFrames``), so that a reward
    model trained on them sees the same pictures when it scores training frames."""
    from rewardlab.envs import make_env
    from rewardlab.vlm_reward.rendering import EnvFrames

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


def run_prefs(a: PrefsArgs, labeller: Labeller | None = None) -> dict[str, Any]:
    """Carry out ``rewardlab vlm-prefs`` (``labeller``: the judge ``a.vlm`` configures if None).

    Returns:
        The metrics written to ``metrics.json``.
    """
    import json

    from rewardlab.core.config import build
    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.prompts import with_task_prompts

    a.validate()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = with_task_prompts(build(VLMConfig, dict(a.vlm), "vlm"), a.task)
    if labeller is None:
        from rewardlab.vlm_reward.judge import judge_from_config

        labeller = judge_from_config(cfg)
    size = int(getattr(cfg, "judge_image_size", 224))
    pool_file = out / "pool.pt"
    if pool_file.is_file():
        pool = torch.load(pool_file, weights_only=True)
        print(f"[vlm-prefs] {pool.shape[0]} frames from {pool_file}")
    else:
        if a.frames:
            pool = torch.load(a.frames, map_location="cpu", weights_only=True)
            check_frames(pool)
        else:
            print(f"[vlm-prefs] recording {a.pool_size} frames of {a.task} (random actions)")
            pool = record_frames(a.task, a.pool_size, size, a.record_every, a.seed)
        _atomic_save(pool, pool_file)
    prefs_file = out / "prefs.pt"
    ds = PreferenceDataset.load(prefs_file) if prefs_file.is_file() else None
    if ds is not None:
        print(f"[vlm-prefs] continuing from {len(ds)} labelled pairs in {prefs_file}")
    ens = RewardEnsemble(a.members, image_size=a.image_size, seed=a.seed)
    result: TrainResult | None = None
    per_round = math.ceil(a.queries / a.rounds)
    for r in range(a.rounds):
        target = min(a.queries, per_round * (r + 1))
        method = "uniform" if r == 0 else "disagreement"
        while (len(ds) if ds is not None else 0) < target:
            k = min(a.batch, target - (len(ds) if ds is not None else 0))
            seed = a.seed + 7919 * (len(ds) if ds is not None else 0)
            ds = collect_preferences(
                labeller, pool, k, ds, ens if r else None, method, k, seed, a.image_size, log=None
            )
            ds.save(prefs_file)
            unsure = int((ds.labels == UNSURE).sum())
            print(
                f"[vlm-prefs] round {r + 1}/{a.rounds}: {len(ds)}/{a.queries} pairs ({unsure} unsure)"
            )
        assert ds is not None
        result = train_ensemble(ens, ds, epochs=a.epochs, seed=a.seed, log=print)
    assert result is not None and ds is not None
    save_ensemble(ens, out / "reward.pt", meta={"task": a.task, "goal": cfg.goal_prompts[0]})
    metrics = {
        "pairs": len(ds),
        "unsure": int((ds.labels == UNSURE).sum()),
        "train_accuracy": result.accuracy,
        "final_loss": result.loss,
        "judge": dict(getattr(labeller, "stats", {})),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"[vlm-prefs] reward model: train accuracy {result.accuracy:.3f} on {result.pairs} pairs; "
        f"wrote {out / 'reward.pt'}\n[vlm-prefs] train with: rewardlab train task={a.task} "
        f"reward=vlm vlm.scorer=preference vlm.preference_checkpoint={out / 'reward.pt'}"
    )
    return metrics
