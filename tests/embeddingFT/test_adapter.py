"""The adapter recipe: a projection head over a frozen base, saved as a sentence-transformers folder,
trained on cached vectors, and an index re-built from a base index's stored vectors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from embedding_ft.adapter import (
    AdapterInfo,
    HeadOptions,
    apply_head,
    attach_head,
    is_adapter,
    load_adapter,
    train_head,
    zscore_lookup,
)
from embedding_ft.cli import index as index_cli
from embedding_ft.index import Searcher, build_index
from embedding_ft.reindex import reindex_from_base
from embshared.errors import UserError
from embshared.heads import ProjectionHead
from embshared.io import Documents

TOPICS = ["volcano lava", "insulin glucose", "galaxy telescope", "violin symphony", "glacier ice", "mortgage bank"]
DOCS = Documents(
    ids=[f"d{i}" for i in range(24)],
    texts=[
        f"report {i} on {TOPICS[i % len(TOPICS)]}" + (" with a long appendix of measurements" * (i % 5))
        for i in range(24)
    ],
    source="test",
)
QUERIES = ["what about volcano lava", "insulin and glucose levels", "a galaxy seen by a telescope"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: on the 2 shared cores one thread is much faster than two."""
    from embshared.cli import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def base_path(tmp_path_factory, tiny_base_factory) -> str:
    return tiny_base_factory(tmp_path_factory.mktemp("base"), seed=0)


@pytest.fixture(scope="module")
def base(base_path):
    from embshared.models import load_sentence_transformer

    return load_sentence_transformer(base_path, device="cpu")


def _trained_looking_head(dim: int = 32, hidden: int = 16, seed: int = 3) -> ProjectionHead:
    """A head far from the identity (random linear map, bias and a non-zero MLP branch)."""
    generator = torch.Generator().manual_seed(seed)
    head = ProjectionHead(dim, dim, hidden)
    with torch.no_grad():
        for param in head.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return head.eval()


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, base):
    folder = tmp_path_factory.mktemp("adapter") / "model"
    model, info = attach_head(base, _trained_looking_head())
    model.save(str(folder))
    info.save(folder)
    return folder


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------
# The saved model


def test_saved_adapter_reloads_and_encodes_as_the_head_over_the_base(adapter_dir, base, base_path):
    from sentence_transformers import SentenceTransformer

    head = _trained_looking_head()
    texts = [*QUERIES, *DOCS.texts[:5]]
    base_vectors = base.encode(texts, normalize_embeddings=True)  # (8, 32)
    with torch.no_grad():
        expected = _normalize(head(torch.from_numpy(base_vectors)).numpy())
    assert not np.allclose(expected, base_vectors, atol=0.1)  # the head really changes the vectors

    # sentence-transformers' own loader, no trust_remote_code: the head is two standard Dense modules
    reloaded = SentenceTransformer(str(adapter_dir), device="cpu")
    assert np.allclose(reloaded.encode(texts), expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(reloaded.encode(texts), axis=1), 1.0, atol=1e-5)  # Normalize after the head
    model, info = load_adapter(adapter_dir, device="cpu")
    assert np.allclose(model.encode(texts), expected, atol=1e-5)
    # no second encoding pass: the base vectors through the head (saved or in memory) give the same vectors
    assert np.allclose(apply_head(adapter_dir, base_vectors), expected, atol=1e-5)
    assert np.allclose(apply_head(head, base_vectors), expected, atol=1e-5)

    modules = json.loads((adapter_dir / "modules.json").read_text())
    assert [m["type"] for m in modules][-3:] == [
        "sentence_transformers.base.modules.dense.Dense",
        "sentence_transformers.base.modules.dense.Dense",
        "sentence_transformers.base.modules.normalize.Normalize",
    ]
    assert info == AdapterInfo(3, 32, 32, 16, info.base)
    assert info.base["model"] == base_path and len(info.base["model_fingerprint"]) == 16
    pickles = [p for p in adapter_dir.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}]
    assert pickles == []
    first = adapter_dir / modules[3]["path"]
    with safe_open(str(next(first.glob("*.safetensors"))), "pt") as weights:  # fails on a pickle
        assert weights.get_tensor("linear.weight").shape == (2 * 32 + 16, 32)

    assert is_adapter(adapter_dir) and not is_adapter(base_path)
    with pytest.raises(UserError, match="not an adapter model"):
        load_adapter(base_path)


