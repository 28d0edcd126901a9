"""MetaWorld's Sawyer scenes as RewardLab tasks: the shared part (scene loading, action, state).

**Where the models come from.** The Sawyer arm and the task scenes are the XML, mesh and texture
files of the ``metaworld`` package on PyPI (Farama Foundation, MIT licence), read from where that
package is installed; nothing of it is copied into this repository and none of its code is
imported. ``metaworld`` 3.1.1 pins ``mujoco==3.3.0`` (and imports gymnasium's MuJoCo env), while
RewardLab runs MuJoCo 4; so it is installed without its dependencies::

    pip install --no-deps metaworld==3.1.1

(``make install`` / ``make install-test`` do this). It cannot be a pyproject extra: pip's
resolver refuses ``metaworld==3.1.1`` beside ``mujoco>=4.0`` (ResolutionImpossible), and an
extra cannot say ``--no-deps``. Without it, a MetaWorld task refuses with one line naming that
command (:class:`MetaWorldUnavailableError`).

**What is MetaWorld's, reproduced here** (``metaworld/sawyer_xyz_env.py`` and the env files of
3.1.1): the scenes compile unchanged with MuJoCo 4; at load time (:func:`load_scene`, MjSpec edits)
the hand's mocap weld gets MetaWorld's ``reset_mocap_welds`` values (identity relative pose,
torque scale 5; MuJoCo 4's 12-value ``eq_data`` row), the object's base body becomes a mocap body
so that each world has its own object position (MetaWorld moves ``model.body(...).pos``, one
model per env), and a world-fixed ``goal`` site moves onto a mocap body so renders show each
world's goal (MetaWorld rewrites the site every step). Physics options (2.5 ms, Newton, 50
iterations, elliptic cones) are the scene's. Control: ``frame_skip`` 5 (80 Hz), 500 steps per
episode (``max_path_length``), action ``[dx, dy, dz, grip]`` in [-1, 1]: the hand's mocap target
moves ``action_scale`` (1 cm) per unit per step, clipped to the ``hand_low``..``hand_high`` box,
and the two finger servos get ``[grip, -grip]`` (:class:`SawyerMocapActions`). Reset: the arm
settles for 50 x 5 physics steps with the mocap at ``hand_init_pos`` and the fingers open
(MetaWorld's ``_reset_hand``, computed once per task and replayed exactly), then the object's
base is drawn uniformly from ``obj_low``..``obj_high`` and the goal follows it. The observation is
MetaWorld's 39 values (MT1: goal visible): hand position, gripper opening, object position and
quaternion, 7 zeros (a second object's slots), the same 18 values one control step earlier,
and the goal. Checked against MetaWorld's own env (mujoco 3.3.0, in a separate venv): the reset
observation agrees within 0.4 mm and 50 random steps within 1.4 mm (docs/metaworld.md).

**Success** is each env's ``evaluate_state`` criterion; as MetaWorld's evaluation ends an episode
at its first success (``terminate_on_success``), an episode here counts as a success if the
criterion held at any step (the ``succeeded`` state entry latches it); episodes run their 500
steps as MetaWorld's training episodes do.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import mujoco
import numpy as np
import torch

from rewardlab.envs.base import StateField
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, uniform
from rewardlab.envs.tasks.isaacgym_names import T2R_JOINTS
from rewardlab.envs.tasks.knowledge import Binding, Column, Columns, entry

State = Mapping[str, torch.Tensor]

METAWORLD_VERSION = "3.1.1"
"""The ``metaworld`` release whose assets these tasks were written and checked against."""
INSTALL = f"pip install --no-deps metaworld=={METAWORLD_VERSION}"
"""How to install the assets (``--no-deps``: metaworld pins mujoco 3.3.0; we use MuJoCo 4)."""

ARM_JOINTS = tuple(f"right_j{i}" for i in range(7))
"""The Sawyer's seven arm joints (driven only through the hand's mocap weld)."""
FINGER_JOINTS = ("r_close", "l_close")
"""The two finger slides (position servos, ctrl ``[grip, -grip]``)."""
HAND_QUAT = (1.0, 0.0, 1.0, 0.0)
"""Orientation MetaWorld holds the hand's mocap body at (unnormalized, as MetaWorld writes it)."""
SETTLE_STEPS = 50
"""Control steps of MetaWorld's ``_reset_hand`` (each ``frame_skip`` physics steps)."""
HAND_SPACE = ((-0.525, 0.348, -0.0525), (0.525, 1.025, 0.7))
"""MetaWorld's ``_HAND_SPACE``: the observation's hand position is clipped to this box (m)."""
OBS_PAD = 7
"""Zeros after the object's position and quaternion (MetaWorld's 14 object slots, one object)."""


