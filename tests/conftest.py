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
