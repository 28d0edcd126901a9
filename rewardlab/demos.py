"""Recording demonstrations from every source into one episode file (``rewardlab demos``).

The format and the simulation/bag recorders are :mod:`rewardlab.envs.demos`; this module adds
what needs the application: building the task's env from a config, and loading a trained policy
from a run directory (any agent's checkpoint, :func:`rewardlab.pipeline.load_policy`) or an
export (``policy.pt``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab import pipeline
from rewardlab.agents.policy import ExportedPolicy, Policy
from rewardlab.config import TrainConfig, train_config_from_dict
from rewardlab.core.config import COMMAND_LINE, ConfigError
from rewardlab.demo_commands import DemosArgs
from rewardlab.envs.base import BatchedEnv
from rewardlab.envs.demos import (
    Episodes,
    episodes_from_bags,
    perturbed,
    record,
    record_script,
    scripts_of,
)
from rewardlab.runs import RunDir, load_run_config


def _task_cfg(task: str, task_cfg: Mapping[str, Any]) -> TrainConfig:
    return train_config_from_dict({"task": task, "task_cfg": dict(task_cfg)}, COMMAND_LINE)


def _env(cfg: TrainConfig, episodes: int, seed: int) -> BatchedEnv:
    return pipeline.make_eval_env(cfg, num_envs=episodes, seed=seed)


def _default_script(task: str) -> str:
    table = scripts_of(task)
    return next((n for n, s in table.items() if s.kind == "success"), next(iter(table)))


def load_demo_policy(
    path: str | Path, env_of: Any, deterministic: bool
) -> tuple[TrainConfig, Policy, str]:
    """A trained policy from a run directory or an export, and the config of its task.

    Args:
        path: a run directory (latest checkpoint, else its export), an export folder or a
            ``policy.pt``.
        env_of: ``env_of(cfg) -> BatchedEnv`` builds the env the policy is loaded for.
        deterministic: refuse an exported policy when false (it cannot sample).

    Returns:
        ``(cfg, policy, name)``: the task config, the policy, and the file it came from.

    Raises:
        ConfigError: ``path`` is none of those (one line).
    """
    p = Path(path)
    if p.is_dir() and (p / "config.yaml").is_file():
        cfg = load_run_config(p)
        env = env_of(cfg)
        try:
            loaded = pipeline.load_policy(cfg, RunDir(p), env, "auto")
        finally:
            env.close()
        return cfg, loaded.policy, str(loaded.path)
    pt = p / "policy.pt" if p.is_dir() else p
    if not pt.is_file() or pt.suffix != ".pt":
        raise ConfigError(
            COMMAND_LINE, "policy",
            f"{str(path)!r} is not a run directory (config.yaml), an export folder or a policy.pt",
        )  # fmt: skip
    sidecar = pt.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(
            COMMAND_LINE,
            "policy",
            f"{str(sidecar)!r} is missing or not JSON (the export's sidecar)",
        ) from None
    run_config = pt.parent.parent / "config.yaml"  # runs/<x>/export/policy.pt
    if run_config.is_file():
        cfg = load_run_config(pt.parent.parent)
    else:
        cfg = _task_cfg(str(meta.get("task")), {})
    if not deterministic:
        raise ConfigError(
            COMMAND_LINE, "deterministic",
            "false needs a stochastic policy: give the run directory (its checkpoint), not the export",
        )  # fmt: skip
    return cfg, ExportedPolicy(pt), str(pt)


def record_demos(a: DemosArgs) -> str:
    """Record the episodes ``a`` asks for into ``a.out``; returns a one-line summary."""
    steps, hold = a.steps, a.hold_steps
    if a.source == "bag":
        from rewardlab.deploy.robot_config import load_robot_config

        _task_cfg(a.task, a.task_cfg)  # the task exists
        root = Path(a.bag or "")
        if not root.is_dir():
            raise ConfigError(COMMAND_LINE, "bag", f"{a.bag!r} is not a folder")
        bags = sorted(d for d in root.iterdir() if (d / "metadata.yaml").is_file())
        bags = bags or [root]
        image = load_robot_config(a.robot).topics.image or None
        eps = episodes_from_bags(bags, a.task, image_topic=image)
    elif a.source == "script":
        cfg = _task_cfg(a.task, a.task_cfg)
        script = a.script or _default_script(a.task)
        env = _env(cfg, a.episodes, a.seed)
        try:
            eps = record_script(
                env, a.task, script, steps=steps, hold_steps=hold, seed=a.seed,
                task_cfg=cfg.task_cfg, noise=a.noise, epsilon=a.epsilon,
            )  # fmt: skip
        finally:
            env.close()
    else:

        def env_of(cfg: TrainConfig) -> BatchedEnv:
            return _env(cfg, a.episodes, a.seed)

        cfg, policy, name = load_demo_policy(a.policy or "", env_of, a.deterministic)
        if a.task and a.task != cfg.task:
            raise ConfigError(
                COMMAND_LINE, "task", f"got {a.task!r}, but the policy was trained on {cfg.task!r}"
            )
        if not a.deterministic and not getattr(policy, "stochastic", False):
            raise ConfigError(
                COMMAND_LINE, "deterministic",
                f"false needs a stochastic policy; {name} is deterministic (bc, an export)",
            )  # fmt: skip
        env = env_of(cfg)
        choose = policy if a.deterministic else policy.sample

        def act(obs: torch.Tensor, state: Any, env: BatchedEnv) -> torch.Tensor:
            return choose(obs.cpu())

        try:
            eps = record(
                env, perturbed(act, a.noise, a.epsilon, a.seed), task=cfg.task, source="policy",
                name=name, kind="policy", steps=steps, hold_steps=hold, seed=a.seed,
                task_cfg=cfg.task_cfg,
                meta={"deterministic": a.deterministic, "noise": a.noise, "epsilon": a.epsilon},
            )  # fmt: skip
        finally:
            env.close()
    total = eps.num_episodes
    if a.only_success and a.source != "bag":
        keep = eps.episode_success
        if not keep.any():
            raise ValueError(
                f"only_success=true: none of the {total} episodes ended in the task's success; "
                "nothing written"
            )
        eps = eps.select(keep)
    eps.save(a.out)
    rate = float(np.mean(eps.episode_success)) if a.source != "bag" else float("nan")
    return (
        f"[rewardlab] wrote {eps.num_episodes} of {total} episodes ({eps.steps} steps, success "
        f"{'n/a' if a.source == 'bag' else f'{rate:.2f}'}) of {eps.task} from {a.source} to {a.out}"
    )


def describe(path: str | Path) -> str:
    """A few lines about an episode file: task, source, sizes, success."""
    eps = Episodes.load(path)
    rows = [
        f"file:         {path}",
        f"task:         {eps.task} (task_cfg {eps.task_cfg or '{}'})",
        f"source:       {eps.source} ({', '.join(sorted(set(eps.script)))})",
        f"episodes:     {eps.num_episodes}, {eps.steps} steps (length {eps.length.min()}-{eps.length.max()})",
        f"observations: {eps.observations.shape[2:]}  actions: {eps.actions.shape[2:]}",
        f"physics:      {', '.join(eps.physics) or '-'}  frames: {'yes' if eps.frames is not None else 'no'}",
    ]
    if eps.meta.get("labels") != "none":
        rows.append(f"success:      {float(np.mean(eps.episode_success)):.2f}")
    return "\n".join(rows)
