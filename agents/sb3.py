"""Stable-baselines3 PPO and SAC on a batched env, through the SB3 ``VecEnv`` adapter.

For users who know SB3 (``agent=sb3_ppo`` / ``agent=sb3_sac``: :class:`SB3PPOAgent`,
:class:`SB3SACAgent` in :data:`rewardlab.agents.registry.AGENTS`). Public API, kept stable:

- :func:`train_sb3` ``(algo, env, total_steps, log_dir, seed, hyperparams) -> model``: trains,
  logs to TensorBoard in ``log_dir``, prints progress, saves
  ``log_dir/checkpoints/sb3_<algo>.zip`` atomically and returns the SB3 model.
- :func:`load_sb3` ``(path) -> model``: loads such a checkpoint (the algorithm is read from it).
- :func:`sb3_inference_policy` ``(model) -> nn.Module``: the deterministic policy as a plain
  torch module, raw observation ``float32 [B, obs_dim]`` -> action ``[B, action_dim]`` in
  ``[-1, 1]``, observation normalization included; TorchScript (script or trace) and ONNX
  exportable, with the same signature as the native PPO policy.
- :class:`SB3Policy` ``(model)``: the model behind the :class:`~rewardlab.agents.policy.Policy`
  interface (deterministic ``__call__``, sampled ``sample``).

What it cannot do: algorithms other than PPO and SAC; policies other than SB3's MLP policies
on flat observations (no custom or CNN feature extractors, no recurrent policies); per-world
reset options; continuing training of a loaded model with its observation normalization
(:func:`load_sb3` restores the statistics for :func:`sb3_inference_policy` only).
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import math
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from rewardlab.agents.registry import TrainOutcome, TrainSpec
from rewardlab.core.files import atomic_write
from rewardlab.envs.adapters.sb3 import Sb3VecEnv
from rewardlab.envs.base import BatchedEnv

if TYPE_CHECKING:  # an annotation only
    from rewardlab.agents.distributed import DistContext

Algo = Literal["ppo", "sac"]
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
"""Algorithm name -> SB3 class."""

WRAPPER_KEYS = ("normalize_obs", "normalize_reward")
"""Keys of ``TrainConfig.sb3`` that configure the env wrapper (``VecNormalize``) rather than the
SB3 algorithm."""


def default_hyperparams(algo: Algo, num_envs: int, total_steps: int) -> dict[str, Any]:
    """The SB3 constructor arguments :func:`train_sb3` uses unless ``hyperparams`` overrides them.

    SB3's own defaults, except: PPO collects about 2048 transitions per update whatever the number
    of worlds (``n_steps = max(16, ceil(2048 / num_envs))``, 4 minibatches) and runs on the CPU
    (SB3's advice for MLP policies); SAC's replay buffer holds no more than ``total_steps``
    (at least 10,000) transitions. SAC keeps SB3's one gradient step per vectorized step, i.e.
    one per ``num_envs`` transitions: raise ``gradient_steps`` for more updates per sample.
    """
    if algo == "ppo":
        n_steps = max(16, math.ceil(2048 / num_envs))
        return {
            "policy": "MlpPolicy",
            "n_steps": n_steps,
            "batch_size": max(1, n_steps * num_envs // 4),
            "device": "cpu",
        }
    if algo == "sac":
        return {
            "policy": "MlpPolicy",
            "buffer_size": int(min(1_000_000, max(total_steps, 10_000))),
            "device": "auto",
        }
    raise ValueError(f"algo: got {algo!r}, allowed: {', '.join(ALGOS)}")


def train_sb3(
    algo: Algo,
    env: BatchedEnv,
    total_steps: int,
    log_dir: str | os.PathLike[str],
    seed: int = 0,
    hyperparams: dict[str, Any] | None = None,
    *,
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    progress_every_s: float = 10.0,
    checkpoint_every_steps: int | None = None,
    torch_threads: int | None = 1,
) -> BaseAlgorithm:
    """Train SB3 PPO or SAC on every world of ``env``.

    TensorBoard events go directly into ``log_dir`` (SB3's ``rollout/ep_rew_mean``,
    ``rollout/success_rate``, ``train/*``, plus ``reward/<term>``: each reward component's mean
    per step). Every ``progress_every_s`` seconds and at the end a line is printed: steps,
    steps/s, mean episode return and success rate (SB3's last 100 episodes), ETA. The model is
    saved to ``log_dir/checkpoints/sb3_<algo>.zip`` (written to a temporary file, then
    ``os.replace``), at the end and every ``checkpoint_every_steps`` if set.

    Args:
        algo: ``"ppo"`` or ``"sac"``.
        env: the batched env (all its worlds are used); it is reset with ``seed`` first.
        total_steps: transitions to collect, counted over all worlds (SB3's ``total_timesteps``;
            PPO rounds up to whole rollouts of ``n_steps * num_envs``).
        log_dir: run directory for TensorBoard events and ``checkpoints/``.
        seed: seeds SB3 (torch, numpy, action space) and the env's reset stream.
        hyperparams: SB3 constructor arguments overriding :func:`default_hyperparams`
            (e.g. ``{"learning_rate": 1e-3, "n_steps": 64, "policy_kwargs": {"net_arch": [64]}}``);
            ``"policy"`` selects the policy class name (``"MlpPolicy"``).
        normalize_obs: wrap the env in SB3's ``VecNormalize`` for observations (clip 10); the
            statistics are saved with the model and built into :func:`sb3_inference_policy`.
        normalize_reward: ``VecNormalize`` reward scaling (training only; logged returns stay raw).
        progress_every_s: seconds between progress lines; ``0`` or less prints only at the end.
        checkpoint_every_steps: also save every this many transitions.
        torch_threads: ``torch.set_num_threads`` while training (restored afterwards; it is
            process-wide). 1 by default: SB3's small MLPs on small batches gain nothing from
            intra-op threads, and on a busy CPU their spin-waits made PPO 16x slower in our
            measurements. ``None`` leaves torch's setting alone.

    Returns:
        The trained SB3 model (``model.get_env()`` is the adapter, wrapped in ``VecNormalize``
        when normalizing).

    Raises:
        ValueError: unknown ``algo``, ``total_steps < 1``, or hyperparameters SB3 refuses
            (the message names them).
    """
    if algo not in ALGOS:
        raise ValueError(f"algo: got {algo!r}, allowed: {', '.join(ALGOS)}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(log_dir, algo)

    venv: VecEnv = Sb3VecEnv(env)
    if normalize_obs or normalize_reward:
        gamma = float((hyperparams or {}).get("gamma", 0.99))
        venv = VecNormalize(
            venv, norm_obs=normalize_obs, norm_reward=normalize_reward, clip_obs=10.0, gamma=gamma
        )
    hp = {**default_hyperparams(algo, env.num_envs, total_steps), **(hyperparams or {})}
    policy = hp.pop("policy")
    try:
        model = ALGOS[algo](policy, venv, seed=seed, verbose=0, **hp)
    except (TypeError, ValueError, AssertionError) as e:
        raise ValueError(f"sb3_{algo}: invalid hyperparams {sorted(hp)}: {e}") from e
    model.set_logger(configure(str(log_dir), ["tensorboard"]))
    model.rewardlab_algo = algo  # type: ignore[attr-defined]  # saved in the zip's data
    model.rewardlab_obs_norm = None  # type: ignore[attr-defined]

    cb = _ProgressCallback(algo, total_steps, progress_every_s, checkpoint_every_steps, ckpt)
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        model.learn(total_timesteps=total_steps, callback=cb, progress_bar=False)
    finally:
        torch.set_num_threads(threads)
    cb.report(final=True)
    save_sb3(model, ckpt)
    return model


def checkpoint_path(log_dir: str | os.PathLike[str], algo: str) -> Path:
    """``log_dir/checkpoints/sb3_<algo>.zip``, where :func:`train_sb3` saves."""
    return Path(log_dir) / "checkpoints" / f"sb3_{algo}.zip"


def save_sb3(model: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` (and its observation-normalization statistics) atomically to ``path``.

    The zip is built in memory and written with :func:`rewardlab.core.files.atomic_write`: a
    crash leaves the previous checkpoint intact.
    """
    path = Path(path)
    norm = _obs_norm_of(model)
    model.rewardlab_obs_norm = norm  # type: ignore[attr-defined]
    if not hasattr(model, "rewardlab_algo"):
        model.rewardlab_algo = _algo_of_model(model)  # type: ignore[attr-defined]
    buf = io.BytesIO()
    model.save(buf)
    return atomic_write(path, buf.getvalue())


def load_sb3(
    path: str | os.PathLike[str],
    env: BatchedEnv | None = None,
    device: str = "cpu",
    algo: Algo | None = None,
) -> BaseAlgorithm:
    """Load a model saved by :func:`train_sb3` / :func:`save_sb3`.

    Args:
        path: the ``.zip`` checkpoint.
        env: a batched env to attach (wrapped in :class:`Sb3VecEnv`, without ``VecNormalize``),
            e.g. to continue training a model trained without observation normalization.
        device: torch device of the loaded policy.
        algo: ``"ppo"``/``"sac"``; read from the checkpoint when ``None`` (checkpoints not
            written by RewardLab are recognized by their PPO- or SAC-only fields).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the algorithm cannot be determined or is not supported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 checkpoint at {path}")
    if algo is None:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
        algo = data.get("rewardlab_algo")
        if algo is None:
            algo = "ppo" if "clip_range" in data else "sac" if "target_entropy" in data else None
    if algo not in ALGOS:
        raise ValueError(f"{path}: cannot tell the algorithm ({algo!r}); pass algo='ppo' or 'sac'")
    return ALGOS[algo].load(path, env=Sb3VecEnv(env) if env is not None else None, device=device)


class ObsNormalizer(nn.Module):
    """``clamp((obs - mean) / std, -clip, clip)`` with SB3 ``VecNormalize`` statistics.

    Buffers ``mean`` and ``std`` (``std = sqrt(var + epsilon)``), named as the exporter's
    ``find_normalization`` looks for them; ``clip`` is a plain float attribute.
    """

    def __init__(self, mean: torch.Tensor, var: torch.Tensor, eps: float, clip: float) -> None:
        super().__init__()
        self.register_buffer("mean", mean.double().flatten().float())
        self.register_buffer("std", torch.sqrt(var.double().flatten() + eps).float())
        self.clip = float(clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)


class Sb3InferencePolicy(nn.Module):
    """The deterministic action of an SB3 PPO/SAC policy as a plain, exportable module.

    ``forward(obs float32 [B, obs_dim]) -> action float32 [B, action_dim]`` in ``[-1, 1]``:
    ``normalizer`` (an :class:`ObsNormalizer` with the ``VecNormalize`` statistics, or
    ``nn.Identity``), the actor MLP (``latent``, then ``head``), ``tanh`` when the policy squashes
    (SAC; PPO with ``squash_output``), then a clip to ``[-1, 1]`` (what ``model.predict`` does to
    PPO's Gaussian mean). Holds copies of the SB3 layers on the CPU in eval mode, so later
    training of the model does not change it.
    """

    def __init__(
        self, normalizer: nn.Module, latent: nn.Module, head: nn.Module, squash: bool
    ) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.latent = latent
        self.head = head
        self.squash = bool(squash)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.head(self.latent(self.normalizer(obs)))
        if self.squash:
            a = torch.tanh(a)
        return torch.clamp(a, -1.0, 1.0)


def sb3_inference_policy(model: BaseAlgorithm) -> Sb3InferencePolicy:
    """The deterministic policy of a PPO or SAC model as a torch module (see :class:`Sb3InferencePolicy`).

    Matches ``model.predict(obs, deterministic=True)`` on observations normalized as the model's
    ``VecNormalize`` does (for raw observations, when the model was trained without one).

    Raises:
        NotImplementedError: another algorithm, a non-flat feature extractor, or an action space
            other than ``Box(-1, 1)``.
    """
    policy = model.policy
    low, high = model.action_space.low, model.action_space.high  # type: ignore[union-attr]
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        raise NotImplementedError("sb3_inference_policy: only Box(-1, 1) action spaces")
    if isinstance(model, PPO):
        extractor = policy.pi_features_extractor
        latent, head = policy.mlp_extractor.policy_net, policy.action_net
        squash = bool(policy.squash_output)
    elif isinstance(model, SAC):
        actor = policy.actor
        extractor, latent, head, squash = actor.features_extractor, actor.latent_pi, actor.mu, True
    else:
        raise NotImplementedError(
            f"sb3_inference_policy: {type(model).__name__} is not supported (PPO, SAC)"
        )
    if not isinstance(extractor, FlattenExtractor) or len(model.observation_space.shape) != 1:
        raise NotImplementedError(
            "sb3_inference_policy: only flat observations with SB3's FlattenExtractor, got "
            f"{type(extractor).__name__}"
        )
    norm = _obs_norm_of(model)
    normalizer: nn.Module = nn.Identity()
    if norm is not None:
        normalizer = ObsNormalizer(
            torch.as_tensor(norm["mean"], dtype=torch.float64),
            torch.as_tensor(norm["var"], dtype=torch.float64),
            norm["epsilon"],
            norm["clip_obs"],
        )
    module = Sb3InferencePolicy(normalizer, _cpu_copy(latent), _cpu_copy(head), squash)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class SB3Policy:
    """Deterministic (``__call__``) and sampled (``sample``) actions of an SB3 model (a
    :class:`~rewardlab.agents.policy.Policy`)."""

    stochastic = True

    def __init__(self, model: BaseAlgorithm) -> None:
        self.model = model
        self.inference = sb3_inference_policy(model)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        normalized = self.inference.normalizer(obs.cpu())  # what VecNormalize fed the model
        action, _ = self.model.predict(normalized.numpy(), deterministic=False)
        return torch.as_tensor(action, dtype=torch.float32).clamp(-1.0, 1.0)


class _SB3Agent:
    """An SB3 algorithm behind the :class:`~rewardlab.agents.registry.Agent` interface;
    hyper-parameters: ``TrainConfig.sb3`` (SB3 keyword arguments plus :data:`WRAPPER_KEYS`)."""

    algo: Algo
    config_key = "sb3"
    resumable = False
    distributed = False
    checkpoint_suffix = ".zip"

    def train(
        self,
        env: BatchedEnv,
        spec: TrainSpec,
        resume: Path | bytes | None = None,
        dist: DistContext | None = None,
        log: Callable[[str], None] = print,
    ) -> TrainOutcome:
        """Train with :func:`train_sb3` into ``spec.log_dir`` (required: SB3 logs to TensorBoard).

        Raises:
            ValueError: ``resume``, ``dist`` or ``keep_state`` asked for, or no ``log_dir``.
        """
        name = f"sb3_{self.algo}"
        if resume is not None or dist is not None or spec.keep_state:
            raise ValueError(f"agent {name} cannot resume, run distributed or return its state")
        if spec.log_dir is None:
            raise ValueError(f"agent {name} needs a log_dir (SB3 logs to TensorBoard)")
        hp = dict(spec.hyperparams or {})
        wrapper = {k: bool(hp.pop(k)) for k in WRAPPER_KEYS if k in hp}
        model = train_sb3(self.algo, env, spec.total_steps, spec.log_dir, spec.seed, hp, **wrapper)
        return TrainOutcome(SB3Policy(model), int(model.num_timesteps))

    def load(self, path: Path, env: BatchedEnv, spec: TrainSpec) -> SB3Policy:
        """The policy of an SB3 checkpoint (the algorithm is read from the file)."""
        return SB3Policy(load_sb3(path))

    @classmethod
    def hyperparam_names(cls) -> list[str]:
        """Keys ``TrainConfig.sb3`` may hold: the algorithm's constructor arguments (those the
        agent does not set itself) and :data:`WRAPPER_KEYS`."""
        skip = ("self", "env", "seed", "tensorboard_log", "_init_setup_model")
        names = inspect.signature(ALGOS[cls.algo].__init__).parameters
        return [p for p in names if p not in skip] + list(WRAPPER_KEYS)


class SB3PPOAgent(_SB3Agent):
    """``agent=sb3_ppo``: stable-baselines3 PPO."""

    algo = "ppo"


class SB3SACAgent(_SB3Agent):
    """``agent=sb3_sac``: stable-baselines3 SAC."""

    algo = "sac"


# -- helpers ---------------------------------------------------------------------------------------


def _cpu_copy(m: nn.Module) -> nn.Module:
    return copy.deepcopy(m).cpu()


def _obs_norm_of(model: BaseAlgorithm) -> dict[str, Any] | None:
    """Observation statistics of the model's live ``VecNormalize``, else the saved ones."""
    vn = model.get_vec_normalize_env()
    if vn is not None:
        if not vn.norm_obs:
            return None
        return {
            "mean": np.asarray(vn.obs_rms.mean, dtype=np.float64).tolist(),
            "var": np.asarray(vn.obs_rms.var, dtype=np.float64).tolist(),
            "epsilon": float(vn.epsilon),
            "clip_obs": float(vn.clip_obs),
        }
    return getattr(model, "rewardlab_obs_norm", None)


def _algo_of_model(model: BaseAlgorithm) -> str:
    for name, cls in ALGOS.items():
        if isinstance(model, cls):
            return name
    raise ValueError(f"{type(model).__name__} is not supported (PPO, SAC)")


def _fmt_duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


class _ProgressCallback(BaseCallback):
    """Prints progress, records ``reward/<term>`` means, saves periodic checkpoints."""

    def __init__(
        self,
        algo: str,
        total_steps: int,
        every_s: float,
        checkpoint_every: int | None,
        ckpt: Path,
    ) -> None:
        super().__init__(verbose=0)
        self.algo = algo
        self.total = total_steps
        self.every_s = every_s
        self.checkpoint_every = checkpoint_every
        self.ckpt = ckpt
        self._t0 = self._t_last = time.monotonic()
        self._next_ckpt = checkpoint_every or 0
        self._adapter: Sb3VecEnv | None = None

    def _on_training_start(self) -> None:
        self._t0 = self._t_last = time.monotonic()
        self._start_steps = self.model.num_timesteps
        env = self.training_env.unwrapped if self.training_env is not None else None
        self._adapter = env if isinstance(env, Sb3VecEnv) else None

    def _on_step(self) -> bool:
        if self._adapter is not None:
            for k, v in self._adapter.last_log.items():
                self.logger.record_mean(k, v)
        if self.checkpoint_every and self.num_timesteps >= self._next_ckpt:
            save_sb3(self.model, self.ckpt)
            self._next_ckpt = self.num_timesteps + self.checkpoint_every
        if self.every_s > 0 and time.monotonic() - self._t_last >= self.every_s:
            self.report()
        return True

    def report(self, final: bool = False) -> None:
        now = time.monotonic()
        self._t_last = now
        done = self.model.num_timesteps
        rate = (done - self._start_steps) / max(now - self._t0, 1e-9)
        eps = self.model.ep_info_buffer or []
        ret = f"{np.mean([e['r'] for e in eps]):.2f}" if eps else "n/a"
        succ = self.model.ep_success_buffer or []
        rate_s = f"{np.mean(succ):.2f}" if succ else "n/a"
        eta = 0.0 if final else max(self.total - done, 0) / rate if rate > 0 else math.inf
        print(
            f"[sb3_{self.algo}] {done:,}/{self.total:,} steps  {rate:,.0f} steps/s  "
            f"return {ret}  success {rate_s}  ETA {_fmt_duration(eta)}"
            + ("  (done)" if final else ""),
            flush=True,
        )


__all__ = [
    "ALGOS",
    "WRAPPER_KEYS",
    "ObsNormalizer",
    "SB3PPOAgent",
    "SB3Policy",
    "SB3SACAgent",
    "Sb3InferencePolicy",
    "checkpoint_path",
    "default_hyperparams",
    "load_sb3",
    "save_sb3",
    "sb3_inference_policy",
    "train_sb3",
]
