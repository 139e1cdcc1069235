"""PDF -> :class:`~qa_pipeline.paper.Paper` back ends, chosen by name.

- ``grobid``: a GROBID server's ``processFulltextDocument`` (most accurate; needs the server).
- ``local``: pypdf plus layout heuristics (no server).
- ``auto``: GROBID when its server answers, else local (resolved in :func:`build_extractor`).
"""

from __future__ import annotations

import logging

from qa_pipeline.extractors.base import ExtractionError, Extractor
from qa_pipeline.extractors.grobid import GrobidClient, GrobidExtractor, GrobidUnavailable
from qa_pipeline.extractors.local import LocalExtractor, LocalExtractorConfig

logger = logging.getLogger(__name__)

EXTRACTORS = {"grobid": GrobidExtractor, "local": LocalExtractor}
CHOICES = ("auto", *EXTRACTORS)

__all__ = [
    "CHOICES",
    "EXTRACTORS",
    "ExtractionError",
    "Extractor",
    "GrobidClient",
    "GrobidExtractor",
    "GrobidUnavailable",
    "LocalExtractor",
    "LocalExtractorConfig",
    "build_extractor",
]


def build_extractor(
    name: str,
    client: GrobidClient,
    local_config: LocalExtractorConfig | None = None,
    keep_tei=None,
) -> Extractor:
    """The extractor called ``name``; ``auto`` asks the GROBID server whether it is up.

    Raises:
        GrobidUnavailable: ``name == "grobid"`` and the server does not answer.
        ValueError: an unknown name.
    """
    if name not in CHOICES:
        raise ValueError(f"unknown extractor '{name}' (choose from {', '.join(CHOICES)})")
    if name == "auto":
        if client.is_alive():
            logger.info("GROBID answers at %s: using it", client.url)
            return GrobidExtractor(client, keep_tei=keep_tei)
        logger.warning("GROBID not reachable at %s: using the local pypdf extractor", client.url)
        return LocalExtractor(local_config)
    if name == "grobid":
        client.check()
        return GrobidExtractor(client, keep_tei=keep_tei)
    return LocalExtractor(local_config)
