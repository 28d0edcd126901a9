"""Episode recording to rosbag2 (MCAP), replay through reward functions, and camera decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rewardlab.deploy import transport_dds as dds
from rewardlab.deploy.camera import (
    compressed_to_frame,
    encode_compressed_fields,
    encode_image_fields,
    image_to_frame,
)
from rewardlab.deploy.controller import Controller
from rewardlab.deploy.messages import JointStateSample, PointSample
from rewardlab.deploy.policy import load_policy
from rewardlab.deploy.recording import (
    ACTION_TOPIC,
    BagRecorder,
    bag_states,
    read_bag,
    replay_reward,
)
from rewardlab.deploy.robot_config import load_robot_config
from rewardlab.deploy.sim_robot import SimRobot

EXPORT = Path(__file__).parent / "fixtures" / "deploy" / "arm_reach_export"


def record_episode(path: Path, ticks: int = 60, camera: bool = False) -> dict:
    """Run the arm_reach policy on the in-process sim robot for ``ticks`` control ticks and record
    it as the DDS deploy loop would; returns the ground truth seen along the way."""
    robot = load_robot_config("arm")
    ctrl = Controller(load_policy(EXPORT), robot)
    sim = SimRobot(robot, seed=4)
    target = sim.new_episode()
    truth = {"ee": [], "q": [], "actions": [], "target": target}
    renderer = None
    if camera:
        import mujoco

        renderer = mujoco.Renderer(sim.model, 48, 64)
    with BagRecorder(path) as rec:
        for _ in range(ticks):
            t = sim.time
            q, qd, tau = sim.joint_state()
            rec.write_msg(robot.topics.joint_states, "sensor_msgs/msg/JointState", dds.joint_state_msg(robot.joint_names, q, qd, tau, t), t)  # fmt: skip
            rec.write_msg(
                robot.topics.target, "geometry_msgs/msg/PointStamped", dds.point_msg(target, t), t
            )
            if renderer is not None:
                frame = sim.render(renderer)
                rec.write_msg(robot.topics.image, "sensor_msgs/msg/Image", dds.new_msg("sensor_msgs/msg/Image", **encode_image_fields(frame)), t)  # fmt: skip
                truth.setdefault("frames", []).append(frame)
            ctrl.on_joint_state(JointStateSample(robot.joint_names, q, qd, recv_time=t))
            ctrl.on_target(PointSample(target, recv_time=t))
            cmd = ctrl.tick(t)
            rec.record_command(cmd, t + 1e-6)
            truth["q"].append(q)
            truth["ee"].append(sim.ee_pos())
            truth["actions"].append(cmd.action)
            sim.apply_command(cmd.positions)
            for _ in range(10):
                sim.step()
    if renderer is not None:
        renderer.close()
    return truth


@pytest.mark.unit
def test_recorded_bag_is_a_readable_mcap_rosbag2(tmp_path):
    bag = tmp_path / "ep0"
    record_episode(bag, ticks=20)
    assert list(bag.glob("*.mcap")) and (bag / "metadata.yaml").exists()
    counts: dict[str, int] = {}
    for topic, msgtype, _t, msg in read_bag(bag):
        counts[topic] = counts.get(topic, 0) + 1
        if topic == ACTION_TOPIC:
            assert msgtype == "std_msgs/msg/Float64MultiArray" and len(msg.data) == 3
    assert counts == {
        "/joint_states": 20, "/target": 20, "/rewardlab/action": 20, "/rewardlab/observation": 20,
        "/rewardlab/command": 20, "/rewardlab/safety_state": 20,
    }  # fmt: skip
    with pytest.raises(FileExistsError, match="never overwritten"):
        BagRecorder(bag)


@pytest.mark.unit
def test_replay_rebuilds_training_state_and_scores_the_task_reward(tmp_path):
    import torch

    from rewardlab.core.reward import compose
    from rewardlab.envs.tasks.arm_reach import ArmReach

    bag = tmp_path / "ep"
    truth = record_episode(bag, ticks=60)
    robot = load_robot_config("arm")
    data = bag_states(bag, robot)
    assert data.times.shape == (59,)
    acts = np.stack(truth["actions"])
    # row k: the state after action k (observed with action k+1), last/prev action a_k / a_{k-1}
    np.testing.assert_allclose(data.state["joint_pos"], np.stack(truth["q"][1:]), atol=1e-6)
    np.testing.assert_allclose(data.state["last_action"], acts[:-1], atol=1e-6)
    np.testing.assert_allclose(data.state["prev_action"][1:], acts[:-2], atol=1e-6)
    assert not data.state["prev_action"][0].any()
    # end effector from the config's kinematics equals MuJoCo's site position
    np.testing.assert_allclose(data.state["ee_pos"], np.stack(truth["ee"][1:]), atol=1e-5)
    dist = np.linalg.norm(np.stack(truth["ee"][1:]) - truth["target"], axis=-1)
    np.testing.assert_allclose(data.state["distance"], dist, atol=1e-5)

    task_reward = compose(ArmReach(ArmReach.default_config(), ArmReach.load_model()).reward_terms())
    result = replay_reward(bag, robot, task_reward)
    assert set(result.terms) == {"distance", "near_target", "effort", "action_rate"}
    np.testing.assert_allclose(result.terms["distance"], -dist, atol=1e-5)
    np.testing.assert_allclose(result.terms["near_target"], np.exp(-((dist / 0.1) ** 2)), atol=1e-5)
    np.testing.assert_allclose(result.terms["effort"], -0.01 * (acts[:-1] ** 2).sum(-1), atol=1e-6)
    assert result.episode_return == pytest.approx(
        sum(v.sum() for v in result.terms.values()), rel=1e-6
    )
    assert result.summary()["reward/distance"] == pytest.approx(-dist.sum(), rel=1e-4)
    # the policy reaches its target within the recorded 1.2 s: the reward rises
    assert result.total[-10:].mean() > result.total[:10].mean()

    def bad_reward(state, action):
        return torch.zeros(3), {}

    with pytest.raises(ValueError, match=r"reward total has shape \(3,\), expected \[59\]"):
        replay_reward(bag, robot, bad_reward)


@pytest.mark.unit
def test_replay_with_camera_frames(tmp_path):
    bag = tmp_path / "cam"
    truth = record_episode(bag, ticks=6, camera=True)
    data = bag_states(bag, load_robot_config("arm"))
    assert data.frames.shape == (5, 48, 64, 3) and data.frames.dtype == np.uint8
    np.testing.assert_array_equal(data.frames, np.stack(truth["frames"][1:]))
    assert data.frames.std() > 5  # a rendered scene, not a blank image

    def brightness_reward(state, action):  # a stand-in for a VLM reward: reads the frames
        b = state["frames"].float().mean(dim=(1, 2, 3)) / 255.0
        return b, {"brightness": b}

    result = replay_reward(bag, load_robot_config("arm"), brightness_reward, with_frames=True)
    np.testing.assert_allclose(result.total, data.frames.reshape(5, -1).mean(-1) / 255.0, rtol=1e-5)


@pytest.mark.unit
def test_image_encodings_decode_to_rgb():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)

    class Msg:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    def padded(img: np.ndarray, pad: int) -> bytes:  # rows padded to `step`
        rows = img.reshape(img.shape[0], -1)
        return np.hstack([rows, np.zeros((rows.shape[0], pad), np.uint8)]).tobytes()

    np.testing.assert_array_equal(image_to_frame(Msg(encoding="rgb8", height=3, width=4, step=14, data=padded(rgb, 2))), rgb)  # fmt: skip
    np.testing.assert_array_equal(image_to_frame(Msg(encoding="bgr8", height=3, width=4, step=12, data=rgb[:, :, ::-1].tobytes())), rgb)  # fmt: skip
    rgba = np.concatenate([rgb, np.full((3, 4, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(image_to_frame(Msg(encoding="rgba8", height=3, width=4, step=16, data=list(rgba.tobytes()))), rgb)  # fmt: skip
    gray = rgb[:, :, 0]
    out = image_to_frame(Msg(encoding="mono8", height=3, width=4, step=4, data=gray.tobytes()))
    assert out.shape == (3, 4, 3) and (out == gray[:, :, None]).all()
    g16 = (gray.astype(np.uint16) * 257).astype(">u2")  # big-endian 16 bit, x257: same 8-bit value
    out = image_to_frame(
        Msg(encoding="mono16", is_bigendian=1, height=3, width=4, step=8, data=g16.tobytes())
    )
    np.testing.assert_array_equal(out[:, :, 1], gray)
    with pytest.raises(ValueError, match="Image.encoding: got 'bayer_rggb8'"):
        image_to_frame(Msg(encoding="bayer_rggb8", height=1, width=1, step=1, data=b"\x00"))
    with pytest.raises(ValueError, match="12 data bytes, expected height \\* step = 24"):
        image_to_frame(Msg(encoding="rgb8", height=2, width=4, step=12, data=b"\x00" * 12))


@pytest.mark.unit
def test_compressed_images_round_trip():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    png = dds.new_msg("sensor_msgs/msg/CompressedImage", **encode_compressed_fields(frame, "png"))
    np.testing.assert_array_equal(compressed_to_frame(dds.deserialize(dds.serialize(png), "sensor_msgs/msg/CompressedImage")), frame)  # fmt: skip
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 24, 0).repeat(3, 2)
    jpg = dds.new_msg(
        "sensor_msgs/msg/CompressedImage", **encode_compressed_fields(smooth, "jpeg", quality=95)
    )
    assert np.abs(compressed_to_frame(jpg).astype(int) - smooth).mean() < 3
    with pytest.raises(ValueError, match="cannot decode 3 bytes of format 'jpeg'"):
        compressed_to_frame(
            dds.new_msg("sensor_msgs/msg/CompressedImage", format="jpeg", data=b"abc")
        )


@pytest.mark.unit
def test_score_a_recorded_episode_from_the_command_line(tmp_path, capsys):
    """`python -m rewardlab.replay BAG --reward ...` with the task's reward and with a
    reward file (sandbox-checked by rewardlab.rewards against arm_reach's state schema)."""
    import json

    from rewardlab.replay import main

    bag = tmp_path / "ep"
    truth = record_episode(bag, ticks=40)
    reward_file = tmp_path / "reach.py"
    reward_file.write_text(
        "import torch\n\n\n"
        "def compute_reward(state, action):\n"
        "    close = torch.exp(-state['distance'] / 0.05)\n"
        "    return close, {'close': close}\n"
    )
    assert main([str(bag), "--reward", f"code:{reward_file}", "--task", "arm_reach", "--json", str(tmp_path / "s.json")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "s.json").read_text())
    dist = np.linalg.norm(np.stack(truth["ee"][1:]) - truth["target"], axis=-1)
    assert summary["ticks"] == 39
    assert summary["reward/close"] == pytest.approx(np.exp(-dist / 0.05).sum(), rel=1e-4)
    assert main([str(bag), "--reward", "task:arm_reach"]) == 0
    out = capsys.readouterr().out
    assert "reward/near_target:" in out and "return:" in out
    with pytest.raises(ValueError, match="needs the task"):
        main([str(bag), "--reward", f"code:{reward_file}"])


@pytest.mark.unit
def test_frame_scorer_as_replay_reward(tmp_path):
    """A FrameScorer (the vlm_reward interface) scores a recorded episode's camera frames."""
    import torch

    from rewardlab.deploy.recording import scorer_reward

    class GreenScorer:  # implements rewardlab.vlm_reward.base.FrameScorer
        progress_like = False
        image_size = 64

        def score(self, frames: torch.Tensor) -> torch.Tensor:
            f = frames.float()
            return (f[..., 1] - f[..., [0, 2]].mean(-1)).mean(dim=(1, 2)) / 255.0

    from rewardlab.vlm_reward.base import FrameScorer

    assert isinstance(GreenScorer(), FrameScorer)
    bag = tmp_path / "cam"
    truth = record_episode(bag, ticks=5, camera=True)
    result = replay_reward(
        bag, load_robot_config("arm"), scorer_reward(GreenScorer()), with_frames=True
    )
    frames = np.stack(truth["frames"][1:]).astype(np.float64)
    expected = (frames[..., 1] - frames[..., [0, 2]].mean(-1)).mean(axis=(1, 2)) / 255.0
    np.testing.assert_allclose(result.terms["vlm"], expected, rtol=1e-5, atol=1e-6)
