"""Tasks from an MJCF + YAML file (envs/tasks/mjcf_yaml.py): the shipped example, every state
kind against MuJoCo's own numbers, registration, and the errors bad YAML gives."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
import yaml

from rewardlab.envs import make_env, task_names
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.mjcf_yaml import (
    _BY_PATH,
    AUTHORING_STATE_KINDS,
    AUTHORING_TERM_KINDS,
    CUSTOM_DIR,
    STATE_KINDS,
    TERM_KINDS,
    YamlTask,
    YamlTaskError,
    load_yaml_task_spec,
    register_yaml_dir,
    register_yaml_task,
)

pytestmark = pytest.mark.unit

EXAMPLE = CUSTOM_DIR / "pendulum_swingup.yaml"


@pytest.fixture(autouse=True)
def _restore_registry():
    """Tasks these tests register do not outlive them (other tests iterate over task_names())."""
    from rewardlab.envs.tasks import base

    live = (base._REGISTRY, base._FACTORIES, base._BROKEN, _BY_PATH)
    saved = [dict(d) for d in live]
    yield
    for d, s in zip(live, saved, strict=True):
        d.clear()
        d.update(s)


def _example_doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _write(tmp_path: Path, doc: dict | str, name: str = "task.yaml") -> Path:
    shutil.copy(CUSTOM_DIR / "pendulum.xml", tmp_path / "pendulum.xml")
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# The shipped example


def test_example_is_registered_and_runs() -> None:
    assert "pendulum_swingup" in task_names()
    cls = get_task("pendulum_swingup")
    assert issubclass(cls, YamlTask)
    spec = cls.spec
    assert spec.path == EXAMPLE.resolve() and spec.model == (CUSTOM_DIR / "pendulum.xml").resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    cfg = cls.default_config()
    assert (cfg.frame_skip, cfg.episode_steps, cfg.reset_noise) == (2, 250, 0.1)
    assert cls.success_threshold == 0.8

    env = make_env("pendulum_swingup", num_envs=4, seed=0, nthread=1)
    env.reset()
    s = env.state()
    assert list(s) == [
        "angle",
        "angvel",
        "tip_pos",
        "tip_height",
        "tip_to_top",
        "last_action",
        "prev_action",
        "episode_step",  # every simulated task's state ends with it (SimTaskEnv)
    ]
    # starts hanging down (keyframe "down")
    assert (s["angle"].abs() > 3.0).all() and (s["tip_height"] < 0.55).all()
    assert env.task.obs_layout() == [("cos(angle)", 1), ("sin(angle)", 1), ("0.1 * angvel", 1)]
    assert set(env.task.reward_terms()) == {"upright", "near_top", "velocity", "effort"}
    obs, rew, *_ = env.step(torch.zeros(4, 1))
    s = env.state()
    torch.testing.assert_close(obs[:, 0], torch.cos(s["angle"]))
    torch.testing.assert_close(obs[:, 2], 0.1 * s["angvel"])
    expected = (
        torch.cos(s["angle"])
        + 0.5 * torch.exp(-(s["tip_to_top"] ** 2) / 0.05)
        - 0.001 * s["angvel"] ** 2
    )
    torch.testing.assert_close(rew, expected)
    assert not env.success().any()
    env.close()


def test_reward_weights_override() -> None:
    from rewardlab.envs.tasks.base import replace_config

    cls = get_task("pendulum_swingup")
    cfg = replace_config(cls.default_config(), reward_weights={"effort": -1.0})
    env = make_env("pendulum_swingup", num_envs=2, cfg=cfg, nthread=1)
    assert env.task.reward_terms()["effort"].weight == -1.0
    env.close()
    with pytest.raises(ValueError, match="unknown term"):
        make_env("pendulum_swingup", num_envs=2, nthread=1,
                 cfg=replace_config(cls.default_config(), reward_weights={"nope": 1.0}))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Every state kind against MuJoCo

_KINDS_XML = """
<mujoco>
  <option timestep="0.005"/>
  <worldbody>
    <geom type="plane" size="2 2 .1"/>
    <camera name="cam" pos="0 -3 1" xyaxes="1 0 0 0 0 1"/>
    <body name="arm" pos="0 0 1">
      <joint name="j1" type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 .3 0 0" size=".03"/>
      <body name="link2" pos=".3 0 0" euler="0.3 0 0.2">
        <joint name="j2" type="hinge" axis="0 0 1"/>
        <joint name="s1" type="slide" axis="1 0 0" range="-.1 .1"/>
        <geom type="capsule" fromto="0 0 0 .2 0 0" size=".02"/>
        <site name="tip" pos=".2 0 0"/>
      </body>
    </body>
    <body name="ball" pos=".5 .5 .5"><freejoint/><geom type="sphere" size=".05" pos=".02 0 0"/></body>
  </worldbody>
  <actuator><motor joint="j1" gear="5"/><motor joint="j2"/><motor joint="s1" gear="10"/></actuator>
  <sensor>
    <framepos name="tip_sensor" objtype="site" objname="tip"/>
    <jointvel name="j1v" joint="j1"/>
  </sensor>
  <keyframe><key name="start" qpos="0.4 3.0 0 .5 .5 .5 1 0 0 0"/></keyframe>
