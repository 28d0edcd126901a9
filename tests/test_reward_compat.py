"""Compatibility layers: Eureka / IsaacGymEnvs rewards and Text2Reward rewards on our tasks."""

from __future__ import annotations

import math
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from rewardlab.envs import get_task, make_env, task_names
from rewardlab.envs.tasks import shipped_task_names
from rewardlab.envs.tasks.isaacgym_names import body_axis
from rewardlab.envs.tasks.knowledge import Binding, Columns, Constant, Unavailable, declared
from rewardlab.rewards import compat
from rewardlab.rewards.sandbox import SandboxFailure, StateDict

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "rewards"
FOREIGN = Path(__file__).parent / "fixtures" / "foreign"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "rewards.md"


def _stepped_state(task: str, n: int = 8, steps: int = 5, seed: int = 0):
    env = make_env(task, num_envs=n, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    env.reset(seed=seed)
    for _ in range(steps):
        action = torch.rand(n, env.action_dim, generator=gen) * 2 - 1
        env.step(action)
    state = env.state()
    dt = env.control_dt
    env.close()
    return state, action, dt


@pytest.mark.parametrize("task", task_names())
def test_every_mapped_name_reads_real_state_entries(task):
    """Every registered task's declared names (on the task: envs/tasks/knowledge.py) compute
    from real state entries (a KeyError if a map is stale)."""
    state, action, dt = _stepped_state(task, steps=2)
    assert set(compat.task_eureka_names(task)) >= {"actions", "dt", "progress_buf", "max_episode_length"}  # fmt: skip
    n = action.shape[0]
    consts = compat.env_constants(task)
    names = compat.eureka_names(task, list(state))
    constant_names = {k for k, v in names.items() if isinstance(v, Constant)}
    assert constant_names <= set(consts), f"{task}: constants that do not compute: {constant_names - set(consts)}"  # fmt: skip
    ctx = StateDict({**compat._materialize(consts), **state})
    for name, binding in names.items():
        if isinstance(binding, Unavailable):
            assert len(binding.reason.split()) >= 4, f"{task}.{name}: say why"
            continue
        value = compat.bind(name, names, ctx, action, dt)  # KeyError if the map is stale
        if name == "dt":
            assert value == pytest.approx(dt)
        elif isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == n:
            finite = torch.isfinite(value)
            if isinstance(binding, Columns):  # NaN exactly in the unavailable columns
                for a, b, col in binding.spans():
                    assert bool(finite[:, a:b].all()) == (col.fn is not None), (name, col.label)
            else:
                assert finite.all(), name
        else:  # a constant or a per-model tensor (joint limits): a number or [k] values
            assert isinstance(value, int | float | torch.Tensor), (name, type(value))
            assert isinstance(binding, Constant) or name in ("num_envs", "dt") or not isinstance(value, torch.Tensor), name  # fmt: skip
    attrs = compat.text2reward_attrs(task, list(state))
    for path, entry in (declared(get_task(task), "text2reward_attrs") or {}).items():
        if isinstance(entry, str):
            assert entry in state, f"{task}: self.{path} -> {entry!r} is not a state entry"
        elif isinstance(entry, Binding):
            value = entry.fn(ctx, action, dt)
            assert isinstance(value, float) or value.shape[0] == n and torch.isfinite(value).all(), path  # fmt: skip
        else:
            assert isinstance(entry, Unavailable) and path.rstrip("()") in attrs, path
    obs = compat.text2reward_obs(task)
    if obs is not None:
        assert obs.fn(ctx, action, dt).shape == (n, obs.width)


def test_quaternion_helpers_match_mujoco():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    v = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    ours = compat._quat_rotate(q, v)
    for i in range(16):
        ref = np.zeros(3)
        mujoco.mju_rotVecQuat(ref, v[i].numpy(), q[i].numpy())
        assert np.allclose(ours[i].numpy(), ref, atol=1e-12)


def test_ant_root_states_layout_and_world_angular_velocity():
    state, action, dt = _stepped_state("ant_run", steps=6)
    rs = compat.task_eureka_names("ant_run")["root_states"].fn(state, action, dt)
    assert rs.shape == (8, 13)
    assert torch.equal(rs[:, 0:3], state["torso_pos"])
    assert torch.equal(rs[:, 3:7], state["torso_quat"][:, [1, 2, 3, 0]])  # IsaacGym (x, y, z, w)
    assert torch.equal(rs[:, 7:10], state["torso_linvel"])
    # world angular velocity: same magnitude as the body-frame one, and rotating it back gives it
    w = rs[:, 10:13]
    assert torch.allclose(w.norm(dim=-1), state["torso_angvel"].norm(dim=-1), atol=1e-5)
    q_inv = state["torso_quat"] * torch.tensor([1.0, -1.0, -1.0, -1.0])
    assert torch.allclose(compat._quat_rotate(q_inv, w), state["torso_angvel"], atol=1e-5)


def test_prev_potentials_estimate_matches_the_previous_step():
    env = make_env("ant_run", num_envs=32, seed=3)
    gen = torch.Generator().manual_seed(3)
    env.reset(seed=3)
    b = compat.task_eureka_names("ant_run")
    dt = env.control_dt
    errors = []
    prev = None
    for _ in range(12):
        action = torch.rand(32, env.action_dim, generator=gen) * 2 - 1
        _, _, term, trunc, _ = env.step(action)
        s = env.state()
        pot = b["potentials"].fn(s, action, dt)
        if prev is not None:
            ok = ~(term | trunc)
            errors.append((b["prev_potentials"].fn(s, action, dt) - prev)[ok])
        prev = pot
    env.close()
    err = torch.cat(errors).abs()
    # the estimate differs from the true previous potential by (end - mean speed in the step)
    assert float(err.median()) < 0.2, err.median()


def test_eureka_fixture_runs_with_bound_arguments():
    code = (FIXTURES / "ant_eureka.py").read_text()
    assert compat.detect_style(code) == "eureka"
    state, action, dt = _stepped_state("ant_run")
    names = list(state)
    assert compat.check_eureka(code, "ant_run", names) is None
    fn = compat.build_eureka(code, "ant_run", names, dt, filename="ant_eureka.py")
    assert fn.arguments == ["root_states", "actions", "up_vec", "potentials", "prev_potentials", "dt"]  # fmt: skip
    total, comps = fn(StateDict(state), action)
    # hand-computed from our state names
    fwd = torch.exp(0.5 * state["torso_linvel"][:, 0]) - 1.0
    assert torch.allclose(comps["forward_reward"], fwd, atol=1e-6)
    assert torch.allclose(comps["upright_reward"], state["up_z"], atol=1e-5)
    assert torch.allclose(comps["energy_penalty"], -0.05 * (action**2).sum(-1))
    expected = fwd + 0.1 * comps["progress_reward"] + 0.5 * comps["upright_reward"] + comps["energy_penalty"]  # fmt: skip
    assert torch.allclose(total, expected, atol=1e-5)


def test_eureka_torchscript_decorator_is_stripped_not_required():
    code = "@torch.jit.script\ndef compute_reward(pole_angle: torch.Tensor, actions: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:\n    r = torch.cos(pole_angle)\n    return r, {'r': r}\n"  # fmt: skip
    state, action, dt = _stepped_state("cartpole_balance")
    fn = compat.build_eureka(code, "cartpole_balance", list(state), dt, filename="<t>")
    total, _ = fn(StateDict(state), action)
    assert torch.allclose(total, torch.cos(state["pole_angle"]))


def test_eureka_unknown_argument_lists_available_names():
    code = "def compute_reward(root_states: torch.Tensor, vec_sensor_tensor: torch.Tensor):\n    return root_states[:, 0], {}\n"  # fmt: skip
    err = compat.check_eureka(code, "ant_run", ["torso_pos", "torso_quat", "torso_linvel"])
    assert err is not None and err.kind == "unknown_state"
    assert "'vec_sensor_tensor'" in err.message and "root_states" in err.message


def test_eureka_forbidden_code_is_still_rejected():
    code = "@torch.jit.script\ndef compute_reward(actions: torch.Tensor):\n    torch.os.system('x')\n    return actions[:, 0], {}\n"  # fmt: skip
    err = compat.check_eureka(code, "ant_run", ["torso_pos"])
    assert err is not None and err.kind == "forbidden"
    other = code.replace("@torch.jit.script", "@torch.compile")
    assert compat.check_eureka(other, "ant_run", ["torso_pos"]).kind == "forbidden"


def test_text2reward_loop_adapter_matches_per_world_numpy():
    code = (FIXTURES / "arm_text2reward.py").read_text()
    assert compat.detect_style(code) == "text2reward"
    state, action, _ = _stepped_state("arm_reach")
    fn = compat.build_text2reward(code, "arm_reach", list(state), filename="t2r.py")
    total, comps = fn(StateDict(state), action)
    assert total.shape == (8,) and total.dtype == torch.float32
    assert fn.mode["batched"] is False  # np.linalg.norm without axis: one world at a time
    # `return reaching_reward + bonus + action_penalty`: the terms become the components
    assert list(comps) == ["reaching_reward", "bonus", "action_penalty"]
    assert torch.allclose(sum(comps.values()), total, atol=1e-6)
    assert torch.allclose(comps["reaching_reward"], -state["distance"], atol=1e-5)
    ee, goal, act = (state[k].double().numpy() for k in ("ee_pos", "target_pos", "last_action"))
    for i in range(8):
        d = np.linalg.norm(ee[i] - goal[i])
        ref = -d + (1.0 if d < 0.05 else 0.0) - 0.01 * np.linalg.norm(action[i].double().numpy())
        assert total[i].item() == pytest.approx(ref, rel=1e-5, abs=1e-6)
    assert act.shape == (8, 3)


def test_text2reward_vectorizable_code_runs_batched():
    code = (FIXTURES / "arm_text2reward_vectorizable.py").read_text()
    state, action, _ = _stepped_state("arm_reach")
    fn = compat.build_text2reward(code, "arm_reach", list(state), filename="t2r.py")
    total, comps = fn(StateDict(state), action)
    assert fn.mode["batched"] is True and comps == {}  # `-d + 0.1 * np.exp(...)`: no names
    d = state["distance"].double()
    assert torch.allclose(total.double(), -d + 0.1 * torch.exp(-d / 0.05), atol=1e-5)


def test_text2reward_unknown_attribute_is_named():
    code = "import numpy as np\ndef compute_dense_reward(self, action):\n    return -np.linalg.norm(self.obj1.position - self.goal_position)\n"  # fmt: skip
    err = compat.check_text2reward(code, "arm_reach", ["ee_pos", "target_pos"])
    assert err is not None and err.kind == "unknown_state"
    assert "self.obj1.position" in err.message and "self.goal_position" in err.message
    # private attributes of the proxy are out of reach
    code = "def compute_dense_reward(self, action):\n    return self._data\n"
    assert compat.check_text2reward(code, "arm_reach", ["ee_pos"]).kind in (
        "forbidden",
        "unknown_state",
    )


def test_text2reward_build_rejects_bad_code():
    with pytest.raises(SandboxFailure) as info:
        compat.build_text2reward("def f(x):\n    return 1\n", "arm_reach", ["ee_pos"], filename="x")
    assert info.value.error.kind == "signature"


@pytest.mark.parametrize(
    "code, style",
    [
        ("def compute_reward(state, action):\n    return state['x'], {}\n", "native"),
        ("def compute_reward(s, a):\n    return s['x'], {}\n", "native"),
        ("def compute_reward(obs, act):\n    return obs['x'], {}\n", "native"),
        ("def compute_reward(root_states, actions):\n    return root_states[:, 0], {}\n", "eureka"),
        (
            "def compute_reward(pole_angle, actions, dt: float):\n    return pole_angle, {}\n",
            "eureka",
        ),  # fmt: skip
        ("def compute_dense_reward(self, action):\n    return 0.0\n", "text2reward"),
        ("def compute_reward(self, action):\n    return 0.0\n", "text2reward"),
        ("def compute_dense_reward(self, action, obs):\n    return 0.0\n", "text2reward"),
        (
            "def compute_ant_reward(obs_buf, reset_buf):\n    return obs_buf[:, 0], reset_buf\n",
            "eureka",
        ),  # fmt: skip
        (
            "class EurekaReward():\n    def compute_reward(self):\n        return self.env.dof_pos[:, 0], {}\n",
            "dreureka",
        ),  # fmt: skip
        ("def _reward_up(self):\n    return self.env.dof_pos[:, 0]\n", "dreureka"),
        (
            "def compute_reward(self):\n    env = self.env\n    return env.dof_pos[:, 0], {}\n",
            "dreureka",
        ),  # fmt: skip
    ],
)
def test_style_detection(code, style):
    assert compat.detect_style(code) == style


def test_docs_tables_are_generated_from_the_maps():
    text = DOCS.read_text(encoding="utf-8")
    block = text.split(compat.DOCS_BEGIN, 1)[1].split(compat.DOCS_END, 1)[0]
    assert block.strip() == compat.mapping_markdown().strip(), (
        "docs/rewards.md is stale: run python -m rewardlab.rewards.compat --write docs/rewards.md"
    )
    for task in shipped_task_names():
        assert f"### {task}" in block


@pytest.mark.parametrize(
    "body, expected",
    [
        ("    a = 1.0\n    b = 2.0\n    return a - 0.5 * b\n", {"a": 1.0, "b": -1.0}),
        ("    a = 1.0\n    b = 2.0\n    r = -a + b * 3\n    return r\n", {"a": -1.0, "b": 6.0}),
        (
            "    a = 1.0\n    b = 2.0\n    r = a + b\n    a = 5.0\n    return r\n",
            None,
        ),  # a reassigned
        ("    a = 1.0\n    if a > 0:\n        return a\n    return a + a\n", None),  # two returns
        ("    a = 1.0\n    return a + abs(a)\n", None),  # a term that is not a name
        ("    a = 1.0\n    return a\n", None),
        (
            "    w_a = 0.5\n    a = 2.0\n    b = 1.0\n    return w_a * a + b\n",
            {"a": 1.0, "b": 1.0},
        ),  # fmt: skip
        # Text2Reward's usual accumulator, with a branch that does not run and one that does
        (
            "    reward = 0.0\n    a = 1.0\n    reward += 0.5 * a\n    if a > 2:\n        reward += 10.0\n"
            "    else:\n        reward -= a\n    reward += 3.0 * a\n    return reward\n",
            {"a": 0.5 - 1.0 + 3.0, "term_line6": 0.0},
        ),
        (
            "    reward = 0.0\n    d = 2.0\n    reward += -d\n    if d < 5:\n        reward += 1.0\n"
            "        return reward\n    reward -= 0.1 * d\n    return reward\n",
            {"d": -2.0, "term_line6": 1.0},
        ),
        (
            "    reward = 0.0\n    reward += 1.0\n    reward = max(reward, 0.0)\n    return reward\n",
            None,
        ),  # fmt: skip
        (
            "    reward = 1.0\n    reward += 1.0\n    reward += 2.0\n    return reward\n",
            None,
        ),  # fmt: skip
    ],
)
def test_text2reward_component_inference(body, expected):
    code = f"def compute_dense_reward(self, action):\n{body}"
    state, action, _ = _stepped_state("arm_reach", n=2, steps=1)
    fn = compat.build_text2reward(code, "arm_reach", list(state), filename="t.py")
    total, comps = fn(StateDict(state), action)
    if expected is None:
        assert comps == {}
    else:
        assert {k: v[0].item() for k, v in comps.items()} == expected
        assert torch.allclose(sum(comps.values()), total)


def test_eureka_code_can_call_isaacgym_helpers():
    # Eureka's env modules import isaacgymenvs.utils.torch_jit_utils with *, so its rewards call
    # quat_rotate_inverse, normalize_angle, ... unqualified; (x, y, z, w) quaternions
    code = (
        "@torch.jit.script\n"
        "def compute_reward(root_states: torch.Tensor, heading_vec: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:\n"  # fmt: skip
        "    angvel_local = quat_rotate_inverse(root_states[:, 3:7], root_states[:, 10:13])\n"
        "    roll, pitch, yaw = get_euler_xyz(root_states[:, 3:7])\n"
        "    spin = -torch.abs(angvel_local[:, 2])\n"
        "    heading = normalize(heading_vec)[:, 0]\n"
        "    return spin + heading, {'spin': spin, 'heading': heading, 'yaw': normalize_angle(yaw)}\n"
    )
    state, action, dt = _stepped_state("ant_run", steps=8)
    fn = compat.build_eureka(code, "ant_run", list(state), dt, filename="<t>")
    _, comps = fn(StateDict(state), action)
    assert torch.allclose(comps["spin"], -state["torso_angvel"][:, 2].abs(), atol=1e-5)
    q = state["torso_quat"]  # (w, x, y, z)
    w, x, y, z = q.unbind(-1)
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    assert torch.allclose(comps["yaw"], yaw, atol=1e-4)
    assert torch.allclose(comps["heading"], body_axis(q, 0)[:, 0], atol=1e-5)


def test_isaacgym_quaternion_helpers_match_scipy():
    from scipy.spatial.transform import Rotation

    gen = torch.Generator().manual_seed(4)
    q = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)  # (x, y, z, w), scipy's order
    v = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    r = Rotation.from_quat(q.numpy())
    assert np.allclose(compat.quat_rotate(q, v).numpy(), r.apply(v.numpy()), atol=1e-12)
    assert np.allclose(compat.quat_rotate_inverse(q, v).numpy(), r.inv().apply(v.numpy()), atol=1e-12)  # fmt: skip
    q2 = torch.roll(q, 1, 0)
    ref = (r * Rotation.from_quat(q2.numpy())).as_quat()
    ours = compat.quat_mul(q, q2).numpy()
    assert np.allclose(np.abs((ours * ref).sum(-1)), 1.0, atol=1e-12)  # same rotation (q ~ -q)
    roll, pitch, yaw = compat.get_euler_xyz(q)
    ref_euler = r.as_euler("xyz") % (2 * np.pi)
    assert np.allclose(torch.stack([roll, pitch, yaw], -1).numpy(), ref_euler, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# imports the code does not use, and every unknown name at once


def test_an_unused_disallowed_import_is_ignored_with_a_note_and_a_used_one_refused():
    from rewardlab.rewards.static_check import check_source, import_notes

    names = ["cart_pos", "pole_angle"]
    unused = (
        "import numpy as np\nfrom scipy.spatial import distance\n\n"
        "def compute_reward(state, action):\n    distance = state['cart_pos'] * 2.0\n"
        "    return distance, {}\n"
    )  # the local `distance` shadows the import: it is never read
    assert check_source(unused, names) is None
    notes = import_notes(unused)
    assert [(n.line, n.name) for n in notes] == [(2, "scipy.spatial.distance")]
    assert "remove this import" in str(notes[0])
    used = unused.replace("distance = state['cart_pos'] * 2.0", "d = distance.euclidean([0], [1])").replace("return distance", "return state['cart_pos']")  # fmt: skip
    err = check_source(used, names)
    assert err is not None and err.kind == "forbidden" and err.line == 2
    assert "scipy.spatial" in err.message and "used on line 5" in err.message
    # the unused import is removed before the code runs (scipy is not importable there)
    state, action, _ = _stepped_state("cartpole_balance")
    from rewardlab.rewards.guard import compile_reward

    fn = compile_reward(unused, list(state), filename="<t>")
    total, _ = fn(StateDict(state), action)
    assert torch.allclose(total, state["cart_pos"] * 2.0)


def test_isaacgym_helper_imports_are_satisfied_by_predefined_helpers():
    from rewardlab.rewards.static_check import PREDEFINED_HELPERS, import_notes

    assert set(compat.ISAACGYM_UTILS) == set(PREDEFINED_HELPERS)
    code = (
        "from isaacgym import gymtorch\nfrom isaacgymenvs.utils.torch_jit_utils import *\n"
        "from isaacgym.torch_utils import quat_rotate_inverse, normalize\n\n"
        "def compute_reward(root_states, heading_vec):\n"
        "    v = quat_rotate_inverse(root_states[:, 3:7], root_states[:, 7:10])\n"
        "    return v[:, 0] + normalize(heading_vec)[:, 0], {}\n"
    )
    assert compat.check_eureka(code, "ant_run", []) is None
    assert len(import_notes(code)) == 4
    state, action, dt = _stepped_state("ant_run")
    fn = compat.build_eureka(code, "ant_run", list(state), dt, filename="<t>")
    total, _ = fn(StateDict(state), action)
    assert total.shape == (8,) and torch.isfinite(total).all()


def test_every_unknown_name_is_reported_at_once_with_its_line():
    from rewardlab.rewards.static_check import check_source

    code = (
        "def compute_reward(state, action):\n"
        "    a = state['pole_angel']\n"
        "    b = state['cart_pos'] + state['zzz']\n"
        "    c = state['pole_angel'] * 2\n"
        "    return a + b + c, {}\n"
    )
    err = check_source(code, ["cart_pos", "pole_angle", "pole_angvel"])
    assert err.kind == "unknown_state" and err.line == 2
    assert "2 unknown names" in err.message
    assert "line 2: state entry 'pole_angel' does not exist (did you mean" in err.message
    assert "line 3: state entry 'zzz' does not exist" in err.message
    # Eureka arguments: all of them, each on its own line
    eureka = "def compute_reward(root_states,\n                   vec_sensor_tensorr,\n                   rigid_body_pos):\n    return root_states[:, 0], {}\n"  # fmt: skip
    err = compat.check_eureka(eureka, "ant_run", ["torso_pos"])
    assert err.kind == "unknown_state" and err.line == 2
    assert "line 2: argument 'vec_sensor_tensorr'" in err.message
    assert "line 3: argument 'rigid_body_pos'" in err.message


def test_text2reward_unknown_attributes_all_at_once_with_lines_and_real_suggestions_only():
    code = (
        "import numpy as np\n"
        "def compute_dense_reward(self, action):\n"
        "    gripper = self.tcp.pose.p\n"
        "    cube = self.cubeA.pose.p\n"
        "    goal = self.goal_positon\n"
        "    grasped = self.agent.check_grasp(self.cubeA, max_angle=30)\n"
        "    return -np.linalg.norm(gripper - cube) - np.linalg.norm(goal - cube) + float(grasped)\n"
    )
    err = compat.check_text2reward(code, "arm_reach", ["ee_pos", "target_pos", "distance"])
    assert err.kind == "unknown_state" and err.line == 4
    msg = err.message
    assert "line 4: attribute 'self.cubeA.pose.p' does not exist;" in msg  # no suggestion
    assert "line 5: attribute 'self.goal_positon' does not exist (did you mean 'self.goal_position'?)" in msg  # fmt: skip
    assert "line 6: attribute 'self.agent.check_grasp'" in msg
    assert "self.distance'?" not in msg  # the shared `self.` prefix is no reason to suggest


def test_suggestions_compare_the_name_not_the_shared_prefix():
    from rewardlab.rewards.static_check import suggest

    known = ["self.distance", "self.tcp.pose.p", "self.goal_position", "self.robot.ee_position"]
    assert suggest("self.cubeA", known, "self.") is None
    assert suggest("self.cubeA.pose.p", known, "self.") is None
    assert suggest("self.robot.ee_positon", known, "self.") == "self.robot.ee_position"
    assert suggest("self.goal_pos", known, "self.") == "self.goal_position"
    assert suggest("dof_force", ["dof_force_tensor", "dof_pos"]) == "dof_force_tensor"


def test_more_isaacgym_helpers_match_scipy():
    from scipy.spatial.transform import Rotation

    gen = torch.Generator().manual_seed(5)
    q = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    q2 = torch.roll(q, 3, 0)
    v = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    r, r2 = Rotation.from_quat(q.numpy()), Rotation.from_quat(q2.numpy())
    assert np.allclose(compat.quat_apply(q, v).numpy(), r.apply(v.numpy()), atol=1e-12)
    angle = torch.rand(16, generator=gen, dtype=torch.float64) * 3
    qa = compat.quat_from_angle_axis(angle, v)
    ref = Rotation.from_rotvec((v / v.norm(dim=-1, keepdim=True) * angle[:, None]).numpy())
    assert np.allclose(compat.quat_apply(qa, v).numpy(), ref.apply(v.numpy()), atol=1e-9)
    diff = (r * r2.inv()).magnitude()
    assert np.allclose(compat.quat_diff_rad(q, q2).numpy(), diff, atol=1e-6)
    assert np.allclose(compat.quat_axis(q, 2).numpy(), r.as_matrix()[:, :, 2], atol=1e-12)
    t1, t2 = torch.randn(16, 3, generator=gen, dtype=torch.float64), v
    qc, tc = compat.tf_combine(q, t1, q2, t2)
    point = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    direct = compat.tf_apply(q, t1, compat.tf_apply(q2, t2, point))
    assert torch.allclose(compat.tf_apply(qc, tc, point), direct, atol=1e-9)
    qi, ti = compat.tf_inverse(q, t1)
    assert torch.allclose(compat.tf_apply(qi, ti, compat.tf_apply(q, t1, point)), point, atol=1e-9)
    x = torch.linspace(-7, 7, 29, dtype=torch.float64)
    assert torch.allclose(torch.cos(compat.wrap_to_pi(x)), torch.cos(x)) and compat.wrap_to_pi(x).abs().max() <= math.pi + 1e-12  # fmt: skip
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 2.0])
    y = torch.tensor([[0.5, 1.5]])
    assert torch.allclose(compat.unscale_transform(compat.scale_transform(y, lo, hi), lo, hi), y)


