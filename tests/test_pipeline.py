"""The one training pipeline (rewardlab.pipeline): the envs it builds, training through the agent
registry, evaluation and export as named results, and the reward search's candidates training
on exactly the env ``rewardlab train`` builds (domain randomization included)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from rewardlab import pipeline
from rewardlab.agents.policy import PPOPolicy
from rewardlab.agents.registry import AGENTS, TrainOutcome
from rewardlab.config import AGENTS as AGENT_NAMES
from rewardlab.config import REWARD_KINDS, load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.core.registry import UnknownNameError
from rewardlab.reward_kinds import REWARD_KINDS as REWARD_KIND_REGISTRY
from rewardlab.search.candidate import train_candidate
from rewardlab.search.config import load_search_config
from rewardlab.search.reward_search import RewardSearch

FIXTURES = Path(__file__).parent / "fixtures" / "rewards"

UPRIGHT = """
import torch


def compute_reward(state, action):
    upright = torch.cos(state["pole_angle"])
    return upright, {"upright": upright}
"""

DOMAIN_RAND = {"mass_scale": [0.5, 1.5], "friction_scale": [0.8, 1.2], "obs_noise_std": 0.01}
TINY = {
    "task": "cartpole_balance",
    "num_envs": 8,
    "nthread": 1,
    "device": "cpu",
    "ppo": {"num_steps": 16},
    "total_steps": 256,
    "eval": {"episodes": 4, "video": False},
    "task_cfg": {"episode_steps": 20},
}


def _snapshot_masses(checkpoint: bytes) -> torch.Tensor | None:
    """Per-world body masses in a PPO learner state's env snapshot (``None``: nominal physics)."""
    state = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)
    dr = (state.get("env") or {}).get("domain_rand")
    return None if dr is None else dr["physics"]["body_mass"]


@pytest.mark.unit
def test_search_candidates_train_with_the_configured_domain_randomization(tmp_path: Path) -> None:
    """A search's ``train.domain_rand`` reaches every candidate's training env (as it reaches
    ``rewardlab train``'s): the learner state a candidate returns holds randomized, per-world
    masses. (Before the pipeline, candidates rebuilt the env without ``domain_rand``.)"""
    cfg = load_search_config(
        {
            "task": "cartpole_balance",
            "description": "Balance the pole.",
            "run_dir": str(tmp_path / "s"),
            "train": {**TINY, "domain_rand": DOMAIN_RAND},
            "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "unused"},
        }
    )
    search = RewardSearch(cfg, log=lambda line: None)
    job = search._job({"id": "r1c0", "code": UPRIGHT, "style": "native"}, 128, None)
    spec = job.args[0]
    assert spec.train_cfg.domain_rand == DOMAIN_RAND
    result = train_candidate(spec)  # the body of the sandboxed job, in this process
    masses = _snapshot_masses(result.checkpoint)
    assert masses is not None, "the candidate trained without domain randomization"
    assert masses.shape[0] == 8 and bool((masses.std(dim=0) > 0).any())  # worlds differ
    assert "reward/upright" in result.history[-1]
    # without domain_rand the same job trains on the nominal robot
    plain = dataclasses.replace(spec, train_cfg=dataclasses.replace(spec.train_cfg, domain_rand={}))
    assert _snapshot_masses(train_candidate(plain).checkpoint) is None


@pytest.mark.unit
def test_train_and_eval_envs() -> None:
    cfg = load_train_config(
        {**TINY, "domain_rand": DOMAIN_RAND, "reward": f"code:{FIXTURES / 'cartpole_native.py'}"}
    )
    env = pipeline.make_train_env(cfg)
    try:
        assert env.num_envs == 8 and env._dr is not None  # randomized physics
        assert env.reward_fn.style == "native"  # the reward cfg.reward names
        assert env.max_episode_steps == 20  # task_cfg applied
    finally:
        env.close()
    ev = pipeline.make_eval_env(cfg)
    try:  # nominal physics, the task's own reward, its own seed and size
        assert ev._dr is None and ev.num_envs == 4 and not hasattr(ev.reward_fn, "style")
    finally:
        ev.close()


