"""How sharply the perceptual reward sees the last centimetres of arm_reach, per render setting.

::

    python benchmarks/vlm_reach_precision.py                  # the settings below
    python benchmarks/vlm_reach_precision.py --settings base zoom2_64

The perceptual scorer (``vlm.scorer=perceptual``, the shipped tiny CLIP, 64-px encoder input) is
fitted on the successful seed-0 scripted episodes (4 per script, as
``benchmarks/vlm_demo_rewards.py``), then scores

- the held-out seed-1 scripted episodes (8 per script): VOC and success AUROC (as that
  benchmark) and the mean score per hand-target distance bin;
- *placed* frames: ``--targets`` targets drawn from the task's target distribution, the arm put
  by inverse kinematics on a point at a given distance (0-15 cm) from each in a random direction;
  the score's mean and spread per distance. The headline is ``gain 5->1 cm / sd``: how much the
  mean score rises from 5 cm (the success radius) to 1 cm, in units of the spread of the score
  between frames at the same distance (pooled sd of the two): below ~1 a learner has little to
  gain by closing the last centimetres.

A setting is the render side (``vlm.render_size``: frames drawn larger are resized to the
encoder's 64 px, antialiased), the camera zoom (the reward camera's view narrowed by this factor:
the frame shows the middle 1/zoom of the view, ``vlm.camera_zoom``) and ``K``
(``vlm.perceptual_steps``). Demonstrations are drawn the same way as the frames scored.
Results: ``benchmarks/results/vlm_reach_precision.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402, I001

SETTINGS = {
    "base": (64, 1.0, 8),
    "k16": (64, 1.0, 16),
    "render128": (128, 1.0, 8),
    "zoom1.5": (64, 1.5, 8),
    "zoom2_64": (64, 2.0, 8),
    "zoom2_128": (128, 2.0, 8),
    "zoom2_k16": (64, 2.0, 16),
    "zoom3_64": (64, 3.0, 8),
}
"""Name -> (render side px, camera zoom, K)."""
PLACED_CM = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0)
BINS_CM = (0.0, 2.0, 3.5, 5.0, 6.5, 8.0, 10.0, 15.0, 25.0, 1e9)


def placed_episodes(n: int, seed: int):
    """Physics rows of arm poses at ``PLACED_CM`` from ``n`` targets, and their true distances."""
    import numpy as np
    import torch

    from rewardlab.envs import get_task
    from rewardlab.envs.tasks.arm_reach import arm_ik, forward_kinematics

    task = get_task("arm_reach")
    cfg = task.default_config()
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(cfg.target_joint_low), torch.tensor(cfg.target_joint_high)
    target = forward_kinematics((lo + (hi - lo) * torch.rand(n, 3, generator=g)).double())
    rows, dist, nominal = [], [], []
    for d in PLACED_CM:
        v = torch.randn(n, 3, generator=g, dtype=torch.float64)
        goal = target + d / 100.0 * v / v.norm(dim=-1, keepdim=True)
        q = arm_ik(goal)
        rows.append(q)
        dist.append((forward_kinematics(q) - target).norm(dim=-1) * 100.0)
        nominal.append(torch.full((n,), d))
    q = torch.cat(rows).numpy()
    model = task.load_model()
    qpos = np.zeros((len(q), model.nq))
    qpos[:, :3] = q  # arm3's three hinge joints are its only qpos
    mocap = np.repeat(target.numpy()[None], len(PLACED_CM), 0).reshape(-1, 1, 3)
    physics = {"qpos": qpos, "mocap_pos": mocap}
    return physics, torch.cat(dist).numpy(), torch.cat(nominal).numpy()


def run_setting(name, size, zoom, steps, demos, held, placed, encoder):
    import numpy as np
    import torch
    from vlm_demo_rewards import metrics

    from rewardlab.vlm_reward.perceptual import fit_perceptual
    from rewardlab.vlm_reward.rendering import TiledRenderer

    r = TiledRenderer.for_task("arm_reach", size, zoom=zoom)
    t0 = time.perf_counter()
    try:

        def draw(eps, i):
            return r.render_rows({f: v[i, : int(eps.length[i])] for f, v in eps.physics.items()})

        ok = [i for i in range(len(demos.length)) if demos.episode_success[i]]
        demo_frames = [draw(demos, i) for i in ok]
        held_frames = [draw(held, i) for i in range(len(held.length))]
        placed_frames = r.render_rows(placed[0])
    finally:
        r.close()
    with torch.inference_mode():
        fit = fit_perceptual([encoder(f) for f in demo_frames], steps)
        held_scores = [fit.score(encoder(f)).numpy().astype("float64") for f in held_frames]
        placed_scores = fit.score(encoder(placed_frames)).numpy().astype("float64")
    m = metrics(held, held_scores)
    # held-out frames by true distance (the observation's ee_to_target)
    dist = np.concatenate(
        [
            np.linalg.norm(held.observations[i, : len(s), 9:12], axis=-1) * 100.0
            for i, s in enumerate(held_scores)
        ]
    )
    flat = np.concatenate(held_scores)
    bins = []
    for a, b in zip(BINS_CM[:-1], BINS_CM[1:], strict=True):
        sel = (dist >= a) & (dist < b)
        bins.append([int(sel.sum()), float(flat[sel].mean()), float(flat[sel].std())])
    placed_rows = []
    for d in PLACED_CM:
        sel = placed[2] == d
        s = placed_scores[sel]
        placed_rows.append([d, float(placed[1][sel].mean()), float(s.mean()), float(s.std())])
    by = {row[0]: row for row in placed_rows}
    sd = float(np.sqrt((by[1.0][3] ** 2 + by[5.0][3] ** 2) / 2))
    gain = by[1.0][2] - by[5.0][2]
    # paired by target: does the score rise from 5 cm to 1 cm for the same target?
    paired = placed_scores[placed[2] == 1.0] - placed_scores[placed[2] == 5.0]
    out = {
        "setting": name,
        "render_size": size,
        "camera_zoom": zoom,
        "perceptual_steps": steps,
        **m,
        "held_bins": bins,
        "placed": placed_rows,
        "gain_5_to_1cm": gain,
        "gain_over_sd": gain / max(sd, 1e-9),
        "gain_10_to_5cm": by[5.0][2] - by[10.0][2],
        "paired_gain_mean": float(paired.mean()),
        "paired_gain_sd": float(paired.std()),
        "paired_gain_positive": float((paired > 0).mean()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(
        f"{name}: VOC {m['voc_mean']:.3f} AUROC {m['success_auroc_frames']:.3f} last "
        f"{m['success_auroc_last_frame']:.3f}; placed "
        + " ".join(f"{d:g}:{mu:.3f}({s:.3f})" for d, _, mu, s in placed_rows)
        + f"; gain 5->1 cm {gain:.3f} = {gain / max(sd, 1e-9):.2f} sd; paired "
        f"{paired.mean():.3f} (sd {paired.std():.3f}, > 0: {(paired > 0).mean():.2f})",
        flush=True,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--targets", type=int, default=64, help="placed frames: targets per distance")
    p.add_argument(
        "--demo-scripts",
        nargs="+",
        default=None,
        help="record the demonstrations with these scripts only (default: all, as "
        "vlm_demo_rewards.py: their successful episodes)",
    )
    p.add_argument("--out", default="vlm_reach_precision", help="results file stem")
    a = p.parse_args()

    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.demonstrations import clip_encoder
    from rewardlab.vlm_reward.evaluation import record_episodes

    info = system_info()
    t0 = time.perf_counter()
    demos = record_episodes("arm_reach", 4, seed=0, scripts=a.demo_scripts)
    held = record_episodes("arm_reach", 8, seed=1)
    placed = placed_episodes(a.targets, seed=2)
    encoder, _ = clip_encoder(VLMConfig(device="cpu"))
    rows = [run_setting(s, *SETTINGS[s], demos, held, placed, encoder) for s in a.settings]
    info["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(RESULTS / f"{a.out}.json", {"system": info, "rows": rows})
    head = ["setting", "render px", "zoom", "K", "VOC", "AUROC (frames)", "AUROC (last)"]
    head += [f"placed {d:g} cm" for d in PLACED_CM] + [
        "gain 5->1 cm / sd",
        "same target: gain 5->1 cm (sd), share > 0",
        "gain 10->5 cm",
    ]
    table = markdown_table(
        head,
        [
            [r["setting"], r["render_size"], r["camera_zoom"], r["perceptual_steps"]]
            + [f"{r[k]:.3f}" for k in ("voc_mean", "success_auroc_frames", "success_auroc_last_frame")]
            + [f"{mu:.3f} ({s:.3f})" for _, _, mu, s in r["placed"]]
            + [f"{r['gain_5_to_1cm']:.3f} / {r['gain_over_sd']:.2f}",
               f"{r['paired_gain_mean']:.3f} ({r['paired_gain_sd']:.3f}), {r['paired_gain_positive']:.2f}",
               f"{r['gain_10_to_5cm']:.3f}"]
            for r in rows
        ],
    )  # fmt: skip
    edges = [f"{a:g}-{b:g} cm" if b < 1e8 else f"> {a:g} cm" for a, b in zip(BINS_CM[:-1], BINS_CM[1:], strict=True)]  # fmt: skip
    held_table = markdown_table(
        ["setting", *edges],
        [
            [r["setting"], *(f"{m:.3f} ({sd:.3f}), {n}" for n, m, sd in r["held_bins"])]
            for r in rows
        ],
    )
    lines = [
        "# arm_reach: the perceptual score near the target, per render setting",
        "",
        f"Machine: {info['cpu_model']} ({info['cpu_count']} cores), git {info['git_rev']}, 1-min "
        f"load at start {info['loadavg_1min_at_start']}. Total {info['wall_s']} s. "
        f"{contention_note(info)} `python benchmarks/vlm_reach_precision.py {' '.join(sys.argv[1:])}`",
        "",
        table,
        "",
        "Held-out seed-1 scripted frames by hand-target distance: mean score (sd), frames:",
        "",
        held_table,
        "",
    ]
    (RESULTS / f"{a.out}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / a.out}.md")


if __name__ == "__main__":
    main()
