"""Graded rough terrain for legged tasks: a height field of tiles, one difficulty level per row.

The terrain generator and curriculum of legged_gym / Isaac Lab (``TerrainImporter`` with
``curriculum=True``), for MuJoCo's single shared model: every world of a batch sees the same
height field, and a world's difficulty is *where* it spawns. The field is a grid of
``levels x columns`` square tiles inside a flat border; the tiles of level ``l`` (a row along +x)
carry uniform random bumps of peak-to-peak height ``max_noise * l / (levels - 1)`` (level 0 is
flat), drawn on a ``noise_step`` lattice and interpolated bilinearly, as Isaac Lab's
``HfRandomUniformTerrainCfg`` (``noise_range``, ``downsampled_scale``). Every tile and the border
share one mean height, ``max_noise / 2``, so there are no steps between tiles.

:class:`TerrainGrid` makes the heights (deterministic for its settings, so the trainer, the
renderer and any backend compile the same field), writes them into a scene's height field, gives
tile centres for spawning and the ground height under any point (bilinear, as MuJoCo's collision
sees it). :func:`curriculum_levels` is legged_gym's ``_update_terrain_curriculum``: a world that
walked farther than half a tile moves a level up, one that walked less than half of what its
command asked for moves a level down, and one that passes the top level is sent to a random level.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import torch


@dataclass(frozen=True)
class TerrainGrid:
    """A height field of ``levels x columns`` tiles of graded roughness inside a flat border."""

    levels: int = 10
    """Difficulty levels: rows of tiles along +x, roughness growing from flat (0) to ``max_noise``."""
    columns: int = 8
    """Tiles per level (along +y): independent random draws of the same roughness."""
    tile_size: float = 4.0
    """Side (m) of a square tile."""
    border: float = 10.0
    """Width (m) of the flat border around the tiles: a world that walks off the grid stays on ground."""
    resolution: float = 0.1
    """Distance (m) between height samples."""
    max_noise: float = 0.06
    """Peak-to-peak height (m) of the bumps on the hardest level (Isaac Lab's Go1 rough terrain:
    noise up to 0.06 m)."""
    noise_step: float = 0.2
    """Lattice spacing (m) of the random heights before bilinear interpolation (Isaac Lab's
    ``downsampled_scale``)."""
    seed: int = 0
    """Seed of the random heights (the field is part of the model: the same for every run)."""

    def __post_init__(self) -> None:
        if self.levels < 1 or self.columns < 1:
            raise ValueError(f"levels and columns must be >= 1, got {self.levels}, {self.columns}")
        for name in ("tile_size", "resolution", "noise_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.border < 0 or self.max_noise < 0:
            raise ValueError(f"border and max_noise must be >= 0, got {self.border}, {self.max_noise}")  # fmt: skip
        for name in ("tile_size", "border", "noise_step"):
            k = getattr(self, name) / self.resolution
            if abs(k - round(k)) > 1e-6:
                raise ValueError(f"{name} must be a multiple of resolution {self.resolution}, got {getattr(self, name)}")  # fmt: skip

    # -- geometry -------------------------------------------------------------------------------

    @property
    def half_extent(self) -> tuple[float, float]:
        """Half sizes (m) of the field along x and y (the height field geom sits at the origin)."""
        return (
            0.5 * (self.levels * self.tile_size + 2 * self.border),
            0.5 * (self.columns * self.tile_size + 2 * self.border),
        )

    @property
    def base_height(self) -> float:
        """Height (m) of the flat border and level 0, and the mean height of every tile."""
        return 0.5 * self.max_noise

    def level_noise(self, level: int | torch.Tensor) -> float | torch.Tensor:
        """Peak-to-peak bump height (m) of ``level``."""
        return self.max_noise * level / max(self.levels - 1, 1)

    def heights(self) -> np.ndarray:
        """Ground heights (m) ``[nrow, ncol]``: row ``r`` at ``y = -half_y + r * resolution``,
        column ``c`` at ``x = -half_x + c * resolution`` (MuJoCo's height field order)."""
        hx, hy = self.half_extent
        ncol, nrow = round(2 * hx / self.resolution) + 1, round(2 * hy / self.resolution) + 1
        z = np.full((nrow, ncol), self.base_height)
        rng = np.random.default_rng(self.seed)
        n = round(self.tile_size / self.resolution)  # samples per tile side (plus the shared edge)
        k = round(self.noise_step / self.resolution)
        lattice = np.arange(0, n + 1, k)
        if lattice[-1] != n:
            lattice = np.append(lattice, n)
        fine = np.arange(n + 1)
        b = round(self.border / self.resolution)
        for level in range(self.levels):
            amp = float(self.level_noise(level))
            for col in range(self.columns):
                u = rng.uniform(-0.5, 0.5, (len(lattice), len(lattice)))
                u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 0.0  # tile edges at the mean height
                rows = np.stack([np.interp(fine, lattice, u[:, j]) for j in range(len(lattice))], 1)
                tile = np.stack([np.interp(fine, lattice, rows[i]) for i in range(n + 1)], 0)
                r0, c0 = b + col * n, b + level * n
                z[r0 : r0 + n + 1, c0 : c0 + n + 1] = self.base_height + amp * tile
        return z

    def apply(self, spec: mujoco.MjSpec, hfield: str) -> None:
        """Write the field into ``spec``'s height field ``hfield`` (size, samples, elevations),
        replacing what the scene loaded (e.g. from a PNG file)."""
        h = next((f for f in spec.hfields if f.name == hfield), None)
        if h is None:
            raise ValueError(f"the scene has no height field {hfield!r}")
        z = self.heights()
        # MuJoCo rescales the samples to [0, 1] and multiplies by size[2]: the lowest sample sits
        # at the geom's z, so the geoms of this field move to that height
        low, span = float(z.min()), max(float(z.max() - z.min()), 1e-6)
        hx, hy = self.half_extent
        h.file = ""
        h.nrow, h.ncol = z.shape
        h.size = [hx, hy, span, 0.1]
        h.userdata = ((z - low) / span).ravel().tolist()
        for g in spec.geoms:
            if g.type == mujoco.mjtGeom.mjGEOM_HFIELD and g.hfieldname == hfield:
                g.pos = [g.pos[0], g.pos[1], low]

    def tile_centers(self, level: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
        """World ``(x, y)`` ``[n, 2]`` of the centres of tiles ``(level, column)`` ``[n]``."""
        hx, hy = self.half_extent
        x = -hx + self.border + (level.to(torch.float64) + 0.5) * self.tile_size
        y = -hy + self.border + (column.to(torch.float64) + 0.5) * self.tile_size
        return torch.stack([x, y], -1)

    def height_at(self, xy: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Ground height (m) ``[n]`` under world points ``xy`` ``[n, 2]``, bilinear in ``table``
        (:meth:`heights` as a tensor); points off the field read the border's height."""
        hx, hy = self.half_extent
        nrow, ncol = table.shape
        fx = ((xy[:, 0] + hx) / self.resolution).clamp(0, ncol - 1)
        fy = ((xy[:, 1] + hy) / self.resolution).clamp(0, nrow - 1)
        x0 = fx.floor().long().clamp(max=ncol - 2)
        y0 = fy.floor().long().clamp(max=nrow - 2)
        tx, ty = (fx - x0).to(table.dtype), (fy - y0).to(table.dtype)
        z00, z01 = table[y0, x0], table[y0, x0 + 1]
        z10, z11 = table[y0 + 1, x0], table[y0 + 1, x0 + 1]
        return (1 - ty) * ((1 - tx) * z00 + tx * z01) + ty * ((1 - tx) * z10 + tx * z11)


def curriculum_levels(
    level: torch.Tensor,
    walked: torch.Tensor,
    asked: torch.Tensor,
    tile_size: float,
    levels: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """legged_gym's terrain curriculum for the worlds whose episodes just ended.

    Args:
        level: their current levels ``[n]`` (integers as floats).
        walked: distance (m) each base moved from its spawn point over the episode ``[n]``.
        asked: distance (m) the commands asked for over a full episode ``[n]`` (|cmd_xy| x the
            episode's duration).
        tile_size: side (m) of a tile; walking beyond half of it promotes.
        levels: number of levels.
        gen: draws the level of a world that passed the top one.

    Returns:
        The new levels ``[n]``: +1 if ``walked > tile_size / 2``, else -1 if ``walked < asked / 2``
        (never below 0); past the top level, a uniformly random level.
    """
    up = walked > 0.5 * tile_size
    down = (walked < 0.5 * asked) & ~up
    new = (level + up.to(level.dtype) - down.to(level.dtype)).clamp(min=0)
    over = new >= levels
    if bool(over.any()):
        draw = torch.randint(0, levels, (int(over.sum()),), generator=gen, device=gen.device)
        new[over] = draw.to(new)
    return new


def spawn_clearance(grid: TerrainGrid, level: torch.Tensor) -> torch.Tensor:
    """Height (m) above the tile's mean that a body must start at to clear its bumps ``[n]``."""
    return 0.5 * grid.level_noise(level.to(torch.float64)) + 0.01  # type: ignore[operator]


__all__ = ["TerrainGrid", "curriculum_levels", "spawn_clearance"]
