"""The batched env contract of envs/base.py, checked on the mujoco backend."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rewardlab.envs import make_env, task_names
from rewardlab.envs.tasks import get_task

pytestmark = pytest.mark.unit


def _cfg(task: str, **changes):
    return dataclasses.replace(get_task(task).default_config(), **changes)


def test_shapes_and_dtypes():
    env = make_env("cartpole_balance", num_envs=7)
    obs = env.reset(seed=0)
    assert obs.shape == (7, env.obs_dim) and obs.dtype == torch.float32
    obs, rew, term, trunc, info = env.step(torch.zeros(7, env.action_dim))
    assert obs.shape == (7, env.obs_dim)
    assert rew.shape == (7,) and rew.dtype == torch.float32
    assert term.dtype == torch.bool and trunc.dtype == torch.bool
    assert info["final_obs"].shape == obs.shape
    assert set(env.state()) == set(env.state_spec())
    assert env.success().shape == (7,) and env.success().dtype == torch.bool


def test_truncation_resets_and_keeps_final_obs():
    env = make_env("cartpole_swingup", num_envs=3, cfg=_cfg("cartpole_swingup", episode_steps=4))
    env.reset(seed=1)
    for _ in range(3):
        _, _, term, trunc, info = env.step(torch.zeros(3, 1))
        assert not trunc.any() and "episode" not in info
    obs, _, term, trunc, info = env.step(torch.zeros(3, 1))
    assert trunc.all() and not term.any()
    ep = info["episode"]
    assert ep["length"].tolist() == [4, 4, 4]
    assert sorted(ep["env_ids"].tolist()) == [0, 1, 2]
    # The final observation is the hanging pole; the new one is a fresh reset (near hanging too),
    # so compare against the state: cos(angle) ~ -1 in both, but they are different tensors.
    assert not torch.equal(info["final_obs"], obs)
    assert torch.all(info["final_obs"][:, 1] < -0.9)
    # Episode counters restarted: 4 more steps truncate again, not 1.
    for _ in range(3):
        assert not env.step(torch.zeros(3, 1))[3].any()


def test_termination_is_not_truncation():
    env = make_env("cartpole_balance", num_envs=4)
    env.reset(seed=0)
    for _ in range(200):
        _, _, term, trunc, info = env.step(torch.ones(4, 1))  # push the cart hard: it falls
        assert not (term & trunc).any()
        if term.any():
            ep = info["episode"]
            assert not ep["success"].any()
            assert (ep["length"] < env.max_episode_steps).all()
            return
    pytest.fail("pushing the cart full right never terminated the episode")


def test_episode_return_is_sum_of_rewards_and_terms():
    env = make_env("cartpole_swingup", num_envs=2, cfg=_cfg("cartpole_swingup", episode_steps=10))
    env.reset(seed=3)
    total = torch.zeros(2)
    for _ in range(10):
        a = torch.full((2, 1), 0.3)
        _, rew, _, _, info = env.step(a)
        total += rew
    ep = info["episode"]
    torch.testing.assert_close(ep["return"], total)
    term_sum = sum(v for k, v in ep.items() if k.startswith("reward/"))
    torch.testing.assert_close(term_sum, total, rtol=1e-5, atol=1e-5)


def test_reward_matches_hand_computed_terms():
    env = make_env("cartpole_balance", num_envs=1)
    env.reset(seed=0)
    a = torch.tensor([[0.5]])
    _, rew, _, _, info = env.step(a)
    s = env.state()
    expected = (
        0.5 * (1 + math.cos(s["pole_angle"].item()))
        + 0.1 * math.exp(-(s["cart_pos"].item() ** 2))
        - 0.01 * 0.25
        - 0.005 * s["pole_angvel"].item() ** 2
    )
    assert rew.item() == pytest.approx(expected, rel=1e-5)


def test_bad_actions_give_clear_errors():
    env = make_env("cartpole_balance", num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=r"shape \[2, 1\].*got \[2, 3\]"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN or Inf.*worlds \\[1\\]"):
        env.step(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(RuntimeError, match="reset"):
        make_env("cartpole_balance", num_envs=1).step(torch.zeros(1, 1))


def test_unknown_task_and_backend():
    with pytest.raises(KeyError, match="unknown task 'nope'.*cartpole_balance"):
        make_env("nope")
    with pytest.raises(ValueError, match="unknown backend 'bullet'"):
        make_env("cartpole_balance", backend="bullet")
    with pytest.raises(ValueError, match="episode_steps"):
        make_env("cartpole_balance", cfg=_cfg("cartpole_balance", episode_steps=0))


def test_actions_are_clipped():
    env_a = make_env("cartpole_swingup", num_envs=1, seed=5)
    env_b = make_env("cartpole_swingup", num_envs=1, seed=5)
    env_a.reset(seed=5), env_b.reset(seed=5)
    for _ in range(5):
        oa = env_a.step(torch.full((1, 1), 7.0))[0]
        ob = env_b.step(torch.full((1, 1), 1.0))[0]
    torch.testing.assert_close(oa, ob, rtol=0, atol=0)


def test_seeding_and_thread_count_reproducible():
    def rollout(seed: int, nthread: int) -> torch.Tensor:
        env = make_env("cartpole_swingup", num_envs=16, seed=seed, nthread=nthread)
        obs = [env.reset(seed=seed)]
        g = torch.Generator().manual_seed(0)
        for _ in range(50):
            obs.append(env.step(torch.rand(16, 1, generator=g) * 2 - 1)[0])
        return torch.stack(obs)

    a = rollout(1, nthread=1)
    assert torch.equal(a, rollout(1, nthread=2))
    assert not torch.equal(a, rollout(2, nthread=1))


@pytest.mark.parametrize("task", ["cartpole_swingup", "arm_reach"])
def test_snapshot_resumes_bit_identically(task):
    env = make_env(task, num_envs=8, seed=3)
    env.reset()
    act = torch.full((8, env.action_dim), 0.3)
    for _ in range(10):
        env.step(act)
    snap = env.get_state_dict()
    steps = env.max_episode_steps + 20  # crosses a time limit: resets draw from the generator
    a = [env.step(-act)[0] for _ in range(steps)]
    env2 = make_env(task, num_envs=8, seed=99)
    env2.reset()
    env2.load_state_dict(snap)
    b = [env2.step(-act)[0] for _ in range(steps)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="different num_envs"):
        make_env(task, num_envs=4).load_state_dict(snap)


@pytest.mark.parametrize("task", task_names())
def test_describe_names_every_state_entry(task):
    env = make_env(task, num_envs=2)
    text = env.describe()
    for name, field in env.state_spec().items():
        assert f"{name}:" in text
        assert field.unit in text


def test_reset_forgets_the_last_action():
    env = make_env("cartpole_balance", num_envs=2)
    env.reset(seed=0)
    env.step(torch.ones(2, 1))
    env.reset(seed=0)
    assert torch.equal(env.state()["last_action"], torch.zeros(2, 1))


@pytest.mark.smoke
def test_render_then_train_in_one_process(tmp_path):
    """Rendering with Mesa's EGL before torch loads triton must not crash (envs/rendering.py)."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from rewardlab.envs import make_env\n"
        "env = make_env('cartpole_balance', num_envs=1); env.reset()\n"
        "frame = env.render([0])\n"
        "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())\n"
        "assert frame.shape == (1, 240, 320, 3) and frame.float().std() > 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_env_usable_inside_and_outside_inference_mode():
    env = make_env("cartpole_balance", num_envs=2, cfg=_cfg("cartpole_balance", episode_steps=3))
    with torch.inference_mode():
        env.reset(seed=0)
        for _ in range(4):  # an episode ends: episode sums are created and reset
            env.step(torch.zeros(2, 1))
    env.reset(seed=0)
    obs = env.step(torch.zeros(2, 1))[0]
    assert not obs.is_inference() and not obs.requires_grad


