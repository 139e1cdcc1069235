"""Batch extraction: every PDF of a folder into one paper JSON (GROBID, local pypdf, or auto).

A PDF that cannot be read (encrypted, image-only, broken) is reported and skipped; the
batch goes on. Papers whose JSON already exists are skipped (``overwrite=true`` redoes
them), so a rerun only does what is missing. ``extraction_report.json`` in the output
folder lists what was done, by which back end, how long it took and what failed.
The command line is :mod:`qa_pipeline.cli.extract` (``python -m qa_pipeline.extract``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from embshared.errors import UserError
from embshared.files import write_json
from qa_pipeline.extractors import (
    CHOICES,
    ExtractionError,
    Extractor,
    GrobidClient,
    GrobidUnavailable,
    LocalExtractor,
    LocalExtractorConfig,
    build_extractor,
)
from qa_pipeline.extractors.grobid import DEFAULT_GROBID_URL
from qa_pipeline.paper import Paper, paper_id_from_path, save_paper

logger = logging.getLogger(__name__)


@dataclass
class ExtractConfig:
    """Settings of ``qa_pipeline.extract``."""

    input_dir: str = field(default="data/pdfs", metadata={"help": "folder of PDFs (searched recursively)"})
    output_dir: str = field(default="data/extracted", metadata={"help": "one <paper_id>.json per PDF goes here"})
    extractor: str = field(default="auto", metadata={"help": "auto | grobid | local"})
    grobid_url: str = field(default=DEFAULT_GROBID_URL, metadata={"help": "GROBID server base URL"})
    grobid_timeout: float = field(default=120.0, metadata={"help": "seconds GROBID may take per PDF"})
    keep_tei: bool = field(default=False, metadata={"help": "also save GROBID's TEI in output_dir/tei"})
    overwrite: bool = field(default=False, metadata={"help": "redo papers whose JSON exists"})
    min_words: int = field(default=50, metadata={"help": "a paper with fewer words counts as failed"})
    local: LocalExtractorConfig = field(default_factory=LocalExtractorConfig)

    def validate(self) -> None:
        if self.extractor not in CHOICES:
            raise ValueError(f"key 'extractor' must be one of {', '.join(CHOICES)}, got '{self.extractor}'")


@dataclass
class ExtractionReport:
    """What a batch did (written as extraction_report.json)."""

    extractor: str
    done: dict[str, dict] = field(default_factory=dict)  # paper_id -> {pdf, extractor, seconds, words}
    skipped: list[str] = field(default_factory=list)  # already extracted
    failed: dict[str, str] = field(default_factory=dict)  # pdf -> error message

    def to_dict(self) -> dict:
        seconds = [d["seconds"] for d in self.done.values()]
        return {
            "extractor": self.extractor,
            "n_done": len(self.done),
            "n_skipped": len(self.skipped),
            "n_failed": len(self.failed),
            "seconds_per_paper": sum(seconds) / len(seconds) if seconds else None,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
        }


def find_pdfs(folder: str | Path) -> list[Path]:
    """The PDFs below ``folder``, sorted; a missing or empty folder is a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (set PDF_DIR / --input_dir to a folder of PDFs)")
    pdfs = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    if not pdfs:
        raise UserError(f"{folder}: no .pdf files found")
    return pdfs


def extract_one(extractor: Extractor, pdf: Path, min_words: int) -> Paper:
    """Extract one PDF and check that it yielded text."""
    paper = extractor.extract(pdf)
    if paper.n_words() < min_words:
        raise ExtractionError(pdf, f"only {paper.n_words()} words extracted (fewer than {min_words}); nothing to use")
    return paper


def extract_folder(cfg: ExtractConfig, extractor: Extractor | None = None) -> ExtractionReport:
    """Extract every PDF of ``cfg.input_dir`` into ``cfg.output_dir``.

    Args:
        cfg: the settings.
        extractor: use this extractor instead of building one from ``cfg`` (tests).

    Returns:
        The report (also written to ``output_dir/extraction_report.json``).
    """
    pdfs = find_pdfs(cfg.input_dir)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    client = GrobidClient(cfg.grobid_url, timeout=cfg.grobid_timeout)
    if extractor is None:
        extractor = build_extractor(cfg.extractor, client, cfg.local, keep_tei=out / "tei" if cfg.keep_tei else None)
    report = ExtractionReport(extractor=extractor.name)
    for pdf in tqdm(pdfs, desc=f"extracting ({extractor.name})", unit="pdf"):
        paper_id = paper_id_from_path(pdf)
        target = out / f"{paper_id}.json"
        if target.exists() and not cfg.overwrite:
            report.skipped.append(paper_id)
            continue
        start = time.perf_counter()
        try:
            paper = extract_one(extractor, pdf, cfg.min_words)
        except GrobidUnavailable as exc:
            if cfg.extractor != "auto":
                raise
            logger.warning("%s; switching to the local extractor for the remaining files", exc)
            extractor = LocalExtractor(cfg.local)
            try:
                paper = extract_one(extractor, pdf, cfg.min_words)
            except ExtractionError as inner:
                report.failed[str(pdf)] = str(inner)
                logger.warning("skipped: %s", inner)
                continue
        except ExtractionError as exc:
            report.failed[str(pdf)] = str(exc)
            logger.warning("skipped: %s", exc)
            continue
        seconds = time.perf_counter() - start
        save_paper(paper, target)
        report.done[paper_id] = {
            "pdf": str(pdf),
            "extractor": paper.extractor,
            "seconds": round(seconds, 3),
            "words": paper.n_words(),
            "sections": len(paper.sections),
        }
    write_json(out / "extraction_report.json", report.to_dict())
    return report
