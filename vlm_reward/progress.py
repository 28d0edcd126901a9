"""Progress rewards behind the ``FrameScorer`` interface: per-frame progress and pairwise deltas.

Progress models (VLAC, Robo-Dopamine, RoboReward) estimate how far a task has come, in
``[0, 1]``, from frames; pairwise models estimate the progress *difference* between two frames,
which is easier to learn and to check (it must be antisymmetric). Here:

- :class:`PromptProgress` (a *construction*, no training): the image embedding of a CLIP-style
  model projected on the line from the start-state prompt embedding ``s`` to the goal prompt
  embedding ``g``: ``p = clip((x - s).(g - s) / |g - s|^2, 0, 1)``. It is VLM-RM's goal-baseline
  direction read as a progress coordinate; how monotone it is depends entirely on the model.
- :class:`ProgressModel` (a *real learned model*, small): a CNN on ``64 x 64`` frames with a
  sigmoid output, trained by regression on recorded successful episodes with time-normalized
  labels ``t / (T - 1)`` (the label VLAC and Robo-Dopamine start from).
- :class:`PairwiseProgress` (a *real learned model*, small): ``d(f_i, f_j) = tanh(h(f_i, f_j) -
  h(f_j, f_i))``, antisymmetric by construction, trained on pairs from the same episode with
  targets ``(t_j - t_i) / (T - 1)``. As a scorer, a frame's progress is ``d(reference, frame)``
  from a reference frame (the task's start) mapped to ``[0, 1]``.

All three are progress-like (``progress_like = True``), so ``vlm.shaping=auto`` uses them as a
potential (:mod:`rewardlab.vlm_reward.shaping`). Registered as ``progress``:
``vlm.progress_checkpoint`` names a learned model file; without one, the CLIP prompt
interpolation is built from the ``clip`` scorer (``baseline_prompts`` describe the start state,
``goal_prompts`` the goal).

What it cannot do: these learned models are small pixel CNNs trained on one task's frames from
one camera; they learn "looks like late in a successful episode", not a general notion of
progress, and are only as good as the episodes they were trained on (labels from time assume
monotone progress in those episodes). They are not VLAC or Robo-Dopamine, whose multi-billion
parameter VLMs are not reachable from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewardlab.vlm_reward.base import check_frames, make_scorer, register_scorer
from rewardlab.vlm_reward.evaluation import EpisodeSet
from rewardlab.vlm_reward.preference_model import FrameRewardNet, frames_to_input, save_tensors
from rewardlab.vlm_reward.rendering import TiledRenderer

# -------------------------------------------------------------------------------------------------
# Prompt interpolation (a construction over any CLIP-style embedding model)


def interpolation_progress(
    x: torch.Tensor, start: torch.Tensor, goal: torch.Tensor, clip: bool = True
) -> torch.Tensor:
    """Position of embeddings ``x [n, D]`` on the segment ``start -> goal`` (``[D]`` each).

    ``p = (x - s).(g - s) / |g - s|^2``: 0 at the start embedding, 1 at the goal embedding;
    clipped to ``[0, 1]`` unless ``clip=False``. Embeddings are used as given (normalize them
    first for CLIP).

    Raises:
        ValueError: ``start`` and ``goal`` coincide (no direction).
    """
    d = goal - start
    norm2 = float(d @ d)
    if norm2 < 1e-12:
        raise ValueError("start and goal embeddings coincide: progress has no direction")
    p = (x - start) @ d / norm2
    return p.clamp(0.0, 1.0) if clip else p


class PromptProgress:
    """Progress from an embedding model and two sets of prompts (start, goal).

    Args:
        encode_images: ``uint8 [n, H, W, 3] -> [n, D]`` image embeddings.
        encode_texts: ``list[str] -> [m, D]`` text embeddings.
        start_prompts: descriptions of the start state ("the pole hangs down below the cart").
        goal_prompts: descriptions of the goal ("the pole is balanced upright").
        image_size: frame side the encoder wants.

    Embeddings are L2-normalized; each prompt set is averaged (and re-normalized), as VLM-RM
    averages goal and baseline prompts.
    """

    progress_like = True

    def __init__(
        self,
        encode_images: Callable[[torch.Tensor], torch.Tensor],
        encode_texts: Callable[[list[str]], torch.Tensor],
        start_prompts: Sequence[str],
        goal_prompts: Sequence[str],
        image_size: int,
    ):
        if not start_prompts or not goal_prompts:
            raise ValueError("PromptProgress: needs at least one start and one goal prompt")
        self.encode_images, self.image_size = encode_images, int(image_size)
        with torch.inference_mode():
            self.start = _mean_direction(encode_texts(list(start_prompts)))
            self.goal = _mean_direction(encode_texts(list(goal_prompts)))

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Progress in ``[0, 1]`` per frame, ``float32 [n]``."""
        frames = check_frames(frames)
        if frames.shape[0] == 0:
            return torch.zeros(0)
        x = F.normalize(self.encode_images(frames).float().cpu(), dim=-1)
        return interpolation_progress(x, self.start, self.goal).float()