# ---------------------------------------------------------------------------------------------
# IsaacGymEnvs functions as written: their names, their buffers, their (reward, reset) returns


def test_isaacgymenvs_buffers_are_bound_from_the_episode_and_the_task_config():
    from rewardlab.envs.tasks.base import replace_config

    cfg = replace_config(get_task("cartpole_balance").default_config(), episode_steps=77)
    env = make_env("cartpole_balance", num_envs=4, seed=1, cfg=cfg)
    env.reset(seed=1)
    for _ in range(3):
        env.step(torch.zeros(4, 1))
    state, action = env.state(), torch.zeros(4, 1)
    consts = compat.env_constants("cartpole_balance", env)
    assert consts["max_episode_length"] == 77 and consts["reset_dist"] == pytest.approx(1.7)
    names = compat.eureka_names("cartpole_balance", list(state))
    ctx = StateDict({**compat._materialize(consts), **state})
    progress = compat.bind("progress_buf", names, ctx, action, env.control_dt)
    assert progress.dtype == torch.int64 and progress.tolist() == [3, 3, 3, 3]
    reset = compat.bind("reset_buf", names, ctx, action, env.control_dt)
    assert reset.dtype == torch.int64 and not reset.any()
    assert compat.bind("num_envs", names, ctx, action, env.control_dt) == 4
    env.close()


