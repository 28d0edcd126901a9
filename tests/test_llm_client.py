"""The OpenAI-compatible chat client against a real local HTTP server (tests/openai_server.py)."""

from __future__ import annotations

import numpy as np
import pytest
from openai_server import ChatRequest, Fault, OpenAIServer, serve

from rewardlab.rewards.llm import CacheMiss, ChatClient, LLMConfig, LLMError, image_part

pytestmark = pytest.mark.unit

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]


def _cfg(base_url: str, **kw) -> LLMConfig:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return LLMConfig(base_url=base_url, model="test-model", **kw)


def _echo_seed(req: ChatRequest) -> str:
    return f"reply seed={req.seed} temp={req.body.get('temperature')}"


def test_samples_tokens_and_n(tmp_path):
    with OpenAIServer(_echo_seed) as srv:
        client = ChatClient(_cfg(srv.base_url, seed=10), cache_dir=tmp_path, log=lambda s: None)
        replies = client.chat(MSGS, n=3)
        assert [r.text for r in replies] == [f"reply seed={s} temp=1.0" for s in (10, 11, 12)]
        assert [r.sample_index for r in replies] == [0, 1, 2]
        assert len(srv.requests) == 1 and srv.requests[0]["n"] == 3  # one request for 3 samples
        # prompt: "be brief say hi" = 4 words; completion: 3 replies x 3 words
        assert client.usage.prompt_tokens == 4
        assert client.usage.completion_tokens == 9
        assert client.usage.requests == 1 and client.usage.samples == 3


def test_server_ignoring_n_gets_repeated_calls():
    def one(req: ChatRequest) -> str:
        return f"s{req.seed}"

    with OpenAIServer(one, ignore_n=True) as srv:  # like Ollama / llama.cpp
        client = ChatClient(_cfg(srv.base_url), log=lambda s: None)
        assert [r.text for r in client.chat(MSGS, n=3, first_sample=5)] == ["s5", "s6", "s7"]
        # one n=3 request answered with one choice, then single calls for samples 6 and 7
        assert [b.get("n") for b in srv.requests] == [3, None, None]
        assert [b["seed"] for b in srv.requests] == [5, 6, 7]


def test_retries_on_429_and_500_then_succeeds(tmp_path):
    lines: list[str] = []
    with OpenAIServer(["ok"], faults=[Fault(429), Fault(500), Fault(503)]) as srv:
        client = ChatClient(_cfg(srv.base_url, max_retries=3), log=lines.append)
        assert client.chat(MSGS)[0].text == "ok"
        assert len(srv.requests) == 4
    assert client.usage.retries == 3
    assert "HTTP 429" in lines[0] and "HTTP 500" in lines[1] and "HTTP 503" in lines[2]


def test_retries_exhausted_and_client_errors_are_clear():
    with OpenAIServer(["ok"], faults=[500, 500, 500]) as srv:
        client = ChatClient(_cfg(srv.base_url, max_retries=2), log=lambda s: None)
        with pytest.raises(LLMError, match="failed after 3 attempts.*HTTP 500"):
            client.chat(MSGS)
    with OpenAIServer(["ok"], models=("other",)) as srv:
        client = ChatClient(_cfg(srv.base_url), log=lambda s: None)
        with pytest.raises(LLMError, match="HTTP 404.*llm.base_url") as err:
            client.chat(MSGS)
        assert err.value.status == 404 and "does not exist" in err.value.body
        assert client.usage.retries == 0  # a 404 is not retried


def test_timeout_is_retried():
    with OpenAIServer(["late but fine"], faults=[Fault(delay_s=1.5)]) as srv:
        client = ChatClient(_cfg(srv.base_url, timeout_s=0.3, max_retries=2), log=lambda s: None)
        assert client.chat(MSGS)[0].text == "late but fine"
        assert client.usage.retries >= 1


def test_connection_refused_is_retried_then_fails():
    with OpenAIServer(["x"]) as srv:
        url = srv.base_url
    client = ChatClient(_cfg(url, max_retries=1), log=lambda s: None)
    with pytest.raises(LLMError, match="failed after 2 attempts"):
        client.chat(MSGS)


def test_cache_hit_without_server_and_offline(tmp_path):
    with serve(_echo_seed) as url:
        first = ChatClient(_cfg(url), cache_dir=tmp_path, log=lambda s: None).chat(MSGS, n=2)
    # server is down now: the cache answers, the same samples, no request made
    again = ChatClient(_cfg(url, offline=True, max_retries=0), cache_dir=tmp_path)
    replies = again.chat(MSGS, n=2)
    assert [r.text for r in replies] == [r.text for r in first]
    assert all(r.cached for r in replies) and again.usage.cache_hits == 2
    assert again.usage.requests == 0
    # a different sampling setting or sample index is a different key
    with pytest.raises(CacheMiss, match="not in the cache"):
        again.chat(MSGS, n=1, temperature=0.5)
    with pytest.raises(CacheMiss):
        again.chat(MSGS, n=1, first_sample=2)
    other_seed = ChatClient(_cfg(url, offline=True, seed=7), cache_dir=tmp_path)
    with pytest.raises(CacheMiss):
        other_seed.chat(MSGS, n=1)


def test_models_and_image_parts():
    seen: list[list[str]] = []

    def vision(req: ChatRequest) -> str:
        seen.append(req.images())
        return "a cart-pole"

    frame = np.zeros((8, 8, 3), np.uint8)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image_part(frame)]}]
    with OpenAIServer(vision, models=("test-model", "vlm")) as srv:
        client = ChatClient(_cfg(srv.base_url), log=lambda s: None)
        assert client.list_models() == ["test-model", "vlm"]
        assert client.chat(msgs)[0].text == "a cart-pole"
    assert seen[0][0].startswith("data:image/png;base64,iVBOR")  # a real PNG