@pytest.mark.unit
def test_train_evaluate_export_load(tmp_path: Path) -> None:
    cfg = load_train_config(TINY)
    result = pipeline.train(cfg, None, progress=False, keep_state=True)
    assert result.global_step >= 256 and result.is_main and result.state is not None
    assert isinstance(result.policy, PPOPolicy) and result.history
    ev = pipeline.evaluate(cfg, result.policy)
    assert isinstance(ev, pipeline.EvalResult)
    assert ev.episodes == 4 and len(ev.successes) == 4 and 0.0 <= ev.success_rate <= 1.0
    sampled = pipeline.evaluate(cfg, result.policy, deterministic=False, episodes=2)
    assert sampled.episodes == 2
    out = pipeline.export(cfg, result.policy, tmp_path / "export", onnx=False, note="x")
    assert out.onnx is None and out.paths() == [out.pt, out.json]
    meta = json.loads(out.json.read_text())
    assert meta["agent"] == "ppo" and meta["note"] == "x" and meta["task"] == "cartpole_balance"
    # continue from the returned state: the step count goes on
    more = pipeline.train(
        dataclasses.replace(cfg, total_steps=512), None, resume=result.state, progress=False
    )
    assert more.global_step >= 512


@pytest.mark.unit
def test_registries_name_agents_and_reward_kinds() -> None:
    names = ("ppo", "sac", "sb3_ppo", "sb3_sac", "bc", "iql", "residual_sac")
    assert AGENT_NAMES == tuple(AGENTS.names()) == names
    assert REWARD_KINDS == tuple(REWARD_KIND_REGISTRY.names()) == ("task", "code", "clip", "vlm")
    with pytest.raises(UnknownNameError, match="did you mean 'ppo'"):
        AGENTS.get("pp0")
    cases = [
        ({"reward": "clp"}, "did you mean 'clip'"),
        ({"reward": "code"}, "expected task, code:<file.py>, clip or vlm"),
        ({"reward": "task:x"}, "expected task, code:<file.py>, clip or vlm"),
        (
            {"agent": "sb3_pp0"},
            "agent: got 'sb3_pp0', expected one of ppo, sac, sb3_ppo, sb3_sac, bc, iql, residual_sac",
        ),
    ]
    for override, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_train_config({"task": "cartpole_balance", **override})


class _ZeroPolicy:
    stochastic = False

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        self.inference = nn.Linear(obs_dim, action_dim)
        nn.init.zeros_(self.inference.weight)
        nn.init.zeros_(self.inference.bias)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.inference(obs)

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        raise ValueError("deterministic")


class _ZeroAgent:
    """A whole algorithm for the pipeline: one class and one registry entry."""

    config_key = "sb3"
    resumable = False
    distributed = False
    checkpoint_suffix = ".zero"

    def train(self, env, spec, resume=None, dist=None, log=print) -> TrainOutcome:
        return TrainOutcome(_ZeroPolicy(env.obs_dim, env.action_dim), spec.total_steps)

    def load(self, path, env, spec) -> _ZeroPolicy:
        return _ZeroPolicy(env.obs_dim, env.action_dim)


@pytest.mark.unit
def test_a_new_agent_is_one_class_and_one_registry_entry(tmp_path: Path) -> None:
    AGENTS.register("test_zero", _ZeroAgent)
    try:
        cfg = load_train_config({**TINY, "agent": "test_zero", "run_dir": str(tmp_path / "run")})
        start = pipeline.start_run(cfg)
        result = pipeline.train(start.cfg, start.run)
        out = pipeline.finish_run(start.cfg, start.run, result, log=lambda line: None)
        assert result.global_step == 256 and out.eval.episodes == 4
        assert json.loads(out.export.json.read_text())["agent"] == "test_zero"
        assert json.loads(start.run.eval_json.read_text())["global_step"] == 256
    finally:
        AGENTS.unregister("test_zero")


@pytest.mark.unit
def test_an_agent_whose_extra_is_missing_is_a_one_line_error(tmp_path: Path) -> None:
    AGENTS.register("test_missing", "rewardlab_no_such_module:Agent")
    try:
        cfg = load_train_config({**TINY, "agent": "test_missing", "run_dir": str(tmp_path / "r")})
        with pytest.raises(ValueError, match="needs the module 'rewardlab_no_such_module'"):
            pipeline.start_run(cfg)
    finally:
        AGENTS.unregister("test_missing")
