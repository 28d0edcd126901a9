"""Train the project's tiny CLIP model on rendered frames of its own tasks, on the CPU.

::

    python -m rewardlab.vlm_reward.tiny_clip.train --threads 2   # the shipped model (seed 0)
    python -m rewardlab.vlm_reward.tiny_clip.train --steps 1 --frames 64 --out /tmp/tiny  # smoke

Training the shipped model takes about 5 min on the 2-core CPU machine (12,000 frames, 3,000
steps of 128 frames at ~10 steps/s; the card records the exact command and time). Frames of
cart-poles, arms and humanoids in states drawn by :mod:`.captions` are rendered with the reward
cameras of :mod:`rewardlab.vlm_reward.rendering`, captioned from their true state,
and an open_clip ``CLIP`` built from ``tiny_clip.json`` is trained contrastively (image-to-caption
and caption-to-image cross-entropy over the caption set, with the families' soft targets). It
writes, into ``--out``:

- ``<name>.json``: the open_clip model config (register with ``open_clip.add_model_config``),
- ``<name>.pt``: the state dict (fp16, so the file stays a few MB),
- ``<name>.card.json``: preprocessing (image size, mean, std), SHA-256 of the ``.pt``, captions,
  training settings and held-out caption accuracy per family.

What it cannot do: the model knows only the captions of :mod:`.captions`; it is a test fixture
and a baseline, not a general vision-language model.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rewardlab.core.files import atomic_write, sha256
from rewardlab.vlm_reward.rendering import TiledRenderer
from rewardlab.vlm_reward.tiny_clip.captions import FAMILIES

HERE = Path(__file__).resolve().parent
MODEL_CONFIG = HERE / "tiny_clip.json"
"""The architecture: a 3-layer ViT (64 px, 16 px patches: 16 tokens a frame, width 64) and a
2-layer text transformer."""
DEFAULT_OUT = HERE.parent / "models"
DEFAULT_NAME = "rewardlab-tiny-clip"
DEFAULT_SHARE = {"cartpole": 0.35, "arm": 0.4, "humanoid": 0.25}
"""Share of the rendered frames per scene family."""


def render_dataset(frames_per_family: dict[str, int], size: int, seed: int) -> dict[str, dict]:
    """Draw and render labelled states of each family: ``{family: {"images", "soft", "label"}}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for family, n in frames_per_family.items():
        _, sample = FAMILIES[family]
        scenes = sample(n, rng)
        renderer = TiledRenderer.for_task(scenes.task, size)
        t0 = time.perf_counter()
        images = renderer.render_rows(scenes.physics)
        renderer.close()
        print(f"rendered {n} {family} frames in {time.perf_counter() - t0:.1f} s", flush=True)
        out[family] = {
            "images": images,
            "soft": torch.as_tensor(scenes.soft, dtype=torch.float32),
            "label": torch.as_tensor(scenes.label),
        }
    return out


