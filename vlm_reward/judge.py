"""A generative VLM judge over the OpenAI-compatible vision chat API.

Frames go to any server that speaks ``/v1/chat/completions`` with image content parts (OpenAI,
vLLM serving Qwen2.5-VL, Ollama with llava/qwen2.5vl, llama.cpp's server) as PNG or JPEG
``data:`` URLs, with a question about the goal:

- **progress** (one frame): "how far is the goal achieved, from 0 to 1?"; the reply is parsed
  into a number in ``[0, 1]``. This makes the judge a progress-like ``FrameScorer``
  (registered as ``judge``), shaped as a potential by default.
- **preference** (two frames or two clips): RL-VLM-F's question, "which image better achieves
  the goal? answer 0, 1, or -1 if unsure"; :meth:`VLMJudge.compare` is the labeller
  :mod:`rewardlab.vlm_reward.preference` trains its reward model from.

Requests run concurrently (``concurrency`` threads; the client is thread-safe), identical
frames are answered once (an in-memory cache keyed by the frame's SHA-1, and the chat client's
disk cache keyed by the whole request when ``judge_cache_dir`` is set, which also replays a
run offline). Replies are parsed leniently (JSON, ``progress: 0.7``, ``70%``, a bare number;
for comparisons the last of 0/1/-1, "Image 1"/"Image 2"), and a reply that still cannot be read
is asked again as a new sample, then raised as :class:`JudgeError` naming the reply.

What it cannot do: it is as good as the model behind the URL, and at one request per frame it
is far too slow and costly to score every environment step of a large batch; use it to label
preferences (a few thousand pairs), to evaluate, or with a large ``frame_stride``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from rewardlab.rewards.llm import ChatClient, LLMConfig, image_part, text_part
from rewardlab.vlm_reward.base import check_frames, register_scorer

PROGRESS_PROMPT = (
    "You are judging a robot's progress on a task from a camera image.\n"
    "The goal is: {goal}.\n"
    "How close is the scene in the image to achieving the goal? Answer with a number between "
    "0 (not started / far from the goal) and 1 (goal fully achieved). Reply on the last line "
    'as JSON: {{"progress": <number>}}.'
)
"""Question for one frame; ``{goal}`` is filled in."""

COMPARE_PROMPT = (
    "Consider the two {items} above: {first} is labelled 1 and {second} is labelled 2.\n"
    "The goal is: {goal}.\n"
    "Is the goal better achieved in {first} or in {second}? Reply on the last line with a single "
    "number: 0 if the goal is better achieved in {first}, 1 if it is better achieved in "
    "{second}, or -1 if you are unsure or there is no difference."
)
"""RL-VLM-F's labelling question (0: first better, 1: second better, -1: unsure)."""


DELTA_PROMPT = (
    "Image 1 and Image 2 above are two moments of the same robot episode.\n"
    "The goal is: {goal}.\n"
    "How much closer to achieving the goal is the scene in Image 2 than in Image 1? Answer with "
    "a number between -1 (Image 2 is completely undone relative to Image 1) and 1 (Image 1 is "
    "at the start and Image 2 achieves the goal); 0 means no change. Reply on the last line as "
    'JSON: {{"delta": <number>}}.'
)
"""VLAC-style pairwise progress question (signed, ``[-1, 1]``)."""


class JudgeError(RuntimeError):
    """The judge's reply could not be read as an answer (after re-asking)."""


# -------------------------------------------------------------------------------------------------
# Parsing

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def parse_progress(text: str) -> float:
    """Read a progress value in ``[0, 1]`` from a reply.

    Accepted, in order of preference: a JSON object with ``progress`` (or ``score``); a line
    ``progress: 0.7`` / ``score = 70%``; the last number in the text. Percentages (``70%``) and
    values on a 0-10 or 0-100 scale given as ``7/10``, ``70/100`` are converted. Values outside
    ``[0, 1]`` after conversion are clipped.

    Raises:
        JudgeError: no number could be found (the reply is quoted, shortened).
    """
    for m in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        for key in ("progress", "score", "value"):
            if isinstance(obj, dict) and isinstance(obj.get(key), int | float):
                return _clip01(float(obj[key]))
    keyed = re.findall(
        rf"(?:progress|score)\s*[\"']?\s*[:=]\s*({_NUMBER})\s*(%|/\s*\d+)?", text, re.IGNORECASE
    )
    if keyed:
        return _clip01(_scaled(*keyed[-1]))
    loose = re.findall(rf"({_NUMBER})\s*(%|/\s*\d+)?", text)
    if loose:
        return _clip01(_scaled(*loose[-1]))
    raise JudgeError(f"judge reply has no progress number: {text[:200]!r}")