def test_a_linear_head_is_one_dense_module(base, tmp_path):
    from sentence_transformers import SentenceTransformer

    head = _trained_looking_head(hidden=0)
    model, info = attach_head(base, head)
    model.save(str(tmp_path / "linear"))
    texts = QUERIES
    with torch.no_grad():
        expected = _normalize(head(torch.from_numpy(base.encode(texts, normalize_embeddings=True))).numpy())
    reloaded = SentenceTransformer(str(tmp_path / "linear"), device="cpu")
    assert len(reloaded) == info.base_modules + 2  # Dense + Normalize
    assert np.allclose(reloaded.encode(texts), expected, atol=1e-5)


def test_an_untrained_head_ranks_like_the_base(base):
    head = ProjectionHead(32, 32, 64)
    docs = base.encode(DOCS.texts, normalize_embeddings=True)
    queries = base.encode(QUERIES, normalize_embeddings=True)
    adapted_docs, adapted_queries = apply_head(head, docs), apply_head(head, queries)
    assert np.allclose(adapted_queries @ adapted_docs.T, queries @ docs.T, atol=1e-5)  # orthogonal map: same cosines


# ---------------------------------------------------------------------------------------
# Indexes


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, base, base_path):
    folder = tmp_path_factory.mktemp("idx") / "base"
    build_index(folder, DOCS, base_path, encoder=base)
    return folder


def test_reindexing_from_base_vectors_equals_encoding_with_the_adapter(tmp_path, adapter_dir, base_index):
    adapter, _ = load_adapter(adapter_dir, device="cpu")
    folder, reused = reindex_from_base(base_index, adapter_dir, tmp_path / "from_base")
    fresh, _ = build_index(tmp_path / "fresh", DOCS, str(adapter_dir), encoder=adapter)
    assert not reused
    derived_vectors = np.load(folder / "embeddings.npy")
    assert np.allclose(derived_vectors, np.load(fresh / "embeddings.npy"), atol=1e-5)
    assert not np.allclose(derived_vectors, np.load(base_index / "embeddings.npy"), atol=0.1)
    derived_meta, fresh_meta = (json.loads((f / "meta.json").read_text()) for f in (folder, fresh))
    for key in ("model", "model_fingerprint", "backend", "docs_hash", "n_docs", "dim"):
        assert derived_meta[key] == fresh_meta[key], key
    derived, direct = Searcher(folder, encoder=adapter), Searcher(fresh, encoder=adapter)
    for query in QUERIES:
        a, b = derived.search(query, k=10), direct.search(query, k=10)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    _, again = reindex_from_base(base_index, adapter_dir, folder)
    assert again  # same documents and model: reused like any index


@pytest.fixture
def restore_logging():
    """Undo start_run's console handler, which would otherwise write into a later test's closed capture."""
    import logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


def test_index_cli_builds_from_a_base_index(tmp_path, adapter_dir, base_index, capsys, restore_logging):
    out = tmp_path / "cli_index"
    assert index_cli.main(["--model", str(adapter_dir), "--from-index", str(base_index), "--index", str(out)]) == 0
    assert "built" in capsys.readouterr().out
    assert np.load(out / "embeddings.npy").shape == (len(DOCS), 32)
    code = index_cli.main(
        ["--model", str(adapter_dir), "--from-index", str(base_index), "--index", str(out), "--backend", "onnx"]
    )
    assert code == 2 and "torch" in capsys.readouterr().err


