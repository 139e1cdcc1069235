"""Parse GROBID's TEI XML into a :class:`~qa_pipeline.paper.Paper`.

GROBID writes the header (title, authors, abstract) under ``teiHeader``, the body as a flat
list of ``<div>`` elements, each with a ``<head n="2.1">`` and ``<p>`` paragraphs, and the
bibliography as ``<listBibl><biblStruct>`` entries in ``<back>``. Inline references
(``<ref type="bibr">``) keep their text; formulas, figures and tables are left out of the
paragraphs (figure and table captions go to ``metadata["captions"]``).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from qa_pipeline.extractors.cleanup import normalise_text, strip_footnote_marker
from qa_pipeline.paper import Paper, Reference, Section, paper_id_from_path

TEI_NS = "http://www.tei-c.org/ns/1.0"
NS = {"t": TEI_NS}
_NUMBER = re.compile(r"^\s*((?:\d+\.)*\d+)\.?\s+")


class TeiError(ValueError):
    """A TEI document that cannot be parsed."""


def _text(element: ET.Element | None) -> str:
    """All text below ``element``, whitespace collapsed and Unicode normalised."""
    if element is None:
        return ""
    return " ".join(normalise_text(" ".join(element.itertext())).split())


def _paragraph_text(p: ET.Element) -> str:
    """The text of a ``<p>`` without the formulas GROBID sometimes nests inside it and
    without footnote markers."""
    parts: list[str] = []

    def walk(node: ET.Element) -> None:
        if node.tag == f"{{{TEI_NS}}}formula" or (node.tag == f"{{{TEI_NS}}}ref" and node.get("type") == "foot"):
            if node.tail:
                parts.append(node.tail)
            return
        if node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
        if node is not p and node.tail:
            parts.append(node.tail)

    walk(p)
    return strip_footnote_marker(" ".join(normalise_text("".join(parts)).split()))


def _person(pers: ET.Element) -> str:
    names = [_text(n) for n in pers.findall("t:forename", NS)] + [_text(pers.find("t:surname", NS))]
    return " ".join(n for n in names if n)


def _heading(div: ET.Element) -> tuple[str, str]:
    """(number, heading) of a body div; the number comes from ``n=`` or the head's text."""
    head = div.find("t:head", NS)
    if head is None:
        return "", ""
    text = _text(head)
    number = (head.get("n") or "").strip().rstrip(".")
    match = _NUMBER.match(text)
    if match and not number:
        number = match.group(1)
    if match:
        text = text[match.end() :]
    return number, text.strip()


def _reference(bibl: ET.Element) -> Reference:
    analytic = bibl.find("t:analytic", NS)
    monogr = bibl.find("t:monogr", NS)
    title = _text(analytic.find("t:title", NS)) if analytic is not None else ""
    venue = ""
    if monogr is not None:
        monogr_title = _text(monogr.find("t:title", NS))
        if title:
            venue = monogr_title
        else:
            title = monogr_title
    holder = analytic if analytic is not None and analytic.find("t:author", NS) is not None else monogr
    authors = []
    if holder is not None:
        for author in holder.findall("t:author", NS):
            pers = author.find("t:persName", NS)
            if pers is not None:
                name = _person(pers)
                if name:
                    authors.append(name)
    date = bibl.find(".//t:imprint/t:date", NS)
    year = ""
    if date is not None:
        when = date.get("when") or _text(date)
        match = re.search(r"\d{4}", when)
        year = match.group(0) if match else ""
    raw_note = bibl.find("t:note[@type='raw_reference']", NS)
    raw = _text(raw_note) if raw_note is not None else ""
    if not raw:
        raw = ". ".join(x for x in (", ".join(authors), title, venue, year) if x)
    return Reference(raw=raw, title=title, authors=authors, year=year, venue=venue)


def parse_tei(source: str | bytes | os.PathLike, paper_id: str | None = None) -> Paper:
    """Parse a GROBID TEI document.

    Args:
        source: a path to a ``.tei.xml`` file, or the XML itself (str or bytes).
        paper_id: the id to give the paper (default: from the file name, else "paper").

    Returns:
        The paper, with ``extractor="grobid"``.

    Raises:
        TeiError: not XML, or not a TEI document.
    """
    name = "TEI"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("<")):
        path = Path(source)
        name = str(path)
        data: str | bytes = path.read_bytes()
        paper_id = paper_id or paper_id_from_path(path)
    else:
        data = source
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise TeiError(f"{name}: not valid XML ({exc})") from None
    if root.tag != f"{{{TEI_NS}}}TEI":
        raise TeiError(f"{name}: not a TEI document (root element {root.tag})")

    header = root.find("t:teiHeader", NS)
    title = _text(root.find(".//t:titleStmt/t:title", NS)) if header is not None else ""
    if not title:
        title = _text(root.find(".//t:sourceDesc//t:analytic/t:title", NS))
    authors = []
    for pers in root.findall(".//t:sourceDesc/t:biblStruct/t:analytic/t:author/t:persName", NS):
        name_text = _person(pers)
        if name_text:
            authors.append(name_text)
    abstract_el = root.find(".//t:profileDesc/t:abstract", NS)
    abstract = ""
    if abstract_el is not None:
        paragraphs = [_paragraph_text(p) for p in abstract_el.iter(f"{{{TEI_NS}}}p")]
        abstract = " ".join(p for p in paragraphs if p) or _text(abstract_el)
    keywords = [_text(t) for t in root.findall(".//t:profileDesc/t:textClass/t:keywords/t:term", NS)]
    doi = _text(root.find(".//t:sourceDesc//t:idno[@type='DOI']", NS))

    sections: list[Section] = []
    body = root.find("t:text/t:body", NS)
    if body is not None:
        for div in body.findall("t:div", NS):
            number, heading = _heading(div)
            paragraphs = [_paragraph_text(p) for p in div.findall("t:p", NS)]
            paragraphs = [p for p in paragraphs if p]
            if not heading and not paragraphs:
                continue
            level = number.count(".") + 1 if number else 1
            sections.append(Section(heading=heading, paragraphs=paragraphs, number=number, level=level))

    captions = []
    for figure in root.findall(".//t:text//t:figure", NS):
        caption = " ".join(x for x in (_text(figure.find("t:head", NS)), _text(figure.find("t:figDesc", NS))) if x)
        if caption:
            captions.append(caption)

    back_sections: list[Section] = []
    back = root.find("t:text/t:back", NS)
    if back is not None:
        for div in back.findall("t:div", NS):
            kind = div.get("type", "")
            if kind == "references":
                continue
            for part in div.findall("t:div", NS) or [div]:
                paragraphs = [_paragraph_text(p) for p in part.iter(f"{{{TEI_NS}}}p")]
                paragraphs = [p for p in paragraphs if p]
                if paragraphs:
                    _, heading = _heading(part)
                    back_sections.append(Section(heading=heading or kind.capitalize(), paragraphs=paragraphs))

    references = [_reference(b) for b in root.findall(".//t:back//t:listBibl/t:biblStruct", NS)]
    metadata = {"captions": captions, "keywords": [k for k in keywords if k], "back_matter": len(back_sections)}
    if doi:
        metadata["doi"] = doi
    return Paper(
        paper_id=paper_id or "paper",
        title=title,
        abstract=abstract,
        sections=sections + back_sections,
        references=references,
        authors=authors,
        source=name if name != "TEI" else "",
        extractor="grobid",
        metadata=metadata,
    )
