"""The model: head initialisation and calibration, freezing, encoding order, the base cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embshared.config import ConfigError, load_config
from ragcun.model import GaussianEmbeddingGemma, ModelConfig, ProjectionHead

TEXTS = [
    "the volcano erupted with lava",
    "insulin regulates glucose",
    "a telescope saw a distant galaxy",
    "orchestra plays a symphony",
    "the glacier is melting",
    "bacteria resist the antibiotic",
]


def test_head_starts_as_a_scaled_isometry_so_l2_ranks_like_cosine():
    head = ProjectionHead(16, 16)
    w = head.linear.weight.detach()
    assert torch.allclose(w.T @ w, 16 * torch.eye(16), atol=1e-4)
    x = torch.nn.functional.normalize(torch.randn(50, 16), dim=1)
    z = head(x).detach()
    cos = x @ x.T
    dist = torch.cdist(z, z)
    # for unit vectors: |z_i - z_j|^2 = 16 * (2 - 2 cos_ij)
    assert torch.allclose(dist.square(), 16 * (2 - 2 * cos), atol=1e-3)


def test_calibration_centres_and_scales_without_changing_rankings():
    head = ProjectionHead(16, 16)
    x = torch.nn.functional.normalize(torch.randn(200, 16) + 2.0, dim=1)
    before = torch.cdist(head(x), head(x)).detach()
    info = head.calibrate(x)
    z = head(x).detach()
    assert info["samples"] == 200
    assert z.mean(0).abs().max() < 1e-4
    assert float(z.var(dim=0).mean()) == pytest.approx(1.0, rel=1e-4)
    # every distance shrinks by the same factor: rankings are unchanged
    off = ~torch.eye(200, dtype=torch.bool)  # cdist is imprecise at 0
    torch.testing.assert_close(torch.cdist(z, z)[off], info["scale"] * before[off], rtol=1e-4, atol=1e-3)


def test_residual_mlp_head_starts_equal_to_its_linear_part():
    head = ProjectionHead(8, 12, hidden_dim=24)
    x = torch.randn(5, 8)
    assert torch.allclose(head(x), head.linear(x))
    assert head(x).shape == (5, 12)


def test_output_dim_must_be_positive():
    with pytest.raises(ValueError, match="output_dim"):
        ModelConfig(output_dim=0).validate()
    with pytest.raises(ConfigError, match="output_dim must be positive"):
        load_config(ModelConfig, overrides=["output_dim=-3"])


def test_freeze_early_layers_freezes_embeddings_and_first_layers(tiny_base):
    model = GaussianEmbeddingGemma.from_config(
        ModelConfig(base_model=tiny_base, freeze_early_layers=True, num_frozen_layers=1), device="cpu"
    )
    trainable = {n for n, p in model.base.named_parameters() if p.requires_grad}
    assert not any("embeddings" in n for n in trainable)
    assert not any("layer.0." in n for n in trainable)
    assert any("layer.1." in n for n in trainable)
    assert all(p.requires_grad for p in model.head.parameters())


def test_model_defaults_resolve_to_base_dimension(tiny_model):
    assert tiny_model.base_dim == 32
    assert tiny_model.output_dim == 32
    assert tiny_model.config.head_hidden_dim == 0
    assert tiny_model.encode(TEXTS[:2]).shape == (2, 32)


def test_encode_keeps_input_order_and_matches_one_by_one(tiny_model):
    together = tiny_model.encode(TEXTS, batch_size=4)
    alone = np.concatenate([tiny_model.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    tiny_model.train()  # encode switches to eval mode and back
    tiny_model.encode(TEXTS[:1])
    assert tiny_model.training


def test_base_cache_needs_a_frozen_base_and_encodes_each_text_once(tiny_base, tiny_model):
    with pytest.raises(ValueError, match="frozen base"):
        tiny_model.enable_base_cache()
    frozen = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base, freeze_base=True), device="cpu")
    frozen.enable_base_cache()
    first = frozen.encode(TEXTS + TEXTS[:2])
    assert len(frozen.base_cache) == len(TEXTS)
    np.testing.assert_allclose(frozen.encode(TEXTS), first[: len(TEXTS)], atol=1e-6)
    frozen.train()
    assert not frozen.base.training  # a frozen base never runs dropout
