"""RL-VLM-F's online loop as a ``FrameScorer``: the preference reward model improves while the
policy trains on it (``vlm.scorer=preference vlm.preference_online=true``)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from rewardlab.vlm_reward.base import check_frames
from rewardlab.vlm_reward.preference_data import (
    Labeller,
    PreferenceDataset,
    collect_preferences,
)
from rewardlab.vlm_reward.preference_model import (
    UNSURE,
    RewardEnsemble,
    frames_to_input,
    load_ensemble,
    save_ensemble,
)
from rewardlab.vlm_reward.preference_training import train_ensemble


class OnlinePreferenceScorer:
    """RL-VLM-F's online loop as a ``FrameScorer``: the reward model improves while the policy
    trains on it.

    Every frame scored goes into a reservoir sample (``buffer_size`` frames, uniform over all
    frames seen). Each time another ``every`` frames have been scored, a round starts:
    ``queries`` pairs are drawn from the reservoir (uniformly in the first round, then by
    ensemble disagreement), labelled by ``labeller``, and the ensemble is trained further on all
    labels so far; with ``folder``, the labels (``prefs.pt``) and the ensemble (``reward.pt``)
    are written atomically after every round, and a new scorer over the same folder continues
    from them. Before the first round the reward is 0 (no labels, no reward; RL-VLM-F explores
    without reward first too). Labelling stops after ``max_queries`` pairs.

    With ``background`` a round runs on a worker thread over a snapshot of the reservoir and
    trains a copy of the ensemble, which replaces the live one when it is done: scoring (and
    so the simulator) never waits for the judge. Without it the round runs inside the
    :meth:`score` call that triggers it. A failed round (server down, ...) is logged and tried
    again ``every`` frames later; ``max_failures`` failures in a row raise.

    Args:
        labeller: e.g. :class:`rewardlab.vlm_reward.judge.VLMJudge`.
        ensemble: the reward model (new or loaded).
        image_size: side of the frames the training wrapper renders (what the labeller sees).
        folder: where labels and ensemble are kept (``None``: in memory only).
        queries: pairs labelled per round.
        every: frames scored between rounds.
        max_queries: total label budget.
        buffer_size: frames kept for querying.
        epochs: training epochs per round.
        background: run rounds on a worker thread.
        max_failures: consecutive failed rounds before the error is raised.
        seed: sampling seed.
        log: progress lines (``None``: silent).
    """

    progress_like = False

    def __init__(
        self,
        labeller: Labeller,
        ensemble: RewardEnsemble,
        image_size: int,
        folder: str | Path | None = None,
        queries: int = 64,
        every: int = 10_000,
        max_queries: int = 2_000,
        buffer_size: int = 512,
        epochs: int = 20,
        background: bool = False,
        max_failures: int = 3,
        seed: int = 0,
        log: Callable[[str], None] | None = print,
    ):
        for name, v in (("queries", queries), ("every", every), ("buffer_size", buffer_size)):
            if v < 1:
                raise ValueError(f"preference {name}: got {v!r}, expected >= 1")
        self.labeller, self.ensemble = labeller, ensemble
        self.image_size = int(image_size)
        self.folder = Path(folder) if folder is not None else None
        self.queries, self.every, self.max_queries = queries, every, max_queries
        self.buffer_size, self.epochs, self.seed, self.log = buffer_size, epochs, seed, log
        self.background, self.max_failures = background, max_failures
        self.buffer: torch.Tensor | None = None
        self.seen = 0
        self.rounds = 0
        self.failures = 0
        self.dataset: PreferenceDataset | None = None
        self.trained = False
        self._gen = torch.Generator().manual_seed(seed)
        self._next_round = every
        self._lock = threading.Lock()
        self._pending: Future[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="preference") if background else None
        if self.folder is not None and (self.folder / "prefs.pt").is_file():
            self.dataset = PreferenceDataset.load(self.folder / "prefs.pt")
            if (self.folder / "reward.pt").is_file():
                self.ensemble = load_ensemble(self.folder / "reward.pt")
                self.trained = True
            self._log(f"continuing from {len(self.dataset)} labelled pairs in {self.folder}")

    @property
    def labelled(self) -> int:
        """Pairs labelled so far."""
        return 0 if self.dataset is None else len(self.dataset)

    def score(self, frames: torch.Tensor) -> torch.Tensor:
        """Ensemble-mean reward ``float32 [n]`` (0 before the first round); may start a round."""
        frames = check_frames(frames).cpu()
        n = int(frames.shape[0])
        if n == 0:
            return torch.zeros(0)
        self._remember(frames)
        self.seen += n
        self._collect_finished()
        if self.seen >= self._next_round and self._pending is None:
            self._next_round = self.seen + self.every
            if self.labelled < self.max_queries and self.buffer is not None:
                if self._pool is None:
                    self._run_round(self.buffer)
                else:
                    self._pending = self._pool.submit(self._run_round, self.buffer.clone())
        with self._lock:
            ensemble, trained = self.ensemble, self.trained
        if not trained:
            return torch.zeros(n)
        with torch.inference_mode():
            size = ensemble.hparams["image_size"]
            return ensemble.reward(frames_to_input(frames, size)).float()

    def update(self) -> None:
        """One round now, in this thread (waits for a background round first)."""
        self.wait()
        if self.buffer is not None:
            self._run_round(self.buffer)

    def wait(self) -> None:
        """Wait for a background round to finish (raises what it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Finish the background round and stop the worker thread."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _collect_finished(self) -> None:
        if self._pending is not None and self._pending.done():
            pending, self._pending = self._pending, None
            pending.result()  # _run_round handles its errors; anything else is a bug: raise

    def _run_round(self, buffer: torch.Tensor) -> None:
        if buffer.shape[0] < 2:
            return
        k = min(self.queries, self.max_queries - self.labelled)
        if k < 1:
            return
        t0 = time.monotonic()
        with self._lock:
            live, trained = self.ensemble, self.trained
            dataset = None if self.dataset is None else PreferenceDataset(
                self.dataset.frames_a, self.dataset.frames_b, self.dataset.labels,
                dict(self.dataset.meta),
            )  # fmt: skip
        model = copy.deepcopy(live) if self._pool is not None else live
        method = "disagreement" if trained and len(model.members) > 1 else "uniform"
        try:
            dataset = collect_preferences(
                self.labeller,
                buffer,
                k,
                dataset,
                model if trained else None,
                method,
                batch=k,
                seed=self.seed + 7919 * self.labelled,
                store_size=model.hparams["image_size"],
                log=None,
            )
        except Exception as e:  # noqa: BLE001 - a failed round must not end a long run
            self.failures += 1
            self._log(
                f"round failed ({self.failures}/{self.max_failures} in a row): "
                f"{type(e).__name__}: {e}; next try after {self.every} more frames"
            )
            if self.failures >= self.max_failures:
                raise
            return
        self.failures = 0
        decided = int((dataset.labels != UNSURE).sum()) > 0
        acc = "no decided pair yet"
        if decided:
            res = train_ensemble(model, dataset, self.epochs, seed=self.seed, log=None)
            acc = f"train accuracy {res.accuracy:.3f}"
        with self._lock:
            self.dataset, self.ensemble = dataset, model
            self.trained = self.trained or decided
            self.rounds += 1
        if self.folder is not None:
            dataset.save(self.folder / "prefs.pt")
            if self.trained:
                save_ensemble(model, self.folder / "reward.pt")
        self._log(
            f"round {self.rounds}: {self.labelled}/{self.max_queries} pairs ({method}), {acc}, "
            f"{time.monotonic() - t0:.1f}s, after {self.seen} frames"
        )

    def _remember(self, frames: torch.Tensor) -> None:
        # Reservoir sampling (Vitter's algorithm R) over every frame ever scored.
        if self.buffer is None:
            self.buffer = frames[: self.buffer_size].clone()
            start = self.buffer.shape[0]
        else:
            start = 0
            if self.buffer.shape[0] < self.buffer_size:
                room = self.buffer_size - self.buffer.shape[0]
                self.buffer = torch.cat([self.buffer, frames[:room]])
                start = min(room, frames.shape[0])
        for i in range(start, frames.shape[0]):
            j = int(torch.randint(0, self.seen + i + 1, (1,), generator=self._gen))
            if j < self.buffer_size:
                self.buffer[j] = frames[i]

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(f"[preference] {line}")
