"""The local extractor: PDF -> Paper with pypdf only, no server.

pypdf gives the text of each page in content-stream order together with, for every text
run, its font, size and position (``visitor_text``). From those runs:

1. ``lines``: runs are grouped into lines (same baseline; superscripts stay on their line);
   running heads, page numbers and rotated text (arXiv stamps) are dropped;
2. ``headings``: the body style (the font and size with the most characters), the title (the
   largest type on page 1) and the headings (short lines set entirely in a style other than
   the body's, with body text after them; numbered headings such as "2.1 Overview" give their
   level);
3. ``sections``: the lines are cut into abstract ("Abstract" line or prefix), sections and
   references at the headings; footnotes, captions and table text (type smaller or larger than
   the body) and display maths are left out;
4. ``paragraphs``: section text is split into paragraphs (first-line indents and vertical gaps)
   and cleaned (NFKC, ligatures, words hyphenated at line ends); ``references``: the reference
   list is split by numbers or hanging indents;
5. ``extractor``: :class:`LocalExtractor` opens the PDF and runs the steps above (``config``
   holds its thresholds, ``patterns`` the names of a paper's parts).

It is a heuristic reader, not a layout model: GROBID is more accurate where it runs
(the benchmark compares the headings of both on the shared papers).
"""

from __future__ import annotations

from qa_pipeline.extractors.local.config import LocalExtractorConfig
from qa_pipeline.extractors.local.extractor import LocalExtractor
from qa_pipeline.extractors.local.headings import body_style, find_headings, find_title, split_number
from qa_pipeline.extractors.local.lines import Line, Span, drop_running_heads, group_lines, read_spans
from qa_pipeline.extractors.local.paragraphs import is_prose, split_paragraphs
from qa_pipeline.extractors.local.references import split_references

__all__ = [
    "Line",
    "LocalExtractor",
    "LocalExtractorConfig",
    "Span",
    "body_style",
    "drop_running_heads",
    "find_headings",
    "find_title",
    "group_lines",
    "is_prose",
    "read_spans",
    "split_number",
    "split_paragraphs",
    "split_references",
]