def test_isaacgymenvs_reward_under_its_own_name_returns_reward_and_reset_mapped_to_terminations():
    code = (FOREIGN / "isaacgymenvs_cartpole.py").read_text()
    assert compat.detect_style(code) == "eureka"
    state, action, dt = _stepped_state("cartpole_balance", n=16, steps=3)
    state = dict(state)
    # hand-made worlds: fallen, off the rail, at the time limit, fine
    state["pole_angle"] = state["pole_angle"].clone()
    state["pole_angle"][0] = 1.0
    state["cart_pos"] = state["cart_pos"].clone()
    state["cart_pos"][1] = 1.8
    state["episode_step"] = state["episode_step"].clone()
    state["episode_step"][2] = 499.0  # max_episode_length - 1: IsaacGymEnvs' time-out reset
    consts = compat.env_constants("cartpole_balance")
    assert compat.check_eureka(code, "cartpole_balance", list(state), consts) is None
    fn = compat.build_eureka(code, "cartpole_balance", list(state), dt, consts, filename="f.py")
    assert fn.entry == "compute_cartpole_reward"
    total, comps = fn(StateDict(state), action)
    assert list(comps) == ["signal/terminate"]
    angle, pos = state["pole_angle"].double(), state["cart_pos"].double()
    vel, avel = state["cart_vel"].double(), state["pole_angvel"].double()
    ref = torch.cos(angle) + 0.2 * (1 - torch.clamp(pos.abs() / 1.7, max=1.0)) - 0.01 * vel**2 - 0.005 * avel**2  # fmt: skip
    failed = (angle.abs() > math.pi / 4) | (pos.abs() > 1.7)
    ref = torch.where(failed, torch.full_like(ref, -1.0), ref)
    assert torch.allclose(total.double(), ref, atol=1e-5)
    # the reset of a failure terminates; the time-out reset does not (the env truncates itself)
    assert comps["signal/terminate"][:3].tolist() == [1.0, 1.0, 0.0]
    assert torch.equal(comps["signal/terminate"][3:] > 0, failed[3:])


