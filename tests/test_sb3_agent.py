"""SB3 PPO/SAC through the VecEnv adapter (agents/sb3.py): train, save, reload, inference module."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import VecNormalize

from rewardlab.agents.sb3 import (
    ObsNormalizer,
    checkpoint_path,
    load_sb3,
    save_sb3,
    sb3_inference_policy,
    train_sb3,
)
from rewardlab.envs import make_env
from rewardlab.envs.adapters.sb3 import Sb3VecEnv


def _obs(model, n=64, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, model.observation_space.shape[0]))).astype(np.float32)


def _assert_matches_predict(model, module, obs, normalize=None):
    ref, _ = model.predict(obs if normalize is None else normalize(obs), deterministic=True)
    with torch.no_grad():
        got = module(torch.from_numpy(obs)).numpy()
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.all(np.abs(got) <= 1.0)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    return got


def _assert_scriptable(module, obs):
    x = torch.from_numpy(obs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still used
        ref = module(x)
        torch.testing.assert_close(torch.jit.script(module)(x), ref)
        torch.testing.assert_close(torch.jit.trace(module, x)(x), ref)


def _checkpoint_dir_clean(log_dir, algo):
    ckpt = checkpoint_path(log_dir, algo)
    assert ckpt.is_file()
    assert [p.name for p in ckpt.parent.iterdir()] == [ckpt.name]  # no temp file left
    return ckpt


@pytest.mark.smoke
def test_ppo_trains_saves_reloads_and_exports(tmp_path, capsys):
    env = make_env("cartpole_balance", num_envs=8, nthread=1)
    hp = {"n_steps": 64, "batch_size": 256, "n_epochs": 2}
    model = train_sb3("ppo", env, 2048, tmp_path, seed=0, hyperparams=hp, progress_every_s=0)

    assert model.num_timesteps >= 2048 and model._n_updates > 0
    assert len(model.ep_info_buffer) > 0
    out = capsys.readouterr().out
    assert "[sb3_ppo] 2,048/2,048 steps" in out and "steps/s" in out and "ETA" in out
    assert "return " in out and "success " in out
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
    ckpt = _checkpoint_dir_clean(tmp_path, "ppo")

    loaded = load_sb3(ckpt)
    assert isinstance(loaded, PPO)
    module = sb3_inference_policy(loaded)
    assert isinstance(module.normalizer, torch.nn.Identity)
    obs = _obs(loaded)
    got = _assert_matches_predict(loaded, module, obs)
    _assert_matches_predict(model, sb3_inference_policy(model), obs)  # same weights as trained
    assert got.std() > 0  # not a constant policy
    _assert_scriptable(module, obs)


@pytest.mark.smoke
def test_sac_trains_saves_reloads_and_exports(tmp_path):
    env = make_env("cartpole_balance", num_envs=4, nthread=1)
    hp = {"learning_starts": 64, "batch_size": 64, "policy_kwargs": {"net_arch": [32, 32]}}
    model = train_sb3("sac", env, 384, tmp_path, seed=0, hyperparams=hp, progress_every_s=0)
    assert model.num_timesteps >= 384 and model._n_updates > 0
    ckpt = _checkpoint_dir_clean(tmp_path, "sac")

    loaded = load_sb3(ckpt)
    assert isinstance(loaded, SAC)
    module = sb3_inference_policy(loaded)
    assert module.squash
    obs = _obs(loaded)
    _assert_matches_predict(loaded, module, obs)
    _assert_scriptable(module, obs)


@pytest.mark.smoke
def test_obs_normalization_is_saved_and_built_in(tmp_path):
    env = make_env("cartpole_swingup", num_envs=4, nthread=1)
    hp = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}
    model = train_sb3(
        "ppo", env, 256, tmp_path, seed=1, hyperparams=hp, normalize_obs=True, progress_every_s=0
    )
    vn = model.get_vec_normalize_env()
    assert isinstance(vn, VecNormalize) and vn.obs_rms.count > 1
    loaded = load_sb3(checkpoint_path(tmp_path, "ppo"))
    module = sb3_inference_policy(loaded)
    assert isinstance(module.normalizer, ObsNormalizer)
    np.testing.assert_allclose(module.normalizer.mean.numpy(), vn.obs_rms.mean, rtol=1e-6)
    obs = _obs(loaded, scale=5.0)  # large enough that clipping at +-10 matters for some
    _assert_matches_predict(loaded, module, obs, normalize=vn.normalize_obs)
    _assert_scriptable(module, obs)


@pytest.mark.unit
def test_inference_module_variants_without_training(tmp_path):
    """Squashed PPO (gSDE), hand-set VecNormalize statistics, ONNX when available."""
    venv = Sb3VecEnv(make_env("cartpole_swingup", num_envs=2, nthread=1))
    model = PPO("MlpPolicy", venv, use_sde=True, policy_kwargs={"squash_output": True}, seed=0)
    module = sb3_inference_policy(model)
    assert module.squash
    obs = _obs(model)
    _assert_matches_predict(model, module, obs)

    vn = VecNormalize(Sb3VecEnv(make_env("cartpole_balance", num_envs=2, nthread=1)))
    vn.obs_rms.mean = np.linspace(-1, 1, 5)
    vn.obs_rms.var = np.linspace(0.5, 4, 5)
    model = PPO("MlpPolicy", vn, seed=0, device="cpu")
    module = sb3_inference_policy(model)
    obs = _obs(model, scale=8.0)
    _assert_matches_predict(model, module, obs, normalize=vn.normalize_obs)
    save_sb3(model, tmp_path / "m.zip")  # statistics travel in the zip
    again = sb3_inference_policy(load_sb3(tmp_path / "m.zip"))
    with torch.no_grad():
        torch.testing.assert_close(again(torch.from_numpy(obs)), module(torch.from_numpy(obs)))

    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        import onnxruntime as ort

        path = tmp_path / "policy.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(obs),),
                str(path),
                input_names=["obs"],
                output_names=["action"],
                dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = module(torch.from_numpy(obs[:3])).numpy()
        np.testing.assert_allclose(sess.run(None, {"obs": obs[:3]})[0], ref, atol=1e-5)


@pytest.mark.unit
def test_train_sb3_rejects_bad_arguments(tmp_path):
    env = make_env("cartpole_balance", num_envs=2, nthread=1)
    with pytest.raises(ValueError, match="algo"):
        train_sb3("td3", env, 100, tmp_path)
    with pytest.raises(ValueError, match="total_steps"):
        train_sb3("ppo", env, 0, tmp_path)
    with pytest.raises(ValueError, match="n_stepz"):
        train_sb3("ppo", env, 100, tmp_path, hyperparams={"n_stepz": 8})
    with pytest.raises(FileNotFoundError):
        load_sb3(tmp_path / "missing.zip")


@pytest.mark.slow
def test_ppo_learns_cartpole_balance(tmp_path):
    """Through the adapter, SB3 PPO must clearly beat a random policy (about 25 steps/episode),
    in training episodes and with the exported deterministic module (normalizer included)."""
    env = make_env("cartpole_balance", num_envs=16, nthread=1)
    hp = {"n_steps": 64, "batch_size": 512, "n_epochs": 5, "learning_rate": 1e-3}
    model = train_sb3(
        "ppo",
        env,
        40_000,
        tmp_path,
        seed=0,
        hyperparams=hp,
        normalize_obs=True,
        progress_every_s=30,
    )
    train_len = np.mean([e["l"] for e in model.ep_info_buffer])
    assert train_len > 200, f"mean training episode length {train_len:.0f}"

    policy = sb3_inference_policy(load_sb3(checkpoint_path(tmp_path, "ppo")))
    ev = make_env("cartpole_balance", num_envs=16, nthread=1, seed=123)
    obs = ev.reset()
    first_len = torch.full((16,), float(ev.max_episode_steps))
    ended = torch.zeros(16, dtype=torch.bool)
    with torch.no_grad():
        for t in range(1, ev.max_episode_steps + 1):
            obs, _, terminated, _, _ = ev.step(policy(obs))
            first_len[terminated & ~ended] = t
            ended |= terminated
    assert first_len.mean() > 200, f"deterministic episode length {first_len.mean():.0f}"