def _to_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = images.permute(0, 3, 1, 2).float() / 255.0
    return (x - mean[:, None, None]) / std[:, None, None]


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int = 3) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (one shift per batch)."""
    dx, dy = (int(v) for v in torch.randint(-pad, pad + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train(
    out: Path,
    name: str = DEFAULT_NAME,
    frames: int = 12000,
    steps: int = 3000,
    batch: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 1,
    share: dict[str, float] | None = None,
    init: Path | None = None,
    config: Path = MODEL_CONFIG,
) -> dict:
    """Render, train and write the model; returns the model card (a dict).

    ``config`` is the open_clip model config (architecture) to train; the shipped one by default.
    """
    import open_clip

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = json.loads(Path(config).read_text())
    size = int(cfg["vision_cfg"]["image_size"])
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / f"{name}.json"
    if Path(config).resolve() != config_path.resolve():
        shutil.copyfile(config, config_path)
    open_clip.add_model_config(config_path)

    share = share or dict(DEFAULT_SHARE)
    counts = {f: max(8, int(frames * s)) for f, s in share.items()}
    data = render_dataset(counts, size, seed)
    held = {f: max(4, len(d["label"]) // 10) for f, d in data.items()}

    all_images = torch.cat([d["images"][held[f] :] for f, d in data.items()])
    mean = all_images.float().mean((0, 1, 2)) / 255.0
    std = all_images.float().std((0, 1, 2)) / 255.0

    captions = [c for f in data for c in FAMILIES[f][0]]
    offsets, k = {}, 0
    for f in data:
        offsets[f] = k
        k += len(FAMILIES[f][0])

    def full_soft(f: str, soft: torch.Tensor) -> torch.Tensor:
        t = torch.zeros(len(soft), len(captions))
        t[:, offsets[f] : offsets[f] + soft.shape[1]] = soft
        return t

    train_x = torch.cat([d["images"][held[f] :] for f, d in data.items()])
    train_t = torch.cat([full_soft(f, d["soft"][held[f] :]) for f, d in data.items()])
    model = open_clip.create_model(name, pretrained=None)
    if init is not None:  # continue training an earlier checkpoint of the same architecture
        state = torch.load(init, map_location="cpu", weights_only=True)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
        print(f"initialized from {init}", flush=True)
    tokenizer = open_clip.get_tokenizer(name)
    tokens = tokenizer(captions)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {name}: {n_params / 1e6:.2f} M parameters; {len(train_x)} training frames, "
          f"{len(captions)} captions", flush=True)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))),
    )
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train_x), (min(batch, len(train_x)),), generator=gen)
        x = _shift(_to_input(train_x[idx], mean, std), gen)
        target = train_t[idx]
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # [B, C]
        loss_i = -(target * logits.log_softmax(-1)).sum(-1).mean()
        # caption -> image: for each caption present in the batch, the images it describes
        col = target.sum(0)
        present = col > 1e-3
        t_cols = (target / col.clamp(min=1e-8))[:, present]
        loss_t = -(t_cols * logits[:, present].log_softmax(0)).sum(0).mean()
        loss = 0.5 * (loss_i + loss_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            el = time.perf_counter() - t0
            print(f"step {step}/{steps} loss {loss.item():.3f} {step / el:.2f} steps/s "
                  f"ETA {(steps - step) * el / step:.0f} s", flush=True)  # fmt: skip

    model.eval()
    accuracy = {}
    with torch.inference_mode():
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        for f, d in data.items():
            x = _to_input(d["images"][: held[f]], mean, std)
            img = F.normalize(model.encode_image(x), dim=-1)
            sl = slice(offsets[f], offsets[f] + len(FAMILIES[f][0]))
            pred = (img @ txt[sl].T).argmax(-1)
            accuracy[f] = float((pred == d["label"][: held[f]]).float().mean())
    print("held-out caption accuracy:", json.dumps(accuracy), flush=True)

    ckpt = out / f"{name}.pt"
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(ckpt, buf.getvalue())
    card = {
        "name": name,
        "checkpoint": ckpt.name,
        "checkpoint_sha256": sha256(ckpt),
        "model_config": config_path.name,
        "image_size": size,
        "image_mean": [round(float(v), 6) for v in mean],
        "image_std": [round(float(v), 6) for v in std],
        "parameters": n_params,
        "captions": {f: FAMILIES[f][0] for f in data},
        "heldout_caption_accuracy": accuracy,
        "training": {
            "frames": {f: len(d["label"]) for f, d in data.items()},
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "share": share,
            "init": None if init is None else Path(init).name,
            "seconds": round(time.perf_counter() - t0, 1),
            "command": f"python -m rewardlab.vlm_reward.tiny_clip.train --frames {frames} "
            f"--steps {steps} --batch {batch} --lr {lr} --seed {seed} --threads {threads}"
            + (f" --share {','.join(f'{k}={v}' for k, v in share.items())}")
            + (f" --init {Path(init).name}" if init is not None else ""),
        },
    }
    (out / f"{name}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {ckpt} (sha256 {card['checkpoint_sha256'][:16]}...), {config_path}, "
          f"{out / (name + '.card.json')}", flush=True)  # fmt: skip
    return card


def main(argv: list[str] | None = None) -> None:
    """Command line of the training script."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name (file stem)")
    p.add_argument("--frames", type=int, default=12000, help="rendered frames in all")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=128, help="frames per step")
    p.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (warm-up, then cosine decay)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--share", default=",".join(f"{k}={v}" for k, v in DEFAULT_SHARE.items()),
                   help="share of the frames per scene family")  # fmt: skip
    p.add_argument("--init", type=Path, default=None, help="continue from this checkpoint (.pt)")
    p.add_argument("--config", type=Path, default=MODEL_CONFIG,
                   help="open_clip model config (architecture) to train")  # fmt: skip
    a = p.parse_args(argv)
    try:
        share = {k: float(v) for k, v in (kv.split("=") for kv in a.share.split(","))}
    except ValueError:
        p.error(f"--share: got {a.share!r}, expected family=fraction,... (cartpole, arm, humanoid)")
    if set(share) - set(FAMILIES):
        p.error(f"--share: unknown families {sorted(set(share) - set(FAMILIES))}")
    if a.steps < 1 or a.frames < 24 or a.batch < 2 or not math.isfinite(a.lr) or a.lr <= 0:
        p.error("--steps >= 1, --frames >= 24, --batch >= 2 and --lr > 0 are required")
    if not a.config.is_file():
        p.error(f"--config: {a.config} is not a file")
    train(
        a.out, a.name, a.frames, a.steps, a.batch, a.lr, a.seed, a.threads, share, a.init, a.config
    )


if __name__ == "__main__":
    main()
