"""Rewards written for other frameworks, loaded as written: Eureka / IsaacGymEnvs, DrEureka and
Text2Reward (``docs/rewards.md``, "Foreign rewards as written").

Each style has a static check (``check_<style>``: the allow-list, the style's signature, every
foreign name bound for the task, all problems at once) and a builder (``build_<style>``) that
runs *inside the reward sandbox* and returns ``fn(state, action) -> (total, {name: [N]})``.
Foreign names are bound through each task's own declarations
(:mod:`rewardlab.envs.tasks.knowledge`: ``eureka_names``, ``text2reward_attrs``,
``text2reward_obs``) plus the common names of :data:`_COMMON`; a name is a :class:`Binding`
(computed from the state), a :class:`Constant` (computed in the trainer from the env's own task
by :func:`env_constants` and sent to the sandbox as data), a :class:`Columns` vector (IsaacGymEnvs'
``obs_buf``, MetaWorld's ``obs``) or :class:`Unavailable` (refused with its reason).

**Eureka / IsaacGymEnvs**: ``compute_reward(...)`` or ``compute_<task>_reward(...)`` whose
arguments are bound by name; ``@torch.jit.script`` is removed (the function runs eagerly: TorchScript
needs the source file and rejects much of what eager runs; on CPU eager is as fast for these few
tensor ops -- ``benchmarks/results/sandbox_overhead.md``). Returns: a tensor, ``(total,
{components})``, or IsaacGymEnvs' ``(reward, reset[, successes])`` (:func:`foreign_output`: the
reset becomes the ``signal/terminate`` component the env honours, except on IsaacGymEnvs' own
time-out steps; successes ``signal/success``).

**DrEureka**: ``class EurekaReward`` with ``compute_reward(self)`` / ``_reward_<term>(self)``
methods reading ``self.env.<name>``, hoisted into functions and summed as DrEureka sums them
(:func:`build_dreureka`).

**Text2Reward**: a single-world numpy ``compute_dense_reward(self, action)`` (ManiSkill) or
``(self, action, obs)`` (MetaWorld) reading ``self.<path>`` attributes; run batched when that
agrees with per-world calls, else once per world; components inferred from the code's shape
(:func:`infer_components`).

The IsaacGym helpers foreign code calls unqualified are in :mod:`rewardlab.rewards.isaacgym_utils`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardlab.core.reward import SUCCESS, TERMINATE
from rewardlab.envs.tasks import get_task, shipped_task_names, task_names
from rewardlab.envs.tasks.authoring import quat_rotate as _quat_rotate  # noqa: F401 - compat._quat_rotate
from rewardlab.envs.tasks.knowledge import (
    Binding,
    Columns,
    Constant,
    ForeignName,
    Unavailable,
    declared,
)
from rewardlab.envs.tasks.knowledge import entry as _entry
from rewardlab.rewards.errors import RewardError, SandboxFailure
from rewardlab.rewards.isaacgym_utils import (  # noqa: F401 - re-exported: compat.quat_mul, ...
    ISAACGYM_UTILS,
    copysign,
    get_basis_vector,
    get_euler_xyz,
    my_quat_rotate,
    normalize,
    normalize_angle,
    quat_apply,
    quat_apply_yaw,
    quat_axis,
    quat_conjugate,
    quat_diff_rad,
    quat_from_angle_axis,
    quat_mul,
    quat_rotate,
    quat_rotate_inverse,
    quat_unit,
    saturate,
    scale,
    scale_transform,
    tensor_clamp,
    tf_apply,
    tf_combine,
    tf_inverse,
    tf_vector,
    to_torch,
    unscale,
    unscale_transform,
    wrap_to_pi,
)
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
# Eureka / IsaacGymEnvs / DrEureka names: the common ones here, each task's own on the task

_COMMON: dict[str, ForeignName] = {
    "actions": Binding(lambda s, a, dt: a, "the action `[N, action_dim]` in [-1, 1]"),
    "action": Binding(lambda s, a, dt: a, "the action `[N, action_dim]` in [-1, 1]"),
    "last_actions": Binding(
        lambda s, a, dt: s["prev_action"], "`prev_action` (IsaacGymEnvs' action of the step before)"
    ),  # fmt: skip
    "dt": Binding(lambda s, a, dt: float(dt), "the control step `env.control_dt` in s (a float)"),
    "progress_buf": Binding(
        lambda s, a, dt: s["episode_step"].long(),
        "`episode_step` as int64: control steps of the episode, this one included (IsaacGymEnvs counts the step before computing the reward)",
    ),  # fmt: skip
    "episode_length_buf": Binding(
        lambda s, a, dt: s["episode_step"].long(), "`episode_step` as int64 (legged_gym's name)"
    ),  # fmt: skip
    "reset_buf": Binding(
        lambda s, a, dt: torch.zeros(a.shape[0], dtype=torch.long, device=a.device),
        '`[N]` int64 zeros: IsaacGymEnvs resets finished worlds before the reward is computed, so the reset_buf it passes is 0; the reset the reward returns ends the episode (see "Returns" above)',
    ),  # fmt: skip
    "max_episode_length": Constant(
        lambda task: int(task.cfg.episode_steps),
        "the task config's `episode_steps` (the time limit in control steps, an int)",
    ),  # fmt: skip
    "num_envs": Binding(
        lambda s, a, dt: int(a.shape[0]), "`N`, the number of worlds in this call (an int)"
    ),  # fmt: skip
    "vec_sensor_tensor": Unavailable(
        "the task's model has no force-torque sensors (IsaacGymEnvs' foot sensors)"
    ),  # fmt: skip
    "dof_force_tensor": Unavailable("the task's state has no joint forces"),
    "contact_forces": Unavailable("the task's state has no contact forces"),
}
"""Names every task binds (a task's own declaration overrides them): the action, the previous
action, the control step, IsaacGymEnvs' episode buffers and the number of worlds; and the
sensor tensors no task has unless it declares them."""

_DEFAULT_TASKS: dict[str, Any] = {}


def _task_declared(task: str | None, name: str) -> Any:
    """The registered task's declaration ``name`` (``eureka_names``, ``text2reward_attrs``), or
    ``None`` (no task, an unknown name, not declared, or opted out)."""
    cls = _task_class(task)
    return None if cls is None else declared(cls, name)


def _task_class(task: str | None) -> Any:
    if not task:
        return None
    try:
        return get_task(task)
    except KeyError:
        return None


def task_eureka_names(task: str | None) -> dict[str, ForeignName]:
    """The foreign names of ``task``: the common ones, then the task's own declaration."""
    return {**_COMMON, **(_task_declared(task, "eureka_names") or {})}


def eureka_names(task: str | None, state_names: Collection[str]) -> dict[str, ForeignName]:
    """The names an Eureka-style ``compute_reward`` (or an IsaacGymEnvs ``compute_<task>_reward``,
    or DrEureka's ``env.<name>``) may use for ``task``.

    Native state entries first, then the task's foreign names (tasks that declare none, e.g.
    user YAML tasks without ``eureka_names``, get the native names and the common ones).
    """
    out: dict[str, ForeignName] = {n: _entry(n) for n in state_names}
    out.update({k: v for k, v in task_eureka_names(task).items() if k not in out})
    return out


def _plain(value: Any) -> Any:
    """A constant's value as JSON data (numbers and nested lists)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float):
        return value
    raise TypeError(f"a constant must be a number or a sequence of numbers, got {type(value).__name__}")  # fmt: skip


def env_constants(task: str | None, env: Any = None) -> dict[str, Any]:
    """The values of the task's :class:`Constant` names (the common ones included), computed in
    the trainer from the env's own task instance (its config and model; a default instance of
    the task when ``env`` has none), as JSON data for the reward sandbox. A constant that
    cannot be computed is left out (reward code that uses it is refused, naming it)."""
    consts = {k: v for k, v in task_eureka_names(task).items() if isinstance(v, Constant)}
    instance = getattr(env, "task", None)
    if instance is None and consts:
        cls = _task_class(task)
        if cls is None:
            return {}
        if task not in _DEFAULT_TASKS:
            _DEFAULT_TASKS[task] = cls(cls.default_config(), cls.load_model())  # type: ignore[index]
        instance = _DEFAULT_TASKS[task]  # type: ignore[index]
    out = {}
    for name, c in consts.items():
        try:
            out[name] = _plain(c.compute(instance))
        except Exception:  # noqa: BLE001 - a constant this task or env cannot give: not bound
            continue
    return out


def _materialize(constants: Mapping[str, Any] | None) -> dict[str, Any]:
    """Constants as the reward sees them: numbers as they are, sequences as float32 tensors."""
    return {
        k: torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v
        for k, v in (constants or {}).items()
    }


# ---------------------------------------------------------------------------------------------
# isaacgymenvs.utils.torch_jit_utils helpers: rewards/isaacgym_utils.py (re-exported here)

# ---------------------------------------------------------------------------------------------
# Eureka / IsaacGymEnvs adapter

_IGE_ENTRY = re.compile(r"^compute_\w+_reward$")


def eureka_entry(tree: ast.Module) -> ast.FunctionDef | RewardError:
    """The reward function of Eureka / IsaacGymEnvs code: ``compute_reward``, else the one
    ``compute_<task>_reward`` (IsaacGymEnvs' name, e.g. ``compute_ant_reward``)."""
    fn = find_function(tree, "compute_reward")
    if fn is not None:
        return fn
    found = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef) and _IGE_ENTRY.match(s.name)}  # fmt: skip
    if len(found) == 1:
        return next(iter(found.values()))
    defined = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
    if found:
        return RewardError(
            "signature",
            f"several reward functions ({', '.join(found)}); keep one, or name the one to use compute_reward",  # fmt: skip
        )
    return RewardError(
        "signature",
        "no reward function: define compute_reward(...) (Eureka) or compute_<task>_reward(...) (IsaacGymEnvs)"  # fmt: skip
        + (f"; found: {', '.join(defined)}" if defined else ""),
    )


