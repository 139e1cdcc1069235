"""Model files: save -> load gives identical embeddings; other programs' files are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from embedding_model.embedder import JsonEmbedder
from embedding_model.model_file import ModelFileError, load_model, save_model


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_save_load_identical_embeddings(tiny_model, sample_records, tmp_path, name):
    embedder, _, _ = tiny_model
    path = save_model(tmp_path / name, embedder.encoder, embedder.vocab, embedder.cfg, {"note": "x"})
    loaded = JsonEmbedder.load(path, device="cpu")
    assert loaded.vocab == embedder.vocab
    assert loaded.cfg == embedder.cfg
    assert loaded.info == {"note": "x"}
    segments = sample_records.segments[:20]
    expected = embedder.embed_segments(segments)
    assert np.array_equal(loaded.embed_segments(segments), expected)
    assert not loaded.encoder.training


def test_pt_file_is_tensors_and_data_only(tiny_model, tmp_path):
    embedder, _, _ = tiny_model
    path = save_model(tmp_path / "m.pt", embedder.encoder, embedder.vocab, embedder.cfg)
    data = torch.load(path, weights_only=True)  # no pickled code needed
    assert data["format"] == "jsonembed-char-cnn"
    assert all(isinstance(t, torch.Tensor) for t in data["state_dict"].values())
    assert list(tmp_path.iterdir()) == [path]  # written atomically: no temporary file left


def test_other_files_are_refused(tiny_model, tmp_path):
    embedder, _, _ = tiny_model
    plain_state = tmp_path / "other.pt"
    torch.save(embedder.encoder.state_dict(), plain_state)  # a bare state dict from another program
    whole_module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), whole_module)  # a pickled module: must not be unpickled
    foreign_safetensors = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, foreign_safetensors, metadata={"format": "pt"})
    text = tmp_path / "notes.pt"
    text.write_text("hello, this is not a model\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    cases = {
        plain_state: "not a jsonembed model file",
        whole_module: "not a jsonembed model file",
        foreign_safetensors: r"not a jsonembed model file \(format 'pt'\)",
        text: "not a jsonembed model file",
        empty: "not a jsonembed model file",
        tmp_path / "missing.pt": "no such model file",
    }
    for path, message in cases.items():
        with pytest.raises(ModelFileError, match=message) as info:
            load_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