def test_the_env_honours_a_reward_terminate_signal_and_records_signals():
    env = make_env("cartpole_balance", num_envs=3, seed=0)

    def reward(state, action):
        one = torch.ones(action.shape[0])
        stop = (state["episode_step"] >= 2).float() * torch.tensor([0.0, 1.0, 1.0])
        return one, {"one": one, "signal/terminate": stop, "signal/success": 0.5 * one}

    env.set_reward(reward)
    env.reset(seed=0)
    _, _, term, _, info = env.step(torch.zeros(3, 1))
    assert not term.any() and "episode" not in info
    _, _, term, trunc, info = env.step(torch.zeros(3, 1))
    assert term.tolist() == [False, True, True] and not trunc.any()
    ep = info["episode"]
    assert ep["env_ids"].tolist() == [1, 2] and ep["length"].tolist() == [2, 2]
    assert ep["signal/terminate"].tolist() == [1.0, 1.0] and ep["signal/success"].tolist() == [0.5, 0.5]  # fmt: skip
    assert list(info["log"]) == ["reward/one"]  # signals are not reward terms
    assert env.state()["episode_step"].tolist() == [2.0, 0.0, 0.0]
    env.close()


@pytest.mark.parametrize(
    "ret, expected",
    [
        ("return r, reset", {"signal/terminate": [1.0, 0.0]}),
        (
            "return r, reset, succ",
            {"signal/terminate": [1.0, 0.0], "signal/success": [0.0, 2.0]},
        ),  # fmt: skip
        (
            "return r, resets, goal_resets, progress_buf, successes, cons_successes",
            {"signal/terminate": [1.0, 0.0], "signal/success": [0.0, 2.0]},
        ),
        ("return r, {'a': r}", {"a": None}),
        ("return r", {}),
    ],
)
def test_return_shapes_map_to_the_reward_contract(ret, expected):
    code = (
        "def compute_hand_reward(progress_buf, reset_buf):\n"
        "    r = progress_buf.float()\n"
        "    reset = torch.tensor([1, 0])\n    resets = reset\n"
        "    goal_resets = torch.tensor([0, 1])\n"
        "    succ = torch.tensor([0.0, 2.0])\n    successes = succ\n"
        "    cons_successes = torch.tensor([5.0, 5.0])\n"
        f"    {ret}\n"
    )
    state, action, dt = _stepped_state("cartpole_balance", n=2, steps=1)
    consts = compat.env_constants("cartpole_balance")
    fn = compat.build_eureka(code, "cartpole_balance", list(state), dt, consts, filename="f.py")
    total, comps = fn(StateDict(state), action)
    assert total.tolist() == [1.0, 1.0] and set(comps) == set(expected)
    for k, v in expected.items():
        if v is not None:
            assert comps[k].tolist() == v, k


