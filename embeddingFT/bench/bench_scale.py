"""embeddingFT at scale: encoding back ends, the SciFact recipe's wall time, index-embed at 10k-200k, faults, NPROC=2, search at 1M, quality under distractors.

    python embeddingFT/bench/bench_scale.py [--stages throughput train index fault nproc search quality]
        [--sizes 10000 50000 200000] [--search-size 1000000] [--search-kind auto]

Every stage adds its part to ``embeddingFT/bench/results/scale/scale.{json,md}`` as soon as it
ends (a later stage that is cut short leaves the earlier parts written). Work files go to
``embeddingFT/bench/work/scale/`` (collections, indexes, caches, exports; gitignored).

1. **throughput**: 512 SciFact abstracts cut to 256 tokens, encoded by the corpus encoder
   (length-sorted token-budget batches) on PyTorch fp32 and on each export (ONNX / OpenVINO,
   fp32 / int8, made once into the work cache as ``backend=auto`` makes them): documents/s,
   the ratio to PyTorch (measured first and last, averaged) and the cosine to PyTorch.
2. **train**: ``python -m embedding_ft.cli.train --config configs/scifact_finetune.yaml`` (the
   recipe when issue 30 was filed: full fine-tuning, PyTorch), then ``configs/scifact.yaml`` (the
   adapter recipe) with ``encode_backend=torch`` and ``auto``, each from a cold cache (no mined
   rows, no vectors, no exports), then ``auto`` again with only the exports kept (the steady
   state): wall time and the dev / rest NDCG@10 of every system.
3. **index**: the seeded collection (:mod:`collection`) at each size, indexed by
   ``python -m embedding_ft.cli.index --backend auto --gate approximate`` (the index path) from a
   cold vector cache with the exports in place: wall time, documents/s, peak RSS of the process
   tree, the back end chosen; the seconds per document at each size against the smallest; the
   extrapolation to 1M documents.
4. **fault**: the smallest size again, ``kill -9`` once half its shards are written, then rerun:
   the shards resumed, and the final vectors against the uninterrupted build's; an unwritable
   target: the exit code, the message, and that nothing was written.
5. **nproc**: the smallest size with ``accelerate launch --num_processes 2``: its time against
   one process and its vectors / top-10 against the one-process index.
6. **search**: ``--search-size`` documents (the generator's texts; vectors: the largest index's
   real vectors plus copies with noise, as ``bench-export`` does for 100k), indexed by FAISS
   ``--search-kind``: build time, dense and hybrid (candidate) p50 / p95 over 200 SciFact claims,
   recall@10 of the approximate index against exact search.
7. **quality**: the recipe's dev and rest claims against the collection's first 5,183 (SciFact alone)
   / 50k / 200k documents: NDCG@10 of BM25, base, adapter (its head on the index's vectors) and both
   hybrids (each with the fusion its run chose on dev).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale"
WORK = HERE / "work" / "scale"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RECIPE = HERE.parent / "configs" / "scifact.yaml"
#: the SciFact recipe when issue 30 was filed (full fine-tuning; the adapter recipe replaced it): "today's" run
FINETUNE_RECIPE = HERE.parent / "configs" / "scifact_finetune.yaml"
DOC_TOKENS = 254  # + [CLS] and [SEP]: 256
SHARD = 2048  # documents per shard in the index stages (the fault stage kills between shards)
SCIFACT_DOCS = 5183


# ---------------------------------------------------------------------------------------
# helpers


def repo() -> Path:
    return HERE.parents[1]


def env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")


def run_measured(cmd: list[str], log: Path, kill_when=None) -> dict:
    """Run ``cmd`` (output to ``log``): wall seconds, exit code, peak RSS of its process tree (psutil, every 0.2 s),
    when it peaked and a trace every 10 s.

    ``kill_when``: a callable polled with the same period; when it returns True the tree gets SIGKILL."""
    import psutil

    start = time.perf_counter()
    trace = []  # (seconds, GB): the tree's RSS every 10 s, to see which phase holds the peak
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=repo(), env=env(), stdout=out, stderr=subprocess.STDOUT)
        peak, peak_at, killed = 0, 0.0, False
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree if p.is_running())
                if rss > peak:
                    peak, peak_at = rss, time.perf_counter() - start
                if not trace or time.perf_counter() - start >= trace[-1][0] + 10:
                    trace.append((round(time.perf_counter() - start, 1), round(rss / 1024**3, 3)))
            except psutil.Error:
                pass
            if kill_when is not None and not killed and kill_when():
                for p in [*root.children(recursive=True), root]:
                    with contextlib.suppress(psutil.Error):
                        p.send_signal(signal.SIGKILL)
                killed = True
            time.sleep(0.2)
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "returncode": proc.returncode,
        "peak_rss_gb": round(peak / 1024**3, 3),
        "killed": killed,
        "peak_rss_at_s": round(peak_at, 1),
        "rss_trace": trace,
    }


def save(report: dict) -> None:
    """Write scale.{json,md}; the command of each stage is kept in the report (stages may run separately)."""
    from embshared.bench import write_results

    body = {k: v for k, v in report.items() if k != "_facts"}
    write_results(RESULTS, "scale", body, to_markdown(report), command=_COMMANDS_NOTE, facts=report["_facts"])


_COMMANDS_NOTE = "see stage_commands (one command per stage)"


_FACTS: dict = {}


def facts() -> dict:
    from embshared.bench import machine_facts

    if not _FACTS:
        _FACTS.update(machine_facts())
    return dict(_FACTS)


def exports_dir() -> Path:
    """The model's exports (ONNX / OpenVINO, fp32 and int8), made once as backend=auto makes them."""
    from embedding_ft.corpus_encoder import exported_copy
    from embshared.models import resolve_model

    root = WORK / "exports"
    folder = exported_copy(Path(resolve_model(MODEL)), root, "approximate")
    if folder is None:
        raise SystemExit(f"{MODEL} could not be exported")
    return root


