"""VLM judge and preference reward model: frames (or pairs) per second, side by side.

Questions:

1. How much does the judge's concurrency buy against asking one frame at a time, the way
   RL-VLM-F's reference code queries its VLM (one blocking request per pair, in a loop)?
   The judge talks real HTTP to the local OpenAI-compatible test server (tests/openai_server.py)
   whose responder sleeps ``--latency-ms`` per request to stand in for a model's generation
   time, so what is measured is our request pipeline against a server of known latency, not
   a model. Both contenders run in the same process against the same server.
2. What does the in-memory frame cache save when frames repeat (a held pose, a frame stride)?
3. How many frames per second does the trained BT reward model (the thing RL-VLM-F trains so
   that the VLM is not queried per step) score, batched against one frame at a time?

Run from the repository root: ``python benchmarks/vlm_judge_throughput.py`` (``--quick`` for a
smoke run). Writes ``benchmarks/results/vlm_judge_throughput{,_quick}.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import rewardlab  # noqa: F401  (selects MUJOCO_GL=egl before _common imports mujoco)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402
from openai_server import ChatRequest, OpenAIServer  # noqa: E402

from rewardlab.rewards.llm import (
    ChatClient,  # noqa: E402
    LLMConfig,  # noqa: E402
)
from rewardlab.vlm_reward.judge import VLMJudge  # noqa: E402
from rewardlab.vlm_reward.preference import PreferenceScorer  # noqa: E402
from rewardlab.vlm_reward.preference_model import RewardEnsemble  # noqa: E402


def _frames(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` distinct rendered cartpole frames (random pole angles and cart positions)."""
    from rewardlab.envs import make_env

    env = make_env("cartpole_swingup", num_envs=1, render_size=(size, size), nthread=1)
    env.reset(seed=seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        env.sim.qpos[0, 0] = float(torch.rand((), generator=g) * 2 - 1)
        env.sim.qpos[0, 1] = float((torch.rand((), generator=g) * 2 - 1) * 3.14159)
        out.append(env.render([0])[0])
    env.close()
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=128, help="distinct frames per judge run")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="server time per request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--size", type=int, default=224, help="frame side sent to the judge")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.concurrency = 16, [1, 8]
    torch.set_num_threads(1)
    info = system_info()
    delay = args.latency_ms / 1000.0

    def responder(req: ChatRequest) -> str:
        assert len(req.images()) == 1
        time.sleep(delay)
        return '{"progress": 0.5}'

    n_rm = 32 if args.quick else 256
    all_frames = _frames(max(args.frames, n_rm), args.size, seed=0)
    rows, records = [], []
    with OpenAIServer(responder) as srv:
        base = None
        for c in args.concurrency:
            client = ChatClient(
                LLMConfig(base_url=srv.base_url, model="test-model", max_retries=0),
                log=lambda line: None,
            )
            judge = VLMJudge(client, goal="the pole is upright", concurrency=c)
            frames = all_frames[: args.frames]  # each judge is new: no cache across contenders
            t0 = time.perf_counter()
            judge.score(frames)
            el = time.perf_counter() - t0
            rate = args.frames / el
            base = base or rate
            label = "sequential (RL-VLM-F style loop)" if c == 1 else f"VLMJudge concurrency={c}"
            rows.append([label, args.frames, f"{el:.2f}", rate, rate / base])
            records.append({"contender": label, "concurrency": c, "frames": args.frames,
                            "seconds": el, "frames_per_s": rate})  # fmt: skip
            # cache: the same frames again (a held pose, a frame stride)
            if c == args.concurrency[-1]:
                t0 = time.perf_counter()
                judge.score(frames)
                el_c = time.perf_counter() - t0
                rate_c = args.frames / el_c
                rows.append(["same frames again (in-memory cache)", args.frames, f"{el_c:.4f}",
                             rate_c, rate_c / base])  # fmt: skip
                records.append({"contender": "cache", "frames": args.frames, "seconds": el_c,
                                "frames_per_s": rate_c})  # fmt: skip

    # The trained reward model RL-VLM-F uses instead of the VLM at every step.
    scorer = PreferenceScorer(RewardEnsemble(members=3, image_size=64))
    frames = all_frames[:n_rm]
    scorer.score(frames[:8])  # warm-up
    t0 = time.perf_counter()
    scorer.score(frames)
    batched = frames.shape[0] / (time.perf_counter() - t0)
    n1 = min(64, frames.shape[0])
    t0 = time.perf_counter()
    for i in range(n1):
        scorer.score(frames[i : i + 1])
    single = n1 / (time.perf_counter() - t0)
    rm_rows = [
        ["reward ensemble (3 CNNs), one frame per call", single, 1.0],
        [f"reward ensemble, batch of {frames.shape[0]}", batched, batched / single],
    ]
    records += [
        {"contender": "reward-model-single", "frames_per_s": single},
        {"contender": "reward-model-batched", "frames_per_s": batched},
    ]

    suffix = "_quick" if args.quick else ""
    note = contention_note(info)
    md = [
        "# VLM judge and preference reward model throughput",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']} (1 thread). Command: `python benchmarks/vlm_judge_throughput.py"
        f"{' --quick' if args.quick else ''}`.",
        "",
        *([note, ""] if note else []),
        f"## Judge over HTTP (local server, {args.latency_ms:.0f} ms per request, "
        f"{args.size}x{args.size} PNG frames)",
        "",
        markdown_table(
            ["contender", "frames", "seconds", "frames/s", "x sequential"],
            rows,
        ),
        "",
        "The server's sleep stands in for a model's generation time; with a real vLLM/Ollama "
        "server the speed-up from concurrency is bounded by how many requests the server "
        "batches at once.",
        "",
        "## Trained BT reward model (CPU)",
        "",
        markdown_table(["contender", "frames/s", "x one at a time"], rm_rows),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"vlm_judge_throughput{suffix}.md").write_text("\n".join(md))
    write_json(RESULTS / f"vlm_judge_throughput{suffix}.json", {"system": info, "rows": records})
    print("\n".join(md))


if __name__ == "__main__":
    main()
