"""Readers, pair formats and BEIR folders, including every bad input of the issue."""

from __future__ import annotations

import json

import pytest

from embshared.io import (
    DataError,
    StsPair,
    detect_format,
    load_beir,
    load_examples,
    normalise_examples,
    read_documents,
    read_json,
    read_jsonl,
    read_qrels,
    read_records,
    read_sts,
    read_table,
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_jsonl_keeps_line_numbers_and_skips_blank_lines(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"a": 1}\n\n{"a": 2}\n')
    records = read_jsonl(path)
    assert records == [{"a": 1}, {"a": 2}]
    assert records.lines == [1, 3]


def test_jsonl_value_that_is_not_an_object_names_file_and_line(tmp_path):
    lines = ['{"query": "q", "document": "d"}'] * 16 + ["[1, 2]"]
    path = write(tmp_path / "pairs.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:17: expected a JSON object, got a list$"):
        read_jsonl(path)


def test_malformed_json_line_names_line(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON"):
        read_jsonl(path)


def test_malformed_json_line_reports_the_column_within_the_line(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"a": 1}\n{"a": 1\n')  # the closing brace is missing
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON \(Expecting ',' delimiter at column 8\)$"):
        read_jsonl(path)


def test_skip_invalid_counts_skipped_lines(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"a": 1}\nnot json\n[1]\n{"a": 2}\n')
    records = read_jsonl(path, skip_invalid=True)
    assert [r["a"] for r in records] == [1, 2]
    assert records.skipped == 2


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"empty\.jsonl: no records found"):
        read_jsonl(write(tmp_path / "empty.jsonl", "\n\n"))
    with pytest.raises(DataError, match="no records found"):
        read_table(write(tmp_path / "empty.csv", ""))


def test_all_lines_invalid_is_an_error_even_when_skipping(tmp_path):
    with pytest.raises(DataError, match=r"no records found \(2 invalid"):
        read_jsonl(write(tmp_path / "bad.jsonl", "x\ny\n"), skip_invalid=True)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")


def test_read_json_array_and_data_key(tmp_path):
    assert read_json(write(tmp_path / "a.json", '[{"x": 1}, {"x": 2}]')) == [{"x": 1}, {"x": 2}]
    assert read_json(write(tmp_path / "b.json", '{"data": [{"x": 3}]}')) == [{"x": 3}]
    with pytest.raises(DataError, match=r"c\.json: element 2: expected a JSON object, got a number"):
        read_json(write(tmp_path / "c.json", '[{"x": 1}, 5]'))


def test_read_records_dispatches_on_suffix(tmp_path):
    write(tmp_path / "t.tsv", "query\tdocument\nq1\td1\n")
    write(tmp_path / "c.csv", 'query,document\nq1,"d, with comma"\n')
    write(tmp_path / "l.json", '{"x": 1}\n{"x": 2}\n')  # JSON lines in a .json file
    assert read_records(tmp_path / "t.tsv") == [{"query": "q1", "document": "d1"}]
    assert read_records(tmp_path / "c.csv") == [{"query": "q1", "document": "d, with comma"}]
    assert len(read_records(tmp_path / "l.json")) == 2
    with pytest.raises(DataError, match="unknown file type .parquet"):
        read_records(write(tmp_path / "x.parquet", ""))


def test_csv_row_with_wrong_field_count_names_line(tmp_path):
    path = write(tmp_path / "p.csv", "query,document\nq1,d1\nq2\n")
    with pytest.raises(DataError, match=r"p\.csv:3: expected 2 fields"):
        read_table(path)


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        ({"query": "q", "document": "d"}, "pairs"),
        ({"query": "q", "positive": "p"}, "pairs"),
        ({"anchor": "q", "positive": "p", "negative": "n"}, "triplets"),
        ({"query": "q", "positive": "p", "negative": "n"}, "triplets"),
        ({"doc1": "a", "doc2": "b", "similarity": 0.5}, "similarity"),
        ({"sentence1": "a", "sentence2": "b", "score": 4}, "similarity"),
        ({"title": "t"}, None),
    ],
)
def test_detect_format(record, fmt):
    assert detect_format(record) == fmt


def test_normalise_renames_fields_strips_and_drops_duplicates(tmp_path):
    rows = [
        {"anchor": " q1 ", "positive": "p1", "negative": "n1"},
        {"anchor": "q1", "positive": "p1", "negative": "n1"},
        {"query": "q2", "positive": "p2", "negative": "n2"},
    ]
    path = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows))
    examples = normalise_examples(read_jsonl(path))
    assert examples.format == "triplets"
    assert examples.rows == [
        {"query": "q1", "positive": "p1", "negative": "n1"},
        {"query": "q2", "positive": "p2", "negative": "n2"},
    ]
    assert examples.dropped_duplicates == 1