def cache_with_exports(name: str) -> Path:
    """A fresh cache folder whose ``exports`` is the shared one (vectors cold, exports warm)."""
    cache = WORK / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "exports").symlink_to(exports_dir(), target_is_directory=True)
    return cache


def generator():
    """bench/collection.py, the seeded collection generator (a script beside this one, loaded by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_collection", HERE / "collection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collection(n: int) -> Path:
    from embshared.runtime import shared_data_dir

    return generator().write(n, WORK / f"collection-{n}.jsonl", shared_data_dir())


def index_cmd(n: int, index: Path, cache: Path) -> list[str]:
    return [
        "-m", "embedding_ft.cli.index", "--model", MODEL, "--backend", "auto", "--gate", "approximate",
        "--docs", str(collection(n)), "--index", str(index), "--cache-dir", str(cache), "--shard-size", str(SHARD),
    ]  # fmt: skip


def claims() -> tuple[list[str], list[str]]:
    """(ids, texts) of SciFact's train claims (the held-out and training ones alike: search latency only)."""
    from embshared.io import load_beir
    from embshared.runtime import shared_data_dir

    data = load_beir(shared_data_dir() / "scifact")
    return list(data.queries), list(data.queries.values())


def top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ np.asarray(vectors).T), axis=1)[:, :10]


# ---------------------------------------------------------------------------------------
# stages


def throughput_stage(report: dict) -> None:
    from transformers import AutoTokenizer

    from embedding_ft import backends
    from embedding_ft.corpus_encoder import CorpusEncoder
    from embedding_ft.export import FILES
    from embshared.io import load_beir
    from embshared.models import resolve_model
    from embshared.runtime import bf16_native, shared_data_dir

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    texts = []
    for text in load_beir(shared_data_dir() / "scifact").corpus_texts().values():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= DOC_TOKENS:
            texts.append(tokenizer.decode(ids[:DOC_TOKENS]))
        if len(texts) == 512:
            break
    start = time.perf_counter()
    root = exports_dir()
    export_seconds = round(time.perf_counter() - start, 1)
    folder = next(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    variants = [("pytorch fp32", "torch", None, "float32")] + [
        (f"{b} {'fp32' if q == 'none' else q}", b, FILES[(b, q)], "float32")
        for q in ("none", "int8")
        for b in ("onnx", "openvino")
    ]
    if bf16_native("cpu"):  # what backend=auto measures too on such a CPU
        variants += [("pytorch bf16 autocast", "torch", None, "bfloat16")] + [
            (
                f"openvino {'fp32' if q == 'none' else q} file, bf16 inference",
                "openvino",
                FILES[("openvino", q)],
                "bfloat16",
            )
            for q in ("none", "int8")
        ]
    rows, reference = {}, None
    for label, backend, file_name, dtype in [*variants, ("pytorch fp32 (again)", "torch", None, "float32")]:
        source = MODEL if backend == "torch" else str(folder)
        encoder = backends.load_encoder(source, backend, file_name, compute_dtype=dtype)
        encoder.max_seq_length = 256
        corpus = CorpusEncoder(MODEL, backend, file_name, encoder=encoder, token_budget=64 * 256)
        corpus.encode(texts[:64], show_progress=False)  # warm-up
        start = time.perf_counter()
        vectors = np.asarray(corpus.encode(texts, show_progress=False))
        seconds = time.perf_counter() - start
        if reference is None:
            reference = vectors
        cosines = np.sum(vectors * reference, axis=1)
        rows[label] = {
            "docs_per_s": round(len(texts) / seconds, 1),
            "cosine_mean": round(float(cosines.mean()), 5),
            "cosine_min": round(float(cosines.min()), 5),
            "exact": bool(cosines.min() >= 0.9999),
        }
        print("throughput", label, rows[label], flush=True)
    torch_rate = (rows["pytorch fp32"]["docs_per_s"] + rows.pop("pytorch fp32 (again)")["docs_per_s"]) / 2
    for row in rows.values():
        row["x_pytorch"] = round(row["docs_per_s"] / torch_rate, 2)
    best_exact = max((r["x_pytorch"] for k, r in rows.items() if r["exact"] and k != "pytorch fp32"), default=None)
    best_any = max(r["x_pytorch"] for k, r in rows.items() if r["cosine_mean"] >= 0.99)
    report["throughput"] = {
        "texts": len(texts),
        "tokens": DOC_TOKENS + 2,
        "export_seconds": export_seconds,
        "pytorch_docs_per_s": round(torch_rate, 1),
        "rows": rows,
        "best_exact_x": best_exact,
        "best_approximate_x": best_any,
    }


TRAIN_RUNS = ("finetune_torch", "torch", "auto", "auto_warm")


def train_stage(report: dict, names: list[str]) -> None:
    # runs not repeated stay, marked as from an earlier run (ratios are only taken within one run)
    earlier = report.get("train", {})
    out = {k: {**earlier[k], "earlier": True} for k in TRAIN_RUNS if k not in names and k in earlier}
    runs = WORK / "train"
    for name, backend, keep_exports, recipe in (
        ("finetune_torch", "torch", False, FINETUNE_RECIPE),
        ("torch", "torch", False, RECIPE),
        ("auto", "auto", False, RECIPE),
        ("auto_warm", "auto", True, RECIPE),
    ):
        if name not in names:
            continue
        cache = runs / f"cache-{name}"
        if keep_exports:  # the auto run's cache with everything but its exports removed
            cache = runs / "cache-auto"
            for child in cache.iterdir():
                if child.name != "vectors":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            for child in (cache / "vectors").iterdir():
                if child.name != "exports":
                    shutil.rmtree(child)
        else:
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs / name, ignore_errors=True)
        cmd = [
            sys.executable, "-m", "embedding_ft.cli.train", "--config", str(recipe), f"output_dir={runs}",
            f"run_name={name}", f"cache_dir={cache}", f"encode_backend={backend}",
        ]  # fmt: skip
        runs.mkdir(parents=True, exist_ok=True)
        measured = run_measured(cmd, runs / f"{name}.log")
        summary = json.loads((runs / name / "metrics.json").read_text()) if measured["returncode"] == 0 else {}
        pick = ("bm25", "base", "hybrid_base_tuned", "finetuned", "hybrid_finetuned_tuned")
        log = (runs / f"{name}.log").read_text(errors="replace")
        out[name] = {
            **measured,
            "auto_chose": re.findall(r"backend auto: using ([^\n]+)", log),  # each auto pass's choice
            "dev": {k: round(v["ndcg@10"], 4) for k, v in summary.get("metrics_dev", {}).items() if k in pick},
            "rest": {k: round(v["ndcg@10"], 4) for k, v in summary.get("metrics_rest", {}).items() if k in pick},
        }
        print("train", name, out[name], flush=True)
    for name in ("auto", "auto_warm"):
        if name in names and "torch" in names:
            out[f"{name}_ratio"] = round(out[name]["seconds"] / out["torch"]["seconds"], 3)
    for name in ("torch", "auto", "auto_warm"):
        if name in names and "finetune_torch" in names:
            out[f"{name}_vs_finetune"] = round(out[name]["seconds"] / out["finetune_torch"]["seconds"], 3)
    report["train"] = out


