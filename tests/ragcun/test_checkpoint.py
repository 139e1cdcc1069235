"""Checkpoints: save -> load gives the same distances; another model shape fails clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragcun.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from ragcun.model import GaussianEmbeddingGemma, ModelConfig

TEXTS = ["lava flows from the volcano", "insulin lowers glucose", "a nebula seen by the telescope", "violins"]


def _perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))


@pytest.mark.parametrize("freeze_base", [False, True])
def test_save_load_gives_the_same_distances(tmp_path, tiny_base, freeze_base):
    torch.manual_seed(0)
    model = GaussianEmbeddingGemma.from_config(
        ModelConfig(base_model=tiny_base, head_hidden_dim=8, freeze_base=freeze_base), device="cpu"
    )
    if freeze_base:
        with torch.no_grad():
            for p in model.head.parameters():
                p.add_(0.05 * torch.randn_like(p))
    else:
        _perturb(model)
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = read_checkpoint(path)
    assert payload["base_weights_included"] is (not freeze_base)
    if freeze_base:  # head only: the base is the unmodified packaged model
        assert all(k.startswith("head.") for k in payload["model_state_dict"])
    loaded = load_model(path, device="cpu")
    a, b = model.encode(TEXTS), loaded.encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(a[:, None] - a[None], axis=-1), np.linalg.norm(b[:, None] - b[None], axis=-1), atol=1e-4
    )
    assert loaded.config.head_hidden_dim == 8


def test_another_output_dim_is_a_clear_error(tmp_path, tiny_base):
    model = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base, output_dim=16), device="cpu")
    path = save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(CheckpointError, match=r"another model shape: output_dim is 16 .* but 24 was asked for"):
        load_model(path, device="cpu", requested=ModelConfig(output_dim=24))


def test_tensor_shape_mismatch_names_the_tensor(tmp_path, tiny_base):
    model = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base, output_dim=16), device="cpu")
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["model_state_dict"]["head.linear.weight"] = torch.zeros(20, 32)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"'head.linear.weight' is \(20, 32\) in the checkpoint but \(16, 32\)"):
        load_model(path, device="cpu")


def test_not_a_checkpoint(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a ragcun checkpoint"):
        read_checkpoint(plain)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ragcun.gaussian_embedding", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(path)
