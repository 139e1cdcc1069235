"""Flattening nested records into key=value segments, and reading record files."""

from __future__ import annotations

import pytest

from embedding_model.records import flatten_record, load_records, plain_text, segments_to_text
from embshared.io import DataError

PRODUCT = {
    "_id": "p1",
    "name": "Desk Lamp",
    "price": 19.5,
    "in_stock": True,
    "specs": {"watts": 40, "size": {"h": 30.0, "w": 12}},
    "tags": ["desk", "led", None, ""],
    "reviews": [{"stars": 5, "text": "bright"}, {"stars": 3, "text": "ok"}],
    "notes": None,
    "empty": {},
    "blank": "  ",
}


def test_flatten_nested_lists_and_scalars():
    segments = flatten_record(PRODUCT, ignore_fields=["_id"])
    assert segments == [
        ("name", "Desk Lamp"),
        ("price", "19.5"),
        ("in_stock", "true"),
        ("specs.watts", "40"),
        ("specs.size.h", "30"),  # an integral float prints as an integer
        ("specs.size.w", "12"),
        ("tags", "desk, led"),  # nulls and empty strings leave the list
        ("reviews.stars", "5"),  # objects in a list keep their key, without an index
        ("reviews.text", "bright"),
        ("reviews.stars", "3"),
        ("reviews.text", "ok"),
    ]


def test_flatten_keeps_ids_unless_ignored_and_collapses_whitespace():
    assert flatten_record({"_id": 7, "t": " a\n  b "}) == [("_id", "7"), ("t", "a b")]
    assert flatten_record({"nested": [[1, 2], [3]]}) == [("nested", "1, 2"), ("nested", "3")]


def test_text_forms():
    segments = [("name", "Lamp"), ("specs.watts", "40")]
    assert segments_to_text(segments) == "name=Lamp | specs.watts=40"
    assert segments_to_text(segments, with_keys=False) == "Lamp | 40"
    assert plain_text(segments) == "Lamp 40"


def test_load_records_lines_ids_and_skips(tmp_path, write_jsonl):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"_id": "a", "t": "x"}, "not json", {"_id": "b", "t": ""}, "", [1, 2], {"_id": "c", "t": "y"}],
    )
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        load_records(path, ["_id"])
    records = load_records(path, ["_id"], skip_invalid=True, id_field="_id")
    assert records.ids == ["a", "c"]
    assert records.lines == [1, 6]
    assert records.skipped == 3  # the bad line, the list and the record without text
    assert records.texts() == ["t=x", "t=y"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"a": "x"}, '{"a": '], r"d\.jsonl:2: invalid JSON"),
        ([{"a": "x"}, "[1, 2]"], r"d\.jsonl:2: expected a JSON object, got a list"),
        ([{"a": "x"}, '"text"'], r"d\.jsonl:2: expected a JSON object, got a string"),
        ([{"a": "x"}, {"_id": "3", "a": None, "b": []}], r"d\.jsonl:2: record has no text"),
        ([], r"d\.jsonl: no records found"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, write_jsonl, rows, message):
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=message):
        load_records(path, ["_id"])


def test_missing_id_field(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "d.jsonl", [{"_id": "1", "t": "x"}, {"t": "y"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field '_id' missing"):
        load_records(path, ["_id"], id_field="_id")


def test_record_whose_first_max_chars_hold_only_keys(tmp_path, write_jsonl):
    rows = [{"title": "lamp"}, {"a_very_long_field_name_for_the_description": "desk lamp"}, {"t": "x"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert len(load_records(path, max_chars=60)) == 3  # the value starts within 60 characters
    with pytest.raises(DataError, match=r"d\.jsonl:2: record has no text within the first 20 characters"):
        load_records(path, max_chars=20)
    records = load_records(path, max_chars=20, skip_invalid=True)
    assert records.lines == [1, 3] and records.skipped == 1
