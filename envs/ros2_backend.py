"""The ``ros2`` backend: a robot that speaks ROS 2, seen as a batched env of one world.

For fine-tuning on the robot (or on the sim robot) with the same rewards as in simulation --
the task's own reward, an LLM-written reward file, a VLM reward -- and for scoring a policy on
the robot with the task's success metric::

    env = make_env("arm_reach", num_envs=1, backend="ros2",
                   policy="runs/arm_reach/export", robot="arm", transport="rclpy")
    obs = env.reset()                        # asks the operator to reset the robot (Enter / a)
    obs, rew, term, trunc, info = env.step(action)

How it works. The deploy :class:`~rewardlab.deploy.controller.Controller` runs on the transport's
thread (the rclpy node of :mod:`rewardlab.deploy.ros_node`, or the cyclonedds loop) at the
control rate, with every safety check of a deployment. Its "policy" is this env: at each tick the
controller builds the observation exactly as the exported policy was trained on (layout, scaling
and joints from ``policy.json``), hands it to :meth:`step`'s caller, and waits up to
``action_timeout_s`` for the action. A learner that does not answer in time (it is updating its
networks, it crashed) makes the controller HOLD the robot; the episode then ends
(``truncated``, ``info["safety"]`` says why) and the next one starts with the operator's reset.
A learner does its slow work between episodes instead: ``real_time`` tells it so, and
:meth:`set_between_episodes` gives it the moment after each episode while the robot holds
(the off-policy runner's updates and checkpoints run there).

The state that rewards read is rebuilt from the observation slices under their terms' names with
their scales undone (``joint_pos``, ``target_pos``, ``2 * base_lin_vel`` as ``base_lin_vel``, ...) plus what follows from them (``ee_pos = target_pos - ee_to_target``,
``distance``, ``prev_action``), under the task's own state schema; a reward that reads a name
the robot cannot provide fails when it loads. Success and termination are the task's own.

Resets without a person (``prompt=None``, ``ros2.prompt=false``): with the robot config's
``topics.episode_request`` (the arm's has it), each reset asks the sim robot for a new episode
(``std_msgs/UInt32``, a token) while the controller is PASSIVE (nothing commanded, so the sim
robot's reset pose stays), waits up to ``start_timeout_s`` for the token on
``topics.episode_started`` and for a target and joint states received after it, then soft-starts.
With ``rewardlab sim-robot episodes_on_request=true`` the sim robot starts episodes only then,
so each of the env's episodes has one target from its first step (``info["episode"]
["charts/episode_targets"]`` counts the targets the learner saw; more than one is reported once,
with what to do). Without the topic the reset is at once (the sim robot's own clock decides).

Not supported: more than one world, snapshots (``get_state_dict``), rendering without a camera
topic (``render`` raises), resets of a real robot without a person.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rewardlab.envs.base import BatchedEnv, StateField

TRANSPORTS = ("rclpy", "dds")
RESET_PROMPT = "[ros2 env] reset the robot for a new episode, then press Enter (a + Enter aborts): "


def observation_parts(
    obs: np.ndarray,
    terms: list[tuple[str, float | np.ndarray | None]],
    slices: list[tuple[str, int, int]],
) -> dict[str, np.ndarray]:
    """The observation's slices under their terms' names with their scales undone, as the state
    that rewards read holds them: ``2 * base_lin_vel`` gives ``base_lin_vel`` (m/s), ``joint_pos -
    default_pose`` gives ``joint_pos_rel``. A component scaled by 0 carries nothing and reads 0.

    Args:
        obs: one observation ``[obs_dim]``.
        terms: ``(term, scale)`` per slice (:attr:`ObservationBuilder.terms`).
        slices: ``(layout name, start, width)`` per slice (:attr:`ObservationBuilder.slices`).
    """
    parts: dict[str, np.ndarray] = {}
    for (term, scale), (_, start, width) in zip(terms, slices, strict=True):
        v = np.asarray(obs[start : start + width], dtype=np.float64)
        if scale is not None:
            k = np.broadcast_to(np.asarray(scale, dtype=np.float64), v.shape)
            v = np.divide(v, k, out=np.zeros_like(v), where=k != 0)
        parts[term] = v
    return parts


class RobotAbort(RuntimeError):
    """The operator aborted at a reset prompt."""


class _ActionSlot:
    """The controller's policy: hands each tick's observation to the env, waits for its action.

    Looks like :class:`rewardlab.deploy.policy.Policy` to the controller (meta, layout, ...).
    Modes: ``warmup`` (the exported policy acts: the soft start after a reset), ``learner`` (wait
    up to ``timeout_s`` for :meth:`put_action`; no answer -> NaN, which makes the controller HOLD,
    and mode ``stopped``), ``stopped`` (NaN: the robot holds, e.g. during a reset prompt).
    """

    def __init__(self, policy: Any, timeout_s: float) -> None:
        self._policy = policy
        self.timeout_s = timeout_s
        self._cv = threading.Condition()
        self._obs: np.ndarray | None = None
        self.obs_id = 0
        self._action: np.ndarray | None = None
        self._action_for = -1
        self.pending = -1
        """Id of the observation a tick is waiting on an action for (-1: none)."""
        self.timeouts = 0
        self.mode = "stopped"

    def __getattr__(self, name: str) -> Any:  # meta, obs_dim, layout, ctrl_mid, ... of the export
        return getattr(self._policy, name)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Called by the controller's tick (transport thread)."""
        nan = np.full(self._policy.action_dim, np.nan)
        with self._cv:
            self.obs_id += 1
            self._obs = np.array(obs, dtype=np.float64)
            if self.mode == "warmup":
                return self._policy(obs)
            if self.mode != "learner":
                return nan
            want = self.pending = self.obs_id
            self._cv.notify_all()
            ok = self._cv.wait_for(
                lambda: self._action_for == want or self.mode != "learner", timeout=self.timeout_s
            )
            self.pending = -1
            if self.mode != "learner":  # stopped on purpose (episode end): hold, no timeout
                return nan
            if not ok:
                self.timeouts += 1
                self.mode = "stopped"
                return nan  # -> the controller HOLDs the robot
            return self._action  # type: ignore[return-value]

    def next_obs(self, after: int, timeout: float) -> tuple[int, np.ndarray] | None:
        """The observation of the first tick newer than ``after`` that waits for an action (env
        thread); ``None`` if none comes within ``timeout`` (the controller stopped asking)."""
        with self._cv:
            if not self._cv.wait_for(lambda: self.pending > after, timeout=timeout):
                return None
            return self.pending, self._obs.copy()  # type: ignore[union-attr]

    def stop(self) -> None:
        """Hold from now on: a tick waiting for an action gets NaN at once (not a timeout)."""
        with self._cv:
            self.mode = "stopped"
            self._cv.notify_all()

    def put_action(self, obs_id: int, action: np.ndarray) -> None:
        with self._cv:
            self._action, self._action_for = action, obs_id
            self._cv.notify_all()


