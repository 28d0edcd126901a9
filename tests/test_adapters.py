"""Gymnasium and SB3 views of the batched env (envs/adapters), checked on every registered task."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

pytest.importorskip("stable_baselines3", reason="needs the sb3 extra (pip install -e '.[sb3]')")
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecNormalize

from rewardlab.core.reward import RewardTerm, action_rate_l2, compose
from rewardlab.envs import make_env, task_names
from rewardlab.envs.adapters.gymnasium import (
    GymnasiumEnv,
    gym_id,
    register_gymnasium_envs,
)
from rewardlab.envs.adapters.sb3 import Sb3VecEnv
from rewardlab.envs.tasks import get_task

TASKS = task_names()
# The only warning the checkers may raise: observations are honestly unbounded.
_INF_BOUNDS = r".*Box observation space (minimum|maximum) value is -?infinity"


def _cfg(task: str, **changes):
    return dataclasses.replace(get_task(task).default_config(), **changes)


@contextlib.contextmanager
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=_INF_BOUNDS)
        yield


# -- gymnasium view ------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("task", TASKS)
def test_gymnasium_check_env(task):
    """Gymnasium's full checker, through a registered id so that its determinism checks run."""
    register_gymnasium_envs()
    env = gymnasium.make(gym_id(task), render_mode="rgb_array")
    assert env.unwrapped.spec is not None and not env.unwrapped.spec.nondeterministic
    with _warnings_are_errors():
        gym_check_env(env.unwrapped)
    env.close()


@pytest.mark.smoke
@pytest.mark.parametrize("task", TASKS)
def test_sb3_check_env_on_gymnasium_view(task):
    env = GymnasiumEnv(task)
    with _warnings_are_errors():
        sb3_check_env(env, warn=True)
    env.close()


@pytest.mark.smoke
def test_gymnasium_check_env_with_last_action_reward():
    register_gymnasium_envs()
    reward = compose({"rate": RewardTerm(action_rate_l2, -1.0)})
    env = gymnasium.make(gym_id("cartpole_balance"), reward_fn=reward)
    with _warnings_are_errors():
        gym_check_env(env.unwrapped)


@pytest.mark.unit
def test_gym_ids_registered_for_every_task():
    ids = register_gymnasium_envs()
    assert gym_id("cartpole_balance") == "rewardlab/CartpoleBalance-v0"
    assert len(set(ids)) == len(TASKS)
    for task, env_id in zip(TASKS, ids, strict=True):
        spec = gymnasium.spec(env_id)
        assert spec.kwargs["task"] == task and spec.max_episode_steps is None
    assert register_gymnasium_envs() == ids  # idempotent


@pytest.mark.unit
def test_gymnasium_view_follows_the_batched_env_across_auto_reset():
    """Truncation returns final_obs; the next reset() returns the auto-reset observation."""
    task, cfg, seed = "cartpole_swingup", _cfg("cartpole_swingup", episode_steps=5), 7
    ref = make_env(task, num_envs=1, cfg=cfg)
    env = GymnasiumEnv(task, cfg=cfg)
    obs, info = env.reset(seed=seed)
    ref_obs = ref.reset(seed=seed)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape and info == {}
    np.testing.assert_array_equal(obs, ref_obs[0].numpy())
    rng = np.random.default_rng(0)
    for t in range(1, 6):
        a = rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(a)
        ref_obs, ref_rew, _, ref_trunc, ref_info = ref.step(torch.from_numpy(a)[None])
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert isinstance(info["success"], bool)
        assert reward == pytest.approx(float(ref_rew[0]))
        assert not terminated and truncated == (t == 5)
        np.testing.assert_array_equal(obs, ref_info["final_obs"][0].numpy())
    assert set(info) >= {"success"} | {f"reward/{k}" for k in ("upright", "centered")}
    obs, _ = env.reset()  # the episode the batched env already started
    np.testing.assert_array_equal(obs, ref_obs[0].numpy())
    obs_again, _ = env.reset()  # a real reset now: a new draw
    assert not np.array_equal(obs_again, obs)
    # A seed after an auto-reset reseeds for real.
    env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.reset(seed=seed)[0], ref.reset(seed=seed)[0].numpy())


