"""Vocabulary, encoder and loss: values that can be checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from embedding_model.losses import nt_xent_loss
from embedding_model.model import CharCNNEncoder, max_pool, mean_pool
from embedding_model.vocab import MASK_CHAR, PAD, UNK, CharVocab


def test_vocab_pad_unk_min_freq_and_mask():
    vocab = CharVocab.build(["aab", "Ab c"], min_freq=2, lowercase=True)
    assert vocab.chars[0] == "a"  # most frequent first: a x4, b x2, ' ' x1, c x1
    assert set(vocab.chars) == {"a", "b", MASK_CHAR}
    ids = vocab.encode("abzé€", max_chars=10)
    assert ids[:2] == [vocab.encode("a", 1)[0], vocab.encode("B", 1)[0]]  # lower-cased lookup
    assert ids[2:] == [UNK, UNK, UNK]  # unseen characters never fail
    assert vocab.encode("abc", max_chars=2) == ids[:2]
    batch = vocab.batch(["ab", "", "a"], max_chars=8, min_length=5)
    assert batch.shape == (3, 5)
    assert batch[1].tolist() == [PAD] * 5 and batch[0, 2:].tolist() == [PAD] * 3
    assert CharVocab.from_dict(vocab.to_dict()) == vocab
    texts = ["abzé€", "İa", "", "a" * 20]  # unseen, a lower-casing that grows the text, empty, cut
    batch = vocab.batch(texts, max_chars=8)
    assert [batch[i, : len(vocab.encode(t, 8))].tolist() for i, t in enumerate(texts)] == [
        vocab.encode(t, 8) for t in texts
    ]


def test_pooling_by_hand():
    features = torch.tensor([[[1.0, -2.0, 5.0], [-1.0, -3.0, -4.0]]])  # (1, 2 channels, 3 positions)
    mask = torch.tensor([[[True, True, False]]])  # the last position is padding
    assert max_pool(features, mask).tolist() == [[1.0, 0.0]]  # ReLU(max over real positions)
    assert mean_pool(features, mask).tolist() == [[0.5, 0.0]]  # mean of ReLU over real positions
    empty = torch.zeros(1, 1, 3, dtype=torch.bool)
    assert max_pool(features, empty).tolist() == [[0.0, 0.0]]


def test_encoder_shape_norm_and_padding_invariance():
    torch.manual_seed(0)
    encoder = CharCNNEncoder(vocab_size=20, char_dim=8, conv_channels=16, kernel_sizes=(3, 4), projection_dim=12)
    encoder.eval()
    short = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, PAD, PAD, PAD, PAD], [9, 9, 9, 9, 9, 9, 9, 9]])
    with torch.no_grad():
        alone = encoder(short)
        batched = encoder(padded)
    assert batched.shape == (2, 12)
    assert torch.allclose(batched.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(alone[0], batched[0], atol=1e-6)  # padding changes nothing
    assert not torch.allclose(batched[0], batched[1])


def test_nt_xent_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    # view 0 (a0): partner b0 (sim 1); others a1 (0), b1 (0.6)
    l0 = -math.log(math.exp(1 / t) / (math.exp(0 / t) + math.exp(1 / t) + math.exp(0.6 / t)))
    # view 1 (a1): partner b1 (0.8); others a0 (0), b0 (0)
    l1 = -math.log(math.exp(0.8 / t) / (math.exp(0) + math.exp(0) + math.exp(0.8 / t)))
    # view 2 (b0): partner a0 (1); others a1 (0), b1 (0.6)
    l2 = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0) + math.exp(0.6 / t)))
    # view 3 (b1): partner a1 (0.8); others a0 (0.6), b0 (0.6)
    l3 = -math.log(math.exp(0.8 / t) / (math.exp(0.6 / t) + math.exp(0.8 / t) + math.exp(0.6 / t)))
    assert nt_xent_loss(a, b, t).item() == pytest.approx((l0 + l1 + l2 + l3) / 4, rel=1e-6)


def test_nt_xent_prefers_matched_views():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    shuffled = x[torch.randperm(8)]
    assert nt_xent_loss(x, x, 0.1) < 0.01 < nt_xent_loss(x, shuffled, 0.1)
