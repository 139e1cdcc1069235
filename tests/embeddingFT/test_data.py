"""Each format loads, drops exact duplicates and splits by query; the eval set points at the right docs."""

from __future__ import annotations

import json

import pytest

from embedding_ft.data import build_eval_set, load_dataset, prepare, split_by_query
from embshared.io import DataError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def pairs_file(tmp_path):
    rows = [{"query": f"q{i % 10}", "document": f"doc {i}"} for i in range(30)]
    rows.append({"query": "q1", "document": "doc 1"})  # exact duplicate of row 1
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def test_pairs_split_by_query(pairs_file):
    examples, beir = load_dataset(str(pairs_file))
    assert beir is None and examples.format == "pairs"
    assert len(examples.rows) == 30 and examples.dropped_duplicates == 1
    train, test = split_by_query(examples, 0.2, seed=1)
    train_q, test_q = {r["query"] for r in train.rows}, {r["query"] for r in test.rows}
    assert len(test_q) == 2 and len(train_q) == 8 and not train_q & test_q
    assert len(train.rows) + len(test.rows) == 30
    assert split_by_query(examples, 0.2, seed=1)[1].rows == test.rows  # deterministic


def test_split_is_seeded_and_sample_size_keeps_whole_queries(pairs_file):
    examples, _ = load_dataset(str(pairs_file))
    splits = {tuple(sorted({r["query"] for r in split_by_query(examples, 3, seed=s)[1].rows})) for s in range(6)}
    assert len(splits) > 1  # different seeds hold out different queries
    train, test = split_by_query(examples, 0.5, seed=0, sample_size=10)
    rows = train.rows + test.rows
    assert len(rows) == 12  # 4 whole queries of 3 rows each reach 10
    assert all(sum(r["query"] == q for r in rows) == 3 for q in {r["query"] for r in rows})


def test_test_size_leaving_no_training_data_fails(pairs_file):
    examples, _ = load_dataset(str(pairs_file))
    with pytest.raises(DataError, match=r"test_size=10 leaves no training data \(10 distinct query"):
        split_by_query(examples, 10, seed=0)


def test_triplets_eval_set_uses_positives_as_relevant(tmp_path):
    rows = [{"query": f"q{i}", "positive": f"pos {i}", "negative": f"neg {i}"} for i in range(10)]
    examples, _ = load_dataset(str(write_jsonl(tmp_path / "t.jsonl", rows)))
    assert examples.format == "triplets"
    _train, test = split_by_query(examples, 0.3, seed=0)
    eval_set = build_eval_set(examples, test, None)
    assert len(eval_set.corpus) == 20  # every positive and negative of the dataset
    for qid, rels in eval_set.qrels.items():
        (doc_id,) = rels
        query = eval_set.queries[qid]
        assert eval_set.corpus[doc_id] == f"pos {query[1:]}"


def test_similarity_format_splits_by_first_sentence(tmp_path):
    rows = [{"sentence1": f"s{i % 5}", "sentence2": f"t{i}", "score": i % 6} for i in range(20)]
    examples, _ = load_dataset(str(write_jsonl(tmp_path / "s.jsonl", rows)))
    assert examples.format == "similarity"
    train, test = split_by_query(examples, 0.4, seed=0)
    assert not {r["doc1"] for r in train.rows} & {r["doc1"] for r in test.rows}
    eval_set = build_eval_set(examples, test, None)
    assert eval_set.kind == "similarity" and len(eval_set.pairs) == len(test.rows)


def test_beir_folder_uses_its_corpus_and_qrels(tiny_beir):
    prepared = prepare(str(tiny_beir), test_size=0.25, seed=3)
    es = prepared.eval_set
    assert len(es.queries) == 10 and len(es.corpus) == len(prepared.mining_texts)
    train_queries = {r["query_id"] for r in prepared.train.rows}
    assert not train_queries & set(es.queries)
    for _qid, rels in es.qrels.items():
        assert all(doc in es.corpus for doc in rels)
    # every known positive of a training query is recorded, so mining can exclude it
    for row in prepared.train.rows:
        assert row["document"] in prepared.positives[row["query"]]


def test_csv_pairs(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("anchor,positive\nwhat is x,x is a letter\nwhat is y,y is another\n")
    examples, _ = load_dataset(str(path))
    assert examples.rows == [
        {"query": "what is x", "document": "x is a letter"},
        {"query": "what is y", "document": "y is another"},
    ]


def test_unknown_hub_name_offline_is_an_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="the `datasets` hub is offline"):
        load_dataset("someone/some-dataset")
