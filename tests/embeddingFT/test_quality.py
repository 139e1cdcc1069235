"""Slow: training long enough on a fixed seed raises held-out NDCG@10; two processes train too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from embedding_ft.config import TrainConfig
from embedding_ft.train import train
from embshared.config import load_config


@pytest.mark.slow
def test_finetuning_beats_the_base_model_on_held_out_queries(sample_scifact, tmp_path, repo):
    cfg = load_config(
        TrainConfig,
        repo / "embeddingFT" / "configs" / "default.yaml",
        [f"output_dir={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}", "run_name=quality", "seed=42"],
    )
    result = train(cfg)
    base, tuned = result.metrics["base"]["ndcg@10"], result.metrics["finetuned"]["ndcg@10"]
    assert tuned > base, (base, tuned)
    assert tuned > result.metrics["bm25"]["ndcg@10"]


@pytest.mark.slow
def test_two_cpu_processes_train_a_few_steps(tiny_beir, tmp_path, repo):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        "-m",
        "embedding_ft.cli.train",
        "--config",
        str(repo / "embeddingFT" / "configs" / "default.yaml"),
        f"dataset_name={tiny_beir}",
        f"output_dir={tmp_path / 'out'}",
        f"cache_dir={tmp_path / 'cache'}",
        "run_name=ddp",
        "batch_size=8",
        "max_seq_length=64",
        "bf16=false",
    ]
    subprocess.run(cmd, cwd=repo, env=env, check=True, timeout=1800)
    summary = json.loads((tmp_path / "out" / "ddp" / "metrics.json").read_text())
    # 30 training queries -> ~30 rows; 2 processes x batch 8 = 16 rows per step -> 2 steps
    assert summary["train"]["steps"] == pytest.approx(summary["n_train_rows"] / 16, abs=1)
    assert summary["metrics"]["finetuned"]["ndcg@10"] > 0
