"""Evaluate a model on labelled queries, next to BM25 and the hybrid of both.

    python -m embedding_model.cli.evaluate --model my_model.pt --data corpus.jsonl \
        --queries queries.jsonl --qrels qrels/train.tsv [--output results.json]

Records are named by ``--id-field`` (default ``_id``, as in BEIR); queries are JSONL with
``_id`` and ``text``; qrels are TSV ``query-id  corpus-id  score``. Prints a Markdown table
of Recall@K, MRR@10 and NDCG@10 for BM25, jsonembed and jsonembed + BM25 (both fusions).
"""

from __future__ import annotations

import argparse
import sys

from embedding_model.cache import cached_embeddings
from embedding_model.cli.common import add_common_args, report_skipped, start
from embedding_model.embedder import JsonEmbedder
from embedding_model.evaluation import (
    DEFAULT_METRICS,
    check_qrels,
    evaluate_systems,
    load_queries,
    metric_names,
    write_evaluation,
)
from embedding_model.records import load_records
from embshared.errors import UserError, cli_entry
from embshared.evaluate import format_table
from embshared.io import read_qrels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedding_model.cli.evaluate",
        description="Recall@K, MRR and NDCG@10 of a jsonembed model, BM25 and their hybrid.",
    )
    parser.add_argument("--model", required=True, help="model file written by embedding_model.cli.train")
    parser.add_argument("--data", required=True, help="the records (JSONL), each with an id field")
    parser.add_argument("--queries", required=True, help="queries (JSONL with id and text fields)")
    parser.add_argument("--qrels", required=True, help="relevance judgements (TSV: query-id, corpus-id, score)")
    parser.add_argument("--id-field", default="_id", help="field naming each record (default _id)")
    parser.add_argument("--query-id-field", default="_id", help="field naming each query (default _id)")
    parser.add_argument("--query-text-field", default="text", help="field holding the query text (default text)")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated metric names")
    parser.add_argument("--output", default=None, help="write the results as JSON here (and a .md table beside it)")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: .jsonembed_cache beside the data)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    add_common_args(parser)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start(args)
    try:
        names = metric_names(args.metrics)
    except ValueError as exc:
        raise UserError(f"--metrics: {exc}") from None

    embedder = JsonEmbedder.load(args.model, args.device)
    records = load_records(
        args.data,
        embedder.cfg.ignore_fields,
        args.skip_invalid,
        id_field=args.id_field,
        max_chars=embedder.cfg.max_chars,
    )
    report_skipped(records.path, records.skipped)
    queries = load_queries(args.queries, args.query_id_field, args.query_text_field, args.skip_invalid)
    qrels = check_qrels(read_qrels(args.qrels, args.skip_invalid), queries, records.ids, args.qrels, args.skip_invalid)
    embeddings = cached_embeddings(embedder, args.model, records, not args.no_cache, not args.quiet, args.cache_dir)

    results = evaluate_systems(embedder, records, queries, qrels, names, embeddings)

    table = format_table(results, names)
    print(f"{len(records)} records, {len(qrels)} judged queries\n")
    print(table)
    if args.output:
        write_evaluation(args.output, args.model, args.data, results, len(qrels), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
