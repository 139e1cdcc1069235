"""Isotropic Gaussian embeddings (LeJEPA SIGReg) and a Euclidean GaussianRetriever.

Public API (imported lazily, so ``import ragcun`` does not load torch)::

    from ragcun import GaussianRetriever, GaussianEmbeddingGemma, load_model
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GaussianRetriever": "ragcun.retriever",
    "GaussianEmbeddingGemma": "ragcun.model",
    "ModelConfig": "ragcun.model",
    "load_model": "ragcun.checkpoint",
    "save_checkpoint": "ragcun.checkpoint",
    "TrainConfig": "ragcun.training",
    "train": "ragcun.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragcun' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
