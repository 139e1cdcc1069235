"""embeddingFT's server (make serve-embed) under load, next to a naive endpoint and infinity-emb.

    python embeddingFT/bench/bench_serve.py [--model M] [--backend torch|onnx|openvino] [--requests 300]
        [--seconds 60] [--concurrency 1 8 32] [--soak-seconds 600] [--skip-infinity] [--skip-naive] [--skip-soak | --only-soak]
        [--workers N] [--also-workers 2 ...]

Every server runs in a process of its own on 127.0.0.1 (one at a time, so none shares the
cores with another), driven from this process over loopback by asyncio keep-alive connections
(:class:`RawConnection`; ``--client httpx`` for httpx's AsyncClient, which costs the shared cores
far more CPU per request); every load loop stops at ``--requests`` requests or ``--seconds`` seconds, whichever comes first.

1. **Embeddings**: requests of one text each, ~16-token queries (SciFact claims of the bundled
   sample) and ~256-token documents (its abstracts cut to 254 tokens), at concurrency 1, 8
   and 32: texts/s and p50 / p95 / p99 latency, for
   - ``serve``: ``python -m embedding_ft.cli.serve`` (batching across requests on one worker);
   - ``serve-w2``: the same server with ``--workers 2`` (two forward passes at once, each on its
     own copy of the model; a worker alone takes both cores' torch threads, two busy ones one
     each; ``--also-workers``); ``serve-w2-fixed`` with ``--fixed-threads-too``: one torch
     thread per worker whatever the load (the server's ``--threads 1``);
   - ``naive``: a FastAPI endpoint calling ``encode`` once per request on the same model and
     back end (``def`` route: FastAPI runs it on its thread pool), started from this file;
   - ``infinity``: infinity-emb 0.0.78 in its own venv under ``embeddingFT/bench/work/``
     (sharing this workspace's CPU torch through symlinks: PyPI's own torch wheel for Linux
     pulls the CUDA libraries, gigabytes this CPU machine cannot use). If it does not install
     or run, the results say why, in its own words.
2. **Search**: ``POST /search`` p50 / p95 / p99 at concurrency 8 over an index of SciFact's
   5,183 abstracts (the repository's 2,000-abstract sample where ../shared/data is absent),
   dense and hybrid (the index's fusion setting).
3. **Soak**: ``--soak-seconds`` (600) at concurrency 16 of mixed requests (7 query embeddings,
   1 search in 8), with one hot reload (``POST /admin/reload`` to an index of half the
   abstracts) halfway: 5xx count (the target is zero), failed requests, the server's RSS
   every 10 s and its growth from the first minute to the end.

Writes ``embeddingFT/bench/results/serve/serve.{json,md}``. The client shares the 2 cores with
the server it drives: the ratios between systems are the figures to read, absolute rates are low.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from embshared.bench import rss_mb

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "serve"
WORK = HERE / "work" / "serve"
INFINITY_VENV = HERE / "work" / "infinity-venv"
INFINITY_SPEC = "infinity-emb[server,torch]==0.0.78"
SAMPLE = "data/samples/scifact"
DOC_TOKENS = 254  # + [CLS] and [SEP]: 256


# ---------------------------------------------------------------------------------------
# texts and indexes


def bench_texts(model: str, n: int = 400) -> tuple[list[str], list[str], list[str], dict]:
    """(~16-token queries, ~256-token documents, every query, their mean token counts) from the SciFact sample."""
    from transformers import AutoTokenizer

    from embshared.io import load_beir
    from embshared.models import resolve_model
    from embshared.runtime import repo_root

    data = load_beir(repo_root() / SAMPLE)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    count = lambda text: len(tokenizer(text)["input_ids"])  # noqa: E731
    claims = [q for q in data.queries.values() if 12 <= count(q) <= 22][:n]
    docs = []
    for text in data.corpus_texts().values():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= DOC_TOKENS:
            docs.append(tokenizer.decode(ids[:DOC_TOKENS]))
        if len(docs) == n:
            break
    sizes = {"query_tokens_mean": float(np.mean([count(q) for q in claims])), "queries": len(claims)}
    sizes |= {"doc_tokens_mean": float(np.mean([count(d) for d in docs[:50]])), "docs": len(docs)}
    return claims, docs, list(data.queries.values()), sizes


def search_collection() -> Path:
    """SciFact's 5,183 abstracts (../shared/data/scifact) when present, else the repository's 2,000-abstract sample."""
    from embshared.runtime import repo_root, shared_data_dir

    full = shared_data_dir() / "scifact"
    return full if (full / "corpus.jsonl").is_file() else repo_root() / SAMPLE


def build_indexes(model: str, backend: str, file_name: str | None, compute_dtype: str = "float32") -> tuple[Path, Path]:
    """(the search collection's abstracts, the first half for the reload) indexed with the model; reused once built."""
    from embedding_ft.index import build_index, load_vectors
    from embshared.io import Documents, read_documents

    docs = read_documents(search_collection())
    suffix = "" if compute_dtype == "float32" else f"-{compute_dtype}"
    full, half = WORK / f"index-full{suffix}", WORK / f"index-half{suffix}"
    build_index(full, docs, model, backend, file_name, compute_dtype=compute_dtype)
    n = len(docs) // 2
    subset = Documents(docs.ids[:n], docs.texts[:n], docs.source + " (first half)")
    build_index(half, subset, model, backend, file_name, embeddings=load_vectors(full)[:n], compute_dtype=compute_dtype)
    return full, half


# ---------------------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1: started, waited for (``health`` answers 200), stopped."""

    def __init__(self, name: str, cmd: list[str], port: int, health: str, env: dict | None = None, key=None):
        self.name, self.cmd, self.port, self.health, self.key = name, cmd, port, health, key
        self.env = {**os.environ, **(env or {})}
        self.url = f"http://127.0.0.1:{port}"
        self.log = WORK / "logs" / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def start(self, timeout: float = 600.0) -> Server:
        import httpx

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.health, timeout=2).status_code == 200:
                    return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f} s: {self.tail()}")

    def tail(self, lines: int = 6) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def peak_rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid, "VmHWM") if self.proc else None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def serve_server(index: Path, threads: int | None, workers: int | None = None, name: str = "serve") -> Server:
    key = secrets.token_hex(16)
    port = free_port()
    cmd = [sys.executable, "-m", "embedding_ft.cli.serve", "--index", str(index), "--port", str(port)]
    cmd += ["--threads", str(threads)] if threads else []
    cmd += ["--workers", str(workers)] if workers else []
    return Server(name, cmd, port, "/health", {"EMBED_SERVE_API_KEY": key}, key)