class Ros2Env(BatchedEnv):
    """One robot over ROS 2 as a :class:`BatchedEnv` with ``num_envs == 1``.

    Args:
        task_cls: the registered task (its state schema, success, termination, default reward).
        cfg: the task's config (``episode_steps``, weights, ...); its default when ``None``.
        policy: export folder of the policy being fine-tuned (``policy.json`` gives the
            observation layout, the action scaling and the control rate).
        robot: robot config name or path (``sim_configs/robots/``).
        transport: ``rclpy`` or ``dds``.
        reward_fn: ``compute_reward(state, action) -> (total, components)``; the task's when None.
        prompt: asks the operator before each episode (``input`` by default); ``None``: no prompt
            (a sim robot: the reset is requested on ``topics.episode_request`` when the robot
            config has it, see the module docstring).
        action_timeout_s: how long a tick waits for the learner's action before holding the robot;
            default: three quarters of a control period.
        device: torch device of the returned tensors.
        seed: unused (a robot has no seed); accepted for the ``make_env`` signature.
        start_timeout_s: how long a reset waits for the robot's inputs (and the sim robot's
            answer to a reset request) before failing.
    """

    def __init__(
        self,
        task_cls: type,
        cfg: Any = None,
        policy: str = "",
        robot: str = "arm",
        transport: str = "rclpy",
        reward_fn: Callable[..., Any] | None = None,
        prompt: Callable[[str], str] | None = input,
        action_timeout_s: float | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        start_timeout_s: float = 60.0,
        log: Callable[[str], None] = print,
    ) -> None:
        from rewardlab.core.reward import compose
        from rewardlab.deploy.controller import Controller
        from rewardlab.deploy.policy import load_policy
        from rewardlab.deploy.robot_config import load_robot_config

        if transport not in TRANSPORTS:
            raise ValueError(
                f"transport: got {transport!r}, expected one of {', '.join(TRANSPORTS)}"
            )
        if not policy:
            raise ValueError("policy: required (the export folder of the policy to fine-tune)")
        self.task = task_cls(
            cfg if cfg is not None else task_cls.default_config(), task_cls.load_model()
        )
        self.cfg = self.task.cfg
        self.robot_cfg = load_robot_config(robot)
        exported = load_policy(policy)
        if exported.meta.get("task") not in (None, self.task.name):
            raise ValueError(
                f"policy: {policy} was trained on task {exported.meta.get('task')!r}, "
                f"not {self.task.name!r}"
            )
        self.slot = _ActionSlot(exported, timeout_s=1.0)
        self.controller = Controller(self.slot, self.robot_cfg)
        self.slot.timeout_s = action_timeout_s or 0.75 * self.controller.dt
        self.num_envs = 1
        self.obs_dim = exported.obs_dim
        self.action_dim = exported.action_dim
        self.device = torch.device(device)
        self.control_dt = self.controller.dt
        self.max_episode_steps = int(getattr(self.cfg, "episode_steps", 0) or exported.meta.get("episode_steps") or 1000)  # fmt: skip
        self.reward_fn = reward_fn or compose(self.task.reward_terms())
        self.prompt = prompt
        self.start_timeout_s = start_timeout_s
        self.log = log
        self._spec = self.task.full_state_spec()
        self._obs_id = 0
        self._obs = np.zeros(self.obs_dim)
        self._t = 0
        self._ep_return = 0.0
        self._ep_terms: dict[str, float] = {}
        self._prev_action = np.zeros(self.action_dim)
        self._last_action = np.zeros(self.action_dim)
        self._state: dict[str, torch.Tensor] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._between_episodes: Callable[[], None] | None = None
        topics = self.robot_cfg.topics
        self.request_resets = prompt is None and bool(topics.episode_request and topics.episode_started)  # fmt: skip
        """Each reset asks the sim robot for a new episode (``topics.episode_request``)."""
        self._token = random.getrandbits(32)
        self._answer_cv = threading.Condition()
        self._answer: tuple[int, float] | None = None
        self._publish_request: Callable[[int], None] | None = None
        self._dds_node: Any = None
        self._target: np.ndarray | None = None
        self._targets = 0
        self.episodes_with_target_changes = 0
        """Episodes in which the target the learner saw changed (the robot's own clock)."""
        self.transport = transport
        self._start_transport()

    # -- transport -------------------------------------------------------------------------------

    def _start_transport(self) -> None:
        topics = self.robot_cfg.topics
        if self.transport == "rclpy":
            from rewardlab.deploy.ros_node import DeployNode

            self._node = DeployNode(self.controller, node_name="rewardlab_ros2_env", trigger="timer", log=self.log, log_every_s=0)  # fmt: skip
            self._lock = self._node.lock
            if self.request_resets:
                from rclpy.qos import QoSProfile, ReliabilityPolicy
                from std_msgs.msg import UInt32

                qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
                pub = self._node.node.create_publisher(UInt32, topics.episode_request, qos)
                self._node.node.create_subscription(UInt32, topics.episode_started, lambda m: self._on_answer(int(m.data)), qos)  # fmt: skip
                self._publish_request = lambda token: pub.publish(UInt32(data=token))
            target = lambda: self._node.spin(stop=self._stop)  # noqa: E731
        else:
            from rewardlab.deploy import transport_dds as dds

            self._node = None
            self._dds_node = node = dds.DdsNode()
            if self.request_resets:
                write = node.publisher(topics.episode_request, "std_msgs/msg/UInt32", qos="reliable")  # fmt: skip
                node.subscribe(topics.episode_started, "std_msgs/msg/UInt32", lambda m, t: self._on_answer(int(m.data)), qos="reliable")  # fmt: skip
                self._publish_request = lambda token: write(dds.new_msg("std_msgs/msg/UInt32", data=token))  # fmt: skip
            target = lambda: dds.run_dds_controller(self.controller, stop=self._stop, node=node)  # noqa: E731
        self._thread = threading.Thread(target=target, name="ros2-env-transport", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the control loop (the robot's controller keeps the last command) and the node."""
        self.slot.stop()
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._node is not None:
            self._node.close()
            self._node = None
        if self._dds_node is not None:
            self._dds_node.close()
            self._dds_node = None

    def _on_answer(self, token: int) -> None:
        """``topics.episode_started`` (transport thread): the sim robot started the episode of
        request ``token``."""
        with self._answer_cv:
            self._answer = (token, time.monotonic())
            self._answer_cv.notify_all()

    # -- episodes --------------------------------------------------------------------------------

    def _ask_reset(self) -> None:
        if self.prompt is None:
            return
        answer = self.prompt(RESET_PROMPT)
        if str(answer).strip().lower() in ("a", "abort", "q"):
            raise RobotAbort("aborted by the operator at the reset prompt")

    def _request_episode(self) -> None:
        """Ask the sim robot for a new episode (``topics.episode_request``) and wait for its
        answer, then for a target and joint states received after it (the new target, the reset
        pose). The controller stays PASSIVE meanwhile: nothing it commands pulls the arm back."""
        topics = self.robot_cfg.topics
        deadline = time.monotonic() + self.start_timeout_s
        while True:  # PASSIVE, not starting by itself (it may have been starting just now)
            with self._lock:
                self.controller.reset(start=False)
                if self.controller.state.value == "PASSIVE":
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the robot did not stop for the reset: {self.controller.status()}")  # fmt: skip
            time.sleep(self.control_dt / 4)
        self._token = token = (self._token + 1) % 2**32
        assert self._publish_request is not None
        answered = None
        while answered is None:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(
                    f"no answer on {topics.episode_started} to the reset request on "
                    f"{topics.episode_request} within {self.start_timeout_s} s: is the sim robot "
                    "running on this ROS_DOMAIN_ID (rewardlab sim-robot robot=... episodes_on_request=true)?"
                )
            self._publish_request(token)  # again every 0.5 s: the first may precede discovery
            with self._answer_cv:
                self._answer_cv.wait_for(
                    lambda: self._answer is not None and self._answer[0] == token,
                    timeout=max(0.0, min(0.5, deadline - now)),
                )
                if self._answer is not None and self._answer[0] == token:
                    answered = self._answer[1]
        while True:
            with self._lock:
                target = self.controller.obs.target
                fresh = bool(np.min(self.controller.obs.joint_recv) > answered) and (
                    target is None or not self.controller.obs.needs_target or target.recv_time > answered
                )  # fmt: skip
            if fresh:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no joint states or target after the sim robot's answer within {self.start_timeout_s} s: {self.controller.status()}"
                )  # fmt: skip
            time.sleep(self.control_dt / 4)

    def _begin_episode(self) -> np.ndarray:
        """Hold, ask the operator (or the sim robot), re-arm, soft-start with the exported
        policy, then hand control to the learner; returns the first observation the learner
        acts on."""
        self.slot.stop()
        self._ask_reset()
        # the robot holds (the first tick of the stopped slot) before the re-arm, so that every
        # episode starts from PASSIVE with the soft start
        deadline = time.monotonic() + self.start_timeout_s
        while self.controller.state.value in ("RUN", "RAMP"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the robot did not hold: {self.controller.status()}")
            time.sleep(self.control_dt / 4)
        if self.request_resets:
            self._request_episode()
        with self._lock:
            self.controller.reset()
            self.slot.mode = "warmup"
            self.controller.start()
        deadline = time.monotonic() + self.start_timeout_s
        while self.controller.state.value != "RUN":
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"robot not ready after {self.start_timeout_s} s: {self.controller.status()}"
                )
            if self.controller.state.value in ("HOLD", "DAMP"):
                raise RuntimeError(f"the robot tripped during the soft start: {self.controller.status()}")  # fmt: skip
            time.sleep(self.control_dt / 4)
        self.slot.mode = "learner"
        got = self.slot.next_obs(-1, timeout=5 * self.control_dt)
        if got is None:
            raise TimeoutError(f"no control tick: {self.controller.status()}")
        self._obs_id, obs = got
        self._t, self._ep_return, self._ep_terms = 0, 0.0, {}
        self._prev_action = np.zeros(self.action_dim)
        self._last_action = np.zeros(self.action_dim)
        self._target, self._targets = None, 0
        self._update_state(obs)
        return obs

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Ask for a reset, re-arm the safety layer, soft-start; the first observation ``[1, obs]``."""
        return self._tensor(self._begin_episode())[None]

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Send the action for the last observation; wait for the next tick's observation."""
        action = np.clip(np.asarray(actions.detach().cpu(), dtype=np.float64).reshape(-1), -1, 1)
        if action.shape != (self.action_dim,):
            raise ValueError(f"actions: expected shape [1, {self.action_dim}], got {tuple(actions.shape)}")  # fmt: skip
        self.slot.put_action(self._obs_id, action)
        got = self.slot.next_obs(self._obs_id, timeout=3 * self.control_dt + self.slot.timeout_s)
        tripped = self.controller.state.value in ("HOLD", "DAMP") or got is None
        self._prev_action, self._last_action = self._last_action, action
        if got is not None:
            self._obs_id, obs = got
            self._update_state(obs)
        else:
            obs = self._obs
        state = self._state
        act = torch.as_tensor(action, dtype=torch.float32, device=self.device)[None]
        reward, terms = self.reward_fn(state, act)
        self._t += 1
        self._ep_return += float(reward[0])
        for k, v in terms.items():
            self._ep_terms[k] = self._ep_terms.get(k, 0.0) + float(v[0])
        terminated = bool(self.task.terminated(state)[0])
        truncated = (self._t >= self.max_episode_steps or tripped) and not terminated
        info: dict[str, Any] = {"log": {f"reward/{k}": float(v.mean()) for k, v in terms.items()}}
        if tripped:
            info["safety"] = self.controller.status()
            self.log(f"[ros2 env] episode ends: {info['safety']}")
        final = self._tensor(obs)[None]
        if terminated or truncated:
            success = bool(self.task.success(state)[0]) and not terminated and not tripped
            info["episode"] = {
                "return": torch.tensor([self._ep_return]),
                "length": torch.tensor([self._t]),
                "success": torch.tensor([success]),
                "env_ids": torch.tensor([0]),
                **{f"reward/{k}": torch.tensor([v]) for k, v in self._ep_terms.items()},
            }
            if self._targets:
                info["episode"]["charts/episode_targets"] = torch.tensor([float(self._targets)])
                if self._targets > 1:
                    self._target_changed()
            info["final_obs"] = final
            self.slot.stop()  # the robot holds while the learner works
            if self._between_episodes is not None:
                self._between_episodes()
            obs = self._begin_episode()
        else:
            info["final_obs"] = final
        return (
            self._tensor(obs)[None],
            reward.to(self.device).float().reshape(1),
            torch.tensor([terminated], device=self.device),
            torch.tensor([truncated], device=self.device),
            info,
        )

    real_time = True
    """Steps run on the robot's clock: a learner must answer each tick within the action
    timeout, so it does its slow work (gradient updates, checkpoints) between episodes."""

    def set_between_episodes(self, fn: Callable[[], None] | None) -> None:
        """Run ``fn`` after each episode, while the robot holds and before the next reset (the
        operator's prompt, the soft start): where an off-policy learner updates its networks
        (:class:`~rewardlab.agents.off_policy_runner.OffPolicyRunner`); ``None``: nothing."""
        self._between_episodes = fn

    def hold(self) -> None:
        """Hold the robot from the next tick on (the learner stops answering on purpose, e.g. to
        write its last checkpoint); the next reset re-arms it."""
        self.slot.stop()

    @property
    def learner_timeouts(self) -> int:
        """Ticks on which the learner's action came too late (each held the robot)."""
        return self.slot.timeouts

    def set_reward(self, reward_fn: Callable[..., Any] | None) -> None:
        """Use ``compute_reward(state, action) -> (total, components)`` from the next step on
        (``None``: the task's own); e.g. ``rewardlab.rewards.loader.load_reward_file(path, env)``."""
        from rewardlab.core.reward import compose

        self.reward_fn = reward_fn or compose(self.task.reward_terms())

    # -- state -----------------------------------------------------------------------------------

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def _target_changed(self) -> None:
        self.episodes_with_target_changes += 1
        if self.episodes_with_target_changes == 1:
            how = (
                "start the sim robot with episodes_on_request=true"
                if self.request_resets
                else "set topics.episode_request/episode_started in the robot config and start the sim robot with episodes_on_request=true"
            )  # fmt: skip
            self.log(
                f"[ros2 env] the target changed during an episode ({self._targets} targets): the "
                f"robot draws targets on its own clock, so rewards may belong to another target; {how}"
            )

    def _update_state(self, obs: np.ndarray) -> None:
        self._obs = obs
        parts = observation_parts(obs, self.controller.obs.terms, self.controller.obs.slices)
        if "target_pos" in parts and (self._target is None or not np.array_equal(parts["target_pos"], self._target)):  # fmt: skip
            self._target, self._targets = parts["target_pos"].copy(), self._targets + 1
        if "ee_to_target" in parts and "target_pos" in parts and "ee_pos" not in parts:
            parts["ee_pos"] = parts["target_pos"] - parts["ee_to_target"]
        if "ee_to_target" in parts and "distance" not in parts:
            parts["distance"] = np.array(np.linalg.norm(parts["ee_to_target"]))
        if "joint_vel" not in parts:
            parts["joint_vel"] = self.controller.obs.velocity.copy()
        if "joint_pos" not in parts:
            parts["joint_pos"] = self.controller.obs.position.copy()
        parts["last_action"] = self._last_action
        parts["prev_action"] = self._prev_action
        self._state = {
            k: self._tensor(np.asarray(v)).reshape(1, *self._spec[k].shape)
            for k, v in parts.items()
            if k in self._spec
        }

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self._state)

    def state_spec(self) -> dict[str, StateField]:
        """The task's schema, restricted to what the robot provides."""
        return {k: v for k, v in self._spec.items() if k in self._state or not self._state}

    def success(self) -> torch.Tensor:
        return self.task.success(self._state).to(self.device).reshape(1)

    def render(self, env_ids: Any = None) -> torch.Tensor:
        raise NotImplementedError(
            "ros2 backend: no rendering; subscribe to the robot's camera topic "
            "(rewardlab.deploy.camera) for VLM rewards"
        )

    def describe(self) -> str:
        return super().describe()

    @property
    def safety_state(self) -> str:
        return self.controller.status()
