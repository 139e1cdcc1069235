"""``create_app``: the FastAPI app around one :class:`~gapfill.service.state.GapFillService`
(its routes from :func:`~gapfill.service.routes.build_router`; the running job is cancelled at shutdown)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from gapfill.config import ServiceConfig
from gapfill.graph import GraphBuilder
from gapfill.service.routes import build_router
from gapfill.service.state import EmbedderFactory, GapFillService, LMFactory, default_embedder, default_lm

#: the app's description in its OpenAPI page
DESCRIPTION = "The gap-filling HTTP service (FastAPI) and its map page."


def create_app(
    config: ServiceConfig | None = None,
    embedder_factory: EmbedderFactory | None = None,
    lm_factory: LMFactory | None = None,
    graph_builder: GraphBuilder | None = None,
) -> FastAPI:
    """The FastAPI app; factories default to the packaged MiniLM, SmolLM2 and umap-learn (tests pass small ones)."""
    config = config or ServiceConfig()
    service = GapFillService(
        config, embedder_factory or default_embedder(config.embedder), lm_factory or default_lm, graph_builder
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.jobs.cancel()
        service.jobs.join(timeout=10)

    app = FastAPI(title="gapfill", description=DESCRIPTION, version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.include_router(build_router(service))
    return app
