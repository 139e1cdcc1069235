"""embshared.fusion_choice: choosing the hybrid fusion on dev queries, fuse(), and fusion.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embshared.errors import UserError
from embshared.fusion import convex_fusion, rrf_score_fn
from embshared.fusion_choice import (
    FusionSetting,
    bm25_matrices,
    bm25_variants,
    candidates,
    choose_fusion,
    dense_weights,
    fuse,
)

DOC_IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]
DEFAULT_VARIANT = (1.5, 0.75, True)

# Query "a": the relevant d0 is (barely) first for the dense model and unmatched by BM25, whose one
# strong match is the wrong d1. Only the dense ranking alone (w = 1.0) puts d0 first, in either method.
DENSE_A = [0.51, 0.50, 0.49, 0.0, 0.0, 0.0]
BM25_A = [0.0, 10.0, 1.0, 0.0, 0.0, 0.0]
# Query "b": the relevant d2 is second for both rankers, each misled by another wrong document
# with a score far above the rest (d1 by BM25, d3 by dense); d2 is the consensus, which RRF finds.
DENSE_B = [0.0, 0.0, 0.02, 1.0, 0.01, 0.0]
BM25_B = [0.0, 0.0, 1.01, 1.0, 1.005, 0.0]
# Query "c": the relevant d0 is first for the dense model (but only just) and second for BM25, whose
# strong match is the wrong d1 (third for dense): convex needs w near 1, RRF at 0.5 is right.
DENSE_C = [0.51, 0.49, 0.50, 0.0, 0.0, 0.0]
BM25_C = [1.0, 10.0, 0.0, 0.0, 0.0, 0.0]


def matrix(*rows):
    return np.array(rows, dtype=np.float32)


def test_the_grids():
    assert len(bm25_variants()) == 12 and DEFAULT_VARIANT in bm25_variants()
    assert {s for _, _, s in bm25_variants()} == {True, False}
    assert dense_weights() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    settings = candidates(bm25_variants())
    assert len(settings) == 2 * 11 * 12 and settings[0] == FusionSetting.default()
    assert len({(s.method, s.dense_weight, s.bm25_variant) for s in settings}) == len(settings)


def test_choose_fusion_picks_dense_alone_when_only_that_ranks_the_relevant_first():
    dense, bm25 = matrix(DENSE_A), matrix(BM25_A)
    other = (0.9, 0.4, False)
    chosen = choose_fusion(dense, {DEFAULT_VARIANT: bm25, other: bm25}, ["a"], DOC_IDS, {"a": {"d0": 1}})
    # convex and RRF both reduce to the dense ranking at w = 1.0: the tie goes to convex, default BM25
    assert (chosen.method, chosen.dense_weight, chosen.bm25_variant) == ("convex", 1.0, DEFAULT_VARIANT)
    assert chosen.score == pytest.approx(1.0) and chosen.default_score < chosen.score
    assert chosen.metric == "ndcg@10" and chosen.chosen_on == "dev: 1 queries"


def test_choose_fusion_picks_rrf_when_no_convex_weight_ranks_both_queries():
    dense, bm25 = matrix(DENSE_B, DENSE_C), matrix(BM25_B, BM25_C)
    qrels = {"b": {"d2": 1}, "c": {"d0": 1}}
    chosen = choose_fusion(dense, {DEFAULT_VARIANT: bm25}, ["b", "c"], DOC_IDS, qrels, chosen_on="dev: 2 queries")
    assert chosen.method == "rrf" and chosen.score == pytest.approx(1.0) and chosen.default_score < 1.0
    assert chosen.dense_weight == 0.5  # RRF ranks both right over a range of weights: the nearest 0.5
    for w in dense_weights():  # and really no convex weight does
        fused = convex_fusion(dense, bm25, w)
        assert not (fused[0].argmax() == 2 and fused[1].argmax() == 0), w
    assert chosen.chosen_on == "dev: 2 queries"


def test_ties_go_to_the_default():
    scores = matrix([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])  # both rankers agree: every setting ranks alike
    variants = {v: scores for v in bm25_variants()}
    chosen = choose_fusion(scores, variants, ["q"], DOC_IDS, {"q": {"d0": 1}}, metric="mrr@10")
    assert chosen.same_fusion(FusionSetting.default()) and chosen.score == chosen.default_score == 1.0
    with pytest.raises(ValueError, match="default BM25 variant"):
        choose_fusion(scores, {(0.9, 0.4, True): scores}, ["q"], DOC_IDS, {"q": {"d0": 1}})


def test_fuse_convex_default_is_convex_fusion_and_rrf_is_rrf_score_fn():
    rng = np.random.default_rng(0)
    dense, bm25 = rng.normal(size=(3, 8)), np.maximum(rng.normal(size=(3, 8)), 0.0)
    assert np.array_equal(fuse(FusionSetting.default(), dense, bm25), convex_fusion(dense, bm25, 0.5))
    rrf = FusionSetting(method="rrf", dense_weight=0.3, rrf_k=10)
    expected = rrf_score_fn([lambda _: dense, lambda _: bm25], k=10, floors=[None, 0.0], weights=[0.3, 0.7])(["x"])
    assert np.allclose(fuse(rrf, dense, bm25), expected)
    assert (fuse(rrf, dense, bm25)[bm25 == 0] <= 0.3 / 11 + 1e-9).all()  # no BM25 share without a shared term


def test_bm25_matrices_one_per_variant():
    texts = ["running dogs run", "a cat sleeps", "dogs and cats"]
    out = bm25_matrices(["x", "y", "z"], texts, ["dog running", "cats"], [(1.2, 0.75, True), (1.2, 0.75, False)])
    assert set(out) == {(1.2, 0.75, True), (1.2, 0.75, False)} and out[(1.2, 0.75, True)].shape == (2, 3)
    assert out[(1.2, 0.75, True)][1, 1] > 0 and out[(1.2, 0.75, False)][1, 1] == 0  # "cat" ~ "cats" only if stemmed


def test_save_load_round_trip(tmp_path):
    assert FusionSetting.load(tmp_path) is None
    setting = FusionSetting("rrf", 0.7, 30, 0.9, 0.4, False, "dev: 80 queries", "ndcg@10", 0.71, 0.69)
    path = setting.save(tmp_path / "model")
    assert path == tmp_path / "model" / "fusion.json" and FusionSetting.load(tmp_path / "model") == setting
    assert FusionSetting.from_dict({"method": "convex", "dense_weight": 0.8}) == FusionSetting(dense_weight=0.8)
    assert "chosen on dev: 80 queries, ndcg@10 0.7100 vs 0.6900" in setting.describe()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"method": "linear"}', "method"),
        ('{"method": "convex", "dense_weight": 1.5}', "dense_weight"),
        ('{"bm25_stem": "yes"}', "bm25_stem"),
        ('{"rrf_k": 0}', "rrf_k"),
        ("[1, 2]", "JSON object"),
        ("{not json", "Expecting"),
    ],
)
def test_a_malformed_fusion_json_is_one_user_error_naming_file_and_field(tmp_path, content, field):
    (tmp_path / "fusion.json").write_text(content)
    with pytest.raises(UserError) as info:
        FusionSetting.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "fusion.json") in message and field in message and "\n" not in message
    json.dumps(FusionSetting.default().to_dict())  # the default itself serialises
