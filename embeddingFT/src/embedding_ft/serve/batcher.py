"""Batching across requests: worker threads run every forward pass, each on its own copy of the model.

Requests put their texts (with each text's token count) on a bounded queue and wait on a
future. The worker takes the first waiting request, waits up to ``wait_ms`` after it arrived
for more to come (only under load: when the last batch held one request and the queue holds
one, it runs at once; a lone request at concurrency 1 otherwise paid the whole wait, 5 ms of a
~20 ms reply in ``make bench-serve``), then takes requests in arrival order while the batch's padded size
(texts x longest text, in tokens) stays within ``budget_tokens``, and encodes them in one
``encode`` call (one forward pass: a request larger than the budget alone runs alone, cut by
``encode`` into passes within the budget). The results are split back to each request's future.

A request is only batched with requests for the same encoder: after a hot swap the requests
queued for the old model still run on it, the new ones on the new model.

With ``workers`` > 1 each worker thread takes the next batch while the others run theirs, on
its own copy of the model (:class:`Replicas`: worker k runs copy k; a Hugging Face tokenizer
must not be called from two threads at once, and each copy has its own). With ``share_cores``
the cores are shared per batch: a worker starting a batch alone takes all torch threads, two
busy ones half each. Measured on 2 cores (``make bench-serve --fixed-threads-too``, MiniLM,
AMD EPYC, 2026-12-08, one run): two workers sharing the cores served 171 queries/s at
concurrency 32 and 152 at 8, against 154 / 126 with one fixed thread each and 143 / 124 with
one worker; a single document ran at 14.2/s, against 10.1 with fixed threads and 17.4 with one
worker. So the default stays one worker (single requests), and two are the throughput setting.

Every ``trim_every_s`` seconds of work (2), the first worker hands the C heap's free pages back to
the OS between two batches (:func:`embshared.runtime.release_free_memory`): glibc otherwise keeps
what tokenizers and the model freed. Measured with the soak's load (``bench/probe_soak_memory.py``,
AMD EPYC, 2026-12-07): the memory that churns is native (Python's traced allocations stay at
296 MB while RSS moves), and between two trims RSS climbs back by up to ~100 MB: every 30 s, RSS
read every 15 s swung between 787 and 898 MB; every 2 s, between 810 and 873 MB, at the same rate
(75.0 against 72.4 requests/s), so a reading says less about the phase of the trim. Fewer glibc
arenas (``MALLOC_ARENA_MAX=2``) changed neither.

The queue holds at most ``max_queue`` texts; a request that does not fit gets :class:`QueueFull`
(answered 429, Retry-After from the worker's recent rate) instead of waiting without bound.

Why our own and not infinity-emb's: its batch handler is woven into its own engine, model
loading and server, and infinity-emb 0.0.78 requires sentence-transformers < 4 and numpy < 2
where this workspace pins sentence-transformers 6.2, so it cannot even be a dependency here.
This is ~100 lines, needs nothing installed, and runs the workspace's own encoders (PyTorch,
ONNX Runtime, OpenVINO through :func:`embedding_ft.backends.load_encoder`) unchanged.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from embshared.runtime import release_free_memory

logger = logging.getLogger("embedding_ft.serve")


class QueueFull(Exception):
    """The queue has no room for the request: answer 429 and retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy ({retry_after} s estimated wait): retry later")
        self.retry_after = retry_after


class Replicas(tuple):
    """Copies of one model, one per worker: worker k encodes with copy ``k % len``."""


@dataclass
class _Request:
    encoder: object
    texts: list[str]
    lengths: list[int]  # tokens of each text
    arrived: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


#: (texts, padded tokens, seconds) of each forward pass
BatchHook = Callable[[int, int, float], None]


