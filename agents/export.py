"""Export a trained policy as self-contained files that a robot can run without RewardLab.

:func:`export_policy` writes three files into one folder::

    policy.pt     TorchScript module: raw observation [B, obs_dim] float32 -> action [B, action_dim]
    policy.onnx   the same function as ONNX (opset 17), input "obs", output "action", dynamic batch
    policy.json   the sidecar: observation layout and normalization statistics, action scaling,
                  joint and actuator names, control rate, SHA-256 of both files, git revision

Observation normalization is baked into both modules (they take *raw* observations); the
statistics are also listed in ``policy.json`` (``observation.normalization``) for inspection.
Actions are in ``[-1, 1]`` and map to actuator controls as ``ctrl = mid + half * action`` with
``mid``/``half`` from the actuators' ``ctrlrange`` (``action.ctrl_mid``, ``action.ctrl_half``);
send one action every ``control_dt`` seconds (``control_rate_hz``).

Loading needs only torch or onnxruntime (this is what ``rewardlab.deploy`` does)::

    import json, numpy as np, torch, onnxruntime as ort
    meta = json.load(open("export/policy.json"))
    obs = np.zeros((1, meta["obs_dim"]), np.float32)      # assembled as meta["observation"]["layout"]
    action = torch.jit.load("export/policy.pt")(torch.from_numpy(obs)).numpy()    # TorchScript
    action = ort.InferenceSession("export/policy.onnx").run(None, {"obs": obs})[0]  # or ONNX
    ctrl = np.asarray(meta["action"]["ctrl_mid"]) + np.asarray(meta["action"]["ctrl_half"]) * action

:func:`load_exported` is that snippet as a function; it imports nothing from RewardLab (copy it).
"""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import mujoco
import torch
from torch import nn

from rewardlab.core.files import atomic_write, sha256
from rewardlab.core.sidecar import seal_sidecar

FORMAT_VERSION = 1
"""Version of the ``policy.json`` layout; bumped on incompatible changes."""

POLICY_FILES = ("policy.pt", "policy.onnx")


