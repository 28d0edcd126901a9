"""IsaacGymEnvs, DrEureka and Text2Reward names shared by a family of tasks.

A task declares its own ``eureka_names`` and ``text2reward_attrs``
(:mod:`rewardlab.envs.tasks.knowledge`); the locomotion tasks (ant, humanoid) share the names of
IsaacGymEnvs' Ant and Humanoid envs (and of DrEureka's legged_gym env), computed here from the
state entries they all have: ``torso_pos``, ``torso_quat`` (w, x, y, z), ``torso_linvel``
(world), ``torso_angvel`` (torso frame), ``joint_pos``, ``joint_vel``. The model constants any
task may bind (joint limits, motor efforts of the task's joints) are built here too:
:func:`joint_limits`, :func:`motor_efforts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import torch

from rewardlab.envs.tasks.authoring import quat_rotate, quat_rotate_inverse
from rewardlab.envs.tasks.knowledge import (
    Binding,
    Column,
    Columns,
    Constant,
    ForeignName,
    Unavailable,
    constant,
    entry,
)

State = Mapping[str, torch.Tensor]


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
    return quat_rotate(s["torso_quat"], s["torso_angvel"])


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
    "agent.robot.get_qpos()": "joint_pos",
    "agent.robot.get_qvel()": "joint_vel",
    "last_action": "last_action",
    "prev_action": "prev_action",
}
"""Text2Reward attributes of a robot's joints and actions (its Panda abstraction's
``self.robot.qpos``; ManiSkill's ``self.agent.robot.get_qpos()``)."""

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


# -- model constants of a task's joints (any task) ------------------------------------------------


def _joint_ids(model: mujoco.MjModel, names: Sequence[str]) -> list[int]:
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
    missing = [n for n, i in zip(names, ids, strict=True) if i < 0]
    if missing:
        raise ValueError(f"the model has no joint(s) {missing}")
    return ids


def joint_limits(names: Sequence[str], side: str | None = None) -> Constant:
    """The position limits of joints ``names`` (in that order) from the task's model:
    ``side="lower"`` / ``"upper"``: ``[n]`` (IsaacGymEnvs' ``dof_limits_lower``); ``None``:
    ``[n, 2]`` (legged_gym's ``dof_pos_limits``). A joint without limits makes it unavailable."""
    col = {"lower": 0, "upper": 1, None: None}[side]

    def compute(task: Any) -> list:
        m = task.model
        ids = _joint_ids(m, names)
        if not all(m.jnt_limited[i] for i in ids):
            raise ValueError("a joint has no limits")
        rng = [[float(m.jnt_range[i][0]), float(m.jnt_range[i][1])] for i in ids]
        return rng if col is None else [r[col] for r in rng]

    what = "`[n, 2]` (lower, upper)" if side is None else f"the {side} limits `[n]`"
    return Constant(compute, f"{what} of the joints in `joint_pos` order, from the model's joint ranges (rad)")  # fmt: skip


def motor_efforts(names: Sequence[str]) -> Constant:
    """``[n]``: the torque (N m) action 1 commands on each joint of ``names``: gear times the
    largest control of the motor that drives it (IsaacGymEnvs' ``motor_efforts``)."""

    def compute(task: Any) -> list:
        m = task.model
        out = []
        for j in _joint_ids(m, names):
            acts = [a for a in range(m.nu) if int(m.actuator_trnid[a, 0]) == j]
            if len(acts) != 1:
                raise ValueError(f"joint {j} has {len(acts)} actuators")
            lo, hi = m.actuator_ctrlrange[acts[0]]
            if abs(lo + hi) > 1e-9:
                raise ValueError("the control range is not symmetric")
            out.append(float(m.actuator_gear[acts[0], 0] * hi))
        return out

    return Constant(compute, "`[n]` torque (N m) of action 1 per joint: the motor's gear times its control range")  # fmt: skip


# -- IsaacGymEnvs' locomotion observation (obs_buf) and DrEureka's legged_gym names -----------------

_UP = (0.0, 0.0, 1.0)


