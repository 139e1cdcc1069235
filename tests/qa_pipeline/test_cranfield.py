"""The Cranfield track's data path: records -> paper JSON -> passages, the dev/rest split, the
retrieval task built from the papers, and inverse cloze on tokenised lower-case text."""

from __future__ import annotations

import json

import pytest

from qa_pipeline.benchmark_data import cranfield_beir, cranfield_papers, limit_per_paper, query_split
from qa_pipeline.generators import FallbackConfig, FallbackGenerator
from qa_pipeline.passages import PassageConfig, load_papers, paper_passages, split_sentences
from qa_pipeline.records import record_paper, records_to_papers, untokenise_title, write_papers


@pytest.fixture(scope="module")
def cranfield_dir(shared_data):
    folder = shared_data / "cranfield"
    if not (folder / "cran.all.1400").is_file():
        pytest.skip(f"Cranfield not found in {folder}")
    return folder


def test_record_becomes_a_paper_without_the_title_twice():
    record = {
        "_id": "1",
        "title": "experimental investigation of the aerodynamics of a wing in a slipstream .",
        "author": "brenckman,m.",
        "text": "experimental investigation of the aerodynamics of a wing in a slipstream . "
        "an experimental study of a wing in a propeller slipstream was made .",
    }
    paper = record_paper(record, "cranfield-", "cran.all.1400")
    assert paper.paper_id == "cranfield-1"
    assert paper.title == "experimental investigation of the aerodynamics of a wing in a slipstream"
    assert paper.abstract == "an experimental study of a wing in a propeller slipstream was made ."
    assert paper.authors == ["brenckman,m."] and paper.metadata == {"record_id": "1"}
    (passage,) = paper_passages(paper, PassageConfig(min_words=5))
    assert passage.text == f"{paper.title}. {paper.abstract}"
    assert record_paper({"_id": "9", "title": "", "text": "  "}, "c-", "x") is None
    assert untokenise_title("a wing .") == "a wing" and untokenise_title("Fig. 2 shows.") == "Fig. 2 shows."


def test_cranfield_records_load_into_paper_json_with_the_right_counts(cranfield_dir, tmp_path):
    papers, empty = cranfield_papers(cranfield_dir, tmp_path / "papers")
    assert empty == ["471", "995"]  # the collection's two records without title or text
    assert len(papers) == 1398 and len(list((tmp_path / "papers").glob("*.json"))) == 1398
    assert len({p.paper_id for p in papers}) == 1398
    assert all(p.abstract and not p.title.endswith(" .") for p in papers)
    by_id = {p.metadata["record_id"]: p for p in papers}
    assert by_id["1"].title == "experimental investigation of the aerodynamics of a wing in a slipstream"
    assert by_id["1"].abstract.startswith("an experimental study of a wing in a propeller slipstream")
    on_disk = json.loads((tmp_path / "papers" / "cranfield-1.json").read_text())
    assert on_disk["extractor"] == "records" and on_disk["schema_version"] == 1
    beir = cranfield_beir(cranfield_dir, papers)
    assert len(beir.corpus) == 1398 and len(beir.queries) == 225
    # 1,612 graded judgments (codes 1-4), one of them of a record without text, which no system can find
    assert sum(len(r) for r in beir.qrels.values()) == 1611
    assert beir.qrels["1"]["184"] == 3  # code 2 ("high relevance") -> grade 3
    assert beir.corpus_texts()["1"].startswith("experimental investigation of the aerodynamics")


def test_dev_rest_split_is_seeded_and_disjoint():
    ids = [str(i) for i in range(1, 226)]
    split = query_split(ids, seed=18, n_dev=112)
    assert len(split["dev"]) == 112 and len(split["rest"]) == 113
    assert not split["dev"] & split["rest"] and split["dev"] | split["rest"] == set(ids)
    assert query_split(list(reversed(ids)), seed=18, n_dev=112) == split  # order of the input does not matter
    assert query_split(ids, seed=19, n_dev=112)["dev"] != split["dev"]


def test_limit_per_paper():
    rows = [{"paper_id": p, "q": i} for i, p in enumerate("aabab")]
    assert [r["q"] for r in limit_per_paper(rows, 1)] == [0, 2]
    assert limit_per_paper(rows, 0) == rows


def test_tokenised_text_splits_into_sentences_for_inverse_cloze():
    text = (
        "an experimental study of a wing in a propeller slipstream was made in order to determine the lift .  "
        "the results were intended in part as an evaluation basis for different theories .  "
        "the comparative span loading curves showed that a part of the lift increment was due to destalling ."
    )
    sentences = split_sentences(text)
    assert len(sentences) == 3 and sentences[1].startswith("the results were intended")
    assert split_sentences("Values of e.g. 3 m. The next one.") == ["Values of e.g. 3 m.", "The next one."]
    from qa_pipeline.passages import Passage

    passage = Passage("c#0", "c", "Abstract", text, "")
    (cands,) = FallbackGenerator(FallbackConfig(min_answer_words=10), n=1, seed=0).generate([passage])
    assert len(cands) == 1 and cands[0].question in sentences and cands[0].question not in cands[0].answer


def test_written_papers_round_trip(tmp_path):
    made = records_to_papers(
        [{"_id": "a", "title": "T one", "text": "some text here"}, {"_id": "b", "title": "", "text": ""}], "r-", "src"
    )
    assert [p.paper_id for p in made.papers] == ["r-a"] and made.empty == ["b"]
    assert write_papers(made.papers, tmp_path) == 1
    (paper,) = load_papers(tmp_path)
    assert (paper.title, paper.abstract) == ("T one", "some text here")
