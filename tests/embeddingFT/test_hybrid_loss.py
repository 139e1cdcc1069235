"""The hybrid-aware ranking loss: logits scale * cos + lambda * z(BM25), cached and uncached, and its BM25 lookup."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from embedding_ft.hybrid_loss import (
    BM25Lookup,
    HybridCachedMultipleNegativesRankingLoss,
    HybridMultipleNegativesRankingLoss,
    with_row_ids,
)
from embedding_ft.losses import LossOptions, build_loss, loss_spec
from embshared.fusion import zscore_rows

# Each query shares its words with its positive (BM25 ranks the positive first); negatives are other topics.
ROWS = [
    {
        "anchor": "volcano lava eruption",
        "positive": "the volcano erupted and lava covered the valley after the eruption",
        "negative_1": "glaciers melt as the ice sheet retreats",
    },
    {
        "anchor": "insulin diabetes treatment",
        "positive": "insulin treatment controls blood sugar in diabetes patients",
        "negative_1": "the orchestra played a violin symphony",
    },
    {
        "anchor": "galaxy telescope observation",
        "positive": "a telescope observation revealed a distant spiral galaxy",
        "negative_1": "banks raised the mortgage interest rate",
    },
    {
        "anchor": "bacteria antibiotic resistance",
        "positive": "bacteria develop antibiotic resistance through mutation",
        "negative_1": "tomato harvest in the autumn garden",
    },
]
DISTRACTORS = [
    "a report on the weather in the mountains",
    "the history of the printing press",
    "how to cook rice and beans",
    "football results of the weekend",
]
CORPUS = [r[c] for r in ROWS for c in ("positive", "negative_1")] + DISTRACTORS


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: the tensors are tiny and the cores are shared."""
    from embshared.cli import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_base_factory):
    """A 2-layer, 32-dim BERT with MiniLM's tokenizer and no dropout (deterministic forward passes),
    as a sentence-transformers model (Transformer + mean Pooling + Normalize). Random weights, fixed seed."""
    from sentence_transformers import SentenceTransformer

    path = tiny_base_factory(tmp_path_factory.mktemp("hybrid_tiny"), seed=0, max_seq_length=48, dropout=0.0)
    return SentenceTransformer(path, device="cpu")


@pytest.fixture(scope="module")
def lookup():
    return BM25Lookup.from_corpus(with_row_ids(ROWS), CORPUS)


def features(model, rows):
    """The loss inputs of a batch: one tokenized feature dict per text column, and the row ids."""
    import torch

    columns = [c for c in rows[0] if c != "label"]
    return [model.tokenize([r[c] for r in rows]) for c in columns], torch.arange(len(rows))


def loss_value(loss, model, rows=ROWS):
    import torch

    feats, labels = features(model, rows)
    with torch.no_grad():
        return float(loss(feats, labels))


class FixedLookup:
    """A lookup returning a given (B, C) matrix: BM25 scores chosen by the test."""

    def __init__(self, matrix):
        self.matrix = matrix

    def batch_matrix(self, row_ids):
        return self.matrix


# ---------------------------------------------------------------------------------------------
# rows and lookup


def test_with_row_ids_adds_consecutive_ints_last():
    rows = with_row_ids(ROWS)
    assert [r["label"] for r in rows] == [0, 1, 2, 3]
    assert list(rows[0]) == ["anchor", "positive", "negative_1", "label"]
    assert "label" not in ROWS[0]  # copies
    with pytest.raises(ValueError, match="already have a 'label'"):
        with_row_ids(rows)


def test_lookup_shape_and_candidate_order(lookup):
    import torch

    ids = [2, 0, 3]
    matrix = lookup.batch_matrix(torch.tensor(ids))
    assert matrix.shape == (3, 3 * 2) and matrix.dtype == torch.float32
    # the search-time z-scores: each anchor over the whole corpus
    z = zscore_rows(lookup.index.score_matrix([ROWS[i]["anchor"] for i in ids]))
    for i in range(3):
        for k, column in enumerate(["positive", "negative_1"]):
            for j, row in enumerate(ids):
                expected = z[i, CORPUS.index(ROWS[row][column])]
                assert matrix[i, k * 3 + j].item() == pytest.approx(expected, abs=1e-6)
    # hand check: column i is row i's own positive, which BM25 ranks first; its own negative
    # (column 3 + i) shares no term with the query, so it has the corpus's lowest score
    assert matrix.argmax(dim=1).tolist() == [0, 1, 2]
    for i in range(3):
        assert matrix[i, 3 + i].item() == pytest.approx(z[i].min(), abs=1e-6)
    assert lookup.batch_matrix([0, 2]).shape == (2, 4)
    with pytest.raises(IndexError, match="outside the 4 training rows"):
        lookup.batch_matrix([0, 4])


