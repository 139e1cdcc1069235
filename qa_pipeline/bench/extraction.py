"""The extraction part of the qa bench's SciFact track: the local extractor on the shared PDFs
(best-of-N seconds per paper; sections, references, title and headings compared with GROBID's TEI of
the same PDFs), the time to parse that TEI, and GROBID itself when a server answers at
``grobid_url`` (none can run on the benchmark machines: reported as not measured)."""

from __future__ import annotations

import time
from pathlib import Path

from qa_pipeline.extractors import GrobidClient
from qa_pipeline.extractors.agreement import compare_headings
from qa_pipeline.extractors.local import LocalExtractor
from qa_pipeline.extractors.tei import parse_tei


def bench_extraction(cfg, papers_dir: Path) -> dict:
    """Extraction figures of the PDFs in ``papers_dir``; ``cfg`` is the bench's config
    (``extraction_repeats``, ``grobid_url``)."""
    pdfs = sorted(papers_dir.glob("*.pdf"))
    local = LocalExtractor()
    out: dict = {"papers": {}, "grobid": {}}
    local_times, tei_times = [], []
    for pdf in pdfs:
        times = []
        for _ in range(cfg.extraction_repeats):
            start = time.perf_counter()
            paper = local.extract(pdf)
            times.append(time.perf_counter() - start)
        tei_path = pdf.with_name(pdf.stem + ".grobid.tei.xml")
        start = time.perf_counter()
        tei = parse_tei(tei_path)
        tei_times.append(time.perf_counter() - start)
        local_times.append(min(times))
        agreement = compare_headings(paper.headings, tei.headings)
        out["papers"][pdf.stem] = {
            "local_seconds": round(min(times), 3),
            "local_sections": len(paper.sections),
            "grobid_tei_sections": len(tei.sections),
            "local_references": len(paper.references),
            "grobid_references": len(tei.references),
            "title_equal": paper.title == tei.title,
            "headings": {k: round(v, 3) if isinstance(v, float) else v for k, v in agreement.items() if k != "matched"},
        }
    out["local_seconds_per_paper"] = round(sum(local_times) / len(local_times), 3)
    out["tei_parse_seconds_per_paper"] = round(sum(tei_times) / len(tei_times), 4)
    client = GrobidClient(cfg.grobid_url)
    if client.is_alive():
        times = []
        for pdf in pdfs:
            start = time.perf_counter()
            client.process_fulltext(pdf)
            times.append(time.perf_counter() - start)
        out["grobid"] = {"available": True, "seconds_per_paper": round(sum(times) / len(times), 3)}
    else:
        out["grobid"] = {"available": False, "note": f"no GROBID server at {cfg.grobid_url}; not measured"}
    return out
