"""Task authoring building blocks (envs/tasks/authoring.py) against real MuJoCo.

A small gripper scene: a hand on x/z slides, two fingers on y slides (0..0.04 m, servos), a
cube on the floor, a mocap target. A task module built from the blocks drives it; every block
is checked against numbers MuJoCo or hand arithmetic gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np
import pytest
import torch

from rewardlab.core.reward import RewardTerm
from rewardlab.envs.base import StateField
from rewardlab.envs.mujoco_backend import MujocoEnv
from rewardlab.envs.tasks import authoring as au
from rewardlab.envs.tasks.base import SimView, Task, TaskConfig

pytestmark = pytest.mark.unit

GRIPPER_XML = """
<mujoco>
  <option timestep="0.004"/>
  <worldbody>
    <geom name="floor" type="plane" size="1 1 .1"/>
    <body name="hand" pos="0 0 0.3">
      <joint name="hx" type="slide" axis="1 0 0" range="-0.3 0.3" damping="20"/>
      <joint name="hz" type="slide" axis="0 0 1" range="-0.3 0.1" damping="20"/>
      <geom name="palm" type="box" size=".05 .05 .01" mass="0.5" contype="0" conaffinity="0"/>
      <site name="palm_site" pos="0 0 -0.1" euler="0 0.5 0"/>
      <site name="offset_probe" pos="0.01 0.02 -0.13"/>
      <body name="left" pos="0 0.01 -0.06">
        <joint name="lf" type="slide" axis="0 1 0" range="0 0.04" damping="5"/>
        <geom name="left_pad" type="box" size=".01 .005 .04" mass="0.05"/>
      </body>
      <body name="right" pos="0 -0.01 -0.06">
        <joint name="rf" type="slide" axis="0 -1 0" range="0 0.04" damping="5"/>
        <geom name="right_pad" type="box" size=".01 .005 .04" mass="0.05"/>
      </body>
    </body>
    <body name="cube" pos="0 0 0.02">
      <freejoint/>
      <geom name="cube" type="box" size=".02 .02 .02" mass="0.1" friction="1.5 .01 .001"/>
    </body>
    <body name="goal" mocap="true" pos="0 0 0.5"><geom type="sphere" size=".01" contype="0" conaffinity="0"/></body>
  </worldbody>
  <actuator>
    <position name="ax" joint="hx" kp="400" ctrlrange="-0.3 0.3"/>
    <position name="az" joint="hz" kp="400" ctrlrange="-0.3 0.1"/>
    <position name="al" joint="lf" kp="200" ctrlrange="0 0.04"/>
    <position name="ar" joint="rf" kp="200" ctrlrange="0 0.04"/>
  </actuator>
  <keyframe><key name="home" qpos="0 -0.19 0.04 0.04  0 0 0.02 1 0 0 0" ctrl="0 -0.19 0.04 0.04"/></keyframe>
