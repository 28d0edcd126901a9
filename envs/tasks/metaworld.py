"""MetaWorld tasks on the Sawyer: button-press, drawer-open, window-open (MetaWorld 3.1.1, v3 envs).

Scenes, action, reset and observation are MetaWorld's (see :mod:`.metaworld_sawyer`); each task's
success is its MetaWorld env's ``evaluate_state`` criterion:

- ``metaworld_button_press`` (``SawyerButtonPressEnvV3``): the button point
  (button body + (0, -0.193, 0)) within 0.02 m of the ``hole`` site along y;
- ``metaworld_drawer_open`` (``SawyerDrawerOpenEnvV3``): the handle point (drawer body +
  (0, -0.16, 0)) within 0.03 m of the goal, 0.2 m out from the closed drawer;
- ``metaworld_window_open`` (``SawyerWindowOpenEnvV3``): the handle site ``handleOpenStart``
  within 0.05 m (``TARGET_RADIUS``) of the goal along x, 0.2 m right of the window's start.

The default rewards are our own dense terms (reach the object's point, move the joint, a bonus
while the criterion holds, a small action cost); MetaWorld's v2 reward functions only served as a
reference for what shapes work. The scripted episodes (``rewardlab vlm-eval``) are our own
proportional controllers on the hand's target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import torch

from rewardlab.core.reward import RewardTerm, action_l2
from rewardlab.envs.tasks.base import SimView, register_task
from rewardlab.envs.tasks.knowledge import CameraSpec, Prompts, Script, ScriptedPolicy, entry
from rewardlab.envs.tasks.metaworld_sawyer import (
    EUREKA_SAWYER,
    METAWORLD_OBS,
    TEXT2REWARD_METAWORLD,
    SawyerConfig,
    SawyerTask,
    closeness,
    success_bonus,
)

State = Mapping[str, torch.Tensor]

# -- scripted episodes ---------------------------------------------------------------------------


def _steer(
    tcp: torch.Tensor,
    target: torch.Tensor,
    gain: float,
    grip: float,
    speed: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Action ``[N, 4]`` moving the hand's target by ``gain * (target - tcp)`` per step (clipped
    to [-speed, speed]) with the gripper command ``grip``."""
    move = (gain * (target - tcp)).clamp(-speed, speed)
    g = torch.full_like(move[:, :1], grip)
    return torch.cat([move, g], -1).float()


def press_policy(beyond: float = 0.02, x_offset: float = 0.0) -> ScriptedPolicy:
    """Button: line the fingertips up with the button's face from in front of it, then push
    until the fingertips' target is ``beyond`` m past the goal along y (negative: stop short;
    ``x_offset`` m to the side: a miss)."""

    def policy(st: State, env: Any) -> torch.Tensor:
        tcp, obj = st["tcp_pos"], st["obj_pos"].clone()
        obj[:, 0] += x_offset
        aligned = (tcp - obj)[:, [0, 2]].norm(dim=-1) < 0.02
        target = obj.clone()
        front = torch.minimum(obj[:, 1] - 0.06, tcp[:, 1])  # approach without touching
        target[:, 1] = torch.where(aligned, st["goal_pos"][:, 1] + beyond, front)
        return _steer(tcp, target, 10.0, 1.0)

    return policy


def drawer_policy(beyond: float = 0.05, speed: float = 1.0) -> ScriptedPolicy:
    """Drawer: come over the closed handle with the fingers closed, drop them behind the handle
    bar, then pull towards the robot (-y) until the fingertips' target is ``beyond`` m past the
    goal (negative: stop short), at most ``speed`` cm per step."""

    def policy(st: State, env: Any) -> torch.Tensor:
        tcp, goal = st["tcp_pos"], st["goal_pos"]
        # The closed drawer's handle point is 0.19 m behind the goal (fixed for the episode).
        hook = goal + torch.tensor([0.0, 0.19 + 0.02, -0.03], device=goal.device)
        above = hook + torch.tensor([0.0, 0.0, 0.15], device=goal.device)
        xy_off = (tcp - hook)[:, :2].norm(dim=-1)
        z_off = (tcp - hook)[:, 2].abs()
        target = torch.where((xy_off > 0.02)[:, None], above, hook)
        pulling = ((xy_off <= 0.03) & (z_off <= 0.02)) | (st["drawer_opening"] > 0.01)
        pull = hook.clone()
        pull[:, 1] = goal[:, 1] - beyond
        target = torch.where(pulling[:, None], pull, target)
        return _steer(tcp, target, 10.0, 1.0, torch.where(pulling, speed, 1.0)[:, None])

    return policy