def _mean_direction(e: torch.Tensor) -> torch.Tensor:
    return F.normalize(F.normalize(e.float().cpu(), dim=-1).mean(0), dim=0)


# -------------------------------------------------------------------------------------------------
# Learned models


class ProgressModel(nn.Module):
    """Per-frame progress in ``[0, 1]``: a small CNN (or an MLP head over frozen embeddings)
    with a sigmoid output.

    Args:
        image_size: input side (frames are area-resized to it); with an encoder, the side of the
            frames the encoder wants.
        width: first conv layer's channels.
        embed_dim: set for a head over frozen embeddings (e.g. CLIP image embeddings); the
            encoder is then given with :meth:`set_encoder` (it is not saved with the model).
    """

    progress_like = True

    def __init__(self, image_size: int = 64, width: int = 16, embed_dim: int | None = None):
        super().__init__()
        self.image_size = image_size
        self.hparams = {"image_size": image_size, "width": width, "embed_dim": embed_dim}
        self.net = FrameRewardNet(image_size, width, embed_dim)
        self.encoder: Callable[[torch.Tensor], torch.Tensor] | None = None

    def set_encoder(self, encoder: Callable[[torch.Tensor], torch.Tensor], image_size: int) -> None:
        """The frozen encoder (frames ``uint8 [n, H, W, 3]`` -> ``[n, embed_dim]``) of a head."""
        if self.hparams["embed_dim"] is None:
            raise ValueError("set_encoder: this progress model is a CNN on pixels")
        self.encoder, self.image_size = encoder, int(image_size)

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames -> what :meth:`forward` takes (pixels resized, or frozen embeddings)."""
        if self.hparams["embed_dim"] is None:
            return frames_to_input(frames, self.image_size)
        if self.encoder is None:
            raise RuntimeError("progress head over embeddings: call set_encoder(encoder) first")
        with torch.no_grad():
            return self.encoder(frames).float().cpu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared inputs (``[B, 3, S, S]`` or ``[B, D]``) -> progress logits ``[B]``."""
        return self.net(x)

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [n, H, W, 3]`` -> progress ``float32 [n]`` in ``[0, 1]`` (FrameScorer)."""
        frames = check_frames(frames).cpu()
        if frames.shape[0] == 0:
            return torch.zeros(0)
        self.eval()
        return torch.sigmoid(self(self.inputs(frames))).float()


class PairwiseProgress(nn.Module):
    """Pairwise progress delta ``d(a, b) = tanh(h(a, b) - h(b, a))`` in ``(-1, 1)``.

    ``h`` is an MLP on the concatenated features of a shared CNN encoder, so ``d(a, b) =
    -d(b, a)`` exactly and ``d(a, a) = 0``. As a ``FrameScorer``, ``score(frames)`` is
    ``(1 + d(reference, frame)) / 2`` -- 0.5 at the reference -- after
    :meth:`set_reference` (the task's start frame, the first frame of the first scored batch
    when never set).

    Args:
        image_size: input side.
        width: encoder width.
        feat: encoder feature size.
    """

    progress_like = True

    def __init__(self, image_size: int = 64, width: int = 16, feat: int = 64):
        super().__init__()
        self.image_size = image_size
        self.hparams = {"image_size": image_size, "width": width, "feat": feat}
        enc = FrameRewardNet(image_size, width)
        enc.net[-1] = nn.Linear(64, feat)  # reuse the CNN trunk; feature head instead of scalar
        self.encoder = enc
        self.head = nn.Sequential(nn.Linear(2 * feat, 64), nn.ReLU(), nn.Linear(64, 1))
        self.register_buffer("reference", torch.zeros(0, 3, image_size, image_size))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared inputs ``[B, 3, S, S]`` -> features ``[B, feat]``."""
        return self.encoder.net(x)

    def delta_from_features(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """``d`` from encoder features, ``[B]``."""
        h_ab = self.head(torch.cat([fa, fb], -1)).squeeze(-1)
        h_ba = self.head(torch.cat([fb, fa], -1)).squeeze(-1)
        return torch.tanh(h_ab - h_ba)

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """Prepared inputs ``[B, 3, S, S]`` each -> ``d(a, b)`` ``[B]``."""
        return self.delta_from_features(self.features(xa), self.features(xb))

    @torch.inference_mode()
    def delta(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        """Progress from ``frames_a`` to ``frames_b`` (``uint8 [B, H, W, 3]`` each), ``[B]``."""
        self.eval()
        xa = frames_to_input(check_frames(frames_a).cpu(), self.image_size)
        xb = frames_to_input(check_frames(frames_b).cpu(), self.image_size)
        return self(xa, xb).float()

    def set_reference(self, frame: torch.Tensor) -> None:
        """The frame progress is measured from (``uint8 [H, W, 3]``)."""
        self.reference = frames_to_input(check_frames(frame[None]).cpu(), self.image_size)

    @torch.inference_mode()
    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """``(1 + d(reference, frame)) / 2`` per frame, ``float32 [n]`` in ``(0, 1)``."""
        frames = check_frames(frames).cpu()
        if frames.shape[0] == 0:
            return torch.zeros(0)
        if self.reference.shape[0] == 0:
            self.set_reference(frames[0])
        self.eval()
        x = frames_to_input(frames, self.image_size)
        ref = self.reference.expand(x.shape[0], -1, -1, -1)
        return ((1.0 + self(ref, x)) / 2.0).float()


# -------------------------------------------------------------------------------------------------
# Training on recorded episodes


def time_labels(length: int) -> torch.Tensor:
    """Time-normalized progress labels ``t / (T - 1)`` of an episode of ``length`` frames."""
    if length < 2:
        raise ValueError(f"episode of {length} frame(s): need at least 2 for progress labels")
    return torch.arange(length, dtype=torch.float32) / (length - 1)


def _episode_tensors(
    episodes: Sequence[torch.Tensor],
    size: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, ys, ids = [], [], []
    for k, ep in enumerate(episodes):
        ep = check_frames(ep).cpu()
        xs.append(prepare(ep) if prepare is not None else frames_to_input(ep, size))
        ys.append(time_labels(ep.shape[0]))
        ids.append(torch.full((ep.shape[0],), k))
    return torch.cat(xs), torch.cat(ys), torch.cat(ids)


def train_progress_model(
    episodes: Sequence[torch.Tensor],
    model: ProgressModel | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> ProgressModel:
    """Fit a :class:`ProgressModel` to successful episodes (frames ``uint8 [T, H, W, 3]`` each)
    with labels ``t / (T - 1)`` and binary cross-entropy on the sigmoid output. A head over
    embeddings (``ProgressModel(embed_dim=D)`` with ``set_encoder``) encodes every frame once."""
    torch.manual_seed(seed)
    model = model or ProgressModel()
    x, y, _ = _episode_tensors(episodes, model.image_size, model.inputs)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        _log_epoch(log, "progress model", epoch, epochs, total / x.shape[0], t0)
    return model.eval()


def train_pairwise_progress(
    episodes: Sequence[torch.Tensor],
    model: PairwiseProgress | None = None,
    epochs: int = 20,
    pairs_per_epoch: int = 2048,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> PairwiseProgress:
    """Fit a :class:`PairwiseProgress` on random same-episode frame pairs ``(i, j)`` with
    targets ``(t_j - t_i) / (T - 1)`` (mean squared error); the reference is set to the first
    frame of the first episode."""
    torch.manual_seed(seed)
    model = model or PairwiseProgress()
    x, y, ids = _episode_tensors(episodes, model.image_size)
    starts = torch.tensor([int((ids == k).nonzero()[0]) for k in range(len(episodes))])
    lengths = torch.tensor([int((ids == k).sum()) for k in range(len(episodes))])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        ep = torch.randint(0, len(episodes), (pairs_per_epoch,), generator=gen)
        i = starts[ep] + (torch.rand(pairs_per_epoch, generator=gen) * lengths[ep]).long()
        j = starts[ep] + (torch.rand(pairs_per_epoch, generator=gen) * lengths[ep]).long()
        total = 0.0
        for s in range(0, pairs_per_epoch, batch_size):
            a, b = i[s : s + batch_size], j[s : s + batch_size]
            loss = F.mse_loss(model(x[a], x[b]), y[b] - y[a])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * a.numel()
        _log_epoch(log, "pairwise progress", epoch, epochs, total / pairs_per_epoch, t0)
    model.set_reference(check_frames(episodes[0])[0])
    return model.eval()


def _log_epoch(log: Any, what: str, epoch: int, epochs: int, loss: float, t0: float) -> None:
    if log is None or (epoch % 5 and epoch != epochs):
        return
    el = time.monotonic() - t0
    log(
        f"{what}: epoch {epoch}/{epochs} loss {loss:.4f} "
        f"({el:.1f}s, ETA {el / epoch * (epochs - epoch):.0f}s)"
    )


def train_from_episode_set(
    path: str | Path,
    kind: str = "progress",
    image_size: int = 64,
    epochs: int = 15,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> ProgressModel | PairwiseProgress:
    """Train a progress model on the successful episodes of a recorded ``EpisodeSet`` (the
    ``episodes.npz`` of ``rewardlab vlm-eval``), drawn with the task's reward camera as the
    training wrapper draws them.

    Args:
        path: the ``.npz`` file.
        kind: ``progress`` (:class:`ProgressModel`) or ``pairwise`` (:class:`PairwiseProgress`).
        image_size: frame side of the model.
        epochs: training epochs.
        seed: initialization and sampling seed.
        log: progress lines.

    Raises:
        ValueError: unknown ``kind``, or no episode in the file ends in success.
    """
    if kind not in _KINDS:
        raise ValueError(f"model: got {kind!r}, expected one of {', '.join(_KINDS)}")
    eps = EpisodeSet.load(path)
    ok = [int(i) for i in eps.episode_success.nonzero()[0]]
    if not ok:
        raise ValueError(f"{path}: no episode ends in success; progress is learned from successes")
    renderer = TiledRenderer.for_task(eps.task, image_size)
    try:
        frames = [
            renderer.render_rows({f: v[i, : int(eps.length[i])] for f, v in eps.physics.items()})
            for i in ok
        ]
    finally:
        renderer.close()
    if log is not None:
        log(
            f"[vlm-progress] {len(frames)} successful {eps.task} episodes, {sum(map(len, frames))} frames"
        )
    if kind == "pairwise":
        return train_pairwise_progress(
            frames, PairwiseProgress(image_size), epochs=epochs, seed=seed, log=log
        )
    return train_progress_model(
        frames, ProgressModel(image_size), epochs=epochs, seed=seed, log=log
    )


# -------------------------------------------------------------------------------------------------
# Checkpoints and the registered scorer

_KINDS = {"progress": ProgressModel, "pairwise": PairwiseProgress}


def save_progress_model(model: ProgressModel | PairwiseProgress, path: str | Path) -> None:
    """Write the model (kind, hyper-parameters, weights) atomically."""
    kind = "pairwise" if isinstance(model, PairwiseProgress) else "progress"
    save_tensors(
        {
            "kind": f"rewardlab-{kind}-model",
            "hparams": model.hparams,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_progress_model(path: str | Path) -> ProgressModel | PairwiseProgress:
    """Read what :func:`save_progress_model` wrote.

    Raises:
        FileNotFoundError: no such file (named).
        ValueError: not a progress model file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vlm.progress_checkpoint: {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    kind = str(data.get("kind", "")) if isinstance(data, dict) else ""
    name = kind.removeprefix("rewardlab-").removesuffix("-model")
    if name not in _KINDS:
        raise ValueError(f"{path}: not a progress model written by save_progress_model")
    model = _KINDS[name](**data["hparams"])
    state = data["state_dict"]
    if name == "pairwise":
        model.reference = state["reference"].clone()
    model.load_state_dict(state)
    return model.eval()


@register_scorer("progress")
def _make_progress(cfg: Any) -> Any:
    path = getattr(cfg, "progress_checkpoint", None)
    if path:
        model = load_progress_model(path)
        if model.hparams.get("embed_dim") is not None:
            # A head over frozen CLIP image embeddings: the clip model vlm.model names encodes.
            clip = make_scorer(replace(cfg, scorer="clip"))
            model.set_encoder(clip.embed_images, clip.image_size)
        return model

    if not cfg.baseline_prompts or not cfg.goal_prompts:
        raise ValueError(
            "vlm.baseline_prompts (the start state) and vlm.goal_prompts are needed for "
            "progress by prompt interpolation"
        )
    clip = make_scorer(replace(cfg, scorer="clip"))
    missing = [m for m in ("embed_images", "embed_text") if not hasattr(clip, m)]
    if missing:
        raise ValueError(
            "vlm.scorer=progress without vlm.progress_checkpoint builds CLIP prompt "
            f"interpolation, but the clip scorer has no {', '.join(missing)}"
        )
    return PromptProgress(
        clip.embed_images,
        clip.embed_text,
        cfg.baseline_prompts,
        cfg.goal_prompts,
        clip.image_size,
    )
