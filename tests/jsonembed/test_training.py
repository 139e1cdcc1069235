"""Training: the loss falls, runs are deterministic, the schedule and the validation split behave."""

from __future__ import annotations

import random

import pytest
import torch

from embedding_model.augment import Augmenter
from embedding_model.losses import nt_xent_loss
from embedding_model.model import build_encoder
from embedding_model.training import encode_views, split_validation, train, warmup_linear_decay


def fixed_view_loss(embedder, segments, cfg) -> float:
    """NT-Xent on the same 64 pairs of views, with the encoder in eval mode."""
    augmenter = Augmenter.from_config(cfg)
    rng = random.Random(123)
    a = [augmenter.view(s, rng) for s in segments[:64]]
    b = [augmenter.view(s, rng) for s in segments[:64]]
    with torch.no_grad():
        return nt_xent_loss(embedder.embed_tensor(a), embedder.embed_tensor(b), cfg.temperature).item()


def test_training_lowers_the_loss_and_beats_an_untrained_model(tiny_model, sample_records, tiny_cfg):
    embedder, _, result = tiny_model
    cfg = tiny_cfg()
    untrained = type(embedder)(build_encoder(cfg, len(embedder.vocab)).eval(), embedder.vocab, cfg)
    before = fixed_view_loss(untrained, sample_records.segments, cfg)
    after = fixed_view_loss(embedder, sample_records.segments, cfg)
    assert after < before - 0.5  # chance level is log(127) = 4.84
    first, last = result.validation[0], result.validation[-1]
    assert last["mean_loss"] < first["mean_loss"]
    assert last["accuracy@1"] > 0.3  # a noisy query-shaped view finds its own held-out record among 24 (chance 0.04)
    assert [h["step"] for h in result.history][:2] == [5, 10]  # the loss is logged every log_every steps
    assert result.records_seen == result.steps * cfg.batch_size


def test_training_is_deterministic_under_a_seed(sample_records, tiny_cfg):
    cfg = tiny_cfg("epochs=1", "val_fraction=0")
    segments = sample_records.segments[:96]
    first, _ = train(cfg, segments, show_progress=False)
    second, _ = train(cfg, segments, show_progress=False)
    other, _ = train(tiny_cfg("epochs=1", "val_fraction=0", "seed=7"), segments, show_progress=False)
    for (name, p), q in zip(first.encoder.state_dict().items(), second.encoder.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(first.encoder.projection.weight, other.encoder.projection.weight)


def test_encode_views_restores_the_input_order(tiny_model):
    embedder, _, _ = tiny_model
    texts = ["a much longer text " * 5, "short", "medium length text", "x"]
    with torch.no_grad():
        chunked = encode_views(embedder.encoder, embedder.vocab, texts, 256, chunks=2)
        single = torch.cat([embedder.embed_tensor([t]) for t in texts])
    assert torch.allclose(chunked, single, atol=1e-5)


def test_warmup_then_linear_decay():
    factor = warmup_linear_decay(total_steps=100, warmup_ratio=0.1)
    assert [factor(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(100) == 0.0


def test_split_validation():
    train_idx, val_idx = split_validation(100, 0.1, 1000, seed=0)
    assert len(val_idx) == 10 and len(train_idx) == 90
    assert sorted(train_idx + val_idx) == list(range(100))
    assert split_validation(100, 0.1, 1000, seed=0) == (train_idx, val_idx)
    assert len(split_validation(100, 0.5, 20, seed=0)[1]) == 20  # capped
    assert split_validation(10, 0.1, 1000, seed=0) == (list(range(10)), [])  # one record is too few


def test_train_result_summary_rounds_and_keeps_the_last_validation():
    from embedding_model.training import TrainResult

    r = TrainResult(validation=[{"acc": 0.1}, {"acc": 0.4}], train_records=90, val_records=10, steps=7,
                    records_seen=300, seconds=12.345, train_seconds=10.0)  # fmt: skip
    s = r.summary()
    assert s["seconds"] == 12.3 and s["train_records_per_second"] == 30.0
    assert s["final_validation"] == {"acc": 0.4} and (s["train_records"], s["steps"]) == (90, 7)