def test_reindex_refuses_an_index_of_another_base_model(
    tmp_path, tmp_path_factory, tiny_base_factory, adapter_dir, capsys, restore_logging
):
    from embshared.models import load_sentence_transformer

    other_path = tiny_base_factory(tmp_path_factory.mktemp("other"), seed=1)
    other_index = tmp_path / "other_index"
    build_index(other_index, DOCS, other_path, encoder=load_sentence_transformer(other_path, device="cpu"))
    with pytest.raises(UserError, match="was built with") as refused:
        reindex_from_base(other_index, adapter_dir, tmp_path / "out")
    assert "\n" not in str(refused.value) and other_path in str(refused.value)
    assert not (tmp_path / "out").exists()
    code = index_cli.main(
        ["--model", str(adapter_dir), "--from-index", str(other_index), "--index", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: ") and "was built with" in err.splitlines()[-1]


# ---------------------------------------------------------------------------------------
# Training


def _nuisance_task(n_docs: int = 300, n_queries: int = 260, seed: int = 0):
    """Base vectors = [signal (8 dims), nuisance (24 dims)], the nuisance drawn independently for every
    vector and ~2.4x larger: the base ranks poorly, and a linear map that drops the nuisance ranks well."""
    rng = np.random.default_rng(seed)
    signal = _normalize(rng.normal(size=(n_docs, 8)))
    positive = rng.integers(n_docs, size=n_queries)
    query_signal = _normalize(signal[positive] + 0.3 * rng.normal(size=(n_queries, 8)) / math.sqrt(8))

    def embed(s):
        return _normalize(np.hstack([s, 0.5 * rng.normal(size=(len(s), 24))])).astype(np.float32)

    return embed(query_signal), embed(signal), positive


def _accuracy_at_1(queries: np.ndarray, docs: np.ndarray, positive: np.ndarray) -> float:
    return float(np.mean(np.argmax(queries @ docs.T, axis=1) == positive))


def test_train_head_learns_a_map_the_base_lacks_and_keeps_the_best_epoch():
    queries, docs, positive = _nuisance_task()
    train, held_out = np.arange(200), np.arange(200, 260)  # held-out queries: never seen in training
    rng = np.random.default_rng(1)
    examples = [(int(q), int(positive[q]), [int(rng.integers(len(docs)))]) for q in train]
    options = HeadOptions(hidden_dim=32, epochs=20, batch_size=32, learning_rate=3e-2, validation_fraction=0.2, seed=0)
    head, history = train_head(queries, docs, examples, options=options)

    assert [row[0] for row in history] == list(range(21))
    val = [row[2] for row in history]
    assert min(val) < 0.2 * val[0]  # validation loss goes down a lot (6.5 -> 0.25 when written)
    assert history[-1][1] < 0.2 * history[0][1]
    adapted_q = apply_head_vectors(head, queries[held_out])
    adapted_d = apply_head_vectors(head, docs)
    base_acc = _accuracy_at_1(queries[held_out], docs, positive[held_out])
    trained_acc = _accuracy_at_1(adapted_q, adapted_d, positive[held_out])
    # 0.05 -> 0.72 when written (an oracle dropping the nuisance: 0.98)
    assert base_acc < 0.2 and trained_acc > 0.5 and trained_acc > base_acc + 0.4, (base_acc, trained_acc)

    # the returned head is the best epoch's: its validation loss is the minimum of the history
    again, history_again = train_head(queries, docs, examples, options=options)
    assert history_again == history  # deterministic for a seed
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), again.state_dict().values()))
    other, _ = train_head(queries, docs, examples, options=HeadOptions(**{**vars(options), "seed": 1}))
    assert not torch.equal(other.linear.weight, head.linear.weight)


def test_merge_with_init_moves_the_head_back_towards_the_base():
    """WiSE-FT for the head: weight 1 is the untrained head (the base's ranking), 0.5 lies between."""
    queries, docs, positive = _nuisance_task()
    held_out = np.arange(200, 260)
    rng = np.random.default_rng(1)
    examples = [(int(q), int(positive[q]), [int(rng.integers(len(docs)))]) for q in range(200)]
    options = HeadOptions(hidden_dim=32, epochs=10, batch_size=32, learning_rate=3e-2, validation_fraction=0.2, seed=0)
    accuracy = {}
    for weight in (0.0, 0.5, 1.0):
        head, _ = train_head(
            queries, docs, examples, options=HeadOptions(**{**vars(options), "merge_with_init": weight})
        )
        adapted_q, adapted_d = apply_head_vectors(head, queries[held_out]), apply_head_vectors(head, docs)
        accuracy[weight] = _accuracy_at_1(adapted_q, adapted_d, positive[held_out])
        if weight == 1.0:
            assert np.allclose(adapted_q @ adapted_d.T, queries[held_out] @ docs.T, atol=1e-5)
    assert accuracy[1.0] == _accuracy_at_1(queries[held_out], docs, positive[held_out])
    assert accuracy[0.0] > accuracy[1.0] + 0.3, accuracy


