"""embshared.search at scale: the FAISS kind chosen by size, recall@k of an approximate index, float16 / int8 storage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embshared import search
from embshared.search import FaissIndex, auto_faiss_kind, recall_at_k, resolve_faiss_kind


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def one_thread():
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # the cores are shared with other runs
    yield
    faiss.omp_set_num_threads(before)


def test_auto_is_exact_below_the_threshold_and_hnsw_at_it():
    assert search.FLAT_MAX_DOCS == 100_000
    assert auto_faiss_kind(99_999) == "flat" and auto_faiss_kind(100_000) == "hnsw"
    assert auto_faiss_kind(1_000_000) == "hnsw"
    assert resolve_faiss_kind("auto", 5) == "flat" and resolve_faiss_kind("auto", 2_000_000) == "hnsw"
    for kind in ("flat", "hnsw", "ivf"):  # an explicit kind wins at any size
        assert resolve_faiss_kind(kind, 5) == kind == resolve_faiss_kind(kind, 2_000_000)
    with pytest.raises(ValueError, match="auto or one of"):
        resolve_faiss_kind("annoy", 10)


@pytest.fixture(scope="module")
def random_collection():
    """20,000 random 64-dim unit vectors and 200 queries: no cluster structure, a hard case for HNSW."""
    rng = np.random.default_rng(0)
    vectors, queries = _unit(rng, 20_000, 64), _unit(rng, 200, 64)
    ids = [f"d{i}" for i in range(len(vectors))]
    exact = FaissIndex(64, kind="flat").add(ids, vectors)
    return ids, vectors, queries, exact


def test_hnsw_recall_at_10_against_flat(random_collection):
    ids, vectors, queries, exact = random_collection
    assert recall_at_k(exact, exact, queries, k=10) == 1.0
    hnsw = FaissIndex(64, kind="hnsw", ef_search=128).add(ids, vectors)
    recall = recall_at_k(hnsw, exact, queries, k=10)
    assert 0.9 <= recall < 1.0  # approximate, and good enough (0.97 measured)
    default = FaissIndex(64, kind="hnsw").add(ids, vectors)  # the defaults auto uses: M 32, efSearch 1024
    assert recall_at_k(default, exact, queries, k=10) >= max(recall, 0.99)  # the wider search finds more
    narrow = FaissIndex(64, kind="hnsw", hnsw_m=4, ef_search=10).add(ids, vectors)
    assert recall_at_k(narrow, exact, queries, k=10) < recall - 0.2  # the measure does see a worse index


def test_recall_needs_the_same_collection(random_collection):
    ids, vectors, queries, exact = random_collection
    smaller = FaissIndex(64).add(ids[:10], vectors[:10])
    with pytest.raises(ValueError, match="hold 10 and 20000 documents"):
        recall_at_k(smaller, exact, queries)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize(("storage", "tolerance"), [("float16", 2e-3), ("int8", 2e-2)])
def test_quantized_storage_scores_close_to_float32(tmp_path, kind, storage, tolerance):
    rng = np.random.default_rng(1)
    vectors, queries = _unit(rng, 2_000, 32), _unit(rng, 20, 32)
    ids = [f"d{i}" for i in range(len(vectors))]
    index = FaissIndex(32, kind=kind, storage=storage).add(ids, vectors)
    index.save(tmp_path / "faiss")
    assert json.loads((tmp_path / "faiss" / "index.json").read_text())["storage"] == storage
    loaded = FaissIndex.load(tmp_path / "faiss")
    assert loaded.storage == storage and loaded.kind == kind
    found, scores = loaded.search(queries, k=5)
    row = {d: i for i, d in enumerate(ids)}
    for q, row_ids, row_scores in zip(queries, found, scores):
        exact = vectors[[row[d] for d in row_ids]] @ q
        assert np.abs(np.array(row_scores) - exact).max() < tolerance
    assert recall_at_k(loaded, FaissIndex(32).add(ids, vectors), queries, k=5) >= (0.9 if kind != "ivf" else 0.5)


def test_an_older_saved_index_without_storage_is_float32(tmp_path):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 50, 8)
    FaissIndex(8).add([str(i) for i in range(50)], vectors).save(tmp_path / "faiss")
    meta_path = tmp_path / "faiss" / "index.json"
    meta = json.loads(meta_path.read_text())
    del meta["storage"]
    meta_path.write_text(json.dumps(meta))
    loaded = FaissIndex.load(tmp_path / "faiss")
    assert loaded.storage == "float32"
    assert loaded.search(vectors[:1], k=1)[0] == [["0"]]
    with pytest.raises(ValueError, match="storage must be one of"):
        FaissIndex(8, storage="binary")