def _euler(s: State) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll and yaw of the torso in ``[0, 2 pi)`` (IsaacGym's ``get_euler_xyz``)."""
    w, x, y, z = s["torso_quat"].unbind(-1)
    roll = torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll % (2 * math.pi), yaw % (2 * math.pi)


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.atan2(torch.sin(x), torch.cos(x))


def _angle_to_target(s: State) -> torch.Tensor:
    pos = s["torso_pos"]
    walk = torch.atan2(-pos[:, 1], TARGET_X - pos[:, 0])
    return walk - _euler(s)[1]


def _dof_pos_scaled(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    lo, hi = s["dof_limits_lower"], s["dof_limits_upper"]
    return (2.0 * s["joint_pos"] - hi - lo) / (hi - lo)


def _torques(s: State, a: torch.Tensor, dt: float) -> torch.Tensor:
    return a * s["motor_efforts"]


def locomotion_obs(humanoid: bool, n: int, sensors: int, force_scale: float, vel_scale: float) -> Columns:  # fmt: skip
    """IsaacGymEnvs' Ant (``humanoid=False``) or Humanoid observation ``obs_buf`` over ``n``
    joints, column by column: torso height, local velocity, local angular velocity (Humanoid:
    * 0.25), yaw, roll, angle to the target (Humanoid: wrapped to (-pi, pi]), up and heading
    projections, scaled joint positions, joint velocities * ``vel_scale``, (Humanoid: joint
    forces * ``force_scale``), force sensors (unavailable), actions."""
    ang_scale = 0.25 if humanoid else 1.0
    wrap = _wrap if humanoid else (lambda x: x)

    def col(label: str, width: int, fn: Any) -> Column:
        return Column(label, width, fn)

    parts = [
        col("torso height", 1, lambda s, a, dt: s["torso_pos"][:, 2]),
        col(
            "velocity (torso frame)",
            3,
            lambda s, a, dt: quat_rotate_inverse(s["torso_quat"], s["torso_linvel"]),
        ),  # fmt: skip
        col(
            "angular velocity (torso frame)" + (" * 0.25" if humanoid else ""),
            3,
            lambda s, a, dt: s["torso_angvel"] * ang_scale,
        ),  # fmt: skip
        col("yaw", 1, lambda s, a, dt: wrap(_euler(s)[1])),
        col("roll", 1, lambda s, a, dt: wrap(_euler(s)[0])),
        col("angle to the target", 1, lambda s, a, dt: wrap(_angle_to_target(s))),
        col("up_proj", 1, lambda s, a, dt: body_axis(s["torso_quat"], 2)[:, 2]),
        col("heading_proj", 1, _heading_proj),
        col("dof_pos scaled to [-1, 1] by the joint limits", n, _dof_pos_scaled),
        col(f"dof_vel * {vel_scale}", n, lambda s, a, dt: s["joint_vel"] * vel_scale),
    ]
    if humanoid:
        parts.append(col(f"dof_force * {force_scale} (the commanded torques)", n, lambda s, a, dt: _torques(s, a, dt) * force_scale))  # fmt: skip
    parts.append(Column(f"force sensors * {force_scale}", sensors, None, "the model has no force-torque sensors"))  # fmt: skip
    parts.append(col("actions", n, lambda s, a, dt: a))
    name = "Humanoid" if humanoid else "Ant"
    return Columns(tuple(parts), f"IsaacGymEnvs' {name} observation")


def locomotion_names(
    joints: Sequence[str],
    *,
    humanoid: bool,
    termination_height: Constant,
    default_pose: Sequence[float],
    feet: ForeignName,
) -> dict[str, ForeignName]:
    """Every IsaacGymEnvs (Ant / Humanoid) and DrEureka (legged_gym) name of a torso robot whose
    joints are ``joints`` (``joint_pos`` order): :data:`LOCOMOTION_EUREKA`, ``obs_buf`` in
    IsaacGymEnvs' layout, the joint limits and motor efforts of the model, IsaacGymEnvs'
    Ant.yaml / Humanoid.yaml reward settings (their default values), ``termination_height``
    (the task's own fall threshold, as a torso height), and legged_gym's body-frame names."""
    n = len(joints)
    src = "Humanoid.yaml" if humanoid else "Ant.yaml"
    cfg = (
        {"up_weight": 0.1, "heading_weight": 0.5, "actions_cost_scale": 0.01, "energy_cost_scale": 0.05,
         "joints_at_limit_cost_scale": 0.25, "death_cost": -1.0, "dof_vel_scale": 0.1,
         "contact_force_scale": 0.01, "angular_velocity_scale": 0.25, "power_scale": 1.0}
        if humanoid else
        {"up_weight": 0.1, "heading_weight": 0.5, "actions_cost_scale": 0.005, "energy_cost_scale": 0.05,
         "joints_at_limit_cost_scale": 0.1, "death_cost": -2.0, "dof_vel_scale": 0.2,
         "contact_force_scale": 0.1, "power_scale": 1.0}
    )  # fmt: skip
    efforts = motor_efforts(joints)
    out: dict[str, ForeignName] = {
        **LOCOMOTION_EUREKA,
        "obs_buf": locomotion_obs(
            humanoid, n, 12 if humanoid else 24, cfg["contact_force_scale"], cfg["dof_vel_scale"]
        ),  # fmt: skip
        "dof_limits_lower": joint_limits(joints, "lower"),
        "dof_limits_upper": joint_limits(joints, "upper"),
        "motor_efforts": efforts,
        "joint_gears": efforts,
        "max_motor_effort": Constant(
            lambda task: max(efforts.compute(task)), "the largest of `motor_efforts` (N m)"
        ),  # fmt: skip
        **{k: constant(v, f"IsaacGymEnvs' {src} default") for k, v in cfg.items()},
        "termination_height": termination_height,
        "inv_start_rot": Binding(
            lambda s, a, dt: _rows(a, (0.0, 0.0, 0.0, 1.0)),
            "`[N, 4]` (0, 0, 0, 1): the task starts facing +x, upright",
        ),  # fmt: skip
        "basis_vec0": Binding(
            lambda s, a, dt: _rows(a, (1.0, 0.0, 0.0)), "`[N, 3]` (1, 0, 0): forward"
        ),  # fmt: skip
        "basis_vec1": Binding(lambda s, a, dt: _rows(a, _UP), "`[N, 3]` (0, 0, 1): up"),
        "dof_force_tensor": Binding(
            _torques,
            "the joint torques the action commands, `actions * motor_efforts` (N m; MuJoCo's actuator force, not a measured joint force)",
        ),  # fmt: skip
        "dof_force": Binding(_torques, "as `dof_force_tensor`"),
        # DrEureka's legged_gym env (env.<name>)
        "base_pos": entry("torso_pos"),
        "base_quat": Binding(
            lambda s, a, dt: _xyzw(s["torso_quat"]), "`torso_quat` as (x, y, z, w)"
        ),  # fmt: skip
        "base_lin_vel": Binding(
            lambda s, a, dt: quat_rotate_inverse(s["torso_quat"], s["torso_linvel"]),
            "`torso_linvel` in the torso frame",
        ),  # fmt: skip
        "base_ang_vel": entry("torso_angvel"),
        "projected_gravity": Binding(
            lambda s, a, dt: quat_rotate_inverse(s["torso_quat"], _rows(a, (0.0, 0.0, -1.0))),
            "gravity's direction (0, 0, -1) in the torso frame",
        ),  # fmt: skip
        "gravity_vec": Binding(
            lambda s, a, dt: _rows(a, (0.0, 0.0, -1.0)), "`[N, 3]` (0, 0, -1)"
        ),  # fmt: skip
        "default_dof_pos": Constant(
            lambda task: [list(default_pose)], "`[1, n]` the task's home joint positions"
        ),  # fmt: skip
        "dof_pos_limits": joint_limits(joints),
        "torques": Binding(
            _torques, "the joint torques the action commands, `actions * motor_efforts` (N m)"
        ),  # fmt: skip
        "torque_limits": efforts,
        "foot_positions": feet,
        "last_dof_vel": Unavailable("the state keeps no joint velocity of the previous step"),
        "commands": Unavailable(
            "the task has no velocity commands (it runs or stands as its description says)"
        ),  # fmt: skip
        "measured_heights": Unavailable(
            "the ground is flat and not sampled (use the torso height)"
        ),  # fmt: skip
        "feet_air_time": Unavailable("the task has no contact sensing of the feet"),
        "last_contacts": Unavailable("the task has no contact sensing of the feet"),
        "feet_indices": Unavailable("the task has no contact sensing of the feet"),
    }
    return out


def _rows(a: torch.Tensor, values: Sequence[float]) -> torch.Tensor:
    """``[N, len(values)]``: ``values`` in every row (a fresh tensor)."""
    return torch.tensor(values, dtype=torch.float32, device=a.device).repeat(a.shape[0], 1)


# -- Text2Reward's MetaWorld observation and its Ant abstraction -----------------------------------


def metaworld_obs(
    hand: str,
    goal: str,
    *,
    gripper: str | None = None,
    obj_pos: str | None = None,
    obj_quat: str | None = None,
    missing: str = "the task has no such object",
) -> Columns:
    """MetaWorld's 39-column observation (Text2Reward's ``obs`` of ``compute_dense_reward(self,
    action, obs)``) from state entries: hand position, gripper distance, object 1 position and
    quaternion (w, x, y, z as the state gives it), object 2 (MetaWorld pads it with zeros), the
    previous frame's 18 values (not kept: unavailable) and the goal position. A part given as
    ``None`` is unavailable, with ``missing`` as the reason."""

    def part(label: str, width: int, name: str | None, why: str = missing) -> Column:
        if name is None:
            return Column(label, width, None, why)
        return Column(label, width, lambda s, a, dt: s[name])

    return Columns(
        (
            part("hand position", 3, hand),
            part("gripper distance", 1, gripper, "the task has no gripper"),
            part("object 1 position", 3, obj_pos),
            part("object 1 quaternion", 4, obj_quat),
            Column(
                "object 2 position and quaternion (zeros)",
                7,
                lambda s, a, dt: torch.zeros(a.shape[0], 7, device=a.device),
            ),  # fmt: skip
            Column(
                "the previous frame's hand, gripper and objects",
                18,
                None,
                "the state keeps no previous frame",
            ),  # fmt: skip
            part("goal position", 3, goal),
        ),
        "MetaWorld's observation",
    )


def t2r_ant(joint_names: Sequence[str]) -> dict[str, Any]:
    """Text2Reward's Ant abstraction (its AntPrompt): ``self.ant.torso.position_x`` ... (world
    frame), ``self.ant.<leg>_leg_joint.angle`` / ``_ankle_joint`` for the hips and ankles in
    ``joint_pos`` order (front left, front right, back left, back right), and ``self.dt``."""
    out: dict[str, Any] = {"dt": Binding(lambda s, a, dt: float(dt), "the control step (s)")}
    axes = "xyz"
    for i, ax in enumerate(axes):
        out[f"ant.torso.position_{ax}"] = Binding(lambda s, a, dt, i=i: s["torso_pos"][:, i], f"`torso_pos[:, {i}]`")  # fmt: skip
        out[f"ant.torso.velocity_{ax}"] = Binding(lambda s, a, dt, i=i: s["torso_linvel"][:, i], f"`torso_linvel[:, {i}]`")  # fmt: skip
        out[f"ant.torso.angular_velocity_{ax}"] = Binding(
            lambda s, a, dt, i=i: _angvel_world(s)[:, i], f"`torso_angvel` in the world frame, [:, {i}]"
        )  # fmt: skip
    legs = ("front_left", "front_right", "back_left", "back_right")
    for j in range(len(joint_names)):
        leg, kind = legs[j // 2], ("leg", "ankle")[j % 2]
        out[f"ant.{leg}_{kind}_joint.angle"] = Binding(lambda s, a, dt, j=j: s["joint_pos"][:, j], f"`joint_pos[:, {j}]`")  # fmt: skip
        out[f"ant.{leg}_{kind}_joint.angular_velocity"] = Binding(lambda s, a, dt, j=j: s["joint_vel"][:, j], f"`joint_vel[:, {j}]`")  # fmt: skip
    return out
