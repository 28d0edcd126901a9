"""Rewards from demonstrations against the CLIP and progress rewards: VOC and success AUROC.

::

    python benchmarks/vlm_demo_rewards.py                       # arm_reach, cartpole_swingup
    python benchmarks/vlm_demo_rewards.py --tasks arm_reach --quick

For each task: demonstrations are the successful episodes of the task's scripted policies
recorded with seed 0 (``--demo-episodes`` per script); the evaluation episodes are recorded with
seed 1 (``--episodes`` per script: successes, partial progress, failures), so no scorer is
judged on the episodes it was fitted on. Every evaluation frame is drawn once with the task's
reward camera (64 px, the shipped tiny CLIP's input) and scored by each row's scorer; the
metrics are :mod:`rewardlab.vlm_reward.evaluation`'s (``rewardlab vlm-eval``'s): VOC (Spearman
of score vs time, mean over successful episodes), success AUROC over all frames and over last
frames, Spearman with the task's own reward.

Rows: ``clip`` (VLM-RM, task prompts), ``progress`` (prompt interpolation; and the learned
per-frame model trained on the same demonstrations), ``perceptual`` (variants of split, steps and
combination), ``ot`` (per-frame soft-min, what training uses; and whole-trajectory Sinkhorn;
each also with RAPL-style preference alignment on 64 pairs of the seed-0 episodes labelled by
the task's own return, a stand-in for a person).

Results go to ``benchmarks/results/vlm_demo_rewards.{json,md}`` (``_quick`` with ``--quick``).
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

ROWS = (
    ("clip", "clip (VLM-RM, task prompts)", {}),
    ("progress", "progress, prompt interpolation", {}),
    ("progress-learned", "progress, learned per-frame CNN (same demos)", {}),
    ("perceptual", "perceptual, variance split, K=4", {"perceptual_steps": 4}),
    ("perceptual", "perceptual, variance split, K=8 (default)", {}),
    ("perceptual", "perceptual, equal split, K=8", {"perceptual_split": "equal"}),
    ("perceptual", "perceptual, K=8, paper's weighted sum", {"perceptual_combine": "weighted"}),
    ("ot", "ot, per-frame soft-min (training)", {"ot_match": "frame"}),
    ("ot", "ot, whole-trajectory Sinkhorn (offline)", {"ot_match": "trajectory"}),
    ("ot", "ot, per-frame, preference-aligned (64 pairs)", {"ot_preference_pairs": 64}),
    ("ot", "ot, whole-trajectory, preference-aligned (64 pairs)",
     {"ot_match": "trajectory", "ot_preference_pairs": 64}),
)  # fmt: skip


METRICS = ("voc_mean", "success_auroc_frames", "success_auroc_last_frame", "human_reward_spearman")


def metrics(episodes, scores) -> dict:
    """The metrics of :func:`rewardlab.vlm_reward.evaluation.evaluate` from given scores."""
    import numpy as np

    from rewardlab.vlm_reward.evaluation import auroc, spearman

    ok = episodes.episode_success
    voc = [spearman(s, np.arange(len(s))) for s, k in zip(scores, ok, strict=True) if k]
    flat = np.concatenate(scores)
    y = np.concatenate([episodes.success[i, : len(s)] for i, s in enumerate(scores)])
    r = np.concatenate([episodes.reward[i, : len(s)] for i, s in enumerate(scores)])
    last = np.array([s[-1] for s in scores])
    return {
        "voc_mean": float(np.mean(voc)),
        "voc_episodes": len(voc),
        "success_auroc_frames": auroc(flat, y),
        "success_auroc_last_frame": auroc(last, ok),
        "human_reward_spearman": spearman(flat, r),
    }


def run_task(
    task: str, demo_eps: int, eval_eps: int, out_dir: Path, preference_tasks: list[str]
) -> list[dict]:
    import torch

    from rewardlab.vlm_reward.base import make_scorer
    from rewardlab.vlm_reward.config import VLMConfig
    from rewardlab.vlm_reward.evaluation import record_episodes
    from rewardlab.vlm_reward.progress import train_progress_model
    from rewardlab.vlm_reward.rendering import TiledRenderer
    from rewardlab.vlm_reward.training import resolve_config

    demos = record_episodes(task, demo_eps, seed=0)
    demo_file = out_dir / f"{task}_demos.npz"
    demos.save(demo_file)
    held = record_episodes(task, eval_eps, seed=1)
    renderer = TiledRenderer.for_task(task, 64)
    try:
        frames = [
            renderer.render_rows({f: v[i, : int(n)] for f, v in held.physics.items()})
            for i, n in enumerate(held.length)
        ]
        ok = [i for i in range(len(demos.length)) if demos.episode_success[i]]
        demo_frames = [
            renderer.render_rows(
                {f: v[i, : int(demos.length[i])] for f, v in demos.physics.items()}
            )
            for i in ok
        ]
    finally:
        renderer.close()
    print(f"[{task}] {len(ok)} demos, {len(frames)} eval episodes, {sum(map(len, frames))} frames")
    rows = []
    for name, label, kw in ROWS:
        if kw.get("ot_preference_pairs") and task not in preference_tasks:
            continue
        t0 = time.perf_counter()
        if name == "progress-learned":
            scorer = train_progress_model(demo_frames, epochs=15, seed=0, log=None)
        else:
            extra = {"demos": str(demo_file)} if name in ("perceptual", "ot") else {}
            cfg = resolve_config(VLMConfig(device="cpu", scorer=name, **kw, **extra), task, "vlm")
            scorer = make_scorer(cfg)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.inference_mode():
            scores = [scorer.score(f).numpy().astype("float64") for f in frames]
        score_s = time.perf_counter() - t0
        m = metrics(held, scores)
        rows.append({"task": task, "scorer": name, "row": label, **kw, **m,
                     "fit_s": round(fit_s, 1), "score_s": round(score_s, 1),
                     "demos": len(ok), "eval_episodes": len(frames)})  # fmt: skip
        print(f"[{task}] {label}: VOC {m['voc_mean']:.3f} AUROC {m['success_auroc_frames']:.3f} "
              f"last {m['success_auroc_last_frame']:.3f} spearman {m['human_reward_spearman']:.3f} "
              f"(fit {fit_s:.0f} s, score {score_s:.0f} s)", flush=True)  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["arm_reach", "cartpole_swingup"])
    p.add_argument("--demo-episodes", type=int, default=4, help="per script, seed 0")
    p.add_argument("--episodes", type=int, default=8, help="evaluation episodes per script, seed 1")
    p.add_argument(
        "--preference-tasks",
        nargs="*",
        default=["arm_reach"],
        help="tasks with the preference-aligned OT rows (cartpole_swingup's 32 episodes of up to "
        "300 frames against 9 demonstrations took over 6 min per alignment on 2 loaded cores)",
    )
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.demo_episodes, a.episodes = 2, 2
    info = system_info()
    suffix = "_quick" if a.quick else ""
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "vlm_demo_rewards"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [
        r
        for task in a.tasks
        for r in run_task(task, a.demo_episodes, a.episodes, work, a.preference_tasks)
    ]
    info["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(RESULTS / f"vlm_demo_rewards{suffix}.json", {"system": info, "rows": rows})
    table = markdown_table(
        ["task", "scorer", "VOC (successes)", "success AUROC (frames)", "AUROC (last frames)",
         "Spearman with task reward", "fit s", "score s"],
        [[r["task"], r["row"], *(f"{r[k]:.3f}" for k in METRICS), r["fit_s"], r["score_s"]]
         for r in rows],
    )  # fmt: skip
    lines = [
        "# Rewards from demonstrations: VOC and success AUROC",
        "",
        f"Machine: {info['cpu_model']} ({info['cpu_count']} cores), git {info['git_rev']}, 1-min "
        f"load at start {info['loadavg_1min_at_start']}. Total {info['wall_s']} s. "
        f"{contention_note(info)} (The metrics do not depend on load; the seconds do.)",
        "",
        f"Demonstrations: the successful episodes of each task's scripted policies, seed 0 "
        f"({a.demo_episodes} per script); evaluated on seed-1 episodes ({a.episodes} per script: "
        "successes, partial, failures). Encoder: the shipped tiny CLIP (64 px). "
        "`python benchmarks/vlm_demo_rewards.py`.",
        "",
        table,
        "",
    ]
    (RESULTS / f"vlm_demo_rewards{suffix}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / f'vlm_demo_rewards{suffix}.md'}")


if __name__ == "__main__":
    main()
