"""Offline RL on mixed-quality arm_reach data: IQL (true reward / RL-VLM-F preference reward) vs
BC (all episodes / successes only), the task's own success on 64 fresh episodes.

Phases (each reads what the one before wrote under ``--root``):

1. ``--record RUN_DIR``: D4RL-style mixed data from a trained arm_reach policy (e.g. ``rewardlab
   train task=arm_reach agent=sac total_steps=80000 run_dir=RUN_DIR``) through ``rewardlab demos
   record``: ``expert`` (the policy, ``noise=0.1``), ``noisy`` (the policy, ``noise=0.5``),
   ``miss`` and ``halfway`` (the task's scripts that reach beside the target / halfway to it,
   ``noise=0.3``), 32 episodes each, each from its own reset seed. Behaviour cloning of all of it
   averages the good and the bad behaviours; only the successes are 0.9-good.
2. ``--prefs``: RL-VLM-F labels on frames of the same episodes (every ``--every``-th step, redrawn
   from their physics rows with the task's reward camera), a reward ensemble trained by
   ``rewardlab vlm-prefs``' code (``rewardlab.vlm_tools.run_prefs``), and the episodes relabelled
   with it (``iql.reward=preference``'s function, saved once as ``relabelled.npz`` so the seeds
   do not redraw 14k frames each). No generative VLM runs here (no hosted model, no weights
   reachable), so the labeller is one of (``--labeller``):

   - ``oracle``: prefers the frame whose state has the higher true task reward (ties within
     ``--tie`` unsure), with ``--flip`` of its answers flipped at random as a stand-in for a
     VLM's mistakes;
   - ``clip``: a real vision-language model, the shipped tiny CLIP, *served behind the
     OpenAI-compatible chat API* (``tests/openai_server.py`` over real HTTP on 127.0.0.1): the
     labels come from ``rewardlab vlm-prefs``' own judge (``vlm.judge_base_url=...``, PNG
     ``data:`` URLs, RL-VLM-F's question, the reply parsed), and the server answers the
     question with the VLM-RM CLIP score of the two images it was sent (``--clip-tie``: unsure
     below that score gap). Its labels' agreement with the true reward's order is reported.

   Outputs: ``prefs/`` and ``relabelled.npz`` (oracle), ``prefs_clip/`` and
   ``relabelled_clip.npz`` (clip); the learners ``iql-pref`` / ``iql-pref-clip`` read them.
3. ``--run``: each learner on each seed (``--seeds``), ``--steps`` gradient steps, no keep-best
   (the last network: offline RL picks no policy by online evaluation), evaluated on 64 episodes
   of reset seed 999. Rows append to ``benchmarks/results/iql_offline.jsonl``.
4. ``--table``: the markdown table of ``benchmarks/results/iql.md`` from the rows.

Usage::

    python benchmarks/iql_offline.py --root /tmp/iql --record /tmp/iql/sac
    python benchmarks/iql_offline.py --root /tmp/iql --prefs --queries 1000
    python benchmarks/iql_offline.py --root /tmp/iql --prefs --labeller clip --queries 1000
    python benchmarks/iql_offline.py --root /tmp/iql --run iql-true iql-pref bc-all bc-success \
        --seeds 0 1 2
    python benchmarks/iql_offline.py --table
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
JSONL = RESULTS / "iql_offline.jsonl"
PARTS = {
    "expert": ["source=policy", "noise=0.1"],
    "noisy": ["source=policy", "noise=0.5"],
    "miss": ["task=arm_reach", "script=miss", "noise=0.3"],
    "halfway": ["task=arm_reach", "script=halfway", "noise=0.3"],
}

SEEDS = {"expert": 1, "noisy": 2, "miss": 5, "halfway": 6}
"""Reset seed of each part's episodes."""


def data_files(root: Path) -> str:
    """The mixed data, as ``iql.demos`` names it."""
    return ",".join(str(root / f"{p}.npz") for p in PARTS)


