"""Fixtures for embeddingFT: a tiny real BEIR slice and one tiny training run shared by tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from embshared.io import load_beir


def write_beir(folder: Path, corpus: dict, queries: dict, qrels: dict) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, doc in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": doc["title"], "text": doc["text"]}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / "train.tsv", "w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, rels in qrels.items():
            for doc_id, score in rels.items():
                handle.write(f"{qid}\t{doc_id}\t{score}\n")
    return folder


@pytest.fixture(scope="session")
def tiny_beir(sample_scifact, tmp_path_factory) -> Path:
    """40 real SciFact claims, their abstracts (cut to 600 characters) and 20 distractors."""
    data = load_beir(sample_scifact)
    qids = sorted(data.queries)[:40]
    positives = {d for q in qids for d in data.qrels[q]}
    others = sorted(d for d in data.corpus if d not in positives)
    keep = sorted(positives) + random.Random(0).sample(others, 20)
    corpus = {d: {"title": data.corpus[d]["title"], "text": data.corpus[d]["text"][:600]} for d in keep}
    return write_beir(
        tmp_path_factory.mktemp("tiny") / "scifact-tiny",
        corpus,
        {q: data.queries[q] for q in qids},
        {q: data.qrels[q] for q in qids},
    )


class RecordArgs:
    """A TrainerCallback that keeps the TrainingArguments the trainer actually used."""

    def __init__(self):
        self.args = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args

    def __getattr__(self, name):  # every other TrainerCallback event is a no-op
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


@pytest.fixture(scope="session")
def tiny_run(tiny_beir, tmp_path_factory, repo):
    """One tiny training run (2 steps) with batch_size=16 given as a command-line override."""
    from embedding_ft.config import TrainConfig
    from embedding_ft.train import train
    from embshared.config import load_config

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        TrainConfig,
        repo / "embeddingFT" / "configs" / "default.yaml",
        [
            f"dataset_name={tiny_beir}",
            f"output_dir={out / 'outputs'}",
            f"cache_dir={out / 'cache'}",
            "run_name=tiny",
            "batch_size=16",
            "test_size=0.25",
            "max_seq_length=96",
            "learning_rate=1e-4",
            "mining.range_max=10",
            "tensorboard=true",
        ],
    )
    recorder = RecordArgs()
    result = train(cfg, callbacks=[recorder])
    return result, recorder, cfg
