"""The endpoints: each checks its body against the server's limits and runs on the engine it took.

``POST /v1/embeddings`` (OpenAI's), ``POST /search``, ``GET /v1/models``, ``GET /health``,
``GET /metrics``, ``POST /admin/reload`` and the page at ``/``. Texts are counted in tokens
on the event loop when short and on a worker thread when long, encoded by the batcher, and
searched on a worker thread.
"""

from __future__ import annotations

import base64

import numpy as np
import orjson
from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from embedding_ft.serve.errors import ServeError
from embedding_ft.serve.metrics import Metrics
from embedding_ft.serve.page import PAGE
from embedding_ft.serve.schemas import EmbeddingRequest, ReloadRequest, SearchRequest
from embedding_ft.serve.state import ServeState


def check_texts(texts: list[str], max_texts: int, max_chars: int, what: str = "input") -> None:
    """413 for too many or too long texts, 422 for none or an empty one."""
    if not texts:
        raise ServeError(422, f"{what} is empty")
    if len(texts) > max_texts:
        raise ServeError(413, f"{what} has {len(texts)} texts; at most {max_texts} per request")
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise ServeError(413, f"{what}[{i}] has {len(text)} characters; at most {max_chars}")
        if not text.strip():
            raise ServeError(422, f"{what}[{i}] is empty")


def shape_vectors(vectors: np.ndarray, dimensions: int | None, dim: int) -> np.ndarray:
    """The first ``dimensions`` of each unit vector, renormalised to unit length (Matryoshka)."""
    if dimensions is None or dimensions >= dim:
        return vectors
    cut = vectors[:, :dimensions]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)


def encode_vector(vector: np.ndarray, encoding_format: str):
    """A float32 array (written as JSON numbers by :func:`json_reply`), or base64 of its little-endian bytes (as OpenAI sends them)."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.ascontiguousarray(vector, dtype=np.float32)


def json_reply(body: dict) -> Response:
    """``body`` as JSON, numpy arrays included, written by orjson.

    Not FastAPI's JSONResponse: it needs ``.tolist()`` and the standard ``json`` module, which
    took the largest share of the event loop's time at concurrency 8 in a py-spy profile of the
    server (make bench-serve, 2026-12-07); orjson writes a float32 array directly, in the
    shortest digits that read back to the same float32.
    """
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


#: characters of a request counted on the event loop itself (more: on a worker thread)
INLINE_COUNT_CHARS = 2048


async def count_tokens(engine, texts: list[str]) -> list[int]:
    """Each text's tokens: short requests on the event loop (the hop to a thread costs more), long ones on a thread."""
    if sum(len(t) for t in texts) <= INLINE_COUNT_CHARS:
        return engine.count_tokens_inline(texts)
    return await run_in_threadpool(engine.count_tokens, texts)


def build_router(state: ServeState, metrics: Metrics) -> APIRouter:
    """Every route, answered from ``state``."""
    router = APIRouter()
    settings = state.settings

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE

    @router.get("/health")
    def health() -> JSONResponse:
        """Live (any answer) and ready (model and index loaded, worker running: 200; else 503)."""
        body = {"live": True, "ready": state.ready}
        if state.ready:
            body |= {**state.engine.describe(), "loaded_at": state.loaded_at}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @router.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @router.get("/v1/models")
    def models() -> dict:
        engine = state.current()
        created = int(state.loaded_at)
        return {
            "object": "list",
            "data": [{"id": engine.name, "object": "model", "created": created, "owned_by": "embedding_ft"}],
        }

    @router.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest) -> Response:
        """OpenAI's embeddings: unit vectors, optionally cut to ``dimensions``; usage in the model's tokens."""
        engine = state.current()
        if req.model != engine.name:
            raise ServeError(404, f"model {req.model!r} is not served here; GET /v1/models names {engine.name!r}")
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        check_texts(texts, settings.max_texts, settings.max_chars)
        if req.dimensions is not None and req.dimensions > engine.dim:
            raise ServeError(422, f"dimensions must be at most the model's {engine.dim}, got {req.dimensions}")
        lengths = await count_tokens(engine, texts)
        vectors = shape_vectors(await state.embed(engine, texts, lengths), req.dimensions, engine.dim)
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        tokens = int(sum(lengths))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_reply({"object": "list", "data": data, "model": engine.name, "usage": usage})

    @router.post("/search")
    async def search(req: SearchRequest) -> dict:
        """Hits for ``query``: each with its fused (or dense) score and its bm25 and dense parts."""
        engine = state.current()
        check_texts([req.query], 1, settings.max_chars, what="query")
        if req.top_k > settings.max_top_k:
            raise ServeError(413, f"top_k is {req.top_k}; at most {settings.max_top_k}")
        lengths = await count_tokens(engine, [req.query])
        vector = (await state.embed(engine, [req.query], lengths))[0]
        hits = await run_in_threadpool(engine.search, req.query, vector, req.top_k, req.hybrid)
        fusion = engine.searcher.describe_fusion() if req.hybrid else "dense (FAISS)"
        return {"hits": hits, "hybrid": req.hybrid, "fusion": fusion, "model": engine.name, "index": str(engine.index)}

    @router.post("/admin/reload")
    async def reload(req: ReloadRequest | None = None) -> dict:  # type: ignore[valid-type]
        """Load a new index (and model) beside the one in use and swap (needs the API key)."""
        if settings.api_key is None:
            raise ServeError(403, "/admin/reload needs the server to run with an API key (or send it SIGHUP)")
        req = req or ReloadRequest()
        return await run_in_threadpool(state.reload, req.index, req.model, req.backend)

    return router
