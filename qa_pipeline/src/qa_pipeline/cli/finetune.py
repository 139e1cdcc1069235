"""Fine-tune an embedding model on generated Q&A pairs, through embeddingFT's training code.

    python -m qa_pipeline.finetune --config config/embedding_finetuner.json \
        [--input_jsonl ... --output_dir ... --base_model ... --epochs 3 --batch_size 16] [key=value ...]

``make qa-train`` and ``scripts/train_embeddings.sh`` run it; the work is
:func:`qa_pipeline.finetuning.finetune`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embshared.cli import start_run
from embshared.errors import cli_entry
from qa_pipeline.cli.common import build_parser as common_parser
from qa_pipeline.cli.common import resolve
from qa_pipeline.finetuning import FinetuneConfig, finetune

#: the guide's flags that are not config keys (``--input_jsonl``, ``--base_model``, ... are)
GUIDE_FLAGS = {"epochs": {"type": float, "help": "num_epochs"}, "batch_size": {"type": int, "help": "train_batch_size"}}
#: the config key each sets
ALIASES = {"epochs": "num_epochs", "batch_size": "train_batch_size"}


def build_parser() -> argparse.ArgumentParser:
    return common_parser(__doc__.splitlines()[0], FinetuneConfig, "embedding_finetuner.json", GUIDE_FLAGS)


def config_from_argv(argv: list[str] | None = None) -> FinetuneConfig:
    """The config this command line resolves to (``scripts/train_embeddings.sh`` shows it before training)."""
    return resolve(FinetuneConfig, build_parser().parse_args(argv), ALIASES)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    cfg = config_from_argv(argv)
    start_run(seed=cfg.seed, log_file=Path(cfg.output_dir) / "logs" / "embedding_finetuning.log")
    result = finetune(cfg)
    if result is None:
        print(f"{cfg.output_dir} already holds a finished model (overwrite=true to train again)")
        return 0
    for system, values in result.metrics.items():
        print(f"{system:10s} " + "  ".join(f"{k}={v:.4f}" for k, v in values.items() if k in ("ndcg@10", "mrr@10")))
    print(f"model: {result.model_dir}  ({result.n_train} train pairs, {result.n_test} validation queries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