def test_documents_outside_the_index_score_as_if_indexed_with_the_corpus():
    from embshared.search import BM25Index

    missing = ROWS[0]["positive"]
    corpus = [t for t in CORPUS if t != missing] + ["a lava lamp on the desk"]
    lookup = BM25Lookup.from_corpus(ROWS, corpus)
    assert lookup.unindexed == [missing]
    with_it = BM25Index().index([str(i) for i in range(len(corpus) + 1)], [*corpus, missing])
    for query in [r["anchor"] for r in ROWS] + ["lava and ice and the bank", "volcano volcano"]:
        tokens = lookup.index._tokenize([query], return_ids=False)[0]
        raw = lookup.index.score_matrix([query])[0]
        # the formula reproduces the index's own score of every indexed document ...
        for position, text in enumerate(corpus):
            ours = lookup._score(tokens, *lookup._tokens(text), added=False)
            assert ours == pytest.approx(float(raw[position]), rel=1e-5, abs=1e-6)
        # ... and the missing document's score in an index of the corpus plus it
        expected = float(with_it.score_matrix([query])[0][-1])
        assert lookup.bm25_added(query, missing) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # z-scored with the query's mean and std over the indexed corpus
    raw = lookup.index.score_matrix([ROWS[0]["anchor"]])[0]
    score = lookup.bm25_added(ROWS[0]["anchor"], missing)
    assert score > raw.max() > 0  # all three query terms; the best indexed document (the lamp) has one
    matrix = lookup.batch_matrix([0, 1, 2, 3])
    assert matrix[0, 0].item() == pytest.approx((score - raw.mean()) / raw.std(), rel=1e-5)
    assert matrix[0, 0].item() > zscore_rows(raw[None])[0].max()


# ---------------------------------------------------------------------------------------------
# the loss


@pytest.mark.parametrize("directions", [("query_to_doc",), ("query_to_doc", "doc_to_query")])
def test_lambda_zero_is_the_plain_ranking_loss(tiny_model, lookup, directions):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    plain = loss_value(MultipleNegativesRankingLoss(tiny_model, directions=directions), tiny_model)
    cached = loss_value(
        CachedMultipleNegativesRankingLoss(tiny_model, mini_batch_size=2, directions=directions), tiny_model
    )
    hybrid = loss_value(
        HybridCachedMultipleNegativesRankingLoss(
            tiny_model, lookup, bm25_weight=0.0, mini_batch_size=2, directions=directions
        ),
        tiny_model,
    )
    uncached = loss_value(
        HybridMultipleNegativesRankingLoss(tiny_model, lookup, bm25_weight=0.0, directions=directions), tiny_model
    )
    assert plain == pytest.approx(cached, abs=1e-6)
    assert hybrid == pytest.approx(plain, abs=1e-6)
    assert uncached == pytest.approx(plain, abs=1e-6)
    with_bm25 = HybridCachedMultipleNegativesRankingLoss(tiny_model, lookup, bm25_weight=1.0, mini_batch_size=2)
    assert abs(loss_value(with_bm25, tiny_model) - plain) > 1e-3  # the term does something


def test_bm25_enters_with_the_right_sign(tiny_model, lookup):
    import torch

    def hybrid(matrix_or_lookup, weight=1.0):
        source = FixedLookup(matrix_or_lookup) if isinstance(matrix_or_lookup, torch.Tensor) else matrix_or_lookup
        loss = HybridCachedMultipleNegativesRankingLoss(tiny_model, source, bm25_weight=weight, mini_batch_size=2)
        return loss_value(loss, tiny_model)

    plain = hybrid(lookup, weight=0.0)
    n = len(ROWS)
    agrees = torch.zeros(n, 2 * n)
    agrees[range(n), range(n)] = 3.0  # BM25 ranks each own positive first
    disagrees = torch.zeros(n, 2 * n)
    disagrees[range(n), [n + i for i in range(n)]] = 3.0  # ... each own negative first
    # same model, same batch (same dense scores): only the BM25 matrix differs
    assert hybrid(agrees) < plain < hybrid(disagrees)
    # the real BM25 ranks each positive first here (test above), so it lowers the loss too
    assert hybrid(lookup) < plain


