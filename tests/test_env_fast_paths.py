"""The per-step fast paths of the simulator envs give exactly what the plain formulas give.

Each test computes the quantity both ways in the same process (no stored hashes): the batched
code (one gather, one stacked rotation, one matrix of episode sums, ...) against the
component-by-component reference it replaced, compared with ``torch.equal`` (bit for bit).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.mujoco_backend import MujocoEnv
from rewardlab.envs.tasks import authoring as au
from rewardlab.envs.tasks import get_task

pytestmark = pytest.mark.unit


def _quat_mul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_quat_mul_is_the_component_formula_bit_for_bit(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(257, 4, generator=g, dtype=dtype)
    b = torch.randn(257, 4, generator=g, dtype=dtype)
    a[:5, 1:3] = 0.0  # yaw-only rotations (FreeBodyPose): signed zeros must come out the same
    b[3:8, 0] = -0.0
    assert torch.equal(au.quat_mul(a, b), _quat_mul_reference(a, b))
    assert torch.equal(au.quat_mul(a[0], b), _quat_mul_reference(a[0], b))  # broadcasting
    assert torch.equal(au.quat_mul(a, b[0]), _quat_mul_reference(a, b[0]))
    z = au.quat_mul(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype), torch.zeros(4, dtype=dtype))
    assert torch.equal(z.signbit(), _quat_mul_reference(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype), torch.zeros(4, dtype=dtype)).signbit())  # fmt: skip


def _stepped(task: str, n: int = 16, steps: int = 40):
    env = make_env(task, num_envs=n, seed=1, nthread=1)
    env.reset(seed=1)
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):  # random actions: falls and resets included
        env.step(torch.rand(n, env.action_dim, generator=g) * 2 - 1)
    return env


def test_contact_groups_read_what_their_contacts_read() -> None:
    env = _stepped("go1_velocity")
    task, sim = env.task, env.sim
    feet = list(task._feet)
    for contacts in (feet, [feet[2], feet[0], task._base], [*task._thighs.contacts, feet[1]]):
        group = au.ContactGroup(contacts)
        assert torch.equal(group.value(sim), torch.stack([c.value(sim) for c in contacts], -1))
    adjacent = au.ContactGroup(feet)
    assert isinstance(adjacent._cols, slice)  # adjacent sensors: a plain slice
    force = au.BoundContact(au.Contact("f", geom1="x", data="force"), feet[0].adr)
    mixed = au.ContactGroup([feet[0], force])
    assert mixed._cols is None  # not all "found": read one by one
    assert torch.equal(mixed.value(sim), torch.stack([feet[0].value(sim), force.value(sim)], -1))
    assert bool(task._thighs.value(sim).any()) or bool(adjacent.value(sim).any())  # not all 0


@pytest.mark.parametrize("task_name", ["go1_velocity", "g1_velocity"])
def test_tracking_state_is_the_reference_formulas(task_name: str) -> None:
    env = _stepped(task_name)
    task, sim = env.task, env.sim
    got = task.tracking_state(sim)
    q, v = sim.qpos, sim.qvel
    quat, lin_w, ang_b = q[:, 3:7], v[:, 0:3], v[:, 3:6]
    down = torch.tensor([0.0, 0.0, -1.0], dtype=q.dtype).expand_as(lin_w)
    lin_b = au.quat_rotate_inverse(quat, lin_w)
    contact = torch.stack([c.value(sim) for c in task._feet], -1)
    air = task._buffers["air"]
    cmd = task._buffers["command"]
    lin_err = torch.linalg.vector_norm(cmd[:, :2] - lin_b[:, :2], dim=-1)
    ref = {
        "base_lin_vel": lin_b.float(),
        "base_ang_vel_world": au.quat_rotate(quat, ang_b).float(),
        "projected_gravity": au.quat_rotate_inverse(quat, down).float(),
        "joint_pos": q[:, task._qpos_idx].float(),
        "joint_vel": v[:, task._qvel_idx].float(),
        "joint_torque": sim.actuator_force[:, task._act_idx].float(),
        "foot_pos": sim.site_xpos[:, task._feet_site].float(),
        "foot_contact": contact.float(),
        "first_contact": ((contact > 0.5) & (air > 0)).float(),
        "lin_vel_error": lin_err.float(),
    }
    for k, want in ref.items():
        assert got[k].shape == want.shape and torch.equal(got[k], want), k
    assert got["projected_gravity"][:, 2].max() < 0.0 or bool(env.state()["base_contact"].any())


def _to_ctrl_reference(m: au.BoundActionMap, ctrl: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # fmt: skip
    dt = ctrl.dtype
    out = ctrl.clone()
    a = action[:, m._cols].to(dt)
    cur = ctrl[:, m.ids]
    scale = m.scale.to(dtype=dt)
    new = torch.where(m.relative, cur + scale * a, m.default.to(dtype=dt)[m.ids] + scale * a)
    for col, open_, closed, binary, threshold in m._grip:
        g = a[:, col]
        frac = (g > threshold).to(dt) if binary else (g + 1.0) / 2.0
        new[:, col] = open_ + frac * (closed - open_)
    out[:, m.ids] = torch.maximum(torch.minimum(new, m.hi.to(dtype=dt)[m.ids]), m.lo.to(dtype=dt)[m.ids])  # fmt: skip
    if len(m.held):
        out[:, m.held] = m.hold.to(dtype=dt)[m.held]
    return out


@pytest.mark.parametrize("which", ["go1", "mixed"])
def test_action_maps_write_the_reference_controls(which: str) -> None:
    env = make_env("go1_velocity", num_envs=8, seed=0, nthread=1)
    m = env.task.action_map  # every actuator in order, absolute: the whole-row path
    if which == "mixed":  # relative and absolute subsets out of order, a gripper, held servos
        names = [env.model.actuator(i).name for i in range(env.model.nu)]
        m = au.ActionMap(
            (
                au.JointTargets(tuple(names[5:1:-1]), scale=0.3, relative=True),
                au.JointTargets((names[8], names[6]), scale=(0.5, 0.2)),
                au.Gripper(names[10], 0.2, -0.4, binary=True),
            ),
            hold={names[0]: 0.1},
        ).bind(env.model)
    g = torch.Generator().manual_seed(3)
    ctrl = torch.randn(8, m.nu, generator=g, dtype=torch.float64)
    for _ in range(3):
        action = torch.rand(8, m.action_dim, generator=g) * 2.4 - 1.2
        want = _to_ctrl_reference(m, ctrl, action)
        got = m.to_ctrl(ctrl, action)
        assert torch.equal(got, want)
        assert got.data_ptr() != ctrl.data_ptr()  # a new tensor, ctrl untouched
        ctrl = want
    assert m._constants(ctrl.device, ctrl.dtype)["all"] == (which == "go1")
    env.close()


def test_episode_sums_follow_rewards_whose_terms_change_and_snapshots() -> None:
    """The episode return and term sums (rows of one matrix) against plain accumulation, under
    a reward whose terms appear, go missing, change order and dtype, across time-limit resets
    and a snapshot."""
    n, steps = 4, 40
    cfg = dataclasses.replace(get_task("cartpole_swingup").default_config(), episode_steps=7)
    plan = [("a",), ("a",), ("a", "b"), ("a", "b"), ("b", "a"), ("a",), ("a", "b", "c64")]
    calls: list[dict[str, torch.Tensor]] = []

    def reward(state: dict[str, torch.Tensor], action: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        names = plan[len(calls)] if len(calls) < len(plan) else ("a", "b", "c64")
        base = state["cart_pos"].abs() + 0.1
        terms = {k: base * (j + 1) for j, k in enumerate(names)}
        if "c64" in terms:  # a float64 term: added one by one, outside the fast path
            terms["c64"] = terms["c64"].double() / 3.0
        calls.append(terms)
        return torch.stack([x.float() for x in terms.values()]).sum(0), terms

    def make() -> MujocoEnv:
        env = make_env("cartpole_swingup", num_envs=n, seed=0, cfg=cfg)
        env.set_reward(reward)
        env.reset(seed=0)
        return env

    env = make()
    ret, sums = torch.zeros(n), {}
    act = torch.full((n, 1), 0.7)
    ended = 0
    for i in range(steps):
        if i == 23:  # a snapshot, and a fresh env that continues from it
            snap = env.get_state_dict()
            env = make()
            env.load_state_dict(snap)
        _, rew, term, trunc, info = env.step(act if i % 2 else -act)
        ret += rew
        for k, v in calls[-1].items():
            sums.setdefault(k, torch.zeros(n)).add_(v)  # float32 += value, as term by term
        done = term | trunc
        if done.any():
            ep, ids = info["episode"], done.nonzero().squeeze(-1)
            assert torch.equal(ep["return"], ret[ids])
            for k, acc in sums.items():
                assert torch.equal(ep[f"reward/{k}"], acc[ids]), k
                acc[ids] = 0.0
            ret[ids] = 0.0
            ended += 1
        assert torch.equal(env._ep_return, ret)
        assert list(env._ep_terms) == list(sums)
        for k, acc in sums.items():
            assert torch.equal(env._ep_terms[k], acc), (i, k)
    assert ended >= 5 and list(sums) == ["a", "b", "c64"]
    assert env._ep_sums is not None  # the matrix was gathered again after the snapshot
    for j, acc in enumerate(env._ep_terms.values(), 1):
        assert acc.data_ptr() == env._ep_sums[j].data_ptr()  # its rows are the sums
