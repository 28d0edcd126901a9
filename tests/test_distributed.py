"""Multi-process PPO (agents/distributed.py) on the CPU: two processes, gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _init(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)


def _ppo_worker(rank: int, init_file: str, out: str) -> None:
    """Two PPO iterations on this rank's worlds; records gradients before/after averaging."""
    from rewardlab.agents import distributed
    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.envs import make_env

    _init(rank, init_file)
    ctx = distributed.DistContext(rank, WORLD, rank, "gloo")
    env = make_env("cartpole_balance", num_envs=ctx.num_envs(17), seed=ctx.seed(0), nthread=1)
    cfg = PPOConfig(num_steps=16, num_minibatches=2, num_epochs=2, schedule="adaptive")
    runner = OnPolicyRunner(env, cfg, seed=0)
    if rank == 1:  # a different init on purpose: attach() must broadcast rank 0's parameters
        with torch.no_grad():
            for p in runner.policy.parameters():
                p.add_(1.0)
    ctx.attach(runner)
    init = torch.cat([p.detach().reshape(-1) for p in runner.policy.parameters()]).clone()
    record: dict[str, list[torch.Tensor]] = {"local": [], "averaged": []}
    original = distributed.average_gradients

    def recording(module: torch.nn.Module) -> None:
        flat = lambda: torch.cat([p.grad.reshape(-1) for p in module.parameters()]).clone()  # noqa: E731
        record["local"].append(flat())
        original(module)
        record["averaged"].append(flat())

    distributed.average_gradients = recording
    finished = []
    step = env.step

    def counting_step(actions):
        out = step(actions)
        if "episode" in out[4]:
            finished.append(len(out[4]["episode"]["env_ids"]))
        return out

    env.step = counting_step
    rows = runner.learn(2 * 17 * 16 - 1, progress=False)  # 2 iterations of all 17 worlds
    # the synced normalizer equals a plain one fed both ranks' batches
    from rewardlab.agents.networks import EmpiricalNormalization

    data = [torch.randn(50 + 10 * r, 3, generator=torch.Generator().manual_seed(r)) for r in (0, 1)]
    synced = distributed.SyncedNormalization(3)
    synced.update(data[rank] * 2 + 1)
    plain = EmpiricalNormalization(3)
    plain.update(torch.cat(data) * 2 + 1)
    torch.save(
        {
            "init": init,
            "params": torch.cat([p.detach().reshape(-1) for p in runner.policy.parameters()]),
            "obs_mean": runner.policy.obs_normalizer.mean.clone(),
            "lr": runner.alg.learning_rate,
            "global_step": runner.global_step,
            "iteration": runner.iteration,
            "num_envs": env.num_envs,
            "first_obs": runner._obs.clone(),
            "local": record["local"],
            "averaged": record["averaged"],
            "synced": (synced.mean, synced.var, synced.count),
            "rows": rows,
            "finished_here": sum(finished),
            "plain": (plain.mean, plain.var, plain.count),
        },
        f"{out}/rank{rank}.pt",
    )
    dist.destroy_process_group()


@pytest.mark.unit
def test_two_ranks_average_gradients_and_stay_in_sync(tmp_path: Path) -> None:
    mp.spawn(_ppo_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    assert r0["num_envs"] + r1["num_envs"] == 17 and {r0["num_envs"], r1["num_envs"]} == {8, 9}
    assert torch.equal(r0["init"], r1["init"])  # rank 1's own init was replaced by rank 0's
    steps = len(r0["local"])
    assert steps == len(r1["local"]) == 2 * 2 * 2  # iterations x epochs x minibatches
    for i in range(steps):
        assert not torch.allclose(r0["local"][i], r1["local"][i])  # different worlds, data
        assert torch.equal(r0["averaged"][i], r1["averaged"][i])
        mean = (r0["local"][i] + r1["local"][i]) / 2
        assert torch.allclose(r0["averaged"][i], mean, atol=1e-7)
    assert torch.equal(r0["params"], r1["params"]) and not torch.equal(r0["params"], r0["init"])
    assert torch.equal(r0["obs_mean"], r1["obs_mean"]) and r0["lr"] == r1["lr"]
    assert r0["global_step"] == r1["global_step"] == 2 * 17 * 16 and r0["iteration"] == 2
    assert not torch.allclose(r0["first_obs"][:8], r1["first_obs"][:8])  # per-rank seeds
    for a, b in zip(r0["synced"], r0["plain"], strict=True):
        assert torch.allclose(a.double(), b.double(), atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(r0["synced"], r1["synced"], strict=True))
    # the logged episode statistics cover both ranks' episodes
    logged = sum(r.get("charts/episodes", 0) for r in r0["rows"])
    assert logged == r0["finished_here"] + r1["finished_here"] > r0["finished_here"] > 0
    keys = [k for k in r0["rows"][-1] if k.startswith(("charts/episode", "reward/"))]
    assert keys and all(r0["rows"][-1][k] == r1["rows"][-1][k] for k in keys)


@pytest.mark.slow
def test_torchrun_two_processes_train_cartpole(tmp_path: Path) -> None:
    """``torchrun -m rewardlab.cli train`` with 2 processes reaches cartpole's threshold."""
    from rewardlab.envs.tasks import get_task

    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "rewardlab.cli", "train", "task=cartpole_balance", f"run_dir={run_dir}",
        "num_envs=64", "nthread=1", "total_steps=120000", "eval.video=false", "seed=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("[rewardlab] run directory:") == 1  # rank 1 prints nothing
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["global_step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] >= 120_000  # one writer, both ranks counted
    assert steps[0] == 64 * 32  # one iteration: 32 steps of all 64 worlds (2 x 32)
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["success_rate"] >= get_task("cartpole_balance").success_threshold, result
    assert (run_dir / "export" / "policy.pt").is_file()
