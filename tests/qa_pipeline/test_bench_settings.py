"""The qa bench's training settings reach embeddingFT's mining as set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_common():
    spec = importlib.util.spec_from_file_location("qa_bench_common", ROOT / "qa_pipeline" / "bench" / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bm25_negatives_reach_the_mining_of_the_training_run(tmp_path):
    from qa_pipeline.finetuning import train_config

    common = bench_common()
    qa_file = tmp_path / "pairs.jsonl"
    default = common.finetune_config(qa_file, tmp_path / "out", common.TrainSettings(), tmp_path / "cache")
    assert default.mining.bm25_negatives == 0 and default.mining.num_negatives == 1
    settings = common.TrainSettings(bm25_negatives=2, num_negatives=3)
    ft = common.finetune_config(qa_file, tmp_path / "out", settings, tmp_path / "cache")
    run = train_config(ft, 100, tmp_path / "runs" / "r", resume=False)
    assert (run.mining.bm25_negatives, run.mining.num_negatives, run.mining.enabled) == (2, 3, True)
