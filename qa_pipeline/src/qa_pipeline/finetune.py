"""``python -m qa_pipeline.finetune`` (the guide's command name): runs :mod:`qa_pipeline.cli.finetune`.

The fine-tuning itself is :mod:`qa_pipeline.finetuning` (the pairs: :mod:`qa_pipeline.qa_pairs`);
their names are re-exported here for code that imported them from this module.
"""

from __future__ import annotations

from qa_pipeline.cli.finetune import build_parser, main
from qa_pipeline.finetuning import GUIDE_LOSSES, FinetuneConfig, finetune, train_config, warmup_ratio
from qa_pipeline.qa_pairs import load_qa_pairs, split_by_paper

__all__ = [
    "GUIDE_LOSSES",
    "FinetuneConfig",
    "build_parser",
    "finetune",
    "load_qa_pairs",
    "main",
    "split_by_paper",
    "train_config",
    "warmup_ratio",
]

if __name__ == "__main__":
    raise SystemExit(main())
