"""The helpers of ``isaacgymenvs.utils.torch_jit_utils`` / ``isaacgym.torch_utils`` (and legged_gym's
``quat_apply_yaw``, ``wrap_to_pi``) that foreign reward code calls unqualified -- RewardLab's own
implementations, with IsaacGym's (x, y, z, w) quaternion order.

IsaacGymEnvs' and DrEureka's env modules import them with ``*``, so the rewards written for them
call ``quat_rotate_inverse(...)`` or ``normalize(...)`` without a module; the compatibility layer
(:mod:`rewardlab.rewards.compat`) predefines :data:`ISAACGYM_UTILS` for that code. Tested against
scipy's rotations (``tests/test_reward_compat.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from rewardlab.envs.tasks.authoring import quat_rotate as _quat_rotate


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``[..., 4]`` quaternions (x, y, z, w)."""
    x1, y1, z1, w1 = a.unbind(-1)
    x2, y2, z2, w2 = b.unbind(-1)
    return torch.stack(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ],
        -1,
    )


def quat_conjugate(a: torch.Tensor) -> torch.Tensor:
    """Conjugate of ``[..., 4]`` quaternions (x, y, z, w)."""
    return torch.cat([-a[..., :3], a[..., 3:]], -1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by ``q`` ``[N, 4]`` (x, y, z, w)."""
    return _quat_rotate(q[:, [3, 0, 1, 2]], v)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by the inverse of ``q`` ``[N, 4]`` (x, y, z, w)."""
    return quat_rotate(quat_conjugate(q), v)


def normalize(x: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``x`` divided by its norm over the last axis."""
    return x / x.norm(p=2, dim=-1).clamp(min=eps).unsqueeze(-1)


def normalize_angle(x: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to ``(-pi, pi]``."""
    return torch.atan2(torch.sin(x), torch.cos(x))


def get_euler_xyz(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll, pitch, yaw in ``[0, 2 pi)`` of ``[N, 4]`` quaternions (x, y, z, w), as IsaacGym."""
    qx, qy, qz, qw = q.unbind(-1)
    roll = torch.atan2(2.0 * (qw * qx + qy * qz), qw * qw - qx * qx - qy * qy + qz * qz)
    sinp = 2.0 * (qw * qy - qz * qx)
    pitch = torch.where(sinp.abs() >= 1, torch.copysign(torch.full_like(sinp, math.pi / 2), sinp), torch.asin(sinp.clamp(-1, 1)))  # fmt: skip
    yaw = torch.atan2(2.0 * (qw * qz + qx * qy), qw * qw + qx * qx - qy * qy - qz * qz)
    two_pi = 2 * math.pi
    return roll % two_pi, pitch % two_pi, yaw % two_pi


def tensor_clamp(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``t`` clamped elementwise between tensors ``lo`` and ``hi``."""
    return torch.max(torch.min(t, hi), lo)


def scale(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[lower, upper]``."""
    return 0.5 * (x + 1.0) * (upper - lower) + lower


def unscale(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[lower, upper]`` -> ``[-1, 1]``."""
    return (2.0 * x - upper - lower) / (upper - lower)


def quat_apply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``b`` ``[..., 3]`` by quaternions ``a`` ``[..., 4]`` (x, y, z, w)."""
    shape = b.shape
    a, b = a.reshape(-1, 4), b.reshape(-1, 3)
    xyz = a[:, :3]
    t = 2.0 * torch.linalg.cross(xyz, b)
    return (b + a[:, 3:] * t + torch.linalg.cross(xyz, t)).view(shape)


def quat_unit(a: torch.Tensor) -> torch.Tensor:
    """Unit quaternions."""
    return normalize(a)


def quat_from_angle_axis(angle: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Quaternions (x, y, z, w) of rotations by ``angle`` ``[N]`` about ``axis`` ``[N, 3]``."""
    half = (angle / 2.0).unsqueeze(-1)
    return quat_unit(torch.cat([normalize(axis) * torch.sin(half), torch.cos(half)], -1))


def quat_axis(q: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """The body's ``axis`` (0 x, 1 y, 2 z) in the world frame, for quaternions (x, y, z, w)."""
    basis = torch.zeros(q.shape[0], 3, dtype=q.dtype, device=q.device)
    basis[:, axis] = 1.0
    return quat_rotate(q, basis)


def quat_diff_rad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (rad) of the rotation between quaternions ``a`` and ``b`` (x, y, z, w)."""
    d = quat_mul(a, quat_conjugate(b))
    return 2.0 * torch.asin(torch.clamp(torch.norm(d[:, :3], p=2, dim=-1), max=1.0))


def my_quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:func:`quat_rotate` under the name IsaacGymEnvs' AMP tasks use."""
    return quat_rotate(q, v)


def wrap_to_pi(angles: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to ``(-pi, pi]`` (legged_gym's helper)."""
    return normalize_angle(angles)


def copysign(a: float, b: torch.Tensor) -> torch.Tensor:
    """``|a|`` with the sign of each element of ``b``."""
    return torch.full_like(b, abs(float(a))) * torch.sign(b)


def scale_transform(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[lower, upper]`` -> ``[-1, 1]`` about the range's centre."""
    return 2.0 * (x - (lower + upper) * 0.5) / (upper - lower)


def unscale_transform(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[lower, upper]`` (the inverse of :func:`scale_transform`)."""
    return x * (upper - lower) * 0.5 + (lower + upper) * 0.5


def saturate(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``x`` clamped elementwise between ``lower`` and ``upper``."""
    return torch.max(torch.min(x, upper), lower)


def get_basis_vector(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` rotated by ``q`` (x, y, z, w)."""
    return quat_rotate(q, v)


def tf_vector(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A direction ``v`` expressed in the world by the frame rotation ``q``."""
    return quat_apply(q, v)


def tf_apply(q: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A point ``v`` of the frame ``(q, t)`` in the world."""
    return quat_apply(q, v) + t


def tf_inverse(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of the frame ``(q, t)``."""
    q_inv = quat_conjugate(q)
    return q_inv, -quat_apply(q_inv, t)


def tf_combine(q1: torch.Tensor, t1: torch.Tensor, q2: torch.Tensor, t2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The frame ``(q2, t2)`` given in the frame ``(q1, t1)``, in the world."""
    return quat_mul(q1, q2), quat_apply(q1, t2) + t1


def quat_apply_yaw(quat: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Rotate ``vec`` by the yaw part of ``quat`` (x, y, z, w) only (legged_gym's helper)."""
    yaw_only = torch.cat([torch.zeros_like(quat[..., :2]), quat[..., 2:]], -1)
    return quat_apply(normalize(yaw_only), vec)


def to_torch(x: Any, dtype: torch.dtype = torch.float, device: Any = "cpu", requires_grad: bool = False) -> torch.Tensor:  # fmt: skip
    """A tensor of ``x`` (on the CPU: the reward computes there)."""
    return torch.tensor(x, dtype=dtype)


ISAACGYM_UTILS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        quat_mul, quat_conjugate, quat_rotate, quat_rotate_inverse, quat_apply, quat_unit,
        quat_from_angle_axis, quat_axis, quat_diff_rad, my_quat_rotate, get_euler_xyz,
        normalize, normalize_angle, wrap_to_pi, copysign, tensor_clamp, scale, unscale,
        scale_transform, unscale_transform, saturate, get_basis_vector, tf_vector, tf_apply,
        tf_inverse, tf_combine, quat_apply_yaw, to_torch,
    )
}  # fmt: skip
"""Helpers of ``isaacgymenvs.utils.torch_jit_utils`` / ``isaacgym.torch_utils`` (and legged_gym's
``quat_apply_yaw``, ``wrap_to_pi``) predefined for foreign-style code: their env modules import
them with ``*``, so the rewards call them unqualified. RewardLab's own implementations, with
IsaacGym's (x, y, z, w) quaternions; the names are
:data:`rewardlab.rewards.static_check.PREDEFINED_HELPERS`."""


__all__ = [
    "ISAACGYM_UTILS",
    "copysign",
    "get_basis_vector",
    "get_euler_xyz",
    "my_quat_rotate",
    "normalize",
    "normalize_angle",
    "quat_apply",
    "quat_apply_yaw",
    "quat_axis",
    "quat_conjugate",
    "quat_diff_rad",
    "quat_from_angle_axis",
    "quat_mul",
    "quat_rotate",
    "quat_rotate_inverse",
    "quat_unit",
    "saturate",
    "scale",
    "scale_transform",
    "tensor_clamp",
    "tf_apply",
    "tf_combine",
    "tf_inverse",
    "tf_vector",
    "to_torch",
    "unscale",
    "unscale_transform",
    "wrap_to_pi",
]
