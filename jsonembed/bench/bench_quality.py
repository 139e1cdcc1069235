"""Quality benchmark with a typo track: BM25, the char model, their hybrid and MiniLM, clean and misspelled.

    python jsonembed/bench/bench_quality.py [--datasets scifact,cranfield] [--reuse] [key=value ...]

For each dataset a model is trained from scratch on the records alone (no queries, no
labels), then Recall@10, Recall@100, NDCG@10 and MRR@10 are computed with
``embshared.evaluate`` for BM25 (``embshared.search.BM25Index``), the char model, the
default hybrid (``search --hybrid``), all-MiniLM-L6-v2 and MiniLM + BM25 (same fusion), on
the judged queries as written and misspelled by the typo track's generator
(``common.misspelled_queries``: each word of 4+ letters gets one edit with probability 0.4,
the edit drawn uniformly from insert / delete / transpose / substitute; seeded per query).
Every figure is given for the dev split (a seeded 30% of the queries, the only ones
settings were chosen on: ``bench/tune_views.py``) and for the rest separately.

**Distillation.** The configured model (``teacher:`` set by default) is compared in the same
run with the char model of the other training: the self-supervised one (``teacher: null``,
``bench/runs/<dataset>.pt``, the models of the runs before distillation, reused by
``--reuse``) when the config has a teacher, else a distilled candidate (the default teacher,
``bench/runs/<dataset>-distilled.pt``); ``--no-comparison`` skips it. The teacher alone is a
row too (all-MiniLM-L6-v2 is the MiniLM row; another teacher gets its own), on the whole
record and on the part the student reads (what its targets saw). The teacher's vectors of
the records are cached in ``bench/runs/teacher/``. Writes
``results/default/quality.json`` and ``quality.md`` (or ``--results-dir``) through ``embshared.bench.write_results``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from common import (
    DATASETS,
    RESULTS_DIR,
    RUNS_DIR,
    TYPO_MIN_LETTERS,
    TYPO_SEED,
    TYPO_WORD_PROB,
    dev_rest_split,
    misspelled_queries,
    run_name,
    same_training,
)

from embedding_model.config import DEFAULT_TEACHER, build_config
from embedding_model.embedder import JsonEmbedder
from embedding_model.model_file import save_model
from embedding_model.records import plain_text, visible_segments
from embedding_model.retrieval import fusion_settings
from embedding_model.teacher import TeacherTargetCache
from embedding_model.training import train
from embshared.bench import command_line, load_average, machine_facts, write_results
from embshared.cli import start_run
from embshared.config import config_to_dict
from embshared.evaluate import evaluate_retrieval, format_table, rank_corpus, sentence_transformer_encoder
from embshared.files import write_json
from embshared.metrics import per_query
from embshared.runtime import pick_device, seed_everything, shared_data_dir
from embshared.search import BM25Index

logger = logging.getLogger("bench_quality")
METRICS = ["recall@10", "recall@100", "ndcg@10", "mrr@10"]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: the teacher's vectors of the bench records (one file per teacher, records and view seed)
TEACHER_CACHE = RUNS_DIR / "teacher"
QUERY_SETS = ("clean", "misspelled")
SPLITS = ("dev", "rest")
#: the convex weights of the char model and of the character n-grams tried on the dev queries
DENSE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)
NGRAM_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
GRID_RULE = (
    "one pair of weights for every query (the rule before routing): the grid point with the best mean "
    "misspelled-query NDCG@10 over the datasets' dev queries among those whose clean-query NDCG@10 is at least "
    "BM25's on every dataset's dev queries"
)
ROUTES = ("known", "unknown")
ROUTED_RULE = (
    "queries whose every word (BM25 term) occurs in the records ('known') and the others ('unknown') get "
    "their own grid point: each route's is the one with the best NDCG@10 over the dev queries it routes (clean "
    "and misspelled together; the mean over the datasets), the known route's first, then the unknown route's "
    "among the points that keep every dataset's clean dev NDCG@10 at least BM25's"
)


def train_or_reuse(name: str, cfg, records, reuse: bool) -> tuple[JsonEmbedder, dict]:
    """Train on the records (or reuse bench/runs/<name>.pt when trained with the same config, search-time keys aside).

    ``name`` is the run name (:func:`common.run_name`: the dataset, ``-distilled`` with a teacher).
    """
    path = RUNS_DIR / f"{name}.pt"
    info_path = RUNS_DIR / f"{name}.train.json"
    if reuse and path.is_file() and info_path.is_file():
        embedder = JsonEmbedder.load(path)
        if same_training(config_to_dict(embedder.cfg), config_to_dict(cfg)):
            logger.info("%s: reusing %s", name, path)
            return embedder, json.loads(info_path.read_text())
    seed_everything(cfg.seed)
    embedder, result = train(
        cfg, records.segments, device=pick_device(cfg.device or None), teacher_cache=TeacherTargetCache(TEACHER_CACHE)
    )
    info = result.summary()
    save_model(path, embedder.encoder, embedder.vocab, cfg, info)
    write_json(info_path, info)
    return embedder, info


def training_label(cfg) -> str:
    """How a char model was trained, for row names."""
    if cfg.teacher is None:
        return "self-supervised, teacher: null"
    return f"distilled from {Path(cfg.teacher).name}"


def sentence_model_embeddings(name: str, texts: list[str], model_name: str = MINILM) -> tuple[np.ndarray, object]:
    """A sentence model's document embeddings (cached in bench/runs by a hash of the model name and the texts)
    and the model (MiniLM's cache files keep their old names)."""
    from embshared.models import load_sentence_transformer

    model = load_sentence_transformer(model_name)
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    prefix = "minilm" if model_name == MINILM else "st-" + hashlib.sha256(model_name.encode()).hexdigest()[:8]
    path = RUNS_DIR / f"{prefix}-{name}-{digest}.npy"
    if path.is_file():
        return np.load(path), model
    matrix = model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=True)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, matrix)
    return matrix, model


