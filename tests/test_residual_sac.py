"""Learning test of residual SAC (``agent=residual_sac``, marker ``slow``): issue 16's measurement
on arm_reach, the cheapest task, through the command line a user types; and (marker ``unit``)
the off-policy runner on a real-time env (a robot: updates only between episodes) and the
``backend=ros2`` settings.

A deliberately weak base: behaviour cloning from 8 scripted ``reach`` demos, 500 gradient steps,
the last network (``bc.keep_best=false``) -> s_BC, the task's own deterministic success on 64
fresh episodes (the run's ``eval.json``). Then ``rewardlab train agent=residual_sac
residual_sac.base_policy=<bc export> residual_sac.sparse_reward=true`` for 40k env steps (the
task file's ``residual_sac:`` section) -> s_res on 64 fresh episodes; issue 16's target is
s_res >= s_BC + 0.3 or s_res >= 0.9. The exported module (base + residual in one TorchScript
file) is then evaluated on the same episodes and must score what the run's evaluation scored.

Seed table (this machine, 2 cores shared with 4 other helpers, 1-min load 8-10), s_BC -> s_res:
seed 0: 0.33 -> 0.97, seed 1: 0.14 -> 0.95, seed 2: 0.27 -> 0.70 (the bound: 0.63, 0.44, 0.57).
With the SAC defaults (1 update per world-step, residual_scale 0.1) seed 2 reached only 0.48.
The whole test took 100 s under that load (the residual run 72 s); no idle machine was at hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rewardlab.agents.config import SACConfig
from rewardlab.agents.evaluate import evaluate
from rewardlab.agents.off_policy_runner import OffPolicyRunner
from rewardlab.agents.residual_sac import ResidualEnv
from rewardlab.cli import main
from rewardlab.config import load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.envs import EnvWrapper, get_task, make_env
from rewardlab.envs.demos import record_script

DEMOS = 8
BC_STEPS = 500
RES_STEPS = 40_000


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def train(*argv: str) -> None:
    """``rewardlab train task=arm_reach ...`` with the 64-episode evaluation; fails on an error."""
    code, out, err = run_cli("train", "task=arm_reach", "eval.episodes=64", "eval.num_envs=64",
                             "eval.video=false", *argv)  # fmt: skip
    assert code == 0, out[-2000:] + err[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_residual_sac_lifts_a_weak_bc_base_on_arm_reach(tmp_path: Path, seed: int) -> None:
    start = time.perf_counter()
    env = make_env("arm_reach", num_envs=DEMOS, nthread=1, seed=100 + seed)
    try:
        demos = record_script(env, "arm_reach", "reach", seed=100 + seed).save(tmp_path / "d.npz")
    finally:
        env.close()
    bc, res = tmp_path / "bc", tmp_path / "res"
    train("agent=bc", f"bc.demos={demos}", f"run_dir={bc}", f"seed={seed}",
          f"total_steps={BC_STEPS}", "num_envs=32", "bc.keep_best=false")  # fmt: skip
    s_bc = json.loads((bc / "eval.json").read_text())["success_rate"]
    t_res = time.perf_counter()
    train("agent=residual_sac", f"residual_sac.base_policy={bc / 'export'}",
          "residual_sac.sparse_reward=true", f"run_dir={res}", f"seed={seed}",
          f"total_steps={RES_STEPS}", "num_envs=64")  # fmt: skip
    result = json.loads((res / "eval.json").read_text())
    s_res = result["success_rate"]
    print(
        f"arm_reach seed {seed}: s_BC {s_bc:.2f} -> s_res {s_res:.2f} "
        f"(residual {time.perf_counter() - t_res:.0f} s, whole test "
        f"{time.perf_counter() - start:.0f} s)"
    )
    assert s_bc < 0.7, f"the base is not weak (s_BC {s_bc}): the test shows nothing"
    assert s_res >= s_bc + 0.3 or s_res >= 0.9, (s_bc, s_res)

    # the exported module alone (base + residual, raw observation -> action) scores the same
    module = torch.jit.load(str(res / "export" / "policy.pt")).eval()
    eval_seed = seed + 10_000
    eval_env = make_env("arm_reach", num_envs=64, seed=eval_seed)
    try:
        exported = evaluate(module, eval_env, episodes=64, seed=eval_seed)
    finally:
        eval_env.close()
    assert exported["successes"] == result["successes"], (exported["success_rate"], s_res)
    meta = json.loads((res / "export" / "policy.json").read_text())
    assert meta["agent"] == "residual_sac"


# -- a real-time env: the learner updates between episodes --------------------------------------


class SimulatedRobot(EnvWrapper):
    """One arm_reach world that behaves like the ros2 backend towards a learner: ``real_time``,
    calls ``set_between_episodes``' callback after each episode, has no snapshot, and records,
    for every step, the learner's update count when the step began and when it returned."""

    real_time = True

    def __init__(self, episode_steps: int) -> None:
        cfg = dataclasses.replace(
            get_task("arm_reach").default_config(), episode_steps=episode_steps
        )
        super().__init__(make_env("arm_reach", num_envs=1, cfg=cfg, nthread=1))
        self.between: Callable[[], None] | None = None
        self.runner: OffPolicyRunner | None = None
        self.steps: list[tuple[int, int, bool]] = []
        self.holds = 0

    def set_between_episodes(self, fn: Callable[[], None] | None) -> None:
        self.between = fn

    def hold(self) -> None:
        self.holds += 1

    def _updates(self) -> int:
        return self.runner.alg.num_updates if self.runner is not None else 0

    def step(self, actions: torch.Tensor) -> Any:
        before = self._updates()
        obs, reward, terminated, truncated, info = self.env.step(actions)
        ended = "episode" in info
        if ended and self.between is not None:
            self.between()
        self.steps.append((before, self._updates(), ended))
        return obs, reward, terminated, truncated, info

    def get_state_dict(self) -> dict[str, Any]:
        raise NotImplementedError("a robot has no snapshot")


