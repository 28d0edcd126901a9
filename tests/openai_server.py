"""A local HTTP server speaking the OpenAI chat-completions API, for tests with no hosted LLM.

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` over real HTTP on 127.0.0.1
(an ephemeral port), so the real client code path runs: JSON bodies, ``n`` choices, ``usage``,
status codes, ``Retry-After``, slow replies. Replies come from a *responder*: a list of recorded
texts (served in turn), or a callable ``responder(request: ChatRequest) -> str`` that sees the
messages (text and image parts), the sampling settings and the sample's seed.

::

    with serve(["```python\\n...\\n```"]) as base_url:           # yields the base URL
        client = ChatClient(LLMConfig(base_url=base_url, model="test-model"))

    with OpenAIServer(responder, faults=[Fault(429), Fault(500), Fault(delay_s=2)]) as srv:
        ...  # first three requests fail/slow down, in that order; srv.requests lists bodies

Token counts in ``usage`` are whitespace-separated words (not a tokenizer). What it cannot do:
streaming (``stream: true`` is answered 400), tools, embeddings, the Responses API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "llm"
"""Recorded replies (``*.md``) used by the reward-search tests."""


def fixture(name: str) -> str:
    """The text of a recorded reply in ``tests/fixtures/llm`` (``name`` without ``.md``)."""
    return (FIXTURES / f"{name}.md").read_text(encoding="utf-8")


@dataclass
class ChatRequest:
    """What a responder sees for one sample of one request."""

    body: dict[str, Any]
    """The decoded JSON body."""
    choice: int
    """Index of this sample within the request (0 .. n-1)."""
    call: int
    """Index of the request among all chat requests this server got (0-based)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def seed(self) -> int | None:
        """The request's ``seed`` plus the choice index (the client's sample index)."""
        s = self.body.get("seed")
        return None if s is None else int(s) + self.choice

    def text(self, role: str | None = None) -> str:
        """All text content of the messages (of one ``role`` when given), joined by newlines."""
        out = []
        for m in self.messages:
            if role is not None and m.get("role") != role:
                continue
            c = m.get("content")
            if isinstance(c, str):
                out.append(c)
            elif isinstance(c, list):
                out += [p.get("text", "") for p in c if p.get("type") == "text"]
        return "\n".join(out)

    def images(self) -> list[str]:
        """The ``image_url`` URLs of every message (``data:`` URLs for inline images)."""
        urls = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list):
                urls += [p["image_url"]["url"] for p in c if p.get("type") == "image_url"]
        return urls

    def pixels(self) -> list[Any]:
        """The inline images decoded to ``uint8 [H, W, 3]`` numpy arrays, in order (what a VLM
        server does first with them).

        Raises:
            ValueError: an image that is not a PNG or JPEG ``data:`` URL.
        """
        import base64
        import io

        import imageio.v3 as iio  # only here: the server itself needs the standard library alone

        out = []
        for url in self.images():
            head, _, b64 = url.partition(",")
            if head not in ("data:image/png;base64", "data:image/jpeg;base64"):
                raise ValueError(f"not an inline PNG/JPEG image: {head[:60]!r}")
            out.append(iio.imread(io.BytesIO(base64.b64decode(b64))))
        return out


@dataclass
class Fault:
    """A misbehaviour for one request: an HTTP error status, and/or a delay before answering."""

    status: int | None = None
    """Answer with this status and an OpenAI-style error body (e.g. 429, 500, 503)."""
    delay_s: float = 0.0
    """Sleep this long before answering (past the client's timeout: a timeout)."""
    retry_after: float | None = 0.0
    """``Retry-After`` header of a 429/503 (seconds); ``None``: no header."""


Responder = Callable[[ChatRequest], str]


@dataclass
class _State:
    responder: Responder
    models: tuple[str, ...]
    faults: list[Fault]
    ignore_n: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _words(text: str) -> int:
    return len(text.split())


class _Handler(BaseHTTPRequestHandler):
    server_version = "RewardLabTestLLM/1.0"
    state: _State  # set on the subclass per server

    def log_message(self, fmt: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = "rate_limit_error" if status == 429 else "invalid_request_error"
        self._send(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "owned_by": "test"} for m in self.state.models]
            self._send(200, {"object": "list", "data": data})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._error(400, "body is not JSON")
            return
        st = self.state
        with st.lock:
            st.requests.append(body)
            fault = st.faults.pop(0) if st.faults else None
            call = st.calls
            st.calls += 1
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
            if fault.status is not None:
                headers = {}
                if fault.retry_after is not None and fault.status in (429, 503):
                    headers["Retry-After"] = str(fault.retry_after)
                self._error(fault.status, f"simulated HTTP {fault.status}", headers)
                return
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            self._error(400, "'messages' must be a non-empty list")
            return
        if body.get("model") not in st.models:
            self._error(404, f"The model '{body.get('model')}' does not exist")
            return
        if body.get("stream"):
            self._error(400, "stream is not supported by this test server")
            return
        n = 1 if st.ignore_n else int(body.get("n") or 1)
        choices, completion = [], 0
        for i in range(n):
            try:
                text = st.responder(ChatRequest(body=body, choice=i, call=call))
            except Exception as e:  # noqa: BLE001 - a responder bug becomes a 500, visible
                self._error(500, f"responder failed: {type(e).__name__}: {e}")
                return
            completion += _words(text)
            choices.append(
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            )
        prompt = _words(ChatRequest(body=body, choice=0, call=call).text())
        self._send(
            200,
            {
                "id": f"chatcmpl-test-{call}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )


def sequence_responder(replies: Sequence[str]) -> Responder:
    """Serve ``replies`` in turn (sample after sample), starting over after the last."""
    lock, counter = threading.Lock(), [0]

    def respond(req: ChatRequest) -> str:
        with lock:
            i = counter[0]
            counter[0] += 1
        return replies[i % len(replies)]

    return respond


class OpenAIServer:
    """The server; a context manager that starts it on 127.0.0.1 and stops it on exit.

    Args:
        responder: a callable ``(ChatRequest) -> str`` or a list of recorded reply texts.
        models: model ids ``/v1/models`` lists; a request for another model gets 404.
        faults: misbehaviours of the next requests, consumed one per chat request, in order.
        ignore_n: answer one choice whatever ``n`` asks (as Ollama and llama.cpp do).
        port: 0 picks a free port.
    """

    def __init__(
        self,
        responder: Responder | Sequence[str],
        models: Sequence[str] = ("test-model",),
        faults: Sequence[Fault | int] = (),
        ignore_n: bool = False,
        port: int = 0,
    ) -> None:
        if not callable(responder):
            responder = sequence_responder(list(responder))
        self._state = _State(
            responder=responder,
            models=tuple(models),
            faults=[f if isinstance(f, Fault) else Fault(status=int(f)) for f in faults],
            ignore_n=ignore_n,
        )
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies of every chat request received, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def add_faults(self, *faults: Fault | int) -> None:
        """Queue more faults for the next requests."""
        with self._state.lock:
            self._state.faults += [
                f if isinstance(f, Fault) else Fault(status=int(f)) for f in faults
            ]

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextmanager
def serve(
    responder: Responder | Sequence[str],
    models: Sequence[str] = ("test-model",),
    faults: Sequence[Fault | int] = (),
) -> Iterator[str]:
    """Run an :class:`OpenAIServer` for the ``with`` block; yields its base URL."""
    with OpenAIServer(responder, models=models, faults=faults) as srv:
        yield srv.base_url
