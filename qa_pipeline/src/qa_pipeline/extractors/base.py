"""What every extractor shares: the error for one unreadable PDF and the extractor interface."""

from __future__ import annotations

import os
from typing import Protocol

from embshared.io import DataError
from qa_pipeline.paper import Paper


class ExtractionError(DataError):
    """One PDF could not be extracted (encrypted, no text layer, broken); a batch goes on."""

    def __init__(self, path: str | os.PathLike, message: str):
        super().__init__(path, message)


class Extractor(Protocol):
    """Turns one PDF into a :class:`~qa_pipeline.paper.Paper`."""

    name: str

    def extract(self, pdf_path: str | os.PathLike) -> Paper: ...
