"""Load an exported policy folder (``policy.onnx`` / ``policy.pt`` + ``policy.json``) for deployment.

The folder is what ``rewardlab export`` writes (see ``agents/export.py`` for the format; this
module reads it without importing the trainer). ONNX runs on onnxruntime (no torch needed on the
robot); TorchScript needs torch. Observation normalization is inside both files, so the policy
takes raw observations, assembled as ``policy.json``'s ``observation.layout`` says.

Files are checked against the SHA-256 the sidecar lists: a policy file that does not match its
sidecar (copied from another run) is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("auto", "onnx", "torch")
SUPPORTED_FORMAT_VERSIONS = (1,)


class PolicyLoadError(ValueError):
    """An export folder that cannot be deployed (names the file and what is wrong)."""


@dataclass
class Policy:
    """A deployable policy: ``policy(obs [obs_dim]) -> action [action_dim]`` in ``[-1, 1]``.

    Not thread-safe; call from the control loop only.
    """

    meta: dict[str, Any]
    """The parsed ``policy.json``."""
    backend: str
    """``onnx`` or ``torch``: what runs it."""
    path: Path
    """The export folder."""
    _run: Any = field(repr=False, default=None)

    @property
    def obs_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.meta["action_dim"])

    @property
    def layout(self) -> list[dict[str, Any]]:
        """``[{"name", "start", "width"}, ...]``: the observation's slices, in order."""
        return list(self.meta.get("observation", {}).get("layout") or [])

    @property
    def control_rate_hz(self) -> float | None:
        rate = self.meta.get("control_rate_hz")
        return float(rate) if rate else None

    @property
    def actuator_joints(self) -> list[str]:
        """Joint driven by each action entry, in action order (from the sidecar)."""
        joints = self.meta.get("action", {}).get("actuator_joints")
        return list(joints) if joints else list(self.meta.get("joint_names") or [])

    @property
    def ctrl_mid(self) -> np.ndarray | None:
        mid = self.meta.get("action", {}).get("ctrl_mid")
        return None if mid is None else np.asarray(mid, dtype=np.float64)

    @property
    def ctrl_half(self) -> np.ndarray | None:
        half = self.meta.get("action", {}).get("ctrl_half")
        return None if half is None else np.asarray(half, dtype=np.float64)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """One observation ``[obs_dim]`` (or a batch ``[B, obs_dim]``) -> action(s), float64."""
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        out = np.asarray(self._run(x.reshape(-1, self.obs_dim)), dtype=np.float64)
        return out[0] if single else out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_policy(path: str | Path, backend: str = "auto", verify: bool = True) -> Policy:
    """Load an export folder (or a file inside it).

    Args:
        path: the folder, or its ``policy.json`` / ``policy.onnx`` / ``policy.pt``.
        backend: ``auto`` (ONNX when ``policy.onnx`` exists and onnxruntime imports, else
            TorchScript), ``onnx`` or ``torch``.
        verify: check the files' SHA-256 against the sidecar's ``files`` entry.

    Raises:
        PolicyLoadError: missing or unreadable sidecar, unknown format version, missing model
            file, checksum mismatch, or a model whose output width is not ``action_dim``.
    """
    if backend not in BACKENDS:
        raise PolicyLoadError(f"backend: got {backend!r}, expected one of {', '.join(BACKENDS)}")
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if p.suffix == ".onnx":
        backend = "onnx"
    elif p.suffix == ".pt":
        backend = "torch"
    sidecar = folder / "policy.json"
    try:
        meta = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise PolicyLoadError(
            f"{sidecar}: not found (expected an export folder from `rewardlab export`)"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise PolicyLoadError(f"{sidecar}: cannot read: {e}") from None
    for key in ("obs_dim", "action_dim"):
        if not isinstance(meta.get(key), int) or meta[key] < 1:
            raise PolicyLoadError(
                f"{sidecar}: {key}: got {meta.get(key)!r}, expected a positive integer"
            )
    version = meta.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise PolicyLoadError(
            f"{sidecar}: format_version: got {version!r}, expected one of {SUPPORTED_FORMAT_VERSIONS}"
        )

    if backend == "auto":
        backend = "torch"
        if (folder / "policy.onnx").exists():
            try:
                import onnxruntime  # noqa: F401

                backend = "onnx"
            except ImportError:
                pass
    file = folder / ("policy.onnx" if backend == "onnx" else "policy.pt")
    if not file.exists():
        raise PolicyLoadError(f"{file}: not found (backend {backend!r})")
    if verify:
        expected = (meta.get("files") or {}).get(file.name, {}).get("sha256")
        if expected is not None and _sha256(file) != expected:
            raise PolicyLoadError(
                f"{file}: SHA-256 does not match {sidecar.name} (files.{file.name}.sha256): "
                "the model and its sidecar come from different exports"
            )

    obs_dim = int(meta["obs_dim"])
    if backend == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: x})[0]

    else:
        import warnings

        import torch

        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(file), map_location="cpu").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

    policy = Policy(meta=meta, backend=backend, path=folder, _run=run)
    out = policy(np.zeros(obs_dim, dtype=np.float32))
    if out.shape != (policy.action_dim,):
        raise PolicyLoadError(
            f"{file}: maps [{obs_dim}] observations to {list(out.shape)} actions, "
            f"expected [{policy.action_dim}] (action_dim in {sidecar.name})"
        )
    return policy
