"""prepare_data: inverse cloze pairs never leak the query, splits are by document and respect fractions."""

from __future__ import annotations

import json
import random

import pytest

from embshared.io import DataError
from ragcun.cli.prepare_data import main
from ragcun.preparation import Document, check_fractions, ict_pairs, read_documents, split_groups, split_sentences


def _documents(n: int = 60) -> list[dict[str, str]]:
    rng = random.Random(0)
    words = [
        "cell",
        "protein",
        "gene",
        "tumour",
        "insulin",
        "patient",
        "trial",
        "dose",
        "receptor",
        "pathway",
        "signal",
        "membrane",
    ]
    docs = []
    for i in range(n):
        sentences = [
            f"Sentence {j} of document {i} mentions {' '.join(rng.sample(words, 4))} in detail."
            for j in range(3 + i % 5)
        ]
        docs.append({"_id": f"d{i}", "title": f"Title {i}", "text": " ".join(sentences)})
    return docs


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in _documents()) + "\n", encoding="utf-8")
    return path


def test_split_sentences():
    text = 'Cells grew (n = 5). Dose was 2.5 mg per kg! Was it safe? "Yes", they said. 3 patients died.'
    assert split_sentences(text) == [
        "Cells grew (n = 5).",
        "Dose was 2.5 mg per kg!",
        "Was it safe?",
        '"Yes", they said.',
        "3 patients died.",
    ]


def test_ict_query_sentence_never_in_its_positive(corpus_file):
    documents = read_documents(corpus_file)
    pairs, passages = ict_pairs(documents, num_pairs=120, rng=random.Random(1))
    assert len(pairs) == 120  # more pairs than documents: several sentences per document
    # capacity: floor(sentences / 2) per document, 3..7 sentences -> 12 * (1 + 2 + 2 + 3 + 3) = 132
    assert len(ict_pairs(documents, num_pairs=500, rng=random.Random(1))[0]) == 132
    by_doc: dict[str, list[str]] = {}
    for pair in pairs:
        by_doc.setdefault(pair["doc_id"], []).append(pair["query"])
    for pair in pairs:
        assert pair["query"] not in pair["positive"]
        assert pair["positive"] == passages[pair["doc_id"]]
        # no query of the same document survives in the passage either
        assert not any(q in pair["positive"] for q in by_doc[pair["doc_id"]])
    doc = {d.doc_id: d for d in documents}["d7"]
    assert len(by_doc.get("d7", [])) <= len(doc.sentences) // 2


def test_ict_skips_documents_with_one_sentence():
    documents = [
        Document("a", "", ["Only one sentence here is long enough."]),
        Document("b", "", ["One.", "Two words."]),
    ]
    with pytest.raises(ValueError, match="no document"):
        ict_pairs(documents, None, random.Random(0))


def test_split_by_document_respects_fractions():
    groups = [f"d{i % 97}" for i in range(500)]  # 97 documents, several pairs each
    split_of = split_groups(groups, [0.7, 0.2, 0.1], random.Random(0))
    counts = {name: sum(1 for v in split_of.values() if v == name) for name in ("train", "val", "test")}
    assert counts == {"train": round(97 * 0.7), "val": round(97 * 0.9) - round(97 * 0.7), "test": 97 - round(97 * 0.9)}
    assert set(split_of) == set(groups)


@pytest.mark.parametrize("fractions", [[0.8, 0.1, 0.2], [0.5, 0.5], [1.2, -0.1, -0.1]])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError):
        check_fractions(fractions)


def test_cli_writes_leak_free_splits(tmp_path, corpus_file):
    out = tmp_path / "out"
    argv = ["--documents", str(corpus_file), "--generate_pairs", "--num_pairs", "100", "--add_negatives"]
    code = main([*argv, "--split", "0.8", "0.1", "0.1", "--output_dir", str(out)])
    assert code == 0
    train = json.loads((out / "train.json").read_text())
    val = json.loads((out / "val.json").read_text())
    test = json.loads((out / "test_eval.json").read_text())
    docs_of = {name: {r["doc_id"] for r in rows} for name, rows in (("train", train), ("val", val))}
    test_docs = set(test["corpus_ids"])
    assert not docs_of["train"] & docs_of["val"]
    assert not docs_of["train"] & test_docs
    assert not docs_of["val"] & test_docs
    assert len(test_docs) == 60 - round(60 * 0.9)  # every test document is in the test corpus
    for row in train + val:
        assert row["query"] not in row["positive"]
        assert row["negative"] != row["positive"]
        assert row["query"] not in row["negative"]  # negatives are passages too
    passages = {p for r in train for p in (r["positive"], r["negative"])}
    assert passages.isdisjoint(test["corpus"])  # negatives come from the same split
    for query, relevant in zip(test["queries"], test["relevance"]):
        assert len(relevant) == 1
        assert query not in test["corpus"][relevant[0]]


def test_cli_rejects_fractions_not_summing_to_one_and_writes_nothing(tmp_path, corpus_file, capsys):
    out = tmp_path / "out"
    code = main(
        ["--documents", str(corpus_file), "--generate_pairs", "--split", "0.8", "0.3", "0.1", "--output_dir", str(out)]
    )
    assert code == 2
    assert "split fractions must sum to 1" in capsys.readouterr().err
    assert not out.exists()


def test_cli_csv_with_negatives(tmp_path):
    csv = tmp_path / "pairs.csv"
    lines = ["query,positive,negative"] + [f"question {i},answer text {i},unrelated text {i}" for i in range(20)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--csv_file", str(csv), "--split", "0.6", "0.2", "0.2", "--output_dir", str(out)]) == 0
    train = json.loads((out / "train.json").read_text())
    test = json.loads((out / "test_eval.json").read_text())
    assert len(train) == 12
    assert all(set(r) == {"query", "positive", "negative", "doc_id"} for r in train)
    assert len(test["queries"]) == 4
    assert len(test["corpus"]) == 8  # 4 positives + their 4 negatives as distractors


def test_documents_without_text_field(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "A. B."}\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"docs.jsonl:2: field 'text' missing"):
        read_documents(path)
