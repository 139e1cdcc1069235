"""``python -m qa_pipeline.extract`` (the guide's command name): runs :mod:`qa_pipeline.cli.extract`.

The batch extraction itself is :mod:`qa_pipeline.extraction`; its names are re-exported here for
code that imported them from this module.
"""

from __future__ import annotations

from qa_pipeline.cli.extract import main
from qa_pipeline.extraction import ExtractConfig, ExtractionReport, extract_folder, extract_one, find_pdfs

__all__ = ["ExtractConfig", "ExtractionReport", "extract_folder", "extract_one", "find_pdfs", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
