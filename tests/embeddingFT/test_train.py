"""The training run end to end on a tiny real slice, and its bad inputs."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from embedding_ft.config import TrainConfig
from embedding_ft.train import train
from embshared.config import ConfigError, load_config
from embshared.errors import UserError
from embshared.io import DataError
from embshared.models import ModelNotAvailable

DOCUMENTED_SYSTEMS = {
    "bm25",
    "base",
    "finetuned",
    "hybrid_base",
    "hybrid_finetuned",
    "hybrid_base_tuned",
    "hybrid_finetuned_tuned",
}
DOCUMENTED_METRICS = {"accuracy@1", "accuracy@5", "accuracy@10", "mrr@10", "ndcg@10", "map@100", "recall@100"}


def test_override_reaches_the_trainer(tiny_run):
    _result, recorder, cfg = tiny_run
    assert cfg.batch_size == 16
    assert recorder.args.per_device_train_batch_size == 16
    assert recorder.args.learning_rate == pytest.approx(1e-4)


def test_run_folder_is_complete_and_no_partial_folder_remains(tiny_run):
    result, _, _ = tiny_run
    assert result.run_dir.name == "tiny"
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"final_model", "config.yaml", "metrics.json", "metrics.md", "train.log", "training_curve.png"} <= names
    assert not list(result.run_dir.parent.glob(".*partial"))
    assert (result.model_dir / "config.yaml").is_file()
    assert (result.model_dir / "README.md").is_file()  # the model card


def test_metrics_file_has_documented_keys_in_unit_range(tiny_run):
    result, _, _ = tiny_run
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(summary["metrics"]) == DOCUMENTED_SYSTEMS
    for system, values in summary["metrics"].items():
        assert set(values) == DOCUMENTED_METRICS, system
        assert all(0.0 <= v <= 1.0 for v in values.values()), system
    assert summary["n_test"] == 10  # 25% of 40 queries
    assert summary["data"]["mined"] is True
    assert summary["train"]["steps"] >= 2
    table = (result.run_dir / "metrics.md").read_text()
    assert "| fine-tuned |" in table and "| BM25 |" in table
    assert "| hybrid (BM25 + fine-tuned), fusion chosen on dev |" in table and "**Rest** (5 held-out" in table
    per_query = summary["per_query"]
    assert per_query["metric"] == "ndcg@10" and set(per_query) == {"metric"} | DOCUMENTED_SYSTEMS
    for system in DOCUMENTED_SYSTEMS:  # the per-query values are the ones the mean was taken over
        values = list(per_query[system].values())
        assert len(values) == 10 and np.mean(values) == pytest.approx(summary["metrics"][system]["ndcg@10"])
    # dev and rest are the two halves of the held-out queries: their means are the per-query means of each half
    assert summary["n_dev"] == 5 and summary["n_rest"] == 5
    from embedding_ft.evaluation import dev_rest_split

    dev, rest = dev_rest_split(per_query["finetuned"], 0.5, 0)
    for system in DOCUMENTED_SYSTEMS:
        for part, ids in (("metrics_dev", dev), ("metrics_rest", rest)):
            expected = np.mean([per_query[system][q] for q in ids])
            assert summary[part][system]["ndcg@10"] == pytest.approx(expected), (system, part)


def test_fusion_is_chosen_on_dev_and_saved_beside_the_model(tiny_run):
    from embshared.fusion_choice import FusionSetting

    result, _, _ = tiny_run
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    saved = FusionSetting.load(result.model_dir)
    assert saved is not None and saved.chosen_on == "dev: 5 queries"
    assert saved.to_dict() == summary["fusion"]["finetuned"]
    # the chosen fusion is at least as good as the default on dev (the default is a candidate)
    assert saved.score >= saved.default_score
    assert summary["metrics_dev"]["hybrid_finetuned_tuned"]["ndcg@10"] == pytest.approx(saved.score)


def test_saved_model_loads_and_differs_from_base(tiny_run, minilm_session):
    from sentence_transformers import SentenceTransformer

    result, _, _ = tiny_run
    tuned = SentenceTransformer(str(result.model_dir), device="cpu")
    texts = ["Vitamin D deficiency is linked to bone loss.", "Aspirin reduces the risk of stroke."]
    a = tuned.encode(texts, normalize_embeddings=True)
    b = minilm_session.encode(texts, normalize_embeddings=True)
    assert a.shape == b.shape == (2, 384)
    assert not np.allclose(a, b, atol=1e-4)
    assert np.all(np.sum(a * b, axis=1) > 0.5)  # two steps nudge the model, they do not wreck it


def test_missing_data_file_fails_before_writing(tmp_path):
    cfg = load_config(TrainConfig, None, [f"dataset_name={tmp_path / 'nope.jsonl'}", f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file"):
        train(cfg)
    assert not (tmp_path / "out").exists()


def test_missing_model_path_fails_before_writing(tmp_path, tiny_beir):
    cfg = load_config(
        TrainConfig, None, [f"dataset_name={tiny_beir}", "model_name=./no/such/model", f"output_dir={tmp_path / 'out'}"]
    )
    with pytest.raises(ModelNotAvailable, match="model path ./no/such/model does not exist"):
        train(cfg)
    assert not (tmp_path / "out").exists()


def test_records_matching_no_format_fail_before_writing(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"title": "a", "body": "b"}\n')
    cfg = load_config(TrainConfig, None, [f"dataset_name={data}", f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(DataError, match=r"bad\.jsonl:1: record matches no known format"):
        train(cfg)
    assert not (tmp_path / "out").exists()


def test_similarity_data_with_a_ranking_loss_is_refused(tmp_path):
    data = tmp_path / "sts.jsonl"
    data.write_text(
        "".join(json.dumps({"doc1": f"a {i}", "doc2": f"b {i}", "similarity": i / 10}) + "\n" for i in range(10))
    )
    cfg = load_config(
        TrainConfig,
        None,
        [f"dataset_name={data}", f"output_dir={tmp_path / 'out'}", "loss=MultipleNegativesRankingLoss"],
    )
    with pytest.raises(UserError, match="cannot train on \\(doc1, doc2, similarity\\) data; use loss=auto, CoSENTLoss"):
        train(cfg)
    assert not (tmp_path / "out").exists()


def test_loss_auto_trains_similarity_data_with_cosent(tmp_path):
    data = tmp_path / "sts.jsonl"
    data.write_text(
        "".join(json.dumps({"doc1": f"a {i}", "doc2": f"b {i}", "similarity": i / 10}) + "\n" for i in range(10))
    )
    cfg = load_config(TrainConfig, None, [f"dataset_name={data}", f"output_dir={tmp_path / 'out'}", "run_name=sts"])
    result = train(cfg)
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert summary["loss"] == "CoSENTLoss" and summary["loss_reason"] == "auto: similarity data"
    assert set(summary["metrics"]) == {"base", "finetuned"}  # no BM25 or hybrid rows for similarity data
    assert "CoSENTLoss (auto: similarity data)" in (result.run_dir / "metrics.md").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_size=0", "batch_size must be positive, got 0"),
        ("batchsize=16", "unknown key 'batchsize'"),
        ("mining.num_negatives=abc", "key 'mining.num_negatives' expects int"),
        ("loss=FancyLoss", "unknown loss 'FancyLoss'"),
        ("evaluation.metrics=[f1@3]", "unknown metric 'f1@3'"),
    ],
)
def test_bad_overrides_fail_with_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


def test_cli_prints_one_line_errors(tmp_path, capsys):
    from embedding_ft.cli.train import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: [1,\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}:") and "invalid YAML" in err and err.count("\n") == 1
    assert main(["--config", str(bad.with_name("none.yaml"))]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_make_forwards_only_command_line_config_keys(repo):
    out = subprocess.run(
        ["make", "-n", "train-embed", "batch_size=16", "mining.num_negatives=5", "NPROC=1"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if "embedding_ft.cli.train" in row)
    assert "'batch_size=16'" in line and "'mining.num_negatives=5'" in line
    assert "NPROC" not in line and "EMBED_CONFIG" not in line
    assert "--config embeddingFT/configs/default.yaml" in line


def test_tensorboard_logs_loss_and_learning_rate(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _, _ = tiny_run
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate"} <= tags
    assert all(e.value > 0 for e in events.Scalars("train/loss"))


class InterruptAtStepTwo:
    """Interrupts training during step 2 (after checkpoint-1 was saved), as Ctrl-C would."""

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt


class StepRecorder(InterruptAtStepTwo):
    def __init__(self):
        self.seen = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(state.global_step)


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tiny_beir, tmp_path, repo):
    overrides = [
        f"dataset_name={tiny_beir}",
        f"output_dir={tmp_path / 'out'}",
        f"cache_dir={tmp_path / 'cache'}",
        "run_name=r",
        "batch_size=8",
        "max_seq_length=64",
        "save_steps=1",
    ]
    cfg = load_config(TrainConfig, repo / "embeddingFT/configs/default.yaml", overrides)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[InterruptAtStepTwo()])
    partial = tmp_path / "out" / ".r.partial"
    assert (partial / "checkpoints" / "checkpoint-1").is_dir()
    assert not (tmp_path / "out" / "r").exists()  # nothing that looks finished

    steps = StepRecorder()
    resumed = train(
        load_config(TrainConfig, repo / "embeddingFT/configs/default.yaml", [*overrides, "resume=true"]),
        callbacks=[steps],
    )
    assert steps.seen and min(steps.seen) == 2  # picked up after checkpoint-1 instead of starting over
    assert (resumed.model_dir / "config.yaml").is_file()
    assert not partial.exists()


def test_retrieval_evaluator_keeps_its_metric_after_the_trainer_prefixes_it():
    """sentence-transformers renames ``primary_metric`` to "test_ndcg@10" when the trainer evaluates;
    the per-query figures after training must still find "ndcg@10" (a 66-step run once failed there)."""
    from embedding_ft.data import EvalSet
    from embedding_ft.evaluation import RetrievalEvaluator

    eval_set = EvalSet(
        "retrieval",
        queries={"q1": "wind tunnel drag", "q2": "heat transfer plate"},
        corpus={"d1": "drag measured in a wind tunnel", "d2": "heat transfer over a flat plate", "d3": "a cat"},
        qrels={"q1": {"d1": 1}, "q2": {"d2": 1}},
    )
    evaluator = RetrievalEvaluator(eval_set, ["ndcg@10"], "ndcg@10")
    evaluator.prefix_name_to_metrics({"ndcg@10": 1.0}, evaluator.name)  # what __call__ does in training
    assert evaluator.primary_metric == "test_ndcg@10"
    bm25 = evaluator.bm25()
    assert bm25.means["ndcg@10"] == pytest.approx(1.0)
    assert bm25.per_query == {"q1": pytest.approx(1.0), "q2": pytest.approx(1.0)}


def test_two_queries_with_the_same_text_are_scored_as_two_queries():
    """Rows are addressed by query id: the same text with different relevant documents gives each its own figure."""
    from embedding_ft.data import EvalSet
    from embedding_ft.evaluation import RetrievalEvaluator

    eval_set = EvalSet(
        "retrieval",
        queries={"q1": "drag", "q2": "drag", "q3": "heat"},
        corpus={"d1": "drag in a wind tunnel", "d2": "drag of a plate", "d3": "heat transfer"},
        qrels={"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}},
    )
    evaluator = RetrievalEvaluator(eval_set, ["ndcg@10", "accuracy@1"], "accuracy@1", dev_ids=["q1", "q3"])
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.1, 0.9]])  # each query ranks its own doc first
    result = evaluator.score(scores)
    assert result.per_query == {"q1": 1.0, "q2": 1.0, "q3": 1.0}
    assert result.means["accuracy@1"] == 1.0 and result.dev["accuracy@1"] == 1.0 and result.rest["accuracy@1"] == 1.0
    scores[1] = [0.9, 0.1, 0.0]  # q2 now ranks q1's document first
    result = evaluator.score(scores)
    assert result.per_query["q2"] == 0.0 and result.per_query["q1"] == 1.0
    assert result.means["accuracy@1"] == pytest.approx(2 / 3) and result.rest["accuracy@1"] == 0.0
    assert np.mean(list(result.per_query.values())) == pytest.approx(result.means["accuracy@1"])


def test_dev_rest_split_is_seeded_disjoint_and_complete():
    from embedding_ft.evaluation import dev_rest_split

    ids = [f"q{i}" for i in range(21)]
    dev, rest = dev_rest_split(reversed(ids), 0.5, 0)
    assert (dev, rest) == dev_rest_split(ids, 0.5, 0)  # order of the input does not matter
    assert len(dev) == 10 and len(rest) == 11 and set(dev) | set(rest) == set(ids) and not set(dev) & set(rest)
    assert dev_rest_split(ids, 0.5, 1)[0] != dev
