"""The generative VLM judge through real HTTP to the local OpenAI-compatible server."""

from __future__ import annotations

import pytest
import torch
from openai_server import ChatRequest, Fault, OpenAIServer

from rewardlab.rewards.llm import ChatClient, LLMConfig, LLMError
from rewardlab.vlm_reward.base import make_scorer
from rewardlab.vlm_reward.config import VLMConfig
from rewardlab.vlm_reward.judge import (
    JudgeError,
    VLMJudge,
    parse_delta,
    parse_preference,
    parse_progress,
)

pytestmark = pytest.mark.unit

GOAL = "the square is bright"


def brightness_judge(req: ChatRequest) -> str:
    """Answers from the pixels it is sent: progress = mean brightness / 255."""
    images = req.pixels()
    assert GOAL in req.text(), "the goal must be in the prompt"
    if len(images) == 1:
        v = images[0].mean() / 255.0
        return f'The image is fairly bright.\n{{"progress": {v:.4f}}}'
    a, b = images[0].mean(), images[-1].mean()
    return "Image 2 is brighter.\n1" if b > a else "Image 1 is brighter.\n0"


def solid(values: list[int], size: int = 16) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8)[:, None, None, None].expand(-1, size, size, 3)


def client(srv: OpenAIServer, **kw) -> ChatClient:
    cfg = LLMConfig(base_url=srv.base_url, model="test-model", max_retries=1, backoff_s=0.0, **kw)
    return ChatClient(cfg, log=lambda line: None)


def test_progress_over_http_reads_the_images_it_is_sent():
    with OpenAIServer(brightness_judge) as srv:
        judge = VLMJudge(client(srv), goal=GOAL, concurrency=4)
        frames = solid([0, 64, 128, 255, 64])
        s = judge.score(frames)
        assert s.dtype == torch.float32 and s.shape == (5,)
        assert torch.allclose(s, torch.tensor([0.0, 64, 128, 255, 64]) / 255, atol=1e-3)
        # one request per distinct frame (the duplicate 64 asked once), each with one PNG part
        bodies = srv.requests
        assert len(bodies) == 4
        parts = bodies[0]["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url", "text"]
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert bodies[0]["temperature"] == 0.0
        # asked again: answered from the in-memory cache, no request
        s2 = judge.score(frames[:3])
        assert torch.equal(s2, s[:3]) and len(srv.requests) == 4
        assert judge.stats["cache_hits"] == 3
        assert judge.score(torch.zeros(0, 16, 16, 3, dtype=torch.uint8)).shape == (0,)


def test_compare_frames_and_clips_over_http():
    with OpenAIServer(brightness_judge) as srv:
        judge = VLMJudge(client(srv), goal=GOAL, image_format="jpeg")
        a, b = solid([10, 200, 50]), solid([100, 20, 60])
        assert judge.compare(a, b).tolist() == [1, 0, 1]
        content = srv.requests[0]["messages"][0]["content"]
        assert [p["type"] for p in content] == ["text", "image_url", "text", "image_url", "text"]
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        clips_a = torch.stack([solid([10, 20, 30]), solid([200, 210, 220])])  # [B=2, T=3, ...]
        clips_b = torch.stack([solid([90, 90, 90]), solid([0, 0, 0])])
        assert judge.compare(clips_a, clips_b).tolist() == [1, 0]
        assert "Clip 1" in srv.requests[-1]["messages"][0]["content"][0]["text"]
        with pytest.raises(ValueError, match="must both be"):
            judge.compare(a, b[:2])


def test_signed_delta_and_its_antisymmetric_form_over_http():
    def biased_delta_judge(req: ChatRequest) -> str:
        a, b = (px.mean() / 255.0 for px in req.pixels())
        assert "How much closer" in req.text()
        return f'Image 2 vs Image 1.\n{{"delta": {b - a + 0.1:.4f}}}'  # an order bias of +0.1

    with OpenAIServer(biased_delta_judge) as srv:
        judge = VLMJudge(client(srv), goal=GOAL)
        a, b = solid([0, 255, 51]), solid([255, 0, 102])
        raw = judge.delta(a, b)
        assert raw.tolist() == pytest.approx([1.0, -0.9, 0.3], abs=1e-3)  # 1.1 clipped to 1
        anti = judge.delta_antisymmetric(a, b)
        assert anti.tolist() == pytest.approx([0.95, -0.95, 0.2], abs=1e-3)  # bias cancelled
        assert torch.allclose(judge.delta_antisymmetric(b, a), -anti)
        with pytest.raises(ValueError, match="must both be"):
            judge.delta(a[None], b[None])


