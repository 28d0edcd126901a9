"""Record deploy episodes as rosbag2 (MCAP) and score a recorded episode with any reward function.

Recording (:class:`BagRecorder`) writes CDR messages with rosbags' rosbag2 writer, so
``ros2 bag info/play`` and every MCAP tool read the bags. Besides the robot's own topics it
writes what the controller decided, each control tick:

- ``/rewardlab/action`` (``std_msgs/Float64MultiArray``): the policy's clipped action;
- ``/rewardlab/observation`` (``Float64MultiArray``): the observation it acted on;
- ``/rewardlab/command`` (``Float64MultiArray``): the joint position command after the clamps;
- ``/rewardlab/safety_state`` (``std_msgs/String``): the safety state of every tick.

Replay (:func:`bag_states`, :func:`replay_reward`) rebuilds the reward functions' state batch
from a bag, one row per control tick, with the training env's conventions: row ``k`` is the
state *after* action ``k`` (the joint state the controller saw when it computed action
``k + 1``), with ``last_action = a_k`` and ``prev_action = a_{k-1}`` (zeros for ``k = 0``). State
names: ``joint_pos``, ``joint_vel`` (robot joint order), ``target_pos``, ``ee_pos``,
``ee_to_target``, ``distance`` (with a target topic and a kinematic chain), ``torso_quat``
(``w, x, y, z``) and ``torso_angvel`` (with an IMU), ``last_action``, ``prev_action``.
``replay_reward`` calls ``compute_reward(state, action) -> (total [T], {name: [T]})`` once on
the whole batch (torch tensors, as in training): a generated code reward or a VLM reward (the
bag's camera frames, aligned to the rows, come with :func:`bag_states` as ``frames``).

Reward code from an LLM must be loaded through ``rewardlab.rewards`` (checked in a sandbox)
before it is handed here: this module calls the function it is given (``rewardlab replay``,
:mod:`rewardlab.replay`, loads a task's or a file's reward and calls :func:`replay_reward`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.deploy.messages import Command
from rewardlab.deploy.robot_config import RobotConfig

ACTION_TOPIC = "/rewardlab/action"
OBSERVATION_TOPIC = "/rewardlab/observation"
COMMAND_TOPIC = "/rewardlab/command"
SAFETY_TOPIC = "/rewardlab/safety_state"
STORAGES = ("mcap", "sqlite3")


def _ns(t: float | int | None) -> int:
    if t is None:
        return time.time_ns()
    return int(t) if isinstance(t, int) else int(round(t * 1e9))


class BagRecorder:
    """A rosbag2 writer for deploy episodes (one bag folder per episode).

    Args:
        path: the bag folder to create (must not exist).
        storage: ``mcap`` (default) or ``sqlite3``.

    Raises:
        FileExistsError: ``path`` exists (a recording is never overwritten).
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        from rewardlab.deploy.transport_dds import typestore

        if storage not in STORAGES:
            raise ValueError(f"storage: got {storage!r}, expected one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: exists; recordings are never overwritten")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()  # DDS listener threads and the control loop both write
        self.counts: dict[str, int] = {}
        self._closed = False

    def _conn(self, topic: str, msgtype: str) -> Any:
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self._store)
            self._conns[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"{topic}: recorded as {conn.msgtype}, got a {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, data: bytes, t: float | int | None = None) -> None:
        """One serialized (CDR) message; ``t``: seconds (float) or nanoseconds (int), now if None.
        (rclpy users pass ``rclpy.serialization.serialize_message(msg)``.)"""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path}: recorder is closed")
            self._writer.write(self._conn(topic, msgtype), _ns(t), bytes(data))
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_msg(self, topic: str, msgtype: str, msg: Any, t: float | int | None = None) -> None:
        """A message of the DDS transport (``msg_class``) or a rosbags message object."""
        if hasattr(msg, "serialize"):
            from rewardlab.deploy.transport_dds import serialize

            data = serialize(msg)
        else:
            data = self._store.serialize_cdr(msg, msgtype)
        self.write(topic, msgtype, data, t)

    def record_command(self, cmd: Command, t: float | int | None = None) -> None:
        """The controller's decision of one tick (action, observation, command, safety state)."""
        from rewardlab.deploy.transport_dds import new_msg

        t = _ns(t)
        arr = "std_msgs/msg/Float64MultiArray"
        if cmd.action is not None:
            self.write_msg(ACTION_TOPIC, arr, new_msg(arr, data=[float(v) for v in cmd.action]), t)
        if cmd.observation is not None:
            self.write_msg(
                OBSERVATION_TOPIC, arr, new_msg(arr, data=[float(v) for v in cmd.observation]), t
            )
        self.write_msg(COMMAND_TOPIC, arr, new_msg(arr, data=[float(v) for v in cmd.positions]), t)
        text = cmd.state + (f" {cmd.reason}" if cmd.reason else "")
        self.write_msg(
            SAFETY_TOPIC, "std_msgs/msg/String", new_msg("std_msgs/msg/String", data=text), t
        )

    def attach_dds(self, node: Any, robot: RobotConfig, image: bool = True) -> None:
        """Record the robot's input topics received by a ``transport_dds.DdsNode`` (receive time)."""
        t = robot.topics
        topics = [(t.joint_states, "sensor_msgs/msg/JointState"), (t.imu, "sensor_msgs/msg/Imu"),
                  (t.target, "geometry_msgs/msg/PointStamped"), (t.estop, "std_msgs/msg/Bool"),
                  (t.cmd_vel, "geometry_msgs/msg/Twist"), (t.base_twist, "geometry_msgs/msg/TwistStamped")]  # fmt: skip
        if image and t.image:
            kind = (
                "sensor_msgs/msg/CompressedImage"
                if t.image.endswith("/compressed")
                else "sensor_msgs/msg/Image"
            )
            topics.append((t.image, kind))
        for topic, msgtype in topics:
            if topic:
                node.subscribe(topic, msgtype, self._recorder(topic, msgtype), qos="sensor")

    def _recorder(self, topic: str, msgtype: str) -> Callable[[Any, float], None]:
        def cb(msg: Any, recv: float) -> None:
            if not self._closed:
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    self.write_msg(topic, msgtype, msg)

        return cb

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# Reading and replay


