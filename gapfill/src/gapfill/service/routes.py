"""The endpoints: each route validates its body (the schemas) and calls the service's state.

Everything lives under ``/api/advanced-gap-filling/`` (:data:`PREFIX`), the map page at ``/``;
a :class:`~gapfill.service.errors.ServiceError` is answered with its status, a
:class:`~embshared.errors.UserError` with 422.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from embshared.errors import UserError
from gapfill.service.errors import ServiceError
from gapfill.service.schemas import (
    EvaluateRequest,
    GenerateRequest,
    InitializeRequest,
    NameRequest,
    UMAPRequest,
    Vec2TextRequest,
)
from gapfill.service.state import GapFillService

PREFIX = "/api/advanced-gap-filling"
#: the map page's folder (inside the installed package)
STATIC = Path(__file__).parent.parent / "static"


def build_router(service: GapFillService) -> APIRouter:
    """The page and every endpoint, answered by ``service``."""
    router = APIRouter()

    def call(fn, *args):
        try:
            return fn(*args)
        except ServiceError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        except UserError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (STATIC / "map.html").read_text(encoding="utf-8")

    @router.post(f"{PREFIX}/initialize")
    def initialize(req: InitializeRequest) -> dict:
        """Embed a document collection (posted, or a file inside the data directory)."""
        return call(service.initialize, req)

    @router.post(f"{PREFIX}/train-parametric-umap", status_code=202)
    def train_parametric_umap(body: UMAPRequest | None = None) -> dict:  # type: ignore[valid-type]
        """Start training the parametric UMAP (a background job; see status)."""
        return call(service.train_umap, body or UMAPRequest())

    @router.post(f"{PREFIX}/train-vec2text", status_code=202)
    def train_vec2text(body: Vec2TextRequest | None = None) -> dict:  # type: ignore[valid-type]
        """Start training vec2text on the documents' texts (a background job; see status)."""
        return call(service.train_vec2text, body or Vec2TextRequest())

    @router.post(f"{PREFIX}/evaluate-quality")
    def evaluate(req: EvaluateRequest | None = None) -> dict:
        """Trustworthiness and round-trip errors of the map (and vec2text cosines if asked)."""
        return call(service.evaluate, req or EvaluateRequest())

    @router.post(f"{PREFIX}/save-parametric-umap")
    def save_umap(req: NameRequest) -> dict:
        return call(service.save, "parametric_umap", req.name)

    @router.post(f"{PREFIX}/save-vec2text")
    def save_vec2text(req: NameRequest) -> dict:
        return call(service.save, "vec2text", req.name)

    @router.post(f"{PREFIX}/load-parametric-umap")
    def load_umap(req: NameRequest) -> dict:
        return call(service.load, "parametric_umap", req.name)

    @router.post(f"{PREFIX}/load-vec2text")
    def load_vec2text(req: NameRequest) -> dict:
        return call(service.load, "vec2text", req.name)

    @router.get(f"{PREFIX}/status")
    def status() -> dict:
        return service.status()

    @router.post(f"{PREFIX}/cancel")
    def cancel() -> dict:
        """Ask the running training job to stop."""
        return {"cancelled": service.jobs.cancel()}

    @router.get(f"{PREFIX}/gaps")
    def gaps(
        max_gaps: Annotated[int | None, Query(ge=1, le=100)] = None,
        grid_size: Annotated[int | None, Query(ge=4, le=512)] = None,
    ) -> dict:
        """Empty regions of the map inside the documents' hull, largest first."""
        return call(service.gaps_for, max_gaps, grid_size)

    @router.post(f"{PREFIX}/generate")
    def generate(req: GenerateRequest) -> dict:
        """Text for a map point: decoder -> embedding -> vec2text, with where the text lands."""
        return call(service.generate, req)

    @router.get(f"{PREFIX}/map-data")
    def map_data() -> dict:
        """Documents' map points and texts, and the gaps (for the map page)."""
        return service.map_data()

    return router
