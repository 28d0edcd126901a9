"""Training on the CLIP reward: PPO balances the cart-pole on the shipped tiny CLIP's VLM-RM
reward alone (no task reward), judged by the task's own success; and ``rewardlab train
task=humanoid_kneel reward=clip`` runs end to end through the open_clip loading path with the
shipped model given as a local checkpoint (the documented real-model command with a local file).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest
import torch

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.envs import make_env
from rewardlab.envs.tasks import get_task
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.models import SHIPPED_DIR, shipped_models
from rewardlab.vlm_reward.training import wrap_env

# cartpole_balance: the episode ends when the pole falls, so any positive per-frame score pays
# for staying up; the CLIP score also ranks upright frames above tilted ones. Frame stride 4
# (every 4th step, last score held) keeps rendering + scoring to about 1/4 of the frames.
STEPS = 70_000
ENVS = 32


def first_episode_success(policy: torch.nn.Module, task: str, n: int, seed: int) -> float:
    """Success rate of ``policy`` over the first episode of ``n`` fresh worlds (task reward env)."""
    env = make_env(task, num_envs=n, seed=seed, nthread=1)
    try:
        return evaluate(policy, env, episodes=n, seed=seed)["success_rate"]
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("stride", [4, 8])
def test_ppo_balances_cartpole_on_clip_reward_alone(stride: int) -> None:
    # stride 8 is where rendering + scoring fall under half the CPU wall time
    # (benchmarks/vlm_scoring.py); measured: success 1.00 at both strides, 29-37 s each
    cfg = VLMConfig(device="cpu", frame_stride=stride, task_weight=0.0)
    env = wrap_env(make_env("cartpole_balance", num_envs=ENVS, seed=0, nthread=1), "clip", cfg)
    assert env.cfg.task_weight == 0.0 and env.scorer.clip.source.startswith("checkpoint:")
    runner = OnPolicyRunner(env, PPOConfig(), seed=0, log_every=10)
    start = time.perf_counter()
    runner.learn(STEPS)
    train_s = time.perf_counter() - start
    shares = env.timing_shares()
    env.close()
    rate = first_episode_success(runner.inference_policy(), "cartpole_balance", 64, 10_000)
    print(
        f"cartpole_balance on CLIP reward alone, stride {stride}: {train_s:.0f} s, success {rate:.2f}, "
        f"{shares['frames']} frames scored, render {shares['render_s']:.1f} s, "
        f"score {shares['score_s']:.1f} s, env {shares['env_s']:.1f} s"
    )
    assert rate >= get_task("cartpole_balance").success_threshold


@pytest.mark.slow
def test_train_humanoid_kneel_with_clip_through_the_cli(tmp_path: Path) -> None:
    """The documented command with vlm.model/checkpoint pointing at a local open_clip model."""
    from rewardlab.cli import main

    card = shipped_models()["rewardlab-tiny-clip"]
    run_dir = tmp_path / "kneel"
    argv = [
        "train",
        "task=humanoid_kneel",
        "reward=clip",
        "vlm.model=rewardlab-tiny-clip",
        f"vlm.model_config={SHIPPED_DIR / card['model_config']}",
        f"vlm.checkpoint={SHIPPED_DIR / card['checkpoint']}",
        f"vlm.checkpoint_sha256={card['checkpoint_sha256']}",
        f"vlm.image_mean={card['image_mean']}",
        f"vlm.image_std={card['image_std']}",
        "vlm.device=cpu",
        f"run_dir={run_dir}",
        "num_envs=4",
        "nthread=1",
        "total_steps=256",
        "ppo.num_steps=32",
        "eval.episodes=1",
        "eval.num_envs=1",
        "eval.video=false",
        "task_cfg.episode_steps=40",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    assert status == 0, out.getvalue()[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["global_step"] >= 256
    with_eps = [r for r in rows if "reward/vlm" in r]
    assert with_eps, "episodes must report reward/vlm"
    assert all("reward/task_return" in r and "charts/success_rate" in r for r in with_eps)
    assert (run_dir / "eval.json").is_file()
    # a wrong hash stops the run before training, naming the key
    bad = [a if not a.startswith("vlm.checkpoint_sha256=") else "vlm.checkpoint_sha256=" + "0" * 64 for a in argv]  # fmt: skip
    bad = [a if not a.startswith("run_dir=") else f"run_dir={tmp_path / 'bad'}" for a in bad]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(bad) != 0
    assert "vlm.checkpoint_sha256" in err.getvalue()
