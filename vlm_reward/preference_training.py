"""Training a preference reward ensemble on labelled pairs (Bradley-Terry, Adam, PEBBLE's
per-member data orders), then calibrating it to ~N(0, 1) on the data."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from rewardlab.vlm_reward.preference_data import PreferenceDataset
from rewardlab.vlm_reward.preference_model import (
    UNSURE,
    RewardEnsemble,
    bradley_terry_loss,
    clip_sum,
    flat_inputs,
    frames_to_input,
)


@dataclass
class EnsembleTrainResult:
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
) -> EnsembleTrainResult:
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
        ensemble.calibrate(torch.cat([flat_inputs(xa), flat_inputs(xb)]))
        ra = clip_sum(ensemble(flat_inputs(xa)), xa).mean(0)
        rb = clip_sum(ensemble(flat_inputs(xb)), xb).mean(0)
        decided = labels != 0.5
        pred = (rb > ra).float()
        acc = (
            float((pred[decided] == labels[decided]).float().mean()) if decided.any() else math.nan
        )
    return EnsembleTrainResult(history[-1]["loss"], acc, epochs, n, history)


def _member_reward(member: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r = member(flat_inputs(x))
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
