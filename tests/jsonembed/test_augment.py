"""Each augmentation does what it says, reproducibly."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from embedding_model.augment import (
    QUERY_KINDS,
    Augmenter,
    code_token,
    crop_span,
    drop_fields,
    field_value,
    mask_digits,
    shuffle_fields,
    visible_segments,
    word_sample,
)
from embedding_model.records import segments_to_text
from embedding_model.typos import CharNoise

SEGMENTS = [(f"k{i}", f"value {i}") for i in range(10)]


def test_drop_fields_counts():
    rng = random.Random(0)
    assert drop_fields(SEGMENTS, 0.0, rng) == SEGMENTS
    for _ in range(50):
        assert len(drop_fields(SEGMENTS, 1.0, rng)) == 1  # never an empty view
    counts = [len(drop_fields(SEGMENTS, 0.3, rng)) for _ in range(4000)]
    assert abs(np.mean(counts) - 7.0) < 0.1  # binomial(10, 0.7): mean 7, standard error ~0.02
    kept = drop_fields(SEGMENTS, 0.5, rng)
    assert [s for s in SEGMENTS if s in kept] == kept  # order preserved, no new fields


def test_shuffle_fields():
    rng = random.Random(1)
    assert shuffle_fields(SEGMENTS, 0.0, rng) == SEGMENTS
    shuffled = [shuffle_fields(SEGMENTS, 1.0, rng) for _ in range(20)]
    assert all(Counter(s) == Counter(SEGMENTS) for s in shuffled)  # same fields
    assert sum(s != SEGMENTS for s in shuffled) >= 19  # 10! orders: unchanged about once in 3.6 million
    half = [shuffle_fields(SEGMENTS, 0.5, rng) != SEGMENTS for _ in range(2000)]
    assert 0.45 < np.mean(half) < 0.55


def test_mask_digits():
    rng = random.Random(2)
    text = "sku=AB-1234 | price=19.99 | year 2024"
    assert mask_digits(text, 1.0, rng) == "sku=AB-#### | price=##.## | year ####"
    assert mask_digits(text, 0.0, rng) == text
    masked = [mask_digits("0123456789" * 10, 0.25, rng).count("#") for _ in range(400)]
    assert abs(np.mean(masked) - 25) < 1.0  # each of 100 digits with probability 0.25


def test_crop_span_is_a_run_of_words_from_one_field():
    rng = random.Random(3)
    segments = [("title", "a b c"), ("text", " ".join(f"w{i}" for i in range(40)))]
    for _ in range(200):
        span = crop_span(segments, 3, 8, rng).split()
        assert 3 <= len(span) <= 8
        source = next(v.split() for _, v in segments if span[0] in v.split())
        start = source.index(span[0])
        assert source[start : start + len(span)] == span
    assert crop_span([("a", "one two")], 3, 8, rng) == "one two"  # a short field is taken whole


def test_visible_segments_follow_max_chars():
    segments = [("title", "abcdef"), ("text", "x" * 100), ("extra", "never read")]
    visible = visible_segments(segments, 30)
    assert visible == [("title", "abcdef"), ("text", "x" * (30 - len("title=abcdef | ") - len("text=")))]


def test_augmenter_is_reproducible_and_keeps_content():
    augmenter = Augmenter(field_drop_prob=0.3, span_crop_prob=0.3, key_drop_prob=0.5, digit_mask_prob=0.0)
    views_a = [augmenter.view(SEGMENTS, random.Random(9)) for _ in range(3)]
    views_b = [augmenter.view(SEGMENTS, random.Random(9)) for _ in range(3)]
    assert views_a == views_b
    rng = random.Random(4)
    for _ in range(200):
        view = augmenter.view(SEGMENTS, rng)
        assert view
        assert all(
            word in ["value", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] or "=" in word or word == "|"
            for word in view.split()
        )


RECORD = [
    ("title", "Vitamin D deficiency and bone fractures"),
    ("text", "We followed 1,234 patients aged 65 or more for five years and found a strong association in 2019."),
    ("sku", "AB-1234"),
]


def test_query_view_generators_fixed_outputs():
    assert field_value(RECORD, random.Random(1)) == "Vitamin D deficiency and bone fractures"
    assert code_token(RECORD, random.Random(1)) == "65"
    assert code_token([("a", "no digits here")], random.Random(0)) == ""
    assert word_sample(RECORD, 3, 5, random.Random(1)) == "Vitamin deficiency and"
    augmenter = Augmenter(digit_mask_prob=0.0, query_view_prob=1.0, query_min_words=3, query_max_words=5)
    views = {kind: augmenter.query_view(RECORD, random.Random(2), kind) for kind in QUERY_KINDS}
    assert views == {
        "field": "Vitamin D deficiency and bone fractures",
        "span": "1,234 patients aged",
        "code": "1,234",
        "words": "1,234 and 2019.",
    }
    noisy = Augmenter(digit_mask_prob=0.0, query_min_words=3, query_max_words=5, noise=CharNoise(substitute=1.0))
    assert noisy.query_view(RECORD, random.Random(2), "field") == "Vifamin D defijiency and tone fractuves"


def test_query_view_properties():
    rng = random.Random(6)
    values = [v for _, v in RECORD]
    for _ in range(300):
        assert field_value(RECORD, rng) in values
        code = code_token(RECORD, rng)
        assert any(c.isdigit() for c in code) and any(code in v for v in values)
        sample = word_sample(RECORD, 2, 4, rng).split()
        source = next(v.split() for v in values if all(w in v.split() for w in sample))
        positions = [source.index(w) for w in sample]
        assert min(2, len(source)) <= len(sample) <= 4 and positions == sorted(
            positions
        )  # words of one field, in order


def test_pair_is_a_query_view_against_the_full_record():
    augmenter = Augmenter(query_view_prob=1.0, digit_mask_prob=0.0)
    rng = random.Random(8)
    for _ in range(50):
        query, record = augmenter.pair(RECORD, rng)
        assert record == segments_to_text(RECORD)
        assert query and "=" not in query
    never = Augmenter(query_view_prob=0.0, span_crop_prob=0.0, field_drop_prob=0.0, key_drop_prob=0.0)
    assert all("=" in v for v in never.pair(RECORD, rng))  # two record views
    half = Augmenter(query_view_prob=0.5, span_crop_prob=0.0, key_drop_prob=1.0, digit_mask_prob=0.0)
    full = segments_to_text(RECORD)  # with keys: record views here never have them
    share = np.mean([half.pair(RECORD, rng)[1] == full for _ in range(2000)])
    assert 0.46 < share < 0.54
