"""Humanoid stand and walk: a 21-DoF torque-controlled humanoid (``rewardlab.envs.robots.HUMANOID``).

Every episode starts standing at the origin (x = y = 0 exactly, facing +x) with uniform noise on
the joint angles and velocities. An episode terminates when the humanoid falls: its head drops
below ``fall_head_height`` (standing: 1.475 m; kneeling upright: about 1.1 m; sitting or lying:
below 0.9 m), so kneeling does not terminate with the defaults.

``humanoid_stand`` succeeds if the head is above ``success_head_height`` (1.2 m) on the last
step; ``humanoid_walk`` succeeds if the mean forward speed over the episode (torso x / elapsed
time) is at least ``walk_speed`` (1 m/s) on the last step. Neither succeeds after a fall.

The state keeps head, pelvis, knee and foot heights readable (for rewards of other postures,
e.g. kneeling), and the whole-body centre of mass and its velocity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_l2, alive
from rewardlab.envs.base import StateField
from rewardlab.envs.robots import HUMANOID, HUMANOID_STANDING_HEAD_HEIGHT
from rewardlab.envs.tasks.authoring import (
    ActionMap,
    BoundActionMap,
    JointTargets,
    quat_rotate_inverse,
)
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task
from rewardlab.envs.tasks.isaacgym_names import T2R_LOCOMOTION, locomotion_names
from rewardlab.envs.tasks.knowledge import CameraSpec, Constant, OptOut, Prompts, entry

State = Mapping[str, torch.Tensor]

_SIDES = ("left", "right")
# value of the tolerance terms at one margin away from their bound (as dm_control's tolerance)
_MARGIN_VALUE = 0.1
_GAUSS = math.sqrt(-2.0 * math.log(_MARGIN_VALUE))
CONTROLS = ("torque", "pd")
"""Values of ``HumanoidConfig.control``."""


@dataclass(frozen=True)
class HumanoidConfig(TaskConfig):
    """Humanoid settings (timestep 0.005 s in the MJCF; 40 Hz control at frame_skip 5)."""

    frame_skip: int = 5
    """Physics steps per control step."""
    episode_steps: int = 400
    """Time limit in control steps (10 s at 40 Hz)."""
    reset_noise: float = 0.02
    """Half-width of the uniform noise on the initial joint angles (rad) and all velocities."""
    fall_head_height: float = 1.0
    """Terminate when the head is lower than this (m); 0 disables termination."""
    stand_height: float = 1.4
    """Head height (m) at and above which the ``standing`` term pays 1 (dm_control's value)."""
    success_head_height: float = 1.2
    """``humanoid_stand`` succeeds if the head is at least this high (m) on the last step."""
    walk_speed: float = 1.0
    """Target forward speed (m/s): ``forward_speed`` pays 1 at and above it; ``humanoid_walk``
    succeeds if the mean forward speed over the episode reaches it."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights (stand: standing, upright, still, healthy, effort;
    walk: forward_speed, standing, upright, healthy, effort)."""
    control: str = "torque"
    """``torque``: one motor per joint, torque = action * gear (the classic MuJoCo humanoid);
    ``pd``: the motors become position servos at the physics rate (kp = ``pd_stiffness`` *
    gear, kd = ``pd_damping`` * kp, torque still limited to +-gear) and an action sets the
    joint's target ``a * pd_action_scale * half its range`` around the standing pose, clipped to
    the range (Peng & van de Panne 2017: PD targets learn faster than torques)."""
    pd_stiffness: float = 2.0
    """PD kp per N m of gear (1/rad): hip_y 240 N m/rad, knee 160, ankle 40 (``control: pd``)."""
    pd_damping: float = 0.05
    """PD kd as a fraction of kp (s) (``control: pd``)."""
    pd_action_scale: float = 1.0
    """Target offset per unit action as a fraction of each joint's half range (``control: pd``)."""

    def validate(self) -> None:
        super().validate()
        if self.control not in CONTROLS:
            raise ValueError(
                f"control: got {self.control!r}, expected one of {', '.join(CONTROLS)}"
            )
        for name in ("pd_stiffness", "pd_damping", "pd_action_scale"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("fall_head_height", "stand_height", "success_head_height", "walk_speed"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.stand_height <= 0:
            raise ValueError(f"stand_height must be > 0, got {self.stand_height}")


# -- helpers -------------------------------------------------------------------------------------


def tolerance_above(x: torch.Tensor, bound: float, margin: float) -> torch.Tensor:
    """1 where ``x >= bound``, falling as a Gaussian to 0.1 at ``bound - margin`` (dm_control style)."""
    d = torch.clamp(bound - x, min=0.0) / margin
    return torch.exp(-0.5 * (d * _GAUSS) ** 2)


# -- reward terms ------------------------------------------------------------------------------


def standing(state: State, action: torch.Tensor, height: float = 1.4) -> torch.Tensor:
    """1 when the head is at or above ``height``, smoothly less when lower (0.1 at height/4 lower)."""
    return tolerance_above(state["head_height"], height, height / 4)


def upright(state: State, action: torch.Tensor) -> torch.Tensor:
    """(1 + torso_upright) / 2: 1 with the torso vertical, 0 upside down."""
    return 0.5 * (1.0 + state["torso_upright"])


def still(state: State, action: torch.Tensor) -> torch.Tensor:
    """exp(-|horizontal centre-of-mass velocity|^2): 1 when not drifting."""
    return torch.exp(-(state["com_vel"][:, :2] ** 2).sum(-1))


def forward_speed(state: State, action: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
    """Centre-of-mass speed along +x divided by ``speed``, clipped to [-1, 1]."""
    return torch.clamp(state["com_vel"][:, 0] / speed, -1.0, 1.0)


def _pd_servos(model: mujoco.MjModel, cfg: HumanoidConfig) -> BoundActionMap:
    """Turn the model's motors into position servos (in place: this env's model) and return the
    action map that sets their targets around the standing pose (``HumanoidConfig.control``)."""
    scale = []
    for i in range(model.nu):
        gear = float(model.actuator_gear[i, 0])
        j = int(model.actuator_trnid[i, 0])
        kp = cfg.pd_stiffness * gear
        model.actuator_gear[i, 0] = 1.0
        model.actuator_gaintype[i] = mujoco.mjtGain.mjGAIN_FIXED
        model.actuator_gainprm[i, :] = 0.0
        model.actuator_gainprm[i, 0] = kp
        model.actuator_biastype[i] = mujoco.mjtBias.mjBIAS_AFFINE
        model.actuator_biasprm[i, :] = 0.0
        model.actuator_biasprm[i, 1:3] = (-kp, -cfg.pd_damping * kp)
        model.actuator_forcelimited[i] = 1
        model.actuator_forcerange[i] = (-gear, gear)
        model.actuator_ctrllimited[i] = 1
        model.actuator_ctrlrange[i] = model.jnt_range[j]
        scale.append(cfg.pd_action_scale * float(model.jnt_range[j, 1] - model.jnt_range[j, 0]) / 2)
    # the standing pose is qpos0 (every hinge at 0), which default_controls holds
    return ActionMap((JointTargets((), scale=tuple(scale)),)).bind(model)


_EFFORTS = Constant(
    lambda task: list(HUMANOID.gear),
    "`[n]` torque limit (N m) per joint: the motor's gear (action 1 with `control: torque`; the servo's torque limit with `control: pd`)",
)  # fmt: skip

# -- tasks -----------------------------------------------------------------------------------------


class _Humanoid(Task):
    model_file = HUMANOID.model_file
    sim_fields = ("xpos", "xquat", "site_xpos", "subtree_com", "sensordata", "time")

    # From the side, following the torso in x and y at a fixed height: standing, kneeling,
    # sitting and lying bodies all fit (the shipped tiny CLIP was trained on this view).
    reward_camera = CameraSpec(3.2, 90.0, -10.0, (0.0, 0.0, 0.75), "torso", (True, True, False))
    eureka_names = locomotion_names(
        HUMANOID.joint_names,
        humanoid=True,
        termination_height=Constant(
            lambda task: float(task.cfg.fall_head_height) - (HUMANOID_STANDING_HEAD_HEIGHT - HUMANOID.base_height),
            "the torso height (m) of an upright body whose head is at the config's `fall_head_height`, below which an episode terminates: fall_head_height - 0.19 (IsaacGymEnvs' Humanoid: 0.8)",
        ),
        default_pose=HUMANOID.default_pose,
        feet=entry("feet_pos"),
    ) | {
        # the joints' torque limits whatever the control mode (with `control: pd` the motors are
        # servos whose gear is 1 and whose control range is the joint range)
        "motor_efforts": _EFFORTS,
        "joint_gears": _EFFORTS,
        "max_motor_effort": Constant(lambda task: max(HUMANOID.gear), "the largest of `motor_efforts` (N m)"),
    }  # fmt: skip
    text2reward_attrs = {**T2R_LOCOMOTION, "robot.head_height": "head_height"}
    scripted_episodes = OptOut(
        "no hand-written controller holds a humanoid posture; record an EpisodeSet from a "
        "trained policy instead"
    )

    def __init__(self, cfg: HumanoidConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: HumanoidConfig = cfg

        def obj(kind: mujoco.mjtObj, name: str) -> int:
            i = mujoco.mj_name2id(model, kind, name)
            if i < 0:
                raise ValueError(f"{self.name}: the model has no {kind.name} named {name!r}")
            return i

        jnt = [obj(mujoco.mjtObj.mjOBJ_JOINT, n) for n in HUMANOID.joint_names]
        self._qpos_idx = torch.as_tensor([int(model.jnt_qposadr[j]) for j in jnt])
        self._qvel_idx = torch.as_tensor([int(model.jnt_dofadr[j]) for j in jnt])
        self._torso = obj(mujoco.mjtObj.mjOBJ_BODY, "torso")
        site = lambda n: obj(mujoco.mjtObj.mjOBJ_SITE, n)  # noqa: E731
        self._head = site("head")
        self._pelvis = site("pelvis")
        self._knees = torch.as_tensor([site(f"{s}_knee") for s in _SIDES])
        self._feet = torch.as_tensor([site(f"{s}_foot") for s in _SIDES])
        self._hands = torch.as_tensor([site(f"{s}_hand") for s in _SIDES])
        sensor = obj(mujoco.mjtObj.mjOBJ_SENSOR, "com_vel")
        adr = int(model.sensor_adr[sensor])
        self._com_vel = slice(adr, adr + 3)
        self._qpos0 = torch.as_tensor(model.qpos0.copy())
        self._qpos0[2] = HUMANOID.base_height
        self._qpos0[self._qpos_idx] = torch.as_tensor(HUMANOID.default_pose, dtype=torch.float64)
        if cfg.control == "pd":
            self.action_map = _pd_servos(model, cfg)

    @classmethod
    def default_config(cls) -> HumanoidConfig:
        return HumanoidConfig()

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.reset_near(sim, env_ids, gen, self._qpos0, self._qpos_idx)

    def state_spec(self) -> dict[str, StateField]:
        lr = "[left, right]"
        return {
            "head_height": StateField((), "m", "world", f"Height of the head centre; {HUMANOID_STANDING_HEAD_HEIGHT} standing straight, about 1.1 kneeling upright, below 0.5 lying."),
            "pelvis_height": StateField((), "m", "world", "Height of the pelvis centre; about 0.86 standing, about 0.5 kneeling upright, 0.1 to 0.2 sitting or lying."),
            "knee_height": StateField((2,), "m", "world", f"Height of the knee joints {lr}; about 0.44 standing, near 0.05 when a knee is on the floor."),
            "feet_pos": StateField((2, 3), "m", "world", f"Position of the sole centre of each foot {lr}; z is about 0 when the foot is on the floor."),
            "hands_pos": StateField((2, 3), "m", "world", f"Position of each hand {lr}."),
            "torso_pos": StateField((3,), "m", "world", "Position of the torso (chest, the root body); starts at x = y = 0, z = 1.285."),
            "torso_quat": StateField((4,), "1", "world", "Torso orientation quaternion (w, x, y, z); (1, 0, 0, 0) is upright facing +x."),
            "torso_upright": StateField((), "1", "world", "z of the torso's up axis: 1 vertical, 0 horizontal, -1 upside down."),
            "torso_linvel": StateField((3,), "m/s", "world", "Linear velocity of the torso (chest)."),
            "torso_angvel": StateField((3,), "rad/s", "torso", "Angular velocity of the torso (as a gyro on the chest measures it)."),
            "gravity_torso": StateField((3,), "1", "torso", "Unit vector of gravity (world -z) seen from the torso; (0, 0, -1) when upright."),
            "com_pos": StateField((3,), "m", "world", "Whole-body centre of mass."),
            "com_vel": StateField((3,), "m/s", "world", "Whole-body centre-of-mass velocity; com_vel[0] is the forward (+x) speed."),
            "joint_pos": StateField((21,), "rad", "joint", "Hinge angles in robots.HUMANOID.joint_names order (abdomen z/y/x, right leg hip x/z/y, knee, ankle y/x, left leg likewise, right arm shoulder1/2, elbow, left arm likewise); 0 is standing straight; knee < 0 is bent."),
            "joint_vel": StateField((21,), "rad/s", "joint", "Hinge angular velocities, in joint_pos order."),
            "episode_time": StateField((), "s", "episode", "Simulated time since the episode started."),
            "last_action": StateField((21,), "1", "actuator", "Action of the previous control step in [-1, 1] (torque / gear per joint), in joint_pos order."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        quat = sim.xquat[:, self._torso]
        n = quat.shape[0]
        down = torch.tensor([0.0, 0.0, -1.0], dtype=quat.dtype, device=quat.device).expand(n, 3)
        return {
            "head_height": sim.site_xpos[:, self._head, 2].float(),
            "pelvis_height": sim.site_xpos[:, self._pelvis, 2].float(),
            "knee_height": sim.site_xpos[:, self._knees, 2].float(),
            "feet_pos": sim.site_xpos[:, self._feet].float(),
            "hands_pos": sim.site_xpos[:, self._hands].float(),
            "torso_pos": sim.xpos[:, self._torso].float(),
            "torso_quat": quat.float(),
            "torso_upright": (1.0 - 2.0 * (quat[:, 1] ** 2 + quat[:, 2] ** 2)).float(),
            "torso_linvel": sim.qvel[:, 0:3].float(),
            "torso_angvel": sim.qvel[:, 3:6].float(),
            "gravity_torso": quat_rotate_inverse(quat, down).float(),
            "com_pos": sim.subtree_com[:, self._torso].float(),
            "com_vel": sim.sensordata[:, self._com_vel].float(),
            "joint_pos": sim.qpos[:, self._qpos_idx].float(),
            "joint_vel": sim.qvel[:, self._qvel_idx].float(),
            "episode_time": sim.time.reshape(n).float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        quat = state["torso_quat"]
        torso = state["torso_pos"][:, None, :]
        # hands and feet relative to the torso, in the torso frame
        ext = torch.cat([state["hands_pos"], state["feet_pos"]], 1) - torso
        ext_local = quat_rotate_inverse(quat.repeat_interleave(4, 0), ext.reshape(-1, 3))
        return torch.cat(
            [
                state["joint_pos"],
                state["joint_vel"],
                state["head_height"][:, None],
                state["gravity_torso"],
                ext_local.reshape(-1, 12),
                quat_rotate_inverse(quat, state["com_vel"]),
                state["torso_angvel"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [
            ("joint_pos", 21),
            ("joint_vel", 21),
            ("head_height", 1),
            ("gravity_torso", 3),
            ("hands_pos, feet_pos - torso_pos (torso frame)", 12),
            ("com_vel (torso frame)", 3),
            ("torso_angvel", 3),
        ]

    def terminated(self, state: State) -> torch.Tensor:
        if self.cfg.fall_head_height <= 0:
            return super().terminated(state)
        return state["head_height"] < self.cfg.fall_head_height


@register_task
class HumanoidStand(_Humanoid):
    """Stay standing (head high, torso upright, not drifting) for the whole episode."""

    name = "humanoid_stand"
    success_threshold = 0.8
    prompts = Prompts(
        ("a humanoid robot standing upright",),
        ("a humanoid robot lying on the floor",),
    )

    def success(self, state: State) -> torch.Tensor:
        return state["head_height"] >= self.cfg.success_head_height

    def reward_terms(self) -> dict[str, RewardTerm]:
        terms = self._weighted(
            {
                "standing": (standing, 1.0),
                "upright": (upright, 0.5),
                "still": (still, 0.5),
                "healthy": (alive, 1.0),
                "effort": (action_l2, -0.01),
            }
        )
        return _with_params(terms, standing={"height": self.cfg.stand_height})


@register_task
class HumanoidWalk(_Humanoid):
    """Walk forward along +x at ``walk_speed`` or faster without falling."""

    name = "humanoid_walk"
    success_threshold = 0.5
    # A frame shows a walking posture, not the speed: the goal is an upright stride, the baseline
    # the fall this task terminates on (for a pretrained CLIP; the tiny CLIP knows no walking).
    prompts = Prompts(
        ("a humanoid robot walking forward",),
        ("a humanoid robot lying on the floor",),
    )

    def success(self, state: State) -> torch.Tensor:
        t = torch.clamp(state["episode_time"], min=1e-6)
        return state["torso_pos"][:, 0] / t >= self.cfg.walk_speed

    def reward_terms(self) -> dict[str, RewardTerm]:
        terms = self._weighted(
            {
                "forward_speed": (forward_speed, 2.0),
                "standing": (standing, 1.0),
                "upright": (upright, 0.5),
                "healthy": (alive, 1.0),
                "effort": (action_l2, -0.01),
            }
        )
        return _with_params(
            terms,
            standing={"height": self.cfg.stand_height},
            forward_speed={"speed": max(self.cfg.walk_speed, 1e-3)},
        )


def _with_params(terms: dict[str, RewardTerm], **params: dict) -> dict[str, RewardTerm]:
    """Bind config-derived keyword arguments to some terms."""
    out = dict(terms)
    for name, p in params.items():
        t = out[name]
        out[name] = RewardTerm(t.func, t.weight, {**t.params, **p})
    return out


# -- kneeling (a posture task for language-specified rewards: "a humanoid robot kneeling") -------


@dataclass(frozen=True)
class HumanoidKneelConfig(HumanoidConfig):
    """Humanoid kneel settings: the humanoid success band of a kneeling posture."""

    fall_head_height: float = 0.6
    """Terminate when the head is lower than this (m); kneeling upright puts it near 1.1 m."""
    knee_floor_height: float = 0.15
    """A knee counts as on the floor when its height is below this (m); standing: about 0.44."""
    pelvis_band: tuple[float, float] = (0.35, 0.8)
    """Pelvis height range (m) of kneeling: above sitting (0.1-0.2), below standing (0.86)."""
    head_band: tuple[float, float] = (0.95, 1.4)
    """Head height range (m) of kneeling upright (standing straight: 1.475)."""
    min_upright: float = 0.7
    """Minimum ``torso_upright`` (z of the torso's up axis) of kneeling upright."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: kneeling, upright, healthy, effort."""

    def validate(self) -> None:
        super().validate()
        for name in ("pelvis_band", "head_band"):
            lo, hi = getattr(self, name)
            if not 0 <= lo < hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low < high, got {(lo, hi)}")
        if self.knee_floor_height <= 0:
            raise ValueError(f"knee_floor_height must be > 0, got {self.knee_floor_height}")
        if not -1 <= self.min_upright <= 1:
            raise ValueError(f"min_upright must be in [-1, 1], got {self.min_upright}")


def kneeling(
    state: State,
    action: torch.Tensor,
    pelvis: float = 0.55,
    head: float = 1.15,
    knee: float = 0.1,
) -> torch.Tensor:
    """Dense kneel posture term in [0, 1]: the mean of three Gaussian tolerances, pelvis and head
    near their kneeling heights and the lower knee near the floor.

    A mean, not a product: at the standing pose the three read about 0.09, 0.18 and 0.28, so the
    term (0.18) points down towards kneeling; the product this replaced (knee width 0.15 m: 1e-4)
    gave PPO no gradient (with it, 2M steps of PD control stood for the whole episode and never
    knelt: benchmarks/results/locomotion.md).
    """
    low_knee = state["knee_height"].min(-1).values
    return (
        torch.exp(-(((state["pelvis_height"] - pelvis) / 0.2) ** 2))
        + torch.exp(-(((state["head_height"] - head) / 0.25) ** 2))
        + torch.exp(-((torch.clamp(low_knee - knee, min=0.0) / 0.3) ** 2))
    ) / 3.0


@register_task
class HumanoidKneel(_Humanoid):
    """Go down on one or both knees and stay kneeling upright ("a humanoid robot kneeling").

    VLM-RM's kneeling task. Success: on the last step a knee is on the floor, pelvis and head
    are in the kneeling bands and the torso is upright.
    """

    name = "humanoid_kneel"
    success_threshold = 0.5
    prompts = Prompts(
        ("a humanoid robot kneeling",),
        ("a humanoid robot standing upright", "a humanoid robot lying on the floor"),
    )

    @classmethod
    def default_config(cls) -> HumanoidKneelConfig:
        return HumanoidKneelConfig()

    def success(self, state: State) -> torch.Tensor:
        cfg: HumanoidKneelConfig = self.cfg  # type: ignore[assignment]
        pelvis, head = state["pelvis_height"], state["head_height"]
        return (
            (state["knee_height"].min(-1).values < cfg.knee_floor_height)
            & (pelvis >= cfg.pelvis_band[0])
            & (pelvis <= cfg.pelvis_band[1])
            & (head >= cfg.head_band[0])
            & (head <= cfg.head_band[1])
            & (state["torso_upright"] >= cfg.min_upright)
        )

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted(
            {
                "kneeling": (kneeling, 1.0),
                "upright": (upright, 0.5),
                "healthy": (alive, 0.5),
                "effort": (action_l2, -0.01),
            }
        )
