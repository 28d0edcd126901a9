"""Cart-pole: keep a hinged pole upright on a cart moving along a rail (dm_control's cartpole).

``cartpole_balance`` starts near upright and terminates when the pole tips past
``fall_angle`` or the cart leaves the rail; an episode succeeds if it lasts to the time limit.
``cartpole_swingup`` starts hanging down and never terminates; an episode succeeds if the pole
is upright (within ``success_angle``) at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_l2
from rewardlab.envs.base import StateField
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig, register_task, uniform
from rewardlab.envs.tasks.knowledge import (
    CameraSpec,
    Prompts,
    Script,
    ScriptedPolicy,
    Unavailable,
    config_value,
    entry,
    stacked,
)

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class CartpoleConfig(TaskConfig):
    """Cart-pole settings (timestep 0.01 s in the MJCF; 50 Hz control at frame_skip 2)."""

    frame_skip: int = 2
    """Physics steps per control step."""
    episode_steps: int = 500
    """Time limit in control steps (10 s at 50 Hz)."""
    reset_noise: float = 0.05
    """Half-width of the uniform noise on the initial cart position, pole angle and velocities."""
    initial_angle: float = 0.0
    """Mean initial pole angle in rad (0 upright, pi hanging down)."""
    fall_angle: float = 0.0
    """Terminate when |pole_angle| exceeds this (rad); 0 disables termination on angle."""
    rail_limit: float = 1.7
    """Terminate (balance) / count as failure when |cart_pos| exceeds this (m)."""
    success_angle: float = 0.25
    """An episode succeeds if |pole_angle| is below this (rad) on its last step."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: upright, centered, effort, pole_velocity."""


# -- reward terms ------------------------------------------------------------------------------


def upright(state: State, action: torch.Tensor) -> torch.Tensor:
    """(1 + cos(pole_angle)) / 2: 1 upright, 0 hanging down."""
    return 0.5 * (1.0 + torch.cos(state["pole_angle"]))


def centered(state: State, action: torch.Tensor) -> torch.Tensor:
    """exp(-cart_pos^2): 1 at the middle of the rail."""
    return torch.exp(-(state["cart_pos"] ** 2))


def pole_velocity(state: State, action: torch.Tensor) -> torch.Tensor:
    """Squared pole angular velocity (penalize with a negative weight)."""
    return state["pole_angvel"] ** 2


# -- scripted policies (vlm-eval's episodes) ----------------------------------------------------


def swingup_policy(pump_sign: float, gain: float, balance: bool, centering: float = 0.5) -> ScriptedPolicy:  # fmt: skip
    """Energy pumping to the upright energy, then a PD balance near upright (``balance``)."""

    def policy(st: State, env: object) -> torch.Tensor:
        th, w, x, v = st["pole_angle"], st["pole_angvel"], st["cart_pos"], st["cart_vel"]
        energy = 0.5 * (0.1 / 3) * w**2 + 0.1 * 9.81 * 0.5 * torch.cos(th)
        pump = pump_sign * gain * torch.sign(w * torch.cos(th) + 1e-6) * (energy < 0.49).float()
        pump = pump - centering * (x + v)
        bal = 12 * th + 2 * w + 0.6 * x + 1.0 * v
        u = torch.where(th.abs() < 0.35, bal, pump) if balance else pump
        return u.clamp(-1, 1)[:, None]

    return policy


def balance_policy(kp: float, push: float) -> ScriptedPolicy:
    """A PD balance of gain ``kp`` on the pole (0: none) plus a constant ``push``."""

    def policy(st: State, env: object) -> torch.Tensor:
        th, w, x, v = st["pole_angle"], st["pole_angvel"], st["cart_pos"], st["cart_vel"]
        return (kp * th + (2.0 if kp else 0.0) * w + 0.6 * x + 1.0 * v + push).clamp(-1, 1)[:, None]  # fmt: skip

    return policy


