"""The embedding server (embedding_ft.serve): OpenAI client round trip, batching, limits, hot swap, page, binding.

Everything runs on a tiny random model (tests/conftest.py's ``save_tiny_base``) and small
indexes built with embedding_ft.index.build_index; servers run in-process (uvicorn on
127.0.0.1 and a free port, or TestClient), every request loop is bounded in count and time.
The page test drives headless Chromium over its DevTools pipe and is skipped when
/usr/bin/chromium is absent.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from embshared.io import Documents

KEY = "test-key-123"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DOCS_A = [
    "Vitamin D supplements improve bone density in older adults.",
    "Aspirin lowers the risk of heart attacks in some patients.",
    "Regular exercise reduces blood pressure and improves sleep.",
    "Smoking damages the lungs and raises the risk of cancer.",
    "Coffee drinking is linked to a lower risk of liver disease.",
    "Antibiotics do not cure viral infections such as the common cold.",
    "Sleep deprivation impairs memory and attention.",
    "A diet high in fibre lowers cholesterol levels.",
]
DOCS_B = [
    "Solar panels convert sunlight into electricity.",
    "Wind turbines generate power from moving air.",
    "Batteries store energy for use at night.",
    "Hydroelectric dams turn falling water into power.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app):
    """``app`` served by uvicorn on 127.0.0.1 and a free port (a thread of this process); yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class CountingEncoder:
    """Wraps an encoder: counts ``encode`` calls (forward passes on the worker), can hold them at a gate or fail."""

    def __init__(self, encoder, delay: float = 0.0):
        self.encoder = encoder
        self.delay = delay
        self.calls: list[int] = []  # texts per call
        self.threads: set[str] = set()
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def encode(self, texts, batch_size=32, normalize_embeddings=False, **kwargs):
        self.calls.append(len(texts))
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(timeout=30), "the gate was never opened"
        if any(t == "explode" for t in texts):
            raise RuntimeError('boom\nTraceback (most recent call last):\n  File "x.py", line 1')
        time.sleep(self.delay)
        return self.encoder.encode(texts, batch_size=batch_size, normalize_embeddings=normalize_embeddings, **kwargs)

    def __getattr__(self, name):  # tokenizer, max_seq_length, ...
        return getattr(self.encoder, name)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_base_factory) -> str:
    return tiny_base_factory(tmp_path_factory.mktemp("serve-model"), seed=0)


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from embedding_ft.backends import load_encoder

    return load_encoder(tiny_model, "torch")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_model, encoder) -> dict:
    from embedding_ft.index import build_index

    root = tmp_path_factory.mktemp("serve-indexes")
    out = {}
    for name, texts in (("a", DOCS_A), ("b", DOCS_B)):
        docs = Documents([f"{name}{i}" for i in range(len(texts))], texts, f"test-{name}")
        out[name], _ = build_index(root / name, docs, tiny_model, encoder=encoder)
    return out


def make_app(index, encoder, **settings):
    from embedding_ft.serve import Engine, ServeSettings, create_app

    return create_app(Engine(index, encoder=encoder), ServeSettings(**settings))


