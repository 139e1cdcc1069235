"""Evaluate any sentence-transformers model on a dataset, next to BM25.

    python -m embedding_ft.cli.evaluate --model RUN/final_model --data data/samples/scifact
    python -m embedding_ft.cli.evaluate --model M --data D --test-size 0.2 --seed 42   # a run's held-out split

With ``--test-size`` and ``--seed`` the queries are split exactly as ``train`` splits them,
so the numbers are on the same held-out queries; without, every query is evaluated.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embedding_ft.config import DEFAULT_METRICS
from embshared.errors import UserError, cli_entry
from embshared.evaluate import format_table
from embshared.files import write_json
from embshared.runtime import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, action="append", help="model folder or name (repeatable)")
    parser.add_argument("--data", required=True, help="a BEIR folder, or a pairs/triplets/similarity file")
    parser.add_argument("--split", default="train", help="BEIR qrels split (default: train)")
    parser.add_argument("--test-size", type=float, default=None, help="evaluate the held-out split of this size only")
    parser.add_argument("--seed", type=int, default=42, help="split seed (as in the training config)")
    parser.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-bm25", action="store_true", help="skip the BM25 row")
    parser.add_argument("--output", type=Path, help="write the metrics as JSON here")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.INFO)
    from embedding_ft.data import build_eval_set, load_dataset, split_by_query
    from embedding_ft.evaluation import make_evaluator
    from embedding_ft.train import evaluate_bm25
    from embshared.models import load_sentence_transformer

    examples, beir = load_dataset(args.data, args.split)
    test = split_by_query(examples, args.test_size, args.seed)[1] if args.test_size else examples
    eval_set = build_eval_set(examples, test, beir)
    if not len(eval_set):
        raise UserError(f"{args.data}: nothing to evaluate")
    rows: dict[str, dict[str, float]] = {}
    if not args.no_bm25:
        bm25 = evaluate_bm25(eval_set, args.metrics)
        if bm25 is not None:
            rows["BM25"] = bm25
    evaluator = make_evaluator(eval_set, args.metrics, args.metrics[0], args.batch_size)
    for name in args.model:
        model = load_sentence_transformer(name)
        model.max_seq_length = args.max_seq_length
        rows[name] = evaluator.compute(model)
    print(f"{args.data}: {len(eval_set)} {'queries' if eval_set.kind == 'retrieval' else 'pairs'}\n")
    print(format_table(rows))
    if args.output:
        write_json(args.output, {"data": args.data, "n": len(eval_set), "metrics": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
