"""The generators: no-model fallback, an OpenAI-compatible endpoint (mocked), and SmolLM2 (slow)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from qa_pipeline.filters import FilterConfig, clean_question, reject_reason
from qa_pipeline.generators import (
    EndpointUnavailable,
    FallbackConfig,
    FallbackGenerator,
    LocalLLMConfig,
    LocalLLMGenerator,
    OpenAIChatConfig,
    OpenAIChatGenerator,
)
from qa_pipeline.generators.fallback import heading_question
from qa_pipeline.passages import Passage, split_sentences

TITLE = "Multi-contact functional electrical stimulation for hand opening"
BODY = (
    "Functional Electrical Stimulation (FES) is increasingly applied in neurorehabilitation. "
    "Particularly, the use of electrode arrays may allow for selective muscle recruitment. "
    "However, detecting the best electrode configuration constitutes still a challenge. "
    "A multi-contact set-up with thirty electrodes was applied for combined FES and electromyography recording. "
    "The electrode contacts with the best response were then selected for stimulation with FES bursts."
)
PASSAGE = Passage("p#0", "p", "Abstract", f"{TITLE}. {BODY}", TITLE)


def test_inverse_cloze_removes_the_query_sentence_and_is_seeded():
    gen = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=2, seed=1)
    (cands,) = gen.generate([PASSAGE])
    assert len(cands) == 2 and all(c.kind == "pseudo_query" for c in cands)
    sentences = split_sentences(BODY)
    for cand in cands:
        assert cand.question in sentences
        assert cand.question not in cand.answer
        assert cand.answer.startswith(f"{TITLE}. ")  # the title stays with the passage
        assert len(cand.answer.split()) == len(PASSAGE.text.split()) - len(cand.question.split())
    again = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=2, seed=1).generate([PASSAGE])[0]
    assert [c.question for c in again] == [c.question for c in cands]
    other_seeds = {
        FallbackGenerator(FallbackConfig(), n=1, seed=s).generate([PASSAGE])[0][0].question for s in range(8)
    }
    assert len(other_seeds) > 1
    assert all(reject_reason(c.question, c.kind, c.answer, FilterConfig()) is None for c in cands)


def test_heading_questions():
    assert heading_question(PASSAGE) == f"What are the main findings of the paper '{TITLE}'?"
    methods = Passage("p#3", "p", "Methods", "x", "T")
    assert heading_question(methods) == "What methods does the paper 'T' use?"
    custom = Passage("p#4", "p", "Selecting Negative Distractors", "x", "")
    assert heading_question(custom) == "What does the paper report about selecting negative distractors?"
    both = FallbackGenerator(FallbackConfig(method="both"), n=1).generate([methods, PASSAGE])
    assert [c.question for c in both[0]] == ["What methods does the paper 'T' use?"]  # no eligible sentence in "x"
    assert [c.kind for c in both[1]] == ["pseudo_query", "question"]


def chat_mock(replies: list, seen: list) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, content = replies.pop(0)
        if status != 200:
            return httpx.Response(status, text="busy")
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})

    return httpx.MockTransport(handler)


def test_openai_compatible_endpoint():
    seen: list[httpx.Request] = []
    replies = [(503, ""), (200, "1. What is FES used for?\n2. How many electrodes were used?\n3. Extra?")]
    cfg = OpenAIChatConfig(base_url="http://vllm.test/v1/", model="qwen", retry_delay=0)
    gen = OpenAIChatGenerator(cfg, n=2, transport=chat_mock(replies, seen))
    (cands,) = gen.generate([PASSAGE])
    assert [clean_question(c.question) for c in cands] == ["What is FES used for?", "How many electrodes were used?"]
    assert len(seen) == 2 and str(seen[-1].url) == "http://vllm.test/v1/chat/completions"
    body = json.loads(seen[-1].content)
    assert body["model"] == "qwen" and body["messages"][0]["role"] == "system"
    assert BODY in body["messages"][1]["content"] and "2 different" in body["messages"][1]["content"]


def test_openai_endpoint_down_or_misconfigured():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAIChatGenerator(OpenAIChatConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m"))
    with pytest.raises(EndpointUnavailable, match="not reachable"):
        gen.generate([PASSAGE])
    gen = OpenAIChatGenerator(OpenAIChatConfig(model="m"), transport=chat_mock([(404, "")], []))
    with pytest.raises(EndpointUnavailable, match="404"):
        gen.generate([PASSAGE])


@pytest.mark.slow
def test_smollm2_writes_questions():
    """SmolLM2-135M-Instruct (packaged GGUF, converted once) writes real questions."""
    from qa_pipeline.generators import load_local_llm

    cfg = LocalLLMConfig(batch_size=2, max_new_tokens=40, device="cpu")
    model, tokenizer, name = load_local_llm(cfg)
    gen = LocalLLMGenerator(model, tokenizer, cfg, n=2, seed=0, model_name=name)
    other = Passage("q#0", "q", "Introduction", "Transformers pretrained on citation graphs embed papers. " * 5, "")
    out = gen.generate([PASSAGE, other])
    assert [len(c) for c in out] == [2, 2]
    questions = [clean_question(c.question) for cands in out for c in cands]
    kept = [q for q in questions if reject_reason(q, "question", PASSAGE.text, FilterConfig()) is None]
    assert len(kept) >= 2, questions
    assert name == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_openai_endpoint_failing_midway_keeps_the_papers_done(tmp_path, monkeypatch, capsys):
    """500s (and timeouts) are retried with a doubling back-off; then one line naming the URL,
    non-zero exit, and the papers finished before are kept (a rerun does only the rest)."""
    from qa_pipeline import generation
    from qa_pipeline.cli import generate
    from qa_pipeline.paper import Paper, save_paper

    for i in range(3):
        body = f"Electrode arrays number {i} select forearm muscles for stimulation in patients after a stroke. " * 3
        save_paper(Paper(paper_id=f"p{i}", title=f"Paper {i}", abstract=body), tmp_path / "in" / f"p{i}.json")
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["messages"][1]["content"][-60:])
        if len(calls) == 1:
            return httpx.Response(200, json={"choices": [{"message": {"content": "Which muscles do arrays select?"}}]})
        if len(calls) == 2:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(500, text="internal error")

    transport = httpx.MockTransport(handler)
    real = generation.OpenAIChatGenerator
    monkeypatch.setattr(generation, "OpenAIChatGenerator", lambda cfg, n, kind: real(cfg, n, transport, kind))
    sleeps: list[float] = []
    monkeypatch.setattr("qa_pipeline.generators.openai_chat.time.sleep", sleeps.append)
    out = tmp_path / "out"
    args = [
        "--input_dir",
        str(tmp_path / "in"),
        "--output_dir",
        str(out),
        "--generator",
        "openai",
        "--model",
        "m",
        "--base_url",
        "http://llm.test/v1",
        "chunk_passages=1",
        "questions_per_passage=1",
        "openai.max_retries=3",
        "openai.retry_delay=0.5",
    ]
    assert generate.main(args) == 2
    (err,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert "http://llm.test/v1/chat/completions" in err and "HTTP 500 on 4 attempts" in err
    assert sleeps == [0.5, 1.0, 2.0]  # back-off doubles
    assert len(calls) == 5  # paper 0, then paper 1: a timeout and three 500s
    rows = read_jsonl_rows(out / "questions_answers.jsonl")
    assert [r["paper_id"] for r in rows] == ["p0"] and rows[0]["question"] == "Which muscles do arrays select?"
    assert list(json.loads((out / "progress.json").read_text())["papers"]) == ["p0"]


def read_jsonl_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