@pytest.mark.unit
def test_gymnasium_view_terminates():
    env = GymnasiumEnv("cartpole_balance")
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(np.ones(1, np.float32))
        if terminated:
            break
    assert terminated and not truncated and info["success"] is False


@pytest.mark.unit
def test_gymnasium_view_render_and_errors():
    env = gymnasium.make(gym_id("cartpole_balance"), render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.std() > 0  # not a blank image
    assert env.metadata["render_fps"] == pytest.approx(1.0 / env.unwrapped.env.control_dt)
    raw = env.unwrapped
    with pytest.raises(ValueError, match="action must have"):
        raw.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="options"):
        raw.reset(options={"anything": 1})
    with pytest.raises(ValueError, match="num_envs"):
        GymnasiumEnv(make_env("cartpole_balance", num_envs=2))
    with pytest.raises(ValueError, match="num_envs"):
        GymnasiumEnv("cartpole_balance", num_envs=3)
    with pytest.raises(ValueError, match="render_mode"):
        GymnasiumEnv("cartpole_balance", render_mode="human")
    wrapped = GymnasiumEnv(make_env("cartpole_balance", num_envs=1))
    assert wrapped.reset(seed=1)[0].shape == (wrapped.env.obs_dim,)
    env.close()
    env.close()  # closing twice is fine


# -- SB3 VecEnv view ---------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("task", TASKS)
def test_vecenv_shapes_dtypes_and_nan_check(task):
    venv = Sb3VecEnv(make_env(task, num_envs=4, nthread=1))
    n, od, ad = 4, venv.observation_space.shape[0], venv.action_space.shape[0]
    assert venv.num_envs == n and venv.action_space.dtype == np.float32
    assert np.all(venv.action_space.low == -1) and np.all(venv.action_space.high == 1)
    checked = VecCheckNan(venv, raise_exception=True)
    obs = checked.reset()
    assert obs.shape == (n, od) and obs.dtype == np.float32
    venv.action_space.seed(0)
    for _ in range(20):
        actions = np.stack([venv.action_space.sample() for _ in range(n)])
        obs, rew, done, infos = checked.step(actions)
        assert obs.shape == (n, od) and obs.dtype == np.float32
        assert rew.shape == (n,) and rew.dtype == np.float32
        assert done.shape == (n,) and done.dtype == np.bool_
        assert isinstance(infos, list) and len(infos) == n
        assert all(venv.observation_space.contains(o) for o in obs)
        assert actions.shape == (n, ad)


def _reference_and_adapter(task, cfg, seed, n=4):
    ref = make_env(task, num_envs=n, cfg=cfg, nthread=1)
    venv = Sb3VecEnv(make_env(task, num_envs=n, cfg=cfg, nthread=1))
    venv.seed(seed)
    return ref, ref.reset(seed=seed), venv, venv.reset()


@pytest.mark.unit
def test_vecenv_time_limit_infos():
    task, cfg = "cartpole_swingup", _cfg("cartpole_swingup", episode_steps=5)
    ref, ref_obs, venv, obs = _reference_and_adapter(task, cfg, seed=3)
    np.testing.assert_array_equal(obs, ref_obs.numpy())
    rng = np.random.default_rng(1)
    returns = np.zeros(4)
    for t in range(1, 6):
        a = rng.uniform(-1, 1, size=(4, 1)).astype(np.float32)
        obs, rew, done, infos = venv.step(a)
        ref_obs, ref_rew, _, _, ref_info = ref.step(torch.from_numpy(a))
        returns += rew
        np.testing.assert_array_equal(obs, ref_obs.numpy())
        np.testing.assert_array_equal(rew, ref_rew.numpy())
        if t < 5:
            assert not done.any() and all(i == {} for i in infos)
    assert done.all()
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(
            info["terminal_observation"], ref_info["final_obs"][i].numpy()
        )
        assert info["terminal_observation"].dtype == np.float32
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["l"] == 5
        assert info["episode"]["r"] == pytest.approx(returns[i], rel=1e-5)
        assert isinstance(info["is_success"], bool)
        assert sum(v for k, v in info.items() if k.startswith("reward/")) == pytest.approx(
            returns[i], rel=1e-4, abs=1e-4
        )
    # The returned obs is the next episode's first, not the terminal one.
    assert not np.array_equal(obs, np.stack([i["terminal_observation"] for i in infos]))