def index_stage(report: dict, sizes: list[int]) -> None:
    from embedding_ft.index import read_meta
    from embshared.bench import command_line

    rows = {int(k): v for k, v in report.get("index", {}).get("rows", {}).items()}  # sizes measured before stay
    for n in sizes:
        collection(n)
        cache = cache_with_exports(f"cache-{n}")
        index = WORK / f"index-{n}"
        shutil.rmtree(index, ignore_errors=True)
        measured = run_measured([sys.executable, *index_cmd(n, index, cache)], WORK / f"index-{n}.log")
        meta = read_meta(index) if measured["returncode"] == 0 else {}
        rows[n] = {
            **measured,
            "docs_per_s": round(n / measured["seconds"], 1),
            "backend": f"{meta.get('backend')} {meta.get('file_name') or ''} {meta.get('compute_dtype', '')}".strip(),
            "faiss": meta.get("faiss_kind"),
            "command": command_line(),
            "cpu": facts()["cpu"],
        }
        print("index", n, rows[n], flush=True)
        report["index"] = {"rows": rows}
        save(report)
    # linearity and the extrapolation from this run's rows (older rows may be of another back end or session)
    latest = [n for n in sizes if n in rows] or sorted(rows)
    per_doc = {n: rows[n]["seconds"] / n for n in rows}
    for n in rows:
        rows[n]["seconds_per_doc_vs_smallest"] = round(per_doc[n] / per_doc[min(latest)], 3)
        rows[n]["extrapolated_1m_hours"] = round(per_doc[n] * 1_000_000 / 3600, 2)
    report["index"] = {
        "rows": rows,
        "shard_size": SHARD,
        "latest_sizes": latest,
        "linear_within_15pct": all(abs(per_doc[n] / per_doc[min(latest)] - 1) <= 0.15 for n in latest),
        "extrapolated_1m_hours": round(per_doc[max(latest)] * 1_000_000 / 3600, 2),
    }


