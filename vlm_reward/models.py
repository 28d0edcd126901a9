"""Loading CLIP models through open_clip: hub tags, local checkpoints, the shipped tiny model.

Three ways, all ending in ``open_clip.create_model_and_transforms(name, pretrained=...)``:

- **a pretrained tag** (``vlm.model=ViT-bigG-14 vlm.pretrained=laion2b_s39b_b160k``): open_clip
  downloads the weights from its hub on first use and caches them; the preprocessing is the
  tag's own. Refused with a clear error when ``HF_HUB_OFFLINE=1`` and the weights are not cached.
- **a local checkpoint** (``vlm.checkpoint=FILE``): loaded with the hub switched off
  (``HF_HUB_OFFLINE=1`` for the duration), after its SHA-256 is checked against
  ``vlm.checkpoint_sha256``; the preprocessing (``image_size``, ``image_mean``, ``image_std``)
  must be stated, since a bare state dict does not carry it. Custom architectures come with an
  open_clip model-config JSON (``vlm.model_config``), registered by ``open_clip.add_model_config``.
- **a shipped model** (``vlm.model=rewardlab-tiny-clip``, the default): a local checkpoint whose
  config, hash and preprocessing are read from its model card under
  ``rewardlab/vlm_reward/models/``.

A model never loads with random weights: no tag and no checkpoint is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.core.files import sha256
from rewardlab.vlm_reward.config import VLMConfig

SHIPPED_DIR = Path(__file__).resolve().parent / "models"
"""Folder of the models the package ships (``<name>.json``, ``<name>.pt``, ``<name>.card.json``)."""

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class ModelLoadError(ValueError):
    """A model that cannot be loaded as configured; the message names the ``vlm.*`` key."""


@dataclass
class LoadedCLIP:
    """An open_clip model ready for inference, with its tokenizer and preprocessing."""

    model: Any
    """The ``open_clip.CLIP`` (or ``CustomTextCLIP``) in eval mode, on ``device``, in ``dtype``."""
    tokenizer: Any
    """``tokenizer(list[str]) -> LongTensor [n, context_length]``."""
    name: str
    """open_clip model name."""
    source: str
    """Where the weights came from: ``pretrained:<tag>`` or ``checkpoint:<path>``."""
    image_size: int
    """Square input size of the image tower."""
    mean: tuple[float, float, float]
    """Per-channel normalization mean (RGB, [0, 1] pixels)."""
    std: tuple[float, float, float]
    """Per-channel normalization standard deviation."""
    device: torch.device
    """Device of the model."""
    dtype: torch.dtype
    """Inference dtype of the model."""


def shipped_models() -> dict[str, dict[str, Any]]:
    """Model cards of the shipped models, by name."""
    cards = {}
    for path in sorted(SHIPPED_DIR.glob("*.card.json")):
        card = json.loads(path.read_text())
        cards[card["name"]] = card
    return cards


def offline() -> bool:
    """Whether the Hugging Face hub is switched off in this process (``HF_HUB_OFFLINE`` etc.)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)  # fmt: skip


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Switch the Hugging Face hub off for the duration (``HF_HUB_OFFLINE=1``)."""
    saved = {v: os.environ.get(v) for v in _OFFLINE_VARS}
    os.environ.update({v: "1" for v in _OFFLINE_VARS})
    try:
        import huggingface_hub.constants as hf_constants  # read at import; patch the live value

        saved_const = hf_constants.HF_HUB_OFFLINE
        hf_constants.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        hf_constants, saved_const = None, None
    try:
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
        if hf_constants is not None:
            hf_constants.HF_HUB_OFFLINE = saved_const


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other values as given.

    Raises:
        ModelLoadError: a CUDA device is asked for and none is available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"vlm.device: got {device!r}, but no CUDA device is available")
    return dev


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The inference dtype of ``precision`` on ``device``.

    ``auto`` is bf16 on a CUDA device that supports it, else fp32 (on the CPU bf16 matmuls are
    not faster than fp32 for models this small, and fp16 is not supported well).

    Raises:
        ModelLoadError: fp16 asked for on the CPU.
    """
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if precision == "fp16" and device.type != "cuda":
        raise ModelLoadError("vlm.precision: fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _shipped_defaults(cfg: VLMConfig) -> dict[str, Any]:
    """Checkpoint, hash, config and preprocessing of a shipped model named by ``cfg.model``."""
    card = shipped_models().get(cfg.model)
    if card is None or cfg.pretrained is not None:
        return {}
    out: dict[str, Any] = {"model_config": str(SHIPPED_DIR / card["model_config"])}
    shipped_ckpt = SHIPPED_DIR / card["checkpoint"]
    if cfg.checkpoint is None or Path(cfg.checkpoint).resolve() == shipped_ckpt:
        out["checkpoint"] = str(shipped_ckpt)
        out["checkpoint_sha256"] = card["checkpoint_sha256"]
        out["image_size"] = int(card["image_size"])
        out["image_mean"] = tuple(card["image_mean"])
        out["image_std"] = tuple(card["image_std"])
    return out


def _register_config(path: str, name: str) -> None:
    import open_clip

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"vlm.model_config: {path!r} is not a file")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"vlm.model_config: {path!r} is not valid JSON ({e})") from None
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in data]
    if missing:
        raise ModelLoadError(
            f"vlm.model_config: {path!r} lacks {missing}; expected an open_clip model config "
            "with embed_dim, vision_cfg and text_cfg"
        )
    if p.stem != name:
        raise ModelLoadError(
            f"vlm.model_config: open_clip registers {path!r} as {p.stem!r}, but vlm.model is "
            f"{name!r}; name the file {name}.json or set vlm.model={p.stem}"
        )
    open_clip.add_model_config(p)