@pytest.mark.unit
def test_vecenv_termination_is_not_truncation():
    venv = Sb3VecEnv(make_env("cartpole_balance", num_envs=4, nthread=1))
    venv.reset()
    seen = 0
    for _ in range(200):
        _, _, done, infos = venv.step(np.ones((4, 1), np.float32))
        for i in np.flatnonzero(done):
            assert infos[i]["TimeLimit.truncated"] is False
            assert infos[i]["is_success"] is False
            seen += 1
        if seen:
            break
    assert seen > 0


@pytest.mark.unit
def test_vecenv_seed_reproducibility():
    venv = Sb3VecEnv(make_env("cartpole_swingup", num_envs=4, nthread=1))
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 4, 1)).astype(np.float32)

    def rollout(seed):
        if seed is not None:
            assert venv.seed(seed) == [seed] * 4
        traj = [venv.reset()]
        traj += [venv.step(a)[0] for a in actions]
        return np.stack(traj)

    first = rollout(3)
    np.testing.assert_array_equal(rollout(3), first)
    assert not np.array_equal(rollout(4)[0], first[0])
    assert not np.array_equal(rollout(None)[0], rollout(None)[0])  # unseeded: the stream moves on


@pytest.mark.unit
def test_vecenv_attrs_methods_and_render():
    env = make_env("cartpole_balance", num_envs=4, nthread=1, render_size=(48, 64))
    venv = Sb3VecEnv(env)
    venv.reset()
    assert venv.get_attr("max_episode_steps") == [env.max_episode_steps] * 4
    assert venv.get_attr("render_mode", indices=[0, 2]) == ["rgb_array"] * 2
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    venv.set_attr("some_flag", 5)
    assert env.some_flag == 5
    with pytest.raises(ValueError, match="all worlds"):
        venv.set_attr("some_flag", 6, indices=[1])
    success = venv.env_method("success", indices=[1, 3])
    assert len(success) == 2 and success[0].shape == (4,)
    assert venv.env_is_wrapped(Monitor) == [True] * 4
    assert venv.env_is_wrapped(gymnasium.wrappers.TimeLimit) == [False] * 4
    frames = venv.get_images()
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    tiled = venv.render()
    assert tiled.shape == (96, 128, 3) and tiled.dtype == np.uint8
    with pytest.raises(RuntimeError, match="step_async"):
        venv.step_wait()
    venv.set_options({"x": 1})
    with pytest.raises(ValueError, match="options"):
        venv.reset()
    venv.close()


@pytest.mark.smoke
def test_vecenv_ppo_learn_smoke():
    """A tiny PPO run through VecNormalize: episode infos reach SB3's logger buffers."""
    venv = VecNormalize(Sb3VecEnv(make_env("cartpole_balance", num_envs=4, nthread=1)))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny MLP: intra-op threads only spin on a busy machine
    try:
        model.learn(total_timesteps=256)
    finally:
        torch.set_num_threads(threads)
    assert model.num_timesteps >= 256
    assert len(model.ep_info_buffer) > 0 and all(e["l"] > 0 for e in model.ep_info_buffer)
    assert len(model.ep_success_buffer) == len(model.ep_info_buffer)
