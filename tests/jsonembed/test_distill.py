"""Distillation from a teacher: the student learns the teacher's vectors, reads typos, caches the
teacher's work, and its model file holds the character CNN alone.

The teacher is a tiny random sentence-transformers model (``tests/conftest.py:save_tiny_base``):
random, but its vectors of a text are fixed, which is all these mechanics need.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from embedding_model.augment import Augmenter
from embedding_model.cli import train as train_cli
from embedding_model.config import build_config
from embedding_model.losses import DistillationHead, distill_loss, ranking_distill_loss
from embedding_model.model import build_encoder
from embedding_model.model_file import load_model, save_model
from embedding_model.teacher import Teacher, TeacherTargetCache, teacher_text
from embedding_model.training import train
from embedding_model.typos import case_noise, misspell, space_noise
from embshared.config import ConfigError

#: 48 records in batches of 16: 3 steps per epoch, 300 steps in all; the tiny teacher's vectors are 32-dim
RECORDS = 48
STEPS_300 = ["epochs=100", "val_fraction=0", "log_every=100", "projection_dim=32"]
MIN_COSINE = 0.5


@pytest.fixture(scope="module")
def teacher_path(tiny_base_factory, tmp_path_factory) -> str:
    return tiny_base_factory(tmp_path_factory.mktemp("teacher"), seed=0)


@pytest.fixture(scope="module")
def segments(sample_records):
    return sample_records.segments[:RECORDS]


@pytest.fixture(scope="module")
def distilled(teacher_path, segments, tiny_cfg):
    """(student, its training result, the teacher's vectors of every record) after 300 steps with the teacher."""
    cfg = tiny_cfg(*STEPS_300, f"teacher={teacher_path}")
    teacher = Teacher(teacher_path, "cpu")
    student, result = train(cfg, segments, show_progress=False, teacher=teacher)
    targets = teacher.encode([teacher_text(s, cfg.max_chars) for s in segments])
    return student, result, targets


def mean_cosine(embedder, segments, targets: np.ndarray) -> float:
    """Mean cosine between the student's vector of each record (as search embeds it) and the teacher's."""
    return float(np.mean(np.sum(embedder.embed_segments(segments) * targets, axis=1)))


def test_distillation_brings_the_student_to_the_teacher(distilled, segments, tiny_cfg):
    student, result, targets = distilled
    assert result.steps == 300 and result.teacher["projection"] is False  # same size: compared directly
    alone, alone_result = train(tiny_cfg(*STEPS_300, "teacher=null"), segments, show_progress=False)
    assert alone_result.steps == 300 and not alone_result.teacher
    with_teacher, without = mean_cosine(student, segments, targets), mean_cosine(alone, segments, targets)
    assert with_teacher > MIN_COSINE > without, (with_teacher, without)
    assert [h["step"] for h in result.history] == [100, 200, 300] and "distill_loss" in result.history[-1]


def test_a_misspelled_view_lands_nearer_its_record_than_an_unrelated_one(distilled, segments):
    student, _, _ = distilled
    augmenter = Augmenter.from_config(student.cfg)
    rng = random.Random(0)
    records = student.embed_segments(segments)
    wins = 0
    for i, record in enumerate(segments):
        clean = augmenter.clean_query_view(record, rng, kind="span")
        query = student.embed_queries([misspell(clean, rng, word_prob=0.5)[0]])[0]
        unrelated = (i + len(segments) // 2) % len(segments)
        wins += float(query @ records[i]) > float(query @ records[unrelated])
    assert wins >= 0.85 * len(segments), wins


def test_teacher_vectors_are_cached_reused_and_rebuilt(
    teacher_path, tiny_base_factory, tmp_path, segments, tiny_cfg, monkeypatch
):
    calls = []
    encode = Teacher.encode
    monkeypatch.setattr(
        Teacher, "encode", lambda self, texts, **k: calls.append(len(texts)) or encode(self, texts, **k)
    )
    cache = TeacherTargetCache(tmp_path / "cache")
    cfg = tiny_cfg("epochs=1", f"teacher={teacher_path}")

    first, result = train(cfg, segments, show_progress=False, teacher_cache=cache)
    assert len(calls) == 1 and result.teacher["from_cache"] is False
    assert len(list(cache.folder.iterdir())) == 1
    teacher = Teacher(teacher_path, "cpu")
    second, result = train(cfg, segments, show_progress=False, teacher_cache=cache, teacher=teacher)
    assert len(calls) == 1 and result.teacher["from_cache"] is True  # the teacher was not called...
    assert teacher._model is None  # ...nor even loaded
    for name, tensor in first.encoder.state_dict().items():  # and the run is the same run
        assert torch.equal(tensor, second.encoder.state_dict()[name]), name

    other_teacher = tiny_base_factory(tmp_path / "other", seed=1)
    train(tiny_cfg("epochs=1", f"teacher={other_teacher}"), segments, show_progress=False, teacher_cache=cache)
    assert len(calls) == 2
    changed = [list(s) for s in segments]
    changed[3] = [(key, value + " amended") for key, value in changed[3]]
    train(cfg, changed, show_progress=False, teacher_cache=cache)
    assert len(calls) == 3
    train(tiny_cfg("epochs=1", f"teacher={teacher_path}", "seed=7"), segments, show_progress=False, teacher_cache=cache)
    assert len(calls) == 4  # another view seed draws other views
    entries = sorted(p.name for p in cache.folder.iterdir())
    assert len(entries) == 4 and all(p.endswith(".npy") for p in entries)
    assert all(np.load(cache.folder / p, allow_pickle=False).dtype == np.float32 for p in entries)


def test_saved_model_holds_only_the_students_tensors(teacher_path, sample_jsonl, tmp_path, monkeypatch):
    """The CLI's file: the CNN's tensors alone (not the teacher's, not the loss's projection), in both formats."""
    data = tmp_path / "data" / "records.jsonl"
    data.parent.mkdir()
    data.write_text(sample_jsonl.read_text(encoding="utf-8"), encoding="utf-8")
    calls = []
    encode = Teacher.encode
    monkeypatch.setattr(
        Teacher, "encode", lambda self, texts, **k: calls.append(len(texts)) or encode(self, texts, **k)
    )
    args = ["--epochs", "1", "--batch-size", "32", "--quiet", "max_chars=128", "char_dim=8", "conv_channels=16"]
    args += ["kernel_sizes=[3]", "projection_dim=16", f"teacher={teacher_path}", "teacher_views=2"]
    assert train_cli.main([str(data), "--output", str(tmp_path / "m.pt"), *args]) == 0
    cached = list((data.parent / ".jsonembed_cache" / "teacher").iterdir())
    assert len(calls) == 1 and len(cached) == 1  # beside the data
    assert train_cli.main([str(data), "--output", str(tmp_path / "m.safetensors"), *args]) == 0
    assert len(calls) == 1  # the second run read the cache

    encoder, vocab, cfg, info = load_model(tmp_path / "m.pt")
    expected = {name: tuple(t.shape) for name, t in build_encoder(cfg, len(vocab)).state_dict().items()}
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert {name: tuple(t.shape) for name, t in saved.items()} == expected  # the 16 -> 32 loss projection is not there
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as handle:
        assert {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()} == expected  # noqa: SIM118
    assert sum(t.numel() for t in saved.values()) == sum(p.numel() for p in encoder.parameters())
    assert cfg.teacher == teacher_path  # the config names the teacher it learnt from...
    assert info["teacher"]["projection"] is True and info["teacher"]["dim"] == 32  # ...and the info says how
    assert (tmp_path / "m.pt").stat().st_size < 200_000  # the tiny teacher alone is ~4 MB
    history = json.loads((tmp_path / "m.train.json").read_text())
    assert "teacher_cosine" in history["validation"][0] and "mean_distill_loss" in history["validation"][0]


def test_a_missing_teacher_is_one_line(sample_jsonl, tmp_path, capsys):
    code = train_cli.main([str(sample_jsonl), "--output", str(tmp_path / "m.pt"), f"teacher={tmp_path}/nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("error: key 'teacher': model path") and "teacher=null" in err
    assert not (tmp_path / "m.pt").exists()


def test_without_a_teacher_nothing_of_it_runs(segments, tiny_cfg, monkeypatch):
    monkeypatch.setattr(Teacher, "encode", lambda *a, **k: pytest.fail("the teacher was called"))
    _, result = train(tiny_cfg("epochs=1", "teacher=null"), segments, show_progress=False)
    assert not result.teacher and "distill_loss" not in result.history[-1]


def test_a_model_file_from_before_distillation_reads_as_teacher_null(tmp_path, segments, tiny_cfg):
    cfg = tiny_cfg("epochs=1", "teacher=null")
    student, _ = train(cfg, segments, show_progress=False)
    path = save_model(tmp_path / "old.pt", student.encoder, student.vocab, cfg)
    data = torch.load(path, weights_only=True)
    old_config = json.loads(data["config"])
    new_keys = ("teacher", "teacher_views", "distill_loss", "distill_weight", "nt_xent_weight")
    for key in (*new_keys, "noise_case_prob", "noise_space_prob"):
        del old_config[key]
    data["config"] = json.dumps(old_config)
    torch.save(data, path)
    assert load_model(path)[2].teacher is None


def test_distill_loss_by_hand_and_the_head():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert distill_loss(student, teacher, "cosine").item() == pytest.approx((1.0 + 0.0) / 2)
    assert distill_loss(student, teacher, "mse").item() == pytest.approx((2.0 + 1.0) / 2)
    assert DistillationHead(8, 8).projection is None and list(DistillationHead(8, 8).parameters()) == []
    assert DistillationHead(8, 12)(torch.zeros(3, 8)).shape == (3, 12)


def test_ranking_distill_loss_by_hand():
    teacher_views = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher_records = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # the teacher's scores at temperature 1: view 0 -> (0.6, 0.0), view 1 -> (0.8, 1.0)
    same = ranking_distill_loss(3 * teacher_views, teacher_records, teacher_views, teacher_records, 1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6)  # the student's length does not count, only its cosines
    flat = ranking_distill_loss(torch.ones(2, 2), torch.ones(2, 2), teacher_views, teacher_records, 1.0)
    p = torch.softmax(torch.tensor([[0.6, 0.0], [0.8, 1.0]]), dim=-1)  # the student: uniform
    expected = float((p * (p.log() - torch.log(torch.tensor(0.5)))).sum(dim=1).mean())
    assert flat.item() == pytest.approx(expected, rel=1e-5)


def _similarity_agreement(student_vectors: np.ndarray, teacher_vectors: np.ndarray) -> float:
    """Pearson correlation of the off-diagonal record-to-record similarities of the two models."""
    upper = np.triu_indices(len(student_vectors), k=1)
    return float(
        np.corrcoef((student_vectors @ student_vectors.T)[upper], (teacher_vectors @ teacher_vectors.T)[upper])[0, 1]
    )


def test_ranking_distillation_teaches_the_teachers_similarities(teacher_path, segments, tiny_cfg):
    """300 steps of the ranking loss: the student's record-to-record similarities follow the teacher's, unlike
    self-supervision alone (the tiny teacher is random, so nothing but the teacher could teach them)."""
    cfg = tiny_cfg(*STEPS_300, f"teacher={teacher_path}", "distill_loss=ranking", "distill_weight=5")
    teacher = Teacher(teacher_path, "cpu")
    targets = teacher.encode([teacher_text(s, cfg.max_chars) for s in segments])
    ranked, result = train(cfg, segments, show_progress=False, teacher=teacher)
    assert result.steps == 300 and "distill_loss" in result.history[-1]
    alone, _ = train(tiny_cfg(*STEPS_300, "teacher=null"), segments, show_progress=False)
    with_teacher = _similarity_agreement(ranked.embed_segments(segments), targets)
    without = _similarity_agreement(alone.embed_segments(segments), targets)
    assert with_teacher > 0.15 > without, (with_teacher, without)  # measured 0.33 and 0.02 (AMD EPYC)


def test_student_noise_case_and_spaces():
    assert space_noise("vitamin deficiency", 0.0, random.Random(0)) == "vitamin deficiency"
    merged = space_noise("vitamin d and bone", 1.0, random.Random(1))  # every space dropped, then the word split
    assert merged.replace(" ", "") == "vitamindandbone" and merged.count(" ") == 1
    noisy = [space_noise("vitamin deficiency fractures", 0.3, random.Random(s)) for s in range(50)]
    assert all(n.replace(" ", "") == "vitamindeficiencyfractures" for n in noisy) and len(set(noisy)) > 5
    cased = [case_noise("bone fracture risk", 1.0, random.Random(s)) for s in range(20)]
    assert all(c.lower() == "bone fracture risk" for c in cased) and "BONE" in " ".join(cased)
    augmenter = Augmenter.from_config(build_config(None, []))
    record = [("title", "Vitamin D and bone fractures"), ("year", "2019")]
    views = augmenter.clean_query_views(record, 8, random.Random(0))
    assert views and len(views) == len(set(views))  # distinct...
    assert all(set(v.split()) <= {"Vitamin", "D", "and", "bone", "fractures", "2019"} for v in views)  # ...and clean


def test_config_keys_of_distillation():
    assert build_config(None, []).teacher is None  # off by default: it did not beat self-supervision on SciFact dev
    assert build_config(None, ["teacher=sentence-transformers/all-MiniLM-L6-v2"]).teacher.endswith("MiniLM-L6-v2")
    assert build_config(None, ["teacher=null"]).teacher is None
    with pytest.raises(ConfigError, match="'teacher' must name a model or be null"):
        build_config(None, ["teacher="])
    with pytest.raises(ConfigError, match="'query_view_prob' must be positive with a teacher"):
        build_config(None, ["query_view_prob=0", "teacher=sentence-transformers/all-MiniLM-L6-v2"])
    assert build_config(None, ["query_view_prob=0", "teacher=null"]).query_view_prob == 0
    with pytest.raises(ConfigError, match="both 0"):
        build_config(None, ["distill_weight=0", "nt_xent_weight=0", "teacher=sentence-transformers/all-MiniLM-L6-v2"])
    with pytest.raises(ConfigError, match="'distill_loss' expects"):
        build_config(None, ["distill_loss=l1"])


def test_teacher_neighbour_batches_group_close_records():
    """nearest_records is the brute-force top-k; neighbour_groups places every record once, in groups of
    a record and its nearest: on two well-separated clusters every group stays inside one cluster."""
    from embedding_model.training import nearest_records, neighbour_groups

    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2] * 10
    vectors = np.concatenate([centres[0] + rng.normal(size=(30, 8)), centres[1] + rng.normal(size=(30, 8))])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    near = nearest_records(vectors, 5, chunk=7)  # chunks that do not divide n
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    np.testing.assert_array_equal(near, np.argsort(-scores, axis=1, kind="stable")[:, :5])
    groups = neighbour_groups(near, 4, np.random.default_rng(1))
    assert sorted(i for g in groups for i in g) == list(range(60))
    assert all(set(g[1:]) <= set(near[g[0]]) for g in groups)  # each member among its first one's nearest
    assert all(len({i >= 30 for i in g}) == 1 for g in groups)  # never across the two clusters
    assert sum(len(g) == 4 for g in groups) >= 8
    with pytest.raises(ConfigError, match="'teacher_neighbours' must be 0, or positive with a teacher"):
        build_config(None, ["teacher_neighbours=3", "teacher=null"])
    assert (
        build_config(
            None, ["teacher_neighbours=3", "teacher=sentence-transformers/all-MiniLM-L6-v2"]
        ).teacher_neighbours
        == 3
    )
