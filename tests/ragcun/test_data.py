"""Training data loading: formats, bad shapes, false-negative masks, batching."""

from __future__ import annotations

import json

import pytest
import torch

from embshared.io import DataError
from ragcun.data import TrainExample, exclusion_mask, iterate_batches, load_training_examples, positives_by_query


def test_triplets_and_pairs(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"query": "q", "positive": "p", "negative": "n"}]), encoding="utf-8")
    assert load_training_examples(path) == [TrainExample("q", "p", "n")]
    path = tmp_path / "p.jsonl"
    path.write_text('{"query": "q", "positive": "p"}\n{"anchor": "a", "positive": "b"}\n', encoding="utf-8")
    assert load_training_examples(path) == [TrainExample("q", "p"), TrainExample("a", "b")]


def test_beir_folder(sample_scifact):
    examples = load_training_examples(sample_scifact)
    assert len(examples) > 100
    assert all(e.negative is None for e in examples)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "q", "positive": "p"}', "expected a JSON array of objects"),
        ('[["q", "p"]]', "element 1: expected a JSON object, got a list"),
        ('[{"query": "q", "text": "p"}]', "record matches no known format"),
        (
            '[{"query": "q", "positive": "p", "negative": "n"}, {"query": "q2", "positive": "p2"}]',
            ":2: field 'negative' missing",
        ),
        (
            '[{"query": "q", "positive": "p"}, {"query": "q2", "positive": "p2", "negative": "n"}]',
            ":2: field 'negative' given here",
        ),
        ('[{"doc1": "a", "doc2": "b", "similarity": 0.5}]', "a similarity set"),
    ],
)
def test_wrong_shapes_name_the_file(tmp_path, content, message):
    path = tmp_path / "train.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_training_examples(path)
    assert str(path) in str(info.value)


def test_exclusion_mask_marks_duplicates_and_other_positives():
    batch = [TrainExample("q1", "p1", "n1"), TrainExample("q1", "p2", "n2"), TrainExample("q3", "p1", "p2")]
    known = positives_by_query(batch)
    mask = exclusion_mask(batch, known)
    # candidates: p1 p2 p1 | n1 n2 p2
    expected = torch.tensor(
        [
            [True, True, True, False, False, True],
            [True, True, True, False, False, True],
            [True, False, True, False, False, False],
        ]
    )
    assert torch.equal(mask, expected)


def test_batches_shuffle_reproducibly_and_drop_singletons():
    examples = [TrainExample(f"q{i}", f"p{i}") for i in range(9)]
    a = [[e.query for e in b] for b in iterate_batches(examples, 4, torch.Generator().manual_seed(0))]
    b = [[e.query for e in b] for b in iterate_batches(examples, 4, torch.Generator().manual_seed(0))]
    assert a == b
    assert [len(x) for x in a] == [4, 4]  # the last batch of one is dropped
    assert [q for batch in a for q in batch] != [f"q{i}" for i in range(8)]  # shuffled
