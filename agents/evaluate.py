"""Evaluate a policy on a batched env: returns, lengths, success rate, and an optional video.

Episodes are counted without favouring short ones: with ``N`` worlds and ``E`` episodes wanted,
world ``w`` contributes its first ``ceil(E / N)`` episodes (the first ``E - (ceil(E/N) - 1) N``
worlds one more than the rest), and evaluation runs until every world has finished its share.
Stopping at the first ``E`` episodes to finish anywhere would over-sample short (often failed)
episodes.

Use an env of its own for evaluation (its own seed, ``num_envs`` and episode stream), never the
training env: :func:`evaluate` resets it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch

Policy = Callable[[torch.Tensor], torch.Tensor]


def evaluate(
    policy: Policy,
    env: Any,
    episodes: int,
    deterministic: bool = True,
    video_path: str | Path | None = None,
    video_episodes: int = 1,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of ``policy`` on the batched ``env``.

    Args:
        policy: raw observations ``[N, obs_dim]`` -> actions ``[N, action_dim]`` in ``[-1, 1]``
            (e.g. an exported or ``inference_policy()`` module). With ``deterministic=False`` it
            must have a ``sample(obs)`` method drawing from its action distribution (a
            :class:`~rewardlab.agents.policy.Policy` with ``stochastic`` true).
        env: a :class:`~rewardlab.envs.base.BatchedEnv` used for evaluation only (it is reset).
        episodes: episodes to count.
        deterministic: call ``policy(obs)`` (the mean action) rather than ``policy.sample(obs)``.
        video_path: when given, world 0's first ``video_episodes`` episodes are rendered and
            written there as an mp4 at the env's control rate.
        video_episodes: episodes of world 0 in the video.
        seed: passed to ``env.reset``.

    Returns:
        ``{"episodes", "return_mean", "return_std", "length_mean", "success_rate",
        "returns", "lengths", "successes", "video"}`` (lists per episode; ``video`` is the
        path written or ``None``).

    Raises:
        ValueError: ``episodes < 1``, or ``deterministic=False`` with a policy without ``sample``.
    """
    if episodes < 1:
        raise ValueError(f"episodes: got {episodes!r}, expected >= 1")
    act = policy
    if not deterministic:
        act = getattr(policy, "sample", None)
        if act is None or not getattr(policy, "stochastic", True):
            raise ValueError(
                "deterministic=false needs a stochastic policy (with a .sample method); "
                "exported policies are deterministic"
            )
    n = int(env.num_envs)
    per_world = math.ceil(episodes / n)
    extra = episodes - (per_world - 1) * n  # worlds [0, extra) count per_world, the rest one less
    quota = torch.full((n,), per_world - 1, dtype=torch.long)
    quota[:extra] += 1
    done_count = torch.zeros(n, dtype=torch.long)
    results: list[tuple[int, int, float, int, bool]] = []  # (episode index, world, return, len, ok)

    record = video_path is not None and video_episodes > 0
    writer = _open_video(video_path, _fps(env)) if record else None
    video_done = 0
    device = getattr(env, "device", torch.device("cpu"))
    steps, max_steps = 0, (per_world + 1) * int(env.max_episode_steps) + 1
    try:
        with torch.inference_mode():
            obs = env.reset(seed=seed)
            if writer is not None:
                writer.append_data(env.render([0])[0].numpy())
            while bool((done_count < quota).any()):
                if steps > max_steps:
                    raise RuntimeError(
                        f"evaluation did not finish in {max_steps} steps; does the env truncate?"
                    )
                actions = act(obs.to("cpu", torch.float32)).to(device)
                obs, _, _, _, info = env.step(actions)
                steps += 1
                ep = info.get("episode")
                if ep is not None:
                    for j, w in enumerate(ep["env_ids"].tolist()):
                        if done_count[w] < quota[w]:
                            ret, length = float(ep["return"][j]), int(ep["length"][j])
                            results.append(
                                (int(done_count[w]), w, ret, length, bool(ep["success"][j]))
                            )
                        done_count[w] += 1
                        video_done += int(w == 0)
                if writer is not None and video_done < video_episodes:
                    # after world 0 finished, this is the first frame of its next episode
                    writer.append_data(env.render([0])[0].numpy())
    finally:
        if writer is not None:
            writer.close()

    results.sort(key=lambda r: (r[0], r[1]))
    returns = [r[2] for r in results]
    lengths = [r[3] for r in results]
    successes = [r[4] for r in results]
    out: dict[str, Any] = {
        "episodes": len(results),
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "length_mean": float(np.mean(lengths)),
        "success_rate": float(np.mean(successes)),
        "returns": returns,
        "lengths": lengths,
        "successes": successes,
        "video": None,
    }
    if record:
        out["video"] = str(video_path)
    return out


def _fps(env: Any) -> float:
    """Frames per second of a video of ``env``: its control rate (30 when unknown)."""
    dt = float(getattr(env, "control_dt", 0.0) or 0.0)
    return 1.0 / dt if dt > 0 else 30.0


def _open_video(path: str | Path, fps: float) -> Any:
    """An imageio mp4 writer (H.264 via imageio-ffmpeg); ``append_data(uint8 [H, W, 3])``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return imageio.get_writer(str(path), fps=fps, codec="libx264", quality=7)


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``uint8 [H, W, 3]`` frames to an mp4."""
    writer = _open_video(path, fps)
    try:
        for f in frames:
            writer.append_data(np.asarray(f))
    finally:
        writer.close()
    return Path(path)
