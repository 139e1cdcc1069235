"""The gap-filling HTTP service (FastAPI) and its map page.

Endpoints live under ``/api/advanced-gap-filling/``: ``initialize``, ``train-parametric-umap``,
``train-vec2text``, ``evaluate-quality``, ``save-parametric-umap``, ``save-vec2text``,
``load-parametric-umap``, ``load-vec2text``, ``status``, ``gaps``, ``generate`` (plus
``map-data`` for the page and ``cancel`` for a running job). Training runs as one background
job at a time (a second request gets 409); bodies are validated (422); documents are read
only from ``data_dir`` and models written and read only inside ``models_dir``.

One concept per module: ``schemas`` (request bodies), ``documents`` (parsing ``initialize``'s
documents), ``state`` (:class:`GapFillService`: documents, map, models, jobs), ``routes`` (the
endpoints and the page), ``app`` (:func:`create_app`), ``errors`` (:class:`ServiceError`).

Run it with ``make gapfill-serve`` or ``python -m gapfill.cli serve [key=value ...]``.
"""

from gapfill.service.app import create_app
from gapfill.service.errors import ServiceError
from gapfill.service.routes import PREFIX, STATIC
from gapfill.service.schemas import (
    EvaluateRequest,
    GenerateRequest,
    InitializeRequest,
    NameRequest,
    UMAPRequest,
    Vec2TextRequest,
)
from gapfill.service.state import GapFillService, default_embedder, default_lm

__all__ = [
    "PREFIX",
    "STATIC",
    "EvaluateRequest",
    "GapFillService",
    "GenerateRequest",
    "InitializeRequest",
    "NameRequest",
    "ServiceError",
    "UMAPRequest",
    "Vec2TextRequest",
    "create_app",
    "default_embedder",
    "default_lm",
]
