"""Evaluate any sentence-transformers model on a dataset, next to BM25.

    python -m embedding_ft.cli.evaluate --model RUN/final_model --data data/samples/scifact
    python -m embedding_ft.cli.evaluate --model M --data D --test-size 0.2 --seed 42   # a run's held-out split

With ``--test-size`` and ``--seed`` the queries are split exactly as ``train`` splits them,
so the numbers are on the same held-out queries; without, every query is evaluated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedding_ft.backends import BACKENDS
from embedding_ft.config import DEFAULT_METRICS
from embshared.cli import start_run
from embshared.errors import UserError, cli_entry
from embshared.evaluate import format_table
from embshared.files import write_json


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
    parser.add_argument("--no-hybrid", action="store_true", help="skip the hybrid (BM25 + model) rows")
    parser.add_argument(
        "--hybrid-weight",
        type=float,
        default=None,
        help="dense weight of the hybrid rows' convex fusion (0-1; default: the model folder's fusion.json, else 0.5)",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="run the models with this back end")
    parser.add_argument("--file-name", help="exported file inside the model folder (default: the int8 export)")
    parser.add_argument("--output", type=Path, help="write the metrics as JSON here")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_run()
    from embedding_ft.backends import load_encoder
    from embedding_ft.data import build_eval_set, load_dataset, split_by_query
    from embedding_ft.evaluation import RetrievalEvaluator, make_evaluator

    examples, beir = load_dataset(args.data, args.split)
    test = split_by_query(examples, args.test_size, args.seed)[1] if args.test_size else examples
    eval_set = build_eval_set(examples, test, beir)
    if not len(eval_set):
        raise UserError(f"{args.data}: nothing to evaluate")
    if args.hybrid_weight is not None and not 0 <= args.hybrid_weight <= 1:
        raise UserError(f"--hybrid-weight must be in [0, 1], got {args.hybrid_weight}")
    evaluator = make_evaluator(eval_set, args.metrics, args.metrics[0], args.batch_size)
    retrieval = isinstance(evaluator, RetrievalEvaluator)
    rows: dict[str, dict[str, float]] = {}
    if retrieval and not args.no_bm25:
        rows["BM25"] = evaluator.bm25().means
    hybrid_rows = {}
    for name in args.model:
        model = load_encoder(name, args.backend, args.file_name)
        model.max_seq_length = args.max_seq_length
        label = name if args.backend == "torch" else f"{name} ({args.backend})"
        if not retrieval:
            rows[label] = evaluator.compute(model)
            continue
        dense = evaluator.dense_scores(model)
        rows[label] = evaluator.score(dense).means
        if not args.no_hybrid:
            fusion = _fusion_for(name, args.hybrid_weight)
            hybrid_rows[f"hybrid (BM25 + {label})"] = evaluator.hybrid(dense, fusion).means
    rows.update(hybrid_rows)
    print(f"{args.data}: {len(eval_set)} {'queries' if eval_set.kind == 'retrieval' else 'pairs'}\n")
    print(format_table(rows))
    if args.output:
        write_json(args.output, {"data": args.data, "n": len(eval_set), "metrics": rows})
    return 0


def _fusion_for(model: str, weight: float | None):
    """The hybrid's fusion: the given dense weight (convex), else the model folder's fusion.json, else the default."""
    import dataclasses

    from embshared.fusion_choice import FusionSetting

    if weight is not None:
        return dataclasses.replace(FusionSetting.default(), dense_weight=weight)
    saved = FusionSetting.load(model) if Path(model).is_dir() else None
    return saved or FusionSetting.default()


if __name__ == "__main__":
    raise SystemExit(main())
