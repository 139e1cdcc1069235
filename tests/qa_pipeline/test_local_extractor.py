"""The local pypdf extractor on the two real shared PDFs, and on PDFs it must refuse."""

from __future__ import annotations

import re

import pytest
from pypdf import PdfReader, PdfWriter

from qa_pipeline.extractors.agreement import compare_headings
from qa_pipeline.extractors.base import ExtractionError
from qa_pipeline.extractors.cleanup import has_ligatures
from qa_pipeline.extractors.local import LocalExtractor, is_prose, split_number

NAMES = ("specter_2020.acl-main.207", "demarchis2016_jner_fes")


def all_text(paper) -> str:
    parts = [paper.title, paper.abstract, *(p for s in paper.sections for p in s.paragraphs)]
    return "\n".join(parts + [s.heading for s in paper.sections] + [r.raw for r in paper.references])


@pytest.mark.parametrize("name", NAMES)
def test_title_abstract_and_references_agree_with_grobid(name, local_papers, tei_papers):
    local, tei = local_papers[name], tei_papers[name]
    assert local.extractor == "local"
    assert local.title == tei.title
    assert local.abstract.split()[:12] == tei.abstract.split()[:12]
    assert abs(len(local.abstract.split()) - len(tei.abstract.split())) <= 5
    assert len(local.references) == len(tei.references)  # 57 and 49


def test_reference_entries_are_whole(local_papers):
    refs = local_papers["specter_2020.acl-main.207"].references
    assert refs[0].raw.startswith("Anant K. Agarwal, Ivan Zaitsev")
    assert "Estimating position bias without intrusive interventions" in refs[0].raw
    assert refs[0].year == "2019"
    assert local_papers["demarchis2016_jner_fes"].references[0].raw.startswith("Quandt F, Hummel FC.")


@pytest.mark.parametrize("name", NAMES)
def test_no_ligatures_or_control_characters(name, local_papers):
    text = all_text(local_papers[name])
    assert not has_ligatures(text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\u00ad]", text)
    assert "scientific" in text or "specific" in text  # words that carried an "fi" ligature


@pytest.mark.parametrize("name", NAMES)
def test_no_words_broken_at_line_ends(name, papers_dir, local_papers):
    """Every word pypdf's raw text splits across a line end ("ingre-" / "dient") is whole
    in the extraction: the broken form never appears, the joined one does."""
    raw = "\n".join(page.extract_text() for page in PdfReader(papers_dir / f"{name}.pdf").pages)
    splits = re.findall(r"\b([a-z]{2,})-\n([a-z]{2,})\b", raw)
    assert len(splits) >= 20
    text = all_text(local_papers[name])
    broken = [f"{a}- {b}" for a, b in splits if f"{a}- {b}" in text]
    assert broken == []
    found = sum(1 for a, b in splits if f"{a}{b}" in text or f"{a}-{b}" in text)
    assert found >= 0.9 * len(splits)


def test_known_dehyphenations(local_papers):
    specter = local_papers["specter_2020.acl-main.207"]
    assert "is a critical ingredient for natural language processing systems" in specter.abstract
    assert "document-level" in specter.abstract  # a real compound keeps its hyphen
    demarchis = local_papers["demarchis2016_jner_fes"]
    assert "non-painful" in demarchis.abstract


@pytest.mark.parametrize(("name", "min_recall", "min_precision"), [(NAMES[0], 0.85, 0.8), (NAMES[1], 0.9, 0.9)])
def test_headings_agree_with_grobid(name, min_recall, min_precision, local_papers, tei_papers):
    result = compare_headings(local_papers[name].headings, tei_papers[name].headings)
    assert result["recall"] >= min_recall, result["missed"]
    assert result["precision"] >= min_precision, result["extra"]


def test_section_numbers_levels_and_paragraphs(local_papers):
    specter = {s.heading: s for s in local_papers["specter_2020.acl-main.207"].sections}
    assert (specter["Introduction"].number, specter["Introduction"].level) == ("1", 1)
    assert (specter["Overview"].number, specter["Overview"].level) == ("2.1", 2)
    assert len(specter["Introduction"].paragraphs) == 4  # as in GROBID's TEI
    assert specter["Introduction"].paragraphs[0].startswith("As the pace of scientific publication continues")
    demarchis = {s.heading: s for s in local_papers["demarchis2016_jner_fes"].sections}
    assert demarchis["Methods"].level == 1 and demarchis["Participants"].level == 2
    assert "Keywords" not in " ".join(demarchis)
    # Running heads ("De Marchis et al. ... Page 2 of 9") are gone.
    assert not any("Page 2 of 9" in p for s in demarchis.values() for p in s.paragraphs)


def test_split_number_and_is_prose():
    assert split_number("2.1 Overview") == ("2.1", "Overview")
    assert split_number("IV. Results") == ("IV", "Results")
    assert split_number("Results") == ("", "Results")
    assert split_number("3D Reconstruction") == ("", "3D Reconstruction")
    assert is_prose("We introduced a novel FES mapping procedure with a multi-contact array.")
    assert not is_prose("S 1⁄4 cos θ()1⁄4 A ffiffiffiffiffiffi A2 þ B2 þ C2 p (2)")


def test_image_only_pdf_is_refused(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "scan.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(ExtractionError, match=r"scan\.pdf: no text layer .*image-only"):
        LocalExtractor().extract(path)


def test_encrypted_pdf_is_refused(tmp_path, papers_dir):
    writer = PdfWriter(clone_from=papers_dir / "demarchis2016_jner_fes.pdf")
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(ExtractionError, match=r"locked\.pdf: encrypted PDF"):
        LocalExtractor().extract(path)


def test_not_a_pdf(tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ExtractionError, match="notes.pdf"):
        LocalExtractor().extract(path)
