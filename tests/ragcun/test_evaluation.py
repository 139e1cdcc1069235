"""Evaluation: test_eval.json parsing, metrics through embshared, isotropy diagnostics, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embshared.io import DataError
from ragcun.checkpoint import save_checkpoint
from ragcun.cli.evaluate import main
from ragcun.diagnostics import isotropy_diagnostics
from ragcun.evaluation import evaluate_encoder, load_eval_set, metric_names
from ragcun.model import GaussianEmbeddingGemma, ModelConfig

WORDS = ["volcano", "insulin", "galaxy", "violin", "glacier"]


def _eval_file(tmp_path):
    data = {
        "corpus": [f"all about {w}" for w in WORDS],
        "queries": [f"{w}?" for w in WORDS],
        "relevance": [[i] for i in range(len(WORDS))],
    }
    path = tmp_path / "test_eval.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _keyword_encoder(texts):
    """One-hot on the topic word: a perfect retriever (and a wrong one when reversed)."""
    out = np.zeros((len(texts), len(WORDS)), dtype=np.float32)
    for i, text in enumerate(texts):
        for j, word in enumerate(WORDS):
            if word in text:
                out[i, j] = 1.0
    return out


def test_load_eval_set_and_perfect_scores(tmp_path):
    eval_set = load_eval_set(_eval_file(tmp_path))
    assert eval_set.qrels["q3"] == {"3": 1}
    result = evaluate_encoder(_keyword_encoder, eval_set, "l2", metric_names(100), diagnostics=False)
    assert result["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert result["metrics"]["recall@1"] == pytest.approx(1.0)

    def shifted(texts):  # each query points at the next topic: the relevant document is never first
        return np.roll(_keyword_encoder(texts), 1, axis=1) if texts[0].endswith("?") else _keyword_encoder(texts)

    result = evaluate_encoder(shifted, eval_set, "l2", ["recall@1", "mrr@10"], diagnostics=False)
    assert result["metrics"]["recall@1"] == 0.0
    # query i: doc i+1 at distance 0, then the other four tied at sqrt(2) in ascending id order,
    # so doc i is 2nd, 3rd, 4th, 5th, 5th for i = 0..4
    assert result["metrics"]["mrr@10"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 5) / 5)


def test_metric_names_follow_top_k():
    assert metric_names(10) == ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"corpus": ["a"], "queries": ["q"]}', "field 'relevance' missing"),
        ('{"corpus": ["a"], "queries": ["q"], "relevance": [[3]]}', "corpus index 3 out of range"),
        ('{"corpus": ["a"], "queries": ["q", "r"], "relevance": [[0]]}', "2 queries"),
        ('{"corpus": [""], "queries": ["q"], "relevance": [[0]]}', "field 'corpus' element 0"),
    ],
)
def test_bad_eval_files(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_eval_set(path)


def test_beir_folder(sample_scifact):
    eval_set = load_eval_set(sample_scifact)
    assert len(eval_set.corpus) == 2000 and len(eval_set.qrels) > 100


def test_diagnostics_of_isotropic_and_anisotropic_samples():
    rng = np.random.default_rng(0)
    iso = isotropy_diagnostics(rng.standard_normal((2048, 32)), num_slices=256)
    assert iso["std_mean"] == pytest.approx(1.0, abs=0.03)
    assert iso["eig_max_over_mean"] < 1.4
    assert iso["effective_rank_ratio"] > 0.95
    assert iso["sigreg"] == pytest.approx(iso["sigreg_null"], abs=0.3)
    skewed = rng.standard_normal((2048, 32)) * np.geomspace(4, 0.05, 32) + 3.0
    aniso = isotropy_diagnostics(skewed, num_slices=256)
    assert aniso["eig_max_over_mean"] > 5
    assert aniso["effective_rank_ratio"] < 0.5
    assert aniso["sigreg"] > 50 * iso["sigreg"]
    assert aniso["sigreg_standardized"] > 3 * iso["sigreg_standardized"]  # shape alone is detected too


def test_cli_writes_metrics_and_diagnostics(tmp_path, tiny_base):
    torch.manual_seed(0)
    model = GaussianEmbeddingGemma.from_config(ModelConfig(base_model=tiny_base), device="cpu")
    checkpoint = save_checkpoint(tmp_path / "m.pt", model)
    out = tmp_path / "results" / "eval.json"
    argv = ["--model_path", str(checkpoint), "--test_data", str(_eval_file(tmp_path)), "--output_file", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["metric"] == "l2"
    assert set(result["metrics"]) >= {"recall@1", "recall@100", "mrr@10", "ndcg@10", "map@100"}
    assert result["isotropy"]["documents"]["n"] == len(WORDS)
    exact = tmp_path / "exact.json"
    data = json.loads(_eval_file(tmp_path).read_text())
    data["queries"] = data["corpus"]  # queries identical to their documents: perfect retrieval
    exact.write_text(json.dumps(data), encoding="utf-8")
    assert main(["--model_path", str(checkpoint), "--test_data", str(exact), "--output_file", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["recall@1"] == pytest.approx(1.0)


def test_cli_missing_model_is_a_clear_error(tmp_path, capsys):
    code = main(["--model_path", str(tmp_path / "nope.pt"), "--test_data", str(_eval_file(tmp_path))])
    assert code == 2
    assert "no such checkpoint file" in capsys.readouterr().err
