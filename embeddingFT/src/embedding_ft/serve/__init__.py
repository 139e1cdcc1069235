"""Serve a model and its index over HTTP (FastAPI + uvicorn): ``make serve-embed INDEX=dir``.

Routes: ``POST /v1/embeddings`` (OpenAI's: the ``openai`` client works unchanged),
``POST /search`` (hits with their fused score and its bm25 and dense parts), ``GET /v1/models``,
``GET /health``, ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (hot swap; also SIGHUP)
and a search page at ``/``. Concurrent requests are batched by a token budget and a short wait
on one worker thread that owns the model; a full queue answers 429 with Retry-After.

One concept per module: ``settings`` (:class:`ServeSettings`: limits, batching, key),
``schemas`` (request bodies), ``batcher`` (:class:`Batcher`), ``engine`` (:class:`Engine`: a
loaded model + index), ``state`` (:class:`ServeState`: the engine in use, the hot swap),
``auth`` (loopback rule, API key, body cap), ``metrics`` (Prometheus), ``errors`` (one-line
JSON errors), ``routes``, ``page`` (the HTML), ``app`` (:func:`create_app`).

Run it with ``make serve-embed`` or ``python -m embedding_ft.cli.serve --index DIR``.
"""

from embedding_ft.serve.app import create_app
from embedding_ft.serve.auth import check_bind, is_loopback
from embedding_ft.serve.batcher import Batcher, QueueFull
from embedding_ft.serve.engine import Engine
from embedding_ft.serve.errors import ServeError
from embedding_ft.serve.settings import ServeSettings
from embedding_ft.serve.state import ServeState, install_sighup

__all__ = [
    "Batcher",
    "Engine",
    "QueueFull",
    "ServeError",
    "ServeSettings",
    "ServeState",
    "check_bind",
    "create_app",
    "install_sighup",
    "is_loopback",
]
