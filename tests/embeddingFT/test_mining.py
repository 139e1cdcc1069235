"""Mining never returns a known positive as a negative, honours its settings and caches its rows."""

from __future__ import annotations

import pytest

from embedding_ft.config import MiningConfig
from embedding_ft.mining import (
    cache_key,
    drop_known_positives,
    mine,
    missing_pairs,
    model_fingerprint,
)
from embshared.errors import UserError
from embshared.io import Examples

DOCS = [
    "Vitamin D supplementation reduces fracture risk in elderly women.",
    "Vitamin D levels are associated with bone mineral density.",
    "Low vitamin D intake predicts osteoporosis in older adults.",
    "Aspirin lowers the risk of a second heart attack.",
    "Statins reduce LDL cholesterol and cardiovascular events.",
    "Regular exercise improves insulin sensitivity.",
    "Smoking increases the risk of lung cancer.",
    "Antibiotics do not shorten viral infections.",
]


def pairs():
    # the vitamin D query has two positives: neither may ever be mined as its negative
    rows = [
        {"query": "Does vitamin D protect bones?", "document": DOCS[0]},
        {"query": "Does vitamin D protect bones?", "document": DOCS[1]},
        {"query": "Does aspirin prevent heart attacks?", "document": DOCS[3]},
        {"query": "Do statins lower cholesterol?", "document": DOCS[4]},
    ]
    return Examples("pairs", rows, "test")


def known():
    return {
        "Does vitamin D protect bones?": {DOCS[0], DOCS[1]},
        "Does aspirin prevent heart attacks?": {DOCS[3]},
        "Do statins lower cholesterol?": {DOCS[4]},
    }


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_mined_negatives_never_contain_a_positive(minilm_session, strategy):
    cfg = MiningConfig(num_negatives=3, margin=None, range_max=6, sampling_strategy=strategy)
    rows = mine(pairs(), DOCS, known(), minilm_session, "minilm", cfg, "n-tuple", cache_dir=None)
    assert rows, "nothing mined"
    for row in rows:
        negatives = [v for k, v in row.items() if k.startswith("negative")]
        assert len(negatives) == 3
        assert not set(negatives) & known()[row["anchor"]]
    vitamin = next(r for r in rows if r["anchor"].startswith("Does vitamin"))
    if strategy == "top":  # the hardest non-positive for the vitamin D query is the third vitamin D text
        assert vitamin["negative_1"] == DOCS[2]


def test_range_min_skips_the_hardest(minilm_session):
    cfg = MiningConfig(num_negatives=1, margin=None, range_min=1, range_max=5)
    rows = mine(pairs(), DOCS, known(), minilm_session, "minilm", cfg, "triplet", cache_dir=None)
    vitamin = next(r for r in rows if r["anchor"].startswith("Does vitamin"))
    assert vitamin["negative"] != DOCS[2]  # rank 0 (DOCS[2]) is skipped


def test_absolute_margin_is_honoured(minilm_session):
    margin = 0.25
    cfg = MiningConfig(num_negatives=1, margin=margin, margin_type="absolute")
    rows = mine(pairs(), DOCS, known(), minilm_session, "m", cfg, "triplet", None)
    loose = mine(
        pairs(), DOCS, known(), minilm_session, "m", MiningConfig(num_negatives=1, margin=None), "triplet", None
    )
    assert {r["negative"] for r in rows} != {r["negative"] for r in loose}  # the margin changed the choice

    def sim(a, b):
        ea, eb = minilm_session.encode([a, b], normalize_embeddings=True)
        return float(ea @ eb)

    for row in rows:  # every negative scores at least `margin` below the query's weakest positive
        weakest = min(sim(row["anchor"], p) for p in known()[row["anchor"]])
        assert sim(row["anchor"], row["negative"]) + margin <= weakest + 1e-4


def test_keep_unmined_gives_dropped_pairs_bm25_negatives(minilm_session):
    # an absolute margin of 2 rules out every candidate (cosines lie in [-1, 1]): mining drops every pair
    strict = MiningConfig(num_negatives=1, margin=2.0, margin_type="absolute", range_max=6)
    with pytest.raises(UserError, match="no rows"):
        mine(pairs(), DOCS, known(), minilm_session, "m", strict, "n-tuple", None)
    keep = MiningConfig(num_negatives=1, margin=2.0, margin_type="absolute", range_max=6, keep_unmined=True)
    rows = mine(pairs(), DOCS, known(), minilm_session, "m", keep, "n-tuple", None)
    assert [(r["anchor"], r["positive"]) for r in rows] == [(r["query"], r["document"]) for r in pairs().rows]
    for row in rows:
        assert list(row) == ["anchor", "positive", "negative_1"]
        assert row["negative_1"] not in known()[row["anchor"]]
    # BM25's best non-positive for the vitamin D query is the third vitamin D text
    vitamin = [r for r in rows if r["anchor"].startswith("Does vitamin")]
    assert {r["negative_1"] for r in vitamin} == {DOCS[2]}
    # with one BM25 negative per pair as well, the kept rows fill both slots from BM25
    both = MiningConfig(
        num_negatives=1, margin=2.0, margin_type="absolute", range_max=6, keep_unmined=True, bm25_negatives=1
    )
    rows2 = mine(pairs(), DOCS, known(), minilm_session, "m", both, "n-tuple", None)
    for row in rows2:
        assert list(row) == ["anchor", "positive", "negative_1", "negative_2"]
        assert row["negative_1"] != row["negative_2"]