class _Cartpole(Task):
    model_file = "cartpole.xml"
    sim_fields = ("site_xpos",)
    success_threshold = 0.95

    # The camera follows the cart along the rail, so that the pole fills the frame.
    reward_camera = CameraSpec(3.0, 90.0, 0.0, (0.0, 0.0, 1.0), "cart", (True, False, False))
    # One baseline: the projection then keeps the upright-vs-hanging axis, along which the shipped
    # tiny CLIP's score falls most steadily with the pole angle (measured: Spearman 0.94 against
    # -|angle| at alpha 0.5, vs 0.88 with the lying-left/right prompts added). The wording matches
    # the captions it was trained on (rewardlab.vlm_reward.tiny_clip.captions).
    prompts = Prompts(("the pole is upright",), ("the pole is hanging down",))
    eureka_names = {
        "dof_pos": stacked("cart_pos", "pole_angle"),
        "dof_vel": stacked("cart_vel", "pole_angvel"),
        "obs_buf": stacked(
            "cart_pos",
            "cart_vel",
            "pole_angle",
            "pole_angvel",
            doc="`[N, 4]`: IsaacGymEnvs Cartpole observation (`cart_pos`, `cart_vel`, `pole_angle`, `pole_angvel`)",
        ),  # fmt: skip
        "pole_vel": entry("pole_angvel"),
        "reset_dist": config_value(
            "rail_limit", "the task config's `rail_limit` (m; IsaacGymEnvs' resetDist: 3.0)"
        ),  # fmt: skip
        "dof_limits_lower": Unavailable("the pole's hinge has no limits"),
        "dof_limits_upper": Unavailable("the pole's hinge has no limits"),
    }
    text2reward_attrs = {
        "cart_position": "cart_pos",
        "cart_velocity": "cart_vel",
        "pole_angular_velocity": "pole_angvel",
        "pole_tip_position": "pole_tip_pos",
        "last_action": "last_action",
        "prev_action": "prev_action",
    }

    def __init__(self, cfg: CartpoleConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        self.cfg: CartpoleConfig = cfg
        self._tip = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tip")

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        n, s = len(env_ids), self.cfg.reset_noise
        qpos = s * uniform(gen, (n, 2), sim.qpos)
        qpos[:, 1] += self.cfg.initial_angle
        sim.qpos[env_ids] = qpos
        sim.qvel[env_ids] = s * uniform(gen, (n, 2), sim.qvel)

    def state_spec(self) -> dict[str, StateField]:
        return {
            "cart_pos": StateField((), "m", "rail", "Cart position along the rail, 0 at the middle, rail ends near +-1.8."),
            "cart_vel": StateField((), "m/s", "rail", "Cart velocity along the rail."),
            "pole_angle": StateField((), "rad", "joint", "Pole angle from upright, wrapped to [-pi, pi]; 0 is upright, +-pi hanging down."),
            "pole_angvel": StateField((), "rad/s", "joint", "Pole angular velocity."),
            "pole_tip_pos": StateField((3,), "m", "world", "Position of the pole's tip; z is 2.0 when upright, 0.0 when hanging down."),
            "last_action": StateField((1,), "1", "actuator", "Action of the previous control step, in [-1, 1]."),
        }  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        angle = torch.remainder(sim.qpos[:, 1] + math.pi, 2 * math.pi) - math.pi
        return {
            "cart_pos": sim.qpos[:, 0].float(),
            "cart_vel": sim.qvel[:, 0].float(),
            "pole_angle": angle.float(),
            "pole_angvel": sim.qvel[:, 1].float(),
            "pole_tip_pos": sim.site_xpos[:, self._tip].float(),
            "last_action": last_action,
        }

    def observation(self, state: State) -> torch.Tensor:
        a = state["pole_angle"]
        return torch.stack(
            [
                state["cart_pos"],
                torch.cos(a),
                torch.sin(a),
                state["cart_vel"],
                state["pole_angvel"],
            ],
            -1,
        )

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("cart_pos", 1), ("cos(pole_angle)", 1), ("sin(pole_angle)", 1), ("cart_vel", 1), ("pole_angvel", 1)]  # fmt: skip

    def success(self, state: State) -> torch.Tensor:
        return (state["pole_angle"].abs() < self.cfg.success_angle) & (
            state["cart_pos"].abs() < self.cfg.rail_limit
        )

    def terminated(self, state: State) -> torch.Tensor:
        out = state["cart_pos"].abs() > self.cfg.rail_limit
        if self.cfg.fall_angle > 0:
            out |= state["pole_angle"].abs() > self.cfg.fall_angle
        return out

    def reward_terms(self) -> dict[str, RewardTerm]:
        return self._weighted(
            {
                "upright": (upright, 1.0),
                "centered": (centered, 0.1),
                "effort": (action_l2, -0.01),
                "pole_velocity": (pole_velocity, -0.005),
            }
        )


@register_task
class CartpoleBalance(_Cartpole):
    """Keep the pole upright from a near-upright start; falling past ``fall_angle`` terminates."""

    name = "cartpole_balance"
    scripted_episodes = {
        "balance": Script("success", balance_policy(12.0, 0.0)),
        "weak": Script("partial", balance_policy(4.0, 0.0)),
        "push": Script("failure", balance_policy(0.0, 0.6)),
    }

    @classmethod
    def default_config(cls) -> CartpoleConfig:
        return CartpoleConfig(fall_angle=0.25, rail_limit=1.7)


@register_task
class CartpoleSwingup(_Cartpole):
    """Swing the pole up from hanging down and keep it upright; only the rail ends terminate."""

    name = "cartpole_swingup"
    success_threshold = 0.8
    scripted_episodes = {
        "swingup": Script("success", swingup_policy(-1.0, 1.0, True)),
        "swingup_slow": Script("success", swingup_policy(-1.0, 0.8, True)),
        "swing_no_balance": Script("partial", swingup_policy(-1.0, 1.0, False)),
        "wrong_pump": Script("failure", swingup_policy(1.0, 1.0, True)),
    }

    @classmethod
    def default_config(cls) -> CartpoleConfig:
        return CartpoleConfig(initial_angle=math.pi, fall_angle=0.0, reset_noise=0.1)