def assert_one_line_error(reply: httpx.Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    message = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in reply.text and 'File "' not in reply.text
    assert body["error"]["code"] == status
    return message


def test_openai_client_round_trip(indexes, encoder):
    from openai import AuthenticationError, OpenAI

    app = make_app(indexes["a"], encoder, api_key=KEY)
    name = app.state.serve.engine.name
    texts = ["vitamin d and bone density", "does coffee protect the liver?", "a third, slightly longer text here"]
    expected = np.asarray(encoder.encode(texts, normalize_embeddings=True), dtype=np.float32)
    with served(app) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [name]
        default = client.embeddings.create(model=name, input=texts)  # the client asks for base64 and decodes it
        got = np.array([d.embedding for d in default.data], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert [d.index for d in default.data] == [0, 1, 2]
        # usage: the model's own tokenizer's count, special tokens in, cut at the model's max length
        tokenizer, limit = encoder.tokenizer, encoder.max_seq_length
        counts = [len(tokenizer(t, truncation=True, max_length=limit)["input_ids"]) for t in texts]
        assert default.usage.prompt_tokens == default.usage.total_tokens == sum(counts) > len(texts)
        engine = app.state.serve.engine
        long = " ".join(["vitamins"] * 3 * limit)  # counted on a worker thread; short texts on the event loop
        assert engine.count_tokens_inline([*texts, long]) == engine.count_tokens([*texts, long]) == [*counts, limit]
        as_float = client.embeddings.create(model=name, input=texts, encoding_format="float")
        np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), expected, atol=1e-5)
        as_b64 = client.embeddings.create(model=name, input=texts, encoding_format="base64")
        decoded = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in as_b64.data])
        np.testing.assert_array_equal(decoded, np.array([d.embedding for d in as_float.data], dtype=np.float32))
        cut = client.embeddings.create(model=name, input=texts[0], dimensions=16, encoding_format="float")
        vector = np.array(cut.data[0].embedding)
        assert vector.shape == (16,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        np.testing.assert_allclose(vector, expected[0, :16] / np.linalg.norm(expected[0, :16]), atol=1e-5)
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).embeddings.create(model=name, input="x")


def test_concurrent_requests_are_batched(indexes, encoder):
    counting = CountingEncoder(encoder, delay=0.05)
    app = make_app(indexes["a"], counting, batch_wait_ms=30)
    name = app.state.serve.engine.name
    texts = [f"query number {i} about {DOCS_A[i % len(DOCS_A)].split()[0]}" for i in range(16)]
    with served(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        barrier = threading.Barrier(16, timeout=30)

        def one(text):
            barrier.wait()
            return client.post("/v1/embeddings", json={"model": name, "input": text, "encoding_format": "float"})

        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(one, texts))
        metrics = client.get("/metrics").text
        health = client.get("/health")
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
    got = np.array([r.json()["data"][0]["embedding"] for r in replies], dtype=np.float32)
    np.testing.assert_allclose(got, encoder.encode(texts, normalize_embeddings=True), atol=1e-5)
    assert sum(counting.calls) == 16 and len(counting.calls) < 16, counting.calls
    assert counting.threads == {"embed-batcher-0"}  # one worker thread runs the model (the default)
    assert health.status_code == 200 and health.json()["ready"] is True
    for series in (
        'embed_serve_requests_total{method="POST",route="/v1/embeddings",status="200"} 16.0',
        "embed_serve_request_seconds_bucket",
        "embed_serve_queue_texts",
        f"embed_serve_batch_texts_count {float(len(counting.calls))}",
    ):
        assert series in metrics, series


def test_two_workers_run_two_batches_at_once_each_on_its_own_copy(encoder):
    from embedding_ft.serve.batcher import Batcher, Replicas

    first, second = CountingEncoder(encoder), CountingEncoder(encoder)
    gate = threading.Event()
    first.gate = second.gate = gate  # a forward pass holds its worker until the gate opens
    batcher = Batcher(budget_tokens=32, wait_ms=1, workers=2).start()  # 4 texts of 8 tokens: one request a batch
    replicas = Replicas([first, second])
    texts = [[f"request {r} text {i}" for i in range(4)] for r in range(3)]
    try:
        held_a = batcher.submit(replicas, texts[0], [8] * 4)
        assert first.entered.wait(10) or second.entered.wait(10)
        held_b = batcher.submit(replicas, texts[1], [8] * 4)
        # both copies are inside a forward pass at once: the second worker did not wait for the first
        assert first.entered.wait(10) and second.entered.wait(10), (first.calls, second.calls)
        gate.set()
        for future, batch in ((held_a, texts[0]), (held_b, texts[1])):
            np.testing.assert_allclose(
                future.result(timeout=30), encoder.encode(batch, normalize_embeddings=True), atol=1e-5
            )
        # a worker that found the queue empty waits for more instead of ending
        later = batcher.submit(replicas, texts[2], [8] * 4).result(timeout=30)
        np.testing.assert_allclose(later, encoder.encode(texts[2], normalize_embeddings=True), atol=1e-5)
    finally:
        gate.set()
        batcher.stop()
    assert first.threads == {"embed-batcher-0"} and second.threads == {"embed-batcher-1"}
    assert sorted(first.calls + second.calls) == [4, 4, 4]