def test_missing_pairs_counts_duplicates():
    rows = [{"anchor": "q", "positive": "a"}, {"anchor": "r", "positive": "b"}]
    assert missing_pairs([("q", "a"), ("q", "a"), ("r", "b"), ("s", "c")], rows) == [("q", "a"), ("s", "c")]


def test_drop_known_positives():
    rows = [
        {"anchor": "q", "positive": "p1", "negative_1": "p2"},
        {"anchor": "q", "positive": "p1", "negative_1": "n"},
        {"anchor": "q", "document": "p2", "label": 0},
        {"anchor": "q", "document": "p1", "label": 1},
    ]
    known_positives = {"q": {"p1", "p2"}}
    assert drop_known_positives(rows[:2], known_positives, "n-tuple") == [rows[1]]
    assert drop_known_positives(rows[2:], known_positives, "labeled-pair") == [rows[3]]


def test_rerun_loads_mined_rows_from_the_cache(minilm_session, tmp_path, monkeypatch):
    cfg = MiningConfig(num_negatives=1, margin=None, range_max=5)
    first = mine(pairs(), DOCS, known(), minilm_session, "minilm", cfg, "n-tuple", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mined-*.jsonl"))) == 1

    import sentence_transformers.util

    def fail(*args, **kwargs):
        raise AssertionError("mined again instead of using the cache")

    monkeypatch.setattr(sentence_transformers.util, "mine_hard_negatives", fail)
    assert mine(pairs(), DOCS, known(), minilm_session, "minilm", cfg, "n-tuple", cache_dir=tmp_path) == first


def test_cache_key_changes_with_every_input():
    base = ([("q", "d")], ["d"], "model", MiningConfig(), "n-tuple")
    keys = {
        cache_key(*base),
        cache_key([("q", "d2")], *base[1:]),
        cache_key(base[0], ["d", "e"], *base[2:]),
        cache_key(*base[:2], "other", *base[3:]),
        cache_key(*base[:3], MiningConfig(num_negatives=2), "n-tuple"),
        cache_key(*base[:4], "triplet"),
    }
    assert len(keys) == 6


def test_fingerprint_tells_encoding_lengths_apart(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    plain = model_fingerprint(str(tmp_path))
    at_256, at_128 = model_fingerprint(str(tmp_path), 256), model_fingerprint(str(tmp_path), 128)
    assert len({plain, at_256, at_128}) == 3 and at_256.startswith(plain)
    assert model_fingerprint("org/hub-name", 256) == "org/hub-name|max_seq_length=256"
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert model_fingerprint(str(tmp_path), 256) != at_256


def test_mining_through_the_corpus_encoder_gives_the_same_rows_and_encodes_once(minilm_session, tmp_path):
    """The corpus pass of mine_hard_negatives goes through one CorpusVectors: same rows, a second mining reads it."""
    from embedding_ft.corpus_encoder import CorpusEncoder, CorpusVectors, EmbeddingCache

    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(minilm_session, name)

        def encode(self, texts, **kwargs):
            calls.append(list(texts))
            return minilm_session.encode(texts, **kwargs)

    cache = EmbeddingCache(tmp_path / "vectors")

    def documents():
        encoder = CorpusEncoder("sentence-transformers/all-MiniLM-L6-v2", cache=cache, encoder=Counting())
        return CorpusVectors(encoder, DOCS, show_progress=False)

    cfg = MiningConfig(num_negatives=2, range_max=6, margin=None)
    plain = mine(pairs(), DOCS, known(), minilm_session, "m", cfg, "n-tuple", None)
    through = mine(pairs(), DOCS, known(), minilm_session, "m", cfg, "n-tuple", None, documents=documents())
    assert through == plain and len(plain) == 4
    assert sorted(t for batch in calls for t in batch) == sorted(DOCS)  # the corpus, once, through the encoder
    calls.clear()
    other = MiningConfig(num_negatives=1, range_max=6, margin=None)
    again = mine(pairs(), DOCS, known(), minilm_session, "m", other, "n-tuple", None, documents=documents())
    assert calls == [] and len(again) == 4  # new settings, same corpus: its vectors are read from the cache