def sentence_model_fn(name: str, model_name: str, doc_texts: list[str], query_texts: list[str], row_of: dict):
    """Cosine scores of a sentence model over ``doc_texts`` for every query text, as a score function."""
    matrix, model = sentence_model_embeddings(name, doc_texts, model_name)
    queries = sentence_transformer_encoder(model)(query_texts)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return lookup_fn(queries @ (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).T, row_of)


def lookup_fn(matrix: np.ndarray, row_of: dict[str, int]):
    """A score function over precomputed (n_queries, n_docs) scores, found by query text."""
    return lambda texts: matrix[[row_of[t] for t in texts]]


def run_dataset(name: str, folder, cfg, reuse: bool, with_minilm: bool, compare: bool = True) -> dict:
    records, queries, qrels = DATASETS[name](folder)
    judged = {q: t for q, t in queries.items() if q in qrels}
    dev, rest = dev_rest_split(judged)
    query_sets = {"clean": judged, "misspelled": misspelled_queries(judged)}
    logger.info(
        "%s: %d records, %d judged queries (%d dev, %d rest)", name, len(records), len(judged), len(dev), len(rest)
    )
    embedder, train_info = train_or_reuse(run_name(name, cfg), cfg, records, reuse)
    started = time.perf_counter()
    doc_vectors = embedder.embed_segments(records.segments, show_progress=True)
    embed_seconds = time.perf_counter() - started
    doc_ids = list(records.ids)
    texts = records.plain_texts()
    corpus = dict(zip(doc_ids, texts))
    all_texts = list(dict.fromkeys(t for qs in query_sets.values() for t in qs.values()))
    row_of = {t: i for i, t in enumerate(all_texts)}
    bm25 = BM25Index().index(doc_ids, texts)
    bm25_fn = lookup_fn(bm25.score_matrix(all_texts), row_of)
    known_mask = bm25.knows_all_terms(all_texts)  # (n_texts,) every BM25 term of the query is in the records
    known_fn = lookup_fn(known_mask, row_of)
    char_fn = lookup_fn(embedder.embed_queries(all_texts) @ doc_vectors.T, row_of)  # (n_queries, n_docs) cosine
    hybrid = fusion_settings(cfg)
    ngram_fn = lookup_fn(hybrid.ngram_index(doc_ids, texts).score_matrix(all_texts), row_of)
    roles = {
        "bm25": "BM25",
        "char": f"char model (jsonembed, {training_label(cfg)})",
        "hybrid": f"hybrid ({hybrid.label()}, the default)",
    }
    systems = {
        roles["bm25"]: bm25_fn,
        roles["char"]: char_fn,
        roles["hybrid"]: hybrid.score_fn(char_fn, bm25_fn, ngram_fn, known_fn),
    }
    if hybrid.routes_queries:  # what routing buys: every query fused with the unknown route's weights
        unrouted = dataclasses.replace(hybrid, convex_known_dense_weight=None, convex_known_ngram_weight=None)
        systems[f"hybrid without routing ({unrouted.label()})"] = unrouted.score_fn(char_fn, bm25_fn, ngram_fn)
    # what each part of the hybrid buys: the same fusion without the n-grams, and without the
    # char model (its weight given to BM25)
    if hybrid.uses_ngrams:
        no_ngrams = fusion_settings(cfg, ngram_weight=0.0)
        systems[f"char model + BM25 only ({no_ngrams.label()})"] = no_ngrams.score_fn(char_fn, bm25_fn, None, known_fn)
        no_model = fusion_settings(cfg, dense_weight=0.0)
        systems[f"char n-grams + BM25 only, no char model ({no_model.label()})"] = no_model.score_fn(
            char_fn, bm25_fn, ngram_fn, known_fn
        )
    # references that explain the char model's ceiling: BM25 on only the characters the model
    # reads, and the character 3-5-gram TF-IDF over the whole record alone (typo-robust, not learned)
    window = [plain_text(visible_segments(s, cfg.max_chars)) for s in records.segments]
    systems[f"BM25 on the first {cfg.max_chars} characters only (reference)"] = lookup_fn(
        BM25Index().index(doc_ids, window).score_matrix(all_texts), row_of
    )
    systems["character 3-5-gram TF-IDF, whole record, alone (reference, not learned)"] = ngram_fn
    # the char model of the other training, in the same run: what distillation buys
    other_info = None
    other_cfg = dataclasses.replace(cfg, teacher=None if cfg.teacher is not None else DEFAULT_TEACHER)
    distilled = roles["char"] if cfg.teacher is not None else None
    if compare:
        other, other_info = train_or_reuse(run_name(name, other_cfg), other_cfg, records, reuse)
        other_docs = other.embed_segments(records.segments, show_progress=True)
        other_fn = lookup_fn(other.embed_queries(all_texts) @ other_docs.T, row_of)
        label = training_label(other_cfg)
        systems[f"char model ({label}; comparison)"] = other_fn
        systems[f"hybrid with the {label} char model (same fusion; comparison)"] = hybrid.score_fn(
            other_fn, bm25_fn, ngram_fn, known_fn
        )
        if other_cfg.teacher is not None:
            distilled = f"char model ({label}; comparison)"
    teacher_name = next((c.teacher for c in (cfg, other_cfg) if c.teacher is not None), None) if distilled else None
    teacher_is_minilm = teacher_name is not None and Path(teacher_name).name == Path(MINILM).name
    if with_minilm:
        minilm_fn = sentence_model_fn(name, MINILM, texts, all_texts, row_of)
        minilm_row = f"all-MiniLM-L6-v2 ({'the teacher; ' if teacher_is_minilm else ''}pretrained reference)"
        systems[minilm_row] = minilm_fn
        if teacher_is_minilm:
            roles["teacher"] = minilm_row
        systems["MiniLM in the char model's place (same fusion)"] = hybrid.score_fn(
            minilm_fn, bm25_fn, ngram_fn, known_fn
        )
    if teacher_name is not None and (with_minilm or not teacher_is_minilm):
        if "teacher" not in roles:
            roles["teacher"] = f"teacher ({Path(teacher_name).name}) alone"
            systems[roles["teacher"]] = sentence_model_fn(name, teacher_name, texts, all_texts, row_of)
        # the teacher on the text its targets were built from (the part the student reads)
        systems[f"teacher on the first {cfg.max_chars} characters only (what the student's targets saw; reference)"] = (
            sentence_model_fn(f"{name}-window", teacher_name, window, all_texts, row_of)
        )
        roles["distilled"] = distilled

    def evaluate(fn, query_set: str, ids: list[str]) -> dict[str, float]:
        qs = {q: query_sets[query_set][q] for q in ids}
        return evaluate_retrieval(qs, corpus, {q: qrels[q] for q in ids}, fn, METRICS, doc_ids=doc_ids)

    split_ids = {"dev": dev, "rest": rest}
    results = {
        system: {f"{qs}/{split}": evaluate(fn, qs, split_ids[split]) for qs in QUERY_SETS for split in SPLITS}
        for system, fn in systems.items()
    }
    # the dev queries' NDCG@10 over a grid of (char model, n-gram) convex weights, per query
    # set and per route (every query word known to BM25 or not): the only figures the default
    # weights are chosen from (see GRID_RULE and ROUTED_RULE)
    dev_routes = {
        qs: {
            "known": [q for q in dev if known_mask[row_of[query_sets[qs][q]]]],
            "unknown": [q for q in dev if not known_mask[row_of[query_sets[qs][q]]]],
        }
        for qs in QUERY_SETS
    }

    def dev_ndcg(fn, query_set: str) -> dict[str, float]:
        run = rank_corpus({q: query_sets[query_set][q] for q in dev}, doc_ids, fn, k=10)
        return per_query(run, {q: qrels[q] for q in dev}, "ndcg@10")

    grid = {}
    for dense_w in DENSE_GRID:
        for ngram_w in NGRAM_GRID:
            if dense_w + ngram_w > 0.9 + 1e-9:
                continue
            fn = fusion_settings(cfg, "convex", dense_w, ngram_w).score_fn(char_fn, bm25_fn, ngram_fn)
            point = {}
            for qs in QUERY_SETS:
                per = dev_ndcg(fn, qs)
                point[qs] = round(float(np.mean(list(per.values()))), 4)
                point[f"{qs}_routes"] = {
                    r: [len(ids), float(sum(per[q] for q in ids))] for r, ids in dev_routes[qs].items()
                }
            grid[f"{dense_w:g}/{ngram_w:g}"] = point
    examples = [(judged[q], query_sets["misspelled"][q]) for q in sorted(judged)[:3]]
    return {
        "records": len(records),
        "skipped_records": records.skipped,
        "judged_queries": len(judged),
        "dev_queries": len(dev),
        "rest_queries": len(rest),
        "mean_record_chars": round(float(np.mean([len(t) for t in records.texts()])), 1),
        "train": train_info,
        **({"train_comparison": other_info} if other_info is not None else {}),
        "embed_records_per_second": round(len(records) / embed_seconds, 1),
        "roles": roles,
        "systems": results,
        "dev_weight_grid": grid,
        "known_queries": {
            f"{qs}/{split}": sum(bool(known_mask[row_of[query_sets[qs][q]]]) for q in ids)
            for qs in QUERY_SETS
            for split, ids in split_ids.items()
        },
        "typo_examples": examples,
    }


