"""Small stand-ins for the expensive parts of gapfill, so the fast suite runs in seconds.

- :class:`KnnGraph`: a fuzzy k-NN graph built with scikit-learn (UMAP-like memberships),
  umap-learn's published ``a, b`` for spread 1, min_dist 0.1 and the graph's spectral layout in
  place of umap-learn's optimised one, so most fast tests never import umap-learn.
- :func:`hash_embed`: a deterministic bag-of-words embedder (words hashed to 32 dims).
- :func:`tiny_lm`: a 2-layer, 32-wide random Llama with the packaged MiniLM's tokenizer.
"""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.neighbors import kneighbors_graph

HASH_DIM = 32


class KnnGraph:
    """Fuzzy k-NN graph: memberships exp(-(d - rho) / sigma) per row, symmetrised by fuzzy union."""

    def graph(self, x: np.ndarray, n_neighbors: int, metric: str, seed: int) -> sp.coo_matrix:
        a = kneighbors_graph(x, n_neighbors - 1, mode="distance", metric=metric).tocsr()
        for r in range(a.shape[0]):
            d = a.data[a.indptr[r] : a.indptr[r + 1]]
            rho, sigma = d.min(), max(d.mean() - d.min(), 1e-6)
            a.data[a.indptr[r] : a.indptr[r + 1]] = np.exp(-(d - rho) / sigma)
        return (a + a.T - a.multiply(a.T)).tocoo()

    def ab(self, spread: float, min_dist: float) -> tuple[float, float]:
        assert (spread, min_dist) == (1.0, 0.1), "KnnGraph only knows a, b for spread=1, min_dist=0.1"
        return 1.5769434602697652, 0.8950608778515733

    def layout(self, x, n_neighbors, min_dist, spread, metric, n_components, seed):
        """Stands in for umap-learn's fit: this graph and its spectral layout (no optimisation)."""
        from gapfill.parametric_umap import initial_layout

        graph = self.graph(x, n_neighbors, metric, seed)
        return graph, initial_layout("spectral", x, graph, n_components, seed)


def hash_embed(texts: list[str]) -> np.ndarray:
    """(n, 32) L2-normalised hashed bag-of-words embeddings."""
    out = np.zeros((len(texts), HASH_DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            h = zlib.crc32(word.strip(".,!?").encode())
            out[i, h % HASH_DIM] += 1.0 if (h >> 8) & 1 else -1.0
        if not out[i].any():
            out[i, 0] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def tiny_lm():
    """A random 2-layer Llama (hidden 32) with the packaged MiniLM's WordPiece tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from embshared.models import packaged_model_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="session")
def tiny_lm_session():
    return tiny_lm()


@pytest.fixture
def knn_graph() -> KnnGraph:
    return KnnGraph()


def two_clusters(n: int = 150, dim: int = 16, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated clusters of unit vectors: (2n, dim) points and (2n,) labels."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, dim), dtype=np.float32)
    centres[0, 0], centres[1, 1] = 1.0, 1.0
    x = np.concatenate([c + noise * rng.standard_normal((n, dim)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.repeat([0, 1], n)


def wait_for_job(client, timeout: float = 120.0) -> dict:
    """Poll the service's status until its job is no longer running; returns the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/api/advanced-gap-filling/status").json()["job"]
        if job is None or job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError("job still running after timeout")


@pytest.fixture
def embed_fn():
    return hash_embed


@pytest.fixture
def clusters():
    return two_clusters()


@pytest.fixture
def wait_job():
    return wait_for_job


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The networks here are tiny: one thread is faster, and much faster on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
