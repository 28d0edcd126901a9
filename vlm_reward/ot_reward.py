"""Optimal-transport rewards from demonstrations (the matching of RAPL, Tian et al. 2023).

A robot trajectory's frames and a demonstration's frames are embedded by a frozen encoder (the
``clip`` scorer's image tower; normalized embeddings) and matched by entropic optimal transport:
with the cosine cost ``C_tj = 1 - x_t . y_j`` and uniform marginals, Sinkhorn (log domain, in
torch, batched) gives the plan ``P``, and frame ``t``'s reward is minus the cost the plan
assigns it, ``r_t = -T sum_j C_tj P_tj`` (``T sum_j P_tj = 1``: a per-frame cost). The
trajectory's total ``sum_t r_t / T`` is minus the OT distance. With several demonstrations the
best-matching one (least OT distance) is used.

The env gives a reward per step, but OT matches whole trajectories; ``vlm.ot_match`` says which:

- ``trajectory``: the plan of the whole episode against each demonstration (RAPL's reward,
  computed after the episode). Offline only -- ``rewardlab vlm-eval`` scores a recorded episode
  in one call; the training wrapper refuses it.
- ``frame`` (default, what training uses): each frame matched alone against all
  demonstration frames: the plan with only the frame's own marginal kept (the demonstration's
  marginal dropped), which is the entropic soft-min of the cost over the demonstration frames,
  ``r = -sum_j C_j softmax(-C / epsilon)_j``. It rewards looking like *some* demonstration
  frame, start frames included: it keeps OT's cost but not its coverage of the demonstration.
  Matching the trajectory so far at every step (prefix OT) is not done: it needs each world's
  history inside the scorer, and against the whole demonstration a good prefix pays for the
  demonstration frames it has not reached yet.

Both are measured side by side in ``benchmarks/results/vlm_demo_rewards.md``. The demonstration
embeddings are data: :func:`save_demo_embeddings` writes an ``.npz`` usable as ``vlm.demos``.

Preference alignment (RAPL, optional: ``vlm.ot_preference_pairs=N``): a linear map of the
frozen encoder's embeddings is trained with Bradley-Terry on OT distances, so that of two
episodes the preferred one is closer to the demonstrations (:func:`finetune_projection`). The
pairs are episodes of the ``vlm.demos`` episode set (successes, partial, failures) labelled by
the task's own return -- a stand-in for the person RAPL asks; RAPL fine-tunes the whole encoder,
here only the map on top of it is learned.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rewardlab.core.files import atomic_write
from rewardlab.vlm_reward.base import check_frames, register_scorer
from rewardlab.vlm_reward.demonstrations import (
    Encoder,
    clip_encoder,
    demo_frame_options,
    demos_path,
    is_episode_set,
    load_demo_frames,
    read_fit,
)

FIT_KIND = "rewardlab-ot-demos"
"""``fit`` entry of a saved demonstration-embeddings file."""


def sinkhorn(
    cost: torch.Tensor,
    epsilon: float,
    iterations: int = 100,
    row_mask: torch.Tensor | None = None,
    col_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Entropic OT plans ``[B, n, m]`` for costs ``[B, n, m]`` with uniform marginals over the
    rows and columns the masks keep (``bool [B, n]`` / ``[B, m]``; all when ``None``); log-domain
    Sinkhorn iterations, so small ``epsilon`` does not underflow. Masked rows/columns get 0.

    Raises:
        ValueError: ``cost`` is not ``[B, n, m]`` or ``epsilon`` <= 0.
    """
    if cost.ndim != 3:
        raise ValueError(f"sinkhorn: cost of shape {list(cost.shape)}, expected [B, n, m]")
    if not epsilon > 0:
        raise ValueError(f"sinkhorn: epsilon {epsilon!r}, expected > 0")
    b, n, m = cost.shape
    c = cost.double()
    rm = torch.ones(b, n, dtype=torch.bool) if row_mask is None else row_mask.bool()
    cm = torch.ones(b, m, dtype=torch.bool) if col_mask is None else col_mask.bool()
    big = -1e30
    log_a = torch.where(rm, -torch.log(rm.sum(1, keepdim=True).clamp(min=1).double()), big)
    log_b = torch.where(cm, -torch.log(cm.sum(1, keepdim=True).clamp(min=1).double()), big)
    f = torch.zeros(b, n, dtype=torch.float64)
    g = torch.zeros(b, m, dtype=torch.float64)
    k = -c / epsilon
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp(k + g[:, None, :] / epsilon, dim=2))
        g = epsilon * (log_b - torch.logsumexp(k + f[:, :, None] / epsilon, dim=1))
    log_p = k + (f[:, :, None] + g[:, None, :]) / epsilon
    plan = torch.where(rm[:, :, None] & cm[:, None, :], log_p.exp(), 0.0)
    return plan.to(cost.dtype)


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between every row of ``x [..., n, D]`` and ``y [..., m, D]``: ``[..., n, m]``."""
    return 1.0 - F.normalize(x.float(), dim=-1) @ F.normalize(y.float(), dim=-1).transpose(-1, -2)


def ot_frame_costs(
    trajectory: torch.Tensor,
    demos: Sequence[torch.Tensor],
    epsilon: float = 0.05,
    iterations: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame transport costs of one trajectory's embeddings ``[T, D]`` against each
    demonstration ``[T_k, D]``, all demonstrations in one batched Sinkhorn.

    Returns:
        ``(costs [K, T], distances [K])``: frame ``t``'s cost ``T sum_j C_tj P_tj`` under the
        plan against demonstration ``k``, and the OT distance ``sum_tj C_tj P_tj``.
    """
    t_len = trajectory.shape[0]
    m = max(d.shape[0] for d in demos)
    y = torch.zeros(len(demos), m, trajectory.shape[1])
    col = torch.zeros(len(demos), m, dtype=torch.bool)
    for i, d in enumerate(demos):
        y[i, : d.shape[0]] = d.float()
        col[i, : d.shape[0]] = True
    cost = cosine_cost(trajectory[None].expand(len(demos), -1, -1), y)
    plan = sinkhorn(cost, epsilon, iterations, col_mask=col)
    per_frame = t_len * (cost * plan).sum(-1)
    return per_frame, (cost * plan).sum((-1, -2))