def _const_index(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int:  # fmt: skip
        return -node.operand.value
    return None


def column_reads(fn: ast.AST, var: str, columns: Columns, batched: bool = True) -> list[UnknownName]:  # fmt: skip
    """Reads of unavailable columns of ``var`` (a :class:`Columns` vector) by constant index:
    ``var[:, 28:52]``, ``var[..., 3]`` (``batched``) or ``var[4:7]``, ``var[-3:]`` (one world).
    Computed indices are not checked here (those columns are NaN at run time)."""
    out = []
    width = columns.width
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == var):  # fmt: skip
            continue
        idx = node.slice
        if batched:
            if not (isinstance(idx, ast.Tuple) and len(idx.elts) == 2):
                continue
            idx = idx.elts[1]
        if isinstance(idx, ast.Slice):
            lo = _const_index(idx.lower) if idx.lower is not None else 0
            hi = _const_index(idx.upper) if idx.upper is not None else width
            if lo is None or hi is None or idx.step is not None:
                continue
            span = range(width)[lo:hi]
        else:
            i = _const_index(idx)
            if i is None or not -width <= i < width:
                continue
            span = range(width)[i : i + 1 if i != -1 else None]
        if not span:
            continue
        missing = columns.missing(span.start, span.stop)
        if missing:
            out.append(UnknownName(ast.unparse(node), node.lineno, f"columns {'; '.join(missing)}"))
    return out