def test_reward_function_names():
    assert compat.detect_style("def compute_ant_reward(obs_buf, actions):\n    return obs_buf[:, 0]\n") == "eureka"  # fmt: skip
    two = "def compute_a_reward(actions):\n    return actions[:, 0]\ndef compute_b_reward(actions):\n    return actions[:, 0]\n"  # fmt: skip
    err = compat.check_eureka(two, "cartpole_balance", ["cart_pos"])
    assert err.kind == "signature" and "compute_a_reward, compute_b_reward" in err.message
    err = compat.check_eureka("def helper(actions):\n    return actions\n", "cartpole_balance", [])  # fmt: skip
    assert err.kind == "signature" and "compute_<task>_reward" in err.message and "helper" in err.message  # fmt: skip


# ---------------------------------------------------------------------------------------------
# per-task foreign names: IsaacGymEnvs' obs_buf, model constants, DrEureka's legged_gym names


def _ctx(task: str, state, env=None):
    consts = compat.env_constants(task, env)
    return StateDict({**compat._materialize(consts), **state}), compat.eureka_names(task, list(state))  # fmt: skip


def test_model_constants_come_from_the_model():
    from rewardlab.envs.robots import ANT, ARM3, HUMANOID

    arm = compat.env_constants("arm_reach")
    assert arm["dof_limits_lower"] == pytest.approx([lo for lo, _ in ARM3.joint_limits])
    assert np.allclose(arm["dof_pos_limits"], ARM3.joint_limits)
    hum = compat.env_constants("humanoid_stand")
    assert hum["motor_efforts"] == pytest.approx(list(HUMANOID.gear))
    assert hum["max_motor_effort"] == pytest.approx(max(HUMANOID.gear))
    assert hum["termination_height"] == pytest.approx(1.0 - (1.475 - 1.285))
    ant = compat.env_constants("ant_run")
    assert ant["dof_limits_upper"] == pytest.approx([hi for _, hi in ANT.joint_limits])
    assert ant["termination_height"] == pytest.approx(0.2) and ant["death_cost"] == -2.0


def test_ant_obs_buf_in_isaacgymenvs_layout():
    state, action, dt = _stepped_state("ant_run", steps=6)
    ctx, names = _ctx("ant_run", state)
    obs = compat.bind("obs_buf", names, ctx, action, dt)
    assert obs.shape == (8, 60)
    q = state["torso_quat"].double()
    assert torch.allclose(obs[:, 0], state["torso_pos"][:, 2])
    q_inv = q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    vel_loc = compat._quat_rotate(q_inv, state["torso_linvel"].double())
    assert torch.allclose(obs[:, 1:4].double(), vel_loc, atol=1e-5)
    assert torch.allclose(obs[:, 4:7], state["torso_angvel"])
    assert torch.allclose(obs[:, 10], state["up_z"], atol=1e-5)
    lo, hi = ctx["dof_limits_lower"], ctx["dof_limits_upper"]
    assert torch.allclose(obs[:, 12:20], (2 * state["joint_pos"] - hi - lo) / (hi - lo), atol=1e-5)
    assert torch.allclose(obs[:, 20:28], 0.2 * state["joint_vel"])
    assert torch.isnan(obs[:, 28:52]).all() and torch.equal(obs[:, 52:60], action)
    # reading the force-sensor columns by constant index is refused, naming them
    code = "def compute_ant_reward(obs_buf, actions):\n    return obs_buf[:, 0] - obs_buf[:, 30:34].sum(-1), obs_buf[:, 0] < 0\n"  # fmt: skip
    err = compat.check_eureka(code, "ant_run", list(state))
    assert err.kind == "unknown_state" and "obs_buf[:, 30:34]" in err.message
    assert "28:52 force sensors" in err.message and "no force-torque sensors" in err.message


