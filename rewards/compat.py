"""Rewards written for other frameworks: Eureka / IsaacGymEnvs and Text2Reward.

**Eureka / IsaacGymEnvs style.** Eureka's LLM writes::

    @torch.jit.script
    def compute_reward(root_states: torch.Tensor, actions: torch.Tensor, dt: float
                       ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        velocity = root_states[:, 7:10]
        ...
        return total, {"forward": forward}

and Eureka calls it with the env attributes of the same names (``self.root_states``, ...). Here
each argument is bound BY NAME through the task's own ``eureka_names`` (declared on the task,
:mod:`rewardlab.envs.tasks.knowledge`; see :func:`eureka_names`): every native state
entry under its own name, plus IsaacGymEnvs names (``root_states``, ``dof_pos``, ``up_vec``,
``potentials``, ``actions``, ``dt``, ...) computed from the state. The ``@torch.jit.script``
decorator is accepted and removed: the function runs eagerly (TorchScript needs the source file
and rejects much of what eager runs; on CPU eager is as fast for these few tensor ops -- see
``benchmarks/results/sandbox_overhead.md``). Its type comments are ignored.

**Text2Reward style.** Text2Reward's LLM writes a single-world numpy function::

    def compute_dense_reward(self, action) -> float:
        distance = np.linalg.norm(self.robot.ee_position - self.goal_position)
        return -distance

reading attributes of ``self``. The task's ``text2reward_attrs`` map its attribute paths to
state entries (every state entry is also ``self.<name>``). The adapter first calls the function
once on the whole batch (attributes are ``[N, ...]`` arrays); if the result has shape ``[N]`` and
agrees with per-world calls on a few worlds it keeps calling it batched, otherwise it loops over
the worlds (correct for any code, e.g. ``np.linalg.norm`` without ``axis``, but slow:
tens of microseconds per world). When the function ends in ``return`` of a sum of named terms
(``return reach + 0.5 * bonus - penalty``, or through a variable assigned that sum), the terms
become the components (:func:`infer_components`); otherwise components are empty.

What this cannot do: Eureka names with no counterpart in our state (contact forces
``vec_sensor_tensor``, ``dof_force_tensor``, ``progress_buf``) are rejected with an
``unknown_state`` error listing the available names. ``prev_potentials`` is a first-order
estimate (``potentials - velocity toward the target``), exact up to the change of speed within
one step. Text2Reward's ManiSkill objects (``self.obj1``, grippers, cabinet links) exist for none
of our tasks.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np
import torch

from rewardlab.envs.tasks import get_task, shipped_task_names, task_names
from rewardlab.envs.tasks.isaacgym_names import quat_rotate_wxyz as _quat_rotate
from rewardlab.envs.tasks.knowledge import Binding, declared
from rewardlab.envs.tasks.knowledge import entry as _entry
from rewardlab.rewards.errors import RewardError, SandboxFailure
from rewardlab.rewards.restricted import StateDict, exec_source
from rewardlab.rewards.static_check import (
    UnknownName,
    check_ast,
    find_function,
    parse_allowed,
    parse_source,
    positional_params,
    unknown_names_error,
)

State = Mapping[str, torch.Tensor]

# ---------------------------------------------------------------------------------------------
# Eureka / IsaacGymEnvs names: the common ones here, each task's own on the task

_COMMON = {
    "actions": Binding(lambda s, a, dt: a, "the action `[N, action_dim]` in [-1, 1]"),
    "action": Binding(lambda s, a, dt: a, "the action `[N, action_dim]` in [-1, 1]"),
    "last_actions": Binding(
        lambda s, a, dt: s["prev_action"], "`prev_action` (IsaacGymEnvs' action of the step before)"
    ),  # fmt: skip
    "dt": Binding(lambda s, a, dt: float(dt), "the control step `env.control_dt` in s (a float)"),
}
"""Names every task binds: the action, the previous action, the control step."""


def _task_declared(task: str | None, name: str) -> Any:
    """The registered task's declaration ``name`` (``eureka_names``, ``text2reward_attrs``), or
    ``None`` (no task, an unknown name, not declared, or opted out)."""
    if not task:
        return None
    try:
        cls = get_task(task)
    except KeyError:
        return None
    return declared(cls, name)


def task_eureka_names(task: str | None) -> dict[str, Binding]:
    """The IsaacGymEnvs names of ``task``: the common ones, then the task's own declaration."""
    return {**_COMMON, **(_task_declared(task, "eureka_names") or {})}


