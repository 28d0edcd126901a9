"""Labelled frames for the tiny CLIP model: states drawn per task, captioned from the true state.

Each *scene family* draws physics states (``qpos`` and mocap rows, as the tiled renderer takes
them), the caption that describes each state, and a soft target over the family's captions:
neighbouring captions of an ordered quantity (pole angle, hand-to-target distance) share some
probability, so that the learned image embedding moves smoothly between them and a
goal-vs-baseline score grows steadily as the state approaches the goal (what value-order
correlation measures). The captions are the task prompts of :mod:`rewardlab.vlm_reward.prompts`.

What it cannot do: the captions cover only the few distinctions listed here; the model trained on
them knows nothing else (colours, other robots, other wording).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from rewardlab.envs.robots import HUMANOID
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.arm_reach import forward_kinematics


@dataclass
class Scenes:
    """A batch of drawn states of one family."""

    task: str
    """Task whose model and reward camera render these states."""
    physics: dict[str, np.ndarray]
    """``qpos`` ``[n, nq]`` (and ``mocap_pos`` ``[n, nmocap, 3]``) rows."""
    label: np.ndarray
    """``[n]`` index of each state's caption in the family's caption list."""
    soft: np.ndarray
    """``[n, C]`` soft target over the family's captions (rows sum to 1)."""


# -- cart-pole ---------------------------------------------------------------------------------

CARTPOLE_CAPTIONS = (
    ("the pole is upright", 0.0),
    ("the pole is tilted to the right", 0.55),
    ("the pole is tilted to the left", -0.55),
    ("the pole is lying to the right", math.pi / 2),
    ("the pole is lying to the left", -math.pi / 2),
    ("the pole is pointing down to the right", 2.4),
    ("the pole is pointing down to the left", -2.4),
    ("the pole is hanging down", math.pi),
)
"""(caption, pole angle in rad at its centre); positive angles tip the pole to the image's right."""


def _wrap(a: np.ndarray) -> np.ndarray:
    return np.remainder(a + math.pi, 2 * math.pi) - math.pi


def cartpole_scenes(n: int, rng: np.random.Generator, sigma: float = 0.3) -> Scenes:
    """Cart anywhere on the rail, pole at any angle (denser near upright)."""
    angle = np.where(
        rng.random(n) < 0.25, rng.normal(0.0, 0.3, n), rng.uniform(-math.pi, math.pi, n)
    )
    angle = _wrap(angle)
    cart = rng.uniform(-1.6, 1.6, n)
    centres = np.array([c for _, c in CARTPOLE_CAPTIONS])
    dist = np.abs(_wrap(angle[:, None] - centres[None]))
    return Scenes(
        "cartpole_swingup",
        {"qpos": np.stack([cart, angle], -1)},
        dist.argmin(-1),
        _softmax(-0.5 * (dist / sigma) ** 2),
    )


# -- arm reach ---------------------------------------------------------------------------------

ARM_CAPTIONS = (
    ("the arm's hand is touching the green target", 0.025),
    ("the arm's hand is near the green target", 0.09),
    ("the arm's hand is far from the green target", 0.3),
)
"""(caption, hand-to-target distance in m at its centre); the boundaries fall near 0.05 m (the
task's success distance) and 0.16 m. The arm's reward camera (``ArmReach.reward_camera``) shows
the target from the side and from above: with one view, a hand in front of or behind the target
looks the same as a hand on it, and a model trained on one view learned next to nothing about
these captions (held-out accuracy 0.40 with three captions)."""


def arm_scenes(n: int, rng: np.random.Generator, sigma: float = 0.35) -> Scenes:
    """Arm poses across the task's workspace; targets on, near or far from the hand."""
    cfg = get_task("arm_reach").default_config()
    lo, hi = np.array(cfg.target_joint_low), np.array(cfg.target_joint_high)
    q = lo + (hi - lo) * rng.random((n, 3))
    q += rng.uniform(-0.2, 0.2, (n, 3))
    ee = forward_kinematics(torch.as_tensor(q)).numpy()
    target = forward_kinematics(torch.as_tensor(lo + (hi - lo) * rng.random((n, 3)))).numpy()
    kind = rng.random(n)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radius = np.where(kind < 0.35, rng.uniform(0.0, 0.045, n), rng.uniform(0.055, 0.2, n))
    near = kind < 0.65
    target[near] = ee[near] + direction[near] * radius[near, None]
    target[:, 2] = np.maximum(target[:, 2], 0.03)
    d = np.linalg.norm(target - ee, axis=-1)
    centres = np.log([c for _, c in ARM_CAPTIONS])
    dist = np.abs(np.log(np.maximum(d, 1e-3))[:, None] - centres[None])
    return Scenes(
        "arm_reach",
        {"qpos": q, "mocap_pos": target[:, None, :]},
        dist.argmin(-1),
        _softmax(-0.5 * (dist / sigma) ** 2),
    )


# -- humanoid ----------------------------------------------------------------------------------

HUMANOID_CAPTIONS = (
    "a humanoid robot standing upright",
    "a humanoid robot kneeling",
    "a humanoid robot lying on the floor",
    "a humanoid robot sitting on the floor",
)


