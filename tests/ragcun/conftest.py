"""ragcun fixtures: a tiny randomly initialised sentence encoder (fast training tests) and toy data."""

from __future__ import annotations

import json
import random

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run on one intra-op thread: the tensors here are tiny, and on the 2 shared cores two
    threads made each small op ~7x slower (synchronisation under contention)."""
    from embshared.cli import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_base_factory) -> str:
    """A 2-layer, 32-dim BERT with MiniLM's tokenizer, saved as a sentence-transformers model
    (Transformer + mean Pooling + Normalize, like the real base). Random weights, fixed seed."""
    return tiny_base_factory(tmp_path_factory.mktemp("tiny_base"), seed=0)


@pytest.fixture
def tiny_model(tiny_base):
    """A fresh GaussianEmbeddingGemma on the tiny base (linear head, 32 -> 32)."""
    from ragcun.model import GaussianEmbeddingGemma, ModelConfig

    return GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base), device="cpu")


TOPICS = [
    ("volcano", "lava", "eruption"),
    ("insulin", "diabetes", "glucose"),
    ("galaxy", "telescope", "nebula"),
    ("violin", "orchestra", "symphony"),
    ("glacier", "ice", "melting"),
    ("bacteria", "antibiotic", "resistance"),
    ("mortgage", "interest", "bank"),
    ("tomato", "garden", "harvest"),
]


def toy_triplets(n_per_topic: int = 4, seed: int = 0, negatives: bool = True) -> list[dict[str, str]]:
    """Queries and positives that share topic words; negatives from another topic."""
    rng = random.Random(seed)
    rows = []
    for t, (a, b, c) in enumerate(TOPICS):
        for i in range(n_per_topic):
            other = TOPICS[(t + 1 + rng.randrange(len(TOPICS) - 1)) % len(TOPICS)]
            row = {
                "query": f"what is known about {a} and {b} case {i}",
                "positive": f"a report on {a}, {b} and {c}, number {i}",
            }
            if negatives:
                row["negative"] = f"a report on {other[0]}, {other[1]} and {other[2]}, number {i}"
            rows.append(row)
    return rows


@pytest.fixture
def toy_data(tmp_path):
    """train.json and val.json with toy triplets."""
    train = tmp_path / "train.json"
    val = tmp_path / "val.json"
    train.write_text(json.dumps(toy_triplets(4, seed=0)), encoding="utf-8")
    val.write_text(json.dumps(toy_triplets(1, seed=1)), encoding="utf-8")
    return train, val