def test_unreadable_reply_is_asked_again_then_raises():
    replies = iter(["I cannot tell.", '{"progress": 0.25}'])
    with OpenAIServer(lambda req: next(replies)) as srv:
        judge = VLMJudge(client(srv), goal=GOAL, retries=1)
        assert judge.score(solid([1])).tolist() == [0.25]
        assert judge.stats["reasked"] == 1
        # the second sample is a new one (sample index 1) at a higher temperature
        assert srv.requests[1]["seed"] == srv.requests[0]["seed"] + 1
    with OpenAIServer(["no idea", "still no idea"]) as srv:
        judge = VLMJudge(client(srv), goal=GOAL, retries=1)
        with pytest.raises(JudgeError, match="no progress number.*after 2 samples"):
            judge.score(solid([2]))
        # a comparison that stays unreadable becomes 'unsure' and is counted
        assert judge.compare(solid([1]), solid([2])).tolist() == [-1]
        assert judge.stats["unreadable"] == 1


def test_server_errors_surface_with_the_url():
    with OpenAIServer(brightness_judge, faults=[Fault(400)]) as srv:
        judge = VLMJudge(client(srv), goal=GOAL)
        with pytest.raises(LLMError, match="HTTP 400"):
            judge.score(solid([3]))
    with OpenAIServer(brightness_judge, faults=[Fault(503)]) as srv:  # retried, then fine
        judge = VLMJudge(client(srv), goal=GOAL)
        assert judge.score(solid([255])).tolist() == [1.0]


def test_registry_builds_the_judge_from_vlm_config(tmp_path):
    with OpenAIServer(brightness_judge) as srv:
        cfg = VLMConfig(
            scorer="judge",
            goal_prompts=(GOAL,),
            judge_base_url=srv.base_url,
            judge_model="test-model",
            judge_image_size=32,
            judge_cache_dir=str(tmp_path / "cache"),
        )
        scorer = make_scorer(cfg)
        assert scorer.progress_like and scorer.image_size == 32
        assert scorer.score(solid([51], 32)).tolist() == pytest.approx([0.2], abs=1e-3)
    # the disk cache replays the answer with the server gone
    again = make_scorer(cfg)
    assert again.score(solid([51], 32)).tolist() == pytest.approx([0.2], abs=1e-3)
    with pytest.raises(ValueError, match="goal"):
        make_scorer(VLMConfig(scorer="judge", judge_model="m"))


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ('{"progress": 0.7}', 0.7),
        ("Reasoning... the pole is close.\nprogress: 0.35", 0.35),
        ("Score = 70%", 0.7),
        ("I'd say 7/10.", 0.7),
        ("Progress: 1.4", 1.0),
        ("0.5", 0.5),
        ('```json\n{"score": 0.1, "why": "far"}\n```', 0.1),
    ],
)
def test_parse_progress(reply, value):
    assert parse_progress(reply) == pytest.approx(value)


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("1", 1),
        ("0", 0),
        ("-1", -1),
        ("Image 1 shows the pole lower than Image 2.\nAnswer: 1", 1),
        ("The first image is better.\nImage 1", 0),
        ("There is no difference.", -1),
    ],
)
def test_parse_preference(reply, label):
    assert parse_preference(reply) == label


def test_parse_delta():
    assert parse_delta('{"delta": -0.25}') == -0.25
    assert parse_delta("Image 2 is a bit further.\ndelta: 30%") == pytest.approx(0.3)
    assert parse_delta("-3") == -1.0
    with pytest.raises(JudgeError, match="no progress delta"):
        parse_delta("no idea")


def test_parse_errors_quote_the_reply():
    with pytest.raises(JudgeError, match="no progress number: 'hmm'"):
        parse_progress("hmm")
    with pytest.raises(JudgeError, match="no 0/1/-1 answer"):
        parse_preference("Both look nice.")