def record(root: Path, policy: str, episodes: int) -> None:
    """Phase 1: the three parts of the mixed data."""
    from rewardlab.cli import main

    for part, extra in PARTS.items():
        src = [f"policy={policy}"] if "source=policy" in extra else []
        code = main(["demos", "record", *src, f"episodes={episodes}", f"seed={SEEDS[part]}",
                     f"out={root / part}.npz", *extra])  # fmt: skip
        assert code == 0, f"recording {part} failed"


class OracleLabeller:
    """Prefers the frame whose state has the higher true task reward (frames are looked up by
    their bytes); ``tie``: unsure below that reward gap; ``flip``: fraction answered wrongly."""

    def __init__(self, frames: np.ndarray, rewards: np.ndarray, tie: float, flip: float) -> None:
        pairs = zip(frames, rewards, strict=True)
        self.value = {hashlib.sha1(f.tobytes()).digest(): float(r) for f, r in pairs}
        self.tie, self.flip = tie, flip
        self.rng = np.random.default_rng(0)
        self.stats = {"asked": 0, "unsure": 0, "flipped": 0}

    def rewards(self, frames) -> np.ndarray:  # noqa: ANN001 - uint8 [B, H, W, 3] tensor
        """The true task reward of each frame (looked up by its bytes)."""
        return np.array([self.value[hashlib.sha1(f.numpy().tobytes()).digest()] for f in frames])

    def compare(self, a, b):  # noqa: ANN001, ANN201 - the Labeller protocol
        import torch

        ra, rb = self.rewards(a), self.rewards(b)
        labels = (rb > ra).astype(np.float32)
        flip = self.rng.random(len(labels)) < self.flip
        labels[flip] = 1.0 - labels[flip]
        labels[np.abs(rb - ra) < self.tie] = -1.0
        self.stats["asked"] += len(labels)
        self.stats["unsure"] += int((labels == -1).sum())
        self.stats["flipped"] += int((flip & (labels != -1)).sum())
        return torch.from_numpy(labels)


class ClipResponder:
    """A vision-language model behind the chat API: the shipped tiny CLIP answers RL-VLM-F's
    question ("is the goal better achieved in image 1 or image 2?") from the two images of the
    request, by their VLM-RM CLIP reward with the task's prompts; ``tie``: unsure below that
    reward gap. A question with one image gets the score as ``{"progress": ...}``."""

    def __init__(self, task: str, tie: float) -> None:
        from rewardlab.vlm_reward.base import make_scorer
        from rewardlab.vlm_reward.config import VLMConfig
        from rewardlab.vlm_reward.training import resolve_config

        cfg = resolve_config(VLMConfig(device="cpu", scorer="clip"), task, "vlm")
        self.goal = cfg.goal_prompts[0]
        self.scorer = make_scorer(cfg)
        self.tie = tie
        self.lock = threading.Lock()  # one forward at a time (the server answers in threads)

    def __call__(self, req) -> str:  # noqa: ANN001 - tests/openai_server.ChatRequest
        import torch

        if self.goal not in req.text():
            return "I cannot tell what the goal is.\n-1"
        with self.lock, torch.inference_mode():
            score = self.scorer.score(torch.from_numpy(np.stack(req.pixels()))).tolist()
        if len(score) == 1:
            return f'{{"progress": {min(max(score[0], 0.0), 1.0):.4f}}}'
        a, b = score[0], score[-1]
        if abs(b - a) < self.tie:
            return "They look equally close to the goal.\n-1"
        return "Image 2 is closer to the goal.\n1" if b > a else "Image 1 is closer to the goal.\n0"


def label_agreement(prefs_file: Path, oracle: OracleLabeller) -> dict:
    """How the labels in ``prefs.pt`` agree with the true task reward's order of each pair
    (pairs whose true rewards are equal are left out)."""
    from rewardlab.vlm_reward.preference_data import PreferenceDataset

    ds = PreferenceDataset.load(prefs_file)
    ra, rb = oracle.rewards(ds.frames_a), oracle.rewards(ds.frames_b)
    labels = ds.labels.numpy()
    sure = np.isin(labels, (0.0, 1.0)) & (ra != rb)
    right = (labels[sure] == 1) == (rb[sure] > ra[sure])
    return {"pairs": len(labels), "unsure": int((labels == -1).sum()),
            "agreement": round(float(right.mean()), 3) if sure.any() else None}  # fmt: skip


