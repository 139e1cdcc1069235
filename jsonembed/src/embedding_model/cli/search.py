"""Search JSON records with a trained model.

    python -m embedding_model.cli.search --model my_model.pt --data your_data.jsonl \
        --query "high quality electronics" --topk 5 [--explain] [--hybrid]

The data is embedded once and the matrix cached beside it (keyed by the model's and the
data's hashes); queries go through an exact FAISS inner-product index. ``--hybrid`` fuses
the dense ranking with BM25 (by default a weighted sum of z-scored scores, which can include a
character n-gram TF-IDF ranker, ``--ngram-weight``; ``--fusion rrf`` for reciprocal-rank
fusion); ``--explain`` shows, for every hit,
the fields whose removal costs the most similarity.
"""

from __future__ import annotations

import argparse
import json
import sys

from embedding_model.cache import cached_embeddings
from embedding_model.cli.common import add_common_args, positive, report_skipped, start
from embedding_model.embedder import JsonEmbedder
from embedding_model.records import load_records
from embedding_model.retrieval import RecordSearch, check_queries, fusion_settings
from embedding_model.search_results import format_results, search_results
from embshared.errors import UserError, cli_entry
from embshared.fusion import FUSIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedding_model.cli.search", description="Search JSON records with a trained jsonembed model."
    )
    parser.add_argument("--model", required=True, help="model file written by embedding_model.cli.train")
    parser.add_argument("--data", required=True, help="records to search (JSONL)")
    parser.add_argument("--query", required=True, action="append", help="query text (repeat for several)")
    parser.add_argument("--topk", type=int, default=5, help="hits per query (default 5)")
    parser.add_argument("--explain", action="store_true", help="show the fields that contributed most to each hit")
    parser.add_argument("--explain-fields", type=int, default=3, help="fields shown per hit with --explain")
    parser.add_argument("--hybrid", action="store_true", help="fuse with BM25 (see --fusion)")
    parser.add_argument(
        "--fusion",
        choices=FUSIONS,
        default=None,
        help="how --hybrid fuses: convex or rrf (default: the model's config, convex)",
    )
    parser.add_argument(
        "--dense-weight",
        type=float,
        default=None,
        help="weight of the model in --hybrid's fusion, for every query (default: config)",
    )
    parser.add_argument(
        "--ngram-weight",
        type=float,
        default=None,
        help="weight of the character n-gram TF-IDF in --hybrid's convex fusion, for every query (default: config)",
    )
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: .jsonembed_cache beside the data)")
    parser.add_argument("--no-cache", action="store_true", help="embed the data again and do not cache it")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    add_common_args(parser)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start(args)
    positive(args.topk, "--topk")
    positive(args.explain_fields, "--explain-fields")
    if args.dense_weight is not None and args.dense_weight < 0:
        raise UserError(f"--dense-weight must not be negative, got {args.dense_weight}")
    try:
        check_queries(args.query)
    except UserError as exc:
        raise UserError(f"--query: {exc}") from None

    embedder = JsonEmbedder.load(args.model, args.device)
    try:
        fusion = fusion_settings(embedder.cfg, args.fusion, args.dense_weight, args.ngram_weight)
    except ValueError as exc:
        raise UserError(f"--dense-weight / --ngram-weight: {exc}") from None
    records = load_records(
        args.data, embedder.cfg.ignore_fields, skip_invalid=args.skip_invalid, max_chars=embedder.cfg.max_chars
    )
    report_skipped(records.path, records.skipped)
    embeddings = cached_embeddings(embedder, args.model, records, not args.no_cache, not args.quiet, args.cache_dir)
    engine = RecordSearch(embedder, records, embeddings, fusion)

    explain = args.explain_fields if args.explain else None
    results = search_results(engine, args.query, args.topk, args.hybrid, explain)

    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        print(format_results(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