def test_last_and_prev_action_semantics_do_not_depend_on_resets():
    """After step t: last_action = a_t, prev_action = a_{t-1}; a finished world restarts at 0."""
    env = make_env("cartpole_swingup", num_envs=2, cfg=_cfg("cartpole_swingup", episode_steps=3))
    env.reset(seed=0)
    a1, a2, a3 = (torch.tensor([[0.1], [0.2]]) * k for k in (1, 2, 3))
    env.step(a1)
    s = env.state()
    torch.testing.assert_close(s["last_action"], a1)
    torch.testing.assert_close(s["prev_action"], torch.zeros(2, 1))
    env.step(a2)
    s = env.state()
    torch.testing.assert_close(s["last_action"], a2)
    torch.testing.assert_close(s["prev_action"], a1)
    _, _, _, trunc, _ = env.step(a3)  # both worlds hit the time limit and reset
    assert trunc.all()
    s = env.state()
    assert torch.equal(s["last_action"], torch.zeros(2, 1))
    assert torch.equal(s["prev_action"], torch.zeros(2, 1))


def test_action_rate_term_sees_the_previous_action():
    from rewardlab.rewards import RewardTerm, action_rate_l2, compose

    env = make_env(
        "cartpole_swingup",
        num_envs=1,
        reward_fn=compose({"rate": RewardTerm(action_rate_l2, weight=-1.0)}),
    )
    env.reset(seed=0)
    r1 = env.step(torch.tensor([[0.5]]))[1]
    r2 = env.step(torch.tensor([[-0.25]]))[1]
    assert r1.item() == pytest.approx(-0.25)  # (0.5 - 0)^2
    assert r2.item() == pytest.approx(-0.5625)  # (-0.25 - 0.5)^2


