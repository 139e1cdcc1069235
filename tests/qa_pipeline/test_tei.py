"""The TEI parser on GROBID's real output for the two shared papers, and on small hand-made TEI."""

from __future__ import annotations

import pytest

from qa_pipeline.extractors.tei import TeiError, parse_tei

SPECTER_TITLE = "SPECTER: Document-level Representation Learning using Citation-informed Transformers"
DEMARCHIS_TITLE = (
    "Multi-contact functional electrical stimulation for hand opening: "
    "electrophysiologically driven identification of the optimal stimulation site"
)


def test_specter_header_and_body(tei_papers):
    paper = tei_papers["specter_2020.acl-main.207"]
    assert paper.paper_id == "specter_2020.acl-main.207"
    assert paper.extractor == "grobid"
    assert paper.title == SPECTER_TITLE
    assert paper.authors[:2] == ["Arman Cohan", "Sergey Feldman"]
    assert paper.abstract.startswith("Representation learning is a critical ingredient for natural language")
    assert paper.abstract.endswith("competitive baselines on the benchmark.")
    # The README counts 18 body divs; the acknowledgement div of <back> comes after them.
    body = paper.sections[:-1]
    assert len(body) == 18
    assert paper.sections[-1].heading == "Acknowledgements"
    assert [s.heading for s in body[:3]] == [
        "Introduction",
        "Model 2.1 Overview",
        "Background: Pretrained Transformers",
    ]
    numbers = {s.heading: (s.number, s.level) for s in body}
    assert numbers["Background: Pretrained Transformers"] == ("2.2", 2)
    assert numbers["Related Work"] == ("7", 1)
    assert numbers["Document Representation"] == ("", 1)
    assert len(body[0].paragraphs) == 4
    assert body[0].paragraphs[0].startswith("As the pace of scientific publication continues to increase")


def test_specter_references(tei_papers):
    refs = tei_papers["specter_2020.acl-main.207"].references
    assert len(refs) == 57
    first = refs[0]
    assert first.title == "Estimating position bias without intrusive interventions"
    assert first.year == "2019"
    assert first.venue == "WSDM"
    assert first.raw.startswith("Anant K. Agarwal, Ivan Zaitsev")


def test_demarchis(tei_papers):
    paper = tei_papers["demarchis2016_jner_fes"]
    assert paper.title == DEMARCHIS_TITLE
    assert paper.abstract.startswith("Background: Functional Electrical Stimulation (FES) is increasingly applied")
    body = [s for s in paper.sections if s.heading != "Competing interests"]
    assert len(body) == 18
    assert body[0].heading == "Background" and len(body[0].paragraphs) == 5
    assert body[-1].heading == "Conclusions"
    assert "Scanning the array and selecting the optimal stimulation patterns" in paper.headings
    assert len(paper.references) == 49
    assert paper.references[0].title.startswith("The influence of functional electrical stimulation")
    keywords = paper.metadata["keywords"]
    assert len(keywords) == 6 and keywords[0] == "Neuromuscular electrical stimulation"
    assert any(c.startswith("Fig. 5") for c in paper.metadata["captions"])


TEI = """<?xml version="1.0" encoding="UTF-8"?>
<TEI xmlns="http://www.tei-c.org/ns/1.0"><teiHeader><fileDesc><titleStmt>
<title level="a" type="main">A ﬁne title</title></titleStmt></fileDesc>
<profileDesc><abstract><p>First part.</p><p>Second part.</p></abstract></profileDesc></teiHeader>
<text><body>
<div><head n="3.1">Results</head><p>We saw <formula>x = y^2</formula> that
it  grows <ref type="bibr">[1]</ref>.</p><p>  </p></div>
<div><p>An untitled paragraph.</p></div>
</body><back><div type="references"><listBibl>
<biblStruct><monogr><title level="m">A Book</title><imprint><date when="1999-01-01"/></imprint></monogr></biblStruct>
</listBibl></div></back></text></TEI>"""


def test_handmade_tei_formula_ligature_and_untitled_div():
    paper = parse_tei(TEI, paper_id="x")
    assert paper.title == "A fine title"  # NFKC undoes the ligature
    assert paper.abstract == "First part. Second part."
    results, untitled = paper.sections
    assert (results.number, results.level, results.heading) == ("3.1", 2, "Results")
    assert results.paragraphs == ["We saw that it grows [1]."]  # formula dropped, empty <p> dropped
    assert untitled.heading == "" and untitled.paragraphs == ["An untitled paragraph."]
    (ref,) = paper.references
    assert (ref.title, ref.year, ref.raw) == ("A Book", "1999", "A Book. 1999")


def test_bad_tei_is_a_clear_error(tmp_path):
    with pytest.raises(TeiError, match="not valid XML"):
        parse_tei("<TEI><unclosed></TEI>")
    with pytest.raises(TeiError, match="not a TEI document"):
        parse_tei("<html><body/></html>")
    path = tmp_path / "broken.tei.xml"
    path.write_text("<TEI", encoding="utf-8")
    with pytest.raises(TeiError, match="broken.tei.xml"):
        parse_tei(path)