def _scaled(num: str, suffix: str) -> float:
    v = float(num)
    suffix = (suffix or "").replace(" ", "")
    if suffix == "%":
        return v / 100.0
    if suffix.startswith("/"):
        den = float(suffix[1:])
        return v / den if den > 0 else v
    return v


def _clip01(v: float) -> float:
    if v != v:  # NaN
        raise JudgeError("judge reply gave NaN progress")
    return min(max(v, 0.0), 1.0)


def parse_delta(text: str) -> float:
    """Read a signed progress delta in ``[-1, 1]`` from a reply (JSON ``delta``, ``delta: -0.3``,
    or the last number; percentages converted; clipped).

    Raises:
        JudgeError: no number could be found.
    """
    for m in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("delta"), int | float):
            return min(max(float(obj["delta"]), -1.0), 1.0)
    keyed = re.findall(rf"delta\s*[\"']?\s*[:=]\s*({_NUMBER})\s*(%)?", text, re.IGNORECASE)
    loose = keyed or re.findall(rf"({_NUMBER})\s*(%)?", text)
    if not loose:
        raise JudgeError(f"judge reply has no progress delta: {text[:200]!r}")
    v = _scaled(*loose[-1])
    if v != v:
        raise JudgeError("judge reply gave NaN delta")
    return min(max(v, -1.0), 1.0)


def parse_preference(text: str) -> int:
    """Read an RL-VLM-F label from a reply: 0 (first better), 1 (second better), -1 (unsure).

    The last non-empty line is read first (a reasoning reply ends with its answer): its last
    standalone ``-1``, ``0`` or ``1``; else "unsure"/"no difference" (-1); else a single
    "Image 1"/"Image 2" (or "first"/"second"). Failing that, the last standalone number of the
    whole reply. Numbers in "Image 1"/"Clip 2" never count as answers.

    Raises:
        JudgeError: nothing readable (the reply is quoted, shortened).
    """
    mention = re.compile(r"\b(?:image|clip)\s*([12])\b", re.IGNORECASE)
    bare = re.compile(r"(?<![\w.\-])(-1|0|1)(?![\w.])")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    hits = bare.findall(mention.sub(" ", last))
    if hits:
        return int(hits[-1])
    named = set(mention.findall(last))
    low = last.lower()
    if re.search(r"\b(unsure|no difference|equal|tie|same)\b", low):
        return -1
    if re.search(r"\bfirst\b", low):
        named.add("1")
    if re.search(r"\bsecond\b", low):
        named.add("2")
    if len(named) == 1:
        return int(named.pop()) - 1
    hits = bare.findall(mention.sub(" ", text))
    if hits:
        return int(hits[-1])
    raise JudgeError(f"judge reply has no 0/1/-1 answer: {text[:200]!r}")


# -------------------------------------------------------------------------------------------------
# The judge


