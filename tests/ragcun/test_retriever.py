"""GaussianRetriever: exact-match retrieval, distances, save/load of the FAISS L2 index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embshared.search import IndexLoadError
from ragcun.checkpoint import save_checkpoint
from ragcun.model import GaussianEmbeddingGemma, ModelConfig

DOCS = [
    "Lava flows from an erupting volcano.",
    "Insulin lowers blood glucose in diabetes.",
    "A telescope observed a distant nebula.",
    "The orchestra played a violin symphony.",
    "Glaciers are melting as the climate warms.",
]


@pytest.fixture
def checkpoint(tmp_path, tiny_base):
    torch.manual_seed(0)
    model = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base, output_dim=16), device="cpu")
    return save_checkpoint(tmp_path / "model.pt", model)


def test_import_from_package():
    from ragcun import GaussianRetriever
    from ragcun.retriever import GaussianRetriever as direct

    assert GaussianRetriever is direct


def test_exact_match_query_returns_its_document_at_distance_zero(checkpoint):
    from ragcun import GaussianRetriever

    retriever = GaussianRetriever(checkpoint)
    retriever.add_documents(DOCS[:3])
    retriever.add_documents(DOCS[3:])  # a second batch extends the index
    assert len(retriever) == 5
    for doc in DOCS:
        results = retriever.retrieve(doc, top_k=3)
        assert results[0][0] == doc
        assert results[0][1] == pytest.approx(0.0, abs=1e-2)
        assert [d for _, d in results] == sorted(d for _, d in results)
    embeddings = retriever.encode(DOCS)
    expected = np.linalg.norm(embeddings - embeddings[0], axis=1)
    got = dict(retriever.retrieve(DOCS[0], top_k=5))
    for doc, distance in zip(DOCS, expected):
        assert got[doc] == pytest.approx(distance, rel=1e-3, abs=1e-2)
    assert retriever.retrieve("anything", top_k=0) == []


def test_save_and_load_index(tmp_path, checkpoint):
    from ragcun import GaussianRetriever

    retriever = GaussianRetriever(checkpoint)
    retriever.add_documents(DOCS)
    retriever.save_index(tmp_path / "index")
    fresh = GaussianRetriever(checkpoint)
    fresh.load_index(tmp_path / "index")
    assert fresh.documents == DOCS
    assert fresh.retrieve(DOCS[2], top_k=2) == retriever.retrieve(DOCS[2], top_k=2)


def test_dimension_mismatches_are_clear_errors(tmp_path, checkpoint, tiny_base):
    from ragcun import GaussianRetriever
    from ragcun.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="another model shape: output_dim is 16"):
        GaussianRetriever(checkpoint, embedding_dim=512)
    retriever = GaussianRetriever(checkpoint, embedding_dim=16)
    retriever.add_documents(DOCS)
    retriever.save_index(tmp_path / "index")
    other = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base, output_dim=8), device="cpu")
    other_path = save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(IndexLoadError, match="dimension 16"):
        GaussianRetriever(other_path).load_index(tmp_path / "index")


@pytest.mark.slow
def test_untrained_default_retrieves_paraphrases_like_minilm():
    from ragcun import GaussianRetriever

    retriever = GaussianRetriever()
    retriever.add_documents(DOCS)
    assert retriever.retrieve("which hormone reduces blood sugar?", top_k=1)[0][0] == DOCS[1]
    assert retriever.retrieve("stars and space observation", top_k=1)[0][0] == DOCS[2]