def read_bag(
    path: str | Path, topics: Iterable[str] | None = None
) -> Iterable[tuple[str, str, int, Any]]:
    """``(topic, msgtype, t_ns, message)`` in time order (rosbags messages, fields by name)."""
    from rosbags.rosbag2 import Reader

    from rewardlab.deploy.transport_dds import typestore

    store = typestore()
    wanted = None if topics is None else set(topics)
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, t, data in reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, t, store.deserialize_cdr(data, conn.msgtype)


@dataclass
class BagStates:
    """A recorded episode as reward-function inputs, one row per control tick."""

    times: np.ndarray
    """``[T]`` seconds since the first action."""
    state: dict[str, np.ndarray]
    """Name -> ``[T, ...]`` float32 (see the module docstring for the names)."""
    actions: np.ndarray
    """``[T, n]`` the policy's clipped actions ``a_k``."""
    frames: np.ndarray | None = None
    """``[T, H, W, 3]`` uint8: the newest camera frame at each row's time, if the bag has images."""


def bag_states(path: str | Path, robot: RobotConfig) -> BagStates:
    """Rebuild the per-tick state batch of a recorded episode (see the module docstring).

    Raises:
        ValueError: the bag has fewer than 2 actions, or no joint state before its actions.
    """
    from rewardlab.deploy.camera import to_frame
    from rewardlab.deploy.observation import forward_kinematics

    names = list(robot.joint_names)
    index = {n: i for i, n in enumerate(names)}
    n = len(names)
    q, qd = np.full(n, np.nan), np.zeros(n)
    target = None
    imu = None
    frame = None
    rows: list[dict[str, Any]] = []  # snapshots at each action
    topics = robot.topics
    for topic, _msgtype, t, msg in read_bag(path):
        if topic == topics.joint_states:
            for i, name in enumerate(msg.name):
                j = index.get(name)
                if j is not None:
                    q[j] = msg.position[i]
                    if len(msg.velocity):
                        qd[j] = msg.velocity[i]
        elif topic == topics.target:
            target = np.array([msg.point.x, msg.point.y, msg.point.z])
        elif topic == topics.imu:
            o, w = msg.orientation, msg.angular_velocity
            imu = (np.array([o.w, o.x, o.y, o.z]), np.array([w.x, w.y, w.z]))
        elif topic == topics.image:
            frame = to_frame(msg)
        elif topic == ACTION_TOPIC:
            rows.append({"t": t, "q": q.copy(), "qd": qd.copy(), "target": target, "imu": imu, "frame": frame,
                         "action": np.asarray(msg.data, dtype=np.float64)})  # fmt: skip
    if len(rows) < 2:
        raise ValueError(
            f"{path}: {len(rows)} actions on {ACTION_TOPIC}; need at least 2 control ticks"
        )
    if not np.all(np.isfinite(rows[1]["q"])):
        raise ValueError(
            f"{path}: no joint state on {topics.joint_states} for every joint before the actions"
        )
    # row k: state observed with action k+1, after action k
    post, acts = rows[1:], np.stack([r["action"] for r in rows[:-1]])
    prev = np.vstack([np.zeros((1, acts.shape[1])), acts[:-1]])
    state: dict[str, np.ndarray] = {
        "joint_pos": np.stack([r["q"] for r in post]),
        "joint_vel": np.stack([r["qd"] for r in post]),
        "last_action": acts,
        "prev_action": prev,
    }
    if all(r["target"] is not None for r in post):
        state["target_pos"] = np.stack([r["target"] for r in post])
        if robot.kinematics.chain:
            ee = np.stack([forward_kinematics(robot.kinematics, names, r["q"]) for r in post])
            state["ee_pos"] = ee
            state["ee_to_target"] = state["target_pos"] - ee
            state["distance"] = np.linalg.norm(state["ee_to_target"], axis=-1)
    if all(r["imu"] is not None for r in post):
        state["torso_quat"] = np.stack([r["imu"][0] for r in post])
        state["torso_angvel"] = np.stack([r["imu"][1] for r in post])
    frames = None
    if all(r["frame"] is not None for r in post):
        frames = np.stack([r["frame"] for r in post])
    times = (np.array([r["t"] for r in post], dtype=np.float64) - rows[0]["t"]) * 1e-9
    state = {k: v.astype(np.float32) for k, v in state.items()}
    return BagStates(times, state, acts.astype(np.float32), frames)


