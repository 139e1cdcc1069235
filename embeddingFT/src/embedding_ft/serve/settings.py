"""The server's settings: its limits, the batcher's budget and wait, the API key (:class:`ServeSettings`)."""

from __future__ import annotations

from dataclasses import dataclass

from embshared.errors import UserError


@dataclass(frozen=True)
class ServeSettings:
    """What the server allows and how it batches (the CLI's flags; tests pass small ones).

    Attributes:
        api_key: the Bearer token every route but ``/health`` and ``/`` requires (None: no key;
            then the server may bind only a loopback address and ``/admin/reload`` is refused).
        served_name: the model id of ``/v1/models`` and the ``model`` a request must name
            (None: the index's model, as meta.json names it).
        max_texts: texts per ``/v1/embeddings`` request (more: 413).
        max_chars: characters per text or query (more: 413).
        max_body_bytes: a request body's size as its Content-Length says (more: 413).
        max_top_k: the largest ``top_k`` of ``/search``.
        batch_tokens: the batcher's budget: texts x longest text (padded tokens) of one forward pass.
        batch_wait_ms: how long the batcher waits after a batch's first request for more.
        queue_texts: texts waiting for the model at most (more: 429 with Retry-After).
        request_timeout_s: how long a request waits for the model before a 503.
        workers: forward-pass worker threads, each with its own copy of the model (the batcher's).
        trim_every_s: seconds of work between two returns of the C heap's free pages to the OS
            (the batcher's; see :class:`~embedding_ft.serve.batcher.Batcher`).
        share_cores: with several workers, torch threads shared among the workers busy at a
            batch's start (the batcher's; None: each keeps the process's thread setting).
    """

    api_key: str | None = None
    served_name: str | None = None
    max_texts: int = 256
    max_chars: int = 32_768
    max_body_bytes: int = 16 * 1024 * 1024
    max_top_k: int = 100
    batch_tokens: int = 8192
    batch_wait_ms: float = 5.0
    queue_texts: int = 1024
    request_timeout_s: float = 60.0
    workers: int = 1
    trim_every_s: float = 2.0
    share_cores: int | None = None

    def __post_init__(self):
        positive = ("max_texts", "max_chars", "max_body_bytes", "max_top_k", "batch_tokens", "queue_texts", "workers")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0 or self.request_timeout_s <= 0 or self.trim_every_s < 0:
            raise UserError("batch_wait_ms and trim_every_s must be >= 0 and request_timeout_s > 0")
        if self.queue_texts < self.max_texts:
            raise UserError(f"queue_texts ({self.queue_texts}) must be at least max_texts ({self.max_texts})")
        if self.api_key is not None and not self.api_key.strip():
            raise UserError("the API key is empty")