def test_isaacgymenvs_ant_file_loads_in_the_sandbox_and_matches_a_hand_computation():
    from rewardlab.rewards.loader import load_reward_file

    env = make_env("ant_run", num_envs=16, seed=2)
    env.reset(seed=2)
    gen = torch.Generator().manual_seed(2)
    for _ in range(8):
        action = torch.rand(16, env.action_dim, generator=gen) * 2 - 1
        env.step(action)
    state = env.state()
    fn = load_reward_file(FOREIGN / "isaacgymenvs_ant.py", env)
    try:
        assert fn.style == "eureka" and fn.check.components == ["signal/terminate"]
        assert len(fn.notes) == 4  # gymtorch, gymapi, torch_jit_utils *, VecTask
        total, comps = fn(state, action)
    finally:
        fn.close()
    ctx, names = _ctx("ant_run", state, env)
    obs = compat.bind("obs_buf", names, ctx, action, env.control_dt).double()
    pot = compat.bind("potentials", names, ctx, action, env.control_dt).double()
    prev = compat.bind("prev_potentials", names, ctx, action, env.control_dt).double()
    a = action.double()
    ref = (
        (pot - prev)
        + 0.5
        + 0.1 * (obs[:, 10] > 0.9).double()
        + 0.5 * torch.clamp(obs[:, 11] / 0.9, max=1.0)
        - 0.005 * (a * a).sum(-1)
        - 0.05 * (a * obs[:, 20:28]).abs().sum(-1)
        - 0.1 * (obs[:, 12:20].abs() > 0.98).double().sum(-1)
    )
    fallen = obs[:, 0] < 0.2
    ref = torch.where(fallen, torch.full_like(ref, -2.0), ref)
    assert torch.allclose(total.double(), ref, rtol=1e-4, atol=1e-3)
    assert torch.equal(comps["signal/terminate"] > 0, fallen)


def test_eureka_humanoid_file_loads_in_the_sandbox_with_its_components():
    from rewardlab.rewards.loader import load_reward_file

    env = make_env("humanoid_stand", num_envs=8, seed=4)
    env.reset(seed=4)
    action = torch.rand(8, env.action_dim, generator=torch.Generator().manual_seed(4)) * 2 - 1
    for _ in range(5):
        env.step(action)
    state = env.state()
    fn = load_reward_file(FOREIGN / "eureka_humanoid.py", env)
    try:
        total, comps = fn(state, action)
    finally:
        fn.close()
    assert list(comps) == ["height_reward", "upright_reward", "still_reward", "joint_speed_penalty", "action_penalty"]  # fmt: skip
    height = torch.exp(-(state["torso_pos"][:, 2] - 1.3).abs() / 0.25)
    assert torch.allclose(comps["height_reward"], height, atol=1e-5)
    assert torch.allclose(comps["upright_reward"], state["torso_upright"].clamp(min=0), atol=1e-5)
    assert torch.allclose(comps["still_reward"], torch.exp(-state["torso_linvel"][:, :2].norm(dim=-1)), atol=1e-5)  # fmt: skip
    assert torch.allclose(total, sum(c * w for c, w in zip(comps.values(), [1, 0.5, 0.5, 1, 1], strict=True)), atol=1e-5)  # fmt: skip


def test_legged_gym_names_on_the_torso_robots():
    state, action, dt = _stepped_state("humanoid_walk", steps=7)
    ctx, names = _ctx("humanoid_walk", state)
    grav = compat.bind("projected_gravity", names, ctx, action, dt)
    assert torch.allclose(grav, state["gravity_torso"], atol=1e-5)
    base_lin_vel = compat.bind("base_lin_vel", names, ctx, action, dt)
    assert torch.allclose(base_lin_vel.norm(dim=-1), state["torso_linvel"].norm(dim=-1), atol=1e-5)
    torques = compat.bind("torques", names, ctx, action, dt)
    from rewardlab.envs.robots import HUMANOID

    assert torch.allclose(torques, action * torch.tensor(HUMANOID.gear))
    err = compat.check_eureka("def compute_reward(commands, base_lin_vel):\n    return base_lin_vel[:, 0] - commands[:, 0], {}\n", "humanoid_walk", list(state))  # fmt: skip
    assert err.kind == "unknown_state" and "'commands' is not available: the task has no velocity commands" in err.message  # fmt: skip


# ---------------------------------------------------------------------------------------------
# DrEureka's reward class


def _dreureka_file_on_a_stepped_env(name: str, task: str, seed: int, steps: int):
    """``(env, state, action, total, components)``: the DrEureka file ``name`` loaded (in the
    sandbox) on ``task`` after ``steps`` random steps, called once; its style checked."""
    from rewardlab.rewards.loader import load_reward_file

    env = make_env(task, num_envs=8, seed=seed, nthread=1)
    env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        action = torch.rand(8, env.action_dim, generator=gen) * 2 - 1
        env.step(action)
    state = env.state()
    fn = load_reward_file(FOREIGN / name, env)
    try:
        assert fn.style == "dreureka"
        total, comps = fn(state, action)
    finally:
        fn.close()
    return env, state, action, total, comps


def test_dreureka_compute_reward_class_loads_in_the_sandbox_and_matches_a_hand_computation():
    env, state, action, total, comps = _dreureka_file_on_a_stepped_env("dreureka_ant.py", "ant_run", seed=6, steps=6)  # fmt: skip
    assert list(comps) == ["speed_reward", "flat_reward", "action_rate_penalty", "limit_penalty", "signal/success"]  # fmt: skip
    vx = state["torso_linvel"][:, 0]
    assert torch.allclose(comps["speed_reward"], torch.exp(-2.0 * (vx - 1.0).abs()), atol=1e-5)
    g = state["torso_quat"]
    w, x, y, z = g.unbind(-1)
    gx, gy = -2 * (x * z - w * y), -2 * (y * z + w * x)  # gravity (0, 0, -1) in the torso frame
    assert torch.allclose(comps["flat_reward"], torch.exp(-(gx**2 + gy**2)), atol=1e-5)
    rate = -0.05 * ((action - state["prev_action"]) ** 2).sum(-1)
    assert torch.allclose(comps["action_rate_penalty"], rate, atol=1e-5)
    assert torch.allclose(comps["signal/success"], torch.exp(-((1.0 - vx) ** 2) / 0.25), atol=1e-5)
    ref = comps["speed_reward"] + 0.5 * comps["flat_reward"] + comps["action_rate_penalty"] + comps["limit_penalty"]  # fmt: skip
    assert torch.allclose(total, ref, atol=1e-5)
    env.close()


def test_dreureka_reward_terms_are_summed_as_dreureka_sums_them():
    code = (FOREIGN / "dreureka_cartpole.py").read_text()
    state, action, dt = _stepped_state("cartpole_balance", steps=4)
    fn = compat.build_dreureka(code, "cartpole_balance", list(state), dt, compat.env_constants("cartpole_balance"), filename="d.py")  # fmt: skip
    total, comps = fn(StateDict(state), action)
    assert list(comps) == ["calm", "centered", "smooth_actions", "upright", "signal/success"]  # sorted, as dir()  # fmt: skip
    angle, pos = state["pole_angle"], state["cart_pos"]
    assert torch.allclose(comps["upright"], torch.exp(-4.0 * angle**2), atol=1e-6)
    assert torch.allclose(comps["centered"], 0.2 * torch.exp(-(pos**2)), atol=1e-6)
    calm = -0.01 * (state["cart_vel"] ** 2 + state["pole_angvel"] ** 2)
    assert torch.allclose(comps["calm"], calm, atol=1e-6)
    assert torch.allclose(total, sum(v for k, v in comps.items() if not k.startswith("signal/")), atol=1e-6)  # fmt: skip
    assert torch.equal(comps["signal/success"], (angle.abs() < 0.25).float())


