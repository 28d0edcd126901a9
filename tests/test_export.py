"""Policy export: files, sidecar contents, and a RewardLab-free reload in an isolated interpreter."""

from __future__ import annotations

import hashlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rewardlab.agents.config import PPOConfig
from rewardlab.agents.export import export_policy, load_exported
from rewardlab.agents.runner import OnPolicyRunner
from rewardlab.envs import make_env

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A briefly trained cartpole policy (non-trivial normalizer statistics) and its export."""
    env = make_env("cartpole_balance", num_envs=4, nthread=1, seed=3)
    cfg = PPOConfig(num_steps=16, num_epochs=1, actor_hidden=(16, 16), critic_hidden=(16,))
    runner = OnPolicyRunner(env, cfg, seed=0)
    runner.learn(4 * 16 * 2, progress=False)
    policy = runner.inference_policy()
    out = tmp_path_factory.mktemp("export")
    paths = export_policy(policy, env, out, git_revision="abc123", extra={"agent": "ppo"})
    obs = [env.reset(seed=7)]
    for _ in range(20):
        o, *_ = env.step(torch.rand(4, 1) * 2 - 1)
        obs.append(o)
    observations = torch.cat(obs + [torch.randn(16, env.obs_dim) * 3])
    with torch.no_grad():
        expected = policy(observations)
    return {"env": env, "policy": policy, "paths": paths, "obs": observations, "expected": expected}


def test_files_and_sidecar(trained: dict) -> None:
    paths, env, policy = trained["paths"], trained["env"], trained["policy"]
    assert {p.name for p in paths.values()} == {"policy.pt", "policy.onnx", "policy.json"}
    meta = json.loads(paths["json"].read_text())
    assert meta["format_version"] == 1 and meta["task"] == "cartpole_balance"
    assert (meta["obs_dim"], meta["action_dim"]) == (env.obs_dim, env.action_dim)
    layout = meta["observation"]["layout"]
    assert [e["name"] for e in layout] == [n for n, _ in env.task.obs_layout()]
    assert sum(e["width"] for e in layout) == env.obs_dim and layout[-1]["start"] == env.obs_dim - 1
    norm = meta["observation"]["normalization"]
    assert np.allclose(norm["mean"], policy.normalizer.mean.numpy()) and np.allclose(
        norm["std"], policy.normalizer.std.numpy()
    )
    assert not np.allclose(norm["std"], 1.0)  # real statistics, baked into the module
    act = meta["action"]
    assert (
        act["clip"] == [-1.0, 1.0]
        and len(act["ctrl_mid"]) == len(act["ctrl_half"]) == env.action_dim
    )
    lo, hi = env.model.actuator_ctrlrange[0]
    assert act["ctrl_mid"][0] == pytest.approx((lo + hi) / 2) and act["ctrl_half"][
        0
    ] == pytest.approx((hi - lo) / 2)
    assert len(meta["joint_names"]) == env.model.njnt and all(meta["joint_names"])
    assert len(meta["actuator_names"]) == env.model.nu
    assert meta["control_dt"] == pytest.approx(env.control_dt) and meta[
        "control_rate_hz"
    ] == pytest.approx(1 / env.control_dt)
    assert meta["frame_skip"] == env.cfg.frame_skip
    assert meta["git_revision"] == "abc123" and meta["agent"] == "ppo"
    for p in (paths["pt"], paths["onnx"]):
        assert meta["files"][p.name]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_load_exported_in_process(trained: dict, backend: str) -> None:
    act, meta = load_exported(trained["paths"]["json"].parent, backend=backend)
    got = act(trained["obs"].numpy())
    assert (
        got.shape == tuple(trained["expected"].shape) and meta["obs_dim"] == trained["obs"].shape[1]
    )
    np.testing.assert_allclose(got, trained["expected"].numpy(), atol=1e-5)


def test_isolated_interpreter_reproduces_actions(trained: dict, tmp_path: Path) -> None:
    """``python -I`` with only torch, onnxruntime and json: the docstring snippet and
    ``load_exported``'s own source load both files and match the in-process policy."""
    folder = trained["paths"]["json"].parent
    np.save(tmp_path / "obs.npy", trained["obs"].numpy())
    loader = inspect.getsource(load_exported)
    code = (
        "from __future__ import annotations\n"
        + loader
        + textwrap.dedent(
            f"""
        import json, sys
        import numpy as np, onnxruntime as ort, torch
        folder = {str(folder)!r}
        obs = np.load({str(tmp_path / "obs.npy")!r})
        # the snippet of the module docstring
        meta = json.load(open(folder + "/policy.json"))
        a_pt = torch.jit.load(folder + "/policy.pt")(torch.from_numpy(obs)).detach().numpy()
        a_onnx = ort.InferenceSession(folder + "/policy.onnx").run(None, {{"obs": obs}})[0]
        ctrl = np.asarray(meta["action"]["ctrl_mid"]) + np.asarray(meta["action"]["ctrl_half"]) * a_onnx
        # the loader function, copied
        b_pt = load_exported(folder, "torch")[0](obs)
        b_onnx = load_exported(folder + "/policy.onnx")[0](obs)
        assert not [m for m in sys.modules if m.split(".")[0] == "rewardlab"], "rewardlab was imported"
        np.savez({str(tmp_path / "out.npz")!r}, a_pt=a_pt, a_onnx=a_onnx, b_pt=b_pt, b_onnx=b_onnx, ctrl=ctrl)
        """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    expected = trained["expected"].numpy()
    for key in ("a_pt", "a_onnx", "b_pt", "b_onnx"):
        np.testing.assert_allclose(out[key], expected, atol=1e-5, err_msg=key)
    assert np.all(np.abs(out["a_onnx"]) <= 1.0)


def test_export_rejects_a_policy_of_the_wrong_width(trained: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected \[2, 1\]"):
        export_policy(nn.Linear(trained["env"].obs_dim, 3), trained["env"], tmp_path)


def test_export_without_normalizer(trained: dict, tmp_path: Path) -> None:
    env = trained["env"]
    policy = nn.Sequential(
        nn.Linear(env.obs_dim, 8), nn.Tanh(), nn.Linear(8, env.action_dim), nn.Tanh()
    )
    paths = export_policy(policy, env, tmp_path, onnx=False)
    meta = json.loads(paths["json"].read_text())
    assert "onnx" not in paths and meta["observation"]["normalization"] is None
    assert list(meta["files"]) == ["policy.pt"] and meta["git_revision"]