def goals(data: dict) -> list[str]:
    """The issues' quality goals, checked on dev and rest separately: the typo track's three, and with a
    teacher row, distillation's two (the distilled char model against its teacher on misspelled queries)."""
    names = list(data["systems"])
    roles = data.get("roles") or dict(zip(("bm25", "char", "hybrid"), names[:3]))  # results from before roles
    bm25, char, hybrid = (data["systems"][roles[r]] for r in ("bm25", "char", "hybrid"))
    lines = []
    for split in SPLITS:

        def ndcg(system, qs, split=split):
            return system[f"{qs}/{split}"]["ndcg@10"]

        checks = [
            ("misspelled: char model >= BM25", ndcg(char, "misspelled"), ndcg(bm25, "misspelled")),
            ("misspelled: hybrid >= BM25 + 0.05", ndcg(hybrid, "misspelled"), ndcg(bm25, "misspelled") + 0.05),
            ("clean: hybrid >= BM25", ndcg(hybrid, "clean"), ndcg(bm25, "clean")),
        ]
        if "distilled" in roles and "teacher" in roles:
            student, teacher = data["systems"][roles["distilled"]], data["systems"][roles["teacher"]]
            checks += [
                (
                    "misspelled: distilled char model >= teacher",
                    ndcg(student, "misspelled"),
                    ndcg(teacher, "misspelled"),
                ),
                (  # "reads typos better than its teacher": loses less to them
                    "misspelled - clean: distilled char model >= teacher",
                    ndcg(student, "misspelled") - ndcg(student, "clean"),
                    ndcg(teacher, "misspelled") - ndcg(teacher, "clean"),
                ),
            ]
        lines.append(
            f"- {split}: "
            + "; ".join(
                f"{label}: {got:.4f} vs {need:.4f} ({'met' if got >= need else 'not met'})"
                for label, got, need in checks
            )
        )
    return lines


