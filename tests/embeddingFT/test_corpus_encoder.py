"""The corpus encoder: length-sorted token-budget batches, resumable shards, the embedding cache, adapters, backend auto."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedding_ft import backends
from embedding_ft import corpus_encoder as ce
from embedding_ft.corpus_encoder import CorpusEncoder, EmbeddingCache
from embedding_ft.export import FILES


def _texts(n: int = 22) -> list[str]:
    """Texts of very different lengths, in no length order."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    sizes = rng.permutation([1, 2, 3, 5, 8, 13, 21, 34, 55, 60, 4, 40, 7, 30, 2, 50, 11, 25, 9, 45, 6, 18])[:n]
    return [" ".join(rng.choice(words, size=int(k))) + f" doc{i}" for i, k in enumerate(sizes)]


class Counting:
    """A SentenceTransformer that counts its encode calls (and can be killed after ``fail_after`` calls)."""

    def __init__(self, model, fail_after: int | None = None):
        self.model = model
        self.fail_after = fail_after
        self.calls = 0
        self.batches: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def encode(self, texts, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("killed")
        self.calls += 1
        self.batches.append(list(texts))
        return self.model.encode(texts, **kwargs)


@pytest.fixture
def tiny(tmp_path, tiny_base_factory):
    from embshared.models import load_sentence_transformer

    folder = tiny_base_factory(tmp_path / "tiny", seed=0)
    return folder, load_sentence_transformer(folder, device="cpu")


def test_vectors_match_the_model_in_the_original_order(tmp_path, tiny):
    folder, model = tiny
    texts = _texts()
    counting = Counting(model)
    encoder = CorpusEncoder(folder, cache=EmbeddingCache(tmp_path / "cache"), token_budget=120, encoder=counting)
    vectors = encoder.encode(texts, show_progress=False)
    expected = model.encode(texts, normalize_embeddings=True)
    assert isinstance(vectors, np.memmap) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    sent = [t for batch in counting.batches for t in batch]
    assert sorted(sent) == sorted(texts) and sent != texts  # length sorting reordered them
    assert len(sent[0]) > len(sent[-1])  # longest first
    assert len(set(encoder.batches)) > 1  # the token budget makes short texts' batches larger
    assert encoder.batches[0] < encoder.batches[-1]


def test_an_exported_encoder_gets_batches_cut_at_lengths_padded_to_a_multiple(tmp_path, tiny, monkeypatch):
    """Batches of budget // (longest length rounded up to 8) texts, each padded to that length, then the heap trimmed."""
    from embedding_ft.export import export_model

    folder, model = tiny
    export_model(folder, "onnx", "none")
    exported = backends.load_encoder(folder, "onnx", FILES[("onnx", "none")])
    shapes, trims = [], []
    run = exported._run
    monkeypatch.setattr(exported, "_run", lambda feeds: shapes.append(feeds["input_ids"].shape) or run(feeds))
    monkeypatch.setattr(ce, "release_free_memory", lambda: trims.append(1) or True)
    texts = _texts()
    encoder = CorpusEncoder(folder, "onnx", FILES[("onnx", "none")], encoder=exported, token_budget=96, shard_size=8)
    vectors = encoder.encode(texts, show_progress=False)
    np.testing.assert_allclose(vectors, model.encode(texts, normalize_embeddings=True), atol=1e-5)
    assert all(length % ce.PAD_MULTIPLE == 0 for _, length in shapes)
    full = [(rows, length) for rows, length in shapes if rows == 96 // length]
    assert len(full) >= len(shapes) - 3 and len(set(shapes)) < len(shapes)  # only a shard's last batch is short
    assert len(trims) == 3  # one per shard


def test_a_killed_pass_resumes_from_its_shards(tmp_path, tiny):
    folder, model = tiny
    texts = _texts()  # 22 texts: 6 shards of 4, one batch each (a large budget)
    cache = EmbeddingCache(tmp_path / "cache")
    killed = Counting(model, fail_after=2)
    with pytest.raises(RuntimeError, match="killed"):
        CorpusEncoder(folder, cache=cache, shard_size=4, token_budget=10**6, encoder=killed).encode(texts, False)
    (work,) = list(cache.root.iterdir())
    assert sorted(p.name for p in (work / "shards-4").glob("*.npy")) == ["shard_000000.npy", "shard_000001.npy"]
    assert not (work / "meta.json").exists()
    rerun = Counting(model)
    encoder = CorpusEncoder(folder, cache=cache, shard_size=4, token_budget=10**6, encoder=rerun)
    vectors = encoder.encode(texts, show_progress=False)
    assert rerun.calls == 4 and encoder.encoded_shards == [2, 3, 4, 5]  # only the missing shards
    whole = CorpusEncoder(folder, shard_size=4, token_budget=10**6, encoder=model).encode(texts, False)  # no cache
    np.testing.assert_allclose(vectors, whole, atol=1e-6)
    np.testing.assert_allclose(vectors, model.encode(texts, normalize_embeddings=True), atol=1e-5)
    assert not (work / "shards-4").exists() and (work / "meta.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["meta.json", "vectors.npy"]


def test_the_cache_skips_a_second_pass_and_misses_on_any_change(tmp_path, tiny, tiny_base_factory):
    from embshared.models import load_sentence_transformer

    folder, model = tiny
    texts = _texts()
    cache = EmbeddingCache(tmp_path / "cache")
    first = CorpusEncoder(folder, cache=cache, encoder=Counting(model)).encode(texts, False)
    again = Counting(model)
    np.testing.assert_array_equal(CorpusEncoder(folder, cache=cache, encoder=again).encode(texts, False), first)
    assert again.calls == 0

    changed = Counting(model)
    CorpusEncoder(folder, cache=cache, encoder=changed).encode([*texts[:-1], texts[-1] + " more"], False)
    assert changed.calls > 0
    reordered = Counting(model)
    CorpusEncoder(folder, cache=cache, encoder=reordered).encode(texts[::-1], False)
    assert reordered.calls > 0

    other_folder = tiny_base_factory(tmp_path / "other", seed=1)
    other = Counting(load_sentence_transformer(other_folder, device="cpu"))
    CorpusEncoder(other_folder, cache=cache, encoder=other).encode(texts, False)
    assert other.calls > 0

    shorter = load_sentence_transformer(folder, device="cpu")
    shorter.max_seq_length = 16
    short = Counting(shorter)
    vectors = CorpusEncoder(folder, cache=cache, encoder=short).encode(texts, False)
    assert short.calls > 0 and not np.allclose(vectors, first, atol=1e-4)
    assert len(list(cache.root.iterdir())) == 5


def test_an_adapter_reuses_its_base_models_cached_vectors(tmp_path, tiny):
    import torch

    from embedding_ft.adapter import attach_head
    from embshared.heads import ProjectionHead
    from embshared.models import load_sentence_transformer

    folder, base = tiny
    torch.manual_seed(0)
    head = ProjectionHead(32, 16, hidden_dim=24)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))  # not the identity-like start
    adapter, info = attach_head(base, head, base_name=folder)
    adapter_dir = tmp_path / "adapter"
    adapter.save(str(adapter_dir))
    info.save(adapter_dir)
    adapter = load_sentence_transformer(str(adapter_dir), device="cpu")
    texts = _texts()
    cache = EmbeddingCache(tmp_path / "cache")

    no_base = Counting(adapter)  # nothing cached yet: encoded normally
    direct = CorpusEncoder(str(adapter_dir), cache=EmbeddingCache(tmp_path / "other"), encoder=no_base)
    expected = direct.encode(texts, False)
    assert no_base.calls > 0

    CorpusEncoder(folder, cache=cache, encoder=base).encode(texts, False)  # the base's vectors, cached
    counting = Counting(adapter)
    vectors = CorpusEncoder(str(adapter_dir), cache=cache, encoder=counting).encode(texts, False)
    assert counting.calls == 0  # no transformer pass
    assert vectors.shape == (len(texts), 16)
    np.testing.assert_allclose(vectors, adapter.encode(texts, normalize_embeddings=True), atol=1e-5)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


class Noise:
    """A fake exported encoder whose vectors are noise."""

    tokenizer = None
    max_seq_length = 64

    def encode(self, texts, **kwargs):
        rng = np.random.default_rng(len(texts))
        return rng.standard_normal((len(texts), 32)).astype(np.float32)


def test_backend_auto_falls_back_to_torch_when_no_export_passes_the_gate(tmp_path, tiny, monkeypatch):
    folder, model = tiny
    for file_name in (FILES[("onnx", "int8")], FILES[("openvino", "none")]):
        (tmp_path / "tiny" / "st" / file_name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tiny" / "st" / file_name).write_text("fake")
    loaded = []

    def fake_load(name, backend="torch", file_name=None, device=None, compute_dtype="float32"):
        loaded.append((backend, file_name))
        return Counting(model) if backend == "torch" else Noise()

    monkeypatch.setattr(backends, "load_encoder", fake_load)
    monkeypatch.setattr(ce, "bf16_native", lambda device: False)  # fp32 candidates only, on any CPU
    texts = _texts()
    for gate in ce.GATES:
        encoder = CorpusEncoder(folder, backend="auto", gate=gate, cache=EmbeddingCache(tmp_path / gate))
        vectors = encoder.encode(texts, show_progress=False)
        assert (encoder.backend, encoder.file_name) == ("torch", None)
        measured = {m["backend"]: m for m in encoder.choice["measured"]}
        assert set(measured) == {"torch", "onnx", "openvino"}
        assert not measured["onnx"]["passed"] and measured["onnx"]["mean_cosine"] < 0.5
        np.testing.assert_allclose(vectors, model.encode(texts, normalize_embeddings=True), atol=1e-5)
    assert ("onnx", FILES[("onnx", "int8")]) in loaded


def test_build_index_encodes_through_the_cache(tmp_path, tiny):
    from embedding_ft.index import build_index, load_vectors, read_meta
    from embshared.io import Documents

    folder, model = tiny
    texts = _texts()
    docs = Documents([f"d{i}" for i in range(len(texts))], texts, "test")
    counting = Counting(model)
    index, reused = build_index(tmp_path / "idx", docs, folder, encoder=counting)
    assert not reused and counting.calls > 0
    np.testing.assert_allclose(load_vectors(index), model.encode(texts, normalize_embeddings=True), atol=1e-6)
    assert (tmp_path / "idx.cache").is_dir()
    again = Counting(model)  # another index over the same documents: the vectors come from the cache
    build_index(tmp_path / "idx2", docs, folder, encoder=again, cache_dir=tmp_path / "idx.cache")
    assert again.calls == 0 and read_meta(tmp_path / "idx2")["backend"] == "torch"


def test_corpus_vectors_are_read_by_text_and_unknown_texts_encoded(tmp_path, tiny):
    from embedding_ft.corpus_encoder import CorpusVectors

    folder, model = tiny
    texts = _texts()
    vectors = CorpusVectors(CorpusEncoder(folder, cache=EmbeddingCache(tmp_path / "c"), encoder=model), texts, False)
    asked = [texts[5], "a text outside the collection", texts[0], texts[5]]
    np.testing.assert_allclose(vectors.of(asked), model.encode(asked, normalize_embeddings=True), atol=1e-5)
    assert vectors.all().shape == (len(texts), model.get_embedding_dimension())


def test_backend_auto_exports_into_the_cache_and_never_into_the_model_folder(tmp_path, tiny, monkeypatch):
    from embedding_ft import export

    folder, model = tiny
    monkeypatch.setattr(ce, "bf16_native", lambda device: False)  # fp32 candidates only, on any CPU
    texts = _texts()
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = CorpusEncoder(folder, backend="auto", gate="exact", cache=cache, encoder=model, export=True)
    vectors = encoder.encode(texts, show_progress=False)
    measured = {(m["backend"], m["file_name"]): m for m in encoder.choice["measured"]}
    onnx = measured[("onnx", FILES[("onnx", "none")])]
    assert onnx["passed"] and onnx["min_cosine"] >= 0.9999  # fp32 ONNX is exact
    assert ("onnx", FILES[("onnx", "int8")]) not in measured  # never exported for the exact gate
    assert not any((Path(folder) / name).exists() for name in ("onnx", "openvino"))  # the model folder is untouched
    exported = [p for p in (cache.root / "exports").iterdir()]
    assert len(exported) == 1 and (exported[0] / FILES[("onnx", "none")]).is_file()
    np.testing.assert_allclose(vectors, model.encode(texts, normalize_embeddings=True), atol=1e-4)

    def no_export(*args, **kwargs):
        raise AssertionError("exported twice")

    monkeypatch.setattr(export, "export_model", no_export)  # a second encoder reuses the export
    other = _texts(12)
    again = CorpusEncoder(folder, backend="auto", gate="exact", cache=cache, encoder=model, export=True)
    again.encode(other, show_progress=False)
    assert ("onnx", FILES[("onnx", "none")]) in {(m["backend"], m["file_name"]) for m in again.choice["measured"]}


def test_an_index_built_on_an_export_in_the_cache_encodes_its_queries_with_it(tmp_path, tiny, monkeypatch):
    """make index-embed BACKEND=auto, then search-embed / serve-embed: the file is only in the cache."""
    import shutil

    from embedding_ft.index import IndexLoadError, Searcher, build_index, load_vectors, read_meta
    from embshared.io import Documents

    folder, model = tiny
    timed = ce._timed

    def torch_slower(encoder, texts, prompt_name=None):  # on 22 texts the back ends tie within timer noise
        vectors, seconds = timed(encoder, texts, prompt_name)
        return vectors, seconds + (1.0 if encoder is model else 0.0)

    monkeypatch.setattr(ce, "_timed", torch_slower)
    monkeypatch.setattr(ce, "bf16_native", lambda device: False)  # fp32 candidates only, on any CPU
    texts = _texts()
    docs = Documents([f"d{i}" for i in range(len(texts))], texts, "test")
    build_index(tmp_path / "idx", docs, str(folder), "auto", encoder=model, gate="exact")
    meta = read_meta(tmp_path / "idx")
    assert meta["backend"] in ("onnx", "openvino") and not (Path(folder) / meta["file_name"]).exists()
    assert Path(meta["encoder_folder"]).is_relative_to((tmp_path / "idx.cache").resolve())
    searcher = Searcher(tmp_path / "idx")  # loads the export from the cache, not the model folder
    query = np.asarray(searcher.encoder.encode(texts[:3], normalize_embeddings=True))
    np.testing.assert_allclose(query, load_vectors(tmp_path / "idx")[:3], atol=1e-4)
    assert [hits[0].id for hits in (searcher.search(t, 3) for t in texts[:3])] == ["d0", "d1", "d2"]
    shutil.rmtree(tmp_path / "idx.cache")
    with pytest.raises(IndexLoadError, match=r"idx: its documents were encoded by .* rebuild the index") as err:
        Searcher(tmp_path / "idx")
    assert "\n" not in str(err.value)


def test_two_processes_write_the_index_one_process_writes(tmp_path, tiny, repo):
    """make index-embed NPROC=2: accelerate launch, gloo, each rank a slice; the same vectors and top-10."""
    import json
    import os
    import subprocess
    import sys

    from embedding_ft.index import Searcher, load_vectors

    folder, model = tiny
    texts = _texts(22) + [f"extra document number {i} about w{i} and w{i + 1}" for i in range(17)]  # 39: uneven
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    one = [sys.executable, "-m", "embedding_ft.cli.index", "--model", str(folder), "--docs", str(docs)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    subprocess.run([*one, "--index", str(tmp_path / "one")], cwd=repo, env=env, check=True, timeout=600)
    launch = [
        os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29531",
    ]  # fmt: skip
    two = subprocess.run(
        [*launch, *one[1:], "--index", str(tmp_path / "two")],
        cwd=repo, env=env, check=True, timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    assert "2 processes encoded 39 documents" in two.stdout
    np.testing.assert_allclose(load_vectors(tmp_path / "two"), load_vectors(tmp_path / "one"), atol=1e-5)
    # the ranks' own cache entries: rank 0 the first 20 documents, rank 1 the last 19
    metas = [json.loads(p.read_text()) for p in (tmp_path / "two.cache").glob("*/meta.json")]
    assert sorted(m["n"] for m in metas) == [19, 20]
    a, b = Searcher(tmp_path / "one", encoder=model), Searcher(tmp_path / "two", encoder=model)
    queries = [texts[i][:40] for i in range(0, 39, 3)]
    for query in queries:
        assert [h.id for h in a.search(query, 10)] == [h.id for h in b.search(query, 10)]


def test_an_unwritable_target_fails_in_one_line_before_encoding(tmp_path, tiny, capsys):
    from embedding_ft.cli import index as index_cli
    from embedding_ft.index import build_index
    from embshared.errors import UserError
    from embshared.io import Documents

    folder, model = tiny
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    counting = Counting(model)
    docs = Documents(["d0", "d1"], ["one text", "another text"], "test")
    with pytest.raises(UserError, match="cannot write the index there"):
        build_index(blocker / "idx", docs, folder, encoder=counting, cache_dir=tmp_path / "cache")
    assert counting.calls == 0 and blocker.read_text() == "not a folder"
    texts = tmp_path / "docs.txt"
    texts.write_text("one text\nanother text\n")
    argv = ["--model", str(folder), "--docs", str(texts), "--index", str(blocker / "idx")]
    assert index_cli.main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the" in err[0] and "Traceback" not in err[0]


def test_float32_cache_keys_are_those_made_before_compute_dtype_existed():
    import hashlib
    import json
    from dataclasses import asdict

    key = ce.CacheKey("f" * 16, "torch", None, 256, "c" * 16, None)
    legacy = {k: v for k, v in asdict(key).items() if k != "compute_dtype"}
    assert key.digest() == hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:20]
    bf16 = ce.CacheKey("f" * 16, "torch", None, 256, "c" * 16, None, "bfloat16")
    assert bf16.digest() != key.digest() and bf16.fields()["compute_dtype"] == "bfloat16"


def test_autocast_encoder_computes_in_bf16_and_passes_attributes_through(tiny):
    import copy

    folder, model = tiny
    texts = _texts(12)
    fp32 = model.encode(texts, normalize_embeddings=True)
    bf16 = backends.AutocastEncoder(model)
    got = bf16.encode(texts, normalize_embeddings=True)
    cosines = np.sum(got * fp32, axis=1)
    assert cosines.min() > 0.99 and np.abs(got - fp32).max() > 1e-5  # close, and not fp32's own numbers
    twin = copy.deepcopy(bf16)
    assert isinstance(twin, backends.AutocastEncoder) and twin.model is not model
    np.testing.assert_allclose(twin.encode(texts, normalize_embeddings=True), got, atol=1e-6)
    bf16.max_seq_length = 17
    assert model.max_seq_length == 17 and bf16.max_seq_length == 17 and twin.max_seq_length != 17
    with pytest.raises(Exception, match="float32 only"):
        backends.load_encoder(str(folder), "onnx", None, compute_dtype="bfloat16")


def test_backend_auto_measures_bf16_where_native_and_the_index_keeps_it_for_queries(tmp_path, tiny, monkeypatch):
    """A CPU with native bf16: PyTorch autocast and OpenVINO bf16 are candidates; chosen, the index records it."""
    from embedding_ft.index import Searcher, build_index, load_vectors, read_meta
    from embshared.io import Documents

    folder, model = tiny
    monkeypatch.setattr(ce, "bf16_native", lambda device: True)
    timed = ce._timed

    def bf16_torch_fastest(encoder, texts, prompt_name=None):  # the choice, not the clock, is under test
        vectors, seconds = timed(encoder, texts, prompt_name)
        return vectors, 0.0 if isinstance(encoder, backends.AutocastEncoder) else seconds + 1.0

    monkeypatch.setattr(ce, "_timed", bf16_torch_fastest)
    texts = _texts()
    docs = Documents([f"d{i}" for i in range(len(texts))], texts, "test")
    build_index(tmp_path / "idx", docs, str(folder), "auto", encoder=model, gate="exact")
    encoder_choice = read_meta(tmp_path / "idx")
    assert (encoder_choice["backend"], encoder_choice["compute_dtype"]) == ("torch", "bfloat16")
    metas = [json.loads(p.read_text()) for p in (tmp_path / "idx.cache").glob("*/meta.json")]
    assert [m["key"]["compute_dtype"] for m in metas] == ["bfloat16"]
    fp32 = model.encode(texts, normalize_embeddings=True)
    stored = load_vectors(tmp_path / "idx")
    assert np.sum(stored * fp32, axis=1).min() >= 0.9999 and np.abs(stored - fp32).max() > 0  # bf16's own vectors
    searcher = Searcher(tmp_path / "idx")
    assert isinstance(searcher.encoder, backends.AutocastEncoder)  # queries encoded as the documents were
    assert [hits[0].id for hits in (searcher.search(t, 3) for t in texts[:3])] == ["d0", "d1", "d2"]
    _, reused = build_index(tmp_path / "idx", docs, str(folder), "torch", encoder=model)  # fp32 asked: not reused
    assert not reused and read_meta(tmp_path / "idx")["compute_dtype"] == "float32"
