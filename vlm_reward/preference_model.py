"""Preference reward models (RL-VLM-F): the Bradley-Terry loss and a reward-net ensemble.

- :func:`bradley_terry_loss`: the BT cross-entropy on frames or clips (a clip's reward is the
  sum of its frames' rewards, as in Christiano et al. 2017), unsure labels dropped.
- :class:`FrameRewardNet`: a small CNN on ``64 x 64`` frames (the paper's choice: an image
  reward model), or an MLP over frozen embeddings from any ``encoder`` (e.g. a CLIP image
  tower) when one is given.
- :class:`RewardEnsemble`: ``M`` members with different initializations; the ensemble mean is
  the reward, the spread across members is the disagreement used to choose queries.
- :func:`save_ensemble` / :func:`load_ensemble`: the ``reward.pt`` file (weights only).

The data (:mod:`.preference_data`), the training (:mod:`.preference_training`) and the scorers
(:mod:`.preference`, :mod:`.preference_online`) build on this module.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.core.files import atomic_write

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


def flat_inputs(x: torch.Tensor) -> torch.Tensor:
    """Model inputs of clips ``[B, T, C, S, S]`` as frames ``[B*T, C, S, S]``; frames pass through."""
    return x.reshape(-1, *x.shape[2:]) if x.ndim == 5 else x


def clip_sum(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-member rewards ``[M, B*T]`` of :func:`flat_inputs` (x) summed per clip: ``[M, B]``."""
    return r.reshape(r.shape[0], x.shape[0], -1).sum(-1) if x.ndim == 5 else r


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``uint8 [..., H, W, 3]`` area-resized to ``uint8 [..., size, size, 3]``."""
    if frames.shape[-3:-1] == (size, size):
        return frames
    x = frames_to_input(frames, size)
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1)


def save_tensors(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`rewardlab.core.files.atomic_write`):
    a crash never leaves half a file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, buf.getvalue())


# -------------------------------------------------------------------------------------------------
# Checkpoints


def save_ensemble(ensemble: RewardEnsemble, path: str | Path, meta: dict[str, Any] | None = None):
    """Write ``{"hparams", "state_dict", "meta"}`` atomically."""
    save_tensors(
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