def _used_names(fn: ast.FunctionDef) -> list[tuple[str, int]]:
    return [(a.arg, a.lineno) for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]  # fmt: skip


def check_names(
    used: list[tuple[str, int]],
    fn: ast.AST,
    task: str | None,
    state_names: Collection[str],
    constants: Mapping[str, Any] | None,
    what: str,
    var_of: Mapping[str, str] | None = None,
    shown: Mapping[str, str] | None = None,
) -> RewardError | None:
    """Every foreign name ``used`` (``(name, line)``) must be bound for ``task``: not unknown,
    not :class:`Unavailable`, a :class:`Constant` with a value (when ``constants`` is given),
    and no :class:`Columns` vector read at an unavailable column by constant index (the
    variable holding it is ``var_of.get(name, name)``; the error shows ``shown.get(name,
    name)``). All problems in one error."""
    names = eureka_names(task, state_names)
    unknown: dict[str, UnknownName] = {}
    for name, line in used:
        b = names.get(name)
        if name in unknown:
            continue
        text = (shown or {}).get(name, name)
        if b is None:
            unknown[name] = UnknownName(text, line)
        elif isinstance(b, Unavailable):
            unknown[name] = UnknownName(text, line, f"{b.reason} (task {task})")
        elif isinstance(b, Constant) and constants is not None and name not in constants:
            unknown[name] = UnknownName(text, line, f"its value could not be computed for task {task}")  # fmt: skip
        elif isinstance(b, Columns):
            for u in column_reads(fn, (var_of or {}).get(name, name), b):
                unknown.setdefault(u.name, UnknownName(u.name, u.line, f"{u.reason} on task {task}"))  # fmt: skip
    if unknown:
        known = [k for k, v in names.items() if not isinstance(v, Unavailable)]
        prefix = "env." if shown else ""
        return unknown_names_error(list(unknown.values()), [prefix + k for k in known], what, prefix)  # fmt: skip
    return None


def check_eureka(
    code: str,
    task: str | None,
    state_names: Collection[str],
    constants: Mapping[str, Any] | None = None,
) -> RewardError | None:
    """Static checks of an Eureka / IsaacGymEnvs reward: allow-list, one reward function
    (:func:`eureka_entry`), every argument bound for the task (:func:`check_names`)."""
    tree = parse_allowed(code)
    if isinstance(tree, RewardError):
        return tree
    fn = eureka_entry(tree)
    if isinstance(fn, RewardError):
        return fn
    if fn.args.vararg or fn.args.kwarg:
        return RewardError("signature", f"{fn.name} may not take *args or **kwargs", fn.lineno)
    return check_names(_used_names(fn), fn, task, state_names, constants, "argument")


def bind(
    name: str,
    names: Mapping[str, ForeignName],
    ctx: Mapping[str, Any],
    action: torch.Tensor,
    dt: float,  # fmt: skip
) -> Any:
    """The value of foreign ``name`` for one call (``ctx``: the state and the constants)."""
    b = names[name]
    if isinstance(b, Constant):
        return ctx[name]
    return b.fn(ctx, action, dt)  # type: ignore[union-attr]


def _return_names(fn: ast.FunctionDef) -> list[str] | None:
    """Names of the final ``return a, b, c`` of ``fn`` (``None``: not a tuple of names)."""
    last = fn.body[-1] if fn.body else None
    if isinstance(last, ast.Return) and isinstance(last.value, ast.Tuple):
        elts = last.value.elts
        if all(isinstance(e, ast.Name) for e in elts):
            return [e.id for e in elts]  # type: ignore[attr-defined]
    return None


def _roles(n: int, names: list[str] | None) -> list[str]:
    """What each element of an IsaacGymEnvs return tuple is: ``reward``, ``reset``, ``success``
    or ``other`` -- by position for 2- and 3-tuples, by the returned names otherwise
    (ShadowHand's ``reward, resets, goal_resets, progress_buf, successes, cons_successes``)."""
    if names is not None and len(names) == n and n > 3:
        roles = ["reward"]
        for nm in names[1:]:
            low = nm.lower()
            if "success" in low and "cons" not in low and "success" not in roles:
                roles.append("success")
            elif "reset" in low and "goal" not in low and "reset" not in roles:
                roles.append("reset")
            else:
                roles.append("other")
        return roles
    return ["reward", "reset", "success", *["other"] * max(0, n - 3)][:n]


