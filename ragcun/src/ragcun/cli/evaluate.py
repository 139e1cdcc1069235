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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from embshared.config import ConfigError
from embshared.errors import cli_entry
from embshared.evaluate import format_table
from embshared.files import write_json
from embshared.runtime import seed_everything, setup_logging
from ragcun.cli.flags import add_config_arguments, build_config
from ragcun.evaluation import evaluate_encoder, load_eval_set, metric_names

logger = logging.getLogger("ragcun.evaluate")

ISOTROPY_COLUMNS = (
    "std_mean",
    "mean_abs_mean",
    "eig_max_over_mean",
    "effective_rank_ratio",
    "sigreg",
    "sigreg_standardized",
)


@dataclass
class EvalConfig:
    """Options of evaluate (the public guide's, plus the BEIR split and the metric)."""

    model_path: str | None = field(
        default=None, metadata={"help": "ragcun checkpoint (.pt) or a sentence-transformers model"}
    )
    test_data: str | None = field(default=None, metadata={"help": "test_eval.json or a BEIR folder"})
    split: str = field(default="train", metadata={"help": "qrels split of a BEIR folder"})
    batch_size: int = field(default=32, metadata={"help": "encoding batch size"})
    top_k: int = field(default=100, metadata={"help": "ranking depth (metrics with a larger cut-off are skipped)"})
    output_file: str | None = field(default=None, metadata={"help": "write the results as JSON here"})
    metric: Literal["auto", "l2", "cosine", "dot"] = field(
        default="auto", metadata={"help": "auto: l2 for a ragcun checkpoint, cosine otherwise"}
    )
    diagnostics: bool = field(default=True, metadata={"help": "isotropy diagnostics of the embeddings"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncate texts to this many tokens"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: CUDA if available)"})
    seed: int = field(default=0, metadata={"help": "seed of the SIGReg directions in the diagnostics"})

    def validate(self) -> None:
        if self.batch_size <= 0 or self.top_k <= 0:
            raise ValueError("batch_size and top_k must be positive")


def _is_checkpoint(path: str) -> bool:
    return path.endswith(".pt") or Path(path).is_file()


def load_encoder(config: EvalConfig):
    """(encode function, metric, description) for the model named in the config."""
    if _is_checkpoint(config.model_path):
        from ragcun.checkpoint import load_model
        from ragcun.model import ModelConfig

        model = load_model(
            config.model_path, device=config.device, requested=ModelConfig(max_seq_length=config.max_seq_length)
        )

        def encode(texts):
            return model.encode(texts, batch_size=config.batch_size)

        return encode, "l2", model.describe()
    from embshared.evaluate import sentence_transformer_encoder
    from embshared.models import load_sentence_transformer

    model = load_sentence_transformer(config.model_path, device=config.device)
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    return (
        sentence_transformer_encoder(model, batch_size=config.batch_size),
        "cosine",
        f"sentence-transformers {config.model_path}",
    )


def run(config: EvalConfig) -> dict[str, Any]:
    """Evaluate; returns the result dict that --output_file receives."""
    if not config.model_path or not config.test_data:
        raise ConfigError("model_path and test_data are required")
    eval_set = load_eval_set(config.test_data, split=config.split)
    names = metric_names(config.top_k)
    encode, default_metric, description = load_encoder(config)
    metric = default_metric if config.metric == "auto" else config.metric
    logger.info(
        "%s: %d queries, %d documents, %s ranking", description, len(eval_set.qrels), len(eval_set.corpus), metric
    )
    result = evaluate_encoder(encode, eval_set, metric, names, diagnostics=config.diagnostics, show_progress=True)
    return {
        "model_path": config.model_path,
        "model": description,
        "test_data": config.test_data,
        "metric": metric,
        "queries": len(eval_set.qrels),
        "documents": len(eval_set.corpus),
        **result,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, EvalConfig)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    config = build_config(EvalConfig, args)
    seed_everything(config.seed)
    result = run(config)
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
