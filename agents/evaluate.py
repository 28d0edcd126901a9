"""Evaluate a policy on a batched env: returns, lengths, success rate, and an optional video.

Episodes are counted without favouring short ones: with ``N`` worlds and ``E`` episodes wanted,
world ``w`` contributes its first ``ceil(E / N)`` episodes (the first ``E - (ceil(E/N) - 1) N``
worlds one more than the rest), and evaluation runs until every world has finished its share.
Stopping at the first ``E`` episodes to finish anywhere would over-sample short (often failed)
episodes.

Use an env of its own for evaluation (its own seed, ``num_envs`` and episode stream), never the
training env: :func:`evaluate` resets it.

The video shows what the policy does rather than whichever world came first: a grid of up to
:data:`MAX_VIDEO_TILES` worlds (:func:`video_grid`), all playing at once, each captioned below its
picture -- while it runs, its world and step; when its episode ends, SUCCESS or FAILURE (green or
red, with a border), its return and length -- and held on its last frame until the slowest
tile has finished. Frames come from ``env.render`` or any ``render(world ids)`` callable (the
pipeline passes a faster tiled renderer), cropped to square tiles of a modest size.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch

Policy = Callable[[torch.Tensor], torch.Tensor]

Render = Callable[[list[int]], Any]
"""World ids -> ``uint8 [n, H, W, 3]`` frames (tensor or array), as ``env.render``."""

MAX_VIDEO_TILES = 9
"""Most worlds in an evaluation video (a 3x3 grid): the rendering cost stays modest."""

CAPTION_PX = 32
"""Height of the caption strip under each tile (two lines of text)."""

TILE_PX = {1: 320, 2: 240, 3: 160}
"""Side of a square tile by grid columns: the video is 320 or 480 pixels wide."""

MAX_VIDEO_FPS = 25.0
"""Frames per second of simulated time at most: a faster control rate puts every 2nd (3rd,
...) step in the video, still in real time."""

HOLD_SECONDS = 1.0
"""How long the finished grid (every tile's outcome) stays on screen at the end, and an
episode's outcome caption on a tile that plays several episodes."""


@dataclass(frozen=True)
class VideoGrid:
    """The layout of an evaluation video (:func:`video_grid`)."""

    episodes: tuple[int, ...]
    """Episodes shown per tile, one after another; tile ``i`` shows world ``i``."""
    cols: int
    """Tiles per row."""
    rows: int
    """Rows of tiles."""
    tile: int
    """Side of a square tile in pixels (the caption strip is below it)."""

    @property
    def worlds(self) -> int:
        """Tiles (worlds ``0 .. worlds - 1``)."""
        return len(self.episodes)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of a video frame (multiples of 16, as H.264 wants)."""
        return self.rows * (self.tile + CAPTION_PX), self.cols * self.tile


def video_grid(video_episodes: int, num_envs: int, episodes: int) -> VideoGrid | None:
    """The grid that shows ``video_episodes`` episodes of an evaluation of ``episodes`` episodes
    on ``num_envs`` worlds: one tile per world (at most :data:`MAX_VIDEO_TILES`, and only worlds
    whose episodes are counted), the episodes shared out among them; ``None`` for no video."""
    worlds = min(video_episodes, num_envs, episodes, MAX_VIDEO_TILES)
    if worlds < 1:
        return None
    per = math.ceil(video_episodes / worlds)
    extra = video_episodes - (per - 1) * worlds
    shown = tuple(per if i < extra else per - 1 for i in range(worlds))
    cols = math.ceil(math.sqrt(worlds))
    return VideoGrid(shown, cols, math.ceil(worlds / cols), TILE_PX[cols])


def evaluate(
    policy: Policy,
    env: Any,
    episodes: int,
    deterministic: bool = True,
    video_path: str | Path | None = None,
    video_episodes: int = 1,
    seed: int | None = None,
    render: Render | None = None,
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
        video_path: when given, an mp4 at the env's control rate of ``video_episodes`` episodes
            as a captioned grid of worlds (:func:`video_grid`; see the module docstring).
        video_episodes: episodes in the video.
        seed: passed to ``env.reset``.
        render: the video's frames of world ids; default ``env.render``.

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

    grid = video_grid(video_episodes, n, episodes) if video_path is not None else None
    video = None
    if grid is not None and video_path is not None:
        video = _GridVideo(grid, video_path, _fps(env), render or env.render)
    device = getattr(env, "device", torch.device("cpu"))
    steps, max_steps = 0, (per_world + 1) * int(env.max_episode_steps) + 1
    try:
        with torch.inference_mode():
            obs = env.reset(seed=seed)
            if video is not None:
                video.frame(None)
            while bool((done_count < quota).any()):
                if steps > max_steps:
                    raise RuntimeError(
                        f"evaluation did not finish in {max_steps} steps; does the env truncate?"
                    )
                actions = act(obs.to("cpu", torch.float32)).to(device)
                obs, _, _, _, info = env.step(actions)
                steps += 1
                ep = info.get("episode")
                ended: list[_Outcome] = []
                if ep is not None:
                    for j, w in enumerate(ep["env_ids"].tolist()):
                        ret, length, ok = float(ep["return"][j]), int(ep["length"][j]), bool(ep["success"][j])  # fmt: skip
                        if done_count[w] < quota[w]:
                            results.append((int(done_count[w]), w, ret, length, ok))
                        done_count[w] += 1
                        ended.append(_Outcome(w, ok, ret, length))
                if video is not None:
                    video.frame(ended)
                    if video.finished:
                        video.close()
                        video = None
    finally:
        if video is not None:
            video.close()

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
    if grid is not None:
        out["video"] = str(video_path)
    return out


@dataclass(frozen=True)
class _Outcome:
    world: int
    success: bool
    ret: float
    length: int

    def lines(self) -> tuple[str, str]:
        return (
            "SUCCESS" if self.success else "FAILURE"
        ), f"return {self.ret:.1f}, {self.length} steps"


_GREEN, _RED, _TEXT, _DIM, _STRIP = (70, 200, 110), (235, 80, 70), (235, 235, 235), (150, 150, 150), (24, 24, 24)  # fmt: skip


@dataclass
class _Tile:
    world: int
    episodes: int
    shown: int = 0
    """Episodes of this tile that have ended."""
    step: int = 0
    """Steps of its current episode."""
    picture: np.ndarray | None = None
    """Its last rendered frame (held once its episodes are shown)."""
    last: _Outcome | None = None
    """Its last ended episode."""
    hold: int = 0
    """Frames left to show ``last``'s caption while the next episode plays."""

    @property
    def done(self) -> bool:
        return self.shown >= self.episodes


@dataclass
class _GridVideo:
    """Writes the captioned grid of :class:`VideoGrid`: a frame every ``stride`` env steps (at
    most :data:`MAX_VIDEO_FPS` frames per second of simulated time)."""

    grid: VideoGrid
    path: str | Path
    control_rate: float
    render: Render
    tiles: list[_Tile] = field(default_factory=list)
    writer: Any = None

    def __post_init__(self) -> None:
        self.tiles = [_Tile(w, k) for w, k in enumerate(self.grid.episodes)]
        self.stride = max(1, math.ceil(self.control_rate / MAX_VIDEO_FPS - 1e-9))
        fps = self.control_rate / self.stride
        self.writer = _open_video(self.path, fps)
        self.font = _font(12)
        self.hold_frames = max(1, round(HOLD_SECONDS * fps))
        self.steps = 0
        self._lines: dict[tuple[str, tuple[int, int, int]], np.ndarray] = {}

    @property
    def finished(self) -> bool:
        return all(t.done for t in self.tiles)

    def frame(self, ended: Sequence[_Outcome] | None) -> None:
        """After the reset (``ended`` is ``None``) and after every env step: note the episodes
        that ended (a finished tile keeps its last picture, from before its world reset), and
        every ``stride`` steps render the tiles still playing and write the grid."""
        if ended is not None:
            self.steps += 1
            for t in self.tiles:
                t.step += 0 if t.done else 1
            for outcome in ended:
                if outcome.world < len(self.tiles) and not self.tiles[outcome.world].done:
                    tile = self.tiles[outcome.world]
                    tile.shown, tile.last, tile.step = tile.shown + 1, outcome, 0
                    tile.hold = 0 if tile.done else self.hold_frames
        playing = [t for t in self.tiles if not t.done]
        if self.steps % self.stride and playing:
            return
        if playing:
            pictures = _square(self.render([t.world for t in playing]), self.grid.tile)
            for t, picture in zip(playing, pictures, strict=True):
                t.picture = picture
        self.writer.append_data(self._compose())
        for t in playing:
            t.hold = max(t.hold - 1, 0)
        if not playing:  # the outcomes stay on screen a moment
            final = self._compose()
            for _ in range(self.hold_frames):
                self.writer.append_data(final)

    def _caption(self, t: _Tile) -> tuple[str, tuple[int, int, int], str, tuple[int, int, int]]:
        """(first line, its colour, second line, its colour) under tile ``t``."""
        if t.last is not None and (t.done or t.hold > 0):
            head, detail = t.last.lines()
            if not t.done:
                head = f"{head} (episode {t.shown}/{t.episodes})"
            return head, _GREEN if t.last.success else _RED, detail, _TEXT
        episode = f", episode {t.shown + 1}/{t.episodes}" if t.episodes > 1 else ""
        return f"world {t.world}{episode}", _TEXT, f"step {t.step}", _DIM

    def _line(self, text: str, color: tuple[int, int, int]) -> np.ndarray:
        """A caption line as pixels (cached: most lines repeat from frame to frame)."""
        key = (text, color)
        line = self._lines.get(key)
        if line is None:
            from PIL import Image, ImageDraw  # a dependency of imageio and matplotlib

            image = Image.new("RGB", (self.grid.tile - 6, CAPTION_PX // 2), _STRIP)
            ImageDraw.Draw(image).text((0, 0), text, fill=color, font=self.font)
            line = np.asarray(image)
            if len(self._lines) > 1024:
                self._lines.clear()
            self._lines[key] = line
        return line

    def _compose(self) -> np.ndarray:
        g, side = self.grid, self.grid.tile
        canvas = np.empty((*g.size, 3), np.uint8)
        canvas[:] = _STRIP
        for i, t in enumerate(self.tiles):
            r, c = divmod(i, g.cols)
            top, left = r * (side + CAPTION_PX), c * side
            if t.picture is not None:
                canvas[top : top + side, left : left + side] = t.picture
            if t.done and t.last is not None:  # a border in the outcome's colour
                _border(canvas, top, left, side, _GREEN if t.last.success else _RED, 3)
            else:  # a thin line between tiles
                _border(canvas, top, left, side, _STRIP, 1)
            head, head_color, detail, detail_color = self._caption(t)
            y, x, half = top + side + 1, left + 4, CAPTION_PX // 2
            canvas[y : y + half, x : x + side - 6] = self._line(head, head_color)
            canvas[y + half - 1 : y + 2 * half - 1, x : x + side - 6] = self._line(
                detail, detail_color
            )
        return canvas

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _border(
    canvas: np.ndarray, top: int, left: int, side: int, color: tuple[int, int, int], width: int
) -> None:
    """Paint a ``width``-pixel frame around the square tile at ``(top, left)``."""
    tile = canvas[top : top + side, left : left + side]
    tile[:width], tile[-width:], tile[:, :width], tile[:, -width:] = color, color, color, color


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def _square(frames: Any, side: int) -> np.ndarray:
    """``uint8 [n, H, W, 3]`` frames centre-cropped to squares and resized to ``side`` pixels."""
    x = torch.as_tensor(np.asarray(frames))
    n, h, w, _ = x.shape
    if h == side and w == side:
        return x.numpy()
    crop = min(h, w)
    top, left = (h - crop) // 2, (w - crop) // 2
    x = x[:, top : top + crop, left : left + crop].permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _fps(env: Any) -> float:
    """Frames per second of a video of ``env``: its control rate (30 when unknown)."""
    dt = float(getattr(env, "control_dt", 0.0) or 0.0)
    return 1.0 / dt if dt > 0 else 30.0


VIDEO_QUALITY = 5
"""imageio's quality (0-10) of the mp4s: 5 is x264's CRF 25, near its default, small files
(a 3x3 ant_run grid of 11 s: 0.45 MB, against 1.2 MB at 7) with legible captions."""


def _open_video(path: str | Path, fps: float) -> Any:
    """An imageio mp4 writer (H.264 via imageio-ffmpeg); ``append_data(uint8 [H, W, 3])``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            errno.ENOTDIR, "cannot write a video there: a parent folder is a file", str(path)
        ) from None
    return imageio.get_writer(str(path), fps=fps, codec="libx264", quality=VIDEO_QUALITY)


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``uint8 [H, W, 3]`` frames to an mp4."""
    writer = _open_video(path, fps)
    try:
        for f in frames:
            writer.append_data(np.asarray(f))
    finally:
        writer.close()
    return Path(path)