def test_dreureka_go1_forward_reward_loads_in_the_sandbox_and_matches_a_hand_computation():
    """DrEureka's own setting: its Go1 "run forward at 2 m/s" reward, as a class of scaled
    `_reward_<term>` methods on legged_gym's names, loads unchanged on go1_velocity."""
    from rewardlab.envs.tasks import go1

    env, state, action, total, comps = _dreureka_file_on_a_stepped_env("dreureka_go1.py", "go1_velocity", seed=4, steps=8)  # fmt: skip
    terms = ["action_rate", "dof_limits", "flat_orientation", "forward_velocity", "height", "lateral_and_yaw", "torques"]  # fmt: skip
    assert list(comps) == [*terms, "signal/success"]  # sorted, as DrEureka's dir()
    vb, wb = state["base_lin_vel"], state["base_ang_vel"]
    assert torch.allclose(comps["forward_velocity"], torch.exp(-((vb[:, 0] - 2.0) ** 2) / 0.5), atol=1e-5)  # fmt: skip
    assert torch.allclose(comps["lateral_and_yaw"], -0.5 * (vb[:, 1] ** 2 + 0.5 * wb[:, 2] ** 2), atol=1e-5)  # fmt: skip
    assert torch.allclose(comps["height"], -2.0 * (state["base_pos"][:, 2] - 0.27) ** 2, atol=1e-5)
    rate = -0.01 * ((action - state["prev_action"]) ** 2).sum(-1)
    assert torch.allclose(comps["action_rate"], rate, atol=1e-5)
    assert torch.allclose(comps["torques"], -1e-4 * (state["joint_torque"] ** 2).sum(-1), atol=1e-5)
    lim = torch.as_tensor(np.array([env.model.jnt_range[env.model.joint(j).id] for j in go1.JOINTS]), dtype=torch.float32)  # fmt: skip
    q = state["joint_pos"]
    out = (lim[:, 0] - q).clamp(min=0) + (q - lim[:, 1]).clamp(min=0)
    assert torch.allclose(comps["dof_limits"], -out.sum(-1), atol=1e-5)
    vx_world = state["base_lin_vel_world"][:, 0]  # root_states[:, 7]: world-frame x velocity
    assert torch.allclose(comps["signal/success"], torch.exp(-((2.0 - vx_world) ** 2) / 0.25), atol=1e-5)  # fmt: skip
    assert torch.allclose(total, sum(comps[t] for t in terms), atol=1e-5)
    env.close()


def test_legged_gym_scales_times_dt_clipping_and_termination_after_it():
    code = (FOREIGN / "dreureka_humanoid.py").read_text()
    state, action, dt = _stepped_state("humanoid_stand", steps=5)
    consts = compat.env_constants("humanoid_stand")
    fn = compat.build_dreureka(code, "humanoid_stand", list(state), dt, consts, filename="d.py")
    total, comps = fn(StateDict(state), action)
    # zero scales (termination) are dropped; every term is scale * dt * value
    assert set(comps) == {"base_height", "orientation", "lin_vel_xy", "ang_vel_xy", "torques", "action_rate", "alive"}  # fmt: skip
    height = (state["torso_pos"][:, 2] - 1.28) ** 2
    assert torch.allclose(comps["base_height"], -4.0 * dt * height, atol=1e-6)
    assert torch.allclose(comps["alive"], torch.full_like(height, 2.0 * dt))
    assert torch.allclose(total, torch.clamp(sum(comps.values()), min=0.0), atol=1e-6)
    # without only_positive_rewards the sum is not clipped
    unclipped = code.replace("only_positive_rewards = True", "only_positive_rewards = False").replace('"alive": 2.0', '"alive": 0.01')  # fmt: skip
    fn = compat.build_dreureka(
        unclipped, "humanoid_stand", list(state), dt, consts, filename="d.py"
    )
    total, comps = fn(StateDict(state), action)
    assert torch.allclose(total, sum(comps.values()), atol=1e-6) and (total < 0).any()


def test_dreureka_snippets_and_errors():
    from rewardlab.rewards.loader import dedent_snippet

    # DrEureka's *_rewardonly.py: the compute_reward method as written (indented)
    snippet = "    def compute_reward(self):\n        env = self.env\n        r = torch.cos(env.dof_pos[:, 1])\n        return r, {'r': r}\n"  # fmt: skip
    code = dedent_snippet(snippet)
    assert compat.detect_style(code) == "dreureka"
    state, action, dt = _stepped_state("cartpole_balance", steps=2)
    fn = compat.build_dreureka(code, "cartpole_balance", list(state), dt, {}, filename="d.py")
    total, _ = fn(StateDict(state), action)
    assert torch.allclose(total, torch.cos(state["pole_angle"]))
    bad = (
        "class EurekaReward():\n    def __init__(self, env):\n        self.env = env\n"
        "    def compute_reward(self):\n        env = self.env\n"
        "        a = env.commands[:, 0] - env.base_lin_vel[:, 0]\n"
        "        b = env.cfg.rewards.tracking_sigma\n"
        "        return a * b + self.env.dof_poss[:, 0], {}\n"
    )
    err = compat.check_dreureka(bad, "ant_run", list(_stepped_state("ant_run", steps=1)[0]))
    assert err.kind == "unknown_state" and err.line == 6 and "3 unknown names" in err.message
    assert "'env.commands' is not available: the task has no velocity commands" in err.message
    assert "'env.cfg.rewards.tracking_sigma' does not exist" in err.message
    assert "'env.dof_poss' does not exist (did you mean 'env.dof_pos'?)" in err.message
    stateful = bad.replace("        b = env.cfg.rewards.tracking_sigma\n", "        self.env.last_contacts = a\n        b = 1.0\n")  # fmt: skip
    assert compat.check_dreureka(stateful, "ant_run", ["torso_pos"]).kind == "forbidden"


# ---------------------------------------------------------------------------------------------
# Text2Reward: ManiSkill (self, action) with its scipy import, MetaWorld (self, action, obs)


def _arm_batch(n: int = 16, seed: int = 8):
    env = make_env("arm_reach", num_envs=n, seed=seed)
    env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(10):
        action = torch.rand(n, env.action_dim, generator=gen) * 2 - 1
        env.step(action)
    return env, env.state(), action


