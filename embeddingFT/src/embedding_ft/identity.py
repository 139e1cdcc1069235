"""What an index, a cache or an adapter remembers of a model: its name, a fingerprint of its weights, its back end.

A module of its own so that the index, the corpus encoder and the adapter can all read it
without importing each other.
"""

from __future__ import annotations

import hashlib

from embedding_ft.mining import model_fingerprint


def model_identity(model: str, backend: str, file_name: str | None) -> dict:
    """What an index remembers of its model: the name given, a fingerprint of its weights, the back end."""
    from embshared.models import resolve_model

    return {
        "model": model,
        "model_fingerprint": hashlib.sha256(model_fingerprint(resolve_model(model)).encode()).hexdigest()[:16],
        "backend": backend,
        "file_name": file_name,
    }
