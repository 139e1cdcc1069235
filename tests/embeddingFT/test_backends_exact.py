"""The exported runner (ONNX transformer + pooling / Dense / Normalize in numpy and torch) gives
SentenceTransformer's vectors for every module set it accepts, and refuses the others before writing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedding_ft.backends import ExportedEncoder, load_encoder
from embedding_ft.export import FILES, export_model, read_modules
from embshared.errors import UserError

#: different lengths (one beyond the tiny model's 64 tokens), batched by 3 so that every batch pads
TEXTS = [
    "Vitamin D supplementation reduces fracture risk in elderly women.",
    "hi",
    "Aspirin lowers the risk of a second heart attack, according to a large randomised trial. " * 8,
    "Statins reduce LDL cholesterol.",
    "The zebrafish fin regenerates after amputation through blastema formation in a few days.",
]
FP32 = FILES[("onnx", "none")]
#: every pooling mode that can run with the prompt excluded
PROMPT_MODES = ("mean", "cls", "max", "weightedmean", "lasttoken", "mean_sqrt_len_tokens")


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_base_factory):
    """The tiny model's folder (2-layer 32-dim BERT, MiniLM's tokenizer, max_seq_length 64), exported once;
    the variants below share its transformer, so they start from its ONNX files."""
    folder = tiny_base_factory(tmp_path_factory.mktemp("tiny"), seed=0, max_seq_length=64, dropout=0.0)
    export_model(folder, "onnx", "none")
    return folder


@pytest.fixture(scope="module")
def build(base, tmp_path_factory):
    """build(name, modules_after_transformer, padding_side=None, fresh=False, **SentenceTransformer kwargs)
    -> a saved folder, exported to ONNX fp32 with export_model (``fresh``: its own torch.onnx export)."""
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("variants")

    def make(name, modules, padding_side=None, fresh=False, **kwargs):
        transformer = SentenceTransformer(base, device="cpu")[0]
        if padding_side:
            transformer.tokenizer.padding_side = padding_side
        model = SentenceTransformer(modules=[transformer, *modules], device="cpu", **kwargs)
        folder = root / name
        model.save(str(folder))
        if not fresh:  # the same transformer: its exported graph is the base's
            (folder / "onnx").mkdir()
            for file in ("onnx/model.onnx", FP32):
                shutil.copy(base + "/" + file, folder / file)
        export_model(folder, "onnx", "none")
        return folder

    return make


def check_exact(folder, **encode_kwargs):
    """The runner's vectors equal SentenceTransformer's within 1e-5 (and cosine >= 0.99999)."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, batch_size=3, **encode_kwargs)
    runner = load_encoder(str(folder), "onnx", FP32)
    assert isinstance(runner, ExportedEncoder)
    got = runner.encode(TEXTS, batch_size=3, **encode_kwargs)
    assert got.shape == reference.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    cosines = np.sum(got * reference, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosines.min() >= 0.99999
    return got


def pooling(mode, **kwargs):
    from sentence_transformers.sentence_transformer.modules import Pooling

    return Pooling(32, mode, **kwargs)


@pytest.mark.parametrize(
    "mode",
    ["mean", "max", "cls", "mean_sqrt_len_tokens", "weightedmean", "lasttoken", ("lasttoken", "mean", "max")],
    ids=str,
)
def test_every_pooling_mode_is_exact(build, mode):
    name = mode if isinstance(mode, str) else "+".join(mode)
    folder = build(f"pool_{name}", [pooling(mode)])
    got = check_exact(folder)
    assert got.shape == (len(TEXTS), 32 * (1 if isinstance(mode, str) else len(mode)))


def test_pooling_with_left_padding_is_exact(build):
    """cls / weightedmean / lasttoken count from the first real token when the tokenizer pads on the left."""
    folder = build("left", [pooling(("cls", "weightedmean", "lasttoken", "mean"))], padding_side="left")
    assert json.loads((folder / "tokenizer_config.json").read_text())["padding_side"] == "left"
    check_exact(folder)


@pytest.mark.parametrize("side", ["right", "left"])
def test_prompts_include_prompt_false_and_truncate_dim_are_exact(build, side):
    folder = build(
        f"prompt_{side}",
        [pooling(PROMPT_MODES, include_prompt=False)],
        padding_side=side,
        prompts={"query": "query: ", "document": "a much longer passage prompt: "},
        default_prompt_name="query",
        truncate_dim=100,
    )
    default = check_exact(folder)  # the default prompt
    assert default.shape == (len(TEXTS), 100)
    assert not np.allclose(check_exact(folder, prompt_name="document"), default, atol=1e-3)
    check_exact(folder, prompt="")  # an explicit empty prompt: none
    check_exact(folder, prompt="search: ", normalize_embeddings=True)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_to_a_multiple_leaves_the_vectors_as_they_are(build, side):
    """The corpus encoder pads an exported encoder's batches to a multiple of 8 (fewer shapes for OpenVINO): on the right only."""
    folder = build(
        f"pad_{side}",
        [pooling(PROMPT_MODES, include_prompt=False)],
        padding_side=side,
        prompts={"query": "query: "},
        default_prompt_name="query",
    )
    runner = load_encoder(str(folder), "onnx", FP32)
    plain = runner.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(runner.encode(TEXTS, batch_size=3, pad_to_multiple_of=8), plain, rtol=0, atol=1e-5)
    assert runner._tokenize(["hi"])["input_ids"].shape[1] == 3  # [CLS] hi [SEP]
    # on the left the pads would shift the real tokens' positions (other vectors): not padded there
    assert runner._tokenize(["hi"], 8)["input_ids"].shape[1] == (8 if side == "right" else 3)
    runner.max_seq_length = 60  # not a multiple of 8: no padding past it (nor past the model's positions)
    assert runner._tokenize([TEXTS[2], "hi"], 8)["input_ids"].shape[1] == 60
    assert runner._tokenize(["hi"], 8)["input_ids"].shape[1] == 3


def test_dense_tanh_is_exact(build):
    from sentence_transformers.base.modules import Dense

    folder = build("dense", [pooling("mean"), Dense(32, 24)], fresh=True)  # Dense's default activation: Tanh
    assert "Tanh" in json.loads((folder / "2_Dense" / "config.json").read_text())["activation_function"]
    assert (folder / "2_Dense" / "model.safetensors").is_file()
    assert check_exact(folder).shape == (len(TEXTS), 24)


def test_dense_and_normalize_are_exact(build):
    import torch
    from sentence_transformers.base.modules import Dense, Normalize

    folder = build("dense_norm", [pooling("mean"), Dense(32, 16, activation_function=torch.nn.Tanh()), Normalize()])
    got = check_exact(folder)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_stacked_dense_modules_are_exact(build):
    """Dense on the token embeddings, residual Dense layers (identity and projected), GELU / ReLU / Identity,
    no bias, and Normalize in the middle."""
    import torch
    from sentence_transformers.base.modules import Dense, Normalize

    modules = [
        Dense(32, 32, activation_function=torch.nn.ReLU(), module_input_name="token_embeddings"),
        pooling(("cls", "mean")),
        Normalize(),
        Dense(64, 64, activation_function=torch.nn.GELU(), use_residual=True),
        Dense(64, 20, activation_function=torch.nn.Identity(), use_residual=True, bias=False),
        Dense(20, 20, activation_function=None, module_output_name="projected"),  # another feature: unused
    ]
    folder = build("stack", modules)
    steps = read_modules(folder)
    assert [type(s).__name__ for s in steps] == [
        "TransformerStep",
        "DenseStep",
        "PoolingStep",
        "NormalizeStep",
        "DenseStep",
        "DenseStep",
        "DenseStep",
    ]
    assert check_exact(folder).shape == (len(TEXTS), 20)


def test_an_adapter_is_exact(base, build, tmp_path):
    """An adapter folder (embedding_ft.adapter.attach_head: the head as Dense GELU + Dense identity, Normalize)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding_ft.adapter import attach_head
    from embshared.heads import ProjectionHead

    torch.manual_seed(1)
    head = ProjectionHead(32, 24, hidden_dim=16)
    with torch.no_grad():
        for layer in (head.mlp[0], head.mlp[2]):
            layer.weight.normal_(0, 0.5)
            layer.bias.normal_(0, 0.5)
    model, info = attach_head(SentenceTransformer(base, device="cpu"), head)
    folder = tmp_path / "adapter"
    model.save(str(folder))
    info.save(folder)
    (folder / "onnx").mkdir()
    for file in ("onnx/model.onnx", FP32):
        shutil.copy(base + "/" + file, folder / file)
    export_model(folder, "onnx", "none")
    got = check_exact(folder)
    assert got.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_read_modules_of_the_packaged_minilm():
    from pathlib import Path

    from embshared.models import resolve_model

    steps = read_modules(Path(resolve_model("sentence-transformers/all-MiniLM-L6-v2")))
    assert steps[0].max_seq_length == 256 and steps[0].hidden_size == 384
    assert [type(s).__name__ for s in steps[1:]] == ["PoolingStep", "NormalizeStep"]
    assert steps[1].modes == ("mean",) and steps[1].include_prompt


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _refused(folder, *words):
    before = _listing(folder)
    with pytest.raises(UserError) as info:
        export_model(folder, "onnx", "none")
    message = str(info.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert _listing(folder) == before  # nothing written
    assert not (folder / "onnx").exists() and not (folder / "backends.txt").exists()
    return message


@pytest.fixture
def save(base, tmp_path):
    from sentence_transformers import SentenceTransformer

    def make(modules):
        model = SentenceTransformer(modules=[SentenceTransformer(base, device="cpu")[0], *modules], device="cpu")
        model.save(str(tmp_path / "model"))
        return tmp_path / "model"

    return make


def test_a_layernorm_module_is_refused_before_writing(save):
    from sentence_transformers.sentence_transformer.modules import LayerNorm

    folder = save([pooling("mean"), LayerNorm(32)])
    _refused(folder, "LayerNorm", "2_LayerNorm")


def test_a_dense_activation_outside_the_list_is_refused(save):
    import torch
    from sentence_transformers.base.modules import Dense

    folder = save([pooling("mean"), Dense(32, 8, activation_function=torch.nn.Softplus())])
    _refused(folder, "2_Dense", "Softplus")


def test_a_custom_module_is_refused(save):
    folder = save([pooling("mean")])
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Custom", "type": "my_package.modules.Custom"})
    (folder / "modules.json").write_text(json.dumps(modules))
    _refused(folder, "Custom", "2_Custom")


def test_modules_without_a_sentence_embedding_are_refused(save):
    from sentence_transformers.base.modules import Normalize

    folder = save([Normalize(module_input_name="token_embeddings")])
    _refused(folder, "Pooling")