class VLMJudge:
    """Asks a vision-language chat model about frames.

    Args:
        client: a :class:`rewardlab.rewards.llm.ChatClient` (or anything with its ``chat``).
        goal: the goal in words ("the pole is balanced upright above the cart").
        image_size: side of the square frames the judge wants rendered (and sends).
        image_format: ``png`` (lossless) or ``jpeg`` (smaller requests).
        concurrency: requests in flight at once.
        retries: new samples asked for when a reply cannot be parsed.
        cache_size: frames whose progress is remembered in memory (0: none).
        progress_prompt: question for one frame (``{goal}`` filled in).
        compare_prompt: question for a pair (see :data:`COMPARE_PROMPT`).
        max_tokens: reply budget per request (a reasoning model needs more).
        delta_prompt: question for a signed progress delta (see :data:`DELTA_PROMPT`).
    """

    progress_like = True

    def __init__(
        self,
        client: Any,
        goal: str,
        image_size: int = 224,
        image_format: str = "png",
        concurrency: int = 8,
        retries: int = 2,
        cache_size: int = 100_000,
        progress_prompt: str = PROGRESS_PROMPT,
        compare_prompt: str = COMPARE_PROMPT,
        max_tokens: int = 256,
        delta_prompt: str = DELTA_PROMPT,
    ):
        if not goal.strip():
            raise ValueError("judge goal: got '', expected the goal in words")
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"judge image_format: got {image_format!r}, expected png or jpeg")
        if concurrency < 1:
            raise ValueError(f"judge concurrency: got {concurrency!r}, expected >= 1")
        self.client, self.goal = client, goal.strip().rstrip(".")
        self.image_size, self.image_format = int(image_size), image_format
        self.concurrency, self.retries, self.max_tokens = concurrency, retries, max_tokens
        self.progress_prompt, self.compare_prompt = progress_prompt, compare_prompt
        self.delta_prompt = delta_prompt
        self.cache_size = cache_size
        self._cache: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "reasked": 0, "unreadable": 0}

    # -- FrameScorer ------------------------------------------------------------------------------

    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Progress in ``[0, 1]`` of every frame, ``float32 [n]`` (one request per new frame).

        Raises:
            JudgeError: a reply stayed unreadable after ``retries`` new samples.
            rewardlab.rewards.llm.LLMError: the server failed for good.
        """
        frames = check_frames(frames).cpu()
        keys = [hashlib.sha1(f.numpy().tobytes()).hexdigest() for f in frames]
        known: dict[str, float] = {}
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k in known or k in first:
                continue
            v = self._cache_get(k)
            if v is None:
                first[k] = i
            else:
                known[k] = v
        if first:
            vals = self._map(self._progress_one, [frames[i] for i in first.values()])
            for k, v in zip(first, vals, strict=True):
                known[k] = v
                self._cache_put(k, v)
        res = [known[k] for k in keys]
        return torch.tensor(res, dtype=torch.float32)

    # -- Labeller (preference learning) -----------------------------------------------------------

    def compare(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        """RL-VLM-F labels of pairs: 0 (a better), 1 (b better), -1 (unsure), ``[B]`` int64.

        Args:
            frames_a: ``uint8 [B, H, W, 3]`` frames, or ``[B, T, H, W, 3]`` clips.
            frames_b: same shape.

        An unreadable reply (after re-asking) counts as unsure, and is counted in
        ``stats["unreadable"]``; server failures raise.
        """
        if frames_a.shape != frames_b.shape or frames_a.ndim not in (4, 5):
            raise ValueError(
                f"compare: frames_a {tuple(frames_a.shape)} and frames_b "
                f"{tuple(frames_b.shape)} must both be [B, H, W, 3] or [B, T, H, W, 3]"
            )
        pairs = list(zip(frames_a.cpu(), frames_b.cpu(), strict=True))
        return torch.tensor(self._map(self._compare_one, pairs), dtype=torch.long)

    def delta(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        """VLAC-style signed progress from each ``frames_a[i]`` to ``frames_b[i]``, ``[B]`` float32
        in ``[-1, 1]`` (``uint8 [B, H, W, 3]`` each).

        Unlike a learned :class:`rewardlab.vlm_reward.progress.PairwiseProgress`, a generative
        judge is not antisymmetric by construction; :meth:`delta_antisymmetric` asks both orders.

        Raises:
            JudgeError: a reply stayed unreadable after re-asking.
        """
        if frames_a.shape != frames_b.shape or frames_a.ndim != 4:
            raise ValueError(
                f"delta: frames_a {tuple(frames_a.shape)} and frames_b {tuple(frames_b.shape)} "
                "must both be [B, H, W, 3]"
            )
        pairs = list(zip(frames_a.cpu(), frames_b.cpu(), strict=True))
        return torch.tensor(self._map(self._delta_one, pairs), dtype=torch.float32)

    def delta_antisymmetric(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        """``(delta(a, b) - delta(b, a)) / 2``: antisymmetric, and cancels a judge's order bias
        (twice the requests)."""
        both = self.delta(torch.cat([frames_a, frames_b]), torch.cat([frames_b, frames_a]))
        n = frames_a.shape[0]
        return (both[:n] - both[n:]) / 2

    # -- requests ---------------------------------------------------------------------------------

    def progress_messages(self, frame: torch.Tensor) -> list[dict[str, Any]]:
        """The chat messages that ask for one frame's progress."""
        return [
            {
                "role": "user",
                "content": [
                    image_part(frame, fmt=self.image_format),
                    text_part(self.progress_prompt.format(goal=self.goal)),
                ],
            }
        ]

    def compare_messages(
        self, a: torch.Tensor, b: torch.Tensor, prompt: str | None = None
    ) -> list[dict[str, Any]]:
        """The chat messages that ask which of two frames (or clips) is better (or ``prompt``,
        formatted with ``goal``, ``items``, ``first``, ``second``)."""
        clips = a.ndim == 4
        parts: list[dict[str, Any]] = []
        for label, item in (("1", a), ("2", b)):
            frames = list(item) if clips else [item]
            name = f"Clip {label}" if clips else f"Image {label}"
            caption = f"{name} ({len(frames)} frames in time order):" if clips else f"{name}:"
            parts.append(text_part(caption))
            parts += [image_part(f, fmt=self.image_format) for f in frames]
        first, second = ("Clip 1", "Clip 2") if clips else ("Image 1", "Image 2")
        question = (prompt or self.compare_prompt).format(
            items="clips" if clips else "images", first=first, second=second, goal=self.goal
        )
        parts.append(text_part(question))
        return [{"role": "user", "content": parts}]

    def _ask(self, messages: list[dict[str, Any]], parse: Any) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            reply = self.client.chat(
                messages,
                n=1,
                first_sample=attempt,
                temperature=0.0 if attempt == 0 else 1.0,
                max_tokens=self.max_tokens,
            )[0]
            with self._lock:
                self.stats["requests"] += 1
                if attempt:
                    self.stats["reasked"] += 1
            try:
                return parse(reply.text)
            except JudgeError as e:
                last = str(e)
        raise JudgeError(f"{last} (after {self.retries + 1} samples)")

    def _progress_one(self, frame: torch.Tensor) -> float:
        return self._ask(self.progress_messages(frame), parse_progress)

    def _delta_one(self, pair: tuple[torch.Tensor, torch.Tensor]) -> float:
        return self._ask(self.compare_messages(*pair, prompt=self.delta_prompt), parse_delta)

    def _compare_one(self, pair: tuple[torch.Tensor, torch.Tensor]) -> int:
        try:
            return self._ask(self.compare_messages(*pair), parse_preference)
        except JudgeError:
            with self._lock:
                self.stats["unreadable"] += 1
            return -1

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _cache_get(self, key: str) -> float | None:
        with self._lock:
            v = self._cache.get(key)
            if v is not None:
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
            return v

    def _cache_put(self, key: str, value: float) -> None:
        if self.cache_size <= 0:
            return
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def judge_from_config(cfg: Any) -> VLMJudge:
    """Build the judge from ``VLMConfig`` (``judge_*`` fields; goal = the first goal prompt)."""

    if not cfg.goal_prompts:
        raise ValueError("vlm.goal_prompts: the judge needs the goal in words (none given)")

    def opt(name: str, default: Any) -> Any:
        return getattr(cfg, name, default)

    llm = LLMConfig(
        base_url=opt("judge_base_url", None),
        model=opt("judge_model", None),
        api_key_env=opt("judge_api_key_env", "OPENAI_API_KEY"),
        temperature=0.0,
        max_tokens=opt("judge_max_tokens", 256),
        cache_dir=opt("judge_cache_dir", None),
        timeout_s=opt("judge_timeout_s", 120.0),
    )
    return VLMJudge(
        ChatClient(llm, log=lambda line: print(line, flush=True)),
        goal=cfg.goal_prompts[0],
        image_size=opt("judge_image_size", 224),
        image_format=opt("judge_image_format", "png"),
        concurrency=opt("judge_concurrency", 8),
        max_tokens=opt("judge_max_tokens", 256),
    )


register_scorer("judge", judge_from_config)
