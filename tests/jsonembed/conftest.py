"""jsonembed fixtures: a tiny config, a small real sample, and one tiny model trained per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedding_model.config import JsonEmbedConfig, build_config
from embedding_model.model_file import save_model
from embedding_model.records import RecordSet, load_records
from embedding_model.training import train

#: small enough to train in seconds on two busy cores
TINY = [
    "max_chars=160",
    "char_dim=16",
    "conv_channels=64",
    "kernel_sizes=[3, 5]",
    "projection_dim=64",
    "epochs=6",
    "batch_size=16",
    "lr=0.005",
    "log_every=5",
    "val_fraction=0.1",
    "teacher=null",  # the self-supervised model; tests/jsonembed/test_distill.py trains with a tiny teacher
]

SAMPLE_SIZE = 240


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One CPU thread per test module: on two shared cores, two threads wait on each other (4x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(*overrides: str) -> JsonEmbedConfig:
    """The tiny test config with extra ``key=value`` overrides."""
    return build_config(None, [*TINY, *overrides])


@pytest.fixture(scope="session")
def tiny_cfg():
    """``tiny_cfg(*overrides)``: the tiny test config with extra ``key=value`` overrides."""
    return tiny_config


@pytest.fixture(scope="session")
def sample_jsonl(sample_scifact, tmp_path_factory) -> Path:
    """The first SAMPLE_SIZE SciFact sample abstracts as JSONL records ({_id, title, text, metadata})."""
    path = tmp_path_factory.mktemp("jsonembed_data") / "records.jsonl"
    with open(sample_scifact / "corpus.jsonl", encoding="utf-8") as source:
        lines = [line for line, _ in zip(source, range(SAMPLE_SIZE))]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sample_records(sample_jsonl) -> RecordSet:
    return load_records(sample_jsonl, ["_id"], id_field="_id")


@pytest.fixture(scope="session")
def tiny_model(sample_records, tmp_path_factory):
    """(embedder, model file) trained once on the sample with the tiny config."""
    cfg = tiny_config()
    embedder, result = train(cfg, sample_records.segments, show_progress=False)
    path = tmp_path_factory.mktemp("jsonembed_model") / "tiny.pt"
    save_model(path, embedder.encoder, embedder.vocab, cfg, {"final_validation": result.validation[-1]})
    return embedder, path, result


def _write_jsonl(path: Path, rows: list) -> Path:
    """Write ``rows`` (dicts, or raw strings written as they are) one per line."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def write_jsonl():
    """``write_jsonl(path, rows)``: rows are dicts or raw lines (for broken input)."""
    return _write_jsonl
