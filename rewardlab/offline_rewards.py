"""Rewards of recorded episodes for offline RL (``iql.reward=...``) that need the layers above
the agents: registered into :data:`rewardlab.agents.iql.REWARD_SOURCES` on import (the training
pipeline imports this module).

``preference`` (RL-VLM-F's offline variant): a reward ensemble trained by ``rewardlab vlm-prefs``
(``iql.reward_model=OUT/reward.pt``) scores the frame of every step -- the episode's recorded
frames (bags), or frames redrawn from its physics rows with the task's reward camera, as
``vlm-eval`` draws them -- and that score is the reward of the state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardlab.agents.iql import register_reward_source
from rewardlab.envs.demos import Episodes


def preference_rewards(eps: Episodes, model: str) -> np.ndarray:
    """``[E, T]`` float32: the ensemble-mean reward of each step's frame (padding repeats the
    last valid step's).

    Args:
        eps: the episodes (with frames, or with ``qpos`` physics rows to redraw them).
        model: a ``reward.pt`` written by ``rewardlab vlm-prefs``.

    Raises:
        ValueError: no such model file, an ensemble over embeddings (it needs its encoder), or
            episodes with neither frames nor physics rows (one line).
    """
    import torch

    from rewardlab.vlm_reward.evaluation import score_episode
    from rewardlab.vlm_reward.preference import PreferenceScorer
    from rewardlab.vlm_reward.preference_model import load_ensemble
    from rewardlab.vlm_reward.rendering import TiledRenderer

    path = Path(model)
    if not path.is_file():
        raise ValueError(
            f"iql.reward_model: {model!r} is not a file (expected the reward.pt of rewardlab "
            "vlm-prefs)"
        )
    ensemble = load_ensemble(path)
    if ensemble.hparams.get("embed_dim") is not None:
        raise ValueError(
            f"iql.reward_model: {model} is an ensemble over CLIP embeddings; offline relabelling "
            "takes pixel ensembles (vlm-prefs' default)"
        )
    scorer = PreferenceScorer(ensemble)
    out = np.zeros(eps.success.shape, np.float32)
    if eps.frames is not None:
        for e, n in enumerate(eps.length):
            out[e, :n] = scorer.score(torch.from_numpy(eps.frames[e, :n])).numpy()
    else:
        if "qpos" not in eps.physics:
            raise ValueError(
                "iql.reward=preference: the episodes have neither frames nor physics rows to "
                "redraw them (record them in simulation, or from bags with a camera topic)"
            )
        renderer = TiledRenderer.for_task(eps.task, scorer.image_size)
        try:
            for e, n in enumerate(eps.length):
                out[e, :n] = score_episode(scorer, eps, e, renderer=renderer)
        finally:
            renderer.close()
    for e, n in enumerate(eps.length):
        out[e, n:] = out[e, n - 1]
    return out


register_reward_source("preference", preference_rewards)