def foreign_output(out: Any, ctx: Mapping[str, Any], roles_of: Callable[[int], list[str]]) -> Any:
    """A foreign reward's return value as the reward contract ``(total, {name: [N]})``.

    - a tensor: the total, no components (Eureka accepts a bare reward);
    - ``(total, {components})``: Eureka's shape, as it is;
    - ``(reward, reset)``, ``(reward, reset, successes)`` (IsaacGymEnvs) or a longer tuple
      whose names say which is which: the reward is the total; the reset becomes the signal
      component ``signal/terminate`` -- honoured by the env as an extra termination -- except on
      the time-limit steps (``episode_step >= max_episode_length - 1``: IsaacGymEnvs' own
      time-out reset; the env truncates those episodes itself); successes become
      ``signal/success``, recorded in ``info["episode"]``. The other elements are dropped.

    Anything else is returned unchanged (the guard then reports what is wrong with it).
    """
    if isinstance(out, torch.Tensor):
        return out, {}
    if not isinstance(out, tuple | list) or len(out) < 2:
        return out
    if len(out) == 2 and isinstance(out[1], dict):
        return out[0], out[1]
    if not all(isinstance(x, torch.Tensor) for x in out):
        return out
    comps: dict[str, torch.Tensor] = {}
    for role, value in zip(roles_of(len(out)), out, strict=True):
        if role == "reset":
            reset = value.reshape(-1) != 0
            limit = ctx.get("max_episode_length")
            step = ctx.get("episode_step")
            if isinstance(limit, int | float) and isinstance(step, torch.Tensor):
                reset = reset & (step < limit - 1)
            comps[TERMINATE] = reset.float()
        elif role == "success":
            comps[SUCCESS] = value.reshape(-1).float()
    return out[0], comps