def choose_weights(datasets: dict) -> dict | None:
    """The grid point GRID_RULE picks from the dev queries of every dataset run (None without a grid)."""
    grids = {name: d["dev_weight_grid"] for name, d in datasets.items() if "dev_weight_grid" in d}
    if not grids:
        return None
    bm25 = {name: datasets[name]["systems"]["BM25"]["clean/dev"]["ndcg@10"] for name in grids}
    keys = list(next(iter(grids.values())))
    allowed = [k for k in keys if all(grids[n][k]["clean"] >= bm25[n] for n in grids)]
    best = max(allowed or keys, key=lambda k: float(np.mean([grids[n][k]["misspelled"] for n in grids])))
    dense_w, ngram_w = (float(x) for x in best.split("/"))
    choice = {
        "rule": GRID_RULE,
        "convex_dense_weight": dense_w,
        "convex_ngram_weight": ngram_w,
        "datasets": list(grids),
    }
    if all("clean_routes" in g[keys[0]] for g in grids.values()):
        choice["routed"] = choose_routed_weights(grids, bm25, keys)
    return choice


def _route_mean(point: dict, route: str) -> float:
    """Mean dev NDCG@10 of one grid point over the queries of one route, clean and misspelled pooled."""
    n = sum(point[f"{qs}_routes"][route][0] for qs in QUERY_SETS)
    return sum(point[f"{qs}_routes"][route][1] for qs in QUERY_SETS) / n if n else 0.0