def load_clip(cfg: VLMConfig) -> LoadedCLIP:
    """Load the CLIP model ``cfg`` names, in eval mode, on its device and dtype.

    Raises:
        ModelLoadError: unknown architecture or tag, missing or mismatched checkpoint, missing
            preprocessing for a local checkpoint, or a hub tag asked for while offline and not
            cached. The message names the ``vlm.*`` key and what was expected.
    """
    try:
        import open_clip
    except ImportError:
        raise ModelLoadError(
            "reward=clip needs open_clip: pip install 'rewardlab[vlm]' (open-clip-torch)"
        ) from None

    shipped = _shipped_defaults(cfg)
    model_config = cfg.model_config or shipped.get("model_config")
    checkpoint = cfg.checkpoint or shipped.get("checkpoint")
    sha = cfg.checkpoint_sha256 or shipped.get("checkpoint_sha256")
    size = cfg.image_size or shipped.get("image_size")
    mean = cfg.image_mean or shipped.get("image_mean")
    std = cfg.image_std or shipped.get("image_std")
    if model_config is not None:
        _register_config(model_config, cfg.model)
    if cfg.model not in open_clip.list_models():
        shipped_names = ", ".join(shipped_models()) or "none"
        raise ModelLoadError(
            f"vlm.model: open_clip knows no architecture {cfg.model!r}; expected one of "
            f"open_clip.list_models() (e.g. ViT-B-32, ViT-bigG-14), a shipped model "
            f"({shipped_names}), or a custom one with vlm.model_config=<name>.json"
        )
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.precision, device)
    kwargs: dict[str, Any] = {"device": "cpu"}
    if cfg.image_size is not None:
        kwargs["force_image_size"] = cfg.image_size

    if cfg.pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(cfg.model)
        if cfg.pretrained not in tags:
            raise ModelLoadError(
                f"vlm.pretrained: {cfg.pretrained!r} is not a pretrained tag of {cfg.model!r}; "
                f"known tags: {', '.join(tags) or 'none'} (a local file goes in vlm.checkpoint)"
            )
        if cfg.image_mean is not None:
            kwargs["image_mean"] = cfg.image_mean
        if cfg.image_std is not None:
            kwargs["image_std"] = cfg.image_std
        tag_cfg = open_clip.get_pretrained_cfg(cfg.model, cfg.pretrained)
        pretrained: str = cfg.pretrained
        if offline():
            # Never let open_clip reach for the hub: resolve the cached file ourselves.
            cached = _cached_weights(tag_cfg)
            if cached is None:
                raise ModelLoadError(
                    f"vlm.pretrained: {cfg.model} / {cfg.pretrained} needs the model hub, which "
                    "is switched off here (HF_HUB_OFFLINE=1), and its weights are not in the local "
                    "cache; download them once on a connected machine, or give a local file "
                    "with vlm.checkpoint (+ checkpoint_sha256, image_mean, image_std)"
                )
            pretrained = cached
            kwargs.setdefault("image_mean", tag_cfg.get("mean"))
            kwargs.setdefault("image_std", tag_cfg.get("std"))
            kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
        try:
            with hub_offline() if offline() else contextlib.nullcontext():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    cfg.model, pretrained=pretrained, **kwargs
                )
        except Exception as e:  # noqa: BLE001 - the hub's errors vary; say what to do
            raise ModelLoadError(
                f"vlm.pretrained: could not load {cfg.model} / {cfg.pretrained}: the model hub "
                f"could not be reached or refused the download ({e})"
            ) from e
        source = f"pretrained:{cfg.pretrained}"
        norm = _transform_norm(preprocess)
        mean = tuple(cfg.image_mean or norm[0])
        std = tuple(cfg.image_std or norm[1])
    elif checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise ModelLoadError(f"vlm.checkpoint: {checkpoint!r} is not a file")
        if sha is None:
            raise ModelLoadError(
                f"vlm.checkpoint_sha256: required with vlm.checkpoint={checkpoint!r} "
                f"(its SHA-256 is {sha256(path)}; check that this is the file you trust)"
            )
        actual = sha256(path)
        if actual.lower() != sha.lower():
            raise ModelLoadError(
                f"vlm.checkpoint_sha256: {checkpoint!r} has SHA-256 {actual}, expected {sha}"
            )
        missing = [k for k, v in (("image_mean", mean), ("image_std", std)) if v is None]
        if missing:
            raise ModelLoadError(
                f"vlm.{missing[0]}: required with a local checkpoint (a state dict does not "
                "carry its preprocessing); state vlm.image_mean and vlm.image_std (and "
                "vlm.image_size if it differs from the model config)"
            )
        with hub_offline():
            model, _, _ = open_clip.create_model_and_transforms(
                cfg.model, pretrained=str(path), image_mean=mean, image_std=std, **kwargs
            )
        source = f"checkpoint:{path}"
    else:
        raise ModelLoadError(
            f"vlm.pretrained: {cfg.model!r} has no weights configured; give a pretrained tag "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(cfg.model)[:4]) or 'none known'}"
            ", ...) or a local file in vlm.checkpoint (random weights are never used)"
        )

    model = model.to(device=device, dtype=dtype).eval()
    visual_size = model.visual.image_size
    visual_size = int(visual_size[0] if isinstance(visual_size, tuple | list) else visual_size)
    if size is not None and int(size) != visual_size:
        raise ModelLoadError(
            f"vlm.image_size: {size} differs from the model's input size {visual_size}"
        )
    tokenizer = open_clip.get_tokenizer(cfg.model)
    return LoadedCLIP(
        model=model,
        tokenizer=tokenizer,
        name=cfg.model,
        source=source,
        image_size=visual_size,
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
        device=device,
        dtype=dtype,
    )


def _cached_weights(tag_cfg: dict[str, Any]) -> str | None:
    """Path of a pretrained tag's weights in the local caches (Hugging Face hub cache, or
    open_clip's ``~/.cache/clip`` for URL downloads), without any network access."""
    hub = tag_cfg.get("hf_hub") or ""
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub[:-1], "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]  # fmt: skip
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = tag_cfg.get("url") or ""
    if url:
        path = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if path.is_file():
            return str(path)
    return None


def _transform_norm(preprocess: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the ``Normalize`` step of an open_clip eval transform."""
    for t in getattr(preprocess, "transforms", []):
        if type(t).__name__ == "Normalize":
            return tuple(t.mean), tuple(t.std)
    raise ModelLoadError("open_clip's transform has no Normalize step; state vlm.image_mean/std")