def test_shared_cores_go_to_a_lone_worker_and_are_split_between_busy_ones(encoder):
    """share_cores=2: the first batch, alone, runs with 2 torch threads; one started while it is held
    runs with 1; after both ended, a lone batch has 2 again (each worker sets its own thread's count)."""
    import torch

    from embedding_ft.serve.batcher import Batcher, Replicas

    seen: list[tuple[str, int]] = []

    class Recording(CountingEncoder):
        def encode(self, texts, **kwargs):
            seen.append((threading.current_thread().name, torch.get_num_threads()))
            return super().encode(texts, **kwargs)

    first, second = Recording(encoder), Recording(encoder)
    gate = threading.Event()
    first.gate = second.gate = gate
    before = torch.get_num_threads()
    batcher = Batcher(budget_tokens=32, wait_ms=1, workers=2, share_cores=2).start()
    replicas = Replicas([first, second])
    try:
        held = batcher.submit(replicas, ["a b c"] * 4, [8] * 4)
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        other = batcher.submit(replicas, ["d e f"] * 4, [8] * 4)
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        held.result(timeout=30), other.result(timeout=30)
        batcher.submit(replicas, ["g h i"] * 4, [8] * 4).result(timeout=30)
    finally:
        gate.set()
        batcher.stop()
    assert [threads for _, threads in seen] == [2, 1, 2], seen
    assert seen[0][0] != seen[1][0]  # the two held batches ran on the two workers
    assert torch.get_num_threads() == before  # the caller's thread is untouched


def test_a_lone_request_runs_at_once_and_requests_under_load_wait_to_be_batched(encoder):
    from embedding_ft.serve.batcher import Batcher

    counting = CountingEncoder(encoder)
    batcher = Batcher(budget_tokens=10_000, wait_ms=60_000).start()  # a wait no test could sit through
    try:
        # no load: the lone request does not wait the 60 s for company
        np.testing.assert_allclose(
            batcher.submit(counting, ["alone"], [3]).result(timeout=20),
            encoder.encode(["alone"], normalize_embeddings=True),
            atol=1e-5,
        )
        counting.gate = threading.Event()
        counting.entered.clear()
        held = batcher.submit(counting, ["first"], [3])  # a lone request again: runs at once, held at the gate
        assert counting.entered.wait(10)
        queued = [batcher.submit(counting, [t], [3]) for t in ("second", "third")]
        counting.gate.set()
        held.result(timeout=20)
        assert counting.calls == [1, 1], counting.calls  # the two queued wait their 60 s (no budget reached)...
        batcher.budget = 6  # ...until they fill a batch: they go together
        with batcher._cond:
            batcher._cond.notify_all()
        for future in queued:
            future.result(timeout=20)
        assert counting.calls == [1, 1, 2], counting.calls
    finally:
        if counting.gate is not None:
            counting.gate.set()
        batcher.stop()


def test_the_worker_returns_free_heap_pages_at_its_interval_between_batches(encoder, monkeypatch):
    from embedding_ft.serve import batcher as batching

    trims = []
    monkeypatch.setattr(batching, "release_free_memory", lambda: trims.append(threading.current_thread().name))
    for every, expected in ((0.0, 3), (3600.0, 0)):
        trims.clear()
        batcher = batching.Batcher(budget_tokens=100, wait_ms=1, trim_every_s=every).start()
        try:
            for text in ("one", "two", "three"):  # one after another: three batches
                batcher.submit(encoder, [text], [3]).result(timeout=20)
            deadline = time.monotonic() + 10
            while len(trims) < expected and time.monotonic() < deadline:  # the trim follows the reply
                time.sleep(0.01)
        finally:
            batcher.stop()
        assert trims == ["embed-batcher-0"] * expected, (every, trims)


