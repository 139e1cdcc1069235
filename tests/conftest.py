"""Workspace-wide test fixtures.

The hub is never contacted (HF_HUB_OFFLINE), the packaged MiniLM is loaded once per session,
and the public datasets beside the checkout are optional: tests that need them skip cleanly.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

from embshared.runtime import repo_root, shared_data_dir

REPO = repo_root()
SAMPLE_SCIFACT = REPO / "data" / "samples" / "scifact"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_scifact() -> Path:
    """The bundled SciFact sample (BEIR layout, always present)."""
    return SAMPLE_SCIFACT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it skip when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def minilm_session():
    """The packaged all-MiniLM-L6-v2, loaded once (import + load costs ~7 s)."""
    from embshared.models import load_sentence_transformer

    return load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


@pytest.fixture
def minilm(minilm_session):
    """A private copy of the packaged MiniLM for tests that train or modify it."""
    return copy.deepcopy(minilm_session)


def save_tiny_base(folder: Path, seed: int = 0, max_seq_length: int = 64, dropout: float = 0.1) -> str:
    """A 2-layer, 32-dim BERT with MiniLM's tokenizer saved as a sentence-transformers folder
    (Transformer + mean Pooling + Normalize, like the real base); random weights from ``seed``.
    Returns the folder of the sentence-transformers model."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embshared.models import resolve_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = Transformer(str(folder / "bert"), max_seq_length=max_seq_length)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="session")
def tiny_base_factory():
    """:func:`save_tiny_base`: a tiny random sentence-transformers model, for tests of model plumbing."""
    return save_tiny_base