def export_policy(
    policy: nn.Module,
    env: Any,
    out_dir: str | Path,
    task: str | None = None,
    git_revision: str | None = None,
    obs_normalization: dict[str, list[float]] | None = None,
    onnx: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``policy.pt`` (TorchScript), ``policy.onnx`` and ``policy.json`` into ``out_dir``.

    Args:
        policy: raw observations ``[B, obs_dim]`` -> deterministic actions ``[B, action_dim]``
            in ``[-1, 1]`` (e.g. ``OnPolicyRunner.inference_policy()``); exported on the CPU.
        env: the batched env the policy was trained on (its task, MuJoCo model and rates are
            recorded; a ``MujocoEnv``-like object with ``task``, ``model``, ``cfg``).
        out_dir: created when missing; existing files are replaced.
        task: task name for the sidecar; ``env.task.name`` when ``None``.
        git_revision: recorded as is; the revision of the RewardLab checkout when ``None``.
        obs_normalization: ``{"mean": [...], "std": [...]}`` to list in the sidecar; found in
            the module (a submodule with ``mean`` and ``std`` buffers of width ``obs_dim``)
            when ``None``.
        onnx: also write ``policy.onnx`` (needs the ``onnx`` package).
        extra: more JSON-serializable entries for the sidecar (e.g. ``{"agent": "ppo"}``).

    Returns:
        ``{"pt": path, "onnx": path, "json": path}`` (no ``"onnx"`` when ``onnx=False``).

    Raises:
        ValueError: the policy's output has the wrong shape for the env.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy = policy.cpu().eval()
    obs_dim, action_dim = int(env.obs_dim), int(env.action_dim)
    example = torch.zeros(2, obs_dim)
    with torch.no_grad():
        action = policy(example)
    if tuple(action.shape) != (2, action_dim):
        raise ValueError(
            f"policy maps [2, {obs_dim}] observations to {list(action.shape)}, expected [2, {action_dim}]"
        )

    paths = {"pt": out / "policy.pt"}
    scripted = _to_torchscript(policy, example)
    scripted.save(str(paths["pt"]))
    if onnx:
        paths["onnx"] = out / "policy.onnx"
        _to_onnx(policy, example, paths["onnx"])

    meta = policy_metadata(env, task=task, obs_normalization=obs_normalization, policy=policy)
    meta["files"] = {p.name: {"sha256": sha256(p)} for p in paths.values()}
    meta["git_revision"] = git_revision if git_revision is not None else _git_revision()
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta.update(extra or {})
    # Seal what a reader parses back from the file (deploy checks the seal and every file hash).
    meta = seal_sidecar(json.loads(_json_text(meta)))
    paths["json"] = atomic_write(out / "policy.json", _json_text(meta))
    return paths


def policy_metadata(
    env: Any,
    task: str | None = None,
    obs_normalization: dict[str, list[float]] | None = None,
    policy: nn.Module | None = None,
) -> dict[str, Any]:
    """The sidecar's description of the observation, the action and the robot (no file hashes)."""
    model = getattr(env, "model", None)
    env_task = getattr(env, "task", None)
    cfg = getattr(env, "cfg", None)
    obs_dim, action_dim = int(env.obs_dim), int(env.action_dim)

    layout, start = [], 0
    obs_layout = getattr(env_task, "obs_layout", None)
    if callable(obs_layout):
        for name, width in obs_layout():
            layout.append({"name": name, "start": start, "width": int(width)})
            start += int(width)
        if start != obs_dim:
            warnings.warn(
                f"obs_layout() covers {start} values, the observation has {obs_dim}", stacklevel=2
            )
    if obs_normalization is None and policy is not None:
        obs_normalization = find_normalization(policy, obs_dim)

    action: dict[str, Any] = {
        "clip": [-1.0, 1.0],
        "scaling": "ctrl = ctrl_mid + ctrl_half * action",
    }
    joints: list[str] = []
    actuators: list[str] = []
    timestep = None
    if model is not None:
        lo, hi = model.actuator_ctrlrange.T.copy()
        limited = model.actuator_ctrllimited.astype(bool)
        lo[~limited], hi[~limited] = -1.0, 1.0
        action["ctrl_mid"] = ((hi + lo) / 2).tolist()
        action["ctrl_half"] = ((hi - lo) / 2).tolist()
        action["ctrl_range"] = [[float(a), float(b)] for a, b in zip(lo, hi, strict=True)]
        joints = [
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, i) or f"joint{i}"
            for i in range(model.njnt)
        ]
        actuators = [
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f"actuator{i}"
            for i in range(model.nu)
        ]
        action["actuator_joints"] = [
            joints[model.actuator_trnid[i, 0]]
            if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT
            else None
            for i in range(model.nu)
        ]
        timestep = float(model.opt.timestep)
    amap = getattr(env_task, "action_map", None)
    if amap is not None and hasattr(amap, "describe"):  # the task's own action map (authoring)
        action["scaling"] = "the task's action map: see action.map"
        action["map"] = amap.describe()

    control_dt = float(getattr(env, "control_dt", 0.0)) or None
    return {
        "format_version": FORMAT_VERSION,
        "task": task if task is not None else getattr(env_task, "name", None),
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "inputs": {"obs": ["batch", obs_dim]},
        "outputs": {"action": ["batch", action_dim]},
        "observation": {
            "layout": layout,
            "normalization": obs_normalization,
            "normalization_in_module": obs_normalization is not None,
        },
        "action": action,
        "joint_names": joints,
        "actuator_names": actuators,
        "control_dt": control_dt,
        "control_rate_hz": 1.0 / control_dt if control_dt else None,
        "frame_skip": getattr(cfg, "frame_skip", None),
        "physics_timestep": timestep,
        "episode_steps": getattr(env, "max_episode_steps", None),
    }