def test_engine_with_two_workers_loads_a_copy_per_worker(indexes, tiny_model):
    from embedding_ft.serve import Engine

    engine = Engine(indexes["a"], workers=2)
    assert len(engine.replicas) == 2 and engine.replicas[0] is not engine.replicas[1]
    assert engine.encoder is engine.replicas[0]
    texts = ["one query", "another, longer query about vitamins"]
    np.testing.assert_allclose(
        engine.replicas[1].encode(texts, normalize_embeddings=True),
        engine.replicas[0].encode(texts, normalize_embeddings=True),
        atol=1e-6,
    )
    kept = Engine(indexes["b"], encoder=engine.replicas, workers=2)  # a reload that keeps the model
    assert kept.replicas is engine.replicas and kept.reused_model


def test_full_queue_answers_429_with_retry_after(indexes, encoder):
    counting = CountingEncoder(encoder)
    counting.gate = threading.Event()
    app = make_app(indexes["a"], counting, queue_texts=2, max_texts=2, batch_wait_ms=0)
    state, name = app.state.serve, app.state.serve.engine.name
    body = {"model": name, "input": "held at the gate"}
    with served(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(3) as pool:
        try:
            first = pool.submit(client.post, "/v1/embeddings", json=body)
            assert counting.entered.wait(timeout=30)  # the worker holds the first request at the gate
            queued = [pool.submit(client.post, "/v1/embeddings", json=body) for _ in range(2)]
            deadline = time.monotonic() + 30
            while state.batcher.depth < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert state.batcher.depth == 2
            refused = client.post("/v1/embeddings", json=body)
            assert_one_line_error(refused, 429)
            assert int(refused.headers["Retry-After"]) >= 1
        finally:
            counting.gate.set()
        assert first.result(timeout=60).status_code == 200
        assert [f.result(timeout=60).status_code for f in queued] == [200, 200]


def test_limits_malformed_json_and_errors_are_one_line(indexes, encoder):
    from fastapi.testclient import TestClient

    app = make_app(indexes["a"], CountingEncoder(encoder), max_texts=4, max_chars=100, max_top_k=5, max_body_bytes=4000)
    name = app.state.serve.engine.name
    post = "/v1/embeddings"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert "at most 4" in assert_one_line_error(client.post(post, json={"model": name, "input": ["x"] * 5}), 413)
        assert_one_line_error(client.post(post, json={"model": name, "input": "y" * 101}), 413)
        assert_one_line_error(client.post(post, content=b"z" * 4001, headers={"Content-Type": "application/json"}), 413)
        chunked = client.post(
            post, content=(b"z" * 1000 for _ in range(5)), headers={"Content-Type": "application/json"}
        )
        assert_one_line_error(chunked, 413)  # no Content-Length: refused while read
        assert_one_line_error(client.post("/search", json={"query": "vitamin", "top_k": 6}), 413)
        malformed = client.post(post, content=b'{"model": "m", "input": ', headers={"Content-Type": "application/json"})
        assert assert_one_line_error(malformed, 422) == "malformed JSON body"
        for bad in (
            {"model": name, "input": [1, 2]},  # token ids are not taken
            {"model": name, "input": []},
            {"model": name, "input": "  "},
            {"model": name, "input": "x", "unknown": 1},
            {"model": name, "input": "x", "dimensions": 10_000},
            {"model": name, "input": "x", "encoding_format": "int8"},
            {"input": "x"},
        ):
            assert_one_line_error(client.post(post, json=bad), 422)
        assert_one_line_error(client.post(post, json={"model": "other", "input": "x"}), 404)
        assert_one_line_error(client.post("/search", json={"query": ""}), 422)
        assert "RuntimeError" in assert_one_line_error(client.post(post, json={"model": name, "input": "explode"}), 500)
        assert_one_line_error(client.get("/nowhere"), 404)
        assert_one_line_error(client.post("/admin/reload", json={}), 403)  # no key set: no admin
        ok = client.post("/search", json={"query": "vitamin bone density", "top_k": 3, "hybrid": True})
        assert ok.status_code == 200
        hits = ok.json()["hits"]
        assert len(hits) == 3 and hits[0]["id"] == "a0" and set(hits[0]) >= {"id", "score", "text", "bm25", "dense"}
        assert hits[0]["bm25"] > 0 and "bm25" in hits[0]["found_by"] and -1 <= hits[0]["dense"] <= 1


def test_search_parts_match_the_index(indexes, encoder):
    from fastapi.testclient import TestClient

    from embedding_ft.index import Searcher

    searcher = Searcher(indexes["a"], encoder=encoder)
    query = "exercise and blood pressure"
    q = searcher.encode([query])[0]
    lexical = searcher.bm25.score_matrix([query])[0]
    with TestClient(make_app(indexes["a"], encoder)) as client:
        for hybrid in (False, True):
            hits = client.post("/search", json={"query": query, "top_k": 4, "hybrid": hybrid}).json()["hits"]
            expected = searcher.search(query, 4, hybrid)
            assert [h["id"] for h in hits] == [e.id for e in expected]
            for hit, exp in zip(hits, expected):
                row = searcher.ids.index(hit["id"])
                assert hit["score"] == pytest.approx(exp.score, abs=1e-5)
                assert hit["dense"] == pytest.approx(float(searcher.embeddings[row] @ q), abs=1e-5)
                assert hit["bm25"] == pytest.approx(float(lexical[row]), abs=1e-5)


def test_api_key_guards_every_route_but_health_and_page(indexes, encoder):
    from fastapi.testclient import TestClient

    with TestClient(make_app(indexes["a"], encoder, api_key=KEY)) as client:
        assert client.get("/health").status_code == 200
        assert "<title>" in client.get("/").text
        for method, path in (("get", "/metrics"), ("get", "/v1/models"), ("post", "/search"), ("get", "/docs")):
            reply = getattr(client, method)(path, headers={"Authorization": "Bearer nope"})
            assert_one_line_error(reply, 401)
        assert client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_reload_swaps_the_index_with_no_failed_request(indexes, encoder, tiny_base_factory, tmp_path):
    from embedding_ft.backends import load_encoder
    from embedding_ft.index import build_index

    app = make_app(indexes["a"], encoder, api_key=KEY)
    state = app.state.serve
    auth = {"Authorization": f"Bearer {KEY}"}
    results: list[tuple[int, str]] = []
    swapped = threading.Event()
    with served(app) as url, httpx.Client(base_url=url, timeout=60, headers=auth) as client:

        def searcher() -> None:
            after = 0
            for _ in range(500):  # bounded: until 5 requests after the swap
                reply = client.post("/search", json={"query": "power energy vitamin", "top_k": 2, "hybrid": True})
                results.append((reply.status_code, reply.json().get("index", reply.text)))
                after += swapped.is_set()
                if after >= 5:
                    return

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(searcher) for _ in range(4)]
            deadline = time.monotonic() + 30
            while len(results) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                swap = client.post("/admin/reload", json={"index": str(indexes["b"])})
            finally:
                swapped.set()
            for f in futures:
                f.result(timeout=120)
        assert swap.status_code == 200, swap.text
        assert swap.json()["docs"] == len(DOCS_B) and swap.json()["model_reloaded"] is False
        assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
        served_by = [index for _, index in results]
        assert str(indexes["a"]) in served_by and served_by[-1] == str(indexes["b"])
        hits = client.post("/search", json={"query": "wind turbines", "top_k": 4}).json()["hits"]
        assert {h["id"] for h in hits} <= {f"b{i}" for i in range(len(DOCS_B))}
        bad = client.post("/admin/reload", json={"index": str(indexes["b"]) + "-missing"})
        assert "no such index folder" in assert_one_line_error(bad, 422)
        assert state.engine.index == indexes["b"]  # a failed reload keeps the engine in use
        # SIGHUP reloads what the last reload named, on a thread of its own
        from embedding_ft.serve import install_sighup

        before, previous = state.engine, signal.getsignal(signal.SIGHUP)
        try:
            install_sighup(state)
            os.kill(os.getpid(), signal.SIGHUP)
            deadline = time.monotonic() + 30
            while state.engine is before and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            signal.signal(signal.SIGHUP, previous)
        assert state.engine is not before and state.engine.index == indexes["b"]
        metrics = client.get("/metrics").text
        assert 'embed_serve_reloads_total{outcome="ok"} 2.0' in metrics
        assert 'embed_serve_reloads_total{outcome="failed"} 1.0' in metrics
        # an index built with other weights brings its model: loaded beside, warmed on the worker, swapped
        other = tiny_base_factory(tmp_path / "other-model", seed=1)
        other_encoder = load_encoder(other, "torch")
        docs = Documents([f"c{i}" for i in range(len(DOCS_B))], DOCS_B, "test-c")
        index_c, _ = build_index(tmp_path / "c", docs, other, encoder=other_encoder)
        swap = client.post("/admin/reload", json={"index": str(index_c)})
        assert swap.status_code == 200 and swap.json()["model_reloaded"] is True and swap.json()["model"] == other
        reply = client.post("/v1/embeddings", json={"model": other, "input": DOCS_B[0], "encoding_format": "float"})
        expected = other_encoder.encode([DOCS_B[0]], normalize_embeddings=True)[0]
        np.testing.assert_allclose(reply.json()["data"][0]["embedding"], expected, atol=1e-5)