def window_policy(beyond: float = 0.02) -> ScriptedPolicy:
    """Window: come down just left of the handle, then push it right (+x) until the fingertips'
    target is ``beyond`` m past the goal (negative: stop short)."""

    def policy(st: State, env: Any) -> torch.Tensor:
        tcp, obj = st["tcp_pos"], st["obj_pos"]
        beside = obj + torch.tensor([-0.01, 0.0, 0.0], device=obj.device)
        above = beside + torch.tensor([0.0, 0.0, 0.12], device=obj.device)
        xy_off = (tcp - beside)[:, :2].norm(dim=-1)
        z_off = (tcp - beside)[:, 2].abs()
        target = torch.where((xy_off > 0.02)[:, None], above, beside)
        pushing = (xy_off <= 0.03) & (z_off <= 0.02)
        push = beside.clone()
        push[:, 0] = st["goal_pos"][:, 0] + beyond
        target = torch.where(pushing[:, None], push, target)
        return _steer(tcp, target, 10.0, 1.0)

    return policy


def hover_policy(height: float = 0.15) -> ScriptedPolicy:
    """Move the fingertips ``height`` m above the object and stay there (touches nothing)."""

    def policy(st: State, env: Any) -> torch.Tensor:
        target = st["obj_pos"] + torch.tensor([0.0, -0.1, height], device=st["obj_pos"].device)
        return _steer(st["tcp_pos"], target, 10.0, -1.0)

    return policy


def idle_policy() -> ScriptedPolicy:
    """Hold the hand where it starts, gripper open."""

    def policy(st: State, env: Any) -> torch.Tensor:
        a = torch.zeros(st["tcp_pos"].shape[0], 4, device=st["tcp_pos"].device)
        a[:, 3] = -1.0
        return a

    return policy


# -- reward terms --------------------------------------------------------------------------------


def reach(state: State, action: torch.Tensor, scale: float = 0.1, behind: float = 0.0) -> torch.Tensor:  # fmt: skip
    """``1 - tanh(d / scale)``: the fingertips at the object's point, ``d`` = ``tcp_to_obj`` with
    ``behind`` times the fingertips' excess over the object point along +y (away from the robot)
    added in quadrature: reaching round the far side of a handle pays less than its near side."""
    d = state["tcp_to_obj"]
    if behind:
        over = (state["tcp_pos"][:, 1] - state["obj_pos"][:, 1]).clamp(min=0.0)
        d = torch.sqrt(d * d + (behind * over) ** 2)
    return closeness(d, scale)


def joint_progress(state: State, action: torch.Tensor, entry: str = "", full: float = 1.0) -> torch.Tensor:  # fmt: skip
    """The object's joint (``entry``: button depth, drawer or window opening, m) over the travel
    ``full`` that MetaWorld's success needs, clipped to [0, 1]."""
    return (state[entry] / full).clamp(0.0, 1.0)


def _terms(task: SawyerTask, reach_scale: float, full: float, behind: float = 0.0) -> dict[str, RewardTerm]:  # fmt: skip
    terms = task._weighted(
        {
            "reach": (reach, 1.0),
            "progress": (joint_progress, 5.0),
            "success": (success_bonus, 5.0),
            "effort": (action_l2, -0.001),
        }
    )
    params = {"scale": reach_scale, **({"behind": behind} if behind else {})}
    terms["reach"] = dataclasses.replace(terms["reach"], params=params)
    terms["progress"] = dataclasses.replace(
        terms["progress"], params={"entry": task.joint_entry, "full": full}
    )
    return terms