def _clean_mean(grid: dict, known_key: str, unknown_key: str) -> float:
    """Clean dev NDCG@10 when known-route queries use ``known_key``'s weights and the others ``unknown_key``'s."""
    known, unknown = grid[known_key]["clean_routes"]["known"], grid[unknown_key]["clean_routes"]["unknown"]
    return (known[1] + unknown[1]) / max(1, known[0] + unknown[0])


def choose_routed_weights(grids: dict, bm25: dict, keys: list[str]) -> dict:
    """The two grid points ROUTED_RULE picks (known route first, then the unknown route)."""
    known = max(keys, key=lambda k: float(np.mean([_route_mean(grids[n][k], "known") for n in grids])))
    allowed = [k for k in keys if all(_clean_mean(grids[n], known, k) >= bm25[n] for n in grids)]
    unknown = max(allowed or keys, key=lambda k: float(np.mean([_route_mean(grids[n][k], "unknown") for n in grids])))
    (known_dense, known_ngram), (dense, ngram) = ([float(x) for x in k.split("/")] for k in (known, unknown))
    return {
        "rule": ROUTED_RULE,
        "convex_dense_weight": dense,
        "convex_ngram_weight": ngram,
        "convex_known_dense_weight": known_dense,
        "convex_known_ngram_weight": known_ngram,
        "dev": {
            n: {
                "clean": round(_clean_mean(grids[n], known, unknown), 4),
                "known_route": round(_route_mean(grids[n][known], "known"), 4),
                "unknown_route": round(_route_mean(grids[n][unknown], "unknown"), 4),
            }
            for n in grids
        },
    }


