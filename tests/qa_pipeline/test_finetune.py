"""Fine-tuning through embeddingFT: pairs loading, split by paper, config mapping, losses,
the progress/metrics files, and a tiny end-to-end run (PDF text -> fallback Q&A -> model)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from embshared.config import save_config
from embshared.io import DataError, Examples
from qa_pipeline.cli.finetune import main
from qa_pipeline.finetuning import GUIDE_LOSSES, FinetuneConfig, finetune, train_config, warmup_ratio
from qa_pipeline.qa_pairs import load_qa_pairs, split_by_paper
from qa_pipeline.tracking import PROGRESS_KEYS, ProgressTracker


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_qa_pairs(tmp_path):
    rows = [
        {"question": "What is A?", "answer": "A is a letter.", "paper_id": "p1"},
        {"question": "What is A?", "answer": "A is a letter.", "paper_id": "p1"},  # duplicate
        {"question": "What is B?", "answer": "B follows A.", "file_name": "p2.txt"},  # guide format
    ]
    examples = load_qa_pairs(write_jsonl(tmp_path / "qa.jsonl", rows))
    assert examples.format == "pairs" and examples.dropped_duplicates == 1
    assert examples.rows == [
        {"query": "What is A?", "document": "A is a letter.", "paper_id": "p1"},
        {"query": "What is B?", "document": "B follows A.", "paper_id": "p2.txt"},
    ]
    bad = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"question": "Q?", "answer": "", "paper_id": "p"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'answer' missing or empty"):
        load_qa_pairs(bad)
    no_paper = write_jsonl(tmp_path / "np.jsonl", [{"question": "Q?", "answer": "A."}])
    with pytest.raises(DataError, match=r"np\.jsonl:1: field 'paper_id' missing"):
        load_qa_pairs(no_paper)


def pairs(n_papers: int, per_paper: int = 3) -> Examples:
    rows = [
        {"query": f"q{p}-{i}?", "document": f"passage {p}-{i}", "paper_id": f"paper{p}"}
        for p in range(n_papers)
        for i in range(per_paper)
    ]
    return Examples("pairs", rows, "mem")


def test_split_by_paper_keeps_papers_whole():
    train, val = split_by_paper(pairs(10), train_split=0.8, seed=1)
    train_papers = {r["paper_id"] for r in train.rows}
    val_papers = {r["paper_id"] for r in val.rows}
    assert len(val_papers) == 2 and len(train_papers) == 8 and not train_papers & val_papers
    assert len(train.rows) == 24 and len(val.rows) == 6
    again, _ = split_by_paper(pairs(10), train_split=0.8, seed=1)
    assert again.rows == train.rows
    other = {r["paper_id"] for r in split_by_paper(pairs(10), 0.8, seed=2)[1].rows}
    assert other != val_papers or len({frozenset(other)}) == 1
    # One paper (or train_split=1): everything trains, nothing is held out.
    assert [len(x.rows) for x in split_by_paper(pairs(1), 0.8, 0)] == [3, 0]
    assert [len(x.rows) for x in split_by_paper(pairs(5), 1.0, 0)] == [15, 0]
    # Two papers and a tiny validation share still hold one paper out.
    assert len({r["paper_id"] for r in split_by_paper(pairs(2), 0.99, 0)[1].rows}) == 1


def test_split_by_paper_never_evaluates_a_training_question():
    ex = pairs(4, per_paper=1)
    for row in ex.rows:
        row["query"] = "What is shared?"
    train, val = split_by_paper(ex, 0.5, 0)
    assert val.rows == [] and len(train.rows) == 2


def test_warmup_ratio():
    assert warmup_ratio(0.1, 1000, 16, 3) == 0.1
    assert warmup_ratio(50, 1600, 16, 1) == pytest.approx(0.5)  # capped
    assert warmup_ratio(30, 1600, 16, 3) == pytest.approx(30 / 300)


def test_train_config_maps_the_guide_keys(tmp_path):
    cfg = FinetuneConfig(
        base_model="some/model",
        num_epochs=2,
        train_batch_size=8,
        eval_batch_size=4,
        learning_rate=3e-5,
        warmup_steps=10,
        loss_function="OnlineContrastiveLoss",
        evaluation_steps=0,
        save_steps=25,
        max_seq_length=128,
        matryoshka_dims=[64],
        save_best_model=False,
        bf16=False,
    )
    tcfg = train_config(cfg, n_train=100, run_dir=tmp_path / "run", resume=False)
    assert (tcfg.model_name, tcfg.batch_size, tcfg.learning_rate, tcfg.num_epochs) == ("some/model", 8, 3e-5, 2)
    assert (tcfg.loss, tcfg.max_seq_length, tcfg.matryoshka_dims) == ("OnlineContrastiveLoss", 128, [64])
    assert tcfg.evaluation.eval_steps is None and tcfg.save_steps == 25 and tcfg.evaluation.batch_size == 4
    assert (
        tcfg.evaluation.save_best_model is False
        and train_config(FinetuneConfig(), 10, tmp_path, False).evaluation.save_best_model
    )
    # Contrastive losses train on 1 positive + num_negatives negative rows per pair.
    assert tcfg.warmup_ratio == pytest.approx(10 / (np.ceil(200 / 8) * 2))
    assert (tcfg.output_dir, tcfg.run_name) == (str(tmp_path), "run")
    tcfg.validate()


def test_unknown_loss_is_a_config_error(tmp_path):
    from embshared.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="unknown loss 'FancyLoss'"):
        load_config(FinetuneConfig, None, ["loss_function=FancyLoss"])


def test_each_guide_loss_maps_to_its_sentence_transformers_loss(minilm):
    from sentence_transformers.sentence_transformer import losses

    from embedding_ft.config import TrainConfig
    from embedding_ft.losses import build_loss

    for name in GUIDE_LOSSES:
        loss = build_loss(minilm, name)
        assert type(loss) is getattr(losses, name)
    wrapped = build_loss(minilm, "MultipleNegativesRankingLoss", TrainConfig(matryoshka_dims=[64, 128]).loss_options())
    assert isinstance(wrapped, losses.MatryoshkaLoss)
    assert list(wrapped.matryoshka_dims) == [384, 128, 64]


def test_progress_tracker_files(tmp_path):
    tracker = ProgressTracker(tmp_path, {"base_model": "m", "train_examples": 9, "eval_examples": 1})
    tracker.start()
    progress = json.loads((tmp_path / "training_progress.json").read_text())
    assert set(PROGRESS_KEYS) <= set(progress)
    assert progress["status"] == "running" and progress["training_completed"] is False
    tracker.log(1, 0.5, {"loss": 2.5, "learning_rate": 1e-5, "epoch": 0.5})
    tracker.log(2, 1.0, {"eval_test_ndcg@10": 0.4, "eval_runtime": 1.0})
    tracker.finish(final_model_path="x/final_model")
    lines = [json.loads(x) for x in (tmp_path / "training_metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and lines[0]["epoch"] == 0.5 and lines[0]["loss"] == 2.5 and "timestamp" in lines[0]
    assert lines[1]["eval_ndcg@10"] == 0.4
    done = json.loads((tmp_path / "training_progress.json").read_text())
    assert done["training_completed"] is True and done["status"] == "completed"
    assert done["completed_at"] >= done["started_at"] and done["duration_seconds"] >= 0
    assert done["global_step"] == 2 and done["final_model_path"] == "x/final_model"
    # Resuming from checkpoint-1 drops the lines logged after it.
    ProgressTracker(tmp_path, {}).start(resumed_from=str(tmp_path / "checkpoints" / "checkpoint-1"))
    assert [json.loads(x)["step"] for x in (tmp_path / "training_metrics.jsonl").read_text().splitlines()] == [1]


def cosine_to_answers(model, rows) -> float:
    q = model.encode([r["question"] for r in rows], normalize_embeddings=True)
    a = model.encode([r["answer"] for r in rows], normalize_embeddings=True)
    return float((q * a).sum(axis=1).mean())


def test_tiny_end_to_end_on_one_paper(tmp_path, local_papers, minilm_session, capsys):
    """One real paper -> fallback Q&A -> fine-tuned MiniLM with the guide's files."""
    from sentence_transformers import SentenceTransformer

    from qa_pipeline.generation import GenerateConfig, generate_pairs
    from qa_pipeline.generators import FallbackConfig, FallbackGenerator
    from qa_pipeline.passages import PassageConfig

    paper = local_papers["demarchis2016_jner_fes"]
    gen_cfg = GenerateConfig(passages=PassageConfig(max_words=60, max_passages_per_paper=10))
    generate_pairs([paper], FallbackGenerator(FallbackConfig(), n=2), gen_cfg, tmp_path / "qa")
    qa_file = tmp_path / "qa" / "questions_answers.jsonl"
    rows = [json.loads(x) for x in qa_file.read_text().splitlines()]
    assert len(rows) >= 10

    cfg = FinetuneConfig(
        input_jsonl=str(qa_file),
        output_dir=str(tmp_path / "model"),
        num_epochs=1,
        train_batch_size=4,
        learning_rate=1e-4,
        max_seq_length=64,
        tensorboard=False,
        cache_dir=str(tmp_path / "cache"),
    )
    cfg.mining.enabled = False
    config_file = tmp_path / "embedding_finetuner.json"
    save_config(cfg, config_file)
    try:  # the guide's command line: python -m qa_pipeline.finetune --config ...
        assert main(["--config", str(config_file)]) == 0
    finally:  # main() logs to a file through the root logger: leave the logger as it was
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
    out = tmp_path / "model"
    assert f"model: {out / 'final_model'}" in capsys.readouterr().out
    log = (out / "logs" / "embedding_finetuning.log").read_text()
    assert "training on" in log and "no validation split" in log  # one paper: nothing to validate on
    progress = json.loads((out / "training_progress.json").read_text())
    assert progress["training_completed"] is True and progress["train_examples"] == len(rows)
    assert progress["final_model_path"] == str(out / "final_model") and progress["eval_examples"] == 0
    metrics = [json.loads(x) for x in (out / "training_metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    steps = [m["step"] for m in metrics]
    assert losses and steps == sorted(steps) and progress["global_step"] == progress["max_steps"] > 0
    assert (out / "train.log").stat().st_size > 0 and (out / "embedding_finetuner.json").is_file()
    assert list((out / "checkpoints").glob("checkpoint-*"))

    tuned = SentenceTransformer(str(out / "final_model"), device="cpu")
    assert cosine_to_answers(tuned, rows) > cosine_to_answers(minilm_session, rows) + 0.02
    assert finetune(cfg) is None  # already finished: a rerun does nothing


class Interrupt(Exception):
    pass


def tiny_config(tmp_path, qa_file, **overrides) -> FinetuneConfig:
    """A few steps on short texts, without mining, writing into tmp_path/model."""
    cfg = FinetuneConfig(
        input_jsonl=str(qa_file),
        output_dir=str(tmp_path / "model"),
        num_epochs=1,
        train_batch_size=4,
        max_seq_length=32,
        tensorboard=False,
        cache_dir=str(tmp_path / "cache"),
        **overrides,
    )
    cfg.mining.enabled = False
    return cfg


@pytest.mark.slow
def test_interrupted_training_resumes_from_its_last_checkpoint(tmp_path):
    from transformers import TrainerCallback

    class StopAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Interrupt("simulated crash")

    rows = [
        {
            "question": f"What does study {i} find about topic {i % 5}?",
            "answer": f"Study {i} finds result {i} on topic {i % 5}.",
            "paper_id": f"p{i % 4}",
        }
        for i in range(24)
    ]
    qa_file = write_jsonl(tmp_path / "qa.jsonl", rows)
    cfg = tiny_config(tmp_path, qa_file, save_steps=2, train_split=0.75)
    with pytest.raises(Interrupt):
        finetune(cfg, callbacks=[StopAfterFirstSave()])
    out = tmp_path / "model"
    progress = json.loads((out / "training_progress.json").read_text())
    assert progress["status"] == "failed" and "simulated crash" in progress["error"]
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "final_model").exists()

    result = finetune(cfg)
    progress = json.loads((out / "training_progress.json").read_text())
    assert progress["resumed_from"].endswith("checkpoint-2") and progress["training_completed"] is True
    assert progress["global_step"] == progress["max_steps"] == 5  # 18 train pairs / 4 per batch
    assert result.model_dir.is_dir() and set(result.metrics) == {"bm25", "base", "finetuned"}
    steps = [json.loads(x)["step"] for x in (out / "training_metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 5


def test_training_again_in_place_measures_its_own_baselines(tmp_path, minilm_session):
    """overwrite=true over an earlier run: the base model and BM25 are scored on the new
    validation split, not read back from the earlier run's baseline.json."""
    rows = [
        {
            "question": f"Which result does study {i} report?",
            "answer": f"Study {i} reports result {i}.",
            "paper_id": f"p{i % 2}",
        }
        for i in range(8)
    ]
    out = tmp_path / "model"
    out.mkdir()
    stale = {"bm25": {"ndcg@10": 7.0}, "base": {"ndcg@10": 7.0}}  # what an earlier run on other data left
    (out / "baseline.json").write_text(json.dumps(stale))
    cfg = tiny_config(tmp_path, write_jsonl(tmp_path / "qa.jsonl", rows), train_split=0.5, overwrite=True)
    result = finetune(cfg)
    assert 0.0 <= result.metrics["base"]["ndcg@10"] <= 1.0 and 0.0 <= result.metrics["bm25"]["ndcg@10"] <= 1.0
    # the earlier run's file was replaced (its layout is embeddingFT's business, not asserted here)
    assert json.loads((out / "baseline.json").read_text()) != stale