def build_eureka(
    code: str,
    task: str | None,
    state_names: Collection[str],
    dt: float,
    constants: Mapping[str, Any] | None = None,
    *,
    filename: str,
) -> Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Build ``fn(state, action)`` from Eureka / IsaacGymEnvs source (after :func:`check_eureka`).

    Each argument is bound by name (:func:`bind`; ``constants`` from :func:`env_constants`);
    the return value is mapped by :func:`foreign_output`. Picklable by reference, so the
    sandbox can build it from the builder's arguments.
    """
    err = check_eureka(code, task, state_names, constants)
    if err:
        raise SandboxFailure(err)
    namespace = exec_source(code, filename, extra_globals=ISAACGYM_UTILS)
    tree = ast.parse(code)
    node = eureka_entry(tree)
    assert isinstance(node, ast.FunctionDef)
    fn = namespace[node.name]
    params = positional_params(node)
    kwonly = [a.arg for a in node.args.kwonlyargs]
    names = eureka_names(task, state_names)
    consts = _materialize(constants)
    ret_names = _return_names(node)

    def compute_reward(
        state: State, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ctx = StateDict({**consts, **state})
        args = [bind(p, names, ctx, action, dt) for p in params]
        kwargs = {p: bind(p, names, ctx, action, dt) for p in kwonly}
        return foreign_output(fn(*args, **kwargs), ctx, lambda n: _roles(n, ret_names))

    compute_reward.arguments = params + kwonly  # type: ignore[attr-defined]
    compute_reward.entry = node.name  # type: ignore[attr-defined]
    return compute_reward


# ---------------------------------------------------------------------------------------------
# Text2Reward names per task

TEXT2REWARD_ENTRIES = ("compute_dense_reward", "compute_sparse_reward", "compute_reward")
"""Function names the Text2Reward adapter looks for, in order."""


T2R = str | Binding | Unavailable
"""How a task binds a Text2Reward attribute: a state entry's name, a :class:`Binding` computed
from the state, or :class:`Unavailable`."""


def text2reward_attrs(task: str | None, state_names: Collection[str]) -> dict[str, T2R]:
    """``self.<path>`` -> how it is bound, for ``task``: every state entry under its own name,
    then the task's declared ``text2reward_attrs`` (entries the state has, bindings, and
    unavailable names). A path ending in ``()`` is a method (``env._get_pos_goal()``); it is
    stored without the parentheses, in :func:`text2reward_methods`."""
    out: dict[str, T2R] = {n: n for n in state_names}
    for path, value in (_task_declared(task, "text2reward_attrs") or {}).items():
        key = path[:-2] if path.endswith("()") else path
        if isinstance(value, str) and value not in state_names:
            continue
        out.setdefault(key, value)
    return out


def text2reward_methods(task: str | None) -> frozenset[str]:
    """The declared Text2Reward paths that are methods (``"env._get_pos_goal"``): calling them
    (with any arguments, which are ignored) returns the bound value."""
    return frozenset(p[:-2] for p in (_task_declared(task, "text2reward_attrs") or {}) if p.endswith("()"))  # fmt: skip


def text2reward_obs(task: str | None) -> Columns | None:
    """The task's MetaWorld observation layout for ``compute_dense_reward(self, action, obs)``
    (its optional ``text2reward_obs`` declaration), or ``None``."""
    cls = _task_class(task)
    value = getattr(cls, "text2reward_obs", None) if cls is not None else None
    return value if isinstance(value, Columns) else None


def _self_paths(fn: ast.FunctionDef, self_name: str) -> list[tuple[str, int]]:
    """Longest attribute chains rooted at ``self`` (``self.robot.ee_position`` -> "robot.ee_position")."""
    out = []
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == self_name and isinstance(node.ctx, ast.Load):
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


def check_text2reward(
    code: str,
    task: str | None,
    state_names: Collection[str],
    constants: Mapping[str, Any] | None = None,
) -> RewardError | None:
    """Static checks of a Text2Reward-style reward: allow-list, ``(self, action)`` (ManiSkill) or
    ``(self, action, obs)`` (MetaWorld, with the task's ``text2reward_obs``), every
    ``self.<path>`` bound for the task (all problems at once, with their lines)."""
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
    if len(params) < 1 or len(params) > 3:
        return RewardError(
            "signature",
            f"{fn.name}({', '.join(params)}) must take (self, action) or, as MetaWorld's, (self, action, obs)",  # fmt: skip
            fn.lineno,
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
        hit = next((".".join(parts[:k]) for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in attrs), None)  # fmt: skip
        name = f"self.{path}"
        if hit is not None and isinstance(attrs[hit], Unavailable):
            unknown.setdefault(f"self.{hit}", UnknownName(f"self.{hit}", line, f"{attrs[hit].reason} (task {task})"))  # type: ignore[union-attr]  # fmt: skip
        elif hit is None and path not in prefixes and name not in unknown:
            unknown[name] = UnknownName(name, line)
    if len(params) == 3:
        obs = text2reward_obs(task)
        if obs is None:
            unknown[params[2]] = UnknownName(
                params[2],
                fn.lineno,
                f"task {task} declares no MetaWorld observation (text2reward_obs); read self.<attributes> instead",  # fmt: skip
            )
        else:
            for u in column_reads(fn, params[2], obs, batched=False):
                unknown.setdefault(u.name, UnknownName(u.name, u.line, f"{u.reason} on task {task}"))  # fmt: skip
    if unknown:
        known = [f"self.{p}" for p, v in attrs.items() if not isinstance(v, Unavailable)]
        return unknown_names_error(list(unknown.values()), known, "attribute", prefix="self.")
    return None


class _Attrs:
    """``self`` of a Text2Reward function: attribute paths resolved to state arrays (and the
    declared methods to functions returning them)."""

    __slots__ = ("_rl_data", "_rl_prefix", "_rl_index", "_rl_methods")

    def __init__(self, data: dict[str, Any], prefix: str, index: int | None, methods: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self._rl_data, self._rl_prefix, self._rl_index = data, prefix, index
        self._rl_methods = methods

    def __getattr__(self, name: str) -> Any:
        path = self._rl_prefix + name
        if path in self._rl_data:
            value = self._rl_data[path]
            if self._rl_index is not None and isinstance(value, np.ndarray):
                value = _item(value[self._rl_index])
            if path in self._rl_methods:
                return lambda *args, **kwargs: value
            return value
        if any(k.startswith(path + ".") for k in self._rl_data):
            return _Attrs(self._rl_data, path + ".", self._rl_index, self._rl_methods)
        known = ", ".join(f"self.{k}" for k in sorted(self._rl_data))
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
    code: str,
    task: str | None,
    state_names: Collection[str],
    dt: float = 0.02,
    constants: Mapping[str, Any] | None = None,
    *,
    filename: str,
) -> Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Build a batched ``fn(state, action)`` from a single-world Text2Reward function.

    See the module docstring for the batched-or-loop decision and :func:`infer_components`
    for the components. Picklable by reference for
    :func:`rewardlab.rewards.sandbox.trial_run`.
    """
    err = check_text2reward(code, task, state_names, constants)
    if err:
        raise SandboxFailure(err)
    entry = _t2r_entry(ast.parse(code))
    assert entry is not None
    found: list[str] = []
    namespace = exec_source(
        code, filename, transform=lambda tree: found.extend(infer_components(tree, entry.name))
    )
    fn = namespace[entry.name]
    nparams = len(positional_params(entry))
    attrs = {k: v for k, v in text2reward_attrs(task, state_names).items() if not isinstance(v, Unavailable)}  # fmt: skip
    methods = text2reward_methods(task)
    obs_layout = text2reward_obs(task) if nparams == 3 else None
    consts = _materialize(constants)
    mode: dict[str, bool] = {}

    def call(data: dict[str, Any], index: int | None, act: np.ndarray) -> tuple[Any, dict]:
        me = _Attrs(data, "", index, methods)
        a = act if index is None else act[index]
        if nparams == 3:
            obs = data[_OBS] if index is None else data[_OBS][index]
            out = fn(me, a, obs)
        else:
            out = fn(me, a) if nparams == 2 else fn(me)
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
        ctx = StateDict({**consts, **state})

        def value(v: Any) -> Any:
            v = state[v] if isinstance(v, str) else v.fn(ctx, action, dt)
            return v.detach().cpu().numpy().astype(np.float64) if isinstance(v, torch.Tensor) else v  # fmt: skip

        data = {p: value(v) for p, v in attrs.items()}
        if obs_layout is not None:
            data[_OBS] = obs_layout.fn(ctx, action, dt).detach().cpu().numpy().astype(np.float64)
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


_OBS = "\0obs"
"""Key of MetaWorld's ``obs`` vector among a Text2Reward call's data (never an attribute)."""


def _batched_agrees(batched: Callable, loop: Callable, data: dict, act: np.ndarray, n: int) -> bool:  # fmt: skip
    """Whether calling on the whole batch gives ``[N]`` values equal to per-world calls."""
    try:
        total, parts = batched(data, act, n)
    except Exception:  # noqa: BLE001 - any failure means: not vectorizable
        return False
    if total.shape != (n,):
        return False
    k = min(n, 8)
    ref_total, ref_parts = loop({p: v[:k] if isinstance(v, np.ndarray) and v.ndim else v for p, v in data.items()}, act[:k], k)  # fmt: skip
    pairs = [(total[:k], ref_total)] + [(parts[c][:k], ref_parts[c]) for c in ref_parts]
    return all(np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True) for a, b in pairs)