def soft_min_cost(x: torch.Tensor, demo: torch.Tensor, epsilon: float = 0.05) -> torch.Tensor:
    """Per-frame cost ``[n]`` of embeddings ``x [n, D]`` against the pooled demonstration frames
    ``demo [M, D]``: ``sum_j C_j softmax(-C / epsilon)_j`` (the ``frame`` match, module doc)."""
    c = cosine_cost(x, demo)
    return (c * torch.softmax(-c / epsilon, dim=-1)).sum(-1)


def pad_sequences(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[T_k, D]`` sequences -> zero-padded ``[K, max T, D]`` and a ``bool [K, max T]`` mask."""
    t_max = max(x.shape[0] for x in seqs)
    out = seqs[0].new_zeros(len(seqs), t_max, seqs[0].shape[-1])
    mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
    for i, x in enumerate(seqs):
        out[i, : x.shape[0]] = x
        mask[i, : x.shape[0]] = True
    return out, mask


def ot_distances(
    trajectories: Sequence[torch.Tensor],
    demos: Sequence[torch.Tensor],
    epsilon: float = 0.05,
    iterations: int = 50,
) -> torch.Tensor:
    """OT distances ``[E, K]`` between every trajectory (``[T_e, D]``) and every demonstration
    (``[T_k, D]``), all pairs in one batched Sinkhorn; differentiable in the embeddings."""
    x, xm = pad_sequences(trajectories)
    y, ym = pad_sequences(demos)
    e, k = x.shape[0], y.shape[0]
    xs = x[:, None].expand(e, k, *x.shape[1:]).reshape(e * k, *x.shape[1:])
    ys = y[None].expand(e, k, *y.shape[1:]).reshape(e * k, *y.shape[1:])
    rm = xm[:, None].expand(e, k, -1).reshape(e * k, -1)
    cm = ym[None].expand(e, k, -1).reshape(e * k, -1)
    cost = cosine_cost(xs, ys)
    plan = sinkhorn(cost, epsilon, iterations, row_mask=rm, col_mask=cm)
    return (cost * plan).sum((-1, -2)).reshape(e, k)


def finetune_projection(
    demos: Sequence[torch.Tensor],
    episodes: Sequence[torch.Tensor],
    returns: Sequence[float],
    pairs: int,
    epochs: int = 30,
    lr: float = 0.01,
    epsilon: float = 0.05,
    iterations: int = 30,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """RAPL's preference alignment on a frozen encoder: a linear map ``W`` (``[D, D]``, from the
    identity) of the embeddings, trained so that of two episodes the preferred one is closer to
    the demonstrations in OT distance: ``P(a > b) = sigmoid(d_b - d_a)`` (Bradley-Terry on OT
    distances, ``d`` = distance to the best-matching demonstration), on ``pairs`` random pairs
    of ``episodes`` (embeddings ``[T_e, D]``), the one with the larger ``returns`` preferred.

    RAPL fine-tunes the whole vision encoder on human preferences; here the labels are the
    task's own returns (a stand-in for a person) and only ``W`` is learned.

    Returns:
        ``(W, stats)``: stats has ``pairs``, ``accuracy_before``, ``accuracy_after`` (share of
        the labelled pairs the OT distance orders like the labels) and ``seconds``.

    Raises:
        ValueError: fewer than 2 episodes with different returns.
    """
    import time

    r = torch.as_tensor(list(returns), dtype=torch.float64)
    if len(episodes) != len(r) or len(episodes) < 2 or float(r.max() - r.min()) == 0.0:
        raise ValueError(
            "vlm.ot_preference_pairs: preference pairs need at least 2 episodes with different "
            "returns in vlm.demos"
        )
    # plain copies: embeddings made under torch.inference_mode cannot enter autograd
    episodes = [x.detach().float().clone() for x in episodes]
    demos = [y.detach().float().clone() for y in demos]
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, len(r), (4 * pairs,), generator=gen)
    b = torch.randint(0, len(r), (4 * pairs,), generator=gen)
    keep = (r[a] != r[b]).nonzero().squeeze(-1)[:pairs]
    a, b = a[keep], b[keep]
    label = (r[a] > r[b]).double()  # 1: a preferred
    dim = demos[0].shape[-1]
    w = torch.eye(dim, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)

    def accuracy(d: torch.Tensor) -> float:
        return float(((d[b] > d[a]).double() == label).double().mean())

    def distances() -> torch.Tensor:
        proj_e = [x.float() @ w for x in episodes]
        proj_d = [y.float() @ w for y in demos]
        return ot_distances(proj_e, proj_d, epsilon, iterations).min(-1).values

    t0 = time.perf_counter()
    with torch.no_grad():
        before = accuracy(distances())
    for _ in range(epochs):
        d = distances()
        loss = F.binary_cross_entropy_with_logits((d[b] - d[a]).double(), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = accuracy(distances())
    stats = {
        "pairs": float(len(a)),
        "accuracy_before": before,
        "accuracy_after": after,
        "seconds": time.perf_counter() - t0,
    }
    return w.detach(), stats


def save_demo_embeddings(
    demos: Sequence[torch.Tensor], path: str | Path, projection: torch.Tensor | None = None
) -> Path:
    """Write demonstration embeddings (``[T_k, D]`` each, before any projection) and the
    preference-tuned ``projection`` (``[D, D]``; none: the identity) as an ``.npz`` of arrays,
    atomically."""
    dim = demos[0].shape[-1]
    w = torch.eye(dim) if projection is None else projection.float()
    buf = io.BytesIO()
    np.savez(
        buf,
        fit=np.array(FIT_KIND),
        embeddings=torch.cat([d.float() for d in demos]).numpy(),
        lengths=np.array([d.shape[0] for d in demos], dtype=np.int64),
        projection=w.numpy(),
    )
    return atomic_write(path, buf.getvalue())


def load_demo_embeddings(
    path: str | Path, key: str = "vlm.demos"
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Read what :func:`save_demo_embeddings` wrote (as data): ``(demos, projection)``.

    Raises:
        ValueError: another kind of file, or shapes that do not add up.
    """
    z = read_fit(path, FIT_KIND, key)
    emb, lengths = torch.as_tensor(z["embeddings"]).float(), [int(v) for v in z["lengths"]]
    if emb.ndim != 2 or sum(lengths) != emb.shape[0] or min(lengths, default=0) < 1:
        raise ValueError(
            f"{key}: {path}: embeddings {list(emb.shape)} do not split into lengths {lengths}"
        )
    w = torch.as_tensor(z["projection"]).float()
    if w.shape != (emb.shape[1], emb.shape[1]):
        raise ValueError(f"{key}: {path}: projection {list(w.shape)}, expected [D, D]")
    return list(torch.split(emb, lengths)), w


