"""IsaacGymEnvs and Text2Reward names shared by a family of tasks (robots with a free torso).

A task declares its own ``eureka_names`` and ``text2reward_attrs``
(:mod:`rewardlab.envs.tasks.knowledge`); the locomotion tasks (ant, humanoid) share the names of
IsaacGymEnvs' Ant and Humanoid envs, computed here from the state entries they all have:
``torso_pos``, ``torso_quat`` (w, x, y, z), ``torso_linvel`` (world), ``torso_angvel`` (torso
frame), ``joint_pos``, ``joint_vel``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rewardlab.envs.tasks.knowledge import Binding, entry

State = Mapping[str, torch.Tensor]


def quat_rotate_wxyz(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by unit quaternions ``q`` ``[N, 4]`` (w, x, y, z)."""
    u = q[:, 1:]
    t = 2.0 * torch.linalg.cross(u, v)
    return v + q[:, :1] * t + torch.linalg.cross(u, t)


def body_axis(q: torch.Tensor, i: int) -> torch.Tensor:
    """Column ``i`` of the rotation matrix of ``q``: the body's x / y / z axis in the world."""
    w, x, y, z = q.unbind(-1)
    if i == 0:
        cols = [1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)]
    elif i == 1:
        cols = [2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)]
    else:
        cols = [2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(cols, -1)


def _xyzw(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([x, y, z, w], -1)


TARGET_X = 1000.0
"""IsaacGymEnvs' Ant and Humanoid run towards ``targets = (1000, 0, 0)``."""


def _targets(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    pos = s["torso_pos"]
    t = torch.zeros_like(pos)
    t[:, 0] = TARGET_X
    return t


def _to_target_xy(s: State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx, dy, distance)`` from the torso to the target in the xy plane."""
    pos = s["torso_pos"]
    dx, dy = TARGET_X - pos[:, 0], -pos[:, 1]
    return dx, dy, torch.sqrt(dx * dx + dy * dy)


def _potentials(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    return _to_target_xy(s)[2] * (-1.0 / dt)


def _prev_potentials(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    dx, dy, dist = _to_target_xy(s)
    v = s["torso_linvel"]
    return dist * (-1.0 / dt) - (v[:, 0] * dx + v[:, 1] * dy) / dist.clamp_min(1e-9)


def _angvel_world(s: State) -> torch.Tensor:
    return quat_rotate_wxyz(s["torso_quat"], s["torso_angvel"])


def _root_states(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    return torch.cat(
        [s["torso_pos"], _xyzw(s["torso_quat"]), s["torso_linvel"], _angvel_world(s)], -1
    )


def _heading_proj(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    w, x, y, z = s["torso_quat"].unbind(-1)
    hx, hy = 1 - 2 * (y * y + z * z), 2 * (x * y + w * z)
    dx, dy, dist = _to_target_xy(s)
    return (hx * dx + hy * dy) / (torch.sqrt(hx * hx + hy * hy) * dist).clamp_min(1e-9)


LOCOMOTION_EUREKA: dict[str, Binding] = {
    "root_states": Binding(
        _root_states,
        "`[N, 13]`: `torso_pos`, `torso_quat` reordered to (x, y, z, w), `torso_linvel`, `torso_angvel` rotated to the world frame (IsaacGym layout)",
    ),  # fmt: skip
    "torso_position": entry("torso_pos"),
    "torso_rotation": Binding(
        lambda s, a, dt: _xyzw(s["torso_quat"]), "`torso_quat` as (x, y, z, w)"
    ),  # fmt: skip
    "velocity": entry("torso_linvel"),
    "torso_velocity": entry("torso_linvel"),
    "ang_velocity": Binding(
        lambda s, a, dt: _angvel_world(s), "`torso_angvel` rotated to the world frame"
    ),  # fmt: skip
    "dof_pos": entry("joint_pos"),
    "dof_vel": entry("joint_vel"),
    "targets": Binding(
        _targets, "`[N, 3]` constant (1000, 0, 0): IsaacGymEnvs' far target along +x"
    ),  # fmt: skip
    "potentials": Binding(_potentials, "`-norm((targets - torso_pos)[:, :2]) / dt`"),
    "prev_potentials": Binding(
        _prev_potentials,
        "`potentials - (velocity toward the target)`, the first-order value of the previous step's potential",
    ),  # fmt: skip
    "up_vec": Binding(
        lambda s, a, dt: body_axis(s["torso_quat"], 2),
        "the torso's up axis (z) in the world frame, `[N, 3]`",
    ),  # fmt: skip
    "heading_vec": Binding(
        lambda s, a, dt: body_axis(s["torso_quat"], 0),
        "the torso's forward axis (x) in the world frame, `[N, 3]`",
    ),  # fmt: skip
    "up_proj": Binding(
        lambda s, a, dt: body_axis(s["torso_quat"], 2)[:, 2], "z of `up_vec` (1 upright)"
    ),  # fmt: skip
    "heading_proj": Binding(
        _heading_proj,
        "cosine between the torso's forward axis and the direction to the target, in the xy plane",
    ),  # fmt: skip
}
"""IsaacGymEnvs Ant / Humanoid names (``self.root_states``, ``self.potentials``, ...)."""

T2R_JOINTS: dict[str, str] = {
    "robot.qpos": "joint_pos",
    "robot.qvel": "joint_vel",
    "last_action": "last_action",
    "prev_action": "prev_action",
}
"""Text2Reward attributes of a robot's joints and actions."""

T2R_LOCOMOTION: dict[str, str] = {
    **T2R_JOINTS,
    "robot.root_position": "torso_pos",
    "robot.root_quat": "torso_quat",
    "robot.root_velocity": "torso_linvel",
    "robot.root_angular_velocity": "torso_angvel",
    "robot.torso_position": "torso_pos",
    "robot.torso_velocity": "torso_linvel",
}
"""Text2Reward attributes of a robot with a free torso."""