class Batcher:
    """Groups concurrent requests into forward passes on one worker thread.

    Args:
        budget_tokens: a batch's padded tokens (texts x longest) at most.
        wait_ms: how long to wait after a batch's first request for more requests.
        max_queue: texts waiting at most (more: :class:`QueueFull`).
        on_batch: called after each forward pass with (texts, padded tokens, seconds).
        workers: worker threads, each running its own batches (on copy k of a :class:`Replicas`).
        trim_every_s: seconds between two returns of the C heap's free pages to the OS (after a batch).
        share_cores: with several workers, the torch threads shared among the workers running at
            a batch's start: a worker alone takes all of them, two take half each (None: each worker
            keeps the process's setting). PyTorch's thread count is per thread, so each worker
            sets its own.
    """

    def __init__(
        self,
        budget_tokens: int = 8192,
        wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch=None,
        workers: int = 1,
        trim_every_s: float = 2.0,
        share_cores: int | None = None,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.budget, self.wait, self.max_queue = budget_tokens, wait_ms / 1000.0, max_queue
        self.on_batch: BatchHook | None = on_batch
        self._queue: deque[_Request] = deque()
        self._queued = 0  # texts in the queue
        self._cond = threading.Condition()
        self._stopping = False
        self._seconds_per_text = 0.01  # running estimate, for Retry-After
        self._lone = True  # the last batch held one request: no load, so a lone request does not wait
        self.trim_every_s = trim_every_s
        self._trimmed = time.monotonic()
        self.share_cores = share_cores
        self._busy = 0  # workers running a batch
        self._threads = [
            threading.Thread(target=self._run, args=(k,), name=f"embed-batcher-{k}", daemon=True)
            for k in range(workers)
        ]

    @property
    def depth(self) -> int:
        """Texts waiting for the model."""
        return self._queued

    def start(self) -> Batcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch running, fail the requests still queued, and end the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        with self._cond:
            while self._queue:
                self._queue.popleft().future.set_exception(RuntimeError("the server is shutting down"))
            self._queued = 0

    def submit(self, encoder, texts: list[str], lengths: list[int]) -> Future:
        """Queue ``texts`` for ``encoder`` (or a :class:`Replicas`); the future gives their (n, dim) unit vectors."""
        if not texts or len(texts) != len(lengths):
            raise ValueError("submit needs one token count per text, and at least one text")
        request = _Request(encoder, list(texts), [max(1, int(n)) for n in lengths])
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if self._queued + len(texts) > self.max_queue:
                raise QueueFull(max(1, math.ceil((self._queued + len(texts)) * self._seconds_per_text)))
            self._queue.append(request)
            self._queued += len(texts)
            self._cond.notify_all()
        return request.future

    def _run(self, worker: int = 0) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            with self._cond:
                self._busy += 1
                busy = self._busy
            try:
                if self.share_cores:
                    self._set_threads(max(1, self.share_cores // busy))
                self._encode(batch, worker)
            finally:
                with self._cond:
                    self._busy -= 1
            if worker == 0 and time.monotonic() - self._trimmed >= self.trim_every_s:
                release_free_memory()
                self._trimmed = time.monotonic()

    def _set_threads(self, threads: int) -> None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def _ready(self) -> bool:
        """The queue's head batch is full (its budget reached), its first request has waited long enough,
        or it is a lone request with no load (the last batch was one request too)."""
        head = self._queue[0]
        if self._lone and len(self._queue) == 1:
            return True
        texts, longest = 0, 0
        for request in self._queue:
            if request.encoder is not head.encoder:
                return True
            texts, longest = texts + len(request.texts), max(longest, *request.lengths)
            if texts * longest >= self.budget:
                return True
        return time.monotonic() >= head.arrived + self.wait

    def _next_batch(self) -> list[_Request] | None:
        with self._cond:
            while True:
                while not self._queue and not self._stopping:
                    self._cond.wait(timeout=1.0)
                while self._queue and not self._stopping and not self._ready():
                    self._cond.wait(timeout=max(0.0, self._queue[0].arrived + self.wait - time.monotonic()))
                if self._queue or self._stopping:
                    break  # (another worker may have taken the batch this one waited for: wait again)
            if not self._queue:
                return None
            batch = [self._queue.popleft()]
            texts, longest = len(batch[0].texts), max(batch[0].lengths)
            while self._queue and self._queue[0].encoder is batch[0].encoder:
                nxt = self._queue[0]
                if (texts + len(nxt.texts)) * max(longest, *nxt.lengths) > self.budget:
                    break
                batch.append(self._queue.popleft())
                texts, longest = texts + len(nxt.texts), max(longest, *nxt.lengths)
            self._queued -= texts
            self._lone = len(batch) == 1
            return batch

    def _encode(self, batch: list[_Request], worker: int = 0) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]  # skips cancelled requests
        texts = [t for r in live for t in r.texts]
        if not texts:
            return
        longest = max(n for r in live for n in r.lengths)
        start = time.perf_counter()
        try:
            encoder = live[0].encoder
            if isinstance(encoder, Replicas):
                encoder = encoder[worker % len(encoder)]
            vectors = encoder.encode(texts, batch_size=max(1, self.budget // longest), normalize_embeddings=True)
            vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        except Exception as exc:  # the requests fail, the worker goes on
            logger.error("a batch of %d texts failed", len(texts), exc_info=exc)
            for request in live:
                request.future.set_exception(exc)
            return
        seconds = time.perf_counter() - start
        self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * seconds / len(texts)
        offset = 0
        for request in live:
            request.future.set_result(vectors[offset : offset + len(request.texts)])
            offset += len(request.texts)
        if self.on_batch is not None:
            self.on_batch(len(texts), len(texts) * longest, seconds)