@pytest.mark.unit
def test_off_policy_runner_updates_a_real_time_env_only_between_episodes(tmp_path: Path) -> None:
    robot = SimulatedRobot(episode_steps=20)
    cfg = SACConfig(learning_starts=40, batch_size=32, updates_per_step=1.5, buffer_size=1000,
                    actor_hidden=(32,), critic_hidden=(32,))  # fmt: skip
    runner = OffPolicyRunner(robot, cfg, log_dir=tmp_path, seed=0, checkpoint_every=5)
    robot.runner = runner
    try:
        history = runner.learn(130, progress=False)
    finally:
        robot.close()
    assert robot.between is not None and runner.real_time
    # never during a step that continues an episode, never between two steps
    for (b0, a0, ended), (b1, _, _) in zip(robot.steps, robot.steps[1:], strict=False):
        assert a0 == b0 or ended, robot.steps
        assert b1 == a0, robot.steps
    ends = [i for i, (_, _, ended) in enumerate(robot.steps) if ended]
    assert len(ends) == 6  # 130 steps of 20-step episodes
    # the update-to-data ratio is kept: all updates due before the last episode end ran there
    # (iterations of num_steps=4 steps earn 4 * 1.5 from step 40 on, i.e. from iteration 10)
    last_iteration = ends[-1] // cfg.num_steps + 1  # the hook runs inside that iteration
    assert runner.alg.num_updates == int(
        cfg.num_steps * cfg.updates_per_step * (last_iteration - 10)
    )
    rows = [r for r in history if "charts/updates" in r]
    assert rows and all(
        "charts/episode_length" in r and "perf/between_episodes_s" in r for r in rows
    )
    # checkpoints between episodes, the last one after holding the robot
    assert robot.holds == 1
    assert len(list((tmp_path / "checkpoints").glob("model_*.pt"))) >= 3


@pytest.mark.unit
def test_residual_env_forwards_the_real_time_hooks() -> None:
    robot = SimulatedRobot(episode_steps=10)
    try:
        view = ResidualEnv(robot, torch.nn.Linear(robot.obs_dim, robot.action_dim), 0.1)
        assert view.real_time
        calls: list[int] = []
        view.set_between_episodes(lambda: calls.append(1))
        view.reset(seed=0)
        for _ in range(10):
            view.step(torch.zeros(1, robot.action_dim))
        view.hold()
        assert calls == [1] and robot.holds == 1
        assert not ResidualEnv(robot.env, torch.nn.Identity(), 0.1).real_time
    finally:
        robot.close()


ROS2_ERRORS = [
    (["backend=ros2"], ["num_envs", "64", "expected 1 with backend=ros2"]),
    (["backend=ros2", "num_envs=1"], ["ros2.policy", "export folder", "residual_sac.base_policy"]),
    (["ros2.transport=udp"], ["ros2.transport", "'udp'", "rclpy, dds"]),
    (["ros2.action_timeout_s=0"], ["ros2.action_timeout_s", "> 0 or null"]),
    (["ros2.robot=''"], ["ros2.robot", "robot config"]),
]


@pytest.mark.unit
@pytest.mark.parametrize(("overrides", "expected"), ROS2_ERRORS)
def test_ros2_backend_settings_are_checked_at_load(
    overrides: list[str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config(["task=arm_reach", *overrides])
    msg = str(info.value)
    assert all(part in msg for part in expected), msg
    assert "\n" not in msg


@pytest.mark.unit
def test_ros2_backend_takes_the_layout_from_the_residual_base() -> None:
    cfg = load_train_config(["task=arm_reach", "agent=residual_sac", "backend=ros2", "num_envs=1",
                             "residual_sac.base_policy=runs/bc/export"])  # fmt: skip
    assert cfg.ros2_policy() == "runs/bc/export"
    other = load_train_config(["task=arm_reach", "agent=residual_sac", "backend=ros2", "num_envs=1",
                               "residual_sac.base_policy=b", "ros2.policy=layout"])  # fmt: skip
    assert other.ros2_policy() == "layout"
