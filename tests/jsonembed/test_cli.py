"""The guide's commands, run in-process: train, search, embed, evaluate, and every bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import yaml

from embedding_model.cli import embed as embed_cli
from embedding_model.cli import evaluate as evaluate_cli
from embedding_model.cli import search as search_cli
from embedding_model.cli import train as train_cli
from embedding_model.model_file import load_model


@pytest.fixture(scope="module")
def tiny_overrides():
    return [
        "max_chars=128",
        "char_dim=8",
        "conv_channels=16",
        "kernel_sizes=[3]",
        "projection_dim=16",
        "val_fraction=0.1",
        "teacher=null",  # the CLI with a teacher: test_distill.py
    ]


def test_train_cli_writes_model_config_and_history(sample_jsonl, tmp_path, capsys, tiny_overrides):
    output = tmp_path / "out" / "my_model.pt"
    code = train_cli.main(
        [str(sample_jsonl), "--output", str(output), "--epochs", "1", "--batch-size", "32", "--quiet", *tiny_overrides]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    _, _, cfg, info = load_model(output)
    assert cfg.epochs == 1 and cfg.batch_size == 32 and cfg.char_dim == 8  # flags and key=value overrides
    assert cfg.temperature == 0.05  # the rest from config/default.yaml
    assert info["records"] == 240 and info["steps"] == 216 // 32
    saved = yaml.safe_load((tmp_path / "out" / "my_model.config.yaml").read_text())
    assert saved["char_dim"] == 8 and saved["kernel_sizes"] == [3]
    history = json.loads((tmp_path / "out" / "my_model.train.json").read_text())
    assert len(history["validation"]) == 1 and "accuracy@1" in history["validation"][0]
    assert (tmp_path / "out" / "my_model.loss.png").read_bytes()[:4] == b"\x89PNG"


def test_search_cli_json_explain_and_hybrid(tiny_model, sample_jsonl, sample_records, capsys):
    _, model_path, _ = tiny_model
    title = sample_records.records[5]["title"]
    args = ["--model", str(model_path), "--data", str(sample_jsonl), "--query", title, "--topk", "3", "--json"]
    assert search_cli.main([*args, "--explain", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["mode"] == "dense" and len(result["hits"]) == 3
    top = result["hits"][0]
    assert top["line"] == 6 and top["record"]["_id"] == sample_records.ids[5]
    assert top["explain"][0]["field"] == "title" and top["explain"][0]["value"] == title
    assert [h["score"] for h in result["hits"]] == sorted((h["score"] for h in result["hits"]), reverse=True)
    cache = list((sample_jsonl.parent / ".jsonembed_cache").glob("records.jsonl.*.npy"))
    assert len(cache) == 1 and np.load(cache[0]).shape == (240, 64)
    assert search_cli.main([*args, "--hybrid", "--fusion", "rrf", "--quiet"]) == 0
    hybrid = json.loads(capsys.readouterr().out)[0]
    assert hybrid["mode"] == "hybrid, RRF, dense weight 0.1" and hybrid["hits"][0]["line"] == 6
    assert hybrid["hits"][0]["score"] == pytest.approx(0.1 / 61 + 1 / 61)  # first in both rankings, dense weight 0.1
    assert search_cli.main([*args, "--hybrid", "--quiet"]) == 0  # the default fusion
    default = json.loads(capsys.readouterr().out)[0]
    assert (
        default["mode"]
        == "hybrid, convex, dense weight 0.3, char n-gram weight 0.5; queries with only known words 0.1 / 0.2"
    )
    assert default["hits"][0]["line"] == 6
    weights = ["--dense-weight", "0.5", "--ngram-weight", "0"]
    assert search_cli.main([*args, "--hybrid", "--fusion", "convex", *weights, "--quiet"]) == 0
    convex = json.loads(capsys.readouterr().out)[0]
    assert convex["mode"] == "hybrid, convex, dense weight 0.5" and convex["hits"][0]["line"] == 6
    assert search_cli.main([*args, "--hybrid", "--dense-weight", "0.7"]) == 2  # + the n-grams' 0.5 > 1
    _one_error_line(capsys, r"dense and character n-gram weights must sum to at most 1, got 0.7 \+ 0.5")
    assert search_cli.main([*args, "--hybrid", "--fusion", "convex", "--dense-weight", "2"]) == 2
    _one_error_line(capsys, r"dense weight must be in \[0, 1\], got 2")


def test_search_cli_text_output(tiny_model, sample_jsonl, sample_records, capsys):
    _, model_path, _ = tiny_model
    title = sample_records.records[5]["title"]
    code = search_cli.main(
        ["--model", str(model_path), "--data", str(sample_jsonl), "--query", title, "--topk", "1", "--explain"]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f'query: "{title}"')
    assert lines[1].strip().startswith("1.") and "  line 6  " in lines[1]
    assert "title = " in lines[2]


def test_embed_cli(tiny_model, sample_jsonl, tmp_path, capsys):
    _, model_path, _ = tiny_model
    output = tmp_path / "production_embeddings.npy"
    code = embed_cli.main(
        ["--model", str(model_path), "--input", str(sample_jsonl), "--output", str(output), "--quiet"]
    )
    assert code == 0
    matrix = np.load(output)
    assert matrix.shape == (240, 64) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    meta = json.loads((tmp_path / "production_embeddings.meta.json").read_text())
    assert meta["lines"] == list(range(1, 241)) and meta["dim"] == 64


def test_evaluate_cli_has_bm25_model_and_hybrid_rows(
    tiny_model, sample_jsonl, sample_records, sample_scifact, tmp_path, capsys
):
    from embshared.evaluate import evaluate_retrieval
    from embshared.io import read_qrels
    from embshared.search import bm25_score_fn

    _, model_path, _ = tiny_model
    known = set(sample_records.ids)
    qrels = {
        q: {d: g for d, g in r.items() if d in known} for q, r in read_qrels(sample_scifact / "qrels/train.tsv").items()
    }
    qrels = {q: r for q, r in qrels.items() if r}
    qrels_path = tmp_path / "qrels.tsv"
    qrels_path.write_text("".join(f"{q}\t{d}\t{g}\n" for q, r in qrels.items() for d, g in r.items()))
    output = tmp_path / "eval.json"
    code = evaluate_cli.main(
        [
            "--model",
            str(model_path),
            "--data",
            str(sample_jsonl),
            "--queries",
            str(sample_scifact / "queries.jsonl"),
            "--qrels",
            str(qrels_path),
            "--output",
            str(output),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "| BM25 |" in out and "| jsonembed |" in out
    assert "| jsonembed + BM25 (RRF, dense weight 0.1) |" in out
    label = "convex, dense weight 0.3, char n-gram weight 0.5; queries with only known words 0.1 / 0.2"
    assert f"| jsonembed + BM25 ({label}) (search --hybrid) |" in out
    results = json.loads(output.read_text())["results"]
    rows = [json.loads(line) for line in (sample_scifact / "queries.jsonl").open()]
    queries = {row["_id"]: row["text"] for row in rows}
    corpus = dict(zip(sample_records.ids, sample_records.plain_texts()))
    bm25 = evaluate_retrieval(
        queries, corpus, qrels, bm25_score_fn(list(corpus), list(corpus.values())), names=["ndcg@10", "recall@10"]
    )
    assert results["BM25"]["ndcg@10"] == pytest.approx(bm25["ndcg@10"])
    for row in results.values():
        assert 0 <= row["recall@1"] <= row["recall@10"] <= row["recall@100"] <= 1
    assert output.with_suffix(".md").read_text().startswith("| system |")


BAD_FILES = {
    "not_json": ([{"title": "ok"}, '{"title": "broken'], r"bad\.jsonl:2: invalid JSON"),
    "not_object": ([{"title": "ok"}, '["a", "list"]'], r"bad\.jsonl:2: expected a JSON object, got a list"),
    "empty": ([], r"bad\.jsonl: no records found"),
    "no_text": ([{"title": "ok"}, {"_id": "9", "title": "", "tags": []}], r"bad\.jsonl:2: record has no text"),
}


def _one_error_line(capsys, pattern: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert re.search(pattern, err[0]), err[0]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_gives_one_line_error(case, tiny_model, tmp_path, capsys, write_jsonl):
    rows, pattern = BAD_FILES[case]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    _, model_path, _ = tiny_model
    assert search_cli.main(["--model", str(model_path), "--data", str(bad), "--query", "x", "--quiet"]) == 2
    _one_error_line(capsys, pattern)
    output = tmp_path / "never.pt"
    assert train_cli.main([str(bad), "--output", str(output), "--quiet"]) == 2
    _one_error_line(capsys, pattern)
    assert not output.exists()
    assert embed_cli.main(["--model", str(model_path), "--input", str(bad), "--output", str(tmp_path / "e.npy")]) == 2
    _one_error_line(capsys, pattern)
    assert not (tmp_path / "e.npy").exists()


def test_skip_invalid_skips_and_reports(tiny_model, tmp_path, capsys, write_jsonl):
    _, model_path, _ = tiny_model
    data = write_jsonl(
        tmp_path / "mixed.jsonl",
        [{"title": "alpha particle detector"}, "oops", [1], {"title": ""}, {"title": "beta decay in nuclei"}],
    )
    args = ["--model", str(model_path), "--data", str(data), "--query", "beta decay", "--json", "--topk", "5"]
    assert search_cli.main([*args, "--skip-invalid", "--quiet"]) == 0
    captured = capsys.readouterr()
    hits = json.loads(captured.out)[0]["hits"]
    assert sorted(h["line"] for h in hits) == [1, 5]
    assert "3 line(s) skipped" in captured.err


def test_topk_zero_and_empty_query(tiny_model, sample_jsonl, capsys):
    _, model_path, _ = tiny_model
    base = ["--model", str(model_path), "--data", str(sample_jsonl)]
    assert search_cli.main([*base, "--query", "x", "--topk", "0"]) == 2
    _one_error_line(capsys, r"--topk must be a positive integer, got 0")
    for query in ["", "   ", "?! ... --"]:
        assert search_cli.main([*base, "--query", query]) == 2
        _one_error_line(capsys, r"--query: the query .* has no letter or digit: there is nothing to search for")
    assert search_cli.main([*base, "--query", "lamp", "--query", "  "]) == 2
    _one_error_line(capsys, r"--query: query 2 '  ' has no letter or digit")


def test_unseen_characters_are_unk_and_counted(tiny_model, sample_jsonl, tmp_path, capsys, write_jsonl):
    embedder, model_path, _ = tiny_model
    data = write_jsonl(tmp_path / "greek.jsonl", [{"title": "жжж lamp"}, {"title": "desk lamp"}, {"title": "€€ ☃"}])
    vectors = embedder.embed_texts(["жжж lamp", "desk lamp", "€€ ☃"])
    assert embedder.last_unknown == (2, 6)  # 3 Cyrillic letters in one text, 2 euro signs and a snowman in another
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    out = tmp_path / "e.npy"
    assert embed_cli.main(["--model", str(model_path), "--input", str(data), "--output", str(out)]) == 0
    assert np.load(out).shape == (3, embedder.dim)
    assert "2 of 3 text(s) hold 6 character(s) outside the model's vocabulary" in capsys.readouterr().err


def test_model_from_another_program(sample_jsonl, tmp_path, capsys):
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(2, 2)}, foreign)
    assert search_cli.main(["--model", str(foreign), "--data", str(sample_jsonl), "--query", "x"]) == 2
    _one_error_line(capsys, r"resnet\.pt: not a jsonembed model file")
    assert (
        embed_cli.main(["--model", str(foreign), "--input", str(sample_jsonl), "--output", str(tmp_path / "o.npy")])
        == 2
    )
    _one_error_line(capsys, r"not a jsonembed model file")


def test_bad_config_key_and_value(sample_jsonl, tmp_path, capsys):
    assert train_cli.main([str(sample_jsonl), "--output", str(tmp_path / "m.pt"), "char_dims=8"]) == 2
    _one_error_line(capsys, r"unknown key 'char_dims'")
    assert train_cli.main([str(sample_jsonl), "--output", str(tmp_path / "m.pt"), "field_drop_prob=1.5"]) == 2
    _one_error_line(capsys, r"'field_drop_prob' must be between 0 and 1")
    assert train_cli.main([str(sample_jsonl), "--output", str(tmp_path / "m.pt"), "--config", "nope.yaml"]) == 2
    _one_error_line(capsys, r"nope\.yaml: config file not found")