def _quat(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    half = angle / 2
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], -1)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a.T
    w2, x2, y2, z2 = b.T
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )


def humanoid_scenes(n: int, rng: np.random.Generator, smoothing: float = 0.1) -> Scenes:
    """Standing, kneeling (both knees or one), lying and sitting humanoids; each pose is set on
    the joints and the body lowered until its lowest part touches the floor."""
    model = get_task("humanoid_stand").load_model()
    data = mujoco.MjData(model)
    jid = {
        name: int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])
        for name in HUMANOID.joint_names
    }
    lo = np.array([lim[0] for lim in HUMANOID.joint_limits])
    hi = np.array([lim[1] for lim in HUMANOID.joint_limits])
    names = list(HUMANOID.joint_names)
    label = rng.integers(0, len(HUMANOID_CAPTIONS), n)
    qpos = np.zeros((n, model.nq))
    for i in range(n):
        joints = rng.uniform(-0.15, 0.15, len(names))
        arms = [names.index(f"{s}_{j}") for s in ("right", "left") for j in ("shoulder1", "shoulder2", "elbow")]  # fmt: skip
        joints[arms] = rng.uniform(lo[arms], hi[arms]) * 0.7
        pitch, roll = rng.normal(0, 0.1), rng.normal(0, 0.05)

        def put(side: str, hip: float, knee: float, ankle: float = 0.0, joints=joints) -> None:
            joints[names.index(f"{side}_hip_y")] = hip
            joints[names.index(f"{side}_knee")] = knee
            joints[names.index(f"{side}_ankle_y")] = ankle

        if label[i] == 1:  # kneeling: thighs near vertical, shins on the floor behind
            if rng.random() < 0.7:
                for s in ("right", "left"):
                    put(
                        s, rng.uniform(-0.35, 0.1), rng.uniform(-2.0, -1.45), rng.uniform(-0.6, 0.6)
                    )
            else:  # one knee down, the other foot forward
                down, up = ("right", "left") if rng.random() < 0.5 else ("left", "right")
                put(down, rng.uniform(-0.3, 0.1), rng.uniform(-2.0, -1.5))
                put(up, rng.uniform(-1.7, -1.3), rng.uniform(-1.8, -1.3))
        elif label[i] == 2:  # lying on the back, front or side
            pitch = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.15)
            if rng.random() < 0.3:
                pitch, roll = rng.normal(0, 0.15), rng.choice([-1.0, 1.0]) * math.pi / 2
            for s in ("right", "left"):
                put(s, rng.uniform(-0.6, 0.2), rng.uniform(-0.8, 0.0))
        elif label[i] == 3:  # sitting: pelvis on the floor, legs forward
            pitch = rng.uniform(-0.5, 0.0)
            for s in ("right", "left"):
                put(s, rng.uniform(-1.9, -1.3), rng.uniform(-0.6, 0.0))
        else:  # standing, possibly with slightly bent knees
            for s in ("right", "left"):
                bend = rng.uniform(0.0, 0.4)
                put(s, -bend, -2 * bend, bend * 0.8)
        joints = np.clip(joints, lo, hi)
        yaw = rng.uniform(-0.6, 0.6)
        q = _quat_mul(_quat(np.array([[0.0, 0.0, 1.0]]), np.array([yaw])), _quat(np.array([[0.0, 1.0, 0.0]]), np.array([pitch])))  # fmt: skip
        q = _quat_mul(q, _quat(np.array([[1.0, 0.0, 0.0]]), np.array([roll])))[0]
        data.qpos[:] = 0.0
        data.qpos[2] = 2.0
        data.qpos[3:7] = q
        for k, name in enumerate(names):
            data.qpos[jid[name]] = joints[k]
        mujoco.mj_kinematics(model, data)
        lowest = _lowest_point(model, data)
        data.qpos[2] -= lowest - rng.uniform(0.0, 0.02)
        qpos[i] = data.qpos
    soft = np.full((n, len(HUMANOID_CAPTIONS)), smoothing / (len(HUMANOID_CAPTIONS) - 1))
    soft[np.arange(n), label] = 1.0 - smoothing
    return Scenes("humanoid_stand", {"qpos": qpos}, label, soft)


def _lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Lowest z over the model's non-plane geoms (bounding spheres of capsules and spheres)."""
    low = math.inf
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
            continue
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            half = model.geom_size[g, 1] * data.geom_xmat[g].reshape(3, 3)[:, 2]
            z = min(data.geom_xpos[g, 2] + half[2], data.geom_xpos[g, 2] - half[2])
            low = min(low, z - model.geom_size[g, 0])
        else:
            low = min(low, data.geom_xpos[g, 2] - model.geom_rbound[g])
    return low


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


FAMILIES = {
    "cartpole": ([c for c, _ in CARTPOLE_CAPTIONS], cartpole_scenes),
    "arm": ([c for c, _ in ARM_CAPTIONS], arm_scenes),
    "humanoid": (list(HUMANOID_CAPTIONS), humanoid_scenes),
}
"""Family name -> (captions, ``sample(n, rng) -> Scenes``)."""