@pytest.mark.parametrize(
    ("form", "directions"),
    [("softmax", ("query_to_doc",)), ("softmax", ("query_to_doc", "doc_to_query")), ("clear", ("query_to_doc",))],
)
def test_cached_gradient_equals_uncached(tiny_model, lookup, form, directions):
    model = copy.deepcopy(tiny_model)
    feats, labels = features(model, with_row_ids(ROWS))

    def grads(loss):
        model.zero_grad()
        value = loss(feats, labels)
        value.backward()
        return value.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    kwargs = dict(bm25_weight=1.5, form=form, directions=directions)
    if form == "clear":  # a margin wide enough that some pairs are inside it (else every hinge is 0)
        kwargs["clear_margin"] = 10.0
    cached_value, cached = grads(HybridCachedMultipleNegativesRankingLoss(model, lookup, mini_batch_size=2, **kwargs))
    plain_value, plain = grads(HybridMultipleNegativesRankingLoss(model, lookup, **kwargs))
    assert cached_value == pytest.approx(plain_value, abs=1e-6)
    assert cached.keys() == plain.keys() and len(plain) > 10
    assert any(g.abs().max() > 0 for g in plain.values())
    for name, grad in plain.items():
        assert np.allclose(cached[name].numpy(), grad.numpy(), atol=1e-5), name


def test_clear_form_is_the_residual_margin_hinge(tiny_model, lookup):
    import torch

    lam, margin = 0.5, 2.0
    loss = HybridCachedMultipleNegativesRankingLoss(
        tiny_model, lookup, bm25_weight=lam, form="clear", clear_margin=margin, mini_batch_size=3
    )
    value = loss_value(loss, tiny_model)
    embeddings = [tiny_model.encode([r[c] for r in ROWS], convert_to_tensor=True) for c in ("anchor", "positive")]
    negatives = tiny_model.encode([r["negative_1"] for r in ROWS], convert_to_tensor=True)
    dense = 20.0 * embeddings[0] @ torch.cat([embeddings[1], negatives]).T  # normalised: cosine
    z = lookup.batch_matrix(range(4))
    expected = []
    for i in range(4):
        for j in range(8):
            if j != i:
                m = max(0.0, margin - lam * (z[i, i] - z[i, j]).item())
                expected.append(max(0.0, m - dense[i, i].item() + dense[i, j].item()))
    assert value == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    with pytest.raises(ValueError, match="query_to_doc"):
        HybridMultipleNegativesRankingLoss(
            tiny_model, lookup, form="clear", directions=("query_to_doc", "doc_to_query")
        )


def test_loss_needs_row_ids_and_matching_columns(tiny_model, lookup):
    loss = HybridCachedMultipleNegativesRankingLoss(tiny_model, lookup, mini_batch_size=2)
    feats, _ = features(tiny_model, ROWS)
    with pytest.raises(ValueError, match="with_row_ids"):
        loss(feats, None)
    pairs = [{"anchor": r["anchor"], "positive": r["positive"]} for r in ROWS]
    feats, labels = features(tiny_model, pairs)
    with pytest.raises(ValueError, match="lookup's rows and the batch's columns differ"):
        loss(feats, labels)
    with pytest.raises(ValueError, match="bm25_weight"):
        HybridMultipleNegativesRankingLoss(tiny_model, lookup, bm25_weight=-1.0)


def test_loss_spec_alias_and_builder(tiny_model, lookup):
    spec = loss_spec("hybrid")
    assert spec.name == "HybridCachedMultipleNegativesRankingLoss"
    assert spec.data == "ranking" and spec.needs_bm25 and not spec.needs_guide
    assert not loss_spec("cmnrl").needs_bm25
    with pytest.raises(ValueError, match="needs a BM25 lookup"):
        build_loss(tiny_model, "hybrid", LossOptions())
    loss = build_loss(
        tiny_model, "hybrid", LossOptions(bm25_lookup=lookup, bm25_weight=0.5, mini_batch_size=2, symmetric=True)
    )
    assert type(loss) is HybridCachedMultipleNegativesRankingLoss
    assert (loss.mini_batch_size, loss.bm25_weight, loss.form) == (2, 0.5, "softmax")
    assert loss.directions == ("query_to_doc", "doc_to_query")
    assert loss.get_config_dict()["bm25_weight"] == 0.5
    wrapped = build_loss(tiny_model, "hybrid", LossOptions(bm25_lookup=lookup, matryoshka_dims=(16,)))
    assert type(wrapped).__name__ == "MatryoshkaLoss"
    assert math.isfinite(loss_value(wrapped, tiny_model, with_row_ids(ROWS)))


def test_trainer_step_passes_row_ids_to_the_loss(tiny_model, lookup, tmp_path):
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    model = copy.deepcopy(tiny_model)
    rows = with_row_ids(ROWS)
    loss = HybridCachedMultipleNegativesRankingLoss(model, lookup, bm25_weight=1.0, mini_batch_size=2)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    before = next(model.parameters()).detach().clone()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss)
    output = trainer.train()
    assert trainer.state.global_step == 1
    assert math.isfinite(output.training_loss) and output.training_loss > 0
    # the label column reached the loss as the row ids (in the sampler's shuffled order) ...
    assert sorted(loss.last_row_ids) == [0, 1, 2, 3]
    # ... and the step changed the weights
    assert not np.allclose(next(model.parameters()).detach().numpy(), before.numpy())