def prefs(root: Path, queries: int, every: int, tie: float, flip: float, epochs: int,
          labeller_kind: str = "oracle", clip_tie: float = 0.0) -> None:  # fmt: skip
    """Phase 2: preferences (oracle or CLIP-over-HTTP labels) -> reward ensemble -> relabelled
    episodes."""
    import torch

    from rewardlab.envs.demos import load_episodes
    from rewardlab.offline_rewards import preference_rewards
    from rewardlab.vlm_commands import PrefsArgs
    from rewardlab.vlm_reward.preference_model import save_tensors
    from rewardlab.vlm_reward.rendering import TiledRenderer
    from rewardlab.vlm_tools import run_prefs

    torch.set_num_threads(1)  # the reward CNN: one thread is faster on a shared 2-core machine
    eps = load_episodes(data_files(root).split(","))
    renderer = TiledRenderer.for_task(eps.task, 64)
    frames, rewards = [], []
    try:
        for e, n in enumerate(eps.length):
            steps = list(range(0, int(n), every))
            rows = {f: v[e, steps] for f, v in eps.physics.items()}
            frames.append(renderer.render_rows(rows).numpy())
            rewards.append(eps.reward[e, steps])
    finally:
        renderer.close()
    pool, truth = np.concatenate(frames), np.concatenate(rewards)
    suffix = "" if labeller_kind == "oracle" else f"_{labeller_kind}"
    out = root / f"prefs{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(torch.from_numpy(pool), root / "pool.pt")
    oracle = OracleLabeller(pool, truth, tie, flip)
    args = PrefsArgs(task=eps.task, out=str(out), frames=str(root / "pool.pt"), queries=queries,
                     epochs=epochs, seed=0)  # fmt: skip
    if labeller_kind == "oracle":
        metrics = run_prefs(args, labeller=oracle)  # type: ignore[arg-type]
        labels = {"oracle": oracle.stats}
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from openai_server import OpenAIServer

        with OpenAIServer(ClipResponder(eps.task, clip_tie), models=["rewardlab-tiny-clip"]) as srv:
            vlm = {"judge_base_url": srv.base_url, "judge_model": "rewardlab-tiny-clip",
                   "judge_image_size": 64, "judge_concurrency": 2}  # fmt: skip
            metrics = run_prefs(dataclasses.replace(args, vlm=vlm))  # the CLI's own judge
            requests = len(srv.requests)
        labels = {"labeller": "tiny CLIP over HTTP", "clip_tie": clip_tie, "requests": requests}
    labels["agreement_with_task_reward"] = label_agreement(out / "prefs.pt", oracle)
    relabelled = preference_rewards(eps, str(out / "reward.pt"))
    mask = np.arange(eps.reward.shape[1])[None, :] < eps.length[:, None]
    corr = float(np.corrcoef(relabelled[mask], eps.reward[mask])[0, 1])
    dataclasses.replace(eps, reward=relabelled, meta={**eps.meta, "reward": "preference"}).save(
        root / f"relabelled{suffix}.npz"
    )
    info = {"pool": len(pool), "queries": queries, "tie": tie, "flip": flip, **metrics,
            **labels, "pearson_with_task_reward": corr,
            "reward_std": float(relabelled[mask].std()),
            "task_reward_std": float(eps.reward[mask].std())}  # fmt: skip
    (root / f"prefs{suffix}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


LEARNERS = {
    # name: (agent, data, settings)
    "iql-true": ("iql", "data", {}),
    "iql-pref": ("iql", "relabelled", {}),
    "iql-pref-clip": ("iql", "relabelled_clip", {}),
    "iql-success-reward": ("iql", "data", {"reward": "success"}),
    "bc-all": ("bc", "data", {"only_success": False}),
    "bc-success": ("bc", "data", {"only_success": True}),
}


def run_one(root: Path, name: str, seed: int, steps: int, extra: dict) -> dict:
    """Phase 3: one learner, one seed; returns its row."""
    import torch

    from rewardlab.agents.bc import BCRunner
    from rewardlab.agents.config import BCConfig, IQLConfig
    from rewardlab.agents.evaluate import evaluate
    from rewardlab.agents.iql import IQLRunner
    from rewardlab.envs import make_env

    agent, data, settings = LEARNERS[name]
    demos = data_files(root) if data == "data" else str(root / f"{data}.npz")
    settings = {**settings, **extra}
    env = make_env("arm_reach", num_envs=16, nthread=1, seed=seed)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    if agent == "iql":
        runner = IQLRunner(env, IQLConfig(demos=demos, eval_every=0, keep_best=False, **settings),
                           seed=seed)  # fmt: skip
    else:
        runner = BCRunner(env, BCConfig(demos=demos, eval_every=0, keep_best=False, **settings),
                          seed=seed)  # fmt: skip
    runner.learn(steps, progress=False)
    wall = time.perf_counter() - t0
    env.close()
    ev = make_env("arm_reach", num_envs=64, nthread=1, seed=999)
    with torch.random.fork_rng(devices=[]):
        out = evaluate(runner.inference_policy(), ev, 64, seed=999)
    ev.close()
    return {"learner": name, "seed": seed, "steps": steps, "settings": settings,
            "success": float(out["success_rate"]), "train_s": round(wall, 1),
            "load": round((load0 + os.getloadavg()[0]) / 2, 1)}  # fmt: skip


def table() -> str:
    """Median (and each seed) of every learner/settings in the rows."""
    rows = [json.loads(x) for x in JSONL.read_text().splitlines() if x.strip()]
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["learner"], json.dumps(r["settings"]), r["steps"]), []).append(r)
    lines = ["| learner | settings | grad steps | success (median) | per seed | train s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for (name, settings, steps), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        per = ", ".join(f"{r['success']:.2f}" for r in rs)
        med = statistics.median(r["success"] for r in rs)
        secs = statistics.median(r["train_s"] for r in rs)
        lines.append(f"| {name} | `{settings}` | {steps} | {med:.2f} | {per} (seeds "
                     f"{', '.join(str(r['seed']) for r in rs)}) | {secs:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/iql"))
    p.add_argument("--record", metavar="RUN_DIR", help="phase 1 from this trained policy")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--prefs", action="store_true", help="phase 2")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--tie", type=float, default=0.01)
    p.add_argument("--flip", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--labeller", choices=["oracle", "clip"], default="oracle")
    p.add_argument("--clip-tie", type=float, default=0.0)
    p.add_argument("--run", nargs="*", choices=list(LEARNERS), help="phase 3")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value (JSON values)")
    p.add_argument("--table", action="store_true")
    a = p.parse_args()
    a.root.mkdir(parents=True, exist_ok=True)
    if a.record:
        record(a.root, a.record, a.episodes)
    if a.prefs:
        prefs(a.root, a.queries, a.every, a.tie, a.flip, a.epochs, a.labeller, a.clip_tie)
    extra = {}
    from rewardlab.agents.config import BCConfig, IQLConfig

    fields = {f.name for c in (IQLConfig, BCConfig) for f in dataclasses.fields(c)}
    for kv in a.set:
        k, sep, v = kv.partition("=")
        if not sep or k not in fields:
            p.error(f"--set {kv!r}: expected KEY=VALUE with KEY a field of IQLConfig/BCConfig (e.g. beta=1.5)")  # fmt: skip
        try:
            val = json.loads(v)
        except json.JSONDecodeError:
            p.error(f"--set {kv!r}: the value is not JSON (e.g. beta=1.5, hidden=[128,128])")
        extra[k] = tuple(val) if isinstance(val, list) else val
    for name in a.run or []:
        for seed in a.seeds:
            row = run_one(a.root, name, seed, a.steps, extra)
            print(json.dumps(row), flush=True)
            with JSONL.open("a") as f:
                f.write(json.dumps(row) + "\n")
    if a.table:
        print(table())


if __name__ == "__main__":
    main()
