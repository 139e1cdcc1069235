"""Export to ONNX / OpenVINO, index -> search (dense and hybrid), and their bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedding_ft.backends import load_encoder
from embedding_ft.cli import export as export_cli
from embedding_ft.cli import search as search_cli
from embedding_ft.export import export_model
from embedding_ft.index import Searcher, build_index
from embshared.errors import UserError
from embshared.fusion_choice import FusionSetting
from embshared.io import Documents
from embshared.models import resolve_model
from embshared.search import IndexLoadError

TEXTS = [
    "Vitamin D supplementation reduces fracture risk in elderly women.",
    "hello",
    "Aspirin lowers the risk of a second heart attack, according to a large randomised trial " * 6,
    "Statins reduce LDL cholesterol.",
]
DOCS = Documents(
    ids=["d1", "d2", "d3", "d4", "d5"],
    texts=[
        "Vitamin D supplementation reduces fracture risk in elderly women.",
        "Aspirin lowers the risk of a second heart attack.",
        "Regular exercise improves insulin sensitivity in adults with type 2 diabetes.",
        "The zebrafish fin regenerates after amputation through blastema formation.",
        "Smoking increases the risk of lung cancer and of chronic obstructive pulmonary disease.",
    ],
    source="test",
)


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory):
    """A writable copy of the packaged MiniLM folder, exported to ONNX (fp32 and int8) once."""
    folder = tmp_path_factory.mktemp("export") / "minilm"
    shutil.copytree(resolve_model("sentence-transformers/all-MiniLM-L6-v2"), folder)
    export_model(folder, "onnx", "int8")
    return folder


def test_onnx_exports_match_pytorch(model_copy, minilm_session):
    reference = minilm_session.encode(TEXTS, normalize_embeddings=True)  # (4, 384)
    assert (model_copy / "onnx" / "model.onnx").is_file() and (model_copy / "onnx" / "model_O2.onnx").is_file()
    fp32 = load_encoder(str(model_copy), "onnx", "onnx/model_O2.onnx").encode(
        TEXTS, batch_size=3, normalize_embeddings=True
    )
    assert fp32.shape == (4, 384)
    assert np.allclose(fp32, reference, atol=1e-4)  # same maths, other runtime
    int8 = load_encoder(str(model_copy), "onnx").encode(TEXTS, batch_size=3, normalize_embeddings=True)
    cosines = np.sum(int8 * reference, axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.985
    assert not np.allclose(int8, reference, atol=1e-4)  # it really is the quantised file


def test_openvino_fp32_matches_pytorch(model_copy, minilm_session):
    export_model(model_copy, "openvino", "none")
    enc = load_encoder(str(model_copy), "openvino", "openvino/openvino_model.xml")
    out = enc.encode(TEXTS, batch_size=2, normalize_embeddings=True)
    assert np.allclose(out, minilm_session.encode(TEXTS, normalize_embeddings=True), atol=1e-4)


def test_export_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "config.json").write_text('{"hello": 1}')
    assert export_cli.main(["--model", str(tmp_path / "notamodel")]) != 0
    err = capsys.readouterr().err
    assert "not a sentence-transformers model folder" in err and "Traceback" not in err
    assert not (tmp_path / "notamodel" / "onnx").exists()


def test_export_of_the_installed_package_needs_an_output(capsys):
    assert export_cli.main(["--model", "sentence-transformers/all-MiniLM-L6-v2"]) != 0
    assert "pass --output FOLDER" in capsys.readouterr().err


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm_session):
    folder = tmp_path_factory.mktemp("idx") / "index"
    build_index(folder, DOCS, "sentence-transformers/all-MiniLM-L6-v2", encoder=minilm_session)
    return folder


def test_search_finds_the_exact_sentence_first(index_dir, minilm_session):
    searcher = Searcher(index_dir, encoder=minilm_session)
    for doc_id, text in zip(DOCS.ids, DOCS.texts):
        hits = searcher.search(text, k=3)
        assert hits[0].id == doc_id and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
    hybrid = searcher.search("zebrafish fin amputation", k=2, hybrid=True)
    assert hybrid[0].id == "d4"
    meta = json.loads((index_dir / "meta.json").read_text())
    assert meta["n_docs"] == 5 and meta["dim"] == 384 and meta["backend"] == "torch"


def test_hybrid_is_the_convex_fusion_of_both_rankers(index_dir, minilm_session):
    from embshared.fusion import zscore_rows

    searcher = Searcher(index_dir, encoder=minilm_session)
    query = "risk of lung cancer"
    dense = searcher.encode([query]) @ searcher.embeddings.T
    bm25 = searcher.bm25.score_matrix([query])
    expected = 0.3 * zscore_rows(dense)[0] + 0.7 * zscore_rows(bm25)[0]
    hits = searcher.search(query, k=5, hybrid=True, weight=0.3)
    assert [h.id for h in hits] == [DOCS.ids[i] for i in np.argsort(-expected)]
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)


def test_an_index_built_with_a_fusion_setting_searches_with_it(tmp_path, index_dir, minilm_session, capsys):
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    setting = FusionSetting(dense_weight=1.0, bm25_stem=False, chosen_on="dev: 3 queries", metric="ndcg@10")
    folder, _ = build_index(tmp_path / "fused", DOCS, minilm, encoder=minilm_session, fusion=setting)
    assert FusionSetting.load(folder) == setting
    assert json.loads((folder / "meta.json").read_text())["fusion"] == setting.to_dict()
    searcher = Searcher(folder, encoder=minilm_session)
    assert searcher.fusion == setting and searcher.bm25.stem is False
    assert searcher.bm25.score_matrix(["regenerate"]).max() == 0 < searcher.bm25.score_matrix(["regenerates"]).max()
    for query in ["risk of lung cancer", "fish regeneration", "heart attack prevention"]:
        dense = [h.id for h in searcher.search(query, k=5)]
        assert [h.id for h in searcher.search(query, k=5, hybrid=True)] == dense  # dense weight 1.0
    assert searcher.fusion_for(0.3) == FusionSetting(dense_weight=0.3, bm25_stem=False)  # --weight: convex
    assert Searcher(index_dir, encoder=minilm_session).fusion == FusionSetting.default()  # no fusion.json
    assert build_index(folder, DOCS, minilm, encoder=minilm_session, fusion=setting)[1]  # same setting: reused
    vectors = np.load(folder / "embeddings.npy")
    other = FusionSetting(method="rrf", dense_weight=0.5)
    assert not build_index(folder, DOCS, minilm, encoder=minilm_session, fusion=other)[1]  # another: rebuilt
    assert FusionSetting.load(folder) == other and np.array_equal(np.load(folder / "embeddings.npy"), vectors)
    capsys.readouterr()
    assert search_cli.main(["--index", str(folder), "--query", "lung cancer", "--hybrid", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("fusion: rrf k=60, dense weight 0.5") and "fusion.json" in out[0] and len(out) == 3


def test_an_index_takes_the_fusion_json_of_its_model_folder(tmp_path, minilm_session):
    model = tmp_path / "model"  # a local "model folder" (the encoder is given): only its fusion.json matters
    setting = FusionSetting(dense_weight=0.7, bm25_k1=0.9, bm25_b=0.4)
    setting.save(model)
    folder, _ = build_index(tmp_path / "index", DOCS, str(model), encoder=minilm_session)
    assert FusionSetting.load(folder) == setting
    searcher = Searcher(folder, encoder=minilm_session)
    assert (searcher.bm25.k1, searcher.bm25.b, searcher.bm25.stem) == (0.9, 0.4, True)


def test_a_second_build_reuses_the_index(index_dir, minilm_session):
    before = (index_dir / "embeddings.npy").stat().st_mtime_ns
    _, reused = build_index(index_dir, DOCS, "sentence-transformers/all-MiniLM-L6-v2", encoder=minilm_session)
    assert reused and (index_dir / "embeddings.npy").stat().st_mtime_ns == before
    changed = Documents(DOCS.ids[:4], DOCS.texts[:4], "test")
    folder = index_dir.parent / "other"
    shutil.copytree(index_dir, folder)
    _, reused = build_index(folder, changed, "sentence-transformers/all-MiniLM-L6-v2", encoder=minilm_session)
    assert not reused and json.loads((folder / "meta.json").read_text())["n_docs"] == 4


def test_index_refuses_another_model_naming_both(index_dir, model_copy):
    with pytest.raises(
        UserError,
        match=r"built with sentence-transformers/all-MiniLM-L6-v2 \(torch\); it cannot be searched with .*minilm",
    ):
        Searcher(index_dir, model=str(model_copy))


def test_search_bad_inputs_are_one_line(tmp_path, index_dir, capsys):
    assert search_cli.main(["--index", str(tmp_path / "missing"), "--query", "x"]) != 0
    assert "no such index folder" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "something.txt").write_text("x")
    assert search_cli.main(["--index", str(tmp_path / "foreign"), "--query", "x"]) != 0
    assert "not an index built by embedding_ft.index" in capsys.readouterr().err
    assert search_cli.main(["--index", str(index_dir), "--query", "   "]) != 0
    assert "--query is empty" in capsys.readouterr().err
    with pytest.raises(IndexLoadError, match="not an index"):
        build_index(tmp_path / "foreign", DOCS, "sentence-transformers/all-MiniLM-L6-v2")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _object_array(path):
    np.save(path, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)


def _wrong_shape(path):
    np.save(path, np.zeros((3, 7), dtype=np.float32))


def _remove(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _bad_json_line(path):
    path.write_text(path.read_text() + "{not json\n")


@pytest.mark.parametrize(
    ("part", "damage", "says"),
    [
        ("embeddings.npy", _truncate, "damaged"),
        ("embeddings.npy", _object_array, "damaged"),
        ("embeddings.npy", _wrong_shape, "damaged (a float32 array of shape (3, 7)"),
        ("embeddings.npy", _remove, "missing"),
        ("faiss", _remove, "missing"),
        ("bm25", _remove, "missing"),
        ("docs.jsonl", _bad_json_line, "damaged"),
    ],
)
def test_a_damaged_index_is_one_line_naming_the_part_and_saying_rebuild(
    tmp_path, index_dir, capsys, part, damage, says
):
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    damage(folder / part)
    with pytest.raises(IndexLoadError) as caught:
        Searcher(folder, encoder=object())  # the parts are checked before any model is used
    message = str(caught.value)
    assert message.startswith(f"{folder / part}:") and says in message and "rebuild" in message
    assert "\n" not in message
    assert search_cli.main(["--index", str(folder), "--query", "lung cancer"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder / part) in err and "Traceback" not in err
    assert folder.is_dir()  # nothing deleted


def test_faiss_and_documents_that_disagree_are_an_incomplete_index(tmp_path, index_dir):
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    lines = (folder / "docs.jsonl").read_text().splitlines(keepends=True)
    (folder / "docs.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(IndexLoadError, match=r"incomplete index \(documents: meta.json 5, docs.jsonl 4"):
        Searcher(folder, encoder=object())