def test_the_engine_a_reload_replaces_is_freed(indexes, monkeypatch):
    """make serve-embed's own entry point keeps no engine of its own: after a reload the old one is freed.

    (Its main() once held the first engine in a local for the server's life: in the 10-minute soak
    the full index stayed in memory beside the one reloaded, a step of ~50 MB in RSS.)
    """
    import gc
    import weakref

    import uvicorn

    from embedding_ft.cli.serve import main

    seen = {}

    def run(app, **kwargs):  # instead of serving: reload as POST /admin/reload does, then look
        state = app.state.serve
        first = weakref.ref(state.engine)
        state.reload(str(indexes["b"]))
        gc.collect()
        seen.update(first_freed=first() is None, serving=state.engine.index, host=kwargs["host"])

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["--index", str(indexes["a"]), "--port", "0"]) == 0
    assert seen == {"first_freed": True, "serving": indexes["b"], "host": "127.0.0.1"}


def test_binding_a_non_loopback_address_without_a_key_is_refused(indexes, capsys, monkeypatch):
    from embedding_ft.cli.serve import KEY_ENV, main
    from embedding_ft.serve import check_bind, is_loopback

    monkeypatch.delenv(KEY_ENV, raising=False)
    assert main(["--index", str(indexes["a"]), "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to bind 0.0.0.0 without an API key") and "\n" not in err
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "::", "example.org"))
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", KEY)


