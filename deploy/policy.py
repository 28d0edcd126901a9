"""Load an exported policy folder (``policy.onnx`` / ``policy.pt`` + ``policy.json``) for deployment.

The folder is what ``rewardlab export`` writes (see ``agents/export.py`` for the format; this
module reads it without importing the trainer). ONNX runs on onnxruntime (no torch needed on the
robot); TorchScript needs torch. Observation normalization is inside both files, so the policy
takes raw observations, assembled as ``policy.json``'s ``observation.layout`` says.

Loading fails closed (:func:`load_policy`):

- ``policy.json`` carries ``sidecar_sha256``, the SHA-256 of its own content (:func:`sidecar_digest`:
  canonical JSON of every other key). The content lists the model files' hashes, so this one value
  binds the observation layout, the action scaling and the model files together;
- every model file in the folder that a backend can load (``policy.onnx``, ``policy.pt``) must be
  listed in the sidecar's ``files`` with its SHA-256 and match it, whichever backend is asked for;
- the model is hashed and loaded from the same bytes in memory (nothing is re-read from disk, an
  ONNX file cannot pull in external data), and a model the runtime cannot load or run raises
  :class:`PolicyLoadError` naming the file, never the runtime's own exception.

The hashes are integrity checks, not signatures: they catch a model copied from another run, an
edited sidecar, a truncated copy; whoever can write the folder can also re-seal it
(:func:`seal_export`, ``python -m rewardlab.deploy.policy seal FOLDER``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.core.sidecar import SIDECAR_HASH_KEY, seal_sidecar, sidecar_digest

BACKENDS = ("auto", "onnx", "torch")
SUPPORTED_FORMAT_VERSIONS = (1,)
MODEL_FILES = {"onnx": "policy.onnx", "torch": "policy.pt"}
"""The model file each backend loads; every one present in a folder must be hashed in ``files``."""
MAX_SIDECAR_BYTES = 16 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _short(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    try:
        with open(sidecar, "rb") as f:
            raw = f.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        raise PolicyLoadError(
            f"{sidecar}: not found (expected an export folder from `rewardlab export`)"
        ) from None
    except OSError as e:
        raise PolicyLoadError(f"{sidecar}: cannot read: {_short(e)}") from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise PolicyLoadError(f"{sidecar}: larger than {MAX_SIDECAR_BYTES >> 20} MiB")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise PolicyLoadError(f"{sidecar}: not valid JSON: {_short(e)}") from None
    if not isinstance(meta, dict):
        raise PolicyLoadError(f"{sidecar}: got a JSON {type(meta).__name__}, expected an object")
    return meta


def _check_integrity(sidecar: Path, meta: dict[str, Any]) -> None:
    got = meta.get(SIDECAR_HASH_KEY)
    if got is None:
        raise PolicyLoadError(
            f"{sidecar}: {SIDECAR_HASH_KEY}: missing (expected the SHA-256 of the sidecar's content; "
            "export again, or check the folder and run `python -m rewardlab.deploy.policy seal "
            f"{sidecar.parent}`)"
        )
    if not isinstance(got, str) or not _HEX64.fullmatch(got):
        raise PolicyLoadError(
            f"{sidecar}: {SIDECAR_HASH_KEY}: got {_short(repr(got), 80)}, expected 64 lowercase hex digits"
        )
    if got != sidecar_digest(meta):
        raise PolicyLoadError(
            f"{sidecar}: {SIDECAR_HASH_KEY} does not match its content: the sidecar was edited or "
            "damaged after export"
        )


def _check_meta(sidecar: Path, meta: dict[str, Any]) -> None:
    """The sidecar fields deployment reads have the types it expects (one line per problem)."""

    def bad(key: str, expected: str) -> PolicyLoadError:
        value = meta
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return PolicyLoadError(
            f"{sidecar}: {key}: got {_short(repr(value), 80)}, expected {expected}"
        )

    for key in ("obs_dim", "action_dim"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1_000_000:
            raise bad(key, "a positive integer")
    version = meta.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise bad("format_version", f"one of {SUPPORTED_FORMAT_VERSIONS}")
    rate = meta.get("control_rate_hz")
    if rate is not None and (
        not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate < 1e6
    ):
        raise bad("control_rate_hz", "a positive number or null")
    obs = meta.get("observation", {})
    if not isinstance(obs, dict):
        raise bad("observation", "an object")
    layout = obs.get("layout", [])
    if not isinstance(layout, list) or not all(
        isinstance(i, dict)
        and isinstance(i.get("name"), str)
        and isinstance(i.get("width"), int)
        and not isinstance(i.get("width"), bool)
        and isinstance(i.get("start", 0), int)
        for i in layout
    ):
        raise bad("observation.layout", 'a list of {"name": str, "start": int, "width": int}')
    action = meta.get("action", {})
    if not isinstance(action, dict):
        raise bad("action", "an object")
    n = meta["action_dim"]
    for key in ("ctrl_mid", "ctrl_half"):
        v = action.get(key)
        if v is not None and not (
            isinstance(v, list)
            and len(v) == n
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and all(abs(x) < 1e6 for x in v)
        ):
            raise bad(f"action.{key}", f"a list of {n} finite numbers")
    for key in ("actuator_joints",):
        v = action.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise bad(f"action.{key}", "a list of joint names")
    names = meta.get("joint_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(x, str) for x in names)
    ):
        raise bad("joint_names", "a list of joint names")


def _verified_models(sidecar: Path, meta: dict[str, Any]) -> dict[str, bytes]:
    """Bytes of every model file in the folder, each checked against ``files.<name>.sha256``."""
    folder = sidecar.parent
    files = meta.get("files")
    expected = (
        'a "files" object with {"sha256": "<64 hex digits>"} for every model file in the folder'
    )
    if files is None:
        raise PolicyLoadError(f"{sidecar}: files: missing (expected {expected})")
    if not isinstance(files, dict):
        raise PolicyLoadError(f"{sidecar}: files: got {type(files).__name__}, expected {expected}")
    out: dict[str, bytes] = {}
    for name in MODEL_FILES.values():
        path = folder / name
        if not os.path.lexists(path):
            continue
        entry = files.get(name)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if entry is None:
            raise PolicyLoadError(
                f"{sidecar}: files.{name}: missing, but {path} exists (expected its sha256: every "
                "model file in the folder must be hashed in the sidecar)"
            )
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise PolicyLoadError(
                f"{sidecar}: files.{name}.sha256: got {_short(repr(digest), 80)}, expected 64 "
                "lowercase hex digits"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise PolicyLoadError(f"{path}: cannot read: {_short(e)}") from None
        if _sha256_bytes(data) != digest:
            raise PolicyLoadError(
                f"{path}: SHA-256 does not match {sidecar.name} (files.{name}.sha256): the model "
                "and its sidecar come from different exports, or the file was damaged"
            )
        out[name] = data
    return out


def _runtime(backend: str, file: Path, data: bytes) -> Any:
    """``run(x [B, obs_dim] float32) -> [B, action_dim]`` for the model bytes ``data``."""
    runtime = "onnxruntime" if backend == "onnx" else "TorchScript (torch.jit.load)"
    try:
        if backend == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name

            def run(x: np.ndarray) -> np.ndarray:
                return session.run(None, {input_name: x})[0]

            return run
        import warnings

        import torch

        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

        return run
    except ImportError as e:
        raise PolicyLoadError(f"{file}: backend {backend!r} needs {_short(e.name or e)}") from None
    except Exception as e:  # noqa: BLE001 - any runtime error: the model cannot be deployed
        raise PolicyLoadError(
            f"{file}: cannot be loaded by {runtime}: {type(e).__name__}: {_short(e)}"
        ) from None


def load_policy(path: str | Path, backend: str = "auto") -> Policy:
    """Load an export folder (or a file inside it), failing closed (see the module docstring).

    Args:
        path: the folder, or its ``policy.json`` / ``policy.onnx`` / ``policy.pt``.
        backend: ``auto`` (ONNX when ``policy.onnx`` exists and onnxruntime imports, else
            TorchScript), ``onnx`` or ``torch``.

    Raises:
        PolicyLoadError: missing, unreadable or edited sidecar (``sidecar_sha256``), unknown
            format version, a field of the wrong type, a model file not hashed in ``files`` or
            not matching its hash, a model the runtime cannot load or run, or one whose output
            width is not ``action_dim``. The message names the file and what was expected.
    """
    if backend not in BACKENDS:
        raise PolicyLoadError(f"backend: got {backend!r}, expected one of {', '.join(BACKENDS)}")
    p = Path(path)
    if p.is_dir():
        folder = p
    elif p.name in ("policy.json", *MODEL_FILES.values()):
        folder = p.parent
        if p.suffix == ".onnx":
            backend = "onnx"
        elif p.suffix == ".pt":
            backend = "torch"
    elif not p.exists():
        raise PolicyLoadError(f"{p}: not found (expected an export folder from `rewardlab export`)")
    else:
        raise PolicyLoadError(
            f"{p}: expected an export folder or its policy.json, policy.onnx or policy.pt"
        )
    sidecar = folder / "policy.json"
    meta = _read_sidecar(sidecar)
    _check_integrity(sidecar, meta)
    _check_meta(sidecar, meta)
    models = _verified_models(sidecar, meta)

    if backend == "auto":
        backend = "torch"
        if MODEL_FILES["onnx"] in models:
            try:
                import onnxruntime  # noqa: F401

                backend = "onnx"
            except ImportError:
                pass
    file = folder / MODEL_FILES[backend]
    if file.name not in models:
        raise PolicyLoadError(f"{file}: not found (backend {backend!r})")
    run = _runtime(backend, file, models[file.name])

    policy = Policy(meta=meta, backend=backend, path=folder, _run=run)
    obs_dim = policy.obs_dim
    try:
        out = policy(np.zeros(obs_dim, dtype=np.float32))
    except Exception as e:  # noqa: BLE001 - a model that cannot run one observation
        raise PolicyLoadError(
            f"{file}: fails on a zero observation [{obs_dim}]: {type(e).__name__}: {_short(e)}"
        ) from None
    if out.shape != (policy.action_dim,):
        raise PolicyLoadError(
            f"{file}: maps [{obs_dim}] observations to {list(out.shape)} actions, "
            f"expected [{policy.action_dim}] (action_dim in {sidecar.name})"
        )
    return policy


def seal_export(path: str | Path) -> Path:
    """Write ``sidecar_sha256`` into an export folder's ``policy.json`` (for exports written
    before the sidecar carried its own hash). Refuses, as :func:`load_policy` would, a folder
    whose model files are not all hashed in ``files`` and matching: sealing vouches for the
    sidecar's content, never for a model swapped in. Returns the sidecar's path.

    Raises:
        PolicyLoadError: as :func:`load_policy`, except for a missing or stale ``sidecar_sha256``.
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    sidecar = folder / "policy.json"
    meta = _read_sidecar(sidecar)
    _check_meta(sidecar, meta)
    if not _verified_models(sidecar, meta):
        raise PolicyLoadError(f"{folder}: no model file ({', '.join(MODEL_FILES.values())})")
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(seal_sidecar(meta), indent=1) + "\n")
    os.replace(tmp, sidecar)
    return sidecar


def main(argv: list[str] | None = None) -> int:
    """``python -m rewardlab.deploy.policy seal FOLDER`` / ``check FOLDER``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("seal", "check"):
        print(
            "usage: python -m rewardlab.deploy.policy {seal|check} EXPORT_FOLDER", file=sys.stderr
        )
        return 2
    try:
        if args[0] == "seal":
            print(f"sealed {seal_export(args[1])}")
        else:
            pol = load_policy(args[1])
            print(f"ok: {pol.path} ({pol.backend}, obs {pol.obs_dim}, action {pol.action_dim})")
    except PolicyLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