</mujoco>
"""

_KINDS_YAML = {
    "name": "kinds_probe",
    "model": "kinds.xml",
    "frame_skip": 3,
    "episode_steps": 40,
    "reset_noise": 0.3,
    "keyframe": "start",
    "state": {
        "q": {"kind": "joint_pos", "joints": ["j1", "j2", "s1"], "wrap": True},
        "q1": {"kind": "joint_pos", "joint": "j1"},
        "qd": {"kind": "joint_vel", "joints": ["j1", "s1"]},
        "link_pos": {"kind": "body_pos", "body": "link2"},
        "link_z": {"kind": "body_pos", "body": "link2", "axis": "z"},
        "ball_quat": {"kind": "body_quat", "body": "ball"},
        "ball_up": {"kind": "body_upright", "body": "ball"},
        "link_vel": {"kind": "body_linvel", "body": "link2"},
        "ball_vel": {"kind": "body_linvel", "body": "ball"},
        "link_angvel": {"kind": "body_angvel", "body": "link2"},
        "ball_angvel_y": {"kind": "body_angvel", "body": "ball", "axis": "y"},
        "tip": {"kind": "site_pos", "site": "tip"},
        "gap": {"kind": "distance", "from": {"site": "tip"}, "to": {"body": "ball"}},
        "gap2": {"kind": "site_distance", "from": {"site": "tip"}, "to": {"body": "ball"}},
        "off": {"kind": "offset", "from": {"site": "tip"}, "to": {"body": "ball"}},
        "tip_sensor": {"kind": "sensor", "sensor": "tip_sensor"},
        "j1v": {"kind": "sensor", "sensor": "j1v"},
    },
    "observation": ["q", "qd", {"state": "q1", "transform": "sin"}, "off"],
    "success": [
        {"state": "gap", "op": "<", "value": 0.1},
        {"state": "j1v", "op": "<", "value": 5, "abs": True},
    ],
    "termination": [
        {"state": "link_z", "op": "<", "value": -5},
        {"state": "ball_up", "op": "<", "value": -2},
    ],
    "reward": {
        "a": {"kind": "value", "state": "gap"},
        "b": {"kind": "negative", "state": "gap", "weight": 0.5},
        "c": {"kind": "abs", "state": "off"},
        "d": {"kind": "square", "state": "qd", "weight": -0.1},
        "e": {"kind": "norm", "state": "off"},
        "f": {"kind": "cos", "state": "q1"},
        "g": {"kind": "gaussian", "state": "off", "sigma": 0.5, "target": 0.1},
        "h": {"kind": "action_l2", "weight": -0.01},
        "i": {"kind": "action_rate_l2", "weight": -0.01},
        "j": {"kind": "alive"},
    },
}


def test_every_state_and_term_kind_matches_mujoco(tmp_path: Path) -> None:
    # (the authoring kinds have their own probe: tests/test_authoring_yaml.py)
    assert {e["kind"] for e in _KINDS_YAML["state"].values()} == set(STATE_KINDS) - set(AUTHORING_STATE_KINDS)  # fmt: skip
    assert {t["kind"] for t in _KINDS_YAML["reward"].values()} == set(TERM_KINDS) - set(AUTHORING_TERM_KINDS)  # fmt: skip
    (tmp_path / "kinds.xml").write_text(_KINDS_XML)
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(_KINDS_YAML))
    cls = register_yaml_task(path)
    assert register_yaml_task(path) is cls  # idempotent
    assert get_task("kinds_probe") is cls
    assert set(cls.sim_fields) == {"xpos", "xquat", "cvel", "subtree_com", "site_xpos", "sensordata"}  # fmt: skip

    env = make_env("kinds_probe", num_envs=3, seed=0, nthread=1)
    env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        env.step(torch.rand(3, 3, generator=g) * 2 - 1)
    s = env.state()
    spec = env.state_spec()
    assert spec["q"].shape == (3,) and spec["q1"].shape == () and spec["tip_sensor"].shape == (3,)  # fmt: skip
    assert spec["j1v"].shape == () and spec["link_z"].shape == () and spec["gap"].shape == ()
    assert spec["q"].unit == "m or rad" and spec["qd"].unit == "m/s or rad/s"
    assert env.obs_dim == 3 + 2 + 1 + 3

    m = env.model
    for w in range(3):
        d = env._batch.get_data(w)
        mujoco.mj_forward(m, d)

        def near(name: str, ref: object, w: int = w) -> None:
            np.testing.assert_allclose(s[name][w].numpy(), ref, atol=2e-5, err_msg=name)

        wrapped = (d.qpos[1] + np.pi) % (2 * np.pi) - np.pi
        near("q", [(d.qpos[0] + np.pi) % (2 * np.pi) - np.pi, wrapped, d.qpos[2]])
        near("q1", d.qpos[0])
        near("qd", [d.qvel[0], d.qvel[2]])
        link, ball = m.body("link2").id, m.body("ball").id
        near("link_pos", d.xpos[link])
        near("link_z", d.xpos[link][2])
        near("ball_quat", d.xquat[ball])
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, d.xquat[ball])
        near("ball_up", mat[8])
        vel = np.zeros(6)
        for name, body in (("link_vel", link), ("ball_vel", ball)):
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, body, vel, 0)
            near(name, vel[3:])
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, link, vel, 0)
        near("link_angvel", vel[:3])
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, ball, vel, 0)
        near("ball_angvel_y", vel[1])
        tip = d.site("tip").xpos
        near("tip", tip)
        near("off", d.xpos[ball] - tip)
        near("gap", np.linalg.norm(d.xpos[ball] - tip))
        near("gap2", np.linalg.norm(d.xpos[ball] - tip))
        near("tip_sensor", tip)
        near("j1v", d.qvel[0])

    # conditions: success = all, termination = any
    torch.testing.assert_close(env.success(), (s["gap"] < 0.1) & (s["j1v"].abs() < 5))
    assert not env.task.terminated(s).any()
    # reward terms compute what their kind says
    action = torch.rand(3, 3, generator=g) * 2 - 1
    terms = {k: t.func(s, action, **t.params) for k, t in env.task.reward_terms().items()}
    off = s["off"]
    torch.testing.assert_close(terms["a"], s["gap"])
    torch.testing.assert_close(terms["b"], -s["gap"])
    torch.testing.assert_close(terms["c"], off.abs().sum(-1))
    torch.testing.assert_close(terms["d"], (s["qd"] ** 2).sum(-1))
    torch.testing.assert_close(terms["e"], off.norm(dim=-1))
    torch.testing.assert_close(terms["f"], torch.cos(s["q1"]))
    torch.testing.assert_close(terms["g"], torch.exp(-((off - 0.1) ** 2).sum(-1) / 0.5))
    torch.testing.assert_close(terms["h"], (action**2).sum(-1))
    torch.testing.assert_close(terms["j"], torch.ones(3))
    env.close()


def test_registration_is_lazy_and_names_are_unique(tmp_path: Path) -> None:
    doc = _example_doc()
    doc["name"] = "lazy_pendulum"
    path = _write(tmp_path, doc, "lazy.yaml")
    # a broken file registers under its stem and reports its error when used
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert register_yaml_dir(tmp_path) == ["broken", "lazy_pendulum"]
    assert path.resolve() not in _BY_PATH  # nothing built yet
    assert "lazy_pendulum" in task_names()
    cls = get_task("lazy_pendulum")
    assert path.resolve() in _BY_PATH and cls.name == "lazy_pendulum"
    assert register_yaml_task(path) is cls
    with pytest.raises(YamlTaskError, match="broken.yaml: invalid YAML"):
        get_task("broken")

    # another file claiming a taken name is refused
    other = tmp_path / "sub"
    other.mkdir()
    with pytest.raises(ValueError, match="already registered"):
        register_yaml_task(_write(other, doc, "dup.yaml"))
    doc["name"] = "cartpole_balance"
    with pytest.raises(ValueError, match="already registered"):
        register_yaml_task(_write(other, doc, "dup2.yaml"))
    with pytest.warns(UserWarning, match="already registered"):
        assert register_yaml_dir(other) == []


def test_broken_task_files_are_listed_not_fatal(tmp_path: Path) -> None:
    """A listing (``rewardlab tasks``) learns which registered tasks cannot load, one line each,
    instead of aborting on the first broken file."""
    from rewardlab.envs import broken_tasks

    good = _example_doc()
    good["name"] = "fine_pendulum"
    _write(tmp_path, good, "fine.yaml")
    bad_model = _example_doc()
    bad_model["name"] = "bad_joint"
    bad_model["state"]["angle"]["joint"] = "nope"
    _write(tmp_path, bad_model, "bad_joint.yaml")
    (tmp_path / "syntax.yaml").write_text("name: [unclosed\n")
    assert register_yaml_dir(tmp_path) == ["bad_joint", "fine_pendulum", "syntax"]
    broken = broken_tasks()
    assert set(broken) >= {"bad_joint", "syntax"} and "fine_pendulum" not in broken
    assert "bad_joint.yaml: state.angle.joint: got 'nope'" in broken["bad_joint"]
    assert "syntax.yaml: invalid YAML" in broken["syntax"]
    assert all("\n" not in line for line in broken.values())
    assert not set(broken) & {"pendulum_swingup", "cartpole_balance"}
    assert get_task("fine_pendulum").name == "fine_pendulum"
    with pytest.raises(YamlTaskError, match="state.angle.joint"):
        get_task("bad_joint")


# ---------------------------------------------------------------------------------------------
# Bad YAML gives errors that name the file, the key, the bad value and the allowed values


def _set(doc: dict, dotted: str, value: object) -> dict:
    keys = dotted.split(".")
    node = doc
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()

BAD = [
    # (key to change, new value, substrings the error must contain)
    (
        "state.tip_pos.kind",
        "site_position",
        ["state.tip_pos.kind", "'site_position'", "allowed:", "site_pos", "body_linvel"],
    ),
    ("success.op", "=>", ["success.op", "'=>'", "<, <=, >, >="]),
    ("success.state", "tip_pos", ["success.state", "'tip_pos'", "scalar", "tip_height"]),
    ("observation", ["angle", "nope"], ["observation[1].state", "'nope'", "angle", "tip_to_top"]),
    ("frameskip", 2, ["frameskip", "unknown key", "frame_skip"]),
    ("reward", _DELETE, ["reward", "required key is missing"]),
    ("frame_skip", "two", ["frame_skip", "'two'", "integer >= 1"]),
    ("episode_steps", 0, ["episode_steps", "0", "integer >= 1"]),
    ("reset_noise", -1, ["reset_noise", "-1", ">= 0"]),
    ("success_threshold", 2, ["success_threshold", "2", "<= 1.0"]),
    ("reward.upright.kind", "exp", ["reward.upright.kind", "'exp'", "gaussian", "action_l2"]),
    ("reward.near_top.sigma", _DELETE, ["reward.near_top.sigma", "required"]),
    ("reward.near_top.sigma", 0, ["reward.near_top.sigma", "> 0.0"]),
    ("reward.upright.state", "tip_pos", ["reward.upright.state", "'tip_pos'", "scalar", "angle"]),
    ("reward.upright.state", "nope", ["reward.upright.state", "'nope'", "angle"]),
    ("reward.effort.state", "angle", ["reward.effort.state", "unknown key", "kind, weight"]),
    ("reward.upright.weight", "big", ["reward.upright.weight", "'big'", "finite number"]),
    ("state.angle.joint", "hing", ["state.angle.joint", "'hing'", "no joint", "hinge"]),
    ("state.tip_pos.site", "tipp", ["state.tip_pos.site", "'tipp'", "tip, top"]),
    ("state.tip_height.axis", "w", ["state.tip_height.axis", "'w'", "x, y, z"]),
    ("state.tip_to_top.from", {"geom": "pole"}, ["state.tip_to_top.from", "site", "body"]),
    ("state.angle.wrap", "yes", ["state.angle.wrap", "'yes'", "true or false"]),
    ("state.angle.joints", ["hinge"], ["state.angle", "exactly one of 'joint'", "joints"]),
    (
        "state.last_action",
        {"kind": "joint_pos", "joint": "hinge"},
        ["state.last_action", "always provided"],
    ),
    ("name", "Pendulum", ["name", "'Pendulum'", "lowercase"]),
    ("model", "missing.xml", ["model", "not found", "missing.xml"]),
    ("keyframe", "up", ["keyframe", "'up'", "down"]),
    (
        "termination",
        {"state": "angvel", "op": ">", "value": 50, "abs": 1},
        ["termination.abs", "true or false"],
    ),
    # the task's knowledge (rewardlab.envs.tasks.knowledge)
    ("reward_camera.track_body", "nope", ["reward_camera.track_body", "'nope'", "pole"]),
    ("reward_camera.distance", -1, ["reward_camera.distance", "-1", "> 0"]),
    ("reward_camera.lookat", [0, 1], ["reward_camera.lookat", "[0, 1]", "list of 3 numbers"]),
    ("prompts.goal", [], ["prompts.goal", "at least one"]),
    ("prompts", {"opt_out": ""}, ["prompts.opt_out", "''", "saying why"]),
    ("eureka_names.dof_pos", ["tip_pos"], ["eureka_names.dof_pos[0]", "'tip_pos'", "scalar"]),
    ("eureka_names.pole_angle", "nope", ["eureka_names.pole_angle", "'nope'", "angvel"]),
    ("text2reward_attrs.pole_angle", "angel", ["text2reward_attrs.pole_angle", "'angel'", "angle"]),
    ("scripted_episodes", {"swing": "x"}, ["scripted_episodes", "opt_out", "Python"]),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[b[0] + "=" + str(b[1])[:12] for b in BAD])  # fmt: skip
def test_bad_yaml_errors_are_clear(tmp_path: Path, key: str, value: object, expected: list[str]) -> None:  # fmt: skip
    path = _write(tmp_path, _set(_example_doc(), key, value), "bad_task.yaml")
    with pytest.raises(YamlTaskError) as err:
        register_yaml_task(path)
    msg = str(err.value)
    assert str(path.resolve()) in msg, msg
    for part in expected:
        assert part in msg, f"{part!r} not in: {msg}"


def test_unparsable_and_non_mapping_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nstate: [unclosed\n", "syntax.yaml")
    with pytest.raises(YamlTaskError, match=r"syntax\.yaml: invalid YAML"):
        load_yaml_task_spec(path)
    path = _write(tmp_path, "- just\n- a list\n", "list.yaml")
    with pytest.raises(YamlTaskError, match=r"list\.yaml: got \[.*\(list\), expected a mapping"):
        load_yaml_task_spec(path)
    with pytest.raises(YamlTaskError, match=r"absent\.yaml: file not found"):
        load_yaml_task_spec(tmp_path / "absent.yaml")
    # bounded, safe YAML (rewardlab.core.config.load_yaml): an alias bomb is refused in one line
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    path = _write(tmp_path, bomb + "name: *h\n", "bomb.yaml")
    with pytest.raises(YamlTaskError, match=r"bomb\.yaml: invalid YAML: more than") as err:
        load_yaml_task_spec(path)
    assert len(str(err.value)) < 600


def test_acceleration_sensors_are_read_with_a_note(tmp_path: Path) -> None:
    """Acceleration-stage sensors (touch, accelerometer) hold the value of the control step's last
    physics substep (the batch keeps them through its velocity-stage pass); their doc says so."""
    xml = (
        (CUSTOM_DIR / "pendulum.xml")
        .read_text()
        .replace(
            "</actuator>", '</actuator>\n  <sensor><accelerometer name="acc" site="tip"/></sensor>'
        )
    )
    (tmp_path / "pendulum.xml").write_text(xml)
    doc = _example_doc()
    doc["name"] = "acc_probe"
    doc["state"]["acc"] = {"kind": "sensor", "sensor": "acc"}
    path = tmp_path / "acc.yaml"
    path.write_text(yaml.safe_dump(doc))
    register_yaml_task(path)
    env = make_env("acc_probe", num_envs=2, nthread=1)
    env.reset()
    env.step(torch.zeros(2, 1))
    assert "acceleration-stage" in env.state_spec()["acc"].doc
    acc = env.state()["acc"]
    assert acc.shape == (2, 3) and torch.isfinite(acc).all()
    assert acc.abs().max() > 1.0  # gravity's reaction at least: a real value, not zeros
    env.close()


def test_schema_doc_example_is_valid(tmp_path: Path) -> None:
    """The schema in the module docstring stays a valid task (with a model that has its names)."""
    from rewardlab.envs.tasks import mjcf_yaml

    text = mjcf_yaml.__doc__.split("Schema (keys marked * are required)::")[1].split("State kinds")[0]  # fmt: skip
    doc = yaml.safe_load(textwrap.dedent(text).replace("*:", ":"))
    doc["name"] = "schema_doc_example"
    doc["model"] = "pendulum.xml"
    doc["keyframe"] = "down"
    doc["state"]["gap"]["to"] = {"site": "top"}
    doc["state"]["angle"]["joint"] = "hinge"
    path = _write(tmp_path, doc, "schema.yaml")
    cls = register_yaml_task(path)
    env = make_env(cls.name, num_envs=2, nthread=1)
    env.reset()
    env.step(torch.zeros(2, 1))
    env.close()
