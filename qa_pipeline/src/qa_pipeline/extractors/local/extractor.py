"""The local extractor itself: a PDF opened with pypdf (encrypted, image-only and broken files
refused with one line), its lines cut into front matter, abstract, sections and references at the
headings, and the result assembled into a :class:`~qa_pipeline.paper.Paper`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from qa_pipeline.extractors.base import ExtractionError
from qa_pipeline.extractors.cleanup import join_lines, word_counts
from qa_pipeline.extractors.local.config import LocalExtractorConfig
from qa_pipeline.extractors.local.headings import body_style, find_headings, find_title
from qa_pipeline.extractors.local.lines import drop_running_heads, group_lines, read_spans
from qa_pipeline.extractors.local.paragraphs import left_edges
from qa_pipeline.extractors.local.patterns import ABSTRACT
from qa_pipeline.extractors.local.references import parse_reference, split_references
from qa_pipeline.extractors.local.sections import build_sections, cut_regions
from qa_pipeline.paper import Paper, paper_id_from_path


class LocalExtractor:
    """Extract a paper from a PDF's text layer with pypdf (no server, no OCR).

    Args:
        config: thresholds of the heuristics.
    """

    name = "local"

    def __init__(self, config: LocalExtractorConfig | None = None):
        self.config = config or LocalExtractorConfig()

    def _open(self, pdf_path: Path):
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

        try:
            reader = PdfReader(pdf_path)
        except FileNotFoundError:
            raise ExtractionError(pdf_path, "no such file") from None
        except (PdfReadError, ValueError, OSError) as exc:
            raise ExtractionError(pdf_path, f"not a readable PDF ({exc})") from None
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise ExtractionError(pdf_path, f"encrypted PDF; cannot decrypt it here ({exc})") from None
            except (FileNotDecryptedError, PdfReadError):
                ok = 0
            if not ok:
                raise ExtractionError(
                    pdf_path, "encrypted PDF that needs a password; decrypt it first (qpdf --decrypt)"
                )
        return reader

    def extract(self, pdf_path: str | os.PathLike) -> Paper:
        """Extract one PDF.

        Raises:
            ExtractionError: unreadable, encrypted or image-only PDF (no text layer).
        """
        pdf_path = Path(pdf_path)
        cfg = self.config
        reader = self._open(pdf_path)
        try:
            pages, heights = read_spans(reader)
        except Exception as exc:
            raise ExtractionError(pdf_path, f"cannot read the PDF's pages ({exc})") from None
        n_chars = sum(len(s.text.strip()) for spans in pages for s in spans)
        if not pages or n_chars < cfg.min_chars_per_page * len(pages):
            raise ExtractionError(
                pdf_path,
                f"no text layer ({n_chars} characters on {len(pages)} page(s)): an image-only or scanned PDF; "
                "run OCR first (e.g. ocrmypdf) or use GROBID",
            )
        lines = drop_running_heads(group_lines(pages), heights, cfg)
        body = body_style(lines)
        vocabulary = word_counts(ln.text for ln in lines)
        headings = find_headings(lines, body, cfg)
        edges = left_edges([ln for ln in lines if abs(ln.size - body[1]) <= cfg.size_tolerance])
        meta = reader.metadata or {}
        title, title_lines = find_title(lines, body, str(meta.get("/Title") or ""))
        if title_lines:  # nothing up to the end of the title is a heading
            headings = {j: h for j, h in headings.items() if j > title_lines[-1]}
        abstract_at = [j for j, h in headings.items() if ABSTRACT.match(h[1])]
        if abstract_at:  # nor anything between the title and the abstract (authors, affiliations)
            headings = {j: h for j, h in headings.items() if j >= abstract_at[0]}

        regions = cut_regions(lines, headings, body, cfg)
        abstract = join_lines([ln.text for ln in regions.abstract], vocabulary)
        sections = build_sections(regions, lines, headings, edges, vocabulary)
        references = [parse_reference(e, vocabulary) for e in split_references(regions.references)]
        references = [r for r in references if len(r.raw) >= 15]

        authors = [a.strip() for a in re.split(r";|,| and ", str(meta.get("/Author") or "")) if a.strip()]
        return Paper(
            paper_id=paper_id_from_path(pdf_path),
            title=title,
            abstract=abstract,
            sections=sections,
            references=references,
            authors=authors,
            source=str(pdf_path),
            extractor=self.name,
            metadata={"pages": len(pages), "captions": regions.captions, "body_font": body[0], "body_size": body[1]},
        )