def find_normalization(policy: nn.Module, obs_dim: int) -> dict[str, list[float]] | None:
    """Statistics of an observation normalizer inside ``policy``: the first submodule with
    ``mean`` and ``std`` (or ``var``) buffers of width ``obs_dim``, else ``None``."""
    for _, module in policy.named_modules():
        bufs = dict(module.named_buffers(recurse=False))
        mean = bufs.get("mean")
        std = bufs.get("std")
        if std is None and "var" in bufs:
            std = bufs["var"].double().sqrt()
        if mean is not None and std is not None and mean.numel() == obs_dim == std.numel():
            return {
                "mean": mean.double().flatten().tolist(),
                "std": std.double().flatten().tolist(),
                "formula": "obs_normalized = (obs - mean) / std",
            }
    return None


def _json_text(data: Any, level: int = 0) -> str:
    """Indented JSON with every list of plain values on one line (readable sidecars)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(data, dict) and data:
        items = [
            f"{inner}{json.dumps(str(k))}: {_json_text(v, level + 1)}" for k, v in data.items()
        ]
        text = "{\n" + ",\n".join(items) + f"\n{pad}}}"
    elif isinstance(data, list | tuple) and any(isinstance(v, dict | list | tuple) for v in data):
        text = "[\n" + ",\n".join(f"{inner}{_json_text(v, level + 1)}" for v in data) + f"\n{pad}]"
    else:
        text = json.dumps(data)
    return text + "\n" if level == 0 else text


def _to_torchscript(policy: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Script the module (keeps any control flow); fall back to tracing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = torch.jit.script(policy)
        except Exception:  # noqa: BLE001 - any scripting failure: tracing is the fallback
            module = torch.jit.trace(policy, example, check_trace=True)
    with torch.no_grad():
        ref, got = policy(example), module(example)
    if not torch.allclose(ref, got, atol=1e-6):
        raise RuntimeError("TorchScript export does not reproduce the policy's actions")
    return module


def _to_onnx(policy: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX opset 17 with a dynamic batch axis (the TorchScript-based exporter: it needs no
    ``onnxscript`` and handles plain MLP policies exactly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            policy,
            (example,),
            str(path),
            opset_version=17,
            input_names=["obs"],
            output_names=["action"],
            dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
            dynamo=False,
        )


def _git_revision() -> str:
    """Revision of the RewardLab checkout this module lives in, ``"unknown"`` outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_exported(path: str | Path, backend: str = "torch") -> tuple[Any, dict[str, Any]]:
    """Load an exported policy with torch or onnxruntime alone; imports nothing from RewardLab.

    Args:
        path: the export folder, ``policy.json``, ``policy.pt`` or ``policy.onnx``.
        backend: ``torch`` (TorchScript) or ``onnx`` (onnxruntime); a ``.onnx`` path picks onnx.

    Returns:
        ``(act, meta)``: ``act(obs)`` maps a float32 array ``[B, obs_dim]`` (numpy or torch) to a
        numpy array ``[B, action_dim]`` in ``[-1, 1]``; ``meta`` is the parsed ``policy.json``.
    """
    # everything imported here, not from this module: the function is meant to be copied
    import json as _json
    from pathlib import Path as _Path

    import numpy as np

    p = _Path(path)
    folder = p if p.is_dir() else p.parent
    meta = _json.loads((folder / "policy.json").read_text())
    if p.suffix == ".onnx":
        backend = "onnx"
    if backend == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(
            str(folder / "policy.onnx"), providers=["CPUExecutionProvider"]
        )

        def act(obs: Any) -> np.ndarray:
            x = np.asarray(obs.numpy() if hasattr(obs, "numpy") else obs, dtype=np.float32)
            return session.run(None, {"obs": x.reshape(-1, meta["obs_dim"])})[0]

    elif backend == "torch":
        import warnings as _warnings

        import torch as _torch

        with _warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            _warnings.simplefilter("ignore", FutureWarning)
            module = _torch.jit.load(str(folder / "policy.pt"), map_location="cpu").eval()

        def act(obs: Any) -> np.ndarray:
            x = _torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, meta["obs_dim"])
            with _torch.no_grad():
                return module(x).numpy()

    else:
        raise ValueError(f"backend: got {backend!r}, expected torch or onnx")
    return act, meta