# ---------------------------------------------------------------------------------------------
# DrEureka adapter

_DR_SKIP = ("__init__", "load_env")
"""Methods of DrEureka's reward class that only store the env (``self.env = env``)."""
_DR_SETTINGS = ("scales", "reward_scales", "only_positive_rewards")
"""Optional constants of a DrEureka / legged_gym reward file: per-term scales and clipping."""


@dataclass
class DrEurekaShape:
    """DrEureka's reward class (or its methods written as top-level functions of ``self``)."""

    methods: dict[str, ast.FunctionDef]
    """Method name -> definition (``compute_reward``, ``compute_success``, ``_reward_<term>``,
    helpers); hoisted to module level before the code is checked and run."""
    constants: list[str]
    """Class-level constants (``target_velocity = 2.0``), read as ``self.<name>``."""
    cls: ast.ClassDef | None
    """The class, when the code has one."""

    @property
    def terms(self) -> list[str]:
        """Term names of the ``_reward_<term>`` methods, sorted (as DrEureka's ``dir()`` lists
        them)."""
        return sorted(m[len("_reward_") :] for m in self.methods if m.startswith("_reward_"))


def _is_dr_method(fn: ast.stmt) -> bool:
    return isinstance(fn, ast.FunctionDef) and (fn.name in ("compute_reward", "compute_success") or fn.name.startswith("_reward_"))  # fmt: skip


def dreureka_container(tree: ast.Module) -> DrEurekaShape | None:
    """DrEureka's reward class of ``tree``: a class with ``compute_reward(self)`` or
    ``_reward_<term>(self)`` methods (``class EurekaReward``), or such functions of ``self``
    alone at the top level; ``None`` when the code has neither."""
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and any(_is_dr_method(b) for b in stmt.body):
            methods = {b.name: b for b in stmt.body if isinstance(b, ast.FunctionDef) and b.name not in _DR_SKIP}  # fmt: skip
            consts = [t.id for b in stmt.body if isinstance(b, ast.Assign) for t in b.targets if isinstance(t, ast.Name)]  # fmt: skip
            return DrEurekaShape(methods, consts, stmt)
    fns = [s for s in tree.body if _is_dr_method(s) and positional_params(s) == ["self"]]  # type: ignore[arg-type]
    if fns:
        methods = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef) and positional_params(s)[:1] == ["self"]}  # fmt: skip
        return DrEurekaShape(methods, [], None)
    return None


