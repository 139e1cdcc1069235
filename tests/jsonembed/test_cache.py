"""The embedding cache: keyed by the model's and the data's hashes, reused, never stale."""

from __future__ import annotations

import numpy as np

from embedding_model.cache import CACHE_DIR_NAME, cached_embeddings
from embedding_model.records import load_records


def test_cache_beside_data_reused_and_invalidated(tiny_model, tmp_path, write_jsonl, monkeypatch):
    embedder, model_path, _ = tiny_model
    data = write_jsonl(tmp_path / "items.jsonl", [{"name": "red lamp"}, {"name": "blue chair"}])
    records = load_records(data)
    first = cached_embeddings(embedder, model_path, records, show_progress=False)
    entries = list((tmp_path / CACHE_DIR_NAME).iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("items.jsonl.")

    calls = []
    original = embedder.embed_segments
    monkeypatch.setattr(embedder, "embed_segments", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = cached_embeddings(embedder, model_path, records, show_progress=False)
    assert np.array_equal(first, again) and calls == []  # read from the cache

    write_jsonl(data, [{"name": "red lamp"}, {"name": "green sofa"}])  # same size, new content
    changed = cached_embeddings(embedder, model_path, load_records(data), show_progress=False)
    assert calls == [1] and not np.array_equal(changed[1], first[1])
    assert len(list((tmp_path / CACHE_DIR_NAME).iterdir())) == 2
    assert np.array_equal(changed, embedder.embed_segments(load_records(data).segments))
