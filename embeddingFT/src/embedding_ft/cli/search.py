"""Search an index: the ranked documents for a query, dense or hybrid (BM25 + dense).

    python -m embedding_ft.cli.search --index indexes/scifact --query "vitamin D and bone density" [--top-k 10] [--hybrid]
    python -m embedding_ft.cli.search --index idx --query "..." --json

The query is encoded with the model (and back end) that built the index; ``--model`` /
``--backend``, when given, must name the same model. ``--hybrid`` fuses with the index's fusion
setting (``fusion.json``, chosen on the training run's dev queries; else the convex fusion with
dense weight 0.5); ``--weight W`` forces the convex fusion with dense weight W. The fusion used
is printed first (a ``fusion:`` line; with ``--json`` a "fusion" field on every line).

The hybrid fuses every document below 200,000 documents, and above only the union of BM25's and
FAISS's top 1000 (z-scored over the whole collection all the same); ``--candidates N`` fuses the
union of each ranker's top N, ``--candidates 0`` every document.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from embedding_ft.backends import BACKENDS
from embshared.cli import start_run
from embshared.errors import UserError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.search", description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--query", required=True)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--hybrid", action="store_true", help="fuse BM25 with the dense scores")
    parser.add_argument(
        "--weight", type=float, help="convex hybrid with this dense weight (0-1; default: the index's fusion setting)"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        help="hybrid: fuse only the union of BM25's and FAISS's top N (0: every document; "
        "default: every document below 200,000, else 1000)",
    )
    parser.add_argument("--model", help="must be the index's model (checked)")
    parser.add_argument("--backend", choices=BACKENDS, help="must be the index's back end (checked)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.query.strip():
        raise UserError("--query is empty")
    if args.top_k < 1:
        raise UserError(f"--top-k must be positive, got {args.top_k}")
    if args.weight is not None and not 0 <= args.weight <= 1:
        raise UserError(f"--weight must be in [0, 1], got {args.weight}")
    if args.candidates is not None and args.candidates < 0:
        raise UserError(f"--candidates must be >= 0 (0: every document), got {args.candidates}")
    start_run(quiet=True)
    from embedding_ft.index import Searcher

    searcher = Searcher(args.index, args.model, args.backend)
    hits = searcher.search(args.query, args.top_k, args.hybrid, args.weight, args.candidates)
    fusion = None
    if args.hybrid:
        fusion = f"{searcher.describe_fusion(args.weight)}; over {searcher.describe_candidates(args.candidates)}"
    if args.json:
        for hit in hits:
            print(json.dumps({**hit.as_dict(), **({"fusion": fusion} if fusion else {})}, ensure_ascii=False))
        return 0
    if fusion:
        print(f"fusion: {fusion}")
    for hit in hits:
        text = hit.text if len(hit.text) <= 100 else hit.text[:97] + "..."
        print(f"{hit.rank:3d}  {hit.score:8.4f}  {hit.id:>12}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