</mujoco>
"""

CONTACTS = (
    au.Contact("cube_floor", body1="cube", geom2="floor"),
    au.Contact("cube_floor_force", body1="cube", geom2="floor", data="force"),
    au.Contact("palm_any", geom1="left_pad"),
)
GRASP = au.Grasp("grasped", ("left_pad", "right_pad"), "cube")
TIP = au.Frame("tip", site="palm_site", offset=(0.01, 0.02, -0.03))


def gripper_model() -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_string(GRIPPER_XML)
    au.add_contact_sensors(spec, [*CONTACTS, *GRASP.contacts()])
    return spec.compile()


class GripperTask(Task):
    """A probe task made of authoring blocks: pick the cube and bring it to a drawn goal."""

    name = "authoring_probe"
    model_file = ""
    sim_fields = ("xpos", "xquat", "site_xpos", "site_xquat", "sensordata", "mocap_pos")
    model_fields = ("body_mass", "body_inertia", "geom_friction")

    def __init__(self, cfg: TaskConfig, model: mujoco.MjModel) -> None:
        super().__init__(cfg, model)
        home = au.home_qpos(model, "home")
        self.events = au.EventManager(
            model,
            [
                au.JointPositions(
                    ("hx", "hz", "lf", "rf"), au.Uniform(-1.0, 1.0), au.Gaussian(0.1)
                ),  # fmt: skip
                au.FreeBodyPose(
                    "cube",
                    au.Uniform((-0.1, -0.1, 0.0), (0.1, 0.1, 0.0)),
                    au.Uniform(-math.pi, math.pi),
                ),  # fmt: skip
                au.BodyPosition("cube_start", "cube"),
                au.TargetPosition(
                    "goal",
                    (0.0, 0.0, 0.2),
                    au.Uniform(-0.05, 0.05),
                    mocap="goal",
                    relative_to="cube_start",
                ),  # fmt: skip
                au.BodyMass(("cube",), au.Uniform(0.5, 2.0)),
                au.GeomFriction(("cube",), au.Uniform(0.5, 1.0)),
            ],
            home,
        )
        self.action_map = au.ActionMap(
            (
                au.JointTargets(("ax", "az"), scale=(0.3, 0.2)),
                au.Gripper("al", open=0.04, closed=0.0),
            ),  # fmt: skip
            hold={"ar": 0.04},
        ).bind(model, model.key_ctrl[0])
        self.tip = TIP.bind(model)
        self.contacts = {c.name: c.bind(model) for c in CONTACTS}
        self.grasp = GRASP.bind(model)

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(frame_skip=5, episode_steps=50)

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        return gripper_model()

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        self.events.reset(sim, env_ids, gen)

    def get_state_dict(self) -> dict[str, Any]:
        return self.events.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.events.load_state_dict(state)

    def state_spec(self) -> dict[str, StateField]:
        f = StateField
        return {
            "tip_pos": f((3,), "m", "world", "tip"),
            "tip_quat": f((4,), "1", "world", "tip orientation"),
            "goal": f((3,), "m", "world", "goal"),
            "cube_z": f((), "m", "world", "cube height"),
            "cube_floor": f((), "1", "contact", "cube on floor"),
            "cube_floor_force": f((), "N", "contact", "floor force"),
            "palm_any": f((), "1", "contact", "left pad touches anything"),
            "grasped": f((), "1", "contact", "both pads on the cube"),
            "last_action": f((3,), "1", "actuator", "action"),
        }

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        cube = int(self.model.body("cube").id)
        out = {
            "tip_pos": self.tip.pos(sim).float(),
            "tip_quat": self.tip.quat(sim).float(),
            "goal": self.events.buffers["goal"].float(),
            "cube_z": sim.xpos[:, cube, 2].float(),
            **{k: c.value(sim).float() for k, c in self.contacts.items()},
            "grasped": self.grasp.value(sim).float(),
            "last_action": last_action,
        }
        return out

    def observation(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([state["tip_pos"], state["goal"], state["last_action"]], -1)

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("tip_pos", 3), ("goal", 3), ("last_action", 3)]

    def success(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return state["grasped"] > 0.5

    def reward_terms(self) -> dict[str, RewardTerm]:
        lift = au.gated(au.state_value("cube_z"), au.above("grasped", 0.5))
        return {"lift": RewardTerm(au.clipped(lift, 0.0, 0.1), 1.0)}


def make(n: int = 4, seed: int = 0) -> MujocoEnv:
    return MujocoEnv(GripperTask, num_envs=n, seed=seed, nthread=1)


# -- distributions ------------------------------------------------------------------------------


def test_distributions_sample_their_bounds_and_refuse_bad_values() -> None:
    g = torch.Generator().manual_seed(0)
    u = au.Uniform((-1.0, 0.0), (1.0, 0.5)).sample(g, 5000, 2)
    assert u.shape == (5000, 2) and (u[:, 0] >= -1).all() and (u[:, 1] <= 0.5).all()
    assert abs(float(u[:, 0].mean())) < 0.05 and abs(float(u[:, 1].mean()) - 0.25) < 0.02
    x = au.Gaussian(0.5, mean=1.0, low=0.0).sample(g, 5000, 3)
    assert x.min() >= 0.0 and abs(float(x.mean()) - 1.0) < 0.05
    with pytest.raises(ValueError, match="low <= high"):
        au.Uniform(1.0, 0.0).validate()
    with pytest.raises(ValueError, match="std"):
        au.Gaussian(-1.0).validate()
    with pytest.raises(ValueError, match="expected 1 or 3"):
        au.Uniform((0.0, 1.0), (1.0, 2.0)).sample(g, 2, 3)
    m = gripper_model()
    with pytest.raises(ValueError, match=r"FreeBodyPose.position: got low="):
        au.EventManager(m, [au.FreeBodyPose("cube", au.Uniform(0.1, 0.0))], m.qpos0)


# -- reset events -------------------------------------------------------------------------------


def test_joint_noise_stays_inside_joint_ranges_and_objects_and_targets_are_per_world() -> None:
    env = make(64)
    env.reset()
    m = env.model
    q = env.sim.qpos.numpy()
    for name in ("hx", "hz", "lf", "rf"):
        j = m.joint(name)
        col = q[:, m.jnt_qposadr[j.id]]
        lo, hi = m.jnt_range[j.id]
        assert (col >= lo - 1e-12).all() and (col <= hi + 1e-12).all(), name
        if name in ("hx", "hz"):
            assert len(np.unique(col)) > 10, name  # noise drawn per world
    # the fingers start at 0.04 (their upper limit): noise of +-1 m clipped, both ends reached
    lf = q[:, m.jnt_qposadr[m.joint("lf").id]]
    assert (lf == 0.0).any() and (lf == 0.04).any()
    # the cube: home + uniform xy offset, unit quaternion, a random yaw
    qa = m.jnt_qposadr[m.body("cube").jntadr[0]]
    cube = q[:, qa : qa + 7]
    assert np.abs(cube[:, :2]).max() <= 0.1 and np.allclose(cube[:, 2], 0.02)
    np.testing.assert_allclose(np.linalg.norm(cube[:, 3:], axis=1), 1.0, atol=1e-12)
    assert np.abs(cube[:, 3:5]).std() > 0.1 and np.allclose(cube[:, 4:6], 0.0)
    # the goal is drawn around the cube's start, and the mocap body shows it
    goal = env.task.events.buffers["goal"].numpy()
    np.testing.assert_array_less(np.abs(goal - cube[:, :3] - [0, 0, 0.2]), 0.05 + 1e-12)
    mocap = env._batch.bind("mocap_pos")[:, 0]
    np.testing.assert_allclose(mocap, goal)
    env.close()


def test_object_properties_are_drawn_per_world_and_the_physics_uses_them() -> None:
    env = make(16)
    env.reset()
    m = env.model
    cube, geom = m.body("cube").id, m.geom("cube").id
    mass = env.sim.model["body_mass"][:, cube].numpy()
    assert ((mass >= 0.05 - 1e-9) & (mass <= 0.2 + 1e-9)).all() and mass.std() > 0.01
    inertia = env.sim.model["body_inertia"][:, cube].numpy()
    np.testing.assert_allclose(
        inertia / mass[:, None], np.tile(m.body_inertia[cube] / m.body_mass[cube], (16, 1))
    )
    fr = env.sim.model["geom_friction"][:, geom, 0].numpy()
    assert ((fr >= 0.75 - 1e-9) & (fr <= 1.5 + 1e-9)).all() and fr.std() > 0.01
    # the other bodies keep the model's masses
    np.testing.assert_allclose(env.sim.model["body_mass"][:, m.body("left").id].numpy(), 0.05)
    # resting on the floor, the contact force is each world's own m g (set_const followed)
    for _ in range(20):
        env.step(torch.zeros(16, 3))
    # (a world whose cube leans on a finger pad carries a little more or less)
    force = env.state()["cube_floor_force"].numpy()
    assert np.isclose(force, 9.81 * mass, rtol=0.02).sum() >= 12, (force, 9.81 * mass)
    env.close()


def test_snapshots_restore_targets_and_per_world_properties_exactly() -> None:
    a = make(8, seed=3)
    a.reset()
    for _ in range(3):
        a.step(torch.rand(8, 3) * 2 - 1)
    snap = a.get_state_dict()
    b = make(8, seed=99)
    b.reset()
    b.load_state_dict(snap)
    for k in ("goal",):
        torch.testing.assert_close(b.task.events.buffers[k], a.task.events.buffers[k])
    torch.testing.assert_close(b.sim.model["body_mass"], a.sim.model["body_mass"])
    g = torch.Generator().manual_seed(1)
    for _ in range(60):  # crosses an episode end: the resets draw the same values too
        act = torch.rand(8, 3, generator=g) * 2 - 1
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        torch.testing.assert_close(oa, ob)
        torch.testing.assert_close(ra, rb)
    torch.testing.assert_close(b.sim.model["geom_friction"], a.sim.model["geom_friction"])


# -- action maps --------------------------------------------------------------------------------


def test_action_map_drives_subsets_around_the_default_pose_with_one_gripper_action() -> None:
    env = make(2)
    env.reset()
    assert env.action_dim == 3 and env.task.action_map.labels == ("ax", "az", "al")
    env.step(torch.tensor([[0.5, -1.0, -1.0], [-1.0, 1.0, 1.0]]))
    ctrl = env.sim.ctrl.numpy()
    # ax: default 0 + 0.3 a; az: default -0.19 + 0.2 a, clipped to [-0.3, 0.1]; al: open..closed
    np.testing.assert_allclose(ctrl[:, 0], [0.15, -0.3])
    np.testing.assert_allclose(ctrl[:, 1], [-0.3, 0.01])
    np.testing.assert_allclose(ctrl[:, 2], [0.04, 0.0])
    np.testing.assert_allclose(ctrl[:, 3], [0.04, 0.04])  # held
    assert env.state_spec()["prev_action"].shape == (3,)
    m = env.model
    rel = au.ActionMap((au.JointTargets(("ax",), scale=0.1, relative=True), au.Gripper("al", 0.04, 0.0, binary=True))).bind(m)  # fmt: skip
    assert rel.action_dim == 2
    c = torch.zeros(1, 4, dtype=torch.float64)
    rel.reset(c, torch.tensor([0]))
    for _ in range(3):
        rel.apply(c, torch.tensor([[1.0, 0.2]]))
    assert c[0, 0].item() == pytest.approx(0.3) and c[0, 2].item() == 0.0  # binary: closed
    rel.apply(c, torch.tensor([[1.0, -0.2]]))
    assert c[0, 0].item() == pytest.approx(0.3) and c[0, 2].item() == pytest.approx(
        0.04
    )  # clipped, open
    th = au.ActionMap((au.Gripper("al", 0.04, 0.0, binary=True, threshold=0.5),)).bind(m)
    c = torch.zeros(3, 4, dtype=torch.float64)
    th.apply(c, torch.tensor([[0.4], [0.6], [-1.0]]))
    assert c[:, 2].tolist() == [0.04, 0.0, 0.04]  # closed only above the threshold
    with pytest.raises(ValueError, match="driven by two terms"):
        au.ActionMap((au.JointTargets(("ax",)), au.Gripper("ax", 0, 1))).bind(m)
    with pytest.raises(au.ModelNameError, match="allowed: al, ar, ax, az"):
        au.ActionMap((au.JointTargets(("nope",)),)).bind(m)
    env.close()


# -- frames and contacts ------------------------------------------------------------------------


def test_frame_with_offset_is_where_mujoco_puts_a_site_there() -> None:
    env = make(3)
    env.reset()
    for _ in range(4):
        env.step(torch.rand(3, 3) * 2 - 1)
    s = env.state()
    m = env.model
    for w in range(3):
        d = env._batch.get_data(w)
        mujoco.mj_forward(m, d)
        site = d.site("palm_site")
        expect = site.xpos + site.xmat.reshape(3, 3) @ np.array(TIP.offset)
        np.testing.assert_allclose(s["tip_pos"][w].numpy(), expect, atol=1e-5)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, site.xmat)
        assert abs(abs(float(np.dot(q, s["tip_quat"][w].numpy()))) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="exactly one"):
        au.Frame("x", body="hand", site="palm_site").bind(m)


def test_contacts_and_grasp_detection_follow_the_physics() -> None:
    env = make(1)
    env.reset()
    m = env.model
    sim = env.sim
    # a known start: hand above the cube, fingers open, cube at the origin
    sim.qpos[0] = torch.as_tensor(m.key_qpos[0])
    sim.qvel[0] = 0.0
    env.task.action_map.reset(sim.ctrl, torch.tensor([0]))
    env._forward(torch.tensor([0]))
    open_hand = torch.tensor([[0.0, 0.0, -1.0]])  # x = 0, pads 1 cm above the floor, open
    for _ in range(30):
        env.step(open_hand)
    s = env.state()
    assert s["cube_floor"].item() == 1.0 and s["grasped"].item() == 0.0
    assert s["cube_floor_force"].item() == pytest.approx(9.81 * float(env.sim.model["body_mass"][0, m.body("cube").id]), rel=0.05)  # fmt: skip
    close = torch.tensor([[0.0, 0.0, 1.0]])
    for _ in range(30):
        env.step(close)
    # the left pad closes on the cube; the right finger is held open: not a grasp
    s = env.state()
    assert s["palm_any"].item() == 1.0 and s["grasped"].item() == 0.0
    with pytest.raises(ValueError, match="no sensor 'contact_zz'"):
        au.Contact("zz", geom1="floor").bind(m)
    spec = mujoco.MjSpec.from_string(GRIPPER_XML)
    with pytest.raises(ValueError, match="no geom 'nope'"):
        au.add_contact_sensors(spec, [au.Contact("x", geom1="nope")])
    with pytest.raises(ValueError, match="exactly one of geom1"):
        au.Contact("x").validate()
    env.close()


def test_a_pinch_grasp_reads_one_only_with_both_fingers_on_the_object() -> None:
    m = gripper_model()
    d = mujoco.MjData(m)
    grasp = GRASP.bind(m)
    lf, rf = (int(m.jnt_qposadr[m.joint(n).id]) for n in ("lf", "rf"))
    # pad inner faces at 0.01 + q - 0.005 m from the centre; the cube's faces at 0.02 m
    for q_left, q_right, expect in ((0.04, 0.04, [0, 0]), (0.014, 0.04, [1, 0]), (0.014, 0.014, [1, 1])):  # fmt: skip
        d.qpos[:] = m.key_qpos[0]
        d.qpos[lf], d.qpos[rf] = q_left, q_right
        mujoco.mj_forward(m, d)
        data = {"sensordata": torch.as_tensor(d.sensordata.copy())[None]}
        view = SimView(torch.zeros(1, m.nq), torch.zeros(1, m.nv), torch.zeros(1, m.nu), data)
        assert grasp.touching(view)[0].tolist() == expect, (q_left, q_right)
        assert grasp.value(view).item() == float(all(expect))


# -- reward combinators -------------------------------------------------------------------------


def test_reward_combinators_compute_what_they_say() -> None:
    s = {
        "d": torch.tensor([0.0, 0.1, 1.0]),
        "g": torch.tensor([1.0, 0.0, 1.0]),
        "h": torch.tensor([0.5, 0.5, -0.5]),
    }
    a = torch.zeros(3, 2)
    t = au.tolerance("d", 0.1)
    torch.testing.assert_close(t(s, a), 1 - torch.tanh(s["d"] / 0.1))
    torch.testing.assert_close(au.tolerance("d", 0.5, "gaussian")(s, a), torch.exp(-((s["d"] / 0.5) ** 2)))  # fmt: skip
    lift = au.gated(au.state_value("h"), au.above("g", 0.5))
    torch.testing.assert_close(lift(s, a), torch.tensor([0.5, 0.0, -0.5]))
    torch.testing.assert_close(au.clipped(lift, 0.0, 0.2)(s, a), torch.tensor([0.2, 0.0, 0.0]))
    torch.testing.assert_close(au.product(t, au.state_value("g"))(s, a), t(s, a) * s["g"])
    torch.testing.assert_close(au.scaled(t, -2.0)(s, a), -2.0 * t(s, a))
    torch.testing.assert_close(au.gated(t, au.below("d", 0.5))(s, a), t(s, a) * torch.tensor([1.0, 1.0, 0.0]))  # fmt: skip
    with pytest.raises(ValueError):
        au.tolerance("d", 0.0)
    with pytest.raises(ValueError):
        au.clipped(t, 1.0, 0.0)


def test_the_probe_task_runs_with_its_gated_clipped_reward() -> None:
    env = make(4)
    env.reset()
    for _ in range(10):
        obs, rew, term, trunc, info = env.step(torch.rand(4, 3) * 2 - 1)
        assert torch.isfinite(obs).all() and torch.isfinite(rew).all()
        st = env.state()
        expect = (st["cube_z"] * (st["grasped"] > 0.5)).clamp(0.0, 0.1)
        torch.testing.assert_close(rew, expect)
    env.close()


MOCAP_XML = """
<mujoco>
  <worldbody>
    <body name="hand_mocap" mocap="true" pos="0 0 0.5"/>
    <body name="hand" pos="0 0 0.5"><freejoint/><geom type="box" size=".02 .02 .02" mass="0.2"/></body>
    <body name="finger" pos="0 0 0.3"><joint name="f" type="slide" axis="1 0 0" range="0 0.04"/><geom size=".01"/></body>
  </worldbody>
  <equality><weld body1="hand_mocap" body2="hand"/></equality>
  <actuator><position name="grip" joint="f" kp="100" ctrlrange="0 0.04"/></actuator>
