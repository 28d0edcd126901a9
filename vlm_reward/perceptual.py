"""Unsupervised perceptual rewards from a few demonstrations (Sermanet et al. 2016).

From the frames of a few successful demonstrations and a frozen pretrained encoder (the ``clip``
scorer's image tower: the shipped tiny CLIP, or any open_clip model from local weights):

1. **Steps.** Each demonstration is cut into ``K`` contiguous steps, either of equal duration
   (``vlm.perceptual_split=equal``) or where the features change (``variance``: the cut that
   minimizes the summed within-step squared deviation of the features, found exactly by dynamic
   programming -- the paper searches splits minimizing the within-segment feature spread
   recursively; the objective is the same, the search exact).
2. **Feature selection.** For step ``i``, each feature dimension ``j`` gets the separation
   score ``|mu+_ij - mu-_ij| / (sigma+_ij + sigma-_ij)`` between the frames of step ``i``
   (``+``) and the frames of every other step (``-``), pooled over the demonstrations; the
   ``M`` best (``vlm.perceptual_features``) are kept. (The paper ranks features by a similar
   between-step-distance over within-step-spread heuristic.)
3. **Per-step models.** A diagonal Gaussian over the selected features of step ``i``'s frames.

A frame's per-step log-likelihood is ``l_i = mean_j(-z_ij^2 / 2 - log sigma_ij)`` (the mean over
the ``M`` features: a tempered likelihood, so that the step posterior is not all-or-nothing).
The score (``vlm.perceptual_combine``) is

- ``progress`` (default): the expected step under the posterior ``softmax(l)``, mapped to
  ``[0, 1]``: ``sum_i p_i (i - 1) / (K - 1)`` -- how far along the demonstrations the frame
  looks;
- ``weighted``: the paper's combination, later steps weighted more:
  ``sum_i 2^(i-1) exp(l_i - max_k l_k) / (2^K - 1)``.

The fit is data: :meth:`PerceptualFit.save` writes an ``.npz`` of arrays (read back with
``allow_pickle=False``), usable as ``vlm.demos`` instead of an episode set (no re-rendering).
Registered as ``perceptual``::

    rewardlab demos record task=arm_reach script=reach episodes=4 out=demos/reach.npz
    rewardlab vlm-eval task=arm_reach seed=1 vlm.scorer=perceptual vlm.demos=demos/reach.npz
    rewardlab train task=arm_reach reward=vlm vlm.scorer=perceptual vlm.demos=demos/reach.npz

What it cannot do: the features are a frozen encoder's; steps that look alike to it are not
told apart, and a task whose goal varies (arm_reach's target) must look alike at the goal in the
reward camera for one set of step models to fit every episode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.core.files import atomic_write
from rewardlab.vlm_reward.base import check_frames, register_scorer
from rewardlab.vlm_reward.config import PERCEPTUAL_COMBINES, PERCEPTUAL_SPLITS
from rewardlab.vlm_reward.demonstrations import (
    Encoder,
    clip_encoder,
    demo_frame_options,
    demos_path,
    is_episode_set,
    load_demo_frames,
    read_fit,
)

SPLITS = PERCEPTUAL_SPLITS
"""Allowed ``VLMConfig.perceptual_split`` values."""
COMBINES = PERCEPTUAL_COMBINES
"""Allowed ``VLMConfig.perceptual_combine`` values."""
FIT_KIND = "rewardlab-perceptual"
"""``fit`` entry of a saved :class:`PerceptualFit`."""


def equal_split(length: int, steps: int) -> np.ndarray:
    """Step index ``[length]`` of each frame for ``steps`` steps of equal duration."""
    return np.minimum((np.arange(length) * steps) // length, steps - 1)


def variance_split(x: np.ndarray, steps: int) -> np.ndarray:
    """Step index ``[T]`` of each frame of ``x [T, D]`` cutting it into ``steps`` contiguous
    segments with the least summed within-segment squared deviation (exact, dynamic
    programming over prefix sums, ``O(steps T^2)``).

    Raises:
        ValueError: fewer frames than steps.
    """
    t_len = x.shape[0]
    if t_len < steps:
        raise ValueError(f"a demonstration of {t_len} frames cannot be cut into {steps} steps")
    x = x.astype(np.float64)
    s1 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
    s2 = np.concatenate([[0.0], np.cumsum((x * x).sum(1))])

    def seg_cost(a: np.ndarray, b: int) -> np.ndarray:  # frames [a, b) for every a
        n = b - a
        d = s1[b] - s1[a]
        return s2[b] - s2[a] - (d * d).sum(-1) / np.maximum(n, 1)

    best = np.full((steps + 1, t_len + 1), np.inf)
    arg = np.zeros((steps + 1, t_len + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for k in range(1, steps + 1):
        for b in range(k, t_len + 1):
            a = np.arange(k - 1, b)
            c = best[k - 1, a] + seg_cost(a, b)
            i = int(np.argmin(c))
            best[k, b], arg[k, b] = c[i], a[i]
    out = np.empty(t_len, dtype=np.int64)
    b = t_len
    for k in range(steps, 0, -1):
        a = int(arg[k, b])
        out[a:b] = k - 1
        b = a
    return out


@dataclass(frozen=True)
class PerceptualFit:
    """Per-step feature selection and Gaussians fitted on demonstrations."""

    features: torch.Tensor
    """``long [K, M]`` selected feature dimensions of each step."""
    mean: torch.Tensor
    """``float32 [K, M]`` mean of the selected features over the step's frames."""
    std: torch.Tensor
    """``float32 [K, M]`` their standard deviation (floored)."""
    separation: torch.Tensor
    """``float32 [K, M]`` separation score of each selected feature (diagnostics)."""
    split: str
    """How the demonstrations were cut: ``equal`` or ``variance``."""
    demos: int
    """Demonstrations fitted on."""

    @property
    def steps(self) -> int:
        """``K``."""
        return int(self.features.shape[0])

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Tempered per-step log-likelihoods ``[n, K]`` of features ``x [n, D]``."""
        sel = x.float()[:, self.features]  # [n, K, M]
        z = (sel - self.mean) / self.std
        return (-0.5 * z * z - self.std.log()).mean(-1)

    def score(self, x: torch.Tensor, combine: str = "progress") -> torch.Tensor:
        """Scores ``[n]`` of features ``x [n, D]`` (module doc)."""
        ll = self.log_likelihood(x)
        k = self.steps
        if combine == "weighted":
            w = 2.0 ** torch.arange(k, dtype=torch.float32)
            p = (ll - ll.max(-1, keepdim=True).values).exp()
            return (p * w).sum(-1) / float(2**k - 1)
        idx = torch.arange(k, dtype=torch.float32) / max(k - 1, 1)
        return (ll.softmax(-1) * idx).sum(-1)

    def save(self, path: str | Path) -> Path:
        """Write the fit as an ``.npz`` of arrays, atomically."""
        import io

        buf = io.BytesIO()
        np.savez(
            buf,
            fit=np.array(FIT_KIND),
            features=self.features.numpy(),
            mean=self.mean.numpy(),
            std=self.std.numpy(),
            separation=self.separation.numpy(),
            split=np.array(self.split),
            demos=np.array(self.demos),
        )
        return atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, key: str = "vlm.demos") -> PerceptualFit:
        """Read what :meth:`save` wrote (as data).

        Raises:
            ValueError: another kind of file, or inconsistent shapes.
        """
        z = read_fit(path, FIT_KIND, key)
        f = torch.as_tensor(z["features"]).long()
        mean, std = torch.as_tensor(z["mean"]).float(), torch.as_tensor(z["std"]).float()
        if f.ndim != 2 or mean.shape != f.shape or std.shape != f.shape or (std <= 0).any():
            raise ValueError(
                f"{key}: {path}: features {list(f.shape)}, mean {list(mean.shape)}, std "
                f"{list(std.shape)}; expected equal [K, M] shapes and std > 0"
            )
        return cls(
            f, mean, std, torch.as_tensor(z["separation"]).float(), str(z["split"]), int(z["demos"])
        )


def fit_perceptual(
    demo_features: Sequence[torch.Tensor],
    steps: int = 8,
    features: int = 32,
    split: str = "variance",
    min_std: float = 1e-3,
) -> PerceptualFit:
    """Cut each demonstration's features ``[T_k, D]`` into ``steps`` steps, select ``features``
    dimensions per step and fit the step Gaussians (module doc).

    Raises:
        ValueError: no demonstration, a bad ``steps``/``features``/``split``, or a
            demonstration shorter than ``steps`` frames.
    """
    if not demo_features:
        raise ValueError("perceptual reward: no demonstration to fit on")
    if split not in SPLITS:
        raise ValueError(f"vlm.perceptual_split: got {split!r}, expected one of {', '.join(SPLITS)}")  # fmt: skip
    dim = int(demo_features[0].shape[-1])
    if steps < 2:
        raise ValueError(f"vlm.perceptual_steps: got {steps!r}, expected >= 2")
    if not 1 <= features <= dim:
        raise ValueError(
            f"vlm.perceptual_features: got {features!r}, expected 1..{dim} (the encoder's width)"
        )
    xs, labels = [], []
    for x in demo_features:
        a = x.detach().float().cpu().numpy()
        if a.shape[0] < steps:
            raise ValueError(
                f"perceptual reward: a demonstration of {a.shape[0]} frames cannot be cut into "
                f"{steps} steps (vlm.perceptual_steps)"
            )
        labels.append(equal_split(len(a), steps) if split == "equal" else variance_split(a, steps))
        xs.append(a)
    x_all, y_all = np.concatenate(xs), np.concatenate(labels)
    sel, mu, sd, sep = [], [], [], []
    for i in range(steps):
        pos, neg = x_all[y_all == i], x_all[y_all != i]
        mp, sp = pos.mean(0), pos.std(0)
        mn, sn = neg.mean(0), neg.std(0)
        score = np.abs(mp - mn) / (sp + sn + 1e-8)
        top = np.argsort(-score, kind="stable")[:features]
        sel.append(top)
        mu.append(mp[top])
        sd.append(np.maximum(sp[top], min_std))
        sep.append(score[top])
    as_t = torch.as_tensor
    return PerceptualFit(
        as_t(np.stack(sel)).long(),
        as_t(np.stack(mu)).float(),
        as_t(np.stack(sd)).float(),
        as_t(np.stack(sep)).float(),
        split,
        len(demo_features),
    )


class PerceptualReward:
    """The ``perceptual`` frame scorer: a frozen encoder and a :class:`PerceptualFit`.

    Args:
        encoder: frames -> features (:func:`~.demonstrations.clip_encoder`).
        image_size: the encoder's input side.
        fit: the fitted step models.
        combine: ``progress`` or ``weighted`` (module doc).
    """

    progress_like = True
    """The ``progress`` score estimates how far along the demonstrations a frame is."""

    def __init__(
        self, encoder: Encoder, image_size: int, fit: PerceptualFit, combine: str = "progress"
    ):
        if combine not in COMBINES:
            raise ValueError(
                f"vlm.perceptual_combine: got {combine!r}, expected one of {', '.join(COMBINES)}"
            )
        self.encoder, self.image_size, self.fit, self.combine = (
            encoder,
            int(image_size),
            fit,
            combine,
        )

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Scores ``float32 [n]`` of ``uint8 [n, H, W, 3]`` frames (FrameScorer)."""
        frames = check_frames(frames)
        if frames.shape[0] == 0:
            return torch.zeros(0)
        x = self.encoder(frames).float().cpu()
        dim = int(self.fit.features.max()) + 1
        if x.shape[-1] < dim:
            raise ValueError(
                f"vlm.demos: the fit selects feature {dim - 1} but the encoder gives "
                f"{x.shape[-1]} features (fitted with another vlm.model?)"
            )
        return self.fit.score(x, self.combine).float()


