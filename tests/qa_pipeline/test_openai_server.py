"""``qa-generate GENERATOR=openai`` against a real OpenAI-compatible server: llama-cpp-python's
server on 127.0.0.1 serving the packaged SmolLM2 GGUF (start, wait for health, generate for one
paper, stop). llama-cpp-python builds from source, so it is optional (`make setup-llama`);
without it the test skips and the HTTP contract tests in test_generators.py stand alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"server at {url} not healthy after {timeout:.0f} s")


def test_qa_generate_against_a_real_llama_cpp_server(tmp_path, shared_data):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] not installed (make setup-llama)")
    from embshared.io import load_cranfield
    from embshared.models import smollm2_gguf_path
    from qa_pipeline.cli import generate
    from qa_pipeline.records import records_to_papers, write_papers

    if not (shared_data / "cranfield" / "cran.all.1400").is_file():
        pytest.skip("Cranfield not found")
    (paper,) = records_to_papers(load_cranfield(shared_data / "cranfield").records[:1], "cranfield-", "x").papers
    write_papers([paper], tmp_path / "in")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_gguf_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_healthy(url, proc)
        out = tmp_path / "out"
        args = [
            "--input_dir",
            str(tmp_path / "in"),
            "--output_dir",
            str(out),
            "--generator",
            "openai",
            "--model",
            "smollm2",
            "--base_url",
            url,
            "questions_per_passage=3",
            "passages.min_words=10",
            "openai.temperature=0.7",
            "openai.max_tokens=120",
            "openai.timeout=120",
        ]
        assert generate.main(args) == 0, (tmp_path / "server.log").read_text()[-2000:]
        rows = [json.loads(x) for x in (out / "questions_answers.jsonl").read_text().splitlines() if x.strip()]
        assert 1 <= len(rows) <= 3
        assert all(r["generator"] == "openai" and r["model"] == "smollm2" for r in rows)
        assert all(r["paper_id"] == paper.paper_id and r["question"].endswith("?") for r in rows)
        stats = json.loads((out / "generation_stats.json").read_text())
        assert stats["candidates"] >= len(rows) and stats["papers_done"] == 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None
