"""Demonstrations as data: one episode format, and recorders for each source.

:class:`Episodes` holds ``E`` episodes of one task, padded to ``T`` steps::

    observations  [E, T, obs_dim] float32   what the policy saw at step t
    actions       [E, T, A]       float32   what it did at step t, in [-1, 1]
    success       [E, T]          bool      the task's own success at step t (before the action)
    reward        [E, T]          float32   the task's own reward of the state at step t
    length        [E]             int       valid steps (rows past it repeat the last one)
    physics       {field: [E, T, ...]}      physics rows (qpos, mocap_pos) to redraw each frame
    frames        [E, T, H, W, 3] uint8     camera frames, when the source had them (a bag)
    kind, script  [E] str                   intended outcome (success/partial/failure/policy/
                                            teleop) and the script, policy or bag behind it
    task, task_cfg, source, meta            the task, its config overrides, where they came from

Step ``t`` pairs the observation with the action taken on it (``obs_t -> a_t``), so behaviour
cloning reads ``observations[e, :length[e]]`` and ``actions[e, :length[e]]`` directly.
:meth:`Episodes.save` writes one ``.npz`` (metadata as JSON text, no pickles);
:meth:`Episodes.load` reads it with ``allow_pickle=False`` and refuses anything else in one line
(:class:`EpisodeFormatError`, a ``ValueError``).

Sources (each returns :class:`Episodes`):

- :func:`record` -- run any batched policy ``act(obs, state, env) -> actions [N, A]`` in a
  batched env, one episode per world; :func:`record_script` runs a task's scripted policy
  (``Task.scripted_episodes``); a trained policy is an ``act`` that ignores the state (the
  application resolves run directories and exports: ``rewardlab demos record source=policy``);
- :func:`episodes_from_bags` -- rosbag2 (MCAP) folders written by the deploy loop
  (:class:`rewardlab.deploy.recording.BagRecorder`): the observation and action the controller
  logged each tick (``/rewardlab/observation``, ``/rewardlab/action``) and the camera frames;
  a bag holds no task success or reward, so those are ``False`` / ``NaN`` (``meta.labels``
  says ``none``), and no physics rows (frames come from the bag's camera, when it has one).
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.knowledge import OptOut, Script

FORMAT = "rewardlab-episodes"
"""The ``format`` entry of an episode file."""
FORMAT_VERSION = 1
SOURCES = ("script", "policy", "bag")
"""Values of :attr:`Episodes.source`."""
PHYSICS_FIELDS = ("qpos", "mocap_pos")
"""Physics rows kept per step (enough to redraw a frame with the task's camera)."""

Act = Callable[[torch.Tensor, Mapping[str, torch.Tensor], BatchedEnv], torch.Tensor]
"""A batched policy as a recorder calls it: ``act(obs, state, env) -> actions [N, A]``."""


class EpisodeFormatError(ValueError):
    """A file that is not an episode file of this format (one line naming the file and why)."""


@dataclasses.dataclass(frozen=True)
class Transitions:
    """Flat transitions ``(s_t, a_t, r_{t+1}, s_{t+1})`` of episodes, in episode order
    (:meth:`Episodes.step_transitions`); ``S`` transitions."""

    obs: np.ndarray
    """``[S, obs_dim]`` float32 observation the action was taken on."""
    actions: np.ndarray
    """``[S, A]`` float32 action, in ``[-1, 1]``."""
    rewards: np.ndarray
    """``[S]`` float32 reward of the state the action led to."""
    next_obs: np.ndarray
    """``[S, obs_dim]`` float32 observation the action led to."""
    episode_end: np.ndarray
    """``[S]`` bool: the episode's last transition (no later step of it follows)."""

    def __len__(self) -> int:
        return len(self.rewards)


@dataclasses.dataclass
class Episodes:
    """Recorded episodes of one task (see the module docstring for the shapes)."""

    task: str
    """Task name (its reward camera redraws the frames from ``physics``)."""
    physics: dict[str, np.ndarray]
    """Field -> ``[E, T, ...]`` physics rows (``qpos``, ``mocap_pos``) of each step."""
    length: np.ndarray
    """``[E]`` valid steps of each episode (rows past it repeat the last valid one)."""
    success: np.ndarray
    """``[E, T]`` the task's own success flag at each step."""
    reward: np.ndarray
    """``[E, T]`` the task's own reward of each step (``NaN`` when the source has none)."""
    kind: list[str]
    """``[E]`` intended outcome: success, partial, failure (scripts), policy, teleop (bags)."""
    script: list[str]
    """``[E]`` the script, policy or bag each episode came from."""
    observations: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0, 0, 0), np.float32)
    )
    """``[E, T, obs_dim]`` float32: the observation at each step."""
    actions: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))
    """``[E, T, A]`` float32: the action taken on it, in ``[-1, 1]``."""
    frames: np.ndarray | None = None
    """``[E, T, H, W, 3]`` uint8 camera frames, when the source recorded them (bags)."""
    source: str = "script"
    """One of :data:`SOURCES`."""
    task_cfg: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Overrides of the task's config the episodes were recorded with."""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    """More JSON data (seed, deterministic, labels, ...)."""

    def __repr__(self) -> str:
        """One line: task, source, episodes, steps, success share, which arrays (and shapes).

        The dataclass default printed every array in full (megabytes for a few episodes).
        """
        shapes = {"observations": self.observations.shape, "actions": self.actions.shape}
        if self.frames is not None:
            shapes["frames"] = self.frames.shape
        arrays = ", ".join(f"{k}={list(v)}" for k, v in shapes.items())
        ok = float(self.episode_success.mean()) if self.num_episodes else 0.0
        return (
            f"Episodes(task={self.task!r}, source={self.source!r}, episodes={self.num_episodes}, "
            f"steps={int(self.length.sum())}, success={ok:.2f}, {arrays})"
        )

    @property
    def num_episodes(self) -> int:
        """``E``."""
        return len(self.length)

    @property
    def episode_success(self) -> np.ndarray:
        """``[E]`` bool: the task's success holds on the episode's last valid step."""
        return self.success[np.arange(len(self.length)), self.length - 1]

    @property
    def steps(self) -> int:
        """Valid steps over all episodes."""
        return int(self.length.sum())

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(obs [S, obs_dim], actions [S, A])`` of every valid step (``S`` = :attr:`steps`)."""
        mask = np.arange(self.observations.shape[1])[None, :] < self.length[:, None]
        return self.observations[mask], self.actions[mask]

    def step_transitions(self, rewards: np.ndarray) -> Transitions:
        """Every valid step that has a next observation, as flat transitions.

        Step ``t``'s ``reward[t]`` and ``success[t]`` belong to the state ``s_t``, so the
        transition ``(s_t, a_t, s_{t+1})`` earns ``rewards[:, t + 1]``; an episode's last valid
        step has no next observation and is not a transition.

        Args:
            rewards: ``[E, T]`` reward of the state at each step (e.g. :attr:`reward`, or
                :attr:`success` as 0/1).
        """
        t = np.arange(self.observations.shape[1] - 1)[None, :]
        mask = t < (self.length[:, None] - 1)
        return Transitions(
            obs=self.observations[:, :-1][mask],
            actions=self.actions[:, :-1][mask],
            rewards=np.asarray(rewards, np.float32)[:, 1:][mask],
            next_obs=self.observations[:, 1:][mask],
            episode_end=np.broadcast_to(t == self.length[:, None] - 2, mask.shape)[mask],
        )

    def select(self, index: np.ndarray | Sequence[int]) -> Episodes:
        """The episodes at ``index`` (a bool mask or indices), metadata kept."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        return dataclasses.replace(
            self,
            physics={k: v[idx] for k, v in self.physics.items()},
            length=self.length[idx],
            success=self.success[idx],
            reward=self.reward[idx],
            kind=[self.kind[i] for i in idx],
            script=[self.script[i] for i in idx],
            observations=self.observations[idx],
            actions=self.actions[idx],
            frames=None if self.frames is None else self.frames[idx],
        )

    def save(self, path: str | Path) -> Path:
        """Write the episodes as one ``.npz`` (metadata as JSON text); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"physics_{k}": v for k, v in self.physics.items()}
        if self.frames is not None:
            arrays["frames"] = self.frames
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "task": self.task,
            "source": self.source,
            "task_cfg": self.task_cfg,
            "meta": self.meta,
        }
        with path.open("wb") as f:
            np.savez_compressed(
                f,
                header=np.array(json.dumps(header)),
                task=np.array(self.task),
                observations=self.observations.astype(np.float32),
                actions=self.actions.astype(np.float32),
                length=self.length.astype(np.int64),
                success=self.success.astype(bool),
                reward=self.reward.astype(np.float32),
                kind=np.array(self.kind, dtype=str),
                script=np.array(self.script, dtype=str),
                **arrays,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Episodes:
        """Read what :meth:`save` wrote (as data: ``allow_pickle=False``).

        Raises:
            FileNotFoundError: no such file.
            EpisodeFormatError: not an episode file, or its arrays disagree in shape (one line
                naming the file and what is wrong).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such episode file")
        if not path.is_file():
            raise EpisodeFormatError(f"{path}: not a file, expected an episode file (.npz)")
        if not zipfile.is_zipfile(path):
            raise EpisodeFormatError(
                f"{path}: not an episode file (not a .npz archive; write one with `rewardlab "
                "demos record`)"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            why = " ".join(str(e).split())[:160] or type(e).__name__
            raise EpisodeFormatError(
                f"{path}: not an episode file (expected a .npz written by `rewardlab demos "
                f"record`: {why})"
            ) from None
        missing = [k for k in ("task", "length", "success", "reward", "kind") if k not in data]
        if missing:
            raise EpisodeFormatError(f"{path}: not an episode file (missing {', '.join(missing)})")
        header: dict[str, Any] = {}
        if "header" in data:
            try:
                header = json.loads(str(data["header"]))
            except json.JSONDecodeError:
                raise EpisodeFormatError(f"{path}: episode file header is not JSON") from None
            if header.get("format") != FORMAT:
                raise EpisodeFormatError(
                    f"{path}: format {header.get('format')!r}, expected {FORMAT!r}"
                )
            if int(header.get("version", 0)) > FORMAT_VERSION:
                raise EpisodeFormatError(
                    f"{path}: episode format version {header.get('version')} is newer than this "
                    f"RewardLab's ({FORMAT_VERSION})"
                )
        length = data["length"].astype(np.int64)
        e = len(length)
        t = data["success"].shape[1] if data["success"].ndim == 2 else -1
        obs = data.get("observations", np.zeros((e, max(t, 0), 0), np.float32))
        act = data.get("actions", np.zeros((e, max(t, 0), 0), np.float32))
        shapes = {
            "success": (data["success"].shape, (e, t)),
            "reward": (data["reward"].shape, (e, t)),
            "observations": (obs.shape[:2], (e, t)),
            "actions": (act.shape[:2], (e, t)),
            "kind": (data["kind"].shape, (e,)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise EpisodeFormatError(
                    f"{path}: {name} has shape {tuple(got)}, expected {want} "
                    f"({e} episodes of {t} steps)"
                )
        if e and (length.min() < 1 or length.max() > t):
            raise EpisodeFormatError(f"{path}: length must be in [1, {t}]")
        script = data.get("script", data["kind"])
        return cls(
            task=str(data["task"]),
            physics={k[len("physics_") :]: v for k, v in data.items() if k.startswith("physics_")},
            length=length,
            success=data["success"].astype(bool),
            reward=data["reward"].astype(np.float32),
            kind=[str(s) for s in data["kind"]],
            script=[str(s) for s in script],
            observations=obs.astype(np.float32),
            actions=act.astype(np.float32),
            frames=data.get("frames"),
            source=str(header.get("source", "script")),
            task_cfg=dict(header.get("task_cfg") or {}),
            meta=dict(header.get("meta") or {}),
        )


def load_episodes(paths: str | Path | Sequence[str | Path]) -> Episodes:
    """One or several episode files as one :class:`Episodes` (see :func:`concatenate`)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    return concatenate([Episodes.load(p) for p in paths])


def concatenate(parts: Sequence[Episodes]) -> Episodes:
    """Episodes of the same task (and widths) as one set, padded to the longest.

    Raises:
        ValueError: no parts, different tasks, or different observation/action widths.
    """
    if not parts:
        raise ValueError("no episodes to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.task != first.task:
            raise ValueError(f"episodes of different tasks: {first.task!r} and {p.task!r}")
        for name in ("observations", "actions"):
            a, b = getattr(first, name).shape[2:], getattr(p, name).shape[2:]
            if a != b:
                raise ValueError(f"episodes of different {name} widths: {a} and {b}")
    if len(parts) == 1:
        return first
    t_max = max(p.success.shape[1] for p in parts)

    def cat(arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([_pad(a, t_max) for a in arrays])

    physics = {
        k: cat([p.physics[k] for p in parts])
        for k in first.physics
        if all(k in p.physics for p in parts)
    }
    frames = None
    if all(p.frames is not None for p in parts):
        frames = cat([p.frames for p in parts if p.frames is not None])
    sources = sorted({p.source for p in parts})
    return Episodes(
        task=first.task,
        physics=physics,
        length=np.concatenate([p.length for p in parts]),
        success=cat([p.success for p in parts]),
        reward=cat([p.reward for p in parts]),
        kind=[k for p in parts for k in p.kind],
        script=[s for p in parts for s in p.script],
        observations=cat([p.observations for p in parts]),
        actions=cat([p.actions for p in parts]),
        frames=frames,
        source=sources[0] if len(sources) == 1 else "+".join(sources),
        task_cfg=first.task_cfg,
        meta={
            "parts": [p.meta for p in parts],
            **({"labels": "none"} if all(p.meta.get("labels") == "none" for p in parts) else {}),
        },
    )


def _pad(a: np.ndarray, t: int) -> np.ndarray:
    """``a [E, T, ...]`` padded to ``t`` steps by repeating its last step."""
    if a.shape[1] >= t:
        return a
    width = [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, width, mode="edge")


# -- recording in simulation ------------------------------------------------------------------


def _physics(env: BatchedEnv) -> dict[str, np.ndarray]:
    try:
        state = env.get_state_dict()
    except (NotImplementedError, AttributeError, RuntimeError):
        return {}
    physics = state.get("physics") if isinstance(state, dict) else None
    if not isinstance(physics, dict):
        return {}
    return {
        f: np.asarray(physics[f]).copy()
        for f in PHYSICS_FIELDS
        if f in physics and np.asarray(physics[f]).size
    }


def record(
    env: BatchedEnv,
    act: Act,
    *,
    task: str,
    source: str,
    name: str,
    kind: str,
    steps: int | None = None,
    hold_steps: int | None = None,
    seed: int = 0,
    task_cfg: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Episodes:
    """Run ``act`` in ``env`` and record one episode per world.

    Each world's episode runs until it terminates or is truncated (the env's time limit), until
    ``steps``, or -- with ``hold_steps`` -- until the task's success has held that many steps.

    Args:
        env: a batched env of ``task`` (the caller closes it); it is reset with ``seed``.
        act: ``act(obs [N, obs_dim], state, env) -> actions [N, A]`` (clamped to ``[-1, 1]``).
        task: the task's name.
        source: one of :data:`SOURCES`.
        name: the script or policy (kept per episode).
        kind: the intended outcome (success, partial, failure, policy).
        steps: at most this many steps; default the env's episode length.
        hold_steps: end a world's episode once its success has held this many steps.
        seed: seed of the env's reset.
        task_cfg: the task config overrides ``env`` was made with (recorded).
        meta: more JSON data to keep.
    """
    n = env.num_envs
    obs = env.reset(seed=seed)
    horizon = int(steps or env.max_episode_steps)
    rows: dict[str, list[np.ndarray]] = {}
    o_hist, a_hist, s_hist, r_hist = [], [], [], []
    ended = np.full(n, horizon)
    streak = np.zeros(n, dtype=int)
    alive = np.ones(n, dtype=bool)
    for t in range(horizon):
        for f, v in _physics(env).items():
            rows.setdefault(f, []).append(v)
        state = env.state()
        s_now = env.success().cpu().numpy().astype(bool)
        reward_fn = env.reward_fn
        r_now = (
            reward_fn(state, state["last_action"])[0].cpu().numpy()
            if reward_fn is not None and "last_action" in state
            else np.full(n, np.nan, np.float32)
        )
        s_hist.append(s_now)
        r_hist.append(r_now)
        streak = np.where(s_now, streak + 1, 0)
        with torch.no_grad():
            action = act(obs, state, env).to(env.device).clamp(-1.0, 1.0)
        o_hist.append(obs.cpu().numpy())
        a_hist.append(action.cpu().numpy())
        if hold_steps is not None:
            finish = alive & (streak >= hold_steps)
            ended[finish] = t + 1
            alive &= ~finish
            if not alive.any():
                break
        obs, _, term, trunc, _ = env.step(action)
        done = (term | trunc).cpu().numpy() & alive
        ended[done] = t + 1
        alive &= ~done
        if not alive.any():
            break
    length = np.minimum(ended, len(s_hist))
    return Episodes(
        task=task,
        physics={f: np.stack(seq, 1) for f, seq in rows.items()},
        length=length.astype(np.int64),
        success=np.stack(s_hist, 1),
        reward=np.stack(r_hist, 1).astype(np.float32),
        kind=[kind] * n,
        script=[name] * n,
        observations=np.stack(o_hist, 1).astype(np.float32),
        actions=np.stack(a_hist, 1).astype(np.float32),
        source=source,
        task_cfg=dict(task_cfg or {}),
        meta={"seed": seed, **dict(meta or {})},
    )


def perturbed(act: Act, noise: float = 0.0, epsilon: float = 0.0, seed: int = 0) -> Act:
    """``act`` with exploration noise, for mixed-quality data (D4RL's "medium-replay" style).

    Each step, each world's action gets ``N(0, noise)`` added to every component; with
    probability ``epsilon`` a world's action is replaced by one drawn uniformly from ``[-1, 1]``.
    The recorded action is the perturbed one (what the env was given, clamped to [-1, 1]).

    Args:
        act: the batched policy.
        noise: std of the Gaussian noise (action units, [-1, 1] range); 0: none.
        epsilon: probability of a uniformly random action per world and step; 0: never.
        seed: seed of the noise (its own generator: the env's and torch's stay untouched).

    Raises:
        ValueError: ``noise < 0`` or ``epsilon`` outside ``[0, 1]``.
    """
    if not noise >= 0.0:
        raise ValueError(f"noise: got {noise!r}, expected >= 0")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon: got {epsilon!r}, expected in [0, 1]")
    if noise == 0.0 and epsilon == 0.0:
        return act
    gen = torch.Generator().manual_seed(int(seed) + 7_777)

    def noisy(
        obs: torch.Tensor, state: Mapping[str, torch.Tensor], env: BatchedEnv
    ) -> torch.Tensor:
        a = act(obs, state, env).detach().cpu().float()
        if noise > 0.0:
            a = a + noise * torch.randn(a.shape, generator=gen)
        if epsilon > 0.0:
            pick = torch.rand(a.shape[0], 1, generator=gen) < epsilon
            a = torch.where(pick, torch.rand(a.shape, generator=gen) * 2.0 - 1.0, a)
        return a.clamp(-1.0, 1.0)

    return noisy


def scripts_of(task: str, hint: Callable[[], str] | None = None) -> dict[str, Script]:
    """The scripted policies ``task`` declares (``Task.scripted_episodes``).

    Args:
        task: a registered task.
        hint: what to say after the reason when there are none (default: record from a policy).

    Raises:
        ValueError: the task declares none (one line, with its reason when it opted out).
    """
    own = get_task(task).scripted_episodes
    table: dict[str, Script] = dict(own) if own is not None and not isinstance(own, OptOut) else {}
    if not table:
        why = f" ({own.reason})" if isinstance(own, OptOut) else ""
        more = (
            hint() if hint is not None else "record from a trained policy instead (source=policy)"
        )
        raise ValueError(f"task: no scripted episodes for {task!r}{why}; {more}")
    return table


def record_script(
    env: BatchedEnv,
    task: str,
    script: str,
    *,
    steps: int | None = None,
    hold_steps: int | None = None,
    seed: int = 0,
    task_cfg: Mapping[str, Any] | None = None,
    noise: float = 0.0,
    epsilon: float = 0.0,
) -> Episodes:
    """One episode per world of ``env`` from the task's scripted policy ``script``
    (``noise``/``epsilon``: exploration noise on its actions, see :func:`perturbed`).

    Raises:
        ValueError: the task has no such script (the message lists its scripts).
    """
    table = scripts_of(task)
    if script not in table:
        raise ValueError(f"script: got {script!r}, expected one of {', '.join(table)} ({task})")
    policy = table[script].policy

    def act(obs: torch.Tensor, state: Mapping[str, torch.Tensor], env: BatchedEnv) -> torch.Tensor:
        return policy(dict(state), env)

    noisy = noise > 0.0 or epsilon > 0.0
    return record(
        env, perturbed(act, noise, epsilon, seed), task=task, source="script", name=script,
        kind=table[script].kind, steps=steps, hold_steps=hold_steps,
        seed=seed, task_cfg=task_cfg,
        meta={"noise": noise, "epsilon": epsilon} if noisy else None,
    )  # fmt: skip


# -- deploy recordings ------------------------------------------------------------------------


def episodes_from_bags(
    paths: Sequence[str | Path], task: str, image_topic: str | None = None
) -> Episodes:
    """Episodes from rosbag2 folders the deploy loop recorded (one episode per bag).

    Each control tick the deploy loop logs the observation the policy acted on and its clipped
    action (``rewardlab.deploy.recording.OBSERVATION_TOPIC`` / ``ACTION_TOPIC``, same time
    stamp); ticks in HOLD/DAMP log neither. Those pairs are the episode's steps. Camera frames
    (``image_topic``, e.g. the robot config's ``topics.image``) are the newest before each tick.
    A bag holds no task success or reward: ``success`` is all false, ``reward`` NaN, and
    ``meta["labels"]`` is ``"none"``.

    Raises:
        ValueError: a bag without observation/action pairs (one line naming it).
    """
    from rewardlab.deploy.recording import ACTION_TOPIC, OBSERVATION_TOPIC, read_bag

    parts = []
    for path in paths:
        topics = [ACTION_TOPIC, OBSERVATION_TOPIC] + ([image_topic] if image_topic else [])
        obs_at: dict[int, np.ndarray] = {}
        act_at: dict[int, np.ndarray] = {}
        frame_at: dict[int, np.ndarray | None] = {}
        frame = None
        try:
            messages = list(read_bag(path, topics))
        except Exception as e:  # noqa: BLE001 - rosbags' errors: one line naming the bag
            msg = " ".join(str(e).split())[:200] or type(e).__name__
            raise ValueError(f"{path}: cannot be read as a rosbag2 recording ({msg})") from None
        for topic, _type, t, msg in messages:
            if topic == image_topic:
                from rewardlab.deploy.camera import to_frame

                frame = to_frame(msg)
            elif topic == OBSERVATION_TOPIC:
                obs_at[t] = np.asarray(msg.data, np.float32)
                frame_at[t] = frame
            elif topic == ACTION_TOPIC:
                act_at[t] = np.asarray(msg.data, np.float32)
        ticks = sorted(set(obs_at) & set(act_at))
        if not ticks:
            raise ValueError(
                f"{path}: no ticks with both {OBSERVATION_TOPIC} and {ACTION_TOPIC} (was it "
                "recorded by `rewardlab deploy record=DIR` while the policy ran?)"
            )
        obs = np.stack([obs_at[t] for t in ticks])[None]
        act = np.stack([act_at[t] for t in ticks])[None]
        frames = None
        if image_topic and all(frame_at[t] is not None for t in ticks):
            frames = np.stack([frame_at[t] for t in ticks])[None]  # type: ignore[misc]
        n = len(ticks)
        parts.append(
            Episodes(
                task=task,
                physics={},
                length=np.array([n]),
                success=np.zeros((1, n), bool),
                reward=np.full((1, n), np.nan, np.float32),
                kind=["teleop"],
                script=[str(path)],
                observations=obs,
                actions=act,
                frames=frames,
                source="bag",
                meta={
                    "labels": "none",
                    "bag": str(path),
                    "times_ns": [int(ticks[0]), int(ticks[-1])],
                },
            )
        )
    return concatenate(parts)