def test_state_of_a_world_does_not_depend_on_other_worlds_resetting():
    """After a step, ``env.state()`` of every world that did not reset is the state that step's
    reward saw, also when other worlds reset (go1's contact timers and previous joint velocities
    move on in ``after_step``; a state recomputed after that would differ, and only on steps
    where some world reset)."""
    env = make_env("go1_velocity", num_envs=16, seed=0)
    seen: list[dict[str, torch.Tensor]] = []
    reward_fn = env.reward_fn

    def capture(state, action):
        seen.append({k: v.clone() for k, v in state.items()})
        return reward_fn(state, action)

    env.set_reward(capture)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(200):
        _, _, term, trunc, _ = env.step(torch.rand(16, env.action_dim, generator=gen) * 2 - 1)
        done = term | trunc
        state = env.state()
        if done.any() and not done.all():
            keep = ~done
            for k, v in state.items():
                assert torch.equal(v[keep], seen[-1][k][keep]), k
            checked += 1
    assert checked >= 3, "too few steps where some but not all worlds reset: weak test"


def test_env_wrapper_changes_what_it_overrides_and_forwards_the_rest():
    from rewardlab.envs import EnvWrapper

    class Doubled(EnvWrapper):  # the reward doubled, nothing else
        def step(self, actions):
            obs, reward, term, trunc, info = self.env.step(actions)
            return obs, 2.0 * reward, term, trunc, info

    inner, twin = make_env("cartpole_balance", num_envs=3), make_env("cartpole_balance", num_envs=3)
    env = Doubled(Doubled(inner))
    assert (env.num_envs, env.obs_dim, env.action_dim) == (3, inner.obs_dim, inner.action_dim)
    assert env.unwrapped is inner and env.task is inner.task  # attributes forwarded
    torch.testing.assert_close(env.reset(seed=1), twin.reset(seed=1))
    snapshot = env.get_state_dict()
    a = torch.full((3, 1), 0.5)
    _, reward, *_ = env.step(a)
    _, twin_reward, *_ = twin.step(a)
    torch.testing.assert_close(reward, 4.0 * twin_reward)
    torch.testing.assert_close(env.state()["cart_pos"], twin.state()["cart_pos"])
    assert torch.equal(env.success(), twin.success())
    assert env.describe() == twin.describe() and env.state_spec() == twin.state_spec()
    env.load_state_dict(snapshot)  # forwarded to the innermost env
    _, again, *_ = env.step(a)
    torch.testing.assert_close(again, reward)
    with pytest.raises(AttributeError):
        _ = env.no_such_attribute
    env.close()
    twin.close()