def eureka_names(task: str | None, state_names: Collection[str]) -> dict[str, Binding]:
    """The names an Eureka-style ``compute_reward`` may take as arguments for ``task``.

    Native state entries first, then the task's IsaacGymEnvs names (tasks that declare none,
    e.g. user YAML tasks without ``eureka_names``, get the native names and the common ones).
    """
    out = {n: _entry(n) for n in state_names}
    out.update({k: v for k, v in task_eureka_names(task).items() if k not in out})
    return out


# ---------------------------------------------------------------------------------------------
# isaacgymenvs.utils.torch_jit_utils helpers Eureka's code calls (quaternions as (x, y, z, w))


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``[..., 4]`` quaternions (x, y, z, w)."""
    x1, y1, z1, w1 = a.unbind(-1)
    x2, y2, z2, w2 = b.unbind(-1)
    return torch.stack(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ],
        -1,
    )


def quat_conjugate(a: torch.Tensor) -> torch.Tensor:
    """Conjugate of ``[..., 4]`` quaternions (x, y, z, w)."""
    return torch.cat([-a[..., :3], a[..., 3:]], -1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by ``q`` ``[N, 4]`` (x, y, z, w)."""
    return _quat_rotate(q[:, [3, 0, 1, 2]], v)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` ``[N, 3]`` by the inverse of ``q`` ``[N, 4]`` (x, y, z, w)."""
    return quat_rotate(quat_conjugate(q), v)


def normalize(x: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``x`` divided by its norm over the last axis."""
    return x / x.norm(p=2, dim=-1).clamp(min=eps).unsqueeze(-1)


def normalize_angle(x: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to ``(-pi, pi]``."""
    return torch.atan2(torch.sin(x), torch.cos(x))


def get_euler_xyz(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll, pitch, yaw in ``[0, 2 pi)`` of ``[N, 4]`` quaternions (x, y, z, w), as IsaacGym."""
    qx, qy, qz, qw = q.unbind(-1)
    roll = torch.atan2(2.0 * (qw * qx + qy * qz), qw * qw - qx * qx - qy * qy + qz * qz)
    sinp = 2.0 * (qw * qy - qz * qx)
    pitch = torch.where(sinp.abs() >= 1, torch.copysign(torch.full_like(sinp, math.pi / 2), sinp), torch.asin(sinp.clamp(-1, 1)))  # fmt: skip
    yaw = torch.atan2(2.0 * (qw * qz + qx * qy), qw * qw + qx * qx - qy * qy - qz * qz)
    two_pi = 2 * math.pi
    return roll % two_pi, pitch % two_pi, yaw % two_pi


def tensor_clamp(t: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``t`` clamped elementwise between tensors ``lo`` and ``hi``."""
    return torch.max(torch.min(t, hi), lo)


def scale(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[lower, upper]``."""
    return 0.5 * (x + 1.0) * (upper - lower) + lower


def unscale(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[lower, upper]`` -> ``[-1, 1]``."""
    return (2.0 * x - upper - lower) / (upper - lower)


def quat_apply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``b`` ``[..., 3]`` by quaternions ``a`` ``[..., 4]`` (x, y, z, w)."""
    shape = b.shape
    a, b = a.reshape(-1, 4), b.reshape(-1, 3)
    xyz = a[:, :3]
    t = 2.0 * torch.linalg.cross(xyz, b)
    return (b + a[:, 3:] * t + torch.linalg.cross(xyz, t)).view(shape)


def quat_unit(a: torch.Tensor) -> torch.Tensor:
    """Unit quaternions."""
    return normalize(a)


def quat_from_angle_axis(angle: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Quaternions (x, y, z, w) of rotations by ``angle`` ``[N]`` about ``axis`` ``[N, 3]``."""
    half = (angle / 2.0).unsqueeze(-1)
    return quat_unit(torch.cat([normalize(axis) * torch.sin(half), torch.cos(half)], -1))


def quat_axis(q: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """The body's ``axis`` (0 x, 1 y, 2 z) in the world frame, for quaternions (x, y, z, w)."""
    basis = torch.zeros(q.shape[0], 3, dtype=q.dtype, device=q.device)
    basis[:, axis] = 1.0
    return quat_rotate(q, basis)


def quat_diff_rad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (rad) of the rotation between quaternions ``a`` and ``b`` (x, y, z, w)."""
    d = quat_mul(a, quat_conjugate(b))
    return 2.0 * torch.asin(torch.clamp(torch.norm(d[:, :3], p=2, dim=-1), max=1.0))


def my_quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:func:`quat_rotate` under the name IsaacGymEnvs' AMP tasks use."""
    return quat_rotate(q, v)


def wrap_to_pi(angles: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to ``(-pi, pi]`` (legged_gym's helper)."""
    return normalize_angle(angles)


def copysign(a: float, b: torch.Tensor) -> torch.Tensor:
    """``|a|`` with the sign of each element of ``b``."""
    return torch.full_like(b, abs(float(a))) * torch.sign(b)


def scale_transform(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[lower, upper]`` -> ``[-1, 1]`` about the range's centre."""
    return 2.0 * (x - (lower + upper) * 0.5) / (upper - lower)


def unscale_transform(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[lower, upper]`` (the inverse of :func:`scale_transform`)."""
    return x * (upper - lower) * 0.5 + (lower + upper) * 0.5


def saturate(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``x`` clamped elementwise between ``lower`` and ``upper``."""
    return torch.max(torch.min(x, upper), lower)


def get_basis_vector(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v`` rotated by ``q`` (x, y, z, w)."""
    return quat_rotate(q, v)


def tf_vector(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A direction ``v`` expressed in the world by the frame rotation ``q``."""
    return quat_apply(q, v)


def tf_apply(q: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A point ``v`` of the frame ``(q, t)`` in the world."""
    return quat_apply(q, v) + t


def tf_inverse(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of the frame ``(q, t)``."""
    q_inv = quat_conjugate(q)
    return q_inv, -quat_apply(q_inv, t)


def tf_combine(q1: torch.Tensor, t1: torch.Tensor, q2: torch.Tensor, t2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The frame ``(q2, t2)`` given in the frame ``(q1, t1)``, in the world."""
    return quat_mul(q1, q2), quat_apply(q1, t2) + t1


def quat_apply_yaw(quat: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Rotate ``vec`` by the yaw part of ``quat`` (x, y, z, w) only (legged_gym's helper)."""
    yaw_only = torch.cat([torch.zeros_like(quat[..., :2]), quat[..., 2:]], -1)
    return quat_apply(normalize(yaw_only), vec)


def to_torch(x: Any, dtype: torch.dtype = torch.float, device: Any = "cpu", requires_grad: bool = False) -> torch.Tensor:  # fmt: skip
    """A tensor of ``x`` (on the CPU: the reward computes there)."""
    return torch.tensor(x, dtype=dtype)


ISAACGYM_UTILS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        quat_mul, quat_conjugate, quat_rotate, quat_rotate_inverse, quat_apply, quat_unit,
        quat_from_angle_axis, quat_axis, quat_diff_rad, my_quat_rotate, get_euler_xyz,
        normalize, normalize_angle, wrap_to_pi, copysign, tensor_clamp, scale, unscale,
        scale_transform, unscale_transform, saturate, get_basis_vector, tf_vector, tf_apply,
        tf_inverse, tf_combine, quat_apply_yaw, to_torch,
    )
}  # fmt: skip
"""Helpers of ``isaacgymenvs.utils.torch_jit_utils`` / ``isaacgym.torch_utils`` (and legged_gym's
``quat_apply_yaw``, ``wrap_to_pi``) predefined for foreign-style code: their env modules import
them with ``*``, so the rewards call them unqualified. RewardLab's own implementations, with
IsaacGym's (x, y, z, w) quaternions; the names are
:data:`rewardlab.rewards.static_check.PREDEFINED_HELPERS`."""


# ---------------------------------------------------------------------------------------------
# Eureka adapter


def check_eureka(code: str, task: str | None, state_names: Collection[str]) -> RewardError | None:
    """Static checks of an Eureka-style reward: allow-list, a ``compute_reward``, known args."""
    tree = parse_allowed(code)
    if isinstance(tree, RewardError):
        return tree
    fn = find_function(tree, "compute_reward")
    if fn is None:
        return RewardError("signature", "no function 'compute_reward' defined")
    if fn.args.vararg or fn.args.kwarg:
        return RewardError("signature", "compute_reward may not take *args or **kwargs", fn.lineno)
    names = eureka_names(task, state_names)
    unknown = [
        UnknownName(a.arg, a.lineno)
        for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        if a.arg not in names
    ]
    if unknown:
        return unknown_names_error(unknown, names, "argument")
    return None


def build_eureka(
    code: str, task: str | None, state_names: Collection[str], dt: float, *, filename: str
) -> Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Build ``fn(state, action)`` from Eureka-style source (after :func:`check_eureka`).

    Picklable by reference, so :func:`rewardlab.rewards.sandbox.trial_run` can call it in the
    child as ``builder``.
    """
    err = check_eureka(code, task, state_names)
    if err:
        raise SandboxFailure(err)
    namespace = exec_source(code, filename, extra_globals=ISAACGYM_UTILS)
    fn = namespace["compute_reward"]
    tree = ast.parse(code)
    node = find_function(tree, "compute_reward")
    assert node is not None
    params = positional_params(node)
    kwonly = [a.arg for a in node.args.kwonlyargs]
    names = eureka_names(task, state_names)
    bind = [(p, names[p].fn) for p in params]
    bind_kw = [(p, names[p].fn) for p in kwonly]

    def compute_reward(
        state: State, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        args = [b(state, action, dt) for _, b in bind]
        kwargs = {p: b(state, action, dt) for p, b in bind_kw}
        out = fn(*args, **kwargs)
        if isinstance(out, torch.Tensor):  # Eureka also accepts a bare reward
            return out, {}
        return out

    compute_reward.arguments = params + kwonly  # type: ignore[attr-defined]
    return compute_reward


# ---------------------------------------------------------------------------------------------
# Text2Reward names per task

TEXT2REWARD_ENTRIES = ("compute_dense_reward", "compute_sparse_reward", "compute_reward")
"""Function names the Text2Reward adapter looks for, in order."""


def text2reward_attrs(task: str | None, state_names: Collection[str]) -> dict[str, str]:
    """``self.<path>`` -> state entry for ``task``: every entry under its own name, then the
    task's declared ``text2reward_attrs`` (only entries the state has)."""
    out = {n: n for n in state_names}
    for path, entry in (_task_declared(task, "text2reward_attrs") or {}).items():
        if entry in state_names:
            out.setdefault(path, entry)
    return out


def _self_paths(fn: ast.FunctionDef, self_name: str) -> list[tuple[str, int]]:
    """Longest attribute chains rooted at ``self`` (``self.robot.ee_position`` -> "robot.ee_position")."""
    out = []
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == self_name:
            parts, cur = [], node
            while isinstance(parents.get(cur), ast.Attribute):
                cur = parents[cur]
                parts.append(cur.attr)  # type: ignore[attr-defined]
            out.append((".".join(parts), node.lineno))
    return out


def _t2r_entry(tree: ast.Module) -> ast.FunctionDef | None:
    for name in TEXT2REWARD_ENTRIES:
        fn = find_function(tree, name)
        if fn is not None:
            return fn
    return None


def check_text2reward(code: str, task: str | None, state_names: Collection[str]) -> RewardError | None:  # fmt: skip
    """Static checks of a Text2Reward-style reward: allow-list, ``(self, action)``, attributes."""
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return tree
    fn = _t2r_entry(tree)
    # self.<path> chains are mapped below; the allow-list checks everything else
    err = check_ast(tree, free_roots=positional_params(fn)[:1] if fn is not None else ())
    if err:
        return err
    if fn is None:
        return RewardError(
            "signature", f"no function named {' or '.join(TEXT2REWARD_ENTRIES)} defined"
        )
    params = positional_params(fn)
    if len(params) < 1 or len(params) > 2:
        return RewardError(
            "signature", f"{fn.name}({', '.join(params)}) must take (self, action)", fn.lineno
        )
    attrs = text2reward_attrs(task, state_names)
    prefixes = {p.rsplit(".", i)[0] for p in attrs for i in range(p.count(".") + 1)}
    unknown: dict[str, UnknownName] = {}
    for path, line in sorted(_self_paths(fn, params[0]), key=lambda pl: pl[1]):
        if not path:
            return RewardError(
                "forbidden", f"'{params[0]}' may only be used for attribute reads", line
            )
        # a chain may continue into methods of the value (self.goal_position.copy())
        parts = path.split(".")
        known = any(".".join(parts[:k]) in attrs for k in range(1, len(parts) + 1))
        if not known and path not in prefixes and f"self.{path}" not in unknown:
            unknown[f"self.{path}"] = UnknownName(f"self.{path}", line)
    if unknown:
        return unknown_names_error(list(unknown.values()), [f"self.{p}" for p in attrs], "attribute", prefix="self.")  # fmt: skip
    return None


class _Attrs:
    """``self`` of a Text2Reward function: attribute paths resolved to state arrays."""

    __slots__ = ("_data", "_prefix", "_index")

    def __init__(self, data: dict[str, Any], prefix: str, index: int | None) -> None:
        self._data, self._prefix, self._index = data, prefix, index

    def __getattr__(self, name: str) -> Any:
        path = self._prefix + name
        if path in self._data:
            value = self._data[path]
            return value if self._index is None else _item(value[self._index])
        if any(k.startswith(path + ".") for k in self._data):
            return _Attrs(self._data, path + ".", self._index)
        known = ", ".join(f"self.{k}" for k in sorted(self._data))
        raise AttributeError(f"self.{path} does not exist; known: {known}")


def _item(v: np.ndarray) -> Any:
    return float(v) if v.ndim == 0 else v


def _signed_terms(node: ast.expr, sign: int = 1) -> list[tuple[int, ast.expr]]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        right = -sign if isinstance(node.op, ast.Sub) else sign
        return _signed_terms(node.left, sign) + _signed_terms(node.right, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _signed_terms(node.operand, -sign)
    return [(sign, node)]


def _is_weight(node: ast.expr) -> bool:
    """A constant, or a name that Text2Reward's prompts use for weights (``weight_*``, ``w_*``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return True
    return isinstance(node, ast.Name) and node.id.startswith(("weight", "w_"))


def _term_name(node: ast.expr) -> str | None:
    """``reach`` for ``reach``, ``0.5 * reach``, ``reach / 2`` and ``weight_reach * reach``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _term_name(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div):
        left, right = node.left, node.right
        if _is_weight(right) and not _is_weight(left):
            return _term_name(left)
        if isinstance(node.op, ast.Mult) and _is_weight(left) and not _is_weight(right):
            return _term_name(right)
    return None


def _infer_sum(tree: ast.Module, entry: str) -> list[str]:
    """Rewrite ``entry``'s final ``return a + 0.5 * b - c`` to also return its terms.

    Text2Reward functions return one float, usually a sum of named terms, directly or through
    a variable (``reward = reach + bonus; return reward``). When the function has exactly one
    ``return``, as its last statement, of such a sum (each term a name, optionally times a
    constant, and the names not reassigned between the sum and the return), the return becomes
    ``return total, {"reach": reach, "b": 0.5 * b, "c": -c}`` in place -- components that add up
    to the total. Returns the component names (``[]``: nothing inferred, tree unchanged).
    """
    fn = find_function(tree, entry)
    if fn is None or any(isinstance(n, ast.FunctionDef | ast.Lambda) for n in ast.walk(fn) if n is not fn):  # fmt: skip
        return []
    returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
    if len(returns) != 1 or fn.body[-1] is not returns[0] or returns[0].value is None:
        return []
    ret = returns[0]
    expr: ast.expr = ret.value  # type: ignore[assignment]
    between: list[ast.stmt] = []
    sum_expr = expr
    if isinstance(expr, ast.Name):
        for i in range(len(fn.body) - 2, -1, -1):
            stmt = fn.body[i]
            if isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == [expr.id]:  # fmt: skip
                sum_expr, between = stmt.value, fn.body[i + 1 : -1]
                break
        else:
            return []
    terms = _signed_terms(sum_expr)
    names = [_term_name(t) for _, t in terms]
    if len(terms) < 2 or None in names or len(set(names)) != len(names):
        return []
    if expr is not sum_expr and expr.id in names:  # type: ignore[union-attr]
        return []
    for stmt in between:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id in names:
                return []
    keys: list[ast.expr | None] = [ast.Constant(n) for n in names]
    values: list[ast.expr] = [
        t if sign > 0 else ast.UnaryOp(op=ast.USub(), operand=t) for sign, t in terms
    ]
    ret.value = ast.Tuple(elts=[expr, ast.Dict(keys=keys, values=values)], ctx=ast.Load())
    ast.fix_missing_locations(ast.copy_location(ret.value, expr))
    for node in ast.walk(ret.value):
        if not hasattr(node, "lineno"):
            ast.copy_location(node, expr)
    return names  # type: ignore[return-value]


_PART = "rl_part_"


class _Accumulate(ast.NodeTransformer):
    """``acc += term`` -> ``acc += (rl_term := term)`` and ``rl_part_<name> += rl_term``."""

    def __init__(self, acc: str, keys: dict[int, str]) -> None:
        self.acc, self.keys = acc, keys

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        key = self.keys.get(id(node))
        if key is None:
            return node
        tmp = ast.Name("rl_term", ast.Store())
        node.value = ast.NamedExpr(target=tmp, value=node.value)
        part = ast.AugAssign(
            target=ast.Name(_PART + key, ast.Store()),
            op=node.op,
            value=ast.Name("rl_term", ast.Load()),
        )
        return [node, ast.copy_location(part, node)]

    def visit_Return(self, node: ast.Return) -> Any:
        parts = sorted(set(self.keys.values()), key=list(self.keys.values()).index)
        comps = ast.Dict(
            keys=[ast.Constant(k) for k in parts],
            values=[ast.Name(_PART + k, ast.Load()) for k in parts],
        )
        node.value = ast.Tuple([node.value, comps], ast.Load())  # type: ignore[list-item]
        return node


def _infer_accumulator(tree: ast.Module, entry: str) -> list[str]:
    """``reward = 0.0; reward += a; if ok: reward += 2 * bonus; ...; return reward``.

    Every ``+=`` / ``-=`` of the returned variable becomes a component named after its term
    (``a``, ``bonus``; ``term_line<N>`` when the term has no name), accumulated where it runs;
    the variable must start as a constant 0 and never be assigned otherwise.
    """
    fn = find_function(tree, entry)
    if fn is None or any(isinstance(n, ast.FunctionDef | ast.Lambda) for n in ast.walk(fn) if n is not fn):  # fmt: skip
        return []
    returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
    accs = {r.value.id if isinstance(r.value, ast.Name) else None for r in returns}
    if len(accs) != 1 or None in accs:
        return []
    acc = accs.pop()
    init = [s for s in fn.body if isinstance(s, ast.Assign) and [getattr(t, "id", None) for t in s.targets] == [acc]]  # fmt: skip
    if len(init) != 1 or not (isinstance(init[0].value, ast.Constant) and init[0].value.value == 0):  # fmt: skip
        return []
    keys: dict[int, str] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and (node.id.startswith(_PART) or node.id == "rl_term"):
            return []
        targets = []
        if isinstance(node, ast.Assign) and node is not init[0]:
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr):
            targets = [node.target]
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == acc:  # fmt: skip
            if not isinstance(node.op, ast.Add | ast.Sub):
                return []
            keys[id(node)] = _term_name(node.value) or f"term_line{node.lineno}"
            continue
        if any(isinstance(n, ast.Name) and n.id == acc for t in targets for n in ast.walk(t)):
            return []
    if len(keys) < 2:
        return []
    _Accumulate(acc, keys).visit(fn)
    parts = sorted(set(keys.values()), key=list(keys.values()).index)
    zeros = [ast.Assign([ast.Name(_PART + k, ast.Store())], ast.Constant(0.0)) for k in parts]
    fn.body[:0] = [ast.copy_location(z, fn.body[0]) for z in zeros]
    ast.fix_missing_locations(fn)
    return parts


def infer_components(tree: ast.Module, entry: str) -> list[str]:
    """Rewrite a Text2Reward ``entry`` in place so that it returns ``(total, {name: term})``.

    Two shapes of code are understood (anything else: ``[]``, tree unchanged):

    - a final ``return a + 0.5 * b - weight_c * c`` (directly or through a variable assigned
      that sum just before): the signed terms are the components;
    - an accumulator: ``reward = 0.0`` then ``reward += term`` / ``reward -= term`` anywhere
      (also inside ``if``), and ``return reward``: each ``+=`` line is a component, summed
      where it runs.

    Terms are named after their variable (``0.5 * bonus`` and ``weight_bonus * bonus`` ->
    ``bonus``). The components add up to the total by construction; the adapter also verifies
    that on the first batch and drops them if not. Returns the component names.
    """
    return _infer_sum(tree, entry) or _infer_accumulator(tree, entry)


def build_text2reward(
    code: str, task: str | None, state_names: Collection[str], *, filename: str
) -> Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Build a batched ``fn(state, action)`` from a single-world Text2Reward function.

    See the module docstring for the batched-or-loop decision and :func:`infer_components`
    for the components. Picklable by reference for
    :func:`rewardlab.rewards.sandbox.trial_run`.
    """
    err = check_text2reward(code, task, state_names)
    if err:
        raise SandboxFailure(err)
    entry = _t2r_entry(ast.parse(code))
    assert entry is not None
    found: list[str] = []
    namespace = exec_source(
        code, filename, transform=lambda tree: found.extend(infer_components(tree, entry.name))
    )
    fn = namespace[entry.name]
    takes_action = len(positional_params(entry)) == 2
    attrs = text2reward_attrs(task, state_names)
    mode: dict[str, bool] = {}

    def call(data: dict[str, Any], index: int | None, act: np.ndarray) -> tuple[Any, dict]:
        me = _Attrs(data, "", index)
        a = act if index is None else act[index]
        out = fn(me, a) if takes_action else fn(me)
        return out if found else (out, {})

    def loop(data: dict[str, Any], act: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
        totals = np.empty(n, dtype=np.float64)
        comps = {k: np.empty(n, dtype=np.float64) for k in found}
        for i in range(n):
            total, parts = call(data, i, act)
            totals[i] = float(total)
            for k in found:
                comps[k][i] = float(parts[k])
        return totals, comps

    def batched(data: dict[str, Any], act: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
        total, parts = call(data, None, act)
        shape = (n,)
        comps = {k: np.broadcast_to(np.asarray(v, np.float64), shape) for k, v in parts.items()}
        return np.asarray(total, dtype=np.float64), comps

    def compute_reward(
        state: State, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        data = {p: state[e].detach().cpu().numpy().astype(np.float64) for p, e in attrs.items()}
        act = action.detach().cpu().numpy().astype(np.float64)
        n = act.shape[0]
        if "batched" not in mode:
            mode["batched"] = _batched_agrees(batched, loop, data, act, n)
        total, parts = (batched if mode["batched"] else loop)(data, act, n)
        if "components" not in mode:  # inferred components must add up to the total
            mode["components"] = not parts or bool(
                np.allclose(sum(parts.values()), total, rtol=1e-5, atol=1e-6)
            )
        if not mode["components"]:
            parts = {}

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=action.device)  # fmt: skip

        return tensor(total), {k: tensor(v) for k, v in parts.items()}

    compute_reward.mode = mode  # type: ignore[attr-defined]
    compute_reward.components = list(found)  # type: ignore[attr-defined]
    return compute_reward


def _batched_agrees(batched: Callable, loop: Callable, data: dict, act: np.ndarray, n: int) -> bool:  # fmt: skip
    """Whether calling on the whole batch gives ``[N]`` values equal to per-world calls."""
    try:
        total, parts = batched(data, act, n)
    except Exception:  # noqa: BLE001 - any failure means: not vectorizable
        return False
    if total.shape != (n,):
        return False
    k = min(n, 8)
    ref_total, ref_parts = loop({p: v[:k] for p, v in data.items()}, act[:k], k)
    pairs = [(total[:k], ref_total)] + [(parts[c][:k], ref_parts[c]) for c in ref_parts]
    return all(np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True) for a, b in pairs)


# ---------------------------------------------------------------------------------------------
# Style detection


def detect_style(code: str) -> str:
    """``"native"``, ``"eureka"`` or ``"text2reward"`` from the source's shape.

    Text2Reward: a ``compute_dense_reward``/``compute_sparse_reward``/``compute_reward`` whose
    first parameter is ``self``. Native: ``compute_reward`` with two positional parameters whose
    first is read with string keys (``state["x"]``) or named ``state``/``states``/``s``.
    Eureka: any other ``compute_reward`` (arguments bound by name). Unparsable code is
    ``"native"`` (the native check then reports the syntax error).
    """
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return "native"
    t2r = _t2r_entry(tree)
    if t2r is not None and positional_params(t2r)[:1] == ["self"]:
        return "text2reward"
    fn = find_function(tree, "compute_reward")
    if fn is None:
        return "native"
    params = positional_params(fn)
    if len(params) == 2 and (params[0] in ("state", "states", "s") or state_reads(fn, params[0])):
        return "native"
    if any(isinstance(d, ast.Attribute | ast.Name) for d in fn.decorator_list):
        return "eureka"
    if len(params) == 2 and not fn.args.kwonlyargs and params[0] not in eureka_all_names():
        return "native"
    return "eureka"


def eureka_all_names() -> frozenset[str]:
    """Every IsaacGymEnvs name some registered task binds (for :func:`detect_style`)."""
    names = set(_COMMON)
    for task in task_names():
        try:
            names.update(task_eureka_names(task))
        except Exception:  # noqa: BLE001 - a task that does not load binds nothing
            continue
    return frozenset(names)


def state_reads(fn: ast.AST, var: str) -> list[tuple[str, int]]:
    """Re-export of :func:`rewardlab.rewards.static_check.state_reads` for the detection above."""
    from rewardlab.rewards.static_check import state_reads as _reads

    return _reads(fn, var)


DOCS_BEGIN = "<!-- BEGIN GENERATED: python -m rewardlab.rewards.compat --write docs/rewards.md -->"
DOCS_END = "<!-- END GENERATED -->"


def mapping_markdown(tasks: Collection[str] | None = None) -> str:
    """Markdown tables of the Eureka and Text2Reward names of each task (for docs/rewards.md),
    generated from the tasks' own declarations; ``tasks``: the shipped ones when ``None``."""
    out = []
    for task in shipped_task_names() if tasks is None else tasks:
        cls = get_task(task)
        names = list(cls(cls.default_config(), cls.load_model()).full_state_spec())
        out.append(f"### {task}\n")
        out.append(f"State entries (also bindable by their own names): {', '.join(f'`{n}`' for n in names)}.\n")  # fmt: skip
        out.append("| Eureka / IsaacGymEnvs argument | computed from our state |")
        out.append("|---|---|")
        for name, binding in task_eureka_names(task).items():
            out.append(f"| `{name}` | {binding.doc} |")
        t2r = [(k, v) for k, v in (declared(cls, "text2reward_attrs") or {}).items() if v in names]
        if t2r:
            out.append("")
            out.append("| Text2Reward attribute | state entry |")
            out.append("|---|---|")
            out.extend(f"| `self.{k}` | `{v}` |" for k, v in t2r)
        out.append("")
    return "\n".join(out)


def update_docs(path: str) -> bool:
    """Replace the generated block of ``path`` with :func:`mapping_markdown`; True if changed."""
    from pathlib import Path

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise ValueError(f"{path}: no generated block ({DOCS_BEGIN!r} ... {DOCS_END!r})")
    head, rest = text.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    new = f"{head}{DOCS_BEGIN}\n\n{mapping_markdown()}\n{DOCS_END}{tail}"
    if new != text:
        p.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> None:
    """``python -m rewardlab.rewards.compat [--write docs/rewards.md]``: print or update tables."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", metavar="FILE", help="update the generated block of FILE")
    args = parser.parse_args(argv)
    if args.write:
        changed = update_docs(args.write)
        print(f"{args.write}: {'updated' if changed else 'already up to date'}")
    else:
        print(mapping_markdown())


__all__ = [
    "Binding",
    "StateDict",
    "build_eureka",
    "build_text2reward",
    "check_eureka",
    "check_text2reward",
    "detect_style",
    "infer_components",
    "eureka_all_names",
    "eureka_names",
    "mapping_markdown",
    "update_docs",
    "task_eureka_names",
    "text2reward_attrs",
]


if __name__ == "__main__":
    main()