class MetaWorldUnavailableError(FileNotFoundError):
    """The ``metaworld`` package (the Sawyer scene files) is not installed; one line saying how."""

    missing_dependency = True
    """An optional package is missing, not a bug: tests that reach it skip (tests/conftest.py)."""


def assets_dir() -> Path:
    """The ``metaworld/assets`` folder of the installed ``metaworld`` distribution, found through
    its metadata (``importlib.metadata``), without importing the package.

    Raises:
        MetaWorldUnavailableError: not installed, or installed without its asset files.
    """
    try:
        dist = importlib.metadata.distribution("metaworld")
    except importlib.metadata.PackageNotFoundError:
        raise MetaWorldUnavailableError(
            "the MetaWorld tasks need the Sawyer scene files of the `metaworld` package (MIT), "
            f"which is not installed: {INSTALL} (--no-deps: it pins mujoco==3.3.0; RewardLab "
            "reads only its asset files and never imports it)"
        ) from None
    folder = Path(str(dist.locate_file("metaworld/assets")))
    if not (folder / "sawyer_xyz").is_dir():
        raise MetaWorldUnavailableError(
            f"metaworld {dist.version} is installed but has no asset folder at {folder}; "
            f"reinstall it: {INSTALL}"
        )
    return folder


def metaworld_available() -> bool:
    """Whether the MetaWorld assets can be loaded (see :func:`assets_dir`)."""
    try:
        assets_dir()
    except MetaWorldUnavailableError:
        return False
    return True


@functools.lru_cache(maxsize=8)
def _compiled_scene(xml: str, object_body: str) -> mujoco.MjModel:
    path = assets_dir() / "sawyer_xyz" / xml
    spec = mujoco.MjSpec.from_file(str(path))
    # The object's base body (fixed to the world in MetaWorld, which moves model.body_pos at
    # reset) becomes a mocap body: a per-world position with the same kinematics.
    body = spec.body(object_body)
    if body is None:
        raise ValueError(f"{path}: no body {object_body!r} (metaworld {METAWORLD_VERSION} has one)")
    body.mocap = True
    # MetaWorld's reset_mocap_welds(): weld relative pose = identity, torque scale 5. MuJoCo 4's
    # eq_data row: anchor (3), relative position (3), quaternion (4), torque scale, 0 = relpose given.
    for eq in spec.equalities:
        if eq.type == mujoco.mjtEq.mjEQ_WELD:
            data = np.zeros(mujoco.mjNEQDATA)
            data[6], data[10] = -1.0, 5.0
            eq.data = data
    # A goal marker site fixed to the world moves onto a mocap body: one goal per world.
    goal = spec.site("goal")
    if goal is not None and goal.parent.name == "world":
        size, rgba, pos = list(goal.size), list(goal.rgba), list(goal.pos)
        spec.delete(goal)
        marker = spec.worldbody.add_body(name="goal_marker", mocap=True, pos=pos)
        marker.add_site(name="goal", size=size, rgba=rgba)
    return spec.compile()


def load_scene(xml: str, object_body: str) -> mujoco.MjModel:
    """MetaWorld's scene ``sawyer_xyz/<xml>``, compiled with MuJoCo 4 after the edits of the
    module docstring (object base and goal marker as mocap bodies, MetaWorld's weld values).

    Raises:
        MetaWorldUnavailableError: the ``metaworld`` package is not installed.
    """
    return copy.copy(_compiled_scene(xml, object_body))


