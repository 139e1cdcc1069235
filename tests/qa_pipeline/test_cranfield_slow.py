"""Slow tests on Cranfield abstracts: SmolLM2 generation killed mid-run and resumed, and a tiny
end-to-end run of the bench's Cranfield track (records -> papers -> SmolLM2 -> embeddingFT -> metrics)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def cranfield_papers_dir(shared_data, folder, n):
    from embshared.io import load_cranfield
    from qa_pipeline.records import records_to_papers, write_papers

    if not (shared_data / "cranfield" / "cran.all.1400").is_file():
        pytest.skip("Cranfield not found")
    made = records_to_papers(load_cranfield(shared_data / "cranfield").records[:n], "cranfield-", "cran.all.1400")
    write_papers(made.papers, folder)
    return [p.paper_id for p in made.papers]


def env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def done_papers(out) -> dict:
    try:
        return json.loads((out / "progress.json").read_text())["papers"]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_smollm2_generation_killed_then_resumed_without_repeating_papers(tmp_path, shared_data):
    ids = cranfield_papers_dir(shared_data, tmp_path / "in", 10)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "qa_pipeline.generate",
        "--input_dir",
        str(tmp_path / "in"),
        "--output_dir",
        str(out),
        "--generator",
        "smollm2",
        "questions_per_passage=1",
        "chunk_passages=2",
        "llm.batch_size=2",
        "llm.max_passage_tokens=128",
        "passages.min_words=10",
    ]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env())
        deadline = time.time() + 600
        while len(done_papers(out)) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no clean-up handler runs
        proc.wait()
    done = done_papers(out)
    assert 2 <= len(done) < len(ids), (tmp_path / "first.log").read_text()[-2000:]
    rows_before = [json.loads(x) for x in (out / "questions_answers.jsonl").read_text().splitlines() if x.strip()]
    kept_before = [r for r in rows_before if r["paper_id"] in done]

    second = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"from {len(ids) - len(done)} paper(s) ({len(done)} already done)" in second.stdout
    rows = [json.loads(x) for x in (out / "questions_answers.jsonl").read_text().splitlines() if x.strip()]
    assert [r for r in rows if r["paper_id"] in done] == kept_before  # finished papers untouched
    assert set(done_papers(out)) == set(ids)
    assert len({r["id"] for r in rows}) == len(rows)  # no paper's rows twice


def test_tiny_end_to_end_cranfield_track(tmp_path, shared_data, repo):
    """The bench's Cranfield track on 48 abstracts (smoke=true) through SmolLM2 and embeddingFT;
    evaluation on all 225 questions against all 1,398 abstracts."""
    for sub in ("cranfield", "scifact", "pubmedqa"):
        if not (shared_data / sub).is_dir():
            pytest.skip(f"{sub} not found")
    work = tmp_path / "work"
    cmd = [
        sys.executable,
        str(repo / "qa_pipeline" / "bench" / "bench_qa.py"),
        "smoke=true",
        "tracks=[cranfield]",
        "cranfield.forgetting=false",
        f"work_dir={work}",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=1800, cwd=repo / "qa_pipeline")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((work / "smoke" / "qa_cranfield.json").read_text())
    assert (report["papers"], report["queries"], report["dev_queries"], report["rest_queries"]) == (1398, 225, 112, 113)
    stats = report["generation"]["stats"]
    assert stats["papers_done"] + stats["papers_skipped"] == 48 and stats["candidates"] == 48
    assert 0 < stats["kept"] <= 48 and report["generation"]["speed"]["questions_per_second"] > 0
    rows = report["cranfield"]
    assert set(rows) == {"bm25", "base", "fine-tuned (smollm2)", "fine-tuned (inverse_cloze)"}
    # BM25 on the full collection does not depend on the training: a fixed figure
    assert rows["bm25"]["ndcg@10"] == pytest.approx(BM25_CRANFIELD_NDCG10, abs=1e-4)
    assert rows["fine-tuned (smollm2)"]["ndcg@10"] != rows["base"]["ndcg@10"]  # the model was trained
    assert report["training"]["smollm2"]["steps"] >= 1
    md = (work / "smoke" / "qa_cranfield.md").read_text()
    assert "Reproduce: `make bench-qa smoke=true tracks=[cranfield]" in md


#: BM25 (bm25s, Snowball stemming) NDCG@10 on Cranfield's 225 questions against the 1,398 abstracts with text
BM25_CRANFIELD_NDCG10 = 0.3650
