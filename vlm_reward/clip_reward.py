"""The VLM-RM CLIP reward (Rocamonde et al. 2023): a goal/baseline-projected CLIP similarity.

With ``x`` the normalized image embedding, ``g`` and ``b`` the means of the normalized text
embeddings of the goal and baseline prompts, and ``d = g - b``::

    P = a * d d^T / |d|^2 + (1 - a) * I
    R(x) = 1 - 1/2 * |(x - g) P|^2

``a = 0`` gives ``1 - |x - g|^2 / 2 = x.g + (1 - |g|^2) / 2``, the cosine similarity to the goal
up to a constant; ``a = 1`` keeps only the component of ``x - g`` along ``d``, so whatever the
baseline prompts share with the goal ("a humanoid robot") stops counting.

Text embeddings are computed once, at construction. Frames are normalized on the model's device
and encoded in batches of ``batch_size`` under ``torch.inference_mode`` in the configured dtype
(bf16 on GPUs that have it); frames not at the model's input size are centre-cropped and
resized (bicubic, antialiased, as open_clip's eval transform).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rewardlab.vlm_reward.base import check_frames, register_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.models import LoadedCLIP, load_clip


def projection(direction: torch.Tensor, alpha: float) -> torch.Tensor:
    """``P = alpha * d d^T / |d|^2 + (1 - alpha) * I`` for a direction ``d [D]``, ``[D, D]``.

    Raises:
        ValueError: ``d`` is zero while ``alpha > 0`` (goal and baseline prompts embed alike).
    """
    d = direction.reshape(-1).double()
    norm2 = float(d @ d)
    eye = torch.eye(d.numel(), dtype=torch.float64, device=d.device)
    if alpha == 0.0:
        return eye.to(direction.dtype)
    if norm2 < 1e-12:
        raise ValueError(
            "vlm.baseline_prompts: the goal and baseline prompts have the same embedding, so the "
            "VLM-RM direction g - b is zero; use different baseline prompts or alpha=0"
        )
    return (alpha * torch.outer(d, d) / norm2 + (1.0 - alpha) * eye).to(direction.dtype)


def vlm_rm_reward(
    x: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor, alpha: float
) -> torch.Tensor:
    """VLM-RM reward of image embeddings ``x [n, D]`` (normalized here) for goal ``g [D]`` and
    baseline ``b [D]`` embeddings (used as given: means of normalized prompt embeddings).

    Returns:
        ``[n]`` rewards ``1 - 1/2 |(x - g) P|^2``.
    """
    x = F.normalize(x.double(), dim=-1)
    g = goal.reshape(-1).double()
    p = projection(g - baseline.reshape(-1).double(), alpha)
    y = (x - g) @ p
    return 1.0 - 0.5 * (y * y).sum(-1)


class CLIPReward:
    """VLM-RM frame scorer over an open_clip model.

    Args:
        clip: the loaded model (:func:`rewardlab.vlm_reward.models.load_clip`).
        goal_prompts: one or more descriptions of the goal.
        baseline_prompts: descriptions of the environment without the goal; none: ``b = 0`` and
            ``alpha`` must be 0 (plain cosine similarity).
        alpha: projection strength in [0, 1].
        batch_size: frames per forward pass.

    Raises:
        ValueError: no goal prompt, or ``alpha > 0`` without baseline prompts.
    """

    progress_like = False
    """A similarity, not a progress estimate: shaping is off by default (``shaping="auto"``)."""

    def __init__(
        self,
        clip: LoadedCLIP,
        goal_prompts: tuple[str, ...] | list[str],
        baseline_prompts: tuple[str, ...] | list[str] = (),
        alpha: float = 0.5,
        batch_size: int = 64,
    ) -> None:
        if not goal_prompts:
            raise ValueError("vlm.goal_prompts: at least one goal prompt is needed")
        if alpha > 0 and not baseline_prompts:
            raise ValueError(
                f"vlm.baseline_prompts: alpha={alpha} projects onto goal - baseline, which needs "
                "baseline prompts; give some or set alpha=0"
            )
        self.clip = clip
        self.image_size = clip.image_size
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        self.goal_prompts, self.baseline_prompts = tuple(goal_prompts), tuple(baseline_prompts)
        self.goal = self.embed_text(self.goal_prompts).mean(0)
        self.baseline = (
            self.embed_text(self.baseline_prompts).mean(0)
            if self.baseline_prompts
            else torch.zeros_like(self.goal)
        )
        self._proj = projection(self.goal - self.baseline, self.alpha).float()
        dev, dt = clip.device, clip.dtype
        self._mean = torch.tensor(clip.mean, device=dev, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(clip.std, device=dev, dtype=torch.float32)[:, None, None]
        self._dtype = dt

    @torch.inference_mode()
    def embed_text(self, prompts: tuple[str, ...] | list[str]) -> torch.Tensor:
        """Normalized text embeddings ``[len(prompts), D]`` float32 on the CPU."""
        tokens = self.clip.tokenizer(list(prompts)).to(self.clip.device)
        emb = self.clip.model.encode_text(tokens).float()
        return F.normalize(emb, dim=-1).cpu()

    @torch.inference_mode()
    def embed_images(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalized image embeddings ``[n, D]`` float32 on the CPU of ``uint8 [n, H, W, 3]``."""
        frames = check_frames(frames)
        out = []
        for start in range(0, frames.shape[0], self.batch_size):
            x = frames[start : start + self.batch_size].to(self.clip.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            x = _fit(x, self.image_size)
            x = ((x - self._mean) / self._std).to(self._dtype)
            emb = self.clip.model.encode_image(x).float()
            out.append(F.normalize(emb, dim=-1).cpu())
        if not out:
            return torch.zeros(0, self.goal.numel())
        return torch.cat(out)

    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """VLM-RM rewards ``float32 [n]`` of ``uint8 [n, H, W, 3]`` frames."""
        x = self.embed_images(frames)
        y = (x - self.goal) @ self._proj
        return (1.0 - 0.5 * (y * y).sum(-1)).float()


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop ``[n, 3, H, W]`` to a square and resize to ``size`` (no-op at that size)."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp_(0.0, 1.0)


@register_scorer("clip")
def make_clip_reward(cfg: VLMConfig) -> CLIPReward:
    """The ``clip`` scorer: :class:`CLIPReward` over the model ``cfg`` names."""
    return CLIPReward(
        load_clip(cfg),
        cfg.goal_prompts,
        cfg.baseline_prompts,
        alpha=cfg.alpha,
        batch_size=cfg.batch_size,
    )