def fit_from_config(cfg: Any, encoder: Encoder, image_size: int) -> PerceptualFit:
    """The fit ``cfg.demos`` names: a saved fit, or fitted now on its successful episodes.

    Raises:
        ValueError: ``vlm.demos`` unset, or as :func:`load_demo_frames` / :func:`fit_perceptual`.
    """
    path = demos_path(cfg, "perceptual")
    if not is_episode_set(path):
        return PerceptualFit.load(path)
    demos = load_demo_frames(
        path, max_episodes=cfg.demo_episodes, **demo_frame_options(cfg, image_size)
    )
    with torch.inference_mode():
        feats = [encoder(f).float().cpu() for f in demos.frames]
    return fit_perceptual(
        feats, cfg.perceptual_steps, cfg.perceptual_features, cfg.perceptual_split
    )


@register_scorer("perceptual")
def make_perceptual_reward(cfg: Any) -> PerceptualReward:
    """The ``perceptual`` scorer: the encoder ``vlm.model`` configures, fitted on ``vlm.demos``."""
    demos_path(cfg, "perceptual")  # checked before the model loads
    encoder, size = clip_encoder(cfg)
    fit = fit_from_config(cfg, encoder, size)
    if not math.isfinite(float(fit.mean.sum())):
        raise ValueError(f"vlm.demos: {cfg.demos}: the fitted step means are not finite")
    return PerceptualReward(encoder, size, fit, cfg.perceptual_combine)
