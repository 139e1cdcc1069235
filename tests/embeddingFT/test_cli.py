"""infer and evaluate command lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedding_ft.cli import evaluate, infer


def test_infer_prints_pairwise_similarities(capsys):
    texts = "A cat sits on the mat.|A kitten is sitting on a rug.|Stock markets fell sharply today."
    assert infer.main(["--model", "all-MiniLM-L6-v2", "--texts", texts]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = [[float(v) for v in line.split()[-3:]] for line in lines[1:]]
    sim = np.array(values)
    assert np.allclose(np.diag(sim), 1.0, atol=1e-3)
    assert sim[0, 1] > sim[0, 2] + 0.3  # the paraphrase is far closer than the unrelated sentence


def test_infer_embeds_a_file(tmp_path, capsys):
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": f"document number {i}"}) + "\n" for i in range(5)))
    out = tmp_path / "emb.npy"
    assert infer.main(["--model", "all-MiniLM-L6-v2", "--input", str(data), "--output", str(out)]) == 0
    emb = np.load(out)
    assert emb.shape == (5, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] < 0.999  # the rows are the documents' own, in order
    assert infer.main(["--model", "all-MiniLM-L6-v2", "--input", str(data), "--output", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), emb)  # the second run reads the cache beside the output


def test_infer_bad_field_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "docs.jsonl"
    data.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    assert infer.main(["--model", "all-MiniLM-L6-v2", "--input", str(data), "--output", str(tmp_path / "e.npy")]) == 2
    assert capsys.readouterr().err == f"error: {data}:2: field 'text' missing\n"
    assert not (tmp_path / "e.npy").exists()


@pytest.mark.slow
def test_evaluate_reports_bm25_and_model(tiny_beir, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert evaluate.main(["--model", "all-MiniLM-L6-v2", "--data", str(tiny_beir), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 40
    assert set(result["metrics"]) == {"BM25", "all-MiniLM-L6-v2", "hybrid (BM25 + all-MiniLM-L6-v2)"}
    assert 0 < result["metrics"]["hybrid (BM25 + all-MiniLM-L6-v2)"]["ndcg@10"] <= 1
    assert 0 < result["metrics"]["all-MiniLM-L6-v2"]["ndcg@10"] <= 1


def test_create_rag_dataset_retrieves_the_matching_context(tmp_path):
    from embedding_ft.cli import rag_dataset as script

    docs = tmp_path / "docs.txt"
    docs.write_text(
        "Paris is the capital of France.\nThe mitochondria produces ATP.\nPython is a programming language.\n"
    )
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "Which organelle makes ATP?", "answer": "mitochondria"}\n{"question": "What is the capital of France?"}\n'
    )
    out = tmp_path / "rag.jsonl"
    args = [
        "--model",
        "all-MiniLM-L6-v2",
        "--questions",
        str(questions),
        "--documents",
        str(docs),
        "--top-k",
        "2",
        "--output",
        str(out),
    ]
    assert script.main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["contexts"][0]["text"] for r in rows] == [
        "The mitochondria produces ATP.",
        "Paris is the capital of France.",
    ]
    assert rows[0]["answer"] == "mitochondria" and len(rows[0]["contexts"]) == 2
    assert rows[0]["contexts"][0]["score"] > rows[0]["contexts"][1]["score"]
    assert script.main([*args[:-4], "--top-k", "0", "--output", str(out)]) == 2
