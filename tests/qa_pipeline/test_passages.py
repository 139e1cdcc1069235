"""Papers -> passages, and reading a folder of papers."""

from __future__ import annotations

import json

import pytest

from embshared.io import DataError
from qa_pipeline.paper import Paper, Section, save_paper
from qa_pipeline.passages import PassageConfig, load_papers, paper_passages, split_sentences


def sentence(i: int, words: int = 10) -> str:
    return " ".join([f"Sentence{i}"] + ["word"] * (words - 2) + ["end."])


def test_split_sentences_keeps_abbreviations():
    text = "As shown by Cohan et al. (2020) it works. Fig. 2 shows it. Values rose, e.g. by 3. The end."
    assert split_sentences(text) == [
        "As shown by Cohan et al. (2020) it works.",
        "Fig. 2 shows it.",
        "Values rose, e.g. by 3.",
        "The end.",
    ]


def test_passages_of_a_paper():
    long_paragraph = " ".join(sentence(i) for i in range(25))  # 250 words
    paper = Paper(
        paper_id="p1",
        title="A Title",
        abstract="An abstract " * 20,
        sections=[
            Section("Introduction", [long_paragraph, "A short closing paragraph of the introduction section here."]),
            Section("Acknowledgements", ["We thank everyone who helped with this work, and our funders too."]),
            Section("Methods", ["Tiny."]),
            Section("Results", [" ".join(sentence(i) for i in range(9)) + " " + sentence(9, 5), sentence(10)]),
        ],
    )
    passages = paper_passages(paper, PassageConfig(max_words=100, min_words=20))
    assert [p.passage_id for p in passages] == [f"p1#{i}" for i in range(len(passages))]
    assert passages[0].section == "Abstract" and passages[0].text.startswith("A Title. An abstract")
    intro = [p for p in passages if p.section == "Introduction"]
    assert [len(p.text.split()) for p in intro] == [100, 100, 59]  # 250 + 9 words, cut at sentence ends
    results = [p for p in passages if p.section == "Results"]
    assert [len(p.text.split()) for p in results] == [105]  # a 10-word tail is merged, not left alone
    assert not intro[0].text.startswith("A Title")  # title only on the abstract by default
    assert all(p.section not in {"Acknowledgements", "Methods"} for p in passages)  # back matter; too short
    assert " ".join(p.text for p in intro).split() == (long_paragraph + " " + paper.sections[0].paragraphs[1]).split()

    every = paper_passages(paper, PassageConfig(max_words=100, min_words=20, title_in_passage="all"))
    assert all(p.text.startswith("A Title. ") for p in every)
    assert len(paper_passages(paper, PassageConfig(max_passages_per_paper=2))) == 2


def test_load_papers_reads_json_tei_and_txt(tmp_path, papers_dir):
    save_paper(Paper(paper_id="b", title="B", abstract="text " * 40), tmp_path / "b.json")
    (tmp_path / "a.txt").write_text("Short title\n\nFirst paragraph.\n\nSecond paragraph.\n", encoding="utf-8")
    (tmp_path / "c.grobid.tei.xml").write_bytes((papers_dir / "demarchis2016_jner_fes.grobid.tei.xml").read_bytes())
    (tmp_path / "extraction_report.json").write_text("{}", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    papers = load_papers(tmp_path)
    assert [p.paper_id for p in papers] == ["a", "b", "c"]
    assert papers[0].title == "Short title" and papers[0].sections[0].paragraphs == [
        "First paragraph.",
        "Second paragraph.",
    ]
    assert papers[2].title.startswith("Multi-contact functional electrical stimulation")


def test_load_papers_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_papers(tmp_path / "missing")
    with pytest.raises(DataError, match="no papers found"):
        load_papers(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"title": "no id"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: field 'paper_id' missing"):
        load_papers(tmp_path)