# ---------------------------------------------------------------------------------------------
# the page, in headless Chromium (the DevTools protocol on a pipe, as tests/gapfill's page test)


@pytest.mark.slow  # a browser, as tests/gapfill's page test
@pytest.mark.skipif(not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)), reason=f"{CHROMIUM} not installed")
def test_page_shows_hits_for_a_typed_query(indexes, encoder, tmp_path, devtools):
    app = make_app(indexes["a"], encoder, api_key=KEY)
    with served(app) as url:
        browser = devtools(str(tmp_path / "profile"), window_size="1000,800")
        try:
            browser.open(url + "/")
            browser.wait_for("document.readyState === 'complete' && !!document.getElementById('query')")
            browser.evaluate(f"document.getElementById('api-key').value = {json.dumps(KEY)}")
            browser.evaluate("document.getElementById('query').focus()")
            browser.send("Input.insertText", text="vitamin bone density")  # typed: fires the input event
            n_hits = browser.wait_for(
                "document.getElementById('status').dataset.state === 'done' && document.querySelectorAll('li.hit').length"
            )
            assert n_hits == len(DOCS_A)  # top 10 of 8 documents
            first = browser.evaluate("document.querySelector('li.hit').dataset.id")
            assert first == "a0"
            text = browser.evaluate("document.querySelector('li.hit').textContent")
            assert "bm25" in text and "dense" in text and "score" in text and "Vitamin D" in text
            assert browser.evaluate("document.querySelectorAll('li.hit .found.bm25').length") >= 1
            if os.environ.get("EMBED_SERVE_SCREENSHOT"):
                data = browser.send("Page.captureScreenshot", format="png")["data"]
                with open(os.environ["EMBED_SERVE_SCREENSHOT"], "wb") as handle:
                    handle.write(base64.b64decode(data))
        finally:
            browser.close()
