"""A trained preference reward ensemble as a ``FrameScorer``, registered as ``preference``
(``vlm.scorer=preference vlm.preference_checkpoint=...``; with ``vlm.preference_online=true``
the online loop of :mod:`.preference_online`).

RL-VLM-F (Wang et al., 2024) asks a vision-language model which of two images better achieves
the goal ("answer 0, 1, or -1 if unsure"), and trains a reward model on those labels with the
Bradley-Terry likelihood ``P(b > a) = sigmoid(r(b) - r(a))``. The reward model, not the VLM,
is then the reward, so the VLM is asked a few thousand questions instead of once per step. The
pieces: :mod:`.preference_model` (loss, networks, ensemble, checkpoints),
:mod:`.preference_data` (pairs, labellers, query selection, frame recording),
:mod:`.preference_training` (fitting the ensemble), this module (the offline scorer),
:mod:`.preference_online` (the online loop) and ``rewardlab vlm-prefs``
(:mod:`rewardlab.vlm_commands`).

What it cannot do: a pixel CNN trained on a few hundred labels generalizes only to frames that
look like its training frames (same camera, same task).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from rewardlab.vlm_reward.base import check_frames, make_scorer, register_scorer
from rewardlab.vlm_reward.judge import judge_from_config
from rewardlab.vlm_reward.preference_model import RewardEnsemble, frames_to_input, load_ensemble
from rewardlab.vlm_reward.preference_online import OnlinePreferenceScorer


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


@register_scorer("preference")
def _make_preference(cfg: Any) -> PreferenceScorer | OnlinePreferenceScorer:
    path = getattr(cfg, "preference_checkpoint", None)
    if getattr(cfg, "preference_online", False):
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
    clip = make_scorer(dataclasses.replace(cfg, scorer="clip"))
    return PreferenceScorer(
        ensemble, cfg.batch_size, encoder=clip.embed_images, image_size=clip.image_size
    )
