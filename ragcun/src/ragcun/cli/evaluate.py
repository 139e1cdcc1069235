"""``evaluate``: retrieval metrics and isotropy diagnostics of a trained model (or a base model).

    python ragcun/scripts/evaluate.py --model_path checkpoints/best_model.pt \\
        --test_data data/processed/test_eval.json --output_file results/eval.json

``--test_data`` is a test_eval.json from prepare_data or a BEIR folder (``--split`` picks
its qrels). A ragcun checkpoint ranks by Euclidean distance; any other model path or name
is loaded as a sentence-transformers model and ranks by cosine similarity, for comparison.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.errors import cli_entry
from embshared.evaluate import format_table
from embshared.files import write_json
from ragcun.evaluation import EvalConfig, evaluate_model

logger = logging.getLogger("ragcun.evaluate")

ISOTROPY_COLUMNS = (
    "std_mean",
    "mean_abs_mean",
    "eig_max_over_mean",
    "effective_rank_ratio",
    "sigreg",
    "sigreg_standardized",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, EvalConfig)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(EvalConfig, args)
    start_run(seed=config.seed)
    result = evaluate_model(config)
    print(format_table({Path(config.model_path).name: result["metrics"]}))
    if "isotropy" in result:
        print()
        print(
            format_table({f"{k} embeddings": v for k, v in result["isotropy"].items() if v}, ISOTROPY_COLUMNS, digits=3)
        )
    if config.output_file:
        write_json(config.output_file, result)
        logger.info("wrote %s", config.output_file)
    return 0