# -- the tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ButtonPressConfig(SawyerConfig):
    """MetaWorld button-press-v3 settings (SawyerButtonPressEnvV3)."""

    hand_init_pos: tuple[float, float, float] = (0.0, 0.4, 0.2)
    """Mocap target (m, world) the arm settles at before each episode (MetaWorld's hand_init_pos)."""
    obj_low: tuple[float, float, float] = (-0.1, 0.85, 0.115)
    """Lower corner (m, world) of the box the button box's position is drawn from (MetaWorld's obj_low)."""
    obj_high: tuple[float, float, float] = (0.1, 0.9, 0.115)
    """Upper corner (m, world) of that box (MetaWorld's obj_high)."""
    success_distance: float = 0.02
    """MetaWorld's success: |goal_y - obj_y| <= 0.02 m."""
    reach_scale: float = 0.25
    """Length scale (m) of the ``reach`` term 1 - tanh(tcp_to_obj / reach_scale)."""
    press_depth: float = 0.075
    """Button depth (m) at which the ``progress`` term saturates (success needs about 0.073 m:
    past the joint's 0.06 m soft limit)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: reach (1), progress (5), success (5), effort (-0.001)."""


@register_task
class MetaWorldButtonPress(SawyerTask):
    """Press the button on the box in front of the Sawyer along +y (MetaWorld button-press)."""

    name = "metaworld_button_press"
    scene_xml = "sawyer_button_press.xml"
    object_body = "box"
    object_joint = "btnbox_joint"
    joint_entry = "button_depth"
    joint_sign = -1.0
    joint_doc = "How far the button is pushed into its box (m): 0 at rest, 0.06 at the joint's soft limit; MetaWorld's success needs about 0.073 (a firm push past it)."  # fmt: skip
    object_doc = "MetaWorld's button point: the button body's position + (0, -0.193, 0), on the red button's face; moves +y as the button goes in"  # fmt: skip
    goal_doc = "The `hole` site inside the box, 0.1 m behind the box's front (the box's position + (0, -0.1, 0))."  # fmt: skip
    success_doc = "|goal_pos.y - obj_pos.y|: how far the button point is from the goal along y."
    goal_offset = (0.0, -0.1, 0.0)

    reward_camera = CameraSpec(1.0, 150.0, -25.0, (0.0, -0.25, 0.05), "box")
    prompts = Prompts(
        ("a robot arm pushing the red button into the box",),
        ("a robot arm away from the red button",),
    )
    eureka_names = {**EUREKA_SAWYER, "button_pos": entry("obj_pos"), "button_depth": entry("button_depth")}  # fmt: skip
    text2reward_attrs = TEXT2REWARD_METAWORLD
    text2reward_obs = METAWORLD_OBS
    scripted_episodes = {
        "press": Script("success", press_policy(0.02)),
        "half_press": Script("partial", press_policy(-0.06)),
        "miss": Script("failure", press_policy(0.02, x_offset=0.12)),
        "hover": Script("failure", hover_policy()),
        "idle": Script("failure", idle_policy()),
    }

    @classmethod
    def default_config(cls) -> ButtonPressConfig:
        return ButtonPressConfig()

    def object_point(self, sim: SimView) -> tuple[torch.Tensor, torch.Tensor]:
        b = self._button
        off = torch.tensor([0.0, -0.193, 0.0], dtype=sim.xpos.dtype, device=sim.xpos.device)
        return sim.xpos[:, b] + off, sim.xquat[:, b]

    def obj_to_goal(self, obj: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return (goal[:, 1] - obj[:, 1]).abs()

    def __init__(self, cfg: ButtonPressConfig, model: mujoco.MjModel) -> None:
        self._button = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "button")
        super().__init__(cfg, model)
        self.cfg: ButtonPressConfig = cfg

    def reward_terms(self) -> dict[str, RewardTerm]:
        return _terms(self, self.cfg.reach_scale, self.cfg.press_depth)