def test_normalise_errors_name_line_and_field(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"query": "q", "document": "d"}\n{"query": "q2", "document": "  "}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: field 'document' is empty"):
        normalise_examples(read_jsonl(path))
    path = write(tmp_path / "s.jsonl", '{"doc1": "a", "doc2": "b", "similarity": "high"}\n')
    with pytest.raises(DataError, match=r"s\.jsonl:1: field 'similarity': expected a number, got 'high'"):
        normalise_examples(read_jsonl(path))
    path = write(tmp_path / "m.jsonl", '{"query": "q", "document": "d"}\n{"query": "q"}\n')
    with pytest.raises(DataError, match=r"m\.jsonl:2: field 'document' missing"):
        normalise_examples(read_jsonl(path))
    path = write(tmp_path / "n.jsonl", '{"title": "x", "body": "y"}\n')
    with pytest.raises(DataError, match=r"n\.jsonl:1: record matches no known format \(fields: body, title\)"):
        normalise_examples(read_jsonl(path))


def make_beir(folder, qrels_text="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"):
    folder.mkdir()
    write(
        folder / "corpus.jsonl", '{"_id": "d1", "title": "T1", "text": "x"}\n{"_id": "d2", "title": "", "text": "y"}\n'
    )
    write(
        folder / "queries.jsonl",
        '{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n{"_id": "q3", "text": "3"}\n',
    )
    if qrels_text is not None:
        (folder / "qrels").mkdir()
        write(folder / "qrels" / "train.tsv", qrels_text)
    return folder


def test_load_beir(tmp_path):
    data = load_beir(make_beir(tmp_path / "b"))
    assert data.queries == {"q1": "one", "q2": "two"}  # q3 has no qrels in this split
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.corpus_texts() == {"d1": "T1 x", "d2": "y"}
    pairs = load_examples(tmp_path / "b")
    assert pairs.format == "pairs"
    assert [(r["query"], r["document"]) for r in pairs.rows] == [("one", "T1 x"), ("two", "y")]


def test_beir_missing_qrels_is_an_error(tmp_path):
    folder = make_beir(tmp_path / "b", qrels_text=None)
    with pytest.raises(DataError, match=r"b: missing qrels/train\.tsv$"):
        load_beir(folder)


def test_beir_qrel_with_unknown_doc(tmp_path):
    folder = make_beir(tmp_path / "b", "query-id\tcorpus-id\tscore\nq1\td9\t1\n")
    with pytest.raises(DataError, match=r"train\.tsv: corpus id 'd9' is not in corpus\.jsonl"):
        load_beir(folder)


def test_qrels_bad_score_names_line(tmp_path):
    path = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tyes\n")
    with pytest.raises(DataError, match=r"q\.tsv:3: field 'score': expected a number"):
        read_qrels(path)


def test_bundled_sample_loads(sample_scifact):
    data = load_beir(sample_scifact)
    assert len(data.corpus) == 2000
    assert len(data.queries) == 809
    assert sum(len(r) for r in data.qrels.values()) == 919


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b'{"query": "a", "document": "b"}\n{"query": "caf\xe9", "document": "d"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: not UTF-8 text \(byte 0xe9"):
        read_jsonl(path)
    assert len(read_jsonl(path, skip_invalid=True)) == 1
    table = tmp_path / "pairs.csv"
    table.write_bytes(b"query,document\na,b\nc,\xff\n")
    with pytest.raises(DataError, match=r"pairs.csv:3: not UTF-8 text"):
        read_table(table)


def test_sts_reader_on_the_real_file(shared_data):
    pairs = read_sts(shared_data / "stsbenchmark" / "sts-dev.csv")
    assert len(pairs) == 1500
    assert pairs[0] == StsPair("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0)
    assert pairs[1].score == 4.75 and pairs[1].sentence2 == "A child is riding a horse."
    examples = load_examples(shared_data / "stsbenchmark" / "sts-dev.csv")
    assert examples.format == "similarity" and examples.rows[1]["similarity"] == pytest.approx(0.95)


def test_read_documents_in_every_shape(tmp_path):
    txt = write(tmp_path / "docs.txt", "first doc\n\n  second doc \n")
    docs = read_documents(txt)
    assert docs.ids == ["1", "3"] and docs.texts == ["first doc", "second doc"]
    beir = tmp_path / "beir"
    beir.mkdir()
    write(
        beir / "corpus.jsonl", '{"_id": "d1", "title": "T", "text": "body"}\n{"_id": "d2", "title": "", "text": "x"}\n'
    )
    assert read_documents(beir).texts == ["T body", "x"] and read_documents(beir).ids == ["d1", "d2"]
    csv_path = write(tmp_path / "docs.csv", "id,content\n7,hello\n8,world\n")
    assert read_documents(csv_path).ids == ["7", "8"] and read_documents(csv_path).texts == ["hello", "world"]
    named = write(tmp_path / "n.jsonl", '{"body": "a", "x": 1}\n{"body": "b", "x": 2}\n')
    assert read_documents(named, text_field="body", id_field="x").ids == ["1", "2"]
    assert read_documents(named).ids == ["1", "2"]  # line numbers
    empty = write(tmp_path / "e.jsonl", '{"text": "a"}\n{"text": "  "}\n')
    with pytest.raises(DataError, match=r"e.jsonl:2: field 'text' is empty"):
        read_documents(empty)
    dup = write(tmp_path / "d.jsonl", '{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'id': duplicate id '1'"):
        read_documents(dup)
    none = write(tmp_path / "none.jsonl", '{"foo": "a"}\n')
    with pytest.raises(DataError, match=r"none.jsonl:1: no text field"):
        read_documents(none)