def test_text2reward_maniskill_file_with_its_scipy_import_loads_in_the_sandbox():
    from rewardlab.rewards.loader import load_reward_file

    env, state, action = _arm_batch()
    fn = load_reward_file(FOREIGN / "text2reward_maniskill_arm_reach.py", env)
    try:
        assert fn.style == "text2reward" and [n.name for n in fn.notes] == ["scipy.spatial.distance"]  # fmt: skip
        total, comps = fn(state, action)
    finally:
        fn.close()
    ee, goal, qvel = (state[k].double().numpy() for k in ("ee_pos", "target_pos", "joint_vel"))
    a = np.clip(action.double().numpy(), -1, 1)
    for i in range(state["ee_pos"].shape[0]):
        d = np.linalg.norm(goal[i] - ee[i])
        ref = 1 - np.tanh(5 * d)
        if d < 0.05:
            ref += 1.0 - 0.1 * np.linalg.norm(qvel[i])
        ref -= 0.01 * (a[i] ** 2).sum()
        assert total[i].item() == pytest.approx(ref, rel=1e-5, abs=1e-5)
    assert torch.allclose(sum(comps.values()), total, atol=1e-5)
    env.close()


def test_text2reward_metaworld_signature_reads_obs_and_the_env():
    from rewardlab.rewards.loader import load_reward_file

    env, state, action = _arm_batch()
    fn = load_reward_file(FOREIGN / "text2reward_metaworld_arm_reach.py", env)
    try:
        total, _ = fn(state, action)
    finally:
        fn.close()
    d = state["distance"].double()
    ref = -d + 0.5 * (d < 0.05).double() - 0.01 * action.double().norm(dim=-1)
    assert torch.allclose(total.double(), ref, atol=1e-5)
    # MetaWorld's drawer code reads the object columns arm_reach does not have: named, with why
    drawer = (
        "def compute_dense_reward(self, action, obs) -> float:\n"
        "    dist_to_handle = np.linalg.norm(obs[:3] - obs[4:7])\n"
        "    goal_diff = np.linalg.norm(obs[4:7] - self.env._get_pos_goal())\n"
        "    gripper_penalty = 1.0 if obs[3] > -1 else 0.0\n"
        "    return -dist_to_handle - goal_diff - gripper_penalty\n"
    )
    err = compat.check_text2reward(drawer, "arm_reach", list(state))
    assert err.kind == "unknown_state" and err.line == 2
    assert "obs[4:7]' is not available: columns 4:7 object 1 position (arm_reach has no object" in err.message  # fmt: skip
    assert "obs[3]' is not available: columns 3:4 gripper distance (the task has no gripper)" in err.message  # fmt: skip
    general = drawer.replace("obs[:3]", "self.robot.ee_position").replace("obs[4:7]", "self.obj1.position").replace("obs[3]", "self.robot.gripper_openness")  # fmt: skip
    err = compat.check_text2reward(general, "arm_reach", list(state))
    assert "'self.obj1.position' is not available: arm_reach has no object" in err.message
    assert "'self.robot.gripper_openness' is not available: arm3 has no gripper" in err.message
    # a task without a MetaWorld observation says so
    err = compat.check_text2reward(drawer, "cartpole_balance", ["cart_pos"])
    assert "declares no MetaWorld observation" in err.message
    env.close()


def test_text2reward_ant_abstraction_matches_a_hand_computation():
    code = (FOREIGN / "text2reward_ant.py").read_text()
    state, action, dt = _stepped_state("ant_run", steps=6)
    fn = compat.build_text2reward(code, "ant_run", list(state), dt, {}, filename="t.py")
    total, comps = fn(StateDict(state), action)
    assert list(comps) == ["forward_reward", "healthy_reward", "spin_penalty", "control_cost"]
    q = state["torso_quat"]
    wz = compat._quat_rotate(q, state["torso_angvel"])[:, 2]
    z = state["torso_pos"][:, 2]
    healthy = ((z > 0.25) & (z < 1.0)).float()
    ref = state["torso_linvel"][:, 0] + healthy - 0.05 * wz.abs() - 0.05 * (action**2).sum(-1)
    assert torch.allclose(total, ref, atol=1e-5)


def test_text2reward_private_attributes_pass_only_when_declared():
    code = "def compute_dense_reward(self, action):\n    return -np.linalg.norm(self.tcp_center - self._target_pos)\n"  # fmt: skip
    assert compat.check_text2reward(code, "arm_reach", ["ee_pos", "target_pos"]) is None
    for bad in ("self._rl_data", "self._data", "self.__class__"):
        err = compat.check_text2reward(code.replace("self._target_pos", bad), "arm_reach", ["ee_pos", "target_pos"])  # fmt: skip
        assert err is not None and err.kind in ("unknown_state", "forbidden"), bad


# ---------------------------------------------------------------------------------------------
# every foreign file loads unchanged the way `rewardlab train reward=code:FILE` loads it

FOREIGN_FILES = {
    "isaacgymenvs_cartpole.py": "cartpole_balance",
    "isaacgymenvs_ant.py": "ant_run",
    "eureka_humanoid.py": "humanoid_stand",
    "eureka_arm_reach.py": "arm_reach",
    "dreureka_ant.py": "ant_run",
    "dreureka_cartpole.py": "cartpole_balance",
    "dreureka_humanoid.py": "humanoid_stand",
    "dreureka_go1.py": "go1_velocity",
    "text2reward_maniskill_arm_reach.py": "arm_reach",
    "text2reward_metaworld_arm_reach.py": "arm_reach",
    "text2reward_ant.py": "ant_run",
    "isaacgymenvs_franka_cabinet.py": "franka_open_drawer",
    "text2reward_maniskill_lift.py": "franka_lift",
    "eureka_shadow_hand.py": "shadow_hand_reorient",
}


def test_every_foreign_fixture_is_listed():
    assert {p.name for p in FOREIGN.glob("*.py")} == set(FOREIGN_FILES)


@pytest.mark.parametrize("name", sorted(FOREIGN_FILES))
def test_foreign_file_loads_unchanged_through_the_train_pipeline(name):
    from rewardlab.pipeline import make_train_env, train_config

    task = FOREIGN_FILES[name]
    cfg = train_config([f"task={task}", f"reward=code:{FOREIGN / name}", "num_envs=8"], None)
    env = make_train_env(cfg, num_envs=8, seed=0)
    try:
        env.reset(seed=0)
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            _, reward, _, _, info = env.step(torch.rand(8, env.action_dim, generator=gen) * 2 - 1)
            assert reward.shape == (8,) and torch.isfinite(reward).all()
        assert not any(k.startswith("reward/signal/") for k in info["log"])
    finally:
        if hasattr(env.reward_fn, "close"):
            env.reward_fn.close()
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["isaacgymenvs_cartpole.py", "dreureka_cartpole.py"])
def test_foreign_cartpole_rewards_train_to_the_tasks_success(name, tmp_path):
    """An IsaacGymEnvs and a DrEureka reward file, as written, train cartpole_balance to its own
    success through `rewardlab train reward=code:FILE` at the task's default budget (200k steps,
    ~20 s of training; measured with the IsaacGymEnvs file: 1.00 on seeds 1 and 2, training
    success 1.00 from ~140k steps; at 100k it was 0.00). In a subprocess: training in this process would patch
    torch.optim.Adam.step (torch's own profiling hook), which the hostile corpus checks."""
    import json
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "rewardlab.cli", "train", "task=cartpole_balance",
        f"reward=code:{FOREIGN / name}", "total_steps=200000", "seed=1", f"run_dir={run_dir}",
        "eval.video=false",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: import of" in done.stderr  # the IsaacGym / DrEureka imports are notes
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["success_rate"] >= 0.8, result
