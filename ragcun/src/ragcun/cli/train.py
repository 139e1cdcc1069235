"""``train``: fine-tune a GaussianEmbeddingGemma (contrastive + SIGReg + variance).

    python ragcun/scripts/train.py --train_data data/processed/train.json \\
        --val_data data/processed/val.json --epochs 3 --output_dir checkpoints

Every key of :class:`ragcun.training.TrainConfig` is a flag (the model's keys flat:
``--output_dim``, ``--freeze_base``); ``--config FILE`` and trailing ``key=value`` overrides
work too. ``--resume latest`` continues from the newest checkpoint_epoch_N.pt in
--output_dir; ``--model_path`` starts from a checkpoint's weights.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.config import ConfigError
from embshared.errors import cli_entry
from ragcun.data import load_training_examples
from ragcun.training import TrainConfig, train

logger = logging.getLogger("ragcun.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(TrainConfig, args)
    if not config.train_data:
        raise ConfigError("train_data is required (--train_data FILE or a BEIR folder)")
    start_run(seed=config.seed, threads=config.threads)
    train_examples = load_training_examples(config.train_data, split=config.data_split)
    val_examples = load_training_examples(config.val_data, split=config.data_split) if config.val_data else None
    result = train(config, train_examples, val_examples, show_progress=not args.quiet, log_file="training.log")
    print(f"best model: {result.best_model} (epoch {result.best_epoch}, loss {result.best_loss:.4f})")
    print(f"final model: {result.final_model}")
    print(f"outputs: {Path(result.output_dir)}")
    return 0
