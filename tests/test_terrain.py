"""Graded rough terrain (envs/tasks/terrain.py) and go1_velocity_rough's terrain curriculum."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.tasks.go1_velocity import TERRAIN, Go1RoughConfig
from rewardlab.envs.tasks.terrain import TerrainGrid, curriculum_levels

SMALL = TerrainGrid(levels=4, columns=3, tile_size=2.0, border=1.0, max_noise=0.08)


@pytest.mark.unit
def test_levels_grow_rougher_around_one_mean_height() -> None:
    z = SMALL.heights()
    hx, hy = SMALL.half_extent
    assert z.shape == (round(2 * hy / 0.1) + 1, round(2 * hx / 0.1) + 1)
    n, b = 20, 10  # samples per tile side, border samples
    spans = []
    for level in range(SMALL.levels):
        tile = z[b : b + n + 1, b + level * n : b + (level + 1) * n + 1]
        spans.append(tile.max() - tile.min())
        assert abs(tile.mean() - SMALL.base_height) < 0.25 * SMALL.level_noise(level) + 1e-9
        assert tile.max() - tile.min() <= SMALL.level_noise(level) + 1e-9
    assert spans[0] == 0.0 and spans[1] < spans[2] < spans[3]  # level 0 is flat
    assert spans[3] > 0.6 * SMALL.max_noise
    assert (z[:b] == SMALL.base_height).all() and (z[:, :b] == SMALL.base_height).all()  # border
    np.testing.assert_array_equal(z, SMALL.heights())  # part of the model: deterministic


@pytest.mark.unit
def test_the_compiled_height_field_is_the_ground_height_at_reads() -> None:
    """Rays cast on the compiled field land where ``height_at`` says (MuJoCo's row order: y)."""
    spec = mujoco.MjSpec()
    spec.add_hfield(name="ground", file="", size=[1, 1, 1, 0.1], nrow=2, ncol=2, userdata=[0.0] * 4)
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="ground")
    SMALL.apply(spec, "ground")
    m = spec.compile()
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    table = torch.as_tensor(SMALL.heights())
    rng = np.random.default_rng(0)
    hx, hy = SMALL.half_extent
    xy = rng.uniform([-hx + 0.05, -hy + 0.05], [hx - 0.05, hy - 0.05], (200, 2))
    ours = SMALL.height_at(torch.as_tensor(xy), table).numpy()
    geom = np.zeros(1, np.int32)
    for (x, y), h in zip(xy, ours, strict=True):
        dist = mujoco.mj_ray(m, d, np.array([x, y, 2.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, geom)  # fmt: skip
        # MuJoCo triangulates each cell, the lookup is bilinear: equal at the samples, close between
        assert 2.0 - dist == pytest.approx(h, abs=0.25 * SMALL.max_noise)
    grid = torch.as_tensor([[-hx + 1.0 + 0.3 * i, -hy + 1.0 + 0.2 * i] for i in range(5)], dtype=torch.float64)  # fmt: skip
    for (x, y), h in zip(grid.numpy(), SMALL.height_at(grid, table).numpy(), strict=True):
        dist = mujoco.mj_ray(m, d, np.array([x, y, 2.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, geom)  # fmt: skip
        assert 2.0 - dist == pytest.approx(h, abs=1e-6)  # on samples (multiples of 0.1 m)
    with pytest.raises(ValueError, match="no height field 'nope'"):
        SMALL.apply(spec, "nope")
    with pytest.raises(ValueError, match="multiple of resolution"):
        TerrainGrid(tile_size=0.25)


@pytest.mark.unit
def test_curriculum_promotes_far_walkers_demotes_short_ones_and_recycles_the_top() -> None:
    gen = torch.Generator().manual_seed(0)
    level = torch.tensor([3.0, 3.0, 3.0, 0.0, 9.0, 9.0])
    walked = torch.tensor([2.5, 1.0, 0.2, 0.1, 3.0, 3.0])
    asked = torch.tensor([1.0, 1.0, 4.0, 4.0, 1.0, 1.0])
    new = curriculum_levels(level, walked, asked, tile_size=4.0, levels=10, gen=gen)
    assert new[:4].tolist() == [4.0, 3.0, 2.0, 0.0]  # up, stay, down, floor at 0
    assert ((new[4:] >= 0) & (new[4:] < 10)).all()  # passed the top: a random level
    draws = torch.cat([curriculum_levels(torch.full((200,), 9.0), torch.full((200,), 3.0), torch.ones(200), 4.0, 10, gen) for _ in range(2)])  # fmt: skip
    assert len(draws.unique()) >= 8


@pytest.mark.unit
def test_go1_rough_spawns_on_its_level_and_moves_through_the_curriculum() -> None:
    env = make_env(
        "go1_velocity_rough", num_envs=32, nthread=1, cfg=Go1RoughConfig(init_max_level=3)
    )
    env.reset(seed=0)
    task = env.task
    level = task._buffers["level"]
    assert level.max() <= 3 and len(level.unique()) >= 3
    s = env.state()
    hx, hy = TERRAIN.half_extent
    x = s["base_pos"][:, 0].double()
    tile = ((x + hx - TERRAIN.border) / TERRAIN.tile_size).floor()
    assert torch.equal(tile, level.float().double())  # spawned inside a tile of its level
    assert ((s["base_height"] > 0.25) & (s["base_height"] < 0.36)).all(), s["base_height"]
    # a world whose base ended far from its spawn point goes up a level; one that stood still
    # under a moving command goes down (or stays at 0)
    before = level.clone()
    task._buffers["command"][:, :2] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    task._buffers["base_xy"][0] = task._buffers["spawn_xy"][0] + torch.tensor([3.0, 0.0], dtype=torch.float64)  # fmt: skip
    task._buffers["base_xy"][1] = task._buffers["spawn_xy"][1]
    env._reset_worlds(torch.tensor([0, 1]))
    assert level[0] == before[0] + 1
    assert level[1] == max(before[1] - 1, 0)
    assert torch.equal(level[2:], before[2:])
    metrics = task.episode_metrics(torch.tensor([0, 1]))
    assert torch.equal(metrics["charts/terrain_level"], level[:2].float())
    env.close()
    off = make_env("go1_velocity_rough", num_envs=64, nthread=1, cfg=Go1RoughConfig(curriculum=False))  # fmt: skip
    off.reset(seed=1)
    assert off.task._buffers["level"].max() >= 7  # every level, not just the first ones
    off.close()
    with pytest.raises(ValueError, match="init_max_level"):
        Go1RoughConfig(init_max_level=10).validate()


@pytest.mark.unit
def test_go1_rough_resumes_its_levels_exactly() -> None:
    a = make_env("go1_velocity_rough", num_envs=8, nthread=1)
    a.reset(seed=2)
    act = torch.linspace(-0.5, 0.5, 8 * a.action_dim).reshape(8, -1)
    for _ in range(5):
        a.step(act)
    snap = a.get_state_dict()
    b = make_env("go1_velocity_rough", num_envs=8, nthread=1)
    b.reset(seed=99)
    b.load_state_dict(snap)
    for env in (a, b):
        env._reset_worlds(torch.tensor([1, 4]))
    for _ in range(3):
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
        torch.testing.assert_close(oa, ob, rtol=0, atol=0)
    torch.testing.assert_close(a.task._buffers["level"], b.task._buffers["level"])
