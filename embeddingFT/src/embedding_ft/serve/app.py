"""``create_app``: the FastAPI app around one :class:`~embedding_ft.serve.engine.Engine`.

The batcher's worker starts with the app and stops with it (the requests still queued then
fail with 503). Middleware, outermost first: the metrics (every request counted, refusals
included), the guard (API key, body size); then the routes, whose errors are one-line JSON.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from embedding_ft.serve.auth import GuardMiddleware
from embedding_ft.serve.batcher import Batcher
from embedding_ft.serve.engine import Engine
from embedding_ft.serve.errors import install_error_handlers
from embedding_ft.serve.metrics import Metrics, MetricsMiddleware
from embedding_ft.serve.routes import build_router
from embedding_ft.serve.settings import ServeSettings
from embedding_ft.serve.state import ServeState

DESCRIPTION = "Embeddings (OpenAI-compatible) and search over an embedding_ft index, batched across requests."


def create_app(engine: Engine, settings: ServeSettings | None = None, source: dict | None = None) -> FastAPI:
    """The app serving ``engine``; ``source`` is what SIGHUP reloads (see :class:`ServeState`)."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    state = ServeState(engine, settings, source, on_reload=metrics.on_reload)
    metrics.watch_queue(lambda: state.batcher.depth if state.batcher is not None else 0)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = Batcher(
            settings.batch_tokens,
            settings.batch_wait_ms,
            settings.queue_texts,
            metrics.on_batch,
            settings.workers,
            settings.trim_every_s,
            settings.share_cores,
        )
        state.batcher = batcher.start()
        try:
            yield
        finally:
            state.batcher = None
            batcher.stop()

    app = FastAPI(title="embedding_ft serve", description=DESCRIPTION, version="0.1.0", lifespan=lifespan)
    app.state.serve = state
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(build_router(state, metrics))
    return app