</mujoco>
"""


class MocapTask(GripperTask):
    """A probe task: a mocap-welded hand moved by MocapDelta actions (MetaWorld's Sawyer)."""

    name = "authoring_mocap_probe"
    sim_fields = ("xpos", "mocap_pos", "mocap_quat")
    model_fields = ()

    def __init__(self, cfg: TaskConfig, model: mujoco.MjModel) -> None:
        Task.__init__(self, cfg, model)
        self.action_map = au.ActionMap(
            (
                au.MocapDelta("hand_mocap", 0.01, (-0.05, -1, 0), (0.05, 1, 1), (1, 0, 0, 0)),
                au.Gripper("grip", 0.0, 0.04),
            )
        ).bind(model)

    @classmethod
    def load_model(cls) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_string(MOCAP_XML)

    def reset(self, sim: SimView, env_ids: torch.Tensor, gen: torch.Generator) -> None:
        pass

    def get_state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def state_spec(self) -> dict[str, StateField]:
        return {"hand": StateField((3,), "m", "world", "hand"), "last_action": StateField((4,), "1", "actuator", "a")}  # fmt: skip

    def state(self, sim: SimView, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hand": sim.xpos[:, int(self.model.body("hand").id)].float(), "last_action": last_action}  # fmt: skip

    def observation(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return state["hand"]

    def obs_layout(self) -> list[tuple[str, int]]:
        return [("hand", 3)]

    def success(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return state["hand"][:, 2] > 1.0

    def reward_terms(self) -> dict[str, RewardTerm]:
        return {"z": RewardTerm(lambda s, a: s["hand"][:, 2], 1.0)}


def test_mocap_delta_moves_a_welded_hand_inside_its_box() -> None:
    env = MujocoEnv(MocapTask, num_envs=2, seed=0, nthread=1)
    env.reset()
    assert env.action_dim == 4 and env.task.action_map.needs_sim
    for _ in range(10):
        env.step(torch.tensor([[1.0, 0.0, -1.0, 1.0], [0.0, 1.0, 0.0, -1.0]]))
    mocap = env._batch.bind("mocap_pos")[:, 0]
    np.testing.assert_allclose(mocap[0], [0.05, 0.0, 0.4], atol=1e-9)  # x clipped at 0.05
    np.testing.assert_allclose(mocap[1], [0.0, 0.1, 0.5], atol=1e-9)
    assert env.sim.ctrl[:, 0].tolist() == [0.04, 0.0]
    for _ in range(20):
        env.step(torch.zeros(2, 4))
    np.testing.assert_allclose(
        env.state()["hand"][0].numpy(), [0.05, 0.0, 0.4], atol=0.01
    )  # welded
    env.close()