def markdown(report: dict) -> str:
    lines = [
        "# jsonembed quality benchmark, clean and misspelled queries",
        "",
        "Every char model is trained from scratch on the dataset's records only (no queries, no labels). BM25 is "
        "`embshared.search.BM25Index` (bm25s, Lucene BM25, English stop words, Snowball stemming) over the record's "
        "values; the hybrid is `search --hybrid`'s default fusion. all-MiniLM-L6-v2 is the packaged pretrained "
        "model, a reference, not a peer.",
        "",
        f"**Typo track.** Each query word of {TYPO_MIN_LETTERS}+ letters gets one edit with probability "
        f"{TYPO_WORD_PROB} (insert a letter, delete one, swap two adjacent different letters, or substitute one, "
        f"drawn uniformly; position uniform), generated by `embedding_model.typos.misspell` with a seed per query "
        f"(`typos:{TYPO_SEED}:<query id>`).",
        "",
        "**Splits.** dev = a seeded 30% of the judged queries: the only queries the view / noise defaults and the "
        "fusion weight were chosen on (`bench/tune_views.py`, `results/default/tuning.md`); rest = the other 70%, "
        "not looked at while choosing.",
        "",
    ]
    for name, data in report["datasets"].items():
        train_info = data["train"]
        val = train_info.get("final_validation", {})
        lines += [
            f"## {name}",
            "",
            f"{data['records']} records ({data['skipped_records']} skipped), {data['judged_queries']} judged queries "
            f"({data['dev_queries']} dev, {data['rest_queries']} rest), mean record text {data['mean_record_chars']:.0f} "
            f"characters (the model reads the first {report['config']['max_chars']}).",
            "",
            "NDCG@10:",
            "",
            "| system | clean dev | clean rest | misspelled dev | misspelled rest |",
            "|---|---:|---:|---:|---:|",
        ]
        for system, res in data["systems"].items():
            cells = [f"{res[f'{qs}/{split}']['ndcg@10']:.4f}" for qs in QUERY_SETS for split in SPLITS]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        if "known_queries" in data:
            sizes = {"dev": data["dev_queries"], "rest": data["rest_queries"]}
            lines += [
                "",
                "Queries whose every word (BM25 term) occurs in the records (the fusion's known route): "
                + ", ".join(f"{key} {n}/{sizes[key.split('/')[1]]}" for key, n in data["known_queries"].items())
                + ".",
            ]
        lines += ["", "Goals:", "", *goals(data), ""]
        for qs in QUERY_SETS:
            lines += [
                f"All metrics, {qs} queries, rest split:",
                "",
                format_table({s: r[f"{qs}/rest"] for s, r in data["systems"].items()}, METRICS),
                "",
            ]
        if "dev_weight_grid" in data:
            default = f"{report['config']['convex_dense_weight']:g}/{report['config'].get('convex_ngram_weight', 0):g}"
            bm25_dev = {qs: data["systems"]["BM25"][f"{qs}/dev"]["ndcg@10"] for qs in QUERY_SETS}
            lines += [
                f"Hybrid NDCG@10 on the dev queries by convex weight (char model / char n-grams; BM25 gets the rest; "
                f"BM25 alone: clean {bm25_dev['clean']:.4f}, misspelled {bm25_dev['misspelled']:.4f}; the default "
                "in bold):",
                "",
                "| weights | clean dev | misspelled dev |",
                "|---|---:|---:|",
            ]
            for key, row in data["dev_weight_grid"].items():
                name = f"**{key}**" if key == default else key
                lines.append(f"| {name} | {row['clean']:.4f} | {row['misspelled']:.4f} |")
            lines.append("")
        lines += [
            "",
            "Typo examples: " + "; ".join(f"`{a}` -> `{b}`" for a, b in data["typo_examples"]),
            "",
            f"Training: {train_info['train_records']} records, {train_info['steps']} steps in "
            f"{train_info['seconds']:.0f} s ({train_info['train_records_per_second']:.0f} records/s); held-out "
            f"self-retrieval accuracy@1 {val.get('accuracy@1', float('nan')):.3f}. Embedding the records: "
            f"{data['embed_records_per_second']:.0f} records/s.",
            "",
        ]
        for label, info in (("configured", train_info), ("comparison", data.get("train_comparison"))):
            teacher = (info or {}).get("teacher")
            if teacher:
                final = info.get("final_validation", {})
                source = "read from the cache" if teacher["from_cache"] else f"embedded in {teacher['seconds']:.0f} s"
                lines += [
                    f"Distillation ({label} model): teacher {teacher['name']}, {teacher['texts']} texts "
                    f"({source}), {teacher['dim']}-dim{', through a projection' if teacher['projection'] else ''}; the whole "
                    f"training took {info['seconds']:.0f} s (goal for 5k records: 600 s, teacher included); held-out "
                    f"cosine to the teacher {final.get('teacher_cosine', float('nan')):.3f}.",
                    "",
                ]
        if name == "cranfield":
            lines += [
                "Cranfield qrels: graded relevance = 5 - code (code 1 'complete answer' -> 4 ... code 4 -> 1); the "
                "225 lines with code -1 (one per query, the query's own source document) are not relevance "
                "judgements and are left out.",
                "",
            ]
    choice = report.get("dev_choice")
    if choice:
        configured = (report["config"]["convex_dense_weight"], report["config"].get("convex_ngram_weight", 0.0))
        picked = (choice["convex_dense_weight"], choice["convex_ngram_weight"])
        lines += [
            f"**Choice of the fusion weights** (on {', '.join(choice['datasets'])}): {choice['rule']}. This run's "
            f"grid picks char model {picked[0]:g} / n-grams {picked[1]:g}; the configured weights (of the unknown route) are "
            f"{configured[0]:g} / {configured[1]:g}" + (" (the same)." if picked == configured else "."),
            "",
        ]
        routed = choice.get("routed")
        if routed:
            cfg = report["config"]
            known_cfg = tuple(
                cfg[f"convex_{k}_weight"]
                if cfg.get(f"convex_known_{k}_weight") is None
                else cfg[f"convex_known_{k}_weight"]
                for k in ("dense", "ngram")
            )
            got = (routed["convex_known_dense_weight"], routed["convex_known_ngram_weight"])
            got_unknown = (routed["convex_dense_weight"], routed["convex_ngram_weight"])
            lines += [
                f"**Routed choice**: {routed['rule']}. This run's grid picks {got[0]:g} / {got[1]:g} for the known "
                f"route and {got_unknown[0]:g} / {got_unknown[1]:g} for the others; the configured weights are "
                f"{known_cfg[0]:g} / {known_cfg[1]:g} and {configured[0]:g} / {configured[1]:g}"
                + (" (the same)." if (got, got_unknown) == (known_cfg, configured) else ".")
                + " Dev NDCG@10 with the picked pair: "
                + "; ".join(
                    f"{n}: clean {d['clean']:.4f}, known route {d['known_route']:.4f}, unknown route {d['unknown_route']:.4f}"
                    for n, d in routed["dev"].items()
                ),
                "",
            ]
    if report.get("reused"):
        lines += [
            "The char models were reused from `bench/runs/` (`--reuse`, same config); training figures are from the run that trained them.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="jsonembed config overrides")
    parser.add_argument("--datasets", default="scifact,cranfield")
    parser.add_argument("--config", default=None, help="config file (default: jsonembed/config/default.yaml)")
    parser.add_argument("--reuse", action="store_true", help="reuse models in bench/runs trained with the same config")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM reference")
    parser.add_argument(
        "--no-comparison",
        action="store_true",
        help="skip the char model of the other training (self-supervised with a teacher, distilled without)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy machine)")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where quality.{json,md} go")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite quality.md from quality.json")
    args = parser.parse_intermixed_args(argv)
    start_run(threads=args.threads)
    if args.markdown_only:
        report = json.loads((Path(args.results_dir) / "quality.json").read_text())
        command, facts = report.pop("command"), report.pop("machine")
        write_results(args.results_dir, "quality", report, markdown(report), command, facts)
        return 0
    cfg = build_config(args.config, args.overrides)
    data = shared_data_dir()
    facts = machine_facts()
    report = {"config": config_to_dict(cfg), "reused": args.reuse, "datasets": {}}
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        folder = data / name
        if not folder.is_dir():
            logger.warning("%s not found, skipping %s", folder, name)
            continue
        report["datasets"][name] = run_dataset(
            name, folder, cfg, args.reuse, not args.no_minilm, compare=not args.no_comparison
        )
        print(f"\n{name}\n" + "\n".join(goals(report["datasets"][name])), flush=True)
    if not report["datasets"]:
        logger.warning("no dataset found under %s; nothing written", data)
        return 0
    report["dev_choice"] = choose_weights(report["datasets"])
    facts["load_average_end"] = load_average()
    command = command_line(None if argv is None else ["jsonembed/bench/bench_quality.py", *argv])
    _, md_path = write_results(args.results_dir, "quality", report, markdown(report), command, facts)
    print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
