"""The reward loader: reward files of every style onto real envs, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewardlab.config import load_train_config
from rewardlab.envs import make_env
from rewardlab.pipeline import apply_reward
from rewardlab.rewards.loader import (
    RewardFileError,
    load_reward_file,
    load_reward_source,
)
from rewardlab.rewards.sandbox import RewardRuntimeError, SandboxFailure, SandboxLimits

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "rewards"
LIMITS = SandboxLimits(wall_seconds=30.0, cpu_seconds=20.0)


@pytest.fixture(scope="module")
def cartpole():
    env = make_env("cartpole_balance", num_envs=16, seed=0)
    yield env
    env.close()


def _native_reference(state, action):
    upright = (torch.cos(state["pole_angle"]) + 1.0) / 2.0
    centered = torch.exp(-(state["cart_pos"] ** 2))
    effort = -0.01 * (action**2).sum(-1)
    return upright * (0.5 + 0.5 * centered) + effort, upright, centered, effort


def test_native_reward_file_trains_the_env_reward(cartpole):
    fn = load_reward_file(FIXTURES / "cartpole_native.py", cartpole, limits=LIMITS)
    assert fn.style == "native" and fn.check.ok
    assert fn.check.components == ["upright", "centered", "effort"]
    assert set(fn.check.component_stats) == {"total", "upright", "centered", "effort"}
    cartpole.set_reward(fn)
    cartpole.reset(seed=1)
    action = torch.rand(16, 1) * 2 - 1
    _, reward, term, _, info = cartpole.step(action)
    state = cartpole.state()
    total, upright, centered, effort = _native_reference(state, action)
    alive = ~term  # finished worlds have been reset, their state is a fresh one
    assert torch.allclose(reward[alive], total[alive], atol=1e-5)
    assert set(info["log"]) == {"reward/upright", "reward/centered", "reward/effort"}


def test_eureka_file_loads_on_ant():
    env = make_env("ant_run", num_envs=8, seed=0)
    try:
        fn = load_reward_file(FIXTURES / "ant_eureka.py", env, limits=LIMITS)
        assert fn.style == "eureka" and fn.check.ok
        env.set_reward(fn)
        env.reset(seed=0)
        _, reward, _, _, info = env.step(torch.zeros(8, 8))
        assert reward.shape == (8,) and torch.isfinite(reward).all()
        assert "reward/forward_reward" in info["log"]
    finally:
        env.close()


def test_text2reward_file_loads_on_arm_reach():
    env = make_env("arm_reach", num_envs=8, seed=0)
    try:
        # the per-world loop takes tens of ms on 4096 worlds: give it room on a loaded machine
        limits = SandboxLimits(wall_seconds=60.0, max_ms_per_call=2000.0)
        fn = load_reward_file(FIXTURES / "arm_text2reward.py", env, limits=limits)
        assert fn.style == "text2reward" and fn.check.ok
        assert fn.check.components == ["reaching_reward", "bonus", "action_penalty"]
        env.reset(seed=0)
        state = env.state()
        total, comps = fn(state, torch.zeros(8, 3))
        assert torch.allclose(total, -state["distance"], atol=1e-5)  # nobody is within 5 cm
        assert torch.allclose(comps["reaching_reward"], -state["distance"], atol=1e-5)
    finally:
        env.close()


@pytest.mark.parametrize(
    "name, kind",
    [
        ("malicious_open.py", "forbidden"),
        ("malicious_escape.py", "forbidden"),
        ("malicious_torch_os.py", "forbidden"),
        ("malicious_network.py", "forbidden"),
        ("malicious_fork_bomb.py", "forbidden"),
        ("malicious_huge_alloc.py", "memory"),
    ],
)
def test_malicious_files_are_rejected_with_the_file_named(cartpole, name, kind):
    path = FIXTURES / name
    with pytest.raises(RewardFileError) as info:
        load_reward_file(path, cartpole, limits=LIMITS)
    assert info.value.error.kind == kind
    assert str(info.value).startswith(f"{path}:")
    assert f"({kind})" in str(info.value)


def test_infinite_loop_file_times_out_then_a_good_file_loads(cartpole):
    with pytest.raises(RewardFileError) as info:
        load_reward_file(FIXTURES / "malicious_infinite_loop.py", cartpole, limits=SandboxLimits(wall_seconds=2.0))  # fmt: skip
    assert info.value.error.kind == "timeout"
    assert load_reward_file(FIXTURES / "cartpole_native.py", cartpole, limits=LIMITS).check.ok


def test_missing_file_is_named(cartpole, tmp_path):
    missing = tmp_path / "nope.py"
    with pytest.raises(RewardFileError, match=f"{missing}: reward rejected .*no such file"):
        load_reward_file(missing, cartpole)


def test_traceback_names_the_file_and_line(cartpole, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(
        "import torch\n\n\ndef compute_reward(state, action):\n"
        "    x = state['cart_pos'].reshape(5, -1)\n    return x, {}\n"
    )
    with pytest.raises(RewardFileError) as info:
        load_reward_file(path, cartpole, limits=LIMITS)
    msg = str(info.value)
    assert msg.startswith(f"{path}:5: reward rejected (exception)")
    assert "line 5, in compute_reward" in msg and "reshape(5, -1)" in msg


def test_source_with_state_spec_only_uses_synthetic_states(cartpole):
    spec = cartpole.state_spec()
    code = (FIXTURES / "cartpole_native.py").read_text()
    fn = load_reward_source(code, spec, limits=LIMITS)
    assert fn.check.ok and fn.style == "native"
    # a NaN in recorded or synthetic states is caught before training
    bad = code.replace('torch.exp(-(state["cart_pos"] ** 2))', 'torch.sqrt(state["cart_pos"])')
    assert bad != code
    with pytest.raises(SandboxFailure) as info:
        load_reward_source(bad, spec, limits=LIMITS)
    assert info.value.error.kind == "nan"


def test_runtime_failures_during_training_are_structured(cartpole):
    code = (
        "import torch\n\ndef compute_reward(state, action):\n"
        "    v = state['cart_vel']\n    return 1.0 / (v.abs() < 1e3).float() - 1.0 + torch.log(v.abs() + 1.0), {}\n"  # fmt: skip
    )
    fn = load_reward_source(code, cartpole, limits=LIMITS)
    state = cartpole.state()
    state["cart_vel"] = state["cart_vel"].clone()
    state["cart_vel"][0] = 1e4  # a state the trial run never saw
    with pytest.raises(RewardRuntimeError) as info:
        fn(state, torch.zeros(16, 1))
    assert info.value.error.kind == "nan"


def test_unknown_style_and_spec_types(cartpole):
    with pytest.raises(ValueError, match="unknown reward style 'isaac'"):
        load_reward_source("x", cartpole, style="isaac")
    with pytest.raises(TypeError, match="expected an env"):
        load_reward_source("x", 3)


def test_cli_apply_reward_loads_code_reward():
    path = FIXTURES / "cartpole_native.py"
    cfg = load_train_config(["task=cartpole_balance", f"reward=code:{path}", "num_envs=8"])
    env = make_env("cartpole_balance", num_envs=8)
    try:
        out = apply_reward(cfg, env)
        assert out.reward_fn.style == "native"
        assert out.reward_fn.filename == str(path)
    finally:
        env.close()


def test_record_states_shapes_and_cache(tmp_path, monkeypatch):
    from rewardlab.rewards import sandbox

    rec = sandbox.record_states("arm_reach", num_envs=4, steps=3, seed=2, cache_dir=tmp_path)
    env = make_env("arm_reach", num_envs=1)
    spec = env.state_spec()
    env.close()
    assert set(rec) == set(spec) | {"action"}
    for name, field in spec.items():
        assert rec[name].shape == (12, *field.shape), name
    assert rec["action"].shape == (12, 3) and rec["action"].abs().max() <= 1
    assert (tmp_path / "states_arm_reach_4x3_seed2.pt").exists()

    def no_env(*args, **kwargs):
        raise AssertionError("the cached states should have been used")

    monkeypatch.setattr("rewardlab.envs.make_env", no_env)
    again = sandbox.record_states("arm_reach", num_envs=4, steps=3, seed=2, cache_dir=tmp_path)
    assert all(torch.equal(again[k], rec[k]) for k in rec)


def test_text2reward_staged_file_gets_inferred_components():
    env = make_env("arm_reach", num_envs=8, seed=0)
    try:
        limits = SandboxLimits(wall_seconds=60.0, max_ms_per_call=2000.0)
        fn = load_reward_file(FIXTURES / "arm_text2reward_stages.py", env, limits=limits)
        assert fn.check.components == ["reach_reward", "precision_bonus", "effort_penalty"]
        env.set_reward(fn)
        env.reset(seed=0)
        action = torch.full((8, 3), 0.5)
        _, reward, term, _, info = env.step(action)
        state = env.state()
        d = state["distance"].double()
        reach = 0.6 * (1.0 - torch.tanh(5.0 * d))
        bonus = 0.3 * (d < 0.05).double()
        effort = torch.full_like(d, 0.1 * -0.75)
        assert torch.allclose(reward.double(), reach + bonus + effort, atol=1e-5)
        assert set(info["log"]) == {f"reward/{c}" for c in fn.check.components}
        assert info["log"]["reward/effort_penalty"] == pytest.approx(-0.075, abs=1e-6)
    finally:
        env.close()


def test_reward_files_are_read_bounded_with_one_line_errors(cartpole, tmp_path):
    for path, fragment in (
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "not a regular file"),
    ):
        with pytest.raises(RewardFileError) as info:
            load_reward_file(path, cartpole)
        assert str(info.value).startswith(f"{path}: reward rejected (no_code)")
        assert fragment in str(info.value) and "\n" not in str(info.value)
    big = tmp_path / "big.py"
    big.write_text("# " + "x" * (300 * 1024) + "\n")
    with pytest.raises(RewardFileError, match="larger than 262,144 bytes"):
        load_reward_file(big, cartpole)
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# caf\xe9\n")
    with pytest.raises(RewardFileError, match="not UTF-8"):
        load_reward_file(latin, cartpole)


def test_a_loaded_reward_runs_in_the_sandbox_and_errors_name_file_and_line(cartpole, tmp_path):
    from rewardlab.rewards.remote import RemoteReward

    path = tmp_path / "late.py"
    path.write_text(
        "import torch\nCALLS = [0]\n\ndef compute_reward(state, action):\n"
        "    CALLS[0] += 1\n    if CALLS[0] > 40:\n        raise ValueError('late failure')\n"
        "    return state['cart_pos'] * 1.0, {}\n"
    )
    fn = load_reward_file(path, cartpole, limits=LIMITS)
    assert isinstance(fn, RemoteReward) and fn.check.ok
    state, action = cartpole.state(), torch.zeros(16, 1)
    with pytest.raises(RewardRuntimeError) as info:
        for _ in range(60):
            fn(state, action)
    err = info.value.error
    assert err.kind == "exception" and err.file == str(path) and err.line == 7
    assert str(err).startswith(f"{path}:7: exception: ValueError: late failure")


def test_sandbox_none_compiles_in_process_with_a_warning(cartpole, capsys):
    code = (FIXTURES / "cartpole_native.py").read_text()
    fn = load_reward_source(code, cartpole, limits=LIMITS, sandbox="none")
    assert fn.sandbox == "none" and fn.check.ok
    assert "WARNING: sandbox=none" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sandbox: got 'maybe'"):
        load_reward_source(code, cartpole, sandbox="maybe")