def naive_server(
    model: str, backend: str, file_name: str | None, threads: int | None, compute_dtype: str = "float32"
) -> Server:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--naive-server", str(port), "--model", model]
    cmd += ["--backend", backend, "--compute-dtype", compute_dtype] + (["--file-name", file_name] if file_name else [])
    cmd += ["--threads", str(threads)] if threads else []
    return Server("naive", cmd, port, "/health")


def run_naive_server(
    port: int, model: str, backend: str, file_name: str | None, threads: int | None, compute_dtype: str = "float32"
) -> None:
    """The naive peer: one ``encode`` per request, FastAPI's thread pool, no batching, no queue."""
    import uvicorn
    from fastapi import FastAPI

    from embedding_ft.backends import load_encoder
    from embshared.cli import start_run

    start_run(threads=threads, quiet=True)
    encoder = load_encoder(model, backend, file_name, compute_dtype=compute_dtype)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ready": True}

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> dict:
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = encoder.encode(texts, normalize_embeddings=True)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": body.get("model", model)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def infinity_server(model: str) -> tuple[Server | None, str | None]:
    """(infinity-emb's server, None), or (None, why it could not be had: the tool's own last words)."""
    try:
        python, reason = install_infinity()
    except Exception as exc:  # a step of the install itself broke: its words are the reason
        python, reason = None, f"install of {INFINITY_SPEC} failed: {type(exc).__name__}: {str(exc)[:300]}"
    if python is None:
        return None, reason
    from embshared.models import resolve_model

    port = free_port()
    cmd = [str(INFINITY_VENV / "bin" / "infinity_emb"), "v2", "--model-id", resolve_model(model)]
    cmd += ["--served-model-name", "bench-model", "--engine", "torch", "--device", "cpu"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    # BetterTransformer (on by default) needs optimum, not installed: off, through infinity's own variable
    env = {"HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    env["INFINITY_BETTERTRANSFORMER"] = "false"
    return Server("infinity", cmd, port, "/health", env), None


def install_infinity() -> tuple[Path | None, str | None]:
    """infinity-emb in its own venv (once), this workspace's torch linked in; (its python, None) or (None, reason)."""
    import importlib.util

    python = INFINITY_VENV / "bin" / "python"
    stamp = INFINITY_VENV / ".installed"
    if stamp.is_file():
        return python, None
    shutil.rmtree(INFINITY_VENV, ignore_errors=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(INFINITY_VENV)], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"python -m venv failed: {_last_error(made.stderr)}"
    site = Path(
        subprocess.check_output([str(python), "-c", "import site; print(site.getsitepackages()[0])"], text=True).strip()
    )
    ours = Path(importlib.util.find_spec("torch").submodule_search_locations[0]).parent
    for entry in ours.iterdir():  # torch, its dist-info and its sibling packages: seen as installed by pip
        if entry.name.startswith(("torch", "functorch")) and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    log = WORK / "logs" / "infinity-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", INFINITY_SPEC],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired:
        return None, f"pip install {INFINITY_SPEC} did not finish in 30 minutes"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        return None, f"pip install {INFINITY_SPEC} failed: {_last_error(done.stderr)}"
    stamp.write_text(INFINITY_SPEC + "\n")
    return python, None


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error", "Error"))]
    return (errors[-1] if errors else (lines[-1] if lines else "no output"))[:400]


# ---------------------------------------------------------------------------------------
# load


class RawConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the status and body: the load's client.

    Not httpx (which this bench uses for everything else): on the 2 cores the load client shares
    with the server, httpx's AsyncClient spent 2.4 ms of CPU per request at concurrency 32
    (a probe of this bench's load with psutil, AMD EPYC, 2026-12-08), about a third of a core at
    the rate served, taken from the server under test. Native load generators (wrk, oha) exist
    for that reason, but they do not report a latency per request or cycle request bodies as
    this bench does. ``--client httpx`` measures with httpx instead.
    """

    def __init__(self, host: str, port: int, headers: dict | None):
        import orjson

        self.dumps = orjson.dumps
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader = self.writer = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = self.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{self.extra}\r\n"
        )
        self.writer.write(head.encode() + data)
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            headers = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            status = int(status_line.split()[1])
            if "transfer-encoding: chunked" in headers:
                content = b""
                while size := int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                    content += (await self.reader.readexactly(size + 2))[:-2]  # the chunk, not its CRLF
                await self.reader.readuntil(b"\r\n")
            else:
                length = next(
                    (int(h.split(":")[1]) for h in headers.split("\r\n") if h.startswith("content-length:")), 0
                )
                content = await self.reader.readexactly(length)
            if "connection: close" in headers:
                await self.close()
            return status, content
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


CLIENT = "raw"  # the load's client: "raw" (RawConnection) or "httpx" (set by --client)


async def drive(url, requests, concurrency, max_requests, max_seconds, headers=None, on_tick=None) -> dict:
    """Send ``requests`` ((path, body) pairs, cycled) with ``concurrency`` workers; bounded in count and time."""
    from urllib.parse import urlsplit

    import httpx

    latencies, statuses, failures = [], Counter(), Counter()
    order = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()
    deadline = start + max_seconds
    where = urlsplit(url)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:

        async def worker():
            raw = RawConnection(where.hostname, where.port, headers) if CLIENT == "raw" else None
            while time.perf_counter() < deadline:
                i = next(order)
                if i >= max_requests:
                    break
                path, body = requests[i % len(requests)]
                sent = time.perf_counter()
                try:
                    if raw is not None:
                        status, _ = await asyncio.wait_for(raw.post(path, body), timeout=120)
                    else:
                        status = (await client.post(path, json=body)).status_code
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    failures[type(exc).__name__] += 1
                    continue
                statuses[status] += 1
                if status == 200:
                    latencies.append((time.perf_counter() - sent) * 1000)
            if raw is not None:
                await raw.close()

        tasks = [worker() for _ in range(concurrency)] + ([on_tick(client, deadline)] if on_tick else [])
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    return summarize(latencies, statuses, failures, wall)


def summarize(latencies: list[float], statuses: Counter, failures: Counter, wall: float) -> dict:
    ms = np.asarray(latencies) if latencies else np.zeros(1)
    out = {"ok": len(latencies), "per_s": round(len(latencies) / wall, 2), "seconds": round(wall, 2)}
    out |= {f"p{p}_ms": round(float(np.percentile(ms, p)), 2) for p in (50, 95, 99)}
    out["status"] = {str(k): v for k, v in sorted(statuses.items())}
    out["status_5xx"] = sum(v for k, v in statuses.items() if k >= 500)
    out["failed"] = dict(failures)
    return out


def model_id(server: Server, path: str) -> str:
    import httpx

    with contextlib.suppress(Exception):
        return httpx.get(server.url + path, headers=server.headers, timeout=10).json()["data"][0]["id"]
    return "bench-model"


def embeddings_part(server: Server, path: str, name: str, texts: dict, args) -> dict:
    """texts/s and latency percentiles of one-text requests, per text kind and concurrency."""
    out = {}
    for kind, items in texts.items():
        bodies = [(path, {"model": name, "input": t}) for t in items]
        asyncio.run(drive(server.url, bodies, 4, 20, 60, server.headers))  # warm-up
        for concurrency in args.concurrency:
            result = asyncio.run(drive(server.url, bodies, concurrency, args.requests, args.seconds, server.headers))
            out.setdefault(kind, {})[str(concurrency)] = result
            print(f"{server.name:9s} {kind:8s} c={concurrency:<3d} {result['per_s']:8.1f}/s p95 {result['p95_ms']} ms")
    out["peak_rss_mb"] = server.peak_rss_mb()
    return out


def search_part(server: Server, queries: list[str], args) -> dict:
    out = {}
    for mode, hybrid in (("dense", False), ("hybrid", True)):
        bodies = [("/search", {"query": q, "top_k": 10, "hybrid": hybrid}) for q in queries]
        out[mode] = asyncio.run(drive(server.url, bodies, 8, args.requests, args.seconds, server.headers))
        print(f"search    {mode:8s} c=8   {out[mode]['per_s']:8.1f}/s p95 {out[mode]['p95_ms']} ms")
    return out


def soak_part(server: Server, name: str, queries: list[str], reload_index: Path, seconds: float) -> dict:
    """``seconds`` at concurrency 16 with one hot reload halfway; 5xx, failures, RSS over time."""
    requests = [
        ("/search", {"query": q, "top_k": 10, "hybrid": True})
        if i % 8 == 7
        else ("/v1/embeddings", {"model": name, "input": q})
        for i, q in enumerate(queries)
    ]
    samples: list[tuple[float, float | None]] = []
    reload: dict = {}

    async def tick(client, deadline):
        start, halfway = time.perf_counter(), time.perf_counter() + seconds / 2
        while time.perf_counter() < deadline:
            samples.append((round(time.perf_counter() - start, 1), rss_mb(server.proc.pid)))
            if not reload and time.perf_counter() >= halfway:
                sent = time.perf_counter()
                reply = await client.post("/admin/reload", json={"index": str(reload_index)})
                reload.update(
                    status=reply.status_code, seconds=round(time.perf_counter() - sent, 3), at_s=samples[-1][0]
                )
                reload["reply"] = reply.json()
            wake = min(time.perf_counter() + 10.0, deadline, halfway if not reload else deadline)
            await asyncio.sleep(max(0.05, wake - time.perf_counter()))

    result = asyncio.run(drive(server.url, requests, 16, 10_000_000, seconds, server.headers, on_tick=tick))
    extra = {"concurrency": 16, "reload": reload, "rss_mb": samples, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    from embshared.bench import machine_facts

    extra["cpu"] = machine_facts()["cpu"]
    return {**result, **extra, **rss_growth(samples), "zero_5xx": result["status_5xx"] == 0}


def rss_growth(samples: list) -> dict:
    """RSS growth from 1 and from 3 minutes in (two readings of "after warm-up") to the end: MB and %."""
    out = {}
    for minutes in (1, 3):
        after = [rss for t, rss in samples if t >= 60 * minutes and rss is not None]
        if after:
            key = "" if minutes == 1 else "_after_3min"
            out[f"rss_growth_mb{key}"] = round(after[-1] - after[0], 1)
            out[f"rss_growth_pct{key}"] = round(100 * (after[-1] - after[0]) / after[0], 2)
    return out


def ceiling_part(args, texts: dict[str, list[str]]) -> dict:
    """The model alone, in this process with no HTTP: texts/s encoding one text per call and 32 per call.

    Their ratio bounds what batching across requests can gain over the naive endpoint on this
    back end and machine (the forward pass's fixed cost per call against its cost per token);
    serve's rate at concurrency 32 against the batch-32 rate is what HTTP, the queue and the
    load client (on the same cores) cost.
    """
    import torch

    from embedding_ft.backends import load_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = load_encoder(args.model, args.backend, args.file_name, compute_dtype=args.compute_dtype)
    out = {}
    for kind, items in texts.items():
        items = items[: 320 if kind == "queries" else 96]
        encoder.encode(items[:32], batch_size=32)  # warm-up
        rates = {}
        for batch in (1, 32):
            start = time.perf_counter()
            for i in range(0, len(items), batch):
                encoder.encode(items[i : i + batch], batch_size=batch, normalize_embeddings=True)
            rates[f"batch_{batch}_per_s"] = round(len(items) / (time.perf_counter() - start), 2)
        rates["batching_gain"] = round(rates["batch_32_per_s"] / rates["batch_1_per_s"], 2)
        out[kind] = rates
    return out


def goals(report: dict) -> list[str]:
    """The issue's goals, read off the measured rows."""
    emb = report["embeddings"]
    lines = []
    for name in [n for n in emb if n.startswith("serve")]:
        if len(lines):
            workers, _, fixed = name.split("-w")[-1].partition("-")
            what = f"{workers} workers" + (", one torch thread each" if fixed else "")
            lines += ["", f"The same goals for `{name}` ({what}):", ""]
        lines += _goals_of(report, emb[name], name)
    return lines


def _goals_of(report: dict, serve: dict, name: str) -> list[str]:
    emb = report["embeddings"]
    naive, inf = emb.get("naive", {}), emb.get("infinity", {})
    lines = []

    def rate(system, kind, conc):
        return system.get(kind, {}).get(str(conc), system.get(kind, {}).get(conc, {})).get("per_s")

    if rate(serve, "queries", 32) and rate(naive, "queries", 32):
        x = rate(serve, "queries", 32) / rate(naive, "queries", 32)
        lines.append(f"- queries at concurrency 32, {name} / naive: **{x:.2f}x** (goal >= 3x)")
        alone = report.get("model_alone", {}).get("queries")
        if alone:
            lines.append(
                f"  - the model alone, no HTTP: {alone['batch_32_per_s']} queries/s in calls of 32 against "
                f"{alone['batch_1_per_s']} in calls of 1, **{alone['batching_gain']}x**: the most batching can gain "
                f"on this back end here in one call at a time; {name} at concurrency 32 reaches "
                f"{rate(serve, 'queries', 32) / alone['batch_32_per_s']:.0%} of the batch-32 rate"
            )
    for kind in ("queries", "documents"):
        best_serve = max((r["per_s"] for r in serve.get(kind, {}).values()), default=None)
        best_inf = max((r["per_s"] for r in inf.get(kind, {}).values()), default=None) if "error" not in inf else None
        if best_serve and best_inf:
            lines.append(
                f"- {kind}, best throughput {name} / infinity-emb: **{best_serve / best_inf:.2f}x** (goal >= 1)"
            )
    one, eight = serve.get("queries", {}).get("1"), serve.get("queries", {}).get("8")
    one = one or serve.get("queries", {}).get(1)
    eight = eight or serve.get("queries", {}).get(8)
    if one and eight:
        lines.append(
            f"- queries, {name}'s p95 at concurrency 8 / its p50 of single requests: "
            f"**{eight['p95_ms'] / one['p50_ms']:.2f}x** "
            "(goal <= 3x)"
        )
    return lines


# ---------------------------------------------------------------------------------------
# report


def to_markdown(report: dict) -> str:
    lines = ["# embeddingFT serving: throughput, latency, soak", ""]
    sizes = report["texts"]
    lines.append(
        f"Model `{report['model']}` ({report['backend']}, {report.get('compute_dtype', 'float32')}; load client: {report.get('client', 'httpx')}); one text per request: queries of "
        f"{sizes['query_tokens_mean']:.1f} tokens, documents of {sizes['doc_tokens_mean']:.1f} tokens (means)."
    )
    lines += [
        "",
        "| system | texts | concurrency | texts/s | p50 ms | p95 ms | p99 ms | non-200 | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for system, parts in report["embeddings"].items():
        if "error" in parts:
            lines.append(f"| {system} | — | — | — | — | — | — | — | {parts['error']} |")
            continue
        for kind in ("queries", "documents"):
            for conc, r in parts.get(kind, {}).items():
                bad = sum(v for k, v in r["status"].items() if k != "200")
                lines.append(
                    f"| {system} | {kind} | {conc} | {r['per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {bad} | {sum(r['failed'].values())} |"
                )
    if report.get("search"):
        lines += [
            "",
            f"**/search** at concurrency 8, top 10, over {report.get('search_docs', 2000):,} abstracts:",
            "",
            "| mode | per s | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        for mode, r in report["search"].items():
            lines.append(f"| {mode} | {r['per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |")
    soak = report.get("soak")
    if soak:
        lines += [
            "",
            f"**Soak**: {soak['seconds']} s at concurrency 16, {soak['ok']} requests answered 200, "
            f"{soak['status_5xx']} 5xx ({'none' if soak['zero_5xx'] else 'NOT zero'}), failed {soak['failed'] or 'none'}, "
            f"p95 {soak['p95_ms']} ms; RSS growth from minute 1 to the end {soak['rss_growth_mb']} MB "
            f"({soak.get('rss_growth_pct', '?')}%), from minute 3 {soak.get('rss_growth_mb_after_3min', '?')} MB "
            f"({soak.get('rss_growth_pct_after_3min', '?')}%; the reload's second index included); "
            f"hot reload at {soak['reload'].get('at_s')} s: HTTP {soak['reload'].get('status')} in {soak['reload'].get('seconds')} s.",
        ]
        before = report.get("parts_measured_before_the_soak")
        if before:
            lines.append(
                f"(The soak alone is from this run; every other part is from the run that ended {before['ended']} "
                f"on {before.get('cpu') or '?'}: `{before.get('command')}`.)"
            )
        if soak.get("earlier_run"):
            lines.append(
                f"(The soak is from an earlier run of this bench, {soak['earlier_run']}, on {soak.get('cpu', '?')}.)"
            )
    lines += ["", f"**infinity-emb**: {report['infinity']}"]
    alone = report.get("model_alone")
    if alone:
        parts = [
            f"{kind} {r['batch_1_per_s']}/s in calls of 1, {r['batch_32_per_s']}/s in calls of 32 "
            f"({r['batching_gain']}x)"
            for kind, r in alone.items()
        ]
        lines += ["", f"**The model alone** (no HTTP, in the bench's process, servers stopped): {'; '.join(parts)}."]
    lines += ["", "Goals:", "", *goals(report)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "openvino"])
    parser.add_argument("--file-name", help="the exported file (onnx / openvino; default: the int8 one)")
    parser.add_argument(
        "--compute-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="serve and the naive peer compute in this dtype (bfloat16: torch autocast / openvino bf16)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help="where serve.json / serve.md go (default: results/serve)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads of each server (default: torch's)")
    parser.add_argument("--workers", type=int, help="the server's --workers (default: its own default)")
    parser.add_argument(
        "--also-workers",
        type=int,
        nargs="*",
        default=[2],
        help="measure the server with these --workers too (embeddings only; default 2; none: no value)",
    )
    parser.add_argument(
        "--fixed-threads-too",
        action="store_true",
        help="also measure each --also-workers count with a fixed cores / workers torch threads per worker",
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per measured point at most")
    parser.add_argument("--seconds", type=float, default=60, help="seconds per measured point at most")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument(
        "--only-soak",
        action="store_true",
        help="run the soak alone and keep every other part of the last serve.json (their runs are dated there)",
    )
    parser.add_argument(
        "--client",
        default="raw",
        choices=["raw", "httpx"],
        help="the load's HTTP client: raw keep-alive connections (default; see RawConnection) or httpx's AsyncClient",
    )
    parser.add_argument("--naive-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive_server:
        run_naive_server(args.naive_server, args.model, args.backend, args.file_name, args.threads, args.compute_dtype)
        return 0
    from embshared.bench import machine_facts, write_results
    from embshared.runtime import setup_logging

    setup_logging()
    # httpx logs every request at INFO: a line per request formatted on the cores the servers use
    logging.getLogger("httpx").setLevel(logging.WARNING)
    facts = machine_facts()
    results = args.results_dir
    global CLIENT
    CLIENT = args.client
    WORK.mkdir(parents=True, exist_ok=True)
    queries, docs, all_queries, sizes = bench_texts(args.model)
    full, half = build_indexes(args.model, args.backend, args.file_name, args.compute_dtype)
    texts = {"queries": queries, "documents": docs}
    report = {
        "model": args.model,
        "backend": args.backend,
        "compute_dtype": args.compute_dtype,
        "client": args.client,
        "texts": sizes,
        "embeddings": {},
        "infinity": "skipped",
    }
    report["search_docs"] = json.loads((full / "meta.json").read_text())["n_docs"]
    report |= {"requests_per_point": args.requests, "seconds_per_point": args.seconds, "concurrency": args.concurrency}

    previous = results / "serve.json"
    if args.skip_soak and previous.is_file():  # keep the last soak (10 min) with when it ran
        kept = json.loads(previous.read_text())
        soak = kept.get("soak")
        if soak:
            earlier = kept.get("machine", {}).get("cpu")
            when = (
                soak.get("measured_at")
                or soak.get("earlier_run", "").removeprefix("ended ")  # kept through earlier reruns
                or time.strftime("%Y-%m-%d %H:%M", time.gmtime(previous.stat().st_mtime))
            )
            cpu = soak.get("cpu") or earlier or "?"
            report["soak"] = {**soak, **rss_growth(soak.get("rss_mb", [])), "earlier_run": f"ended {when}", "cpu": cpu}

    def save():
        write_results(results, "serve", report, to_markdown(report), facts=facts)

    if args.only_soak:
        if not previous.is_file():
            raise SystemExit(f"--only-soak: {previous} does not exist yet (run the bench whole first)")
        report = json.loads(previous.read_text())
        before = {  # the run that measured every other part, kept through later soak-only runs
            "ended": time.strftime("%Y-%m-%d %H:%M", time.gmtime(previous.stat().st_mtime)),
            "command": report.get("command"),
            "cpu": report.get("machine", {}).get("cpu"),
        }
        report["parts_measured_before_the_soak"] = report.get("parts_measured_before_the_soak") or before
        report.pop("machine", None)  # written again by write_results, with this run's facts
        server = serve_server(full, args.threads, args.workers).start()
        try:
            report["soak"] = soak_part(server, model_id(server, "/v1/models"), all_queries, half, args.soak_seconds)
        finally:
            server.stop()
        save()
        print(f"wrote the soak into {results / 'serve.json'} and serve.md")
        return 0

    server = serve_server(full, args.threads, args.workers).start()
    try:
        name = model_id(server, "/v1/models")
        report["embeddings"]["serve"] = embeddings_part(server, "/v1/embeddings", name, texts, args)
        report["search"] = search_part(server, all_queries, args)
        save()
        if not args.skip_soak:
            report["soak"] = soak_part(server, name, all_queries, half, args.soak_seconds)
            save()
    finally:
        server.stop()
    variants = [(w, args.threads, f"serve-w{w}") for w in args.also_workers]
    if args.fixed_threads_too:  # the same workers, each with a fixed share of the cores
        variants += [(w, max(1, (os.cpu_count() or 1) // w), f"serve-w{w}-fixed") for w in args.also_workers]
    for workers, threads, label in variants:  # the server with more workers, embeddings only
        variant = serve_server(full, threads, workers, name=label).start()
        try:
            name = model_id(variant, "/v1/models")
            report["embeddings"][variant.name] = embeddings_part(variant, "/v1/embeddings", name, texts, args)
        finally:
            variant.stop()
        save()
    if not args.skip_naive:
        peer = naive_server(args.model, args.backend, args.file_name, args.threads, args.compute_dtype).start()
        try:
            report["embeddings"]["naive"] = embeddings_part(peer, "/v1/embeddings", args.model, texts, args)
        finally:
            peer.stop()
        save()
    if not args.skip_infinity:
        peer, reason = infinity_server(args.model)
        try:
            if peer is not None:
                peer.start()
                name = model_id(peer, "/models")
                report["embeddings"]["infinity"] = embeddings_part(peer, "/embeddings", name, texts, args)
                report["infinity"] = f"ran ({INFINITY_SPEC}, torch engine on CPU, its own batching)"
        except Exception as exc:  # it installed but did not serve: record its words
            reason = f"installed, but did not serve: {str(exc)[:400]}"
        finally:
            if peer is not None:
                peer.stop()
        if reason:
            report["infinity"] = reason
            report["embeddings"]["infinity"] = {"error": reason}
        save()
    report["model_alone"] = ceiling_part(args, texts)  # every server stopped: the cores are the model's
    save()
    print(f"wrote {results / 'serve.json'} and serve.md; infinity-emb: {report['infinity']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
