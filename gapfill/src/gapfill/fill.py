"""Fill every gap of a running service's map: ``GET gaps``, then ``POST generate`` at each gap's
centre, one JSONL line per gap (gap -> text -> landing). ``make gapfill-fill`` runs it."""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

from embshared.errors import UserError

logger = logging.getLogger(__name__)

PREFIX = "/api/advanced-gap-filling"

#: (path, query or body) -> JSON answer
GetFn = Callable[[str, dict], dict]
PostFn = Callable[[str, dict], dict]


def http_client(url: str, timeout: float = 600.0) -> tuple[GetFn, PostFn]:
    """``get`` and ``post`` against the service at ``url``; HTTP errors become one-line UserErrors."""
    base = url.rstrip("/") + PREFIX

    def call(request: urllib.request.Request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("detail", detail)
            raise UserError(f"{request.full_url}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise UserError(f"cannot reach {url} ({exc.reason}); start it with: make gapfill-serve") from None

    def get(path: str, query: dict) -> dict:
        qs = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return call(urllib.request.Request(f"{base}/{path}" + (f"?{qs}" if qs else "")))

    def post(path: str, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        return call(urllib.request.Request(f"{base}/{path}", data, {"Content-Type": "application/json"}))

    return get, post


def fill_gaps(get: GetFn, post: PostFn, max_gaps: int | None = None, generate: dict | None = None) -> Iterator[dict]:
    """One record per gap of the map: the gap, the text written for it and where that text lands.

    Args:
        get, post: calls against the service (see :func:`http_client`).
        max_gaps: ask the service for at most this many gaps (default: its configured gaps).
        generate: extra fields of every ``generate`` request (e.g. ``{"max_seconds": 10}``).
    """
    gaps = get("gaps", {"max_gaps": max_gaps})["gaps"]
    for i, gap in enumerate(gaps):
        out = post("generate", {"x": gap["x"], "y": gap["y"], **(generate or {})})
        record = {
            "gap": i,
            "x": gap["x"],
            "y": gap["y"],
            "radius": gap["radius"],
            "nearest_texts": gap.get("nearest_texts", []),
            "text": out["text"],
            "landed": out["landed"],
            "distance": out["distance"],
            "distance_radii": out["distance_radii"],
            "inside": out["distance_radii"] < 1.0,
            "candidates": out.get("candidates", []),
            "seconds": out.get("seconds"),
        }
        logger.info("gap %d/%d: %.2f radii | %s", i + 1, len(gaps), record["distance_radii"], record["text"])
        yield record
