"""A client for GROBID's REST service (``/api/processFulltextDocument``) and its extractor.

GROBID (https://github.com/kermitt2/grobid, usually run with
``docker run --rm -p 8070:8070 lfoppiano/grobid:0.8.0``) turns a PDF into TEI XML with the
title, abstract, sections and a parsed bibliography; :func:`qa_pipeline.extractors.tei.parse_tei`
reads that into a :class:`~qa_pipeline.paper.Paper`. The service answers 503 when all its
workers are busy; the client retries those with a back-off.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx

from embshared.errors import UserError
from qa_pipeline.extractors.base import ExtractionError
from qa_pipeline.extractors.tei import TeiError, parse_tei
from qa_pipeline.paper import Paper, paper_id_from_path

logger = logging.getLogger(__name__)

DEFAULT_GROBID_URL = "http://localhost:8070"
START_HINT = "start one with `docker run --rm -p 8070:8070 lfoppiano/grobid:0.8.0`, or use --extractor local"


class GrobidUnavailable(UserError):
    """The GROBID server cannot be reached or does not answer as a GROBID server."""


class GrobidClient:
    """Talks to one GROBID server.

    Args:
        url: the server's base URL (``http://localhost:8070``).
        timeout: seconds to wait for one PDF (GROBID takes 2-20 s per paper).
        retries: how often to retry a 503 ("server busy") answer.
        consolidate_header: ask GROBID to consolidate the header against CrossRef (needs
            network on the server side; off by default).
        transport: an ``httpx`` transport (tests pass a mock here).
        retry_delay: seconds before the first retry of a 503; doubled each time.
    """

    def __init__(
        self,
        url: str = DEFAULT_GROBID_URL,
        timeout: float = 120.0,
        retries: int = 3,
        consolidate_header: bool = False,
        transport: httpx.BaseTransport | None = None,
        retry_delay: float = 2.0,
    ):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.consolidate_header = consolidate_header
        self.transport = transport
        self.retry_delay = retry_delay

    def _client(self, timeout: float) -> httpx.Client:
        return httpx.Client(timeout=timeout, transport=self.transport)

    def is_alive(self, timeout: float = 3.0) -> bool:
        """True if ``GET /api/isalive`` answers "true" within ``timeout`` seconds."""
        try:
            with self._client(timeout) as client:
                response = client.get(f"{self.url}/api/isalive")
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text.strip().lower() == "true"

    def check(self) -> None:
        """Raise :class:`GrobidUnavailable` with a clear message if the server is not up."""
        try:
            with self._client(5.0) as client:
                response = client.get(f"{self.url}/api/isalive")
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else str(exc) or "cannot connect"
            raise GrobidUnavailable(f"GROBID server at {self.url} is not reachable ({reason}); {START_HINT}") from None
        except httpx.TimeoutException:
            raise GrobidUnavailable(f"GROBID server at {self.url} did not answer within 5 s; {START_HINT}") from None
        except httpx.HTTPError as exc:
            raise GrobidUnavailable(f"GROBID server at {self.url}: {exc}; {START_HINT}") from None
        if response.status_code != 200 or response.text.strip().lower() != "true":
            raise GrobidUnavailable(
                f"{self.url}/api/isalive answered HTTP {response.status_code} {response.text[:80]!r}; "
                "is this a GROBID server?"
            )

    def process_fulltext(self, pdf_path: str | os.PathLike) -> str:
        """Send one PDF to ``/api/processFulltextDocument`` and return the TEI XML.

        Raises:
            GrobidUnavailable: the server is down (stops a batch: every file would fail).
            ExtractionError: GROBID could not process this PDF (the batch goes on).
        """
        pdf_path = Path(pdf_path)
        data = {
            "consolidateHeader": "1" if self.consolidate_header else "0",
            "consolidateCitations": "0",
            "includeRawCitations": "1",
        }
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                with self._client(self.timeout) as client, open(pdf_path, "rb") as handle:
                    files = {"input": (pdf_path.name, handle, "application/pdf")}
                    response = client.post(f"{self.url}/api/processFulltextDocument", data=data, files=files)
            except httpx.ConnectError:
                raise GrobidUnavailable(
                    f"GROBID server at {self.url} is not reachable (connection refused); {START_HINT}"
                ) from None
            except httpx.TimeoutException:
                raise ExtractionError(pdf_path, f"GROBID did not answer within {self.timeout:.0f} s") from None
            if response.status_code == 503 and attempt < self.retries:
                logger.info("GROBID busy (503); retrying %s in %.0f s", pdf_path.name, delay)
                time.sleep(delay)
                delay *= 2
                continue
            break
        if response.status_code == 200:
            return response.text
        if response.status_code == 204:
            raise ExtractionError(pdf_path, "GROBID found no content (empty, image-only or broken PDF)")
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise ExtractionError(pdf_path, f"GROBID answered HTTP {response.status_code} {detail}".strip())


class GrobidExtractor:
    """The GROBID back end: PDF -> TEI (via the server) -> Paper.

    Args:
        client: the :class:`GrobidClient` to use.
        keep_tei: folder to save the raw TEI next to the JSON (None: do not keep it).
    """

    name = "grobid"

    def __init__(self, client: GrobidClient, keep_tei: str | os.PathLike | None = None):
        self.client = client
        self.keep_tei = Path(keep_tei) if keep_tei else None

    def extract(self, pdf_path: str | os.PathLike) -> Paper:
        """Extract one PDF; raises ExtractionError for this file, GrobidUnavailable for all."""
        pdf_path = Path(pdf_path)
        tei = self.client.process_fulltext(pdf_path)
        paper_id = paper_id_from_path(pdf_path)
        if self.keep_tei is not None:
            from embshared.files import write_text

            write_text(self.keep_tei / f"{paper_id}.tei.xml", tei)
        try:
            paper = parse_tei(tei, paper_id=paper_id)
        except TeiError as exc:
            raise ExtractionError(pdf_path, f"GROBID returned unreadable TEI: {exc}") from None
        paper.source = str(pdf_path)
        paper.metadata["grobid_url"] = self.client.url
        return paper