class OTReward:
    """The ``ot`` frame scorer: a frozen encoder and demonstration embeddings.

    Args:
        encoder: frames -> embeddings (:func:`~.demonstrations.clip_encoder`).
        image_size: the encoder's input side.
        demos: embeddings ``[T_k, D]`` of each demonstration.
        match: ``frame`` or ``trajectory`` (module doc).
        epsilon: entropic regularization.
        iterations: Sinkhorn iterations.
        projection: ``[D, D]`` map applied to every embedding before the cosine cost (the
            preference-tuned ``W`` of :func:`finetune_projection`); none: the identity.
    """

    progress_like = False
    """A similarity to the demonstrations, not a progress estimate."""

    def __init__(
        self,
        encoder: Encoder,
        image_size: int,
        demos: Sequence[torch.Tensor],
        match: str = "frame",
        epsilon: float = 0.05,
        iterations: int = 100,
        projection: torch.Tensor | None = None,
    ):
        if not demos:
            raise ValueError("vlm.demos: no demonstration to match against")
        if match not in ("frame", "trajectory"):
            raise ValueError(f"vlm.ot_match: got {match!r}, expected frame or trajectory")
        self.encoder, self.image_size = encoder, int(image_size)
        self.raw_demos = [d.float() for d in demos]
        """Demonstration embeddings before the projection (what :func:`save_demo_embeddings`
        keeps)."""
        dim = self.raw_demos[0].shape[-1]
        self.projection = torch.eye(dim) if projection is None else projection.float()
        self.demos = [d @ self.projection for d in self.raw_demos]
        self.pooled = torch.cat(self.demos)
        self.match, self.epsilon, self.iterations = match, float(epsilon), int(iterations)
        self.scores_whole_episodes = match == "trajectory"
        """With ``trajectory`` a call to :meth:`score` is one episode's frames in time order (as
        ``rewardlab vlm-eval`` scores); the training wrapper refuses such a scorer."""

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Minus the transport cost of each frame, ``float32 [n]`` (FrameScorer)."""
        frames = check_frames(frames)
        if frames.shape[0] == 0:
            return torch.zeros(0)
        x = self.encoder(frames).float().cpu()
        if x.shape[-1] != self.projection.shape[0]:
            raise ValueError(
                f"vlm.demos: demonstration embeddings have {self.projection.shape[0]} features, "
                f"the encoder gives {x.shape[-1]} (embedded with another vlm.model?)"
            )
        x = x @ self.projection
        if self.match == "frame":
            return -soft_min_cost(x, self.pooled, self.epsilon)
        costs, dist = ot_frame_costs(x, self.demos, self.epsilon, self.iterations)
        return -costs[int(dist.argmin())]


def demos_from_config(
    cfg: Any, encoder: Encoder, image_size: int, log: Any = print
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Demonstration embeddings ``cfg.demos`` names (a saved file, or embedded now) and the
    projection (saved, or preference-tuned now with ``cfg.ot_preference_pairs`` > 0 on every
    episode of the episode set, labelled by the task's own returns; ``None``: the identity).

    Raises:
        ValueError: ``vlm.demos`` unset or unusable (one line naming it).
    """
    path = demos_path(cfg, "ot")
    if not is_episode_set(path):
        return load_demo_embeddings(path)
    draw = demo_frame_options(cfg, image_size)
    demos = load_demo_frames(path, max_episodes=cfg.demo_episodes, **draw)
    with torch.inference_mode():
        embedded = [encoder(f).float().cpu() for f in demos.frames]
    pairs = int(getattr(cfg, "ot_preference_pairs", 0))
    if pairs <= 0:
        return embedded, None
    every = load_demo_frames(path, key="vlm.demos", successes_only=False, **draw)
    with torch.inference_mode():
        episodes = [encoder(f).float().cpu() for f in every.frames]
    w, stats = finetune_projection(embedded, episodes, every.returns, pairs, epsilon=cfg.ot_epsilon)
    if log is not None:
        log(
            f"[vlm-ot] preference-tuned the projection on {int(stats['pairs'])} pairs labelled "
            f"by the task's returns: pair accuracy {stats['accuracy_before']:.2f} -> "
            f"{stats['accuracy_after']:.2f} ({stats['seconds']:.0f} s)"
        )
    return embedded, w


@register_scorer("ot")
def make_ot_reward(cfg: Any) -> OTReward:
    """The ``ot`` scorer: the encoder ``vlm.model`` configures, matched to ``vlm.demos``."""
    demos_path(cfg, "ot")  # checked before the model loads
    encoder, size = clip_encoder(cfg)
    demos, projection = demos_from_config(cfg, encoder, size)
    if not all(math.isfinite(float(d.sum())) for d in demos):
        raise ValueError(f"vlm.demos: {cfg.demos}: the demonstration embeddings are not finite")
    return OTReward(
        encoder, size, demos, cfg.ot_match, cfg.ot_epsilon, cfg.ot_iterations, projection
    )