def _ids(model: mujoco.MjModel, kind: mujoco.mjtObj, names: tuple[str, ...]) -> list[int]:
    out = []
    for n in names:
        i = mujoco.mj_name2id(model, kind, n)
        if i < 0:
            raise ValueError(f"the MetaWorld scene has no {kind.name[6:].lower()} {n!r}")
        out.append(i)
    return out


# -- the action --------------------------------------------------------------------------------


class SawyerMocapActions:
    """MetaWorld's action: ``[dx, dy, dz, grip]`` in [-1, 1] (the task's ``action_map``).

    ``mocap_pos += action_scale * a[:3]``, clipped to ``[hand_low, hand_high]`` (m, world), with
    the hand's orientation held at (1, 0, 1, 0); the finger servos get ``ctrl = [grip, -grip]``
    (-1 opens, +1 closes). The mocap target is live physics state: the env hands the map its
    ``SimView`` (``needs_sim``).
    """

    action_dim = 4
    """Length of the policy's action."""
    labels = ("dx", "dy", "dz", "grip")
    """What each action element drives."""
    needs_sim = True
    """``apply`` takes the SimView (the mocap target is not a control)."""

    def __init__(self, model: mujoco.MjModel, cfg: SawyerConfig) -> None:
        self.hand = int(model.body_mocapid[_ids(model, mujoco.mjtObj.mjOBJ_BODY, ("mocap",))[0]])
        self.scale = float(cfg.action_scale)
        self.low = torch.tensor(cfg.hand_low, dtype=torch.float64)
        self.high = torch.tensor(cfg.hand_high, dtype=torch.float64)

    def apply(self, ctrl: torch.Tensor, action: torch.Tensor, sim: SimView) -> None:
        """Move the hand's mocap target and write the finger controls for ``action [N, 4]``."""
        mp = sim.derived["mocap_pos"]
        a = action.to(mp.dtype)
        lo, hi = self.low.to(mp.device, mp.dtype), self.high.to(mp.device, mp.dtype)
        mp[:, self.hand] = torch.maximum(torch.minimum(mp[:, self.hand] + self.scale * a[:, :3], hi), lo)  # fmt: skip
        g = action[:, 3].to(ctrl.dtype)
        ctrl[:, 0] = g
        ctrl[:, 1] = -g

    def reset(self, ctrl: torch.Tensor, env_ids: torch.Tensor) -> None:
        """Fingers commanded open (``[-1, 1]``), as MetaWorld's reset leaves them."""
        ctrl[env_ids, 0] = -1.0
        ctrl[env_ids, 1] = 1.0

    def describe(self) -> dict[str, Any]:
        """The map as plain data (an exported policy's sidecar)."""
        return {
            "scaling": "MetaWorld: mocap_pos += action_scale * a[:3] (clipped to hand_low..hand_high), "
            "ctrl = [a[3], -a[3]]",
            "labels": list(self.labels),
            "action_scale": self.scale,
            "hand_low": self.low.tolist(),
            "hand_high": self.high.tolist(),
        }


