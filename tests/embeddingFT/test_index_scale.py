"""The index at scale: FAISS kind by size, the candidate hybrid, float16 / int8 vectors, older folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedding_ft import index as index_module
from embedding_ft.cli import index as index_cli
from embedding_ft.cli import search as search_cli
from embedding_ft.index import Searcher, build_index, load_vectors
from embshared import search as search_module
from embshared.errors import UserError
from embshared.fusion import zscore_rows
from embshared.fusion_choice import FusionSetting, fuse
from embshared.io import Documents, load_beir
from embshared.search import IndexLoadError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
N_DOCS = 200
N_QUERIES = 12


class CachedEncoder:
    """MiniLM, encoding each distinct text once (documents are searched with their own text)."""

    def __init__(self, model, texts, vectors):
        self.model = model
        self.cache = dict(zip(texts, vectors))
        self.calls = 0  # encode() calls

    def encode(self, texts, **kwargs):
        self.calls += 1
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache |= dict(zip(missing, self.model.encode(missing, normalize_embeddings=True)))
        return np.stack([self.cache[t] for t in texts])


class NoEncoder:
    def encode(self, texts, **kwargs):
        raise AssertionError("the stored vectors should have been reused")


@pytest.fixture(scope="module")
def collection(sample_scifact, minilm_session):
    """200 real SciFact abstracts (cut to 400 characters), 12 claims, MiniLM vectors of both."""
    data = load_beir(sample_scifact)
    doc_ids = sorted(data.corpus)[:N_DOCS]
    texts = [f"{data.corpus[d]['title']} {data.corpus[d]['text'][:400]}" for d in doc_ids]
    queries = [data.queries[q] for q in sorted(data.queries)[:N_QUERIES]]
    vectors = minilm_session.encode(texts + queries, batch_size=32, normalize_embeddings=True)
    docs = Documents(doc_ids, texts, "scifact-sample")
    encoder = CachedEncoder(minilm_session, texts + queries, vectors)
    return docs, np.asarray(vectors[:N_DOCS], dtype=np.float32), queries, encoder


@pytest.fixture(scope="module")
def indexes(collection, tmp_path_factory):
    """One index per stored precision (exact FAISS: 200 documents is below the auto threshold)."""
    docs, vectors, _, encoder = collection
    root = tmp_path_factory.mktemp("scale")
    return {
        p: build_index(root / p, docs, MINILM, encoder=encoder, embeddings=vectors, vectors=p)[0]
        for p in ("float32", "float16", "int8")
    }


def _no_full_pass(searcher):
    def refuse(q):
        raise AssertionError("the candidate hybrid scored every document")

    searcher.dense_scores = refuse
    return searcher


# ---------------------------------------------------------------------------------------
# 1. the FAISS kind chosen by size


def test_auto_faiss_kind_follows_the_collection_size(collection, tmp_path, monkeypatch):
    docs, vectors, _, encoder = collection
    folder, _ = build_index(tmp_path / "small", docs, MINILM, encoder=encoder, embeddings=vectors)
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["faiss_kind"], meta["faiss_kind_asked"]) == ("flat", "auto")
    monkeypatch.setattr(search_module, "FLAT_MAX_DOCS", N_DOCS)  # 200 documents now count as "large"
    folder, reused = build_index(tmp_path / "small", docs, MINILM, encoder=encoder, embeddings=vectors)
    assert not reused  # another kind: rebuilt
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["faiss_kind"] == "hnsw" and json.loads((folder / "faiss" / "index.json").read_text())["kind"] == "hnsw"
    assert build_index(folder, docs, MINILM, encoder=encoder, embeddings=vectors)[1]  # same resolved kind: reused
    folder, _ = build_index(tmp_path / "flat", docs, MINILM, encoder=encoder, embeddings=vectors, faiss_kind="flat")
    assert json.loads((folder / "meta.json").read_text())["faiss_kind"] == "flat"  # explicit wins
    searcher = Searcher(tmp_path / "small", encoder=encoder)
    for doc_id, text in zip(docs.ids[:50], docs.texts[:50]):
        assert searcher.search(text, k=1)[0].id == doc_id


# ---------------------------------------------------------------------------------------
# 2. the candidate hybrid


SETTINGS = [
    FusionSetting.default(),
    FusionSetting(dense_weight=0.3),
    FusionSetting(dense_weight=0.8, bm25_k1=0.9, bm25_b=0.4),
    FusionSetting(method="rrf", dense_weight=0.5),
    FusionSetting(method="rrf", dense_weight=0.7),
]


@pytest.mark.parametrize("faiss_kind", ["flat", "hnsw"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.method}-{s.dense_weight}")
def test_candidate_hybrid_equals_the_all_document_hybrid(collection, tmp_path, setting, faiss_kind):
    docs, vectors, queries, encoder = collection
    folder, _ = build_index(
        tmp_path / "idx", docs, MINILM, encoder=encoder, embeddings=vectors, fusion=setting, faiss_kind=faiss_kind
    )
    exact = Searcher(folder, encoder=encoder)
    fast = _no_full_pass(Searcher(folder, encoder=encoder))
    assert exact.candidate_depth() is None and exact.candidate_depth(30) == 30 and exact.candidate_depth(0) is None
    too_few = 0
    for query in queries + docs.texts[:3]:
        every = exact.search(query, k=10, hybrid=True, candidates=0)
        some = fast.search(query, k=10, hybrid=True, candidates=30)  # 30 of each ranker's 200 documents
        assert [h.id for h in some] == [h.id for h in every]
        assert [h.score for h in some] == pytest.approx([h.score for h in every], abs=1e-5)
        assert [h.rank for h in some] == list(range(1, 11))
        too_few += [h.id for h in fast.search(query, k=10, hybrid=True, candidates=2)] != [h.id for h in every]
    # the comparison can fail: with BM25's top 2 (and FAISS's top k) the convex fusion misses documents;
    # RRF always takes each ranker's top 100 (all it uses)
    assert too_few > 0 if setting.method == "convex" and setting.dense_weight < 1 else too_few == 0


def test_candidate_hybrid_scores_are_the_all_document_fusion(collection, indexes):
    """The returned scores are fuse() over all documents, with the z-scores of the whole collection."""
    docs, _, queries, encoder = collection
    searcher = Searcher(indexes["float32"], encoder=encoder)
    stats = searcher.dense_stats()
    for query in queries:
        q = searcher.encode([query])
        dense = searcher.dense_scores(q)[0]
        assert float(stats[0] @ q[0]) == pytest.approx(dense.mean(), abs=1e-6)  # mean q . mu
        assert np.sqrt(q[0] @ stats[1:] @ q[0]) == pytest.approx(dense.std(), rel=1e-5)  # var q^T C q
        lexical = searcher.bm25.score_matrix([query])
        expected = 0.5 * zscore_rows(dense[None])[0] + 0.5 * zscore_rows(lexical)[0]
        assert np.allclose(fuse(searcher.fusion, dense[None], lexical)[0], expected, atol=1e-6)
        hits = _no_full_pass(Searcher(indexes["float32"], encoder=encoder)).search(
            query, k=5, hybrid=True, candidates=20
        )
        rows = [docs.ids.index(h.id) for h in hits]
        assert [h.score for h in hits] == pytest.approx(expected[rows].tolist(), abs=1e-5)


def test_the_candidate_hybrid_is_the_default_above_the_threshold(collection, indexes, monkeypatch):
    _, _, queries, encoder = collection
    every = Searcher(indexes["float32"], encoder=encoder)
    assert index_module.CANDIDATE_HYBRID_MIN_DOCS == 200_000 and every.candidate_depth() is None
    expected = [h.id for h in every.search(queries[0], k=10, hybrid=True)]
    monkeypatch.setattr(index_module, "CANDIDATE_HYBRID_MIN_DOCS", N_DOCS)
    monkeypatch.setattr(index_module, "DEFAULT_CANDIDATES", 40)
    fast = _no_full_pass(Searcher(indexes["float32"], encoder=encoder))
    assert fast.candidate_depth() == 40
    assert fast.describe_candidates() == "the union of BM25's and FAISS's top 40"
    assert [h.id for h in fast.search(queries[0], k=10, hybrid=True)] == expected
    with pytest.raises(AssertionError, match="scored every document"):
        fast.search(queries[0], k=10, hybrid=True, candidates=0)  # 0: every document, as asked
    with pytest.raises(UserError, match="candidates must be a whole number >= 0"):
        fast.search(queries[0], hybrid=True, candidates=-1)


def test_search_cli_candidates(indexes, capsys):
    assert search_cli.main(["--index", str(indexes["float32"]), "--query", "x", "--candidates", "-3"]) != 0
    assert "--candidates must be >= 0" in capsys.readouterr().err
    argv = ["--index", str(indexes["float32"]), "--query", "vitamin D and bone", "--hybrid", "--json"]
    assert search_cli.main([*argv, "--candidates", "25", "--top-k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and lines[0]["fusion"].endswith("over the union of BM25's and FAISS's top 25")
    assert search_cli.main([*argv, "--top-k", "3"]) == 0
    every = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert every[0]["fusion"].endswith("over every document")
    assert [h["id"] for h in every] == [h["id"] for h in lines]


# ---------------------------------------------------------------------------------------
# 3. float16 / int8 vectors


def test_stored_precisions_are_written_as_asked(collection, indexes):
    _, vectors, _, _ = collection
    for precision, folder in indexes.items():
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["vectors"] == precision and meta["dense_stats"] == "dense_stats.npy"
        stored = np.load(folder / "embeddings.npy", allow_pickle=False)
        assert stored.dtype == np.dtype(precision) and stored.shape == (N_DOCS, 384)
        assert (folder / "embeddings_ranges.npy").is_file() == (precision == "int8")
        assert json.loads((folder / "faiss" / "index.json").read_text())["storage"] == precision
        decoded = load_vectors(folder)
        assert decoded.dtype == np.float32 and decoded.shape == vectors.shape
        error = np.abs(decoded - vectors).max()
        if precision == "float32":
            assert error == 0
        elif precision == "float16":
            assert 0 < error < 1e-3
        else:  # half a bucket: (max - min) / 255 / 2 per dimension
            ranges = np.load(folder / "embeddings_ranges.npy")
            assert ranges.dtype == np.float32 and ranges.shape == (2, 384)
            assert 0 < error <= ((ranges[1] - ranges[0]) / 255).max() / 2 + 1e-6
    sizes = {p: (f / "embeddings.npy").stat().st_size for p, f in indexes.items()}
    assert sizes["float16"] < 0.51 * sizes["float32"] and sizes["int8"] < 0.26 * sizes["float32"]


def test_each_document_finds_itself_first_in_every_precision(collection, indexes):
    docs, _, queries, encoder = collection
    searchers = {p: Searcher(f, encoder=encoder) for p, f in indexes.items()}
    for doc_id, text in zip(docs.ids, docs.texts):
        for precision, searcher in searchers.items():
            hit = searcher.search(text, k=1)[0]
            assert hit.id == doc_id, precision
            assert hit.score == pytest.approx(1.0, abs=2e-2 if precision == "int8" else 2e-3)
    for query in queries:  # the same documents score nearly the same, dense and hybrid
        reference = {h.id: h.score for h in searchers["float32"].search(query, k=10)}
        for precision, tolerance in (("float16", 2e-3), ("int8", 1e-2)):
            for hit in searchers[precision].search(query, k=10):
                if hit.id in reference:
                    assert hit.score == pytest.approx(reference[hit.id], abs=tolerance), precision
            hybrid = searchers[precision].search(query, k=5, hybrid=True)
            exact = {h.id: h.score for h in searchers["float32"].search(query, k=N_DOCS, hybrid=True)}
            assert all(h.score == pytest.approx(exact[h.id], abs=10 * tolerance) for h in hybrid), precision
        q = searchers["int8"].encode([query])
        assert np.abs(searchers["int8"].dense_scores(q) - searchers["float32"].dense_scores(q)).max() < 1e-2


@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_candidate_hybrid_on_quantized_vectors(collection, indexes, precision):
    _, _, queries, encoder = collection
    exact = Searcher(indexes[precision], encoder=encoder)
    fast = _no_full_pass(Searcher(indexes[precision], encoder=encoder))
    for query in queries:
        every = exact.search(query, k=10, hybrid=True, candidates=0)
        some = fast.search(query, k=10, hybrid=True, candidates=30)
        assert [h.id for h in some] == [h.id for h in every]
        assert [h.score for h in some] == pytest.approx([h.score for h in every], abs=1e-5)


def test_rebuilding_reuses_vectors_at_least_as_precise(collection, tmp_path):
    docs, vectors, _, encoder = collection
    folder, _ = build_index(tmp_path / "idx", docs, MINILM, encoder=encoder, embeddings=vectors, vectors="int8")
    stored = np.load(folder / "embeddings.npy")
    assert build_index(folder, docs, MINILM, encoder=NoEncoder(), vectors="int8")[1]  # same: reused
    other = FusionSetting(method="rrf")
    assert not build_index(folder, docs, MINILM, encoder=NoEncoder(), vectors="int8", fusion=other)[1]
    assert np.array_equal(np.load(folder / "embeddings.npy"), stored)  # the int8 arrays as they were
    calls = encoder.calls
    build_index(folder, docs, MINILM, encoder=encoder, vectors="float32", fusion=other)  # int8 -> float32: encoded
    assert encoder.calls == calls + 1 and np.load(folder / "embeddings.npy").dtype == np.float32
    build_index(folder, docs, MINILM, encoder=NoEncoder(), vectors="float16", fusion=other)  # float32 -> float16
    assert np.array_equal(np.load(folder / "embeddings.npy"), vectors.astype(np.float16))
    with pytest.raises(ValueError, match="vectors must be one of"):
        build_index(folder, docs, MINILM, encoder=NoEncoder(), vectors="binary")


def _int8_as_float32(path):
    np.save(path, np.load(path).astype(np.float32))


def _object_array(path):
    np.save(path, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)


def _wrong_shape(path):
    np.save(path, np.zeros((3, 7), dtype=np.load(path).dtype))


def _remove(path):
    path.unlink()


@pytest.mark.parametrize(
    ("precision", "part", "damage", "says"),
    [
        ("int8", "embeddings.npy", _int8_as_float32, "damaged (a float32 array of shape (200, 384), expected int8"),
        ("int8", "embeddings.npy", _object_array, "damaged"),
        ("float16", "embeddings.npy", _wrong_shape, "damaged (a float16 array of shape (3, 7), expected float16"),
        ("int8", "embeddings_ranges.npy", _remove, "missing"),
        ("int8", "embeddings_ranges.npy", _wrong_shape, "damaged (a float32 array of shape (3, 7)"),
        ("int8", "embeddings_ranges.npy", _object_array, "damaged"),
        ("float32", "dense_stats.npy", _remove, "missing"),
        ("float16", "dense_stats.npy", _wrong_shape, "damaged (a float64 array of shape (3, 7)"),
    ],
)
def test_damaged_new_parts_are_one_line(tmp_path, indexes, precision, part, damage, says):
    folder = tmp_path / "index"
    shutil.copytree(indexes[precision], folder)
    damage(folder / part)
    with pytest.raises(IndexLoadError) as caught:
        Searcher(folder, encoder=object())
    message = str(caught.value)
    assert message.startswith(f"{folder / part}:") and says in message and "rebuild" in message
    assert "\n" not in message


def test_an_older_index_folder_reads_as_before(collection, indexes, tmp_path):
    """No vectors / dense_stats / faiss_kind_asked in meta.json, no dense_stats.npy, no storage in faiss: float32."""
    docs, _, queries, encoder = collection
    folder = tmp_path / "old"
    shutil.copytree(indexes["float32"], folder)
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("vectors", "dense_stats", "faiss_kind_asked"):
        del meta[key]
    meta["faiss_kind"] = "flat"
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "dense_stats.npy").unlink()
    faiss_meta = json.loads((folder / "faiss" / "index.json").read_text())
    del faiss_meta["storage"]
    (folder / "faiss" / "index.json").write_text(json.dumps(faiss_meta))
    old = Searcher(folder, encoder=encoder)
    assert old.precision == "float32" and old._stats is None
    new = Searcher(indexes["float32"], encoder=encoder)
    for query in queries[:4]:
        assert old.search(query, k=5) == new.search(query, k=5)
        assert old.search(query, k=5, hybrid=True) == new.search(query, k=5, hybrid=True)
        some = old.search(query, k=5, hybrid=True, candidates=30)  # statistics computed from the vectors
        assert [h.id for h in some] == [h.id for h in new.search(query, k=5, hybrid=True)]
    assert np.allclose(old.dense_stats(), new.dense_stats(), atol=1e-9)
    # rebuilding with the same settings keeps the old folder as it is
    assert build_index(folder, docs, MINILM, encoder=NoEncoder(), faiss_kind="flat")[1]


def test_index_cli_refuses_an_int8_base_for_an_adapter(indexes, tmp_path, capsys):
    argv = ["--model", str(tmp_path / "adapter"), "--from-index", str(indexes["int8"]), "--index", str(tmp_path / "o")]
    assert index_cli.main(argv) != 0
    assert "stores int8 vectors" in capsys.readouterr().err
    assert index_cli.main([*argv[:4], "--index", str(tmp_path / "o"), "--vectors", "int8"]) != 0
    assert "--from-index builds a float32 index" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