@dataclass
class ReplayResult:
    """A reward function's view of a recorded episode."""

    times: np.ndarray
    """``[T]`` seconds since the first action."""
    total: np.ndarray
    """``[T]`` reward per tick."""
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-term rewards ``[T]``."""

    @property
    def episode_return(self) -> float:
        return float(self.total.sum())

    def summary(self) -> dict[str, float]:
        """``reward/<term>`` sums and the total return, for logs."""
        out = {f"reward/{k}": float(v.sum()) for k, v in self.terms.items()}
        out["return"] = self.episode_return
        return out


def replay_reward(
    path: str | Path,
    robot: RobotConfig,
    compute_reward: Callable[[dict[str, Any], Any], tuple[Any, dict[str, Any]]],
    with_frames: bool = False,
) -> ReplayResult:
    """Score a recorded episode: ``compute_reward(state, action)`` on the bag's state batch.

    Args:
        path: bag folder written by :class:`BagRecorder`.
        robot: the robot config it was recorded with (topics, joint order, kinematics).
        compute_reward: the reward contract: torch tensors ``[T, ...]`` in, ``(total [T],
            {name: [T]})`` out.
        with_frames: put the frames in ``state["frames"]`` (uint8 ``[T, H, W, 3]``) for VLM rewards.

    Raises:
        ValueError: the bag cannot be replayed, or the reward returns the wrong shapes.
    """
    import torch

    data = bag_states(path, robot)
    state = {k: torch.from_numpy(v) for k, v in data.state.items()}
    if with_frames:
        if data.frames is None:
            raise ValueError(f"{path}: no camera frames on {robot.topics.image} to score")
        state["frames"] = torch.from_numpy(data.frames)
    with torch.no_grad():
        total, terms = compute_reward(state, torch.from_numpy(data.actions))
    total_np = np.asarray(torch.as_tensor(total).detach().cpu().numpy(), dtype=np.float64)
    if total_np.shape != data.times.shape:
        raise ValueError(f"reward total has shape {total_np.shape}, expected [{data.times.size}]")
    terms_np = {
        k: np.asarray(torch.as_tensor(v).detach().cpu().numpy(), dtype=np.float64)
        for k, v in terms.items()
    }
    return ReplayResult(data.times, total_np, terms_np)


def scorer_reward(
    scorer: Any, name: str = "vlm"
) -> Callable[[dict[str, Any], Any], tuple[Any, dict[str, Any]]]:
    """A frame scorer (``rewardlab.vlm_reward`` ``FrameScorer``: ``score(uint8 [n, H, W, 3]) ->
    [n]``) as a reward for :func:`replay_reward` with ``with_frames=True``."""

    def compute_reward(state: dict[str, Any], action: Any) -> tuple[Any, dict[str, Any]]:
        scores = scorer.score(state["frames"])
        return scores, {name: scores}

    return compute_reward