# -- the config ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SawyerConfig(TaskConfig):
    """Settings of every MetaWorld Sawyer task (timestep 2.5 ms; 80 Hz control at frame_skip 5).

    The defaults are MetaWorld 3.1.1's; the task configs set each env's own boxes and threshold.
    """

    frame_skip: int = 5
    """Physics steps per control step (MetaWorld: 5)."""
    episode_steps: int = 500
    """Time limit in control steps (MetaWorld's max_path_length: 500, 6.25 s)."""
    reset_noise: float = 0.0
    """Half-width (rad) of uniform noise on the seven arm joint angles after the settle
    (MetaWorld: 0; the hand then starts off its mocap target and is pulled back)."""
    action_scale: float = 0.01
    """Metres the hand's mocap target moves per control step per unit action (MetaWorld: 1/100)."""
    hand_init_pos: tuple[float, float, float] = (0.0, 0.4, 0.2)
    """Mocap target (m, world) the arm settles at before each episode."""
    hand_low: tuple[float, float, float] = (-0.5, 0.4, 0.05)
    """Lower corner (m, world) of the box the hand's mocap target is clipped to."""
    hand_high: tuple[float, float, float] = (0.5, 1.0, 0.5)
    """Upper corner (m, world) of that box."""
    obj_low: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Lower corner (m, world) of the box the object's base position is drawn from per episode."""
    obj_high: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Upper corner (m, world) of that box."""
    success_distance: float = 0.05
    """MetaWorld's success threshold on ``obj_to_goal`` (m); changing it departs from MetaWorld."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights (see the task's reward_terms)."""

    def validate(self) -> None:
        super().validate()
        for name in ("hand_init_pos", "hand_low", "hand_high", "obj_low", "obj_high"):
            v = getattr(self, name)
            if len(v) != 3 or not all(np.isfinite(float(x)) for x in v):
                raise ValueError(f"{name} must be 3 finite numbers (x, y, z in m), got {v!r}")
        for lo_name, hi_name in (("hand_low", "hand_high"), ("obj_low", "obj_high")):
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if any(a > b for a, b in zip(lo, hi, strict=True)):
                raise ValueError(f"{lo_name} {lo} must be <= {hi_name} {hi} elementwise")
        if not all(a <= p <= b for a, p, b in zip(self.hand_low, self.hand_init_pos, self.hand_high, strict=True)):  # fmt: skip
            raise ValueError(f"hand_init_pos {self.hand_init_pos} must lie in hand_low..hand_high")
        if not self.action_scale > 0:
            raise ValueError(f"action_scale must be > 0, got {self.action_scale}")
        if not self.success_distance > 0:
            raise ValueError(f"success_distance must be > 0, got {self.success_distance}")


# -- reward helpers ------------------------------------------------------------------------------


def closeness(distance: torch.Tensor, scale: float) -> torch.Tensor:
    """``1 - tanh(distance / scale)``: 1 at zero distance, ~0.24 at one ``scale``, -> 0 far away."""
    return 1.0 - torch.tanh(distance / scale)


def success_bonus(state: State, action: torch.Tensor) -> torch.Tensor:
    """1 while MetaWorld's success criterion holds at this step (``obj_to_goal`` within the
    threshold), else 0."""
    return state["success_now"]


# -- the task base -------------------------------------------------------------------------------


class SawyerTask(Task):
    """Base of the MetaWorld Sawyer tasks (not registered): scene, action, reset, state, success.

    A subclass names its scene and object and says where its object point, its joint and its
    goal are (:meth:`object_point`, :attr:`goal_offset`, :meth:`obj_to_goal`), MetaWorld's way.
    """

    scene_xml: ClassVar[str]
    """Scene file under ``metaworld/assets/sawyer_xyz/``."""
    object_body: ClassVar[str]
    """The object's base body (a mocap body after loading: its position is drawn per episode)."""
    object_joint: ClassVar[str]
    """The object's slide joint (button, drawer or window)."""
    joint_entry: ClassVar[str]
    """State name of the object's joint (``button_depth``, ...); ``joint_sign`` * qpos, m."""
    joint_sign: ClassVar[float] = 1.0
    """Sign making :attr:`joint_entry` grow as the task progresses."""
    joint_doc: ClassVar[str] = ""
    """What the joint entry measures, for the state schema."""
    object_doc: ClassVar[str] = ""
    """What ``obj_pos`` is, for the state schema."""
    goal_doc: ClassVar[str] = ""
    """What ``goal_pos`` is, for the state schema."""
    success_doc: ClassVar[str] = ""
    """``obj_to_goal`` as MetaWorld computes it, for the state schema."""
    model_file = ""  # found in the installed metaworld package (load_model)
    sim_fields = ("xpos", "xquat", "site_xpos", "mocap_pos", "mocap_quat", "time")
    success_threshold = 0.8

    def __init__(self, cfg: SawyerConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: SawyerConfig = cfg
        body = functools.partial(_ids, model, mujoco.mjtObj.mjOBJ_BODY)
        site = functools.partial(_ids, model, mujoco.mjtObj.mjOBJ_SITE)
        joint = functools.partial(_ids, model, mujoco.mjtObj.mjOBJ_JOINT)
        self._hand_body = body(("hand",))[0]
        self._claws = body(("rightclaw", "leftclaw"))
        self._fingertips = site(("rightEndEffector", "leftEndEffector"))
        self._hand_mocap = int(model.body_mocapid[body(("mocap",))[0]])
        self._obj_mocap = int(model.body_mocapid[body((self.object_body,))[0]])
        marker = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "goal_marker")
        self._goal_mocap = int(model.body_mocapid[marker]) if marker >= 0 else -1
        arm = joint(ARM_JOINTS)
        self._arm_q = torch.as_tensor([int(model.jnt_qposadr[j]) for j in arm])
        self._arm_v = torch.as_tensor([int(model.jnt_dofadr[j]) for j in arm])
        obj = joint((self.object_joint,))[0]
        self._obj_q = int(model.jnt_qposadr[obj])
        self._obj_v = int(model.jnt_dofadr[obj])
        self._settled_qpos, self._settled_qvel = self._settle(model, cfg)
        self.action_map = SawyerMocapActions(model, cfg)
        # Per-world task buffers (allocated at the first reset).
        self.obj_base: torch.Tensor | None = None
        """``[N, 3]`` the object's base position this episode (m, world)."""
        self.goal: torch.Tensor | None = None
        """``[N, 3]`` MetaWorld's ``_target_pos`` this episode (m, world)."""
        self._frame: torch.Tensor | None = None  # [N, 11] this step's observed values
        self._prev: torch.Tensor | None = None  # [N, 11] the previous control step's
        self._frame_time: torch.Tensor | None = None  # [N] sim time of _frame
        self._fresh: torch.Tensor | None = None  # [N] reset since the last state()
        self._succeeded: torch.Tensor | None = None  # [N] success seen this episode

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        return load_scene(cls.scene_xml, cls.object_body)

    @classmethod
    def task_files(cls) -> list[Path]:
        """The task's module and this one (the scene is the installed ``metaworld`` package's,
        version :data:`METAWORLD_VERSION`, edited at load time; not a file of ours)."""
        import inspect

        return [Path(inspect.getfile(cls)).resolve(), Path(__file__).resolve()]

    # -- per-task hooks ------------------------------------------------------------------------

    goal_offset: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)
    """MetaWorld's goal relative to the object's base position (m, world)."""

    def object_point(self, sim: SimView) -> tuple[torch.Tensor, torch.Tensor]:
        """``(obj_pos [N, 3], obj_quat [N, 4])`` as MetaWorld's ``_get_pos_objects`` /
        ``_get_quat_objects`` compute them."""
        raise NotImplementedError

    def obj_to_goal(self, obj: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """MetaWorld's success distance ``[N]`` (its ``obj_to_target``)."""
        raise NotImplementedError

    # -- reset -----------------------------------------------------------------------------------

    def _settle(self, model: mujoco.MjModel, cfg: SawyerConfig) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """MetaWorld's ``_reset_hand``: from ``qpos0``, 50 control steps with the mocap at
        ``hand_init_pos`` and the fingers open; the resulting ``(qpos, qvel)`` start every
        episode (the object's joint is then zeroed)."""
        data = mujoco.MjData(model)
        for _ in range(SETTLE_STEPS):
            data.mocap_pos[self._hand_mocap] = cfg.hand_init_pos
            data.mocap_quat[self._hand_mocap] = HAND_QUAT
            data.ctrl[:2] = (-1.0, 1.0)
            mujoco.mj_step(model, data, nstep=cfg.frame_skip)
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        qpos[self._obj_q], qvel[self._obj_v] = 0.0, 0.0
        return torch.as_tensor(qpos), torch.as_tensor(qvel)

    def _allocate(self, sim: SimView) -> None:
        n, dev = sim.qpos.shape[0], sim.qpos.device
        if self.obj_base is not None and self.obj_base.shape[0] == n and self.obj_base.device == dev:  # fmt: skip
            return
        f64 = {"dtype": torch.float64, "device": dev}
        self.obj_base = torch.zeros(n, 3, **f64)
        self.goal = torch.zeros(n, 3, **f64)
        self._frame = torch.zeros(n, 11, dtype=torch.float32, device=dev)
        self._prev = torch.zeros(n, 11, dtype=torch.float32, device=dev)
        self._frame_time = torch.full((n,), -1.0, **f64)
        self._fresh = torch.ones(n, dtype=torch.bool, device=dev)
        self._succeeded = torch.zeros(n, dtype=torch.bool, device=dev)

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self._allocate(sim)
        assert self.obj_base is not None and self.goal is not None
        assert self._fresh is not None and self._succeeded is not None
        n = len(env_ids)
        qpos = self._settled_qpos.to(sim.qpos).repeat(n, 1)
        if self.cfg.reset_noise > 0:
            qpos[:, self._arm_q] += self.cfg.reset_noise * uniform(gen, (n, 7), sim.qpos)
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = self._settled_qvel.to(sim.qvel).repeat(n, 1)
        mp, mq = sim.derived["mocap_pos"], sim.derived["mocap_quat"]
        mp[env_ids, self._hand_mocap] = torch.tensor(self.cfg.hand_init_pos, dtype=mp.dtype, device=mp.device)  # fmt: skip
        mq[env_ids, self._hand_mocap] = torch.tensor(HAND_QUAT, dtype=mq.dtype, device=mq.device)
        lo = torch.tensor(self.cfg.obj_low, dtype=torch.float64, device=sim.qpos.device)
        hi = torch.tensor(self.cfg.obj_high, dtype=torch.float64, device=sim.qpos.device)
        u = 0.5 * (uniform(gen, (n, 3), self.obj_base) + 1.0)
        base = lo + (hi - lo) * u
        goal = base + torch.tensor(self.goal_offset, dtype=torch.float64, device=base.device)
        self.obj_base[env_ids] = base
        self.goal[env_ids] = goal
        mp[env_ids, self._obj_mocap] = base.to(mp.dtype)
        if self._goal_mocap >= 0:
            mp[env_ids, self._goal_mocap] = goal.to(mp.dtype)
        self._fresh[env_ids] = True
        self._succeeded[env_ids] = False

    # -- snapshots -------------------------------------------------------------------------------

    _BUFFERS = ("obj_base", "goal", "_frame", "_prev", "_frame_time", "_fresh", "_succeeded")

    def get_state_dict(self) -> dict[str, Any]:
        """Per-world buffers for exact resume: object base, goal, the frame stack, the latch."""
        return {k: None if getattr(self, k) is None else getattr(self, k).cpu().clone() for k in self._BUFFERS}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state_dict` returned (moved to the physics' device on use)."""
        for k in self._BUFFERS:
            setattr(self, k, None if state[k] is None else torch.as_tensor(state[k]).clone())

    def _on_device(self, dev: torch.device) -> None:
        for k in self._BUFFERS:
            v = getattr(self, k)
            if v is not None and v.device != dev:
                setattr(self, k, v.to(dev))

    # -- state -------------------------------------------------------------------------------------

    def state_spec(self) -> dict[str, StateField]:
        c = self.cfg
        frame = "One control step earlier (MetaWorld's frame stack; equal to the current value right after a reset):"  # fmt: skip
        return {
            "hand_pos": StateField((3,), "m", "world", "Position of the Sawyer's hand body (MetaWorld's end-effector position, obs[0:3]); the robot's base is at the origin, the table top at z = 0, +y points away from the robot."),
            "tcp_pos": StateField((3,), "m", "world", "Tool centre point: midpoint of the two fingertips (MetaWorld's tcp_center), about 5 cm below the hand."),
            "gripper_opening": StateField((), "1", "gripper", "Distance between the two fingers / 0.1 m, clipped to [0, 1]: 1 open, 0 closed (MetaWorld's obs[3])."),
            "obj_pos": StateField((3,), "m", "world", self.object_doc + " (MetaWorld's obs[4:7])."),
            "obj_quat": StateField((4,), "1", "world", "Orientation of the object, (w, x, y, z) (MetaWorld's obs[7:11])."),
            "goal_pos": StateField((3,), "m", "world", self.goal_doc + " Fixed during an episode (MetaWorld's _target_pos, obs[36:39])."),
            "obj_to_goal": StateField((), "m", "world", f"{self.success_doc} MetaWorld's success: at most {c.success_distance} m."),
            "tcp_to_obj": StateField((), "m", "world", "Distance from tcp_pos to obj_pos."),
            self.joint_entry: StateField((), "m", "joint", self.joint_doc),
            "success_now": StateField((), "1", "task", "1 while MetaWorld's success criterion holds (obj_to_goal within the threshold), else 0."),
            "succeeded": StateField((), "1", "task", "1 once success_now has been 1 at any step of this episode (MetaWorld's evaluation stops at the first success), else 0."),
            "joint_pos": StateField((7,), "rad", "joint", "Angles of the seven arm joints right_j0..right_j6 (the arm follows the hand's mocap target; not observed by MetaWorld)."),
            "joint_vel": StateField((7,), "rad/s", "joint", "Angular velocities of the seven arm joints."),
            "prev_hand_pos": StateField((3,), "m", "world", f"{frame} hand_pos."),
            "prev_gripper_opening": StateField((), "1", "gripper", f"{frame} gripper_opening."),
            "prev_obj_pos": StateField((3,), "m", "world", f"{frame} obj_pos."),
            "prev_obj_quat": StateField((4,), "1", "world", f"{frame} obj_quat."),
            "last_action": StateField((4,), "1", "actuator", "Action of the last control step in [-1, 1]: [dx, dy, dz] moves the hand's target by action_scale m per unit, grip -1 opens and +1 closes the fingers."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.goal is not None, "reset() before state()"
        self._on_device(sim.qpos.device)
        assert self._frame is not None and self._prev is not None and self._frame_time is not None
        assert self._fresh is not None and self._succeeded is not None
        xpos = sim.xpos
        hand = xpos[:, self._hand_body]
        tips = sim.site_xpos[:, self._fingertips]
        tcp = 0.5 * (tips[:, 0] + tips[:, 1])
        claws = xpos[:, self._claws]
        grip = (torch.linalg.vector_norm(claws[:, 0] - claws[:, 1], dim=-1) / 0.1).clamp(0.0, 1.0)
        obj, quat = self.object_point(sim)
        goal = self.goal.to(obj.dtype)
        dist = self.obj_to_goal(obj, goal)
        now = dist <= self.cfg.success_distance
        self._succeeded |= now
        frame = torch.cat([hand, grip[:, None], obj, quat], -1).float()
        # Frame stack: shift when the world's time moved on (a control step), keep when the state
        # is recomputed at the same time, restart right after a reset.
        t = sim.time.to(torch.float64)
        moved = t != self._frame_time
        prev = torch.where(moved[:, None], self._frame, self._prev)
        prev = torch.where(self._fresh[:, None], frame, prev)
        self._prev, self._frame, self._frame_time = prev, frame, t.clone()
        self._fresh[:] = False
        q = sim.qpos
        return {
            "hand_pos": hand.float(),
            "tcp_pos": tcp.float(),
            "gripper_opening": grip.float(),
            "obj_pos": obj.float(),
            "obj_quat": quat.float(),
            "goal_pos": goal.float(),
            "obj_to_goal": dist.float(),
            "tcp_to_obj": torch.linalg.vector_norm(obj - tcp, dim=-1).float(),
            self.joint_entry: (self.joint_sign * q[:, self._obj_q]).float(),
            "success_now": now.float(),
            "succeeded": self._succeeded.float(),
            "joint_pos": q[:, self._arm_q].float(),
            "joint_vel": sim.qvel[:, self._arm_v].float(),
            "prev_hand_pos": prev[:, 0:3].clone(),
            "prev_gripper_opening": prev[:, 3].clone(),
            "prev_obj_pos": prev[:, 4:7].clone(),
            "prev_obj_quat": prev[:, 7:11].clone(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        """MetaWorld's 39 values (MT1, goal visible); the hand positions clipped to its
        ``_HAND_SPACE`` as MetaWorld clips its observation."""
        ref = state["hand_pos"]
        lo = torch.tensor(HAND_SPACE[0], dtype=ref.dtype, device=ref.device)
        hi = torch.tensor(HAND_SPACE[1], dtype=ref.dtype, device=ref.device)
        pad = torch.zeros(ref.shape[0], OBS_PAD, dtype=ref.dtype, device=ref.device)
        return torch.cat(
            [
                torch.maximum(torch.minimum(state["hand_pos"], hi), lo),
                state["gripper_opening"][:, None],
                state["obj_pos"],
                state["obj_quat"],
                pad,
                torch.maximum(torch.minimum(state["prev_hand_pos"], hi), lo),
                state["prev_gripper_opening"][:, None],
                state["prev_obj_pos"],
                state["prev_obj_quat"],
                pad,
                state["goal_pos"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [
            ("hand_pos", 3), ("gripper_opening", 1), ("obj_pos", 3), ("obj_quat", 4), ("zeros", OBS_PAD),
            ("prev_hand_pos", 3), ("prev_gripper_opening", 1), ("prev_obj_pos", 3), ("prev_obj_quat", 4), ("zeros", OBS_PAD),
            ("goal_pos", 3),
        ]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return state["succeeded"] > 0.5


# -- names other frameworks' rewards use ---------------------------------------------------------

TEXT2REWARD_METAWORLD: dict[str, str] = {
    **T2R_JOINTS,
    "robot.ee_position": "hand_pos",
    "robot.gripper_openness": "gripper_opening",
    "obj1.position": "obj_pos",
    "obj1.quaternion": "obj_quat",
    "goal_position": "goal_pos",
    # MetaWorld's env itself (Text2Reward's "specific" rewards read self.env.<...>)
    "env._get_pos_goal()": "goal_pos",
    "_target_pos": "goal_pos",
    "tcp_center": "tcp_pos",
}
"""Text2Reward's MetaWorld abstraction (its MetaworldPrompt and metaworld_exp.py mapping:
``self.robot.ee_position`` = obs[:3], ``self.robot.gripper_openness`` = obs[3],
``self.obj1.position`` = obs[4:7], ``self.obj1.quaternion`` = obs[7:11], ``self.goal_position``
= the env's goal). ``self.obj2`` is absent: these scenes have one object (MetaWorld's slots for a
second object are zeros)."""


def _col(label: str, width: int, name: str) -> Column:
    return Column(label, width, lambda s, a, dt: s[name])


def _zeros(label: str) -> Column:
    return Column(label, 7, lambda s, a, dt: torch.zeros(a.shape[0], 7, device=a.device))


METAWORLD_OBS = Columns(
    (
        _col("hand position", 3, "hand_pos"),
        _col("gripper distance", 1, "gripper_opening"),
        _col("object 1 position", 3, "obj_pos"),
        _col("object 1 quaternion", 4, "obj_quat"),
        _zeros("object 2 position and quaternion (zeros)"),
        _col("previous hand position", 3, "prev_hand_pos"),
        _col("previous gripper distance", 1, "prev_gripper_opening"),
        _col("previous object 1 position", 3, "prev_obj_pos"),
        _col("previous object 1 quaternion", 4, "prev_obj_quat"),
        _zeros("previous object 2 (zeros)"),
        _col("goal position", 3, "goal_pos"),
    ),
    "MetaWorld's 39-value observation, every column from the state (the task's own observation "
    "without the hand clipping)",
)
"""Text2Reward's ``obs`` of ``compute_dense_reward(self, action, obs)`` on the Sawyer tasks."""

EUREKA_SAWYER: dict[str, Binding] = {
    "dof_pos": entry("joint_pos"),
    "dof_vel": entry("joint_vel"),
    "hand_pos": entry("hand_pos"),
    "end_effector_pos": entry("hand_pos"),
    "franka_grasp_pos": entry("tcp_pos"),
    "grasp_pos": entry("tcp_pos"),
    "tcp_pos": entry("tcp_pos"),
    "object_pos": entry("obj_pos"),
    "object_rot": entry("obj_quat"),
    "goal_pos": entry("goal_pos"),
    "target_pos": entry("goal_pos"),
}
"""IsaacGymEnvs-style argument names for the Sawyer tasks (manipulation names of Eureka's
FrankaCabinet / ShadowHand rewards that have a counterpart here)."""