def _hoist(tree: ast.Module) -> DrEurekaShape | None:
    """Replace DrEureka's class by its methods and constants at module level (in place; line
    numbers kept), so that the allow-list checks them as functions and they run as such."""
    shape = dreureka_container(tree)
    if shape is None or shape.cls is None:
        return shape
    i = tree.body.index(shape.cls)
    body = [b for b in shape.cls.body if not (isinstance(b, ast.FunctionDef) and b.name in _DR_SKIP)]  # fmt: skip
    body = [b for b in body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    tree.body[i : i + 1] = [b for b in body if not isinstance(b, ast.Pass)]
    return shape


def _env_reads(fn: ast.FunctionDef, methods: Collection[str], consts: Collection[str]) -> tuple[list[tuple[str, int, str]], RewardError | None]:  # fmt: skip
    """Foreign names a DrEureka method reads: ``self.env.<name>``, or ``env.<name>`` after
    ``env = self.env``; as ``(name, line, shown)``. ``self.<method>`` and ``self.<constant>``
    are the class's own; anything else about ``self`` or ``env`` is an error."""
    aliases = {
        t.id
        for node in ast.walk(fn)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
        and node.value.attr == "env"
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    reads: list[tuple[str, int, str]] = []
    for root in ("self", *aliases):
        for path, line in _self_paths(fn, root):
            parts = path.split(".") if path else []
            if root == "self":
                if parts[:1] == ["env"]:
                    parts = parts[1:]
                    if not parts:
                        continue  # `env = self.env` (checked below)
                elif parts[:1] and (parts[0] in methods or parts[0] in consts):
                    continue
                else:
                    shown = f"self.{path}" if path else "self"
                    return (
                        [],
                        RewardError(
                            "unknown_state",
                            f"{shown}: DrEureka's reward reads the env as self.env.<name> (or env.<name> after env = self.env)",  # fmt: skip
                            line,
                        ),
                    )
            if not parts:
                return [], RewardError("forbidden", f"'{root}' may only be used for attribute reads (env.<name>)", line)  # fmt: skip
            reads.append((parts[0], line, "env." + ".".join(parts[:3])))
    return reads, None


def _dr_settings(tree: ast.Module) -> dict[str, Any]:
    """``scales`` / ``reward_scales`` (``{term: scale}``) and ``only_positive_rewards`` given as
    constants in the file (legged_gym's reward config), else nothing."""
    out: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id in _DR_SETTINGS:  # fmt: skip
            try:
                out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                continue
    if "reward_scales" in out:
        out.setdefault("scales", out.pop("reward_scales"))
    return out


def check_dreureka(
    code: str,
    task: str | None,
    state_names: Collection[str],
    constants: Mapping[str, Any] | None = None,
) -> RewardError | None:
    """Static checks of a DrEureka reward class: the class is hoisted (:func:`_hoist`), the
    allow-list checks its methods, every ``self.env.<name>`` must be bound for the task
    (:func:`check_names`, all problems at once)."""
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return tree
    shape = _hoist(tree)
    if shape is None:
        return RewardError("signature", "no DrEureka reward: a class with compute_reward(self) or _reward_<term>(self) methods")  # fmt: skip
    roots = {"self"} | {
        t.id
        for fn in shape.methods.values()
        for node in ast.walk(fn)
        if isinstance(node, ast.Assign) and ast.unparse(node.value) == "self.env"
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    err = check_ast(tree, free_roots=roots)
    if err:
        return err
    if "compute_reward" not in shape.methods and not shape.terms:
        return RewardError("signature", "the reward class has neither compute_reward(self) nor _reward_<term>(self) methods")  # fmt: skip
    used: list[tuple[str, int]] = []
    shown: dict[str, str] = {}
    for fn in shape.methods.values():
        if positional_params(fn)[:1] != ["self"]:
            return RewardError("signature", f"method {fn.name} must take self first", fn.lineno)
        reads, err = _env_reads(fn, shape.methods, shape.constants)
        if err:
            return err
        for name, line, text in reads:
            used.append((name, line))
            shown.setdefault(name, text)
    for name in ("compute_reward", "compute_success", *(f"_reward_{t}" for t in shape.terms)):
        fn = shape.methods.get(name)
        if fn is not None and positional_params(fn) != ["self"]:
            return RewardError("signature", f"{name}(self) takes no other argument", fn.lineno)
    return check_names(used, tree, task, state_names, constants, "attribute", shown=shown)


class _DrEnv:
    """``self.env`` of a DrEureka reward: foreign names bound for one call, computed once."""

    def __init__(self, names: Mapping[str, ForeignName], ctx: Mapping[str, Any], action: torch.Tensor, dt: float) -> None:  # fmt: skip
        self.__dict__["_rl"] = (names, ctx, action, dt, {})

    def __getattr__(self, name: str) -> Any:
        names, ctx, action, dt, cache = self.__dict__["_rl"]
        if name.startswith("_") or name not in names or isinstance(names[name], Unavailable):
            raise AttributeError(f"env.{name} is not bound for this task")
        if name not in cache:
            cache[name] = bind(name, names, ctx, action, dt)
        return cache[name]


class _DrSelf:
    """``self`` of a DrEureka reward's methods: ``self.env``, its methods and constants."""

    def __init__(self, env: _DrEnv, namespace: Mapping[str, Any], methods: Collection[str], consts: Collection[str]) -> None:  # fmt: skip
        self.__dict__["env"] = env
        self.__dict__["_rl"] = (namespace, set(methods), set(consts))

    def __getattr__(self, name: str) -> Any:
        namespace, methods, consts = self.__dict__["_rl"]
        if name in methods:
            fn = namespace[name]
            return lambda *args, **kwargs: fn(self, *args, **kwargs)
        if name in consts:
            return namespace[name]
        raise AttributeError(f"self.{name} does not exist")


def build_dreureka(
    code: str,
    task: str | None,
    state_names: Collection[str],
    dt: float,
    constants: Mapping[str, Any] | None = None,
    *,
    filename: str,
) -> Callable[[State, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Build ``fn(state, action)`` from a DrEureka reward class, summed as DrEureka sums it.

    - ``compute_reward(self)`` returning ``(total, {components})`` (DrEureka's forward
      locomotion): that total and those components;
    - otherwise the ``_reward_<term>(self)`` methods (DrEureka's globe walking): each term is a
      component, the total their sum, terms whose name contains ``success`` are left out of it
      (recorded as ``signal/<term>``); with legged_gym ``scales = {term: scale}`` in the file,
      only terms with a non-zero scale count, each times ``scale * dt``, the sum clipped at 0
      when ``only_positive_rewards = True``, and the ``termination`` term added after clipping;
    - ``compute_success(self)``, when defined, becomes ``signal/success`` (DrEureka sums it into
      its success metric).

    ``self.env.<name>`` is bound through the task's foreign names (:func:`eureka_names`).
    """
    err = check_dreureka(code, task, state_names, constants)
    if err:
        raise SandboxFailure(err)
    shape_box: list[DrEurekaShape] = []

    def transform(tree: ast.Module) -> None:
        shape = _hoist(tree)
        assert shape is not None
        shape_box.append(shape)

    namespace = exec_source(code, filename, transform=transform, extra_globals=ISAACGYM_UTILS)
    shape = shape_box[0]
    settings = _dr_settings(ast.parse(code))
    names = eureka_names(task, state_names)
    consts = _materialize(constants)
    scales = settings.get("scales")
    if isinstance(scales, dict):
        scales = {str(k): float(v) * dt for k, v in scales.items() if float(v) != 0.0}
    else:
        scales = None
    only_positive = bool(settings.get("only_positive_rewards", False))

    def compute_reward(
        state: State, action: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ctx = StateDict({**consts, **state})
        me = _DrSelf(_DrEnv(names, ctx, action, dt), namespace, shape.methods, shape.constants)
        comps: dict[str, torch.Tensor] = {}
        if "compute_reward" in shape.methods:
            out = foreign_output(namespace["compute_reward"](me), ctx, lambda n: _roles(n, None))
            if not (isinstance(out, tuple) and len(out) == 2):
                return out
            total, comps = out[0], dict(out[1])
        else:
            terms = [t for t in shape.terms if scales is None or t in scales]
            values = {t: namespace[f"_reward_{t}"](me).float() for t in terms}
            if scales is not None:
                parts = {t: v * scales[t] for t, v in values.items()}
                total = sum((v for t, v in parts.items() if t != "termination"), torch.zeros(action.shape[0]))  # fmt: skip
                if only_positive:
                    total = torch.clamp(total, min=0.0)
                if "termination" in parts:
                    total = total + parts["termination"]
                comps = parts
            else:
                comps = {t: v for t, v in values.items() if "success" not in t}
                total = sum(comps.values(), torch.zeros(action.shape[0]))
                comps.update({f"signal/{t}": v for t, v in values.items() if "success" in t})
        if "compute_success" in shape.methods:
            comps[SUCCESS] = namespace["compute_success"](me).float().reshape(-1)
        return total, comps

    compute_reward.terms = shape.terms  # type: ignore[attr-defined]
    return compute_reward


# ---------------------------------------------------------------------------------------------
# Style detection


def detect_style(code: str) -> str:
    """``"native"``, ``"eureka"``, ``"dreureka"`` or ``"text2reward"`` from the source's shape.

    Text2Reward: a ``compute_dense_reward``/``compute_sparse_reward``/``compute_reward`` whose
    first parameter is ``self`` and that takes the action (``(self, action)``, MetaWorld's
    ``(self, action, obs)``). DrEureka: a reward class (``class EurekaReward`` with
    ``compute_reward(self)`` or ``_reward_<name>(self)`` methods), or such methods as
    top-level functions of ``self`` alone. Native: ``compute_reward`` with two positional
    parameters whose first is read with string keys (``state["x"]``) or named
    ``state``/``states``/``s``. Eureka / IsaacGymEnvs: any other ``compute_reward`` or one
    ``compute_<task>_reward`` (arguments bound by name). Unparsable code is ``"native"`` (the
    native check then reports the syntax error).
    """
    tree = parse_source(code)
    if isinstance(tree, RewardError):
        return "native"
    if dreureka_container(tree) is not None:
        return "dreureka"
    t2r = _t2r_entry(tree)
    if t2r is not None and positional_params(t2r)[:1] == ["self"]:
        return "text2reward"
    fn = eureka_entry(tree)
    if isinstance(fn, RewardError):
        return "native"
    params = positional_params(fn)
    if fn.name != "compute_reward":
        return "eureka"  # IsaacGymEnvs' compute_<task>_reward
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


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        flat = np.asarray(value, dtype=np.float64).round(4)
        return f"`{flat.tolist()}`" if flat.size <= 8 else f"`[{flat.size} values]`"
    return f"`{value!r}`"


def foreign_doc(name: str, binding: Any, consts: Mapping[str, Any]) -> str:
    """One table cell: how ``binding`` (of foreign ``name``) is computed."""
    if isinstance(binding, Unavailable):
        return f"**unavailable**: {binding.reason}"
    if isinstance(binding, Constant):
        value = f"{_value_text(consts[name])} = " if name in consts else ""
        return f"constant: {value}{binding.doc}"
    if isinstance(binding, Columns):
        parts = [
            f"{a}"
            + (f":{b}" if b - a > 1 else "")
            + f" {p.label}"
            + ("" if p.fn else " (**unavailable**: NaN)")  # fmt: skip
            for a, b, p in binding.spans()
        ]
        return f"`[N, {binding.width}]` {binding.doc}: " + ", ".join(parts)
    return str(binding.doc)


def mapping_markdown(tasks: Collection[str] | None = None) -> str:
    """Markdown tables of the foreign names of each task (for docs/rewards.md), generated from
    the tasks' own declarations; ``tasks``: the shipped ones when ``None``."""
    out = []
    for task in shipped_task_names() if tasks is None else tasks:
        cls = get_task(task)
        names = [*cls(cls.default_config(), cls.load_model()).full_state_spec(), "episode_step"]
        consts = env_constants(task)
        out.append(f"### {task}\n")
        out.append(f"State entries (also bindable by their own names): {', '.join(f'`{n}`' for n in names)}.\n")  # fmt: skip
        out.append("| Eureka / IsaacGymEnvs / DrEureka name | bound to |")
        out.append("|---|---|")
        for name, binding in task_eureka_names(task).items():
            out.append(f"| `{name}` | {foreign_doc(name, binding, consts)} |")
        t2r = [(k, v) for k, v in (declared(cls, "text2reward_attrs") or {}).items() if not isinstance(v, str) or v in names]  # fmt: skip
        obs = text2reward_obs(task)
        if t2r or obs is not None:
            out.append("")
            out.append("| Text2Reward attribute | bound to |")
            out.append("|---|---|")
            for k, v in t2r:
                cell = f"`{v}`" if isinstance(v, str) else foreign_doc(k, v, consts)
                out.append(f"| `self.{k}` | {cell} |")
            if obs is not None:
                out.append(f"| `obs` (MetaWorld's `compute_dense_reward(self, action, obs)`) | {foreign_doc('obs', obs, consts)} |")  # fmt: skip
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
