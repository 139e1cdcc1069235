"""Metrics against hand-computed values, and against sentence-transformers' evaluator."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from embshared.evaluate import dense_score_fn, evaluate_retrieval, format_table, rank_corpus, top_k
from embshared.metrics import (
    accuracy_at_k,
    average_precision_at_k,
    compute_metrics,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    per_query,
    precision_at_k,
    recall_at_k,
)

RANKED = ["d3", "d1", "d5", "d2", "d4"]
REL = {"d1": 1, "d2": 1, "d9": 1}  # d9 is relevant but never retrieved


def test_hand_computed_binary_metrics():
    assert accuracy_at_k(RANKED, REL, 1) == 0.0
    assert accuracy_at_k(RANKED, REL, 2) == 1.0
    assert precision_at_k(RANKED, REL, 5) == pytest.approx(0.4)
    assert recall_at_k(RANKED, REL, 5) == pytest.approx(2 / 3)
    assert mrr_at_k(RANKED, REL, 5) == pytest.approx(0.5)
    assert mrr_at_k(RANKED, REL, 1) == 0.0
    expected_ndcg = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k(RANKED, REL, 5) == pytest.approx(expected_ndcg)
    assert ndcg_at_k(RANKED, REL, 5) == pytest.approx(0.498189, abs=1e-6)
    assert average_precision_at_k(RANKED, REL, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_graded_ndcg_uses_linear_gain():
    # ranked d3 (grade 1) then d1 (grade 2): DCG = 1 + 2/log2(3); ideal = 2 + 1/log2(3)
    value = ndcg_at_k(["d3", "d1"], {"d1": 2, "d3": 1}, 10)
    assert value == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at_k(["d1", "d3"], {"d1": 2, "d3": 1}, 10) == pytest.approx(1.0)


def test_zero_grade_is_not_relevant():
    assert recall_at_k(["a"], {"a": 0, "b": 1}, 1) == 0.0
    assert accuracy_at_k(["a"], {"a": 0}, 1) == 0.0


def test_compute_metrics_averages_and_skips_queries_without_relevant_docs():
    run = {"q1": ["a", "b"], "q2": ["c", "d"]}
    qrels = {"q1": {"a": 1}, "q2": {"d": 1}, "q3": {"x": 0}}
    result = compute_metrics(run, qrels, ["mrr@10", "accuracy@1"])
    assert result == {"mrr@10": pytest.approx(0.75), "accuracy@1": pytest.approx(0.5)}
    assert per_query(run, qrels, "mrr@10") == {"q1": 1.0, "q2": 0.5}


def test_parse_metric_rejects_unknown():
    assert parse_metric("NDCG@10") == ("ndcg", 10)
    with pytest.raises(ValueError, match="unknown metric 'f1@10'"):
        parse_metric("f1@10")


def test_top_k_breaks_ties_by_ascending_id_including_at_the_boundary():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    ids = ["e", "a", "d", "b", "c"]
    assert top_k(scores, ids, 2) == [["a", "b"]]  # b, d, e tie at 0.5: b wins
    assert top_k(scores, ids, 10) == [["a", "b", "d", "e", "c"]]


def test_evaluate_retrieval_with_a_keyword_scorer():
    corpus = {"d1": "apples and pears", "d2": "cars and trucks", "d3": "red apples"}
    queries = {"q1": "apples", "q2": "trucks"}
    qrels = {"q1": {"d3": 1}, "q2": {"d2": 1}}

    def keyword_scores(texts):
        docs = list(corpus.values())
        # count of query words in the doc, minus a tiny length penalty so "red apples" wins
        return np.array([[sum(w in d.split() for w in t.split()) - 0.01 * len(d.split()) for d in docs] for t in texts])

    run = rank_corpus(queries, list(corpus), keyword_scores, k=3)
    assert run == {"q1": ["d3", "d1", "d2"], "q2": ["d2", "d3", "d1"]}
    result = evaluate_retrieval(queries, corpus, qrels, keyword_scores, ["accuracy@1", "ndcg@10"])
    assert result == {"accuracy@1": 1.0, "ndcg@10": 1.0}


def test_dense_score_fn_l2_is_negative_distance():
    docs = np.array([[0.0, 0.0], [3.0, 4.0]])
    score = dense_score_fn(lambda texts: np.array([[0.0, 0.0]]), docs, metric="l2")
    assert np.allclose(score(["q"]), [[0.0, -5.0]])


def test_format_table():
    table = format_table({"bm25": {"ndcg@10": 0.5}, "base": {"ndcg@10": 0.61234}}, ["ndcg@10"])
    assert table.splitlines()[-1] == "| base | 0.6123 |"


def test_agrees_with_sentence_transformers_evaluator_on_a_fixed_ranking():
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rng = random.Random(0)
    corpus = {f"d{i:03d}": f"doc {i}" for i in range(120)}
    queries = {f"q{i}": f"query {i}" for i in range(30)}
    qrels = {q: set(rng.sample(sorted(corpus), rng.randint(1, 4))) for q in queries}
    evaluator = InformationRetrievalEvaluator(
        queries,
        corpus,
        qrels,
        accuracy_at_k=[1, 3, 5, 10],
        precision_recall_at_k=[1, 3, 5, 10],
        mrr_at_k=[10],
        ndcg_at_k=[10],
        map_at_k=[100],
        show_progress_bar=False,
    )
    results, run = [], {}
    for q in evaluator.queries_ids:
        scores = {d: rng.random() for d in corpus}
        hits = [{"corpus_id": d, "score": s} for d, s in scores.items()]
        results.append(hits)
        run[q] = [h["corpus_id"] for h in sorted(hits, key=lambda h: (-h["score"], h["corpus_id"]))]
    theirs = evaluator.compute_metrics(results)
    ours = compute_metrics(
        run,
        {q: dict.fromkeys(docs, 1) for q, docs in qrels.items()},
        [
            "accuracy@1",
            "accuracy@3",
            "accuracy@5",
            "accuracy@10",
            "precision@1",
            "precision@5",
            "recall@3",
            "recall@10",
            "mrr@10",
            "ndcg@10",
            "map@100",
        ],
    )
    pairs = {
        "accuracy@1": theirs["accuracy@k"][1],
        "accuracy@3": theirs["accuracy@k"][3],
        "accuracy@5": theirs["accuracy@k"][5],
        "accuracy@10": theirs["accuracy@k"][10],
        "precision@1": theirs["precision@k"][1],
        "precision@5": theirs["precision@k"][5],
        "recall@3": theirs["recall@k"][3],
        "recall@10": theirs["recall@k"][10],
        "mrr@10": theirs["mrr@k"][10],
        "ndcg@10": theirs["ndcg@k"][10],
        "map@100": theirs["map@k"][100],
    }
    assert any(v > 0 for v in pairs.values())
    for name, value in pairs.items():
        assert ours[name] == pytest.approx(float(value), abs=1e-6), name


def test_similarity_correlations():
    from embshared.metrics import similarity_correlations

    # Spearman is rank-based: a monotone transform is a perfect 1; reversed order is -1.
    assert similarity_correlations([0.1, 0.2, 0.9], [1, 2, 5])["spearman"] == pytest.approx(1.0)
    assert similarity_correlations([0.1, 0.2, 0.9], [5, 2, 1])["spearman"] == pytest.approx(-1.0)
    # Pearson of (1, 2, 3) with (1, 2, 4): hand-computed 0.981981
    assert similarity_correlations([1, 2, 3], [1, 2, 4])["pearson"] == pytest.approx(0.981981, abs=1e-6)
