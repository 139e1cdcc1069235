"""The recipe keys: loss auto, memory plan, merge, pseudo-queries, BM25 negatives, the false-negative
audit, cost estimates, and the bad inputs of training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embedding_ft.audit import audit_negatives
from embedding_ft.config import TrainConfig
from embedding_ft.estimate import CostEstimator, activation_gb, plan_ranking_memory
from embedding_ft.loss_choice import choose_loss
from embedding_ft.losses import auto_loss, build_loss
from embedding_ft.merge import interpolate_state_dicts, merge_with_base
from embedding_ft.mining import add_bm25_negatives
from embedding_ft.pseudo import inverse_cloze_pair, pseudo_pairs, split_sentences
from embedding_ft.train import train
from embshared.config import load_config
from embshared.io import DataError
from embshared.models import ModelNotAvailable


def test_loss_auto_maps_each_format(minilm_session):
    assert auto_loss("similarity", False) == "CoSENTLoss"
    assert auto_loss("pairs", False) == "MultipleNegativesRankingLoss"
    assert auto_loss("triplets", True) == "CachedMultipleNegativesRankingLoss"
    pairs = [{"query": "short claim", "document": "a document " * 200}] * 4
    small = choose_loss(TrainConfig(batch_size=4), "pairs", minilm_session, pairs)
    assert small.spec.name == "MultipleNegativesRankingLoss" and "within max_memory_gb" in small.reason
    big = choose_loss(TrainConfig(batch_size=32), "pairs", minilm_session, pairs)
    assert big.spec.name == "CachedMultipleNegativesRankingLoss" and big.mini_batch_size == 16
    assert big.memory["plain_gb"] > 4.0 >= big.memory["chosen_gb"]
    assert choose_loss(TrainConfig(), "similarity", minilm_session, []).spec.name == "CoSENTLoss"
    explicit = choose_loss(TrainConfig(loss="TripletLoss"), "pairs", minilm_session, pairs)
    assert explicit.spec.name == "TripletLoss" and explicit.reason == "set in the config"


def test_activation_estimate_grows_with_texts_and_tokens(minilm_session):
    config = minilm_session[0].auto_model.config
    one = activation_gb(config, [(32, 256)])
    assert activation_gb(config, [(64, 256)]) == pytest.approx(2 * one)
    assert activation_gb(config, [(32, 512)]) > 2 * one  # attention is quadratic in length
    # the measured MNRL step (32 claims of ~40 tokens + 64 abstracts of 256) peaked at 9.3 GB
    assert 8.0 < 1.0 + activation_gb(config, [(32, 40), (64, 256)]) < 11.0
    rows = [{"anchor": "q", "positive": "word " * 300, "negative": "word " * 300}] * 8
    plan = plan_ranking_memory(minilm_session, rows, 32, 2.0, 16)
    assert plan.cached and plan.mini_batch_size == 4 and plan.chosen_gb <= 2.0


def test_new_keys_reach_the_loss(minilm_session):
    loss = build_loss(
        minilm_session, "CachedMultipleNegativesRankingLoss", TrainConfig(symmetric_loss=True).loss_options()
    )
    assert loss.directions == ("query_to_doc", "doc_to_query")
    gist = build_loss(
        minilm_session,
        "CachedGISTEmbedLoss",
        TrainConfig(gist_margin=0.1).loss_options(guide=minilm_session, mini_batch_size=8),
    )
    assert type(gist).__name__ == "CachedGISTEmbedLoss" and gist.mini_batch_size == 8
    assert gist.margin == 0.1 and gist.margin_strategy == "relative" and gist.guide is minilm_session
    with pytest.raises(ValueError, match="needs a guide"):
        build_loss(minilm_session, "GISTEmbedLoss")


def test_merge_weight_0_is_fine_tuned_and_1_is_base(minilm_session):
    import copy

    tuned = copy.deepcopy(minilm_session)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01)
    base = {k: v.clone() for k, v in minilm_session.state_dict().items()}
    ft = {k: v.clone() for k, v in tuned.state_dict().items()}
    zero = interpolate_state_dicts(ft, base, 0.0)
    one = interpolate_state_dicts(ft, base, 1.0)
    assert all(torch.equal(zero[k], ft[k]) for k in ft) and all(torch.equal(one[k], base[k]) for k in ft)
    half = interpolate_state_dicts(ft, base, 0.25)
    name = next(k for k, v in ft.items() if v.is_floating_point())
    assert torch.allclose(half[name], 0.75 * ft[name] + 0.25 * base[name], atol=1e-6)
    merge_with_base(tuned, base, 1.0)
    assert all(torch.equal(v, base[k]) for k, v in tuned.state_dict().items())
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        interpolate_state_dicts(ft, base, 1.5)


def test_pseudo_queries_by_hand():
    text = "First sentence is here. Second one follows it. Third sentence ends it."
    assert split_sentences(text) == ["First sentence is here.", "Second one follows it.", "Third sentence ends it."]
    import random

    pair = inverse_cloze_pair(text, 3, random.Random(0))
    assert pair["query"] in split_sentences(text) and pair["query"] not in pair["document"]
    assert len(split_sentences(pair["document"])) == 2
    corpus = {
        "a": {"title": "Vitamin D protects the bones of elderly women", "text": "Body a."},
        "b": {"title": "Short", "text": "Body b."},
        "c": {"title": "Aspirin after a heart attack lowers mortality", "text": "Body c."},
    }
    pairs = pseudo_pairs(corpus, "titles", exclude=["c"], max_pairs=10, min_words=4)
    assert pairs == [{"query": "Vitamin D protects the bones of elderly women", "document": "Body a.", "doc_id": "a"}]
    assert pseudo_pairs(corpus, "none") == []
    assert len(pseudo_pairs(corpus, "titles", max_pairs=1, min_words=4)) == 1


def test_bm25_negatives_are_lexical_and_never_positives():
    corpus = [
        "vitamin d bone density elderly",
        "vitamin d bone fracture trial",
        "aspirin heart attack",
        "vitamin d sunlight skin",
        "statins cholesterol",
    ]
    rows = [{"anchor": "vitamin d bone", "positive": corpus[0], "negative_1": corpus[2]}]
    out = add_bm25_negatives(rows, corpus, {"vitamin d bone": {corpus[0]}}, k=2)
    assert list(out[0]) == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert out[0]["negative_2"] == corpus[1] and out[0]["negative_3"] == corpus[3]
    assert add_bm25_negatives(rows, corpus, {}, k=10) == []  # not enough matching documents: dropped


def test_false_negative_audit_flags_hand_made_cases():
    corpus = ["doc alpha beta", "doc gamma", "doc delta", "alpha beta again"]
    vectors = {
        "query alpha": [1.0, 0.0],
        "doc alpha beta": [0.8, 0.6],  # the positive: cosine 0.8
        "alpha beta again": [0.95, 0.3122],  # a negative scoring above the positive
        "doc gamma": [0.0, 1.0],
        "doc delta": [0.1, 0.995],
    }

    def encode(texts):
        v = np.array([vectors[t] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    rows = [
        {
            "anchor": "query alpha",
            "positive": "doc alpha beta",
            "negative_1": "alpha beta again",
            "negative_2": "doc gamma",
        }
    ]
    report = audit_negatives(rows, corpus, encode)
    summary = report.summary()
    assert summary["negatives"] == 2 and summary["above_positive"] == 1 and summary["suspects"] == 1
    example = report.examples[0]
    assert example["negative"] == "alpha beta again" and example["why"] == "above_positive"
    assert example["dense_rank"] == 0 and example["in_bm25_top10"]


def test_cost_estimator_extrapolates_timed_steps():
    est = CostEstimator(total_steps=10, n_evals=2, eval_seconds=5.0, prior_seconds_per_step=2.0, warmup_steps=3)
    assert "20.0 s" not in est.before_training() and est.prior_estimate_seconds == pytest.approx(30.0)
    est.start = est._last = 0.0
    import embedding_ft.estimate as module

    clock = iter([10.0, 12.0, 14.0])
    original = module.time.perf_counter
    module.time.perf_counter = lambda: next(clock)
    try:
        for _ in range(3):
            est.on_step_end(None, None, None)
    finally:
        module.time.perf_counter = original
    assert est.seconds_per_step == pytest.approx(2.0)  # the slow first step is left out
    assert est.estimate_seconds == pytest.approx(14.0 + 2.0 * 7 + 2 * 5.0)
    report = est.report(actual_seconds=40.0)
    assert report["estimate_error"] == pytest.approx(38.0 / 40.0 - 1, abs=1e-3)


def test_non_utf8_training_data_is_one_error_and_nothing_written(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(b'{"query": "a", "document": "b"}\n{"query": "\xff", "document": "d"}\n')
    cfg = load_config(TrainConfig, None, [f"dataset_name={data}", f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(DataError, match=r"pairs.jsonl:2: not UTF-8 text"):
        train(cfg)
    assert not (tmp_path / "out").exists()


def test_folder_that_is_not_a_model_is_one_error_and_nothing_written(tmp_path, tiny_beir):
    fake = tmp_path / "fake_model"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({"architectures": ["Nothing"], "model_type": "not-a-model"}))
    cfg = load_config(
        TrainConfig, None, [f"dataset_name={tiny_beir}", f"model_name={fake}", f"output_dir={tmp_path / 'out'}"]
    )
    with pytest.raises(ModelNotAvailable, match=r"fake_model: not a model sentence-transformers can load"):
        train(cfg)
    assert not (tmp_path / "out").exists()
