"""A small OpenAI-compatible chat-completions client with retries, accounting and a disk cache.

Speaks ``POST {base_url}/chat/completions`` and ``GET {base_url}/models`` over the standard
library's ``urllib`` (no ``openai`` package), so it works with OpenAI, vLLM, Ollama
(``http://localhost:11434/v1``), llama.cpp's ``llama-server`` and anything else that speaks
that API. Messages may carry images as content parts (``{"type": "image_url", "image_url":
{"url": "data:image/png;base64,..."}}``, see :func:`image_part`) for vision models.

::

    client = ChatClient(LLMConfig(base_url="http://localhost:8000/v1", model="qwen"), cache_dir)
    replies = client.chat([{"role": "user", "content": "hi"}], n=4)   # 4 samples
    client.usage.as_dict()  # requests, tokens, cost, cache hits, retries

Every sample is cached on disk under a key of (messages, model, sampling settings and seed,
sample index): asking again for the same thing is answered from the cache with no server, which is
how a search is replayed offline. Sample ``i`` of a request is the same cache entry whether it
came from an ``n``-sample request or a single call.

What it cannot do: streaming, tool/function calls, the legacy completions API, or the Responses
API; ``n`` is asked for but servers that ignore it are answered by repeated calls.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.core.files import atomic_write


@dataclass(frozen=True)
class LLMConfig:
    """An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server)."""

    base_url: str | None = None
    """Base URL up to ``/v1`` (e.g. ``http://localhost:11434/v1`` for Ollama); null: the
    ``OPENAI_BASE_URL`` environment variable, else ``https://api.openai.com/v1``."""
    model: str | None = None
    """Model name as the server knows it; null: the ``REWARDLAB_LLM_MODEL`` environment variable."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (sent as ``Authorization: Bearer``); unset or
    empty: no key is sent (local servers need none). The key is never written to disk."""
    temperature: float = 1.0
    """Sampling temperature (Eureka samples at 1.0 for diversity)."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_tokens: int = 2048
    """Most tokens per reply."""
    seed: int | None = 0
    """Base of the per-sample ``seed`` sent with each request (sample ``i`` sends ``seed + i``);
    null: send none. Servers that honour it (OpenAI, vLLM, llama.cpp) then reproduce samples."""
    use_n: bool = True
    """Ask for several samples in one request with ``n``; samples a server does not return
    (Ollama, llama.cpp ignore ``n``) are fetched by repeated calls."""
    timeout_s: float = 120.0
    """Socket timeout of one request in seconds (a reply slower than this is retried)."""
    max_retries: int = 5
    """Retries of one request on 429, 5xx, timeouts and connection errors."""
    backoff_s: float = 1.0
    """First retry delay in seconds; doubles on every retry (a ``Retry-After`` header wins)."""
    backoff_max_s: float = 60.0
    """Longest delay between retries."""
    cache_dir: str | None = None
    """Response cache folder; null: ``<run_dir>/llm_cache``. Point a new search at an old
    search's cache to replay it without any server."""
    offline: bool = False
    """Answer only from the cache; a request the cache does not hold is an error."""
    price_prompt_per_1m: float = 0.0
    """US dollars per million prompt tokens, for the cost estimate."""
    price_completion_per_1m: float = 0.0
    """US dollars per million completion tokens, for the cost estimate."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields sent with every request (e.g. ``{"reasoning_effort": "low"}``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        checks = [
            ("temperature", 0.0 <= self.temperature <= 2.0, "between 0 and 2"),
            ("top_p", 0.0 < self.top_p <= 1.0, "in (0, 1]"),
            ("max_tokens", self.max_tokens >= 1, ">= 1"),
            ("timeout_s", self.timeout_s > 0, "> 0"),
            ("max_retries", self.max_retries >= 0, ">= 0"),
            ("backoff_s", self.backoff_s >= 0, ">= 0"),
            ("backoff_max_s", self.backoff_max_s >= 0, ">= 0"),
            ("price_prompt_per_1m", self.price_prompt_per_1m >= 0, ">= 0"),
            ("price_completion_per_1m", self.price_completion_per_1m >= 0, ">= 0"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected {allowed}")
        url = self.base_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: got {url!r}, expected an http:// or https:// URL")

    def resolved_base_url(self) -> str:
        """``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's; without a trailing slash."""
        url = self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return url.rstrip("/")

    def resolved_model(self) -> str:
        """``model``, else ``$REWARDLAB_LLM_MODEL``.

        Raises:
            ValueError: neither is set.
        """
        model = self.model or os.environ.get("REWARDLAB_LLM_MODEL")
        if not model:
            raise ValueError(
                "llm.model: not set; pass llm.model=NAME or set REWARDLAB_LLM_MODEL "
                "(e.g. gpt-4o, Qwen/Qwen2.5-Coder-32B-Instruct, llama3.1:8b)"
            )
        return model

    def api_key(self) -> str | None:
        """The key from ``api_key_env`` (``None`` when unset or empty)."""
        return os.environ.get(self.api_key_env) or None


RETRY_STATUS = (408, 409, 425, 429, 500, 502, 503, 504)
"""HTTP statuses retried with backoff (rate limits, overload, gateway errors)."""

Message = Mapping[str, Any]


class LLMError(RuntimeError):
    """A request that failed for good: a client error (4xx), or retries exhausted.

    Attributes:
        status: the HTTP status of the last attempt (``None`` for connection errors/timeouts).
        body: the server's error text (shortened).
    """

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status, self.body = status, body


class CacheMiss(LLMError):
    """``offline`` mode and the cache does not hold the requested sample."""


@dataclass
class ChatReply:
    """One sampled reply."""

    text: str
    """The assistant message's content ("" when the server sent none)."""
    finish_reason: str | None
    """``stop``, ``length``, ... as the server reported it."""
    sample_index: int
    """Which sample of the request this is (part of the cache key)."""
    cached: bool
    """Answered from the disk cache."""
    model: str
    """The model the server says answered."""
    usage: dict[str, int] = field(default_factory=dict)
    """Tokens of the request this reply came from (shared by its samples; zero when cached)."""


@dataclass
class Usage:
    """Token, request and cost accounting of one client (one search run)."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    samples: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dict(self.__dict__)


def image_part(image: Any, fmt: str = "png", detail: str | None = None) -> dict[str, Any]:
    """A chat content part carrying an image as a ``data:`` URL.

    Args:
        image: PNG/JPEG bytes, or a ``uint8 [H, W, 3]`` array / tensor (encoded with imageio).
        fmt: ``png`` or ``jpeg`` (for arrays).
        detail: OpenAI's ``detail`` hint (``low``, ``high``, ``auto``); omitted when ``None``.
    """
    if isinstance(image, bytes | bytearray):
        data, mime = bytes(image), "image/jpeg" if image[:2] == b"\xff\xd8" else "image/png"
    else:
        # only for frames: the client itself needs the standard library alone (it is read when
        # the command line is parsed)
        import imageio.v3 as iio
        import numpy as np

        arr = np.asarray(image.cpu() if hasattr(image, "cpu") else image, dtype=np.uint8)
        buf = io.BytesIO()
        ext = ".jpg" if fmt in ("jpg", "jpeg") else ".png"
        iio.imwrite(buf, arr, extension=ext)
        data, mime = buf.getvalue(), "image/jpeg" if ext == ".jpg" else "image/png"
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if detail is not None:
        part["image_url"]["detail"] = detail
    return part


def text_part(text: str) -> dict[str, Any]:
    """A chat content part carrying text."""
    return {"type": "text", "text": text}


class ResponseCache:
    """Replies on disk, one JSON file per sample, written atomically (safe across processes)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(messages: Sequence[Message], settings: Mapping[str, Any], sample_index: int) -> str:
        """sha256 of the canonical JSON of messages, model + sampling settings and sample index."""
        blob = json.dumps(
            {"messages": list(messages), "settings": dict(settings), "sample": sample_index},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or ``None`` (a corrupt file counts as missing)."""
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def put(self, key: str, entry: Mapping[str, Any]) -> None:
        """Store ``entry`` atomically (write a temp file, then rename)."""
        text = json.dumps(dict(entry), ensure_ascii=False, indent=1)
        atomic_write(self._path(key), text, fsync=False)  # a cache: cheap to lose


class ChatClient:
    """Chat completions against an OpenAI-compatible server (thread-safe accounting).

    Args:
        cfg: endpoint, model, sampling, retry and cache settings.
        cache_dir: response cache folder (overrides ``cfg.cache_dir``); ``None`` and no
            ``cfg.cache_dir``: no cache.
        log: called with one line per retry (default: print to stdout).
    """

    def __init__(
        self,
        cfg: LLMConfig,
        cache_dir: str | Path | None = None,
        log: Any = None,
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.base_url = cfg.resolved_base_url()
        self.model = cfg.resolved_model()
        folder = cache_dir if cache_dir is not None else cfg.cache_dir
        self.cache = ResponseCache(folder) if folder is not None else None
        self.usage = Usage()
        self._lock = threading.Lock()
        self._log = log if log is not None else (lambda line: print(line, flush=True))
        self._rng = random.Random()

    # -- public API --------------------------------------------------------------------------

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Model and sampling settings that go into the request and the cache key."""
        s = {
            "model": self.model,
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "max_tokens": self.cfg.max_tokens,
            **dict(self.cfg.extra_body),
        }
        s.update(overrides)
        return s

    def chat(
        self,
        messages: Sequence[Message],
        n: int = 1,
        first_sample: int = 0,
        **overrides: Any,
    ) -> list[ChatReply]:
        """Sample ``n`` replies to ``messages`` (samples ``first_sample .. first_sample + n - 1``).

        Cached samples are served from disk; the rest are requested with ``n`` (when
        ``cfg.use_n``) and then, for whatever the server did not return, one call per sample.

        Args:
            messages: OpenAI chat messages (``role``, ``content`` as text or content parts).
            n: samples wanted.
            first_sample: index of the first sample (a later batch of the same prompt
                continues the numbering, so its samples are new ones).
            **overrides: sampling settings for this call (``temperature=0``, ``max_tokens=``).

        Raises:
            LLMError: a 4xx other than 408/409/425/429, or a sample still failing after retries.
            CacheMiss: ``cfg.offline`` and a sample is not in the cache.
        """
        if n < 1:
            raise ValueError(f"n: got {n!r}, expected >= 1")
        settings = self.settings(**overrides)
        indices = list(range(first_sample, first_sample + n))
        out: dict[int, ChatReply] = {}
        for i in indices:
            hit = self._cache_get(messages, settings, i)
            if hit is not None:
                out[i] = hit
        missing = [i for i in indices if i not in out]
        if missing and self.cfg.offline:
            raise CacheMiss(
                f"offline: sample {missing[0]} of this prompt is not in the cache "
                f"({self.cache.folder if self.cache else 'no cache_dir'}); "
                "set llm.offline=false to ask the server"
            )
        if len(missing) > 1 and self.cfg.use_n:
            got = self._request(messages, settings, missing[0], len(missing))
            for i, reply in zip(missing, got, strict=False):
                reply.sample_index = i
                out[i] = reply
                self._cache_put(messages, settings, reply)
            missing = [i for i in indices if i not in out]
        for i in missing:
            reply = self._request(messages, settings, i, 1)[0]
            reply.sample_index = i
            out[i] = reply
            self._cache_put(messages, settings, reply)
        with self._lock:
            self.usage.samples += n
        return [out[i] for i in indices]

    def list_models(self) -> list[str]:
        """Model ids from ``GET /models`` (no retries beyond the configured ones)."""
        data = self._http("GET", "/models", None)
        return [m.get("id", "") for m in data.get("data", [])]

    # -- internals ---------------------------------------------------------------------------

    def _key(self, messages: Sequence[Message], settings: Mapping[str, Any], i: int) -> str:
        # the seed base is part of what makes sample i; it is sent as seed + i, not in settings
        return ResponseCache.key(messages, {**settings, "seed": self.cfg.seed}, i)

    def _cache_get(
        self, messages: Sequence[Message], settings: Mapping[str, Any], i: int
    ) -> ChatReply | None:
        if self.cache is None:
            return None
        entry = self.cache.get(self._key(messages, settings, i))
        if entry is None:
            return None
        with self._lock:
            self.usage.cache_hits += 1
        return ChatReply(
            text=entry["text"],
            finish_reason=entry.get("finish_reason"),
            sample_index=i,
            cached=True,
            model=entry.get("model", settings["model"]),
            usage={},
        )

    def _cache_put(
        self, messages: Sequence[Message], settings: Mapping[str, Any], reply: ChatReply
    ) -> None:
        if self.cache is None:
            return
        key = self._key(messages, settings, reply.sample_index)
        self.cache.put(
            key,
            {
                "text": reply.text,
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "usage": reply.usage,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    def _request(
        self, messages: Sequence[Message], settings: Mapping[str, Any], first: int, n: int
    ) -> list[ChatReply]:
        body: dict[str, Any] = {"messages": list(messages), **settings}
        if n > 1:
            body["n"] = n
        if self.cfg.seed is not None:
            body["seed"] = self.cfg.seed + first
        data = self._http("POST", "/chat/completions", body)
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise LLMError(f"{self.base_url}/chat/completions: reply has no choices: {data!r:.300}")
        usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
        with self._lock:
            u = self.usage
            u.prompt_tokens += usage.get("prompt_tokens", 0)
            u.completion_tokens += usage.get("completion_tokens", 0)
            u.cost_usd = (
                u.prompt_tokens * self.cfg.price_prompt_per_1m
                + u.completion_tokens * self.cfg.price_completion_per_1m
            ) / 1e6
        replies = []
        for j, c in enumerate(choices[:n]):
            msg = c.get("message") or {}
            content = msg.get("content")
            if isinstance(content, list):  # some servers return content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            replies.append(
                ChatReply(
                    text=content or "",
                    finish_reason=c.get("finish_reason"),
                    sample_index=first + j,
                    cached=False,
                    model=str(data.get("model", settings["model"])),
                    usage=usage,
                )
            )
        return replies

    def _http(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """One API call with retries and exponential backoff; returns the decoded JSON."""
        url = self.base_url + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self.cfg.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = None if body is None else json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            t0 = time.perf_counter()
            status: int | None = None
            retry_after: float | None = None
            try:
                req = urllib.request.Request(url, data=payload, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:  # noqa: S310
                    raw = resp.read()
                with self._lock:
                    self.usage.requests += 1
                    self.usage.seconds += time.perf_counter() - t0
                try:
                    return json.loads(raw.decode("utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise LLMError(f"{url}: reply is not JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as e:
                status = e.code
                text = _read_error(e)
                retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                with self._lock:
                    self.usage.requests += 1
                    self.usage.seconds += time.perf_counter() - t0
                if status not in RETRY_STATUS:
                    hint = {
                        401: " (check the API key in $" + self.cfg.api_key_env + ")",
                        404: " (check llm.base_url, which should end in /v1, and llm.model)",
                    }.get(status, "")
                    raise LLMError(f"{url}: HTTP {status}{hint}: {text}", status, text) from None
                problem = f"HTTP {status}: {text[:120]}"
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
            ) as e:
                reason = getattr(e, "reason", e)
                problem = f"{type(reason).__name__}: {reason}"
                text = ""
            if attempt >= self.cfg.max_retries:
                raise LLMError(
                    f"{url}: failed after {attempt + 1} attempts; last: {problem}", status, text
                )
            delay = min(self.cfg.backoff_s * 2**attempt, self.cfg.backoff_max_s)
            delay *= 0.75 + 0.5 * self._rng.random()  # jitter: parallel clients spread out
            if retry_after is not None:
                delay = min(max(delay, retry_after), max(self.cfg.backoff_max_s, retry_after))
            attempt += 1
            with self._lock:
                self.usage.retries += 1
            self._log(f"[llm] {problem}; retry {attempt}/{self.cfg.max_retries} in {delay:.1f} s")
            time.sleep(delay)


def _read_error(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only for the message
        return ""
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))[:500]
        if err:
            return str(err)[:500]
    except (json.JSONDecodeError, AttributeError):
        pass
    return raw[:500]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