@dataclass(frozen=True)
class DrawerOpenConfig(SawyerConfig):
    """MetaWorld drawer-open-v3 settings (SawyerDrawerOpenEnvV3)."""

    hand_init_pos: tuple[float, float, float] = (0.0, 0.6, 0.2)
    """Mocap target (m, world) the arm settles at before each episode (MetaWorld's hand_init_pos)."""
    obj_low: tuple[float, float, float] = (-0.1, 0.9, 0.0)
    """Lower corner (m, world) of the box the drawer's position is drawn from (MetaWorld's obj_low)."""
    obj_high: tuple[float, float, float] = (0.1, 0.9, 0.0)
    """Upper corner (m, world) of that box (MetaWorld's obj_high: only x varies)."""
    success_distance: float = 0.03
    """MetaWorld's success: |handle - goal| <= 0.03 m."""
    reach_scale: float = 0.25
    """Length scale (m) of the ``reach`` term 1 - tanh(tcp_to_obj / reach_scale)."""
    open_distance: float = 0.16
    """Drawer opening (m) at which the ``progress`` term saturates (the joint's soft limit;
    MetaWorld's success needs the drawer at or slightly past it)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: reach (1), progress (5), success (5), effort (-0.001)."""


@register_task
class MetaWorldDrawerOpen(SawyerTask):
    """Pull the drawer open by its handle, 0.2 m towards the Sawyer (MetaWorld drawer-open)."""

    name = "metaworld_drawer_open"
    scene_xml = "sawyer_drawer.xml"
    object_body = "drawer"
    object_joint = "goal_slidey"
    joint_entry = "drawer_opening"
    joint_sign = -1.0
    joint_doc = "How far the drawer is pulled out (m, towards the robot, -y): 0 closed, 0.16 at the joint's soft limit; MetaWorld's success needs it at or slightly past 0.16."  # fmt: skip
    object_doc = "MetaWorld's handle point: the drawer body's position + (0, -0.16, 0), just in front of the handle bar; moves -y as the drawer opens"  # fmt: skip
    goal_doc = "Where the handle point is when the drawer is open: the closed drawer's position + (0, -0.36, 0.09), 0.19 m in front of the closed handle point."  # fmt: skip
    success_doc = "|obj_pos - goal_pos|: distance from the handle point to the goal."
    goal_offset = (0.0, -0.36, 0.09)

    reward_camera = CameraSpec(1.1, 140.0, -30.0, (0.0, -0.25, 0.05), "drawer")
    prompts = Prompts(
        ("a robot arm pulling a drawer open",),
        ("a robot arm next to a closed drawer",),
    )
    eureka_names = {
        **EUREKA_SAWYER,
        "drawer_grasp_pos": entry("obj_pos"),
        "drawer_handle_pos": entry("obj_pos"),
        "drawer_opening": entry("drawer_opening"),
    }
    text2reward_attrs = TEXT2REWARD_METAWORLD
    text2reward_obs = METAWORLD_OBS
    scripted_episodes = {
        "open": Script("success", drawer_policy(0.05)),
        "half_open": Script("partial", drawer_policy(-0.14, speed=0.3)),
        "hover": Script("failure", hover_policy()),
        "idle": Script("failure", idle_policy()),
    }

    def __init__(self, cfg: DrawerOpenConfig, model: mujoco.MjModel) -> None:
        self._link = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "drawer_link")
        super().__init__(cfg, model)
        self.cfg: DrawerOpenConfig = cfg

    @classmethod
    def default_config(cls) -> DrawerOpenConfig:
        return DrawerOpenConfig()

    def object_point(self, sim: SimView) -> tuple[torch.Tensor, torch.Tensor]:
        off = torch.tensor([0.0, -0.16, 0.0], dtype=sim.xpos.dtype, device=sim.xpos.device)
        return sim.xpos[:, self._link] + off, sim.xquat[:, self._link]

    def obj_to_goal(self, obj: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(obj - goal, dim=-1)

    def reward_terms(self) -> dict[str, RewardTerm]:
        return _terms(self, self.cfg.reach_scale, self.cfg.open_distance)


@dataclass(frozen=True)
class WindowOpenConfig(SawyerConfig):
    """MetaWorld window-open-v3 settings (SawyerWindowOpenEnvV3)."""

    hand_init_pos: tuple[float, float, float] = (0.0, 0.4, 0.2)
    """Mocap target (m, world) the arm settles at before each episode (MetaWorld's hand_init_pos)."""
    obj_low: tuple[float, float, float] = (-0.1, 0.7, 0.16)
    """Lower corner (m, world) of the box the window frame's position is drawn from (MetaWorld's obj_low)."""
    obj_high: tuple[float, float, float] = (0.1, 0.9, 0.16)
    """Upper corner (m, world) of that box (MetaWorld's obj_high)."""
    success_distance: float = 0.05
    """MetaWorld's success (TARGET_RADIUS): |handle.x - goal.x| <= 0.05 m."""
    reach_scale: float = 0.25
    """Length scale (m) of the ``reach`` term 1 - tanh(tcp_to_obj / reach_scale)."""
    open_distance: float = 0.2
    """Window opening (m) at which the ``progress`` term saturates (the joint's range; MetaWorld's
    success needs about 0.19)."""
    reach_behind: float = 3.0
    """Extra weight of the fingertips' distance beyond the handle point along +y in the ``reach``
    term (between the handle and the glass, where pushing +x moves nothing)."""
    reward_weights: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the default term weights: reach (1), progress (5), success (5), effort (-0.001)."""


@register_task
class MetaWorldWindowOpen(SawyerTask):
    """Slide the window open by pushing its handle 0.2 m to the right (MetaWorld window-open)."""

    name = "metaworld_window_open"
    scene_xml = "sawyer_window_horizontal.xml"
    object_body = "window"
    object_joint = "window_slide"
    joint_entry = "window_opening"
    joint_sign = 1.0
    joint_doc = "How far the sliding pane is pushed to the right (m, +x): 0 closed, 0.2 at the end of its range; MetaWorld's success needs about 0.19."  # fmt: skip
    object_doc = "MetaWorld's handle point: the site handleOpenStart, 2.6 cm left of the white handle of the sliding pane; moves +x as the window opens"  # fmt: skip
    goal_doc = "The window frame's start position + (0.2, 0, 0): where the pane's base is when open (only x counts)."  # fmt: skip
    success_doc = "|obj_pos.x - goal_pos.x|: how far the handle point is from the goal along x."
    goal_offset = (0.2, 0.0, 0.0)

    reward_camera = CameraSpec(1.0, 150.0, -25.0, (0.05, -0.2, 0.0), "window")
    prompts = Prompts(
        ("a robot arm sliding a window open",),
        ("a robot arm next to a closed window",),
    )
    eureka_names = {
        **EUREKA_SAWYER,
        "window_handle_pos": entry("obj_pos"),
        "window_opening": entry("window_opening"),
    }
    text2reward_attrs = TEXT2REWARD_METAWORLD
    text2reward_obs = METAWORLD_OBS
    scripted_episodes = {
        "open": Script("success", window_policy(0.02)),
        "half_open": Script("partial", window_policy(-0.2)),
        "hover": Script("failure", hover_policy()),
        "idle": Script("failure", idle_policy()),
    }

    def __init__(self, cfg: WindowOpenConfig, model: mujoco.MjModel) -> None:
        self._handle = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "handleOpenStart")
        super().__init__(cfg, model)
        self.cfg: WindowOpenConfig = cfg

    @classmethod
    def default_config(cls) -> WindowOpenConfig:
        return WindowOpenConfig()

    def object_point(self, sim: SimView) -> tuple[torch.Tensor, torch.Tensor]:
        obj = sim.site_xpos[:, self._handle]
        return obj, torch.zeros(obj.shape[0], 4, dtype=obj.dtype, device=obj.device)

    def obj_to_goal(self, obj: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return (obj[:, 0] - goal[:, 0]).abs()

    def reward_terms(self) -> dict[str, RewardTerm]:
        return _terms(self, self.cfg.reach_scale, self.cfg.open_distance, self.cfg.reach_behind)