def fault_stage(report: dict, n: int) -> None:
    from embedding_ft.index import load_vectors

    reference = WORK / f"index-{n}"
    if not reference.is_dir():
        raise SystemExit(f"run the index stage first ({reference} is missing)")
    cache = cache_with_exports("cache-fault")
    index = WORK / "index-fault"
    shutil.rmtree(index, ignore_errors=True)
    n_shards = -(-n // SHARD)

    def half_written() -> bool:
        return sum(1 for _ in cache.glob("*/shards-*/shard_*.npy")) >= n_shards // 2

    cmd = [sys.executable, *index_cmd(n, index, cache)]
    killed = run_measured(cmd, WORK / "fault-killed.log", kill_when=half_written)
    shards_left = sum(1 for _ in cache.glob("*/shards-*/shard_*.npy"))
    index_after_kill = index.exists()
    rerun = run_measured(cmd, WORK / "fault-rerun.log")
    resumed = [line.strip() for line in (WORK / "fault-rerun.log").read_text().splitlines() if "resuming" in line]
    a, b = load_vectors(index), load_vectors(reference)
    _, texts = claims()
    from embshared.models import load_sentence_transformer

    queries = load_sentence_transformer(MODEL, device="cpu").encode(texts[:200], normalize_embeddings=True)
    same = float(np.mean(np.all(np.sort(top10(a, queries), 1) == np.sort(top10(b, queries), 1), axis=1)))
    report["fault"] = {
        "killed_run": killed,
        "shards_on_disk_after_kill": shards_left,
        "of_shards": n_shards,
        "index_after_kill_exists": index_after_kill,
        "rerun": rerun,
        "rerun_log_resume_lines": resumed,
        "max_abs_diff_vs_uninterrupted": float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
        "same_top10_share": same,
    }
    unwritable_stage(report, n)


def unwritable_stage(report: dict, n: int) -> None:
    """index-embed into /proc/... (unwritable even by root): the exit code, the message, how long it took."""
    start = time.perf_counter()
    bad = subprocess.run(
        [sys.executable, *index_cmd(n, Path("/proc/bench-scale/index"), WORK / "cache-unwritable")],
        cwd=repo(), env=env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    report.setdefault("fault", {})["unwritable"] = {
        "returncode": bad.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "stderr_lines": [line for line in bad.stderr.splitlines() if line.strip()][-3:],
        "traceback": "Traceback" in bad.stderr,
        "left_behind": Path("/proc/bench-scale").exists(),
    }


def nproc_stage(report: dict, n: int) -> None:
    from embedding_ft.index import load_vectors

    single = {int(k): v for k, v in report.get("index", {}).get("rows", {}).items()}.get(n)
    cache = cache_with_exports("cache-nproc")
    index = WORK / "index-nproc"
    shutil.rmtree(index, ignore_errors=True)
    launch = [
        str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29561",
    ]  # fmt: skip
    measured = run_measured([*launch, *index_cmd(n, index, cache)], WORK / "index-nproc.log")
    a, b = load_vectors(index), load_vectors(WORK / f"index-{n}")
    _, texts = claims()
    from embshared.models import load_sentence_transformer

    queries = load_sentence_transformer(MODEL, device="cpu").encode(texts[:200], normalize_embeddings=True)
    same = float(np.mean(np.all(np.sort(top10(a, queries), 1) == np.sort(top10(b, queries), 1), axis=1)))
    report["nproc"] = {
        **measured,
        "documents": n,
        "one_process_seconds": single["seconds"] if single else None,
        "time_ratio_vs_one": round(measured["seconds"] / single["seconds"], 3) if single else None,
        "max_abs_diff_vs_one": float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
        "same_top10_share": same,
    }


def search_stage(report: dict, size: int, kind: str, source: int) -> None:
    from embedding_ft.index import Searcher, build_index, load_vectors, read_meta
    from embshared.io import Documents
    from embshared.runtime import shared_data_dir
    from embshared.search import FaissIndex, recall_at_k

    base = np.asarray(load_vectors(WORK / f"index-{source}"), dtype=np.float32)
    start = time.perf_counter()
    docs = list(generator().documents(size, shared_data_dir()))
    ids = [d["_id"] for d in docs]
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    del docs
    rng = np.random.default_rng(0)
    vectors = np.empty((size, base.shape[1]), dtype=np.float32)
    vectors[: len(base)] = base
    for lo in range(len(base), size, len(base)):  # noisy copies of the real vectors (as bench-export does)
        hi = min(size, lo + len(base))
        noisy = base[: hi - lo] + rng.normal(0, 0.02, (hi - lo, base.shape[1])).astype(np.float32)
        vectors[lo:hi] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    prepare_seconds = time.perf_counter() - start
    folder = WORK / f"search-{size}"
    start = time.perf_counter()
    # the source index's back end and file (the index path's auto choice): its queries are encoded
    # by the file that encoded its documents, as a user's index built that way encodes them
    source_meta = read_meta(WORK / f"index-{source}")
    backend, file_name = source_meta["backend"], source_meta.get("file_name")
    _, reused = build_index(
        folder, Documents(ids, texts, "bench-scale"), MODEL, backend, file_name, faiss_kind=kind, embeddings=vectors,
        cache_dir=cache_with_exports(f"cache-search-{size}"),
    )  # fmt: skip
    build_seconds = round(time.perf_counter() - start, 1)
    if reused:  # already built: the earlier run's timing of the build, if it had one (None: unknown)
        earlier = report.get("search", {})
        build_seconds = earlier.get("build_seconds") if earlier.get("documents") == size else None
    del texts
    searcher = Searcher(folder)
    _, every = claims()
    queries = every[:200]
    # a service's steady state: 200 other claims first, through both modes (OpenVINO compiles each
    # input shape the first time it sees it; measured: single-query encoding p95 14.4 ms on a first
    # pass over the claims against 4.9 ms on a second, on AMD EPYC)
    for query in every[200:400]:
        searcher.search(query, 10, hybrid=False)
        searcher.search(query, 10, hybrid=True)
    out = {"documents": size, "prepare_seconds": round(prepare_seconds, 1), "build_seconds": build_seconds}
    out["query_backend"] = f"{backend} {file_name or ''}".strip()
    out["warm_up"] = "200 other claims through both modes"
    from embshared.bench import latency_percentiles

    for mode in ("dense", "hybrid"):
        out[mode] = latency_percentiles(lambda q, mode=mode: searcher.search(q, 10, hybrid=mode == "hybrid"), queries)
        print("search", size, mode, out[mode], flush=True)
    meta = read_meta(folder)
    out["faiss"] = meta.get("faiss_kind")
    q = np.asarray(searcher.encoder.encode(queries, normalize_embeddings=True), dtype=np.float32)
    exact = FaissIndex(vectors.shape[1], metric="ip", kind="flat").add(ids, vectors)
    approx = searcher.faiss
    out["recall_at_10"] = round(recall_at_k(approx, exact, q, 10), 4)
    out["ef_search"] = approx.ef_search
    report["search"] = out


ADAPTER_RUNS = [HERE / "work" / "recipes" / "runs" / f"head_merge0.3_s{seed}" for seed in (42, 1, 2)]


def ef_stage(report: dict, size: int) -> None:
    """HNSW's efSearch against recall@10 (exact search as truth) and graph-search time, on the search stage's index."""
    from embedding_ft.index import load_vectors
    from embshared.models import load_sentence_transformer
    from embshared.search import FaissIndex

    folder = WORK / f"search-{size}"
    index = FaissIndex.load(folder / "faiss")
    if index.kind != "hnsw":
        return
    vectors = np.asarray(load_vectors(folder), dtype=np.float32)
    _, texts = claims()
    queries = load_sentence_transformer(MODEL, device="cpu").encode(texts[:200], normalize_embeddings=True)
    truth = []
    for lo in range(0, len(queries), 20):  # exact top-10, 20 queries at a time (20 x 1M scores)
        scores = queries[lo : lo + 20] @ vectors.T
        truth += [set(np.argpartition(-row, 10)[:10].tolist()) for row in scores]
    rows = {}
    for ef in (128, 256, 512, 1024):
        index._index.hnsw.efSearch = ef
        times, recall = [], []
        for row, exact in zip(queries, truth):
            start = time.perf_counter()
            _, found = index._index.search(row[None], 10)
            times.append(1000 * (time.perf_counter() - start))
            recall.append(len(set(found[0].tolist()) & exact) / 10)
        rows[ef] = {
            "recall_at_10": round(float(np.mean(recall)), 4),
            "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2),
        }
        print("efSearch", ef, rows[ef], flush=True)
    report.setdefault("search", {})["ef_sweep"] = rows


def quality_stage(report: dict, sizes: list[int]) -> None:
    from embedding_ft.adapter import apply_head
    from embedding_ft.config import TrainConfig
    from embedding_ft.data import prepare
    from embedding_ft.evaluation import dev_rest_split
    from embedding_ft.index import load_vectors
    from embshared.config import load_config
    from embshared.evaluate import evaluate_scores
    from embshared.fusion_choice import FusionSetting, bm25_matrices, fuse
    from embshared.io import read_documents
    from embshared.models import load_sentence_transformer

    runs = [r for r in ADAPTER_RUNS if (r / "final_model").is_dir()] or [WORK / "train" / "auto"]
    cfg = load_config(TrainConfig, runs[0] / "config.yaml", [])
    prepared = prepare(cfg.dataset_name, cfg.dataset_split, cfg.test_size, cfg.seed, cfg.sample_size)
    eval_set = prepared.eval_set
    ev = cfg.evaluation
    dev, rest = dev_rest_split(eval_set.queries, ev.dev_fraction, ev.dev_seed)
    largest = max(sizes)
    docs = read_documents(collection(largest))
    vectors = np.asarray(load_vectors(WORK / f"index-{largest}"), dtype=np.float32)
    model = load_sentence_transformer(MODEL, device="cpu")
    default = FusionSetting.default().bm25_variant
    out = {
        "vectors": "the index path's (backend auto, approximate gate)",
        "adapter_runs": [str(r.relative_to(repo())) for r in runs],
        "rows": {},
    }
    for n in [SCIFACT_DOCS, *[s for s in sizes if s > SCIFACT_DOCS]]:
        doc_ids, texts, base_docs = docs.ids[:n], docs.texts[:n], vectors[:n]
        row = {}
        for split, qids in (("dev", dev), ("rest", rest)):
            qtexts = [eval_set.queries[q] for q in qids]
            q_base = model.encode(qtexts, normalize_embeddings=True)
            dense_base = q_base @ base_docs.T
            fusions = [json.loads((r / "metrics.json").read_text())["fusion"] for r in runs]
            base_fusion = FusionSetting.from_dict(fusions[0]["base"])  # the base model's, the same in every run
            tuned_fusions = [FusionSetting.load(r / "final_model") for r in runs]
            variants = sorted({default, base_fusion.bm25_variant, *(f.bm25_variant for f in tuned_fusions)})
            bm25 = bm25_matrices(doc_ids, texts, qtexts, variants)

            def ndcg(matrix, qids=qids, doc_ids=doc_ids):
                return evaluate_scores(matrix, qids, doc_ids, eval_set.qrels, ["ndcg@10"])[0]["ndcg@10"]

            adapter, hybrid = [], []
            for run, fusion in zip(runs, tuned_fusions):  # one adapter per trainer seed: the mean
                head = str(run / "final_model")
                dense = apply_head(head, q_base) @ apply_head(head, base_docs).T
                adapter.append(ndcg(dense))
                hybrid.append(ndcg(fuse(fusion, dense, bm25[fusion.bm25_variant])))
            row[split] = {
                "bm25": round(ndcg(bm25[default]), 4),
                "base": round(ndcg(dense_base), 4),
                "hybrid_base_tuned": round(ndcg(fuse(base_fusion, dense_base, bm25[base_fusion.bm25_variant])), 4),
                "finetuned": round(float(np.mean(adapter)), 4),
                "hybrid_finetuned_tuned": round(float(np.mean(hybrid)), 4),
                "finetuned_seeds": [round(x, 4) for x in adapter],
                "hybrid_finetuned_tuned_seeds": [round(x, 4) for x in hybrid],
            }
        out["rows"][n] = {"distractors": n - SCIFACT_DOCS, **row}
        print("quality", n, out["rows"][n], flush=True)
    report["quality"] = out


# ---------------------------------------------------------------------------------------
# report


def _throughput_lines(t: dict, cpu: str) -> list[str]:
    """The throughput table and its goals, for one machine."""
    from embshared.bench import markdown_table

    return [
        f"On {cpu}. Exports made once in {t['export_seconds']} s. PyTorch fp32: {t['pytorch_docs_per_s']} "
        "documents/s (measured first and last, averaged).",
        "",
        *markdown_table(
            ["back end", "documents/s", "x PyTorch", "cosine mean", "cosine min", "exact (min >= 0.9999)"],
            (
                [
                    label,
                    r["docs_per_s"],
                    r["x_pytorch"],
                    r["cosine_mean"],
                    r["cosine_min"],
                    "yes" if r["exact"] else "no",
                ]
                for label, r in t["rows"].items()
            ),
            "lrrrrl",
        ),
        "",
        f"Goals: the mining and index path (approximate gate) >= 3.0x: **{t['best_approximate_x']}x**; "
        f"the exact evaluation path >= 1.8x: **{t['best_exact_x']}x**.",
        "",
    ]


def _index_lines(ix: dict, cpu: str) -> list[str]:
    """The index-embed table (rows of one CPU), its linearity and extrapolation."""
    from embshared.bench import markdown_table

    lines = [
        f"On {cpu}.",
        "",
        *markdown_table(
            ["documents", "wall s", "documents/s", "s/doc vs smallest", "1M extrapolated h", "peak RSS GB (process tree)",
             "peak at s", "back end", "FAISS", "command"],
            (
                [f"{int(n):,}", r["seconds"], r["docs_per_s"], r.get("seconds_per_doc_vs_smallest", ""),
                 r.get("extrapolated_1m_hours", "-"), r["peak_rss_gb"], r.get("peak_rss_at_s", "-"), r["backend"],
                 r["faiss"], f"`{r['command']}`" if r.get("command") else "-"]
                for n, r in sorted(ix["rows"].items(), key=lambda item: int(item[0]))
            ),
            "rrrrrrrlll",
        ),
    ]  # fmt: skip
    traced = {int(n): r["rss_trace"] for n, r in ix["rows"].items() if r.get("rss_trace")}
    for n, trace in sorted(traced.items()):
        every = max(1, len(trace) // 12)
        points = ", ".join(f"{t:.0f} s {gb:.2f}" for t, gb in trace[::every])
        lines += ["", f"RSS of the {n:,} build over time (GB): {points}; end {trace[-1][0]:.0f} s {trace[-1][1]:.2f}."]
    if "extrapolated_1m_hours" in ix:
        lines += [
            "",
            f"Over the newest run's sizes ({', '.join(f'{int(n):,}' for n in ix.get('latest_sizes', ix['rows']))}): "
            f"linear within +-15%: **{'yes' if ix['linear_within_15pct'] else 'no'}**; extrapolated from the largest "
            f"to 1M documents: **{ix['extrapolated_1m_hours']} h** (goal <= 4 h). Goal peak RSS <= 4 GB at 200k.",
        ]
    return [*lines, ""]


def to_markdown(report: dict) -> str:
    from embshared.bench import markdown_table

    lines = ["# embeddingFT at scale", ""]
    t = report.get("throughput")
    if t:
        cpu = report.get("stage_cpus", {}).get("throughput", "?")
        lines += [
            f"## Encoding throughput ({t['texts']} SciFact abstracts at {t['tokens']} tokens, corpus encoder)",
            "",
            *_throughput_lines(t, cpu),
        ]
    for earlier in report.get("earlier", {}).get("throughput", []):
        lines += [f"### Encoding throughput on another machine ({earlier['cpu']})", "", "`" + earlier["command"] + "`"]
        lines += ["", *_throughput_lines(earlier["section"], earlier["cpu"])]
    tr = report.get("train")
    if tr:
        lines += [
            "## `train-embed` on the SciFact recipe, cold caches",
            "",
            "`configs/scifact_finetune.yaml` is the recipe when the issue was filed (full fine-tuning, every pass",
            "on PyTorch); `configs/scifact.yaml` is today's adapter recipe (a head over the frozen model: one",
            "corpus pass, the fine-tuned vectors come from the head).",
            "",
        ]
        labels = {"finetune_torch": "scifact_finetune.yaml, torch (when filed)", "torch": "scifact.yaml, torch",
                  "auto": "scifact.yaml, auto, cold (exports made in the run)",
                  "auto_warm": "scifact.yaml, auto, exports already made"}  # fmt: skip
        keys = ("base", "hybrid_base_tuned", "finetuned", "hybrid_finetuned_tuned")
        lines += markdown_table(
            ["recipe, encode_backend", "wall s", "x scifact.yaml torch", "x when filed", "peak RSS GB",
             "dev NDCG@10: base / hybrid base / tuned / hybrid tuned"],
            (
                [labels[n] + (" (an earlier run)" if tr[n].get("earlier") else ""), tr[n]["seconds"], tr.get(f"{n}_ratio", 1.0 if n == "torch" else "-"),
                 tr.get(f"{n}_vs_finetune", 1.0 if n == "finetune_torch" else "-"), tr[n]["peak_rss_gb"],
                 " / ".join(str(tr[n]["dev"].get(k)) for k in keys)]
                for n in labels
                if n in tr
            ),
            "lrrrrl",
        )  # fmt: skip
        chose = {labels[n]: "; ".join(tr[n]["auto_chose"]) for n in labels if tr.get(n, {}).get("auto_chose")}
        lines += ["", *(f"- {label}: auto chose {what}" for label, what in chose.items())]
        lines += ["", "Goal: wall time <= 0.65x today's, dev NDCG@10 within the seed spread (0.007-0.024).", ""]
    ix = report.get("index")
    if ix:
        lines += [
            f"## `index-embed` (backend auto, approximate gate, shards of {ix.get('shard_size', SHARD)})",
            "",
            *_index_lines(ix, report.get("stage_cpus", {}).get("index", "?")),
        ]
    for earlier in report.get("earlier", {}).get("index", []):
        lines += [f"### `index-embed` on another machine ({earlier['cpu']})", ""]
        lines += _index_lines(earlier["section"], earlier["cpu"])
    f = report.get("fault")
    if f and "killed_run" in f:
        u = f.get("unwritable", {})
        lines += [
            "## Faults",
            "",
            f"- kill -9 with {f['shards_on_disk_after_kill']} of {f['of_shards']} shards written (after "
            f"{f['killed_run']['seconds']} s; an index folder after the kill: "
            f"{'yes' if f['index_after_kill_exists'] else 'none'}); the rerun took {f['rerun']['seconds']} s and logged: "
            f"{'; '.join(f['rerun_log_resume_lines']) or 'no resume line'}.",
            f"- The resumed index against the uninterrupted one: max |difference| of the vectors "
            f"{f['max_abs_diff_vs_uninterrupted']:.2e}, the same top-10 for {f['same_top10_share']:.0%} of 200 claims.",
            f"- An unwritable target (/proc/...): exit {u.get('returncode')} after {u.get('seconds', '?')} s, "
            f"traceback: {'yes' if u.get('traceback') else 'no'}, left behind: "
            f"{'yes' if u.get('left_behind') else 'nothing'}; message: `{' | '.join(u.get('stderr_lines', []))}`.",
            "",
        ]
    p = report.get("nproc")
    if p:
        lines += [
            f"## NPROC=2 (accelerate launch, gloo), {p['documents']:,} documents",
            "",
            f"{p['seconds']} s against {p['one_process_seconds']} s for one process (ratio {p['time_ratio_vs_one']}; "
            f"2 cores: not expected to be faster). Vectors against the one-process index: max |difference| "
            f"{p['max_abs_diff_vs_one']:.2e}; the same top-10 for {p['same_top10_share']:.0%} of 200 claims.",
            "",
        ]
    s = report.get("search")
    if s:
        lines += [
            f"## Search at {s['documents']:,} documents (FAISS {s['faiss']}, query encoding included, 200 claims)",
            "",
            (f"Index built in {s['build_seconds']} s" if s.get("build_seconds") is not None else "Index built earlier")
            + f" (vectors and texts prepared in {s['prepare_seconds']} s).",
            "",
            *markdown_table(
                ["mode", "p50 ms", "p95 ms", "mean ms"],
                (
                    [label, s[mode]["p50_ms"], s[mode]["p95_ms"], s[mode]["mean_ms"]]
                    for mode, label in (("dense", "dense"), ("hybrid", "hybrid (candidates)"))
                ),
            ),
            "",
            f"Approximate recall@10 against exact search: **{s['recall_at_10']}** (goal >= 0.95; efSearch as built: "
            f"{s.get('ef_search', 128)}). Goals: dense p95 <= 20 ms, hybrid p95 <= 50 ms. Queries encoded by "
            f"{s.get('query_backend', 'torch')}, the file that encoded the source index's documents; "
            f"warm-up: {s.get('warm_up', 'one query')}.",
            "",
        ]
        if s.get("ef_sweep"):
            lines += [
                "HNSW efSearch against recall@10 and graph-search time alone (no query encoding), same index and claims:",
                "",
                *markdown_table(
                    ["efSearch", "recall@10", "p50 ms", "p95 ms"],
                    ([ef, r["recall_at_10"], r["p50_ms"], r["p95_ms"]] for ef, r in s["ef_sweep"].items()),
                    "rrrr",
                ),
                "",
            ]
    for earlier in report.get("earlier", {}).get("search", []):
        e = earlier["section"]
        lines += [
            f"Earlier, on {earlier['cpu']} (`{earlier['command']}`): dense p95 {e['dense']['p95_ms']} ms, hybrid p95 "
            f"{e['hybrid']['p95_ms']} ms, recall@10 {e['recall_at_10']} at efSearch {e.get('ef_search', 128)}; "
            f"queries encoded by {e.get('query_backend', 'torch')}.",
            "",
        ]
    q = report.get("quality")
    if q:
        lines += [
            f"## Quality under distractors (NDCG@10; vectors: {q['vectors']})",
            "",
            f"Adapter rows: the mean over the adapters of {', '.join(q['adapter_runs'])} (configs/scifact.yaml, "
            "trainer seeds 42 / 1 / 2), each with the fusion its run chose on dev.",
            "",
            *markdown_table(
                ["documents", "distractors", "split", "BM25", "base", "hybrid base", "adapter", "hybrid adapter"],
                (
                    [f"{int(n):,}", f"{r['distractors']:,}", split]
                    + [
                        r[split][k]
                        for k in ("bm25", "base", "hybrid_base_tuned", "finetuned", "hybrid_finetuned_tuned")
                    ]
                    for n, r in sorted(q["rows"].items(), key=lambda item: int(item[0]))
                    for split in ("dev", "rest")
                ),
                "rrlrrrrr",
            ),
            "",
        ]
    runs = report.get("stage_commands", {})
    if runs:
        cpus = report.get("stage_cpus", {})
        lines += ["## How each section was measured", "", *markdown_table(
            ["stage", "command", "CPU"],
            ([stage, f"`{command}`", cpus.get(stage, "?")] for stage, command in runs.items()),
            "lll",
        ), ""]  # fmt: skip
        sized = {int(n): r for n, r in report.get("index", {}).get("rows", {}).items() if r.get("command")}
        lines += [f"- index row {n:,}: `{r['command']}` on {r.get('cpu', '?')}" for n, r in sorted(sized.items())]
    return "\n".join(lines)


def _keep_earlier(report: dict, stage: str) -> None:
    """A throughput, index or search section measured on another CPU is kept beside the new one (rates differ by CPU)."""
    cpu = report.get("stage_cpus", {}).get(stage)
    if stage not in ("throughput", "index", "search") or stage not in report or cpu in (None, report["_facts"]["cpu"]):
        return
    earlier = {"cpu": cpu, "command": report["stage_commands"][stage], "section": report[stage]}
    kept = [e for e in report.setdefault("earlier", {}).get(stage, []) if e["cpu"] != cpu]
    report["earlier"][stage] = [*kept, earlier]
    del report[stage]  # the new CPU's rows start afresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["throughput", "train", "index", "fault", "nproc", "quality", "search"],
        choices=["throughput", "train", "index", "fault", "unwritable", "nproc", "search", "ef", "quality"],
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 50_000, 200_000])
    parser.add_argument(
        "--train-runs", nargs="+", default=list(TRAIN_RUNS), choices=TRAIN_RUNS, help="the train stage's runs"
    )
    parser.add_argument("--search-size", type=int, default=1_000_000)
    parser.add_argument("--search-kind", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    args = parser.parse_args(argv)
    from embshared.runtime import setup_logging

    setup_logging()
    from embshared.bench import command_line

    WORK.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "scale.json"
    report = json.loads(previous.read_text()) if previous.is_file() else {}
    report.pop("command", None)
    earlier_cpu = report.pop("machine", {}).get("cpu")  # stages may run in different sessions, on other CPUs
    for stage in report.get("stage_commands", {}):
        report.setdefault("stage_cpus", {}).setdefault(stage, earlier_cpu or "?")
    report["_facts"] = facts()
    for stage in args.stages:
        start = time.perf_counter()
        _keep_earlier(report, stage)
        if stage == "throughput":
            throughput_stage(report)
        elif stage == "train":
            train_stage(report, args.train_runs)
        elif stage == "index":
            index_stage(report, sorted(args.sizes))
        elif stage == "fault":
            fault_stage(report, min(args.sizes))
        elif stage == "unwritable":
            unwritable_stage(report, min(args.sizes))
        elif stage == "nproc":
            nproc_stage(report, min(args.sizes))
        elif stage == "search":
            search_stage(report, args.search_size, args.search_kind, max(args.sizes))
        elif stage == "ef":
            ef_stage(report, args.search_size)
        elif stage == "quality":
            quality_stage(report, sorted(args.sizes))
        report.setdefault("stage_seconds", {})[stage] = round(time.perf_counter() - start, 1)
        report.setdefault("stage_commands", {})[stage] = command_line()
        report.setdefault("stage_cpus", {})[stage] = report["_facts"]["cpu"]
        save(report)
        print(f"stage {stage} done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
