"""Demonstrations as data (rewardlab.envs.demos, ``rewardlab demos``) and behaviour cloning
(``agent=bc``): the episode format and its errors, each source, the BC agent's training, exact
resume and export, and one learning test."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.agents.bc import BCAgent
from rewardlab.agents.config import BCConfig
from rewardlab.agents.registry import TrainSpec
from rewardlab.cli import main
from rewardlab.deploy.messages import Command
from rewardlab.deploy.recording import BagRecorder
from rewardlab.envs import make_env
from rewardlab.envs.demos import (
    EpisodeFormatError,
    Episodes,
    concatenate,
    episodes_from_bags,
    load_episodes,
    record_script,
)
from rewardlab.vlm_reward.evaluation import EpisodeSet

EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "arm_reach_export"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _reach(n: int = 4, steps: int | None = 40, seed: int = 0, script: str = "reach") -> Episodes:
    env = make_env("arm_reach", num_envs=n, nthread=1, seed=seed)
    try:
        return record_script(env, "arm_reach", script, steps=steps, seed=seed)
    finally:
        env.close()


@pytest.mark.unit
def test_scripted_episodes_round_trip_as_data(tmp_path: Path) -> None:
    eps = _reach(4, steps=40)
    assert eps.observations.shape == (4, 40, 15) and eps.actions.shape == (4, 40, 3)
    assert eps.success.shape == (4, 40) and eps.physics["qpos"].shape[:2] == (4, 40)
    assert (np.abs(eps.actions) <= 1).all() and eps.source == "script"
    assert eps.kind == ["success"] * 4 and eps.script == ["reach"] * 4
    # step t pairs obs_t with a_t: the first observation is the reset's
    env = make_env("arm_reach", num_envs=4, nthread=1, seed=0)
    np.testing.assert_allclose(env.reset(seed=0).numpy(), eps.observations[:, 0])
    env.close()
    path = eps.save(tmp_path / "d.npz")
    back = Episodes.load(path)
    for name in ("observations", "actions", "success", "reward", "length"):
        np.testing.assert_array_equal(getattr(back, name), getattr(eps, name))
    np.testing.assert_array_equal(back.physics["mocap_pos"], eps.physics["mocap_pos"])
    assert (back.task, back.source, back.kind, back.meta["seed"]) == (
        "arm_reach",
        "script",
        eps.kind,
        0,
    )
    obs, act = back.transitions()
    assert obs.shape == (int(eps.length.sum()), 15) and act.shape[1] == 3
    assert EpisodeSet is Episodes  # vlm-eval's episode sets are this format
    both = load_episodes([path, path])
    assert both.num_episodes == 8 and both.select([0, 5]).num_episodes == 2
    # printed as one short line, not every array in full
    line = repr(both)
    assert "\n" not in line and len(line) < 200, line
    assert "episodes=8" in line and f"steps={2 * int(eps.length.sum())}" in line


@pytest.mark.unit
def test_bad_episode_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "text.npz").write_text("not numpy")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    good = _reach(2, steps=10)
    good.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as z:
        data = {k: z[k] for k in z.files}
    np.savez(tmp_path / "foreign.npz", **{**data, "header": np.array(json.dumps({"format": "x"}))})
    np.savez(tmp_path / "shape.npz", **{**data, "actions": data["actions"][:, :5]})
    np.savez(tmp_path / "pickled.npz", **{**data, "kind": np.array([{"a": 1}, 2], dtype=object)})
    cases = {
        "text.npz": "not a .npz archive",
        "other.npz": "missing task, length, success, reward, kind",
        "foreign.npz": "format 'x', expected 'rewardlab-episodes'",
        "shape.npz": r"actions has shape \(2, 5\), expected \(2, 10\)",
        "pickled.npz": "not an episode file",
    }
    for name, match in cases.items():
        with pytest.raises(EpisodeFormatError, match=match) as err:
            Episodes.load(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value)
    with pytest.raises(FileNotFoundError, match="no such episode file"):
        Episodes.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="different tasks"):
        concatenate([good, Episodes(**{**good.__dict__, "task": "cartpole_balance"})])


@pytest.mark.unit
def test_demos_cli_records_scripts_and_policies(tmp_path: Path) -> None:
    out = tmp_path / "s.npz"
    code, text, err = run_cli("demos", "record", "task=arm_reach", "script=reach", "episodes=3",
                              "steps=30", f"out={out}", "only_success=false")  # fmt: skip
    assert code == 0, err
    assert "wrote 3 of 3 episodes" in text and Episodes.load(out).script == ["reach"] * 3
    # a trained policy (the deploy fixture's export): its own task, deterministic actions
    pol = tmp_path / "p.npz"
    code, text, err = run_cli("demos", "record", "source=policy", f"policy={EXPORT}", "episodes=4",
                              f"out={pol}")  # fmt: skip
    assert code == 0, err
    eps = Episodes.load(pol)
    assert eps.source == "policy" and eps.task == "arm_reach" and eps.episode_success.mean() >= 0.75
    exported = torch.jit.load(str(EXPORT / "policy.pt"))
    obs = torch.from_numpy(eps.observations[:, 5])
    np.testing.assert_allclose(exported(obs).numpy(), eps.actions[:, 5], atol=1e-6)
    code, text, _ = run_cli("demos", "info", str(pol))
    assert code == 0 and "source:       policy" in text
    # one-line errors
    for words, match in [
        (["task=arm_reach", "script=nope", f"out={out}"], "script: got 'nope', expected one of reach"),
        (["task=ant_run", f"out={out}"], "no scripted episodes for 'ant_run'"),
        (["source=policy", f"policy={tmp_path}", f"out={out}"], "is not a run directory"),
        (["source=policy", f"policy={EXPORT}", "deterministic=false", f"out={out}"], "stochastic"),
        (["task=arm_reach", "script=home", "steps=20", "only_success=true", f"out={out}"], "none of the"),
        (["task=arm_reach"], "out: required"),
    ]:  # fmt: skip
        code, _, err = run_cli("demos", "record", *words)
        assert code == 2 and match in err and err.count("\n") == 1, (words, err)
    code, _, err = run_cli("demos", "info", str(tmp_path / "nope.npz"))
    assert code == 2 and "no such episode file" in err


@pytest.mark.unit
def test_episodes_from_a_deploy_bag(tmp_path: Path) -> None:
    bag = tmp_path / "bags" / "ep0"
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 15))
    act = rng.uniform(-1, 1, size=(6, 3))
    names = ("j0", "j1", "j2")
    with BagRecorder(bag) as rec:
        rec.record_command(Command(names, np.zeros(3), "RAMP"), 0.01)  # no policy action yet
        for k in range(6):
            cmd = Command(names, np.zeros(3), "RUN", time=k, action=act[k], observation=obs[k])
            rec.record_command(cmd, 0.1 * (k + 1))
        rec.record_command(Command(names, np.zeros(3), "HOLD", reason="stale"), 0.9)
    eps = episodes_from_bags([bag], "arm_reach")
    assert eps.num_episodes == 1 and eps.length.tolist() == [6] and eps.source == "bag"
    np.testing.assert_allclose(eps.observations[0], obs, atol=1e-6)
    np.testing.assert_allclose(eps.actions[0], act, atol=1e-6)
    assert eps.meta["labels"] == "none" and not eps.success.any() and np.isnan(eps.reward).all()
    out = tmp_path / "bag.npz"
    code, text, err = run_cli("demos", "record", "source=bag", f"bag={tmp_path / 'bags'}",
                              "task=arm_reach", f"out={out}")  # fmt: skip
    assert code == 0, err
    assert Episodes.load(out).script == [str(bag)]
    two = episodes_from_bags([bag, bag], "arm_reach")  # unlabelled, however many bags
    assert two.num_episodes == 2 and two.meta["labels"] == "none"
    empty = tmp_path / "empty"
    with BagRecorder(empty) as rec:
        rec.record_command(Command(names, np.zeros(3), "HOLD"), 0.1)
    with pytest.raises(ValueError, match="no ticks with both"):
        episodes_from_bags([empty], "arm_reach")


def _spec(tmp: Path | None, total: int, demos: Path, **bc) -> TrainSpec:
    cfg = BCConfig(demos=str(demos), steps_per_iteration=20, eval_every=2, eval_episodes=4,
                   hidden=(32, 32), batch_size=64, **bc)  # fmt: skip
    return TrainSpec(total_steps=total, seed=3, hyperparams=cfg, log_dir=tmp,
                     checkpoint_every=1, progress=False)  # fmt: skip


@pytest.mark.unit
def test_bc_resumes_exactly_and_refuses_other_demos(tmp_path: Path) -> None:
    demos = _reach(4, steps=30).save(tmp_path / "d.npz")
    env = make_env("arm_reach", num_envs=4, nthread=1, seed=0)
    try:
        agent = BCAgent()
        whole = agent.train(env, _spec(tmp_path / "a", 80, demos))
        agent.train(env, _spec(tmp_path / "b", 40, demos))
        ckpt = tmp_path / "b" / "checkpoints" / "latest.pt"
        resumed = agent.train(env, _spec(tmp_path / "b", 80, demos), resume=ckpt)
        assert whole.global_step == resumed.global_step == 80
        for a, b in zip(whole.policy.inference.state_dict().values(),
                        resumed.policy.inference.state_dict().values(), strict=True):  # fmt: skip
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
        assert "charts/success_rate" in rows[1] and "losses/bc" in rows[0]
        index = json.loads((tmp_path / "b" / "checkpoints" / "index.json").read_text())
        assert index["best"] is not None
        # the exported module normalizes by the demos' statistics
        norm = whole.policy.inference.normalizer
        obs = torch.from_numpy(Episodes.load(demos).transitions()[0])
        torch.testing.assert_close(norm.mean, obs.double().mean(0).float(), rtol=1e-5, atol=1e-5)
        loaded = agent.load(ckpt, env, _spec(None, 80, demos))
        x = torch.randn(5, 15)
        torch.testing.assert_close(loaded(x), agent.load(ckpt, env, _spec(None, 80, demos))(x))
        with pytest.raises(ValueError, match="deterministic"):
            loaded.sample(x)
        # bc.ignore_obs (default: the action history) is not read: arm_reach's last_action
        moved = x.clone()
        moved[:, 12:15] = torch.randn(5, 3)
        torch.testing.assert_close(loaded(moved), loaded(x))
        assert not torch.allclose(loaded(x + 1.0), loaded(x))
        other = _reach(4, steps=30, seed=9).save(tmp_path / "other.npz")
        with pytest.raises(ValueError, match="trained on other demos"):
            agent.train(env, _spec(tmp_path / "b", 120, other), resume=ckpt)
        cart = make_env("cartpole_balance", num_envs=2, nthread=1)
        with pytest.raises(
            ValueError, match="holds episodes of 'arm_reach', training 'cartpole_balance'"
        ):
            agent.train(cart, _spec(None, 20, demos))
        cart.close()
    finally:
        env.close()


@pytest.mark.unit
def test_train_agent_bc_runs_the_pipeline(tmp_path: Path) -> None:
    demos = _reach(4, steps=30).save(tmp_path / "d.npz")
    run = tmp_path / "run"
    base = ["train", "task=arm_reach", "agent=bc", f"run_dir={run}", "num_envs=4", "nthread=1",
            "bc.steps_per_iteration=20", "bc.hidden=[32, 32]", "eval.episodes=4",
            "eval.video=false", "checkpoint_every=1"]  # fmt: skip
    code, _, err = run_cli(*base, "total_steps=40")
    assert code == 2 and "bc.demos: required" in err and err.count("\n") == 1
    code, text, err = run_cli(*base, "total_steps=40", f"bc.demos={demos}")
    assert code == 0, err
    meta = json.loads((run / "export" / "policy.json").read_text())
    assert meta["agent"] == "bc" and meta["observation"]["normalization"] is not None
    # deploy loads it like any export (both runtimes give the exported module's actions)
    from rewardlab.agents.policy import ExportedPolicy
    from rewardlab.deploy.policy import load_policy as deploy_policy

    obs = np.random.default_rng(0).normal(size=(1, 15)).astype(np.float32)
    want = ExportedPolicy(run / "export" / "policy.pt")(torch.from_numpy(obs)).numpy()[0]
    for backend in ("torch", "onnx"):
        got = deploy_policy(run / "export", backend=backend)(obs[0])
        np.testing.assert_allclose(got, want, atol=1e-5)
    code, text, err = run_cli(*base, "total_steps=60", f"bc.demos={demos}")
    assert code == 0 and "resuming from" in text and "60 steps" in text, err
    code, text, err = run_cli("eval", f"run_dir={run}", "episodes=4")
    assert code == 0 and "success_rate:" in text, err
    # the trained run as a demonstration source (its checkpoint, its own task config)
    code, text, err = run_cli("demos", "record", "source=policy", f"policy={run}", "episodes=2",
                              "steps=20", f"out={tmp_path / 'p.npz'}")  # fmt: skip
    assert code == 0, err
    eps = Episodes.load(tmp_path / "p.npz")
    assert eps.script[0].endswith("latest.pt") and eps.meta["deterministic"] is True
    code, _, err = run_cli("demos", "record", "source=policy", f"policy={run}",
                           "deterministic=false", f"out={tmp_path / 'q.npz'}")  # fmt: skip
    assert code == 2 and "deterministic" in err


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_bc_learns_arm_reach_from_scripted_demos(tmp_path: Path, seed: int) -> None:
    """BC from 64 scripted ``reach`` demos reaches the task's own deterministic success on 64
    fresh episodes (the script itself: 1.00)."""
    env = make_env("arm_reach", num_envs=64, nthread=1, seed=100 + seed)
    try:
        demos = record_script(env, "arm_reach", "reach", seed=100 + seed).save(tmp_path / "d.npz")
    finally:
        env.close()
    code, _, err = run_cli(
        "train", "task=arm_reach", "agent=bc", f"bc.demos={demos}", f"run_dir={tmp_path / 'run'}",
        f"seed={seed}", "total_steps=3000", "num_envs=32", "eval.episodes=64", "eval.video=false",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["success_rate"] >= 0.8, result