def apply_head_vectors(head: ProjectionHead, vectors: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _normalize(head(torch.from_numpy(vectors)).numpy())


def test_train_head_keeps_the_untrained_head_when_no_epoch_beats_it():
    # the base already ranks perfectly; a huge learning rate makes every epoch worse on validation
    rng = np.random.default_rng(2)
    docs = _normalize(rng.normal(size=(200, 32))).astype(np.float32)
    queries = _normalize(docs + 0.01 * rng.normal(size=docs.shape)).astype(np.float32)
    examples = [(q, q, [int((q + 1) % len(docs))]) for q in range(len(queries))]
    options = HeadOptions(hidden_dim=0, epochs=3, batch_size=32, learning_rate=10.0, seed=0)
    head, history = train_head(queries, docs, examples, options=options)
    assert min(row[2] for row in history[1:]) > history[0][2]
    cosines = apply_head_vectors(head, queries) @ apply_head_vectors(head, docs).T
    assert np.allclose(cosines, queries @ docs.T, atol=1e-5)  # the untrained (orthogonal) head came back


def test_known_positives_other_than_the_target_are_masked():
    # query 0 has two positives identical to it; every other document is orthogonal to it
    dim = 8
    queries = np.eye(dim, dtype=np.float32)[:1]
    docs = np.eye(dim, dtype=np.float32)[[0, 0, 1, 2, 3]]
    examples = [(0, 0, [2, 3]), (0, 1, [4])]
    options = HeadOptions(hidden_dim=0, epochs=1, batch_size=8, validation_fraction=0.0)
    _, masked = train_head(queries, docs, examples, options=options)
    _, unmasked = train_head(queries, docs, examples, positives={0: []}, options=options)
    assert masked[0][1] == pytest.approx(math.log(1 + 3 * math.exp(-20)), abs=1e-6)  # the other positive is out
    assert unmasked[0][1] == pytest.approx(math.log(2 + 3 * math.exp(-20)), abs=1e-6)  # it competes with the target
    assert masked[0][2] is None  # no validation queries asked for


def test_a_bm25_term_that_ranks_positives_first_lowers_the_loss_at_init():
    queries, docs, positive = _nuisance_task(seed=3)
    rng = np.random.default_rng(0)
    examples = [(q, int(positive[q]), [int(rng.integers(len(docs)))]) for q in range(200)]
    raw = np.zeros((len(queries), len(docs)), dtype=np.float32)
    raw[np.arange(len(queries)), positive] = 5.0  # BM25 finds exactly the positive
    bm25_z = zscore_lookup(raw)
    assert bm25_z(np.array([0]), np.array([[positive[0], (positive[0] + 1) % len(docs)]]))[0, 0] > 10
    options = HeadOptions(hidden_dim=0, epochs=1, batch_size=32)
    _, plain = train_head(queries, docs, examples, options=options)
    _, hybrid = train_head(
        queries, docs, examples, options=HeadOptions(**{**vars(options), "bm25_weight": 1.0}), bm25_z=bm25_z
    )
    assert hybrid[0][1] < 0.5 * plain[0][1]  # train loss at init
    assert hybrid[0][2] < 0.5 * plain[0][2]  # validation loss at init
    with pytest.raises(UserError, match="bm25_z"):
        train_head(queries, docs, examples, options=HeadOptions(bm25_weight=1.0))


def test_train_head_with_the_isotropy_term_runs_and_is_deterministic():
    queries, docs, positive = _nuisance_task(n_docs=120, n_queries=100, seed=4)
    examples = [(q, int(positive[q]), [int((positive[q] + 7) % len(docs))]) for q in range(100)]
    options = HeadOptions(hidden_dim=16, epochs=3, batch_size=32, isotropy_weight=0.1)
    head, history = train_head(queries, docs, examples, options=options)
    _, again = train_head(queries, docs, examples, options=options)
    assert history == again and all(np.isfinite(row[1]) for row in history)
    assert np.allclose(np.linalg.norm(apply_head_vectors(head, docs), axis=1), 1.0, atol=1e-5)


def test_train_head_refuses_bad_input():
    queries, docs, _ = _nuisance_task(n_docs=20, n_queries=10)
    with pytest.raises(UserError, match="outside"):
        train_head(queries, docs, [(0, 99, [])])
    with pytest.raises(UserError, match="no training examples"):
        train_head(queries, docs, [])
    with pytest.raises(UserError, match="validation_fraction"):
        train_head(queries, docs, [(0, 1, [])], options=HeadOptions(validation_fraction=1.0))


# ---------------------------------------------------------------------------------------
# Through the training run


def _tiny_cfg(tiny_beir, out, repo, *overrides):
    from embedding_ft.config import TrainConfig
    from embshared.config import load_config

    return load_config(
        TrainConfig,
        repo / "embeddingFT" / "configs" / "default.yaml",
        [
            f"dataset_name={tiny_beir}",
            f"output_dir={out / 'outputs'}",
            f"cache_dir={out / 'cache'}",
            "batch_size=16",
            "test_size=0.25",
            "max_seq_length=96",
            "mining.range_max=10",
            *overrides,
        ],
    )


def test_adapter_run_saves_a_plain_sentence_transformers_folder(tiny_beir, tmp_path, repo, minilm_session):
    from sentence_transformers import SentenceTransformer

    from embedding_ft.train import train

    cfg = _tiny_cfg(
        tiny_beir, tmp_path, repo, "run_name=head", "adapter=head", "adapter_head.epochs=5", "bm25_aware=true"
    )
    result = train(cfg)
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert summary["train"]["adapter"] == "head" and 0 <= summary["train"]["best_epoch"] <= 5
    assert {"finetuned", "hybrid_finetuned_tuned"} <= set(summary["metrics"])
    assert "adapter: head" in (result.run_dir / "metrics.md").read_text()
    assert is_adapter(result.model_dir) and (result.model_dir / "fusion.json").is_file()
    tuned = SentenceTransformer(str(result.model_dir), device="cpu")
    texts = ["Vitamin D deficiency is linked to bone loss.", "Aspirin reduces the risk of stroke."]
    minilm_session.max_seq_length = 96
    try:
        base_vectors = minilm_session.encode(texts, normalize_embeddings=True)
    finally:
        minilm_session.max_seq_length = 256
    assert np.allclose(tuned.encode(texts), apply_head(result.model_dir, base_vectors), atol=1e-5)
    # the run evaluated the held-out corpus through the head on cached base vectors: the same figures as encoding
    from embedding_ft.data import prepare
    from embedding_ft.evaluation import RetrievalEvaluator, dev_rest_split

    prepared = prepare(str(tiny_beir), "train", 0.25, 42)
    dev = dev_rest_split(prepared.eval_set.queries, 0.5, 0)[0]
    evaluator = RetrievalEvaluator(prepared.eval_set, cfg.evaluation.metrics, "ndcg@10", dev_ids=dev)
    tuned.max_seq_length = 96
    fresh = evaluator.score(evaluator.dense_scores(tuned))
    assert fresh.means["ndcg@10"] == pytest.approx(summary["metrics"]["finetuned"]["ndcg@10"], abs=1e-4)


def test_hybrid_loss_trains_through_the_run(tiny_beir, tmp_path, repo):
    from embedding_ft.train import train

    result = train(_tiny_cfg(tiny_beir, tmp_path, repo, "run_name=hybrid", "loss=hybrid", "bm25_weight=0.5"))
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert summary["loss"] == "HybridCachedMultipleNegativesRankingLoss"
    assert summary["train"]["steps"] >= 2 and np.isfinite(summary["train"]["train_loss"])


def test_an_exported_back_end_encodes_the_run_with_the_same_figures(tiny_beir, tmp_path, repo):
    """encode_backend=onnx: mining, the base model's evaluation and the head table read one ONNX pass (cached,
    exported into the cache, never into the model's folder), and the figures equal PyTorch's."""
    from embedding_ft.train import train

    common = ("adapter=head", "adapter_head.epochs=3")
    torch_run = train(_tiny_cfg(tiny_beir, tmp_path / "t", repo, "run_name=torch", *common))
    onnx_run = train(_tiny_cfg(tiny_beir, tmp_path / "o", repo, "run_name=onnx", "encode_backend=onnx", *common))
    a, b = (json.loads((r.run_dir / "metrics.json").read_text())["metrics"] for r in (torch_run, onnx_run))
    for system in ("base", "hybrid_base", "finetuned"):
        assert b[system]["ndcg@10"] == pytest.approx(a[system]["ndcg@10"], abs=0.002), system
    metas = [json.loads(p.read_text()) for p in (tmp_path / "o" / "cache" / "vectors").glob("*/meta.json")]
    assert [m["key"]["backend"] for m in metas] == ["onnx"]  # one pass over the mining texts, on ONNX
    assert not (tmp_path / "o" / "cache" / "embeddings").exists()  # no sentence-transformers cache files
    assert any((tmp_path / "o" / "cache" / "vectors" / "exports").glob("*/onnx/model_O2.onnx"))
