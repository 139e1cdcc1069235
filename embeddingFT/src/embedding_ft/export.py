"""Export a trained model for fast CPU inference: ONNX Runtime (fp32 optimised, int8) and OpenVINO (fp32, int8).

Files land inside the model folder where sentence-transformers' own exporters put them,
so the folder stays one model with several back ends:

    <model>/onnx/model.onnx                           fp32, as exported
    <model>/onnx/model_O2.onnx                        fp32, ONNX Runtime's transformer fusions
    <model>/onnx/model_qint8.onnx                     int8 weights, dynamic activations (ORT)
    <model>/openvino/openvino_model.xml (+ .bin)      fp32 OpenVINO IR
    <model>/openvino/openvino_model_qint8_quantized.xml   int8, static (NNCF on calibration texts)

Why not ``sentence_transformers.backend.export_*``: those need optimum-onnx / optimum-intel,
whose newest releases (0.1.0 / 2.2.0) require transformers < 4.58 / < 5.6 (and torchvision),
while sentence-transformers 6.2 requires transformers >= 5.0 and the workspace pins 5.23. So
the transformer is exported with ``torch.onnx.export`` and optimised / quantised with the
back ends' own tools (``onnxruntime.transformers.optimizer``, ``onnxruntime.quantization``,
``openvino.convert_model``, ``nncf.quantize``); the graph's inputs and output carry the names
optimum uses (input_ids, attention_mask, token_type_ids -> last_hidden_state), so
``SentenceTransformer(path, backend="onnx", model_kwargs={"file_name": "onnx/model_qint8.onnx"})``
reads these files where optimum is installed. :mod:`embedding_ft.backends` runs them here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embshared.errors import UserError
from embshared.files import atomic_write

logger = logging.getLogger(__name__)

BACKENDS = ("onnx", "openvino")
QUANTS = ("none", "int8")
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]

#: (backend, quant) -> the file written, relative to the model folder
FILES = {
    ("onnx", "none"): "onnx/model_O2.onnx",
    ("onnx", "int8"): "onnx/model_qint8.onnx",
    ("openvino", "none"): "openvino/openvino_model.xml",
    ("openvino", "int8"): "openvino/openvino_model_qint8_quantized.xml",
}
RAW_ONNX = "onnx/model.onnx"


@dataclass
class ExportResult:
    model_dir: Path
    backend: str
    quant: str
    file_name: str


def check_model_folder(path: str | Path) -> Path:
    """A local sentence-transformers folder, or one error naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such model folder")
    if not (path / "config.json").is_file() or not (path / "modules.json").is_file():
        raise UserError(f"{path}: not a sentence-transformers model folder (config.json / modules.json missing)")
    return path


class _Encoder:
    """The transformer alone, with positional inputs (what torch.onnx.export traces)."""

    def __new__(cls, hf_model):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.last_hidden_state  # (batch, seq, hidden)

        return Wrapped(hf_model).eval()


def export_raw_onnx(model, folder: Path) -> Path:
    """``torch.onnx.export`` of the model's transformer to ``folder/onnx/model.onnx`` (dynamic batch and length)."""
    import torch

    transformer = model[0].auto_model
    if "token_type_ids" not in model.tokenizer.model_input_names:
        raise UserError(f"{folder}: export supports BERT-style encoders (input_ids, attention_mask, token_type_ids)")
    sample = model.tokenizer(["a short text", "a longer text to trace the padding"], padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*INPUT_NAMES, "last_hidden_state"]}
    target = folder / RAW_ONNX
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with torch.no_grad():
        torch.onnx.export(
            _Encoder(transformer),
            args,
            str(tmp),
            input_names=INPUT_NAMES,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, stable for BERT
        )
    tmp.replace(target)
    return target


def _optimize_onnx(raw: Path, target: Path, config) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=getattr(config, "num_attention_heads", 0),
        hidden_size=getattr(config, "hidden_size", 0),
        opt_level=1,  # graph fusions only; level 2 bakes CPU-specific layouts into the file
    )
    tmp = target.with_name(f".{target.name}.tmp")
    optimized.save_model_to_file(str(tmp))
    tmp.replace(target)


def _quantize_onnx(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.tmp")
    import onnx

    quantize_dynamic(
        str(source),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops defeat shape inference
    )
    tmp.replace(target)


def _openvino(raw: Path, target: Path, quant: str, model, texts: list[str]) -> None:
    import openvino as ov

    ov_model = ov.convert_model(str(raw))
    if quant == "int8":
        import nncf

        def items():
            for start in range(0, len(texts), 8):
                enc = model.tokenizer(
                    texts[start : start + 8],
                    padding=True,
                    truncation=True,
                    max_length=model.max_seq_length,
                    return_tensors="np",
                )
                yield {name: enc[name] for name in INPUT_NAMES}

        calibration = list(items())
        ov_model = nncf.quantize(
            ov_model,
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.xml")
    ov.save_model(ov_model, str(tmp), compress_to_fp16=False)
    tmp.replace(target)
    tmp.with_suffix(".bin").replace(target.with_suffix(".bin"))


def export_model(
    model_dir: str | Path, backend: str = "onnx", quant: str = "int8", calibration_texts: list[str] | None = None
) -> ExportResult:
    """Export ``model_dir`` to ``backend`` with ``quant``; returns the file to load.

    Args:
        model_dir: a sentence-transformers model folder (e.g. a run's final_model).
        backend: "onnx" or "openvino".
        quant: "none" (fp32) or "int8".
        calibration_texts: texts like the ones the model will see (OpenVINO int8 calibrates
            its activation ranges on them; default: a built-in set of short and long texts).
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    if quant not in QUANTS:
        raise UserError(f"unknown quantization {quant!r} (choose one of {', '.join(QUANTS)})")
    folder = check_model_folder(model_dir)
    from embshared.models import load_sentence_transformer

    read_modules(folder)  # refuses, before any file is written, a module the exported runner cannot run

    model = load_sentence_transformer(str(folder), device="cpu")
    raw = folder / RAW_ONNX
    if not raw.is_file():
        logger.info("exporting %s to ONNX", folder)
        export_raw_onnx(model, folder)
    target = folder / FILES[(backend, quant)]
    target.parent.mkdir(parents=True, exist_ok=True)
    if backend == "onnx":
        optimized = folder / FILES[("onnx", "none")]
        if not optimized.is_file():
            _optimize_onnx(raw, optimized, model[0].auto_model.config)
        if quant == "int8":
            _quantize_onnx(optimized, target)
    else:
        _openvino(raw, target, quant, model, calibration_texts or default_calibration_texts())
    _write_note(folder)
    logger.info("wrote %s", target)
    return ExportResult(folder, backend, quant, FILES[(backend, quant)])


def _write_note(folder: Path) -> None:
    present = [name for name in FILES.values() if (folder / name).is_file()]
    with atomic_write(folder / "backends.txt") as handle:
        handle.write(
            "Back ends exported by `make export-embed` (embedding_ft.export); load one with\n"
            "embedding_ft.backends.load_encoder(folder, backend, file_name):\n"
            + "".join(f"  {name}\n" for name in present)
        )


def default_calibration_texts() -> list[str]:
    """Short queries and long passages (from the bundled SciFact sample when present)."""
    from embshared.io import load_beir
    from embshared.runtime import repo_root

    sample = repo_root() / "data" / "samples" / "scifact"
    if sample.is_dir():
        beir = load_beir(sample)
        return list(beir.queries.values())[:64] + list(beir.corpus_texts().values())[:64]
    return ["a short query about a topic", "a longer passage that explains the topic in a few sentences. " * 8] * 32


# ---------------------------------------------------------------------------------------
# What the exported runner computes around the transformer (read from the folder's modules)

#: Pooling modes as sentence-transformers 6.2 names them; the legacy ``pooling_mode_*`` keys in this order
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
#: torch.nn activation classes a Dense module may name (instantiated without arguments, as sentence-transformers does)
DENSE_ACTIVATIONS = ("Identity", "Tanh", "GELU", "ReLU", "Sigmoid", "SiLU")
#: feature names the transformer / pooling read: a Dense or Normalize that wrote them would change their meaning
_RESERVED_FEATURES = frozenset(
    {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "position_ids",
        "prompt_length",
        "modality",
        "cls_token_embeddings",
        "token_weights_sum",
        "all_layer_embeddings",
        "cu_seq_lens_q",
        "cu_seq_lens_k",
        "seq_idx",
    }
)
_FEATURE_EXTRACTION = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}


@dataclass(frozen=True)
class TransformerStep:
    """How texts become the exported transformer's inputs, as the model's Transformer module tokenizes them.

    ``tokenizer_kwargs`` go to ``AutoTokenizer.from_pretrained(path, ...)``; ``max_seq_length`` is the
    module's own (old configs), else None: the tokenizer's ``model_max_length`` capped at
    ``max_position_embeddings``. ``prompts`` / ``default_prompt_name`` are the model's
    (config_sentence_transformers.json), prepended to the texts as ``SentenceTransformer.encode`` does."""

    path: Path
    max_seq_length: int | None = None
    do_lower_case: bool = False
    tokenizer_kwargs: dict = field(default_factory=dict)
    max_position_embeddings: int | None = None
    hidden_size: int | None = None
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None


@dataclass(frozen=True)
class PoolingStep:
    """token_embeddings -> sentence_embedding: the modes' vectors concatenated in this order."""

    name: str
    modes: tuple[str, ...] = ("mean",)
    include_prompt: bool = True


@dataclass(frozen=True, eq=False)
class DenseStep:
    """``features[output_name] = activation(x W^T + b) [+ x or x R^T]`` with ``x = features[input_name]``;
    weights are float32 torch tensors read from the module folder (safetensors, or a weights-only .bin)."""

    name: str
    weight: Any
    bias: Any
    activation: str
    input_name: str = "sentence_embedding"
    output_name: str = "sentence_embedding"
    use_residual: bool = False
    residual: Any = None  # (out, in) projection when use_residual and in != out; else the identity


@dataclass(frozen=True)
class NormalizeStep:
    """``features[output_name] = x / max(||x||, 1e-12)`` along the last axis."""

    name: str
    input_name: str = "sentence_embedding"
    output_name: str = "sentence_embedding"


@dataclass(frozen=True)
class TruncateStep:
    """The model's ``truncate_dim``: keep the first ``dim`` values of the sentence embedding."""

    dim: int


Step = TransformerStep | PoolingStep | DenseStep | NormalizeStep | TruncateStep


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({' '.join(str(exc).split())[:120]})") from None
    return value if isinstance(value, dict) else {}


def _module_kind(entry: dict) -> str:
    """Transformer / Pooling / Dense / Normalize for sentence-transformers' own classes (also their legacy
    ``sentence_transformers.models.*`` names); anything else (another class, a custom module) as named."""
    kind = str(entry.get("type", ""))
    short = kind.rsplit(".", 1)[-1]
    if kind.startswith("sentence_transformers.") and short in ("Transformer", "Pooling", "Dense", "Normalize"):
        return short
    return kind or "(untyped)"


def read_modules(folder: Path) -> list[Step]:
    """What the exported runner (:class:`embedding_ft.backends.ExportedEncoder`) computes for the model in
    ``folder``, as steps in modules.json's order: a :class:`TransformerStep` (tokenization and prompts),
    then :class:`PoolingStep` / :class:`DenseStep` / :class:`NormalizeStep` as sentence-transformers 6.2
    runs them, then a :class:`TruncateStep` if the model has a ``truncate_dim``.

    Raises:
        UserError: one line naming the module, for a module (or setting of one) the runner cannot compute
            exactly: any module other than Transformer (first) / Pooling / Dense / Normalize, a Dense
            activation outside :data:`DENSE_ACTIVATIONS`, a Transformer that is not plain text feature
            extraction, or modules that do not end in a sentence embedding.
    """
    folder = Path(folder)
    modules = json.loads((folder / "modules.json").read_text())
    if not isinstance(modules, list) or not modules:
        raise UserError(f"{folder}/modules.json: no modules")

    def refuse(entry: dict, what: str):
        label = entry.get("path") or entry.get("name") or "(root)"
        return UserError(f"{folder}: the exported runner {what} ({label}); use BACKEND=torch for this model")

    for entry in modules:  # what the runner cannot compute is refused, before anything is read or written
        kind = _module_kind(entry)
        if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
            raise refuse(entry, f"does not run the {kind.rsplit('.', 1)[-1]} module")
    if _module_kind(modules[0]) != "Transformer" or any(_module_kind(m) == "Transformer" for m in modules[1:]):
        raise refuse(modules[0], "runs one Transformer module, first")

    model_config = _read_json(folder / "config_sentence_transformers.json")
    steps: list[Step] = [_transformer_step(folder, modules[0], model_config, refuse)]
    dims = {"token_embeddings": steps[0].hidden_size}  # feature -> its last dimension (None: unknown)
    for entry in modules[1:]:
        kind = _module_kind(entry)
        module_dir = folder / entry.get("path", "")
        cfg = _read_json(module_dir / "config.json")
        if kind == "Pooling":
            step = _pooling_step(entry, cfg, refuse)
            if dims["token_embeddings"] is None:
                dims["sentence_embedding"] = None
            else:
                dims["sentence_embedding"] = len(step.modes) * dims["token_embeddings"]
        elif kind == "Dense":
            step = _dense_step(entry, module_dir, cfg, refuse)
            for name in (step.input_name, step.output_name):
                if name in _RESERVED_FEATURES:
                    raise refuse(entry, f"does not run a Dense module on the feature {name!r}")
            if step.input_name not in dims:
                raise refuse(entry, f"finds no feature {step.input_name!r} for the Dense module")
            in_dim = dims[step.input_name]
            if in_dim is not None and in_dim != step.weight.shape[1]:
                raise refuse(entry, f"finds {in_dim}-dim {step.input_name} for a Dense of {step.weight.shape[1]}")
            dims[step.output_name] = int(step.weight.shape[0])
        else:  # Normalize
            step = NormalizeStep(
                str(entry.get("path") or entry.get("name")),
                cfg.get("module_input_name") or "sentence_embedding",
                cfg.get("module_output_name") or cfg.get("module_input_name") or "sentence_embedding",
            )
            if step.output_name in _RESERVED_FEATURES or step.input_name in _RESERVED_FEATURES:
                raise refuse(entry, f"does not run a Normalize module on the feature {step.input_name!r}")
            if step.input_name not in dims:  # sentence-transformers skips it too: nothing to normalize
                continue
            dims[step.output_name] = dims[step.input_name]
        steps.append(step)
    if "sentence_embedding" not in dims:
        raise refuse(modules[-1], "needs modules that end in a sentence embedding (no Pooling)")
    truncate_dim = model_config.get("truncate_dim")
    if truncate_dim:
        steps.append(TruncateStep(int(truncate_dim)))
    return steps


def _transformer_step(folder: Path, entry: dict, model_config: dict, refuse) -> TransformerStep:
    path = folder / entry.get("path", "")
    cfg = {}
    for name in (
        "sentence_bert_config.json",
        "sentence_roberta_config.json",
        "sentence_distilbert_config.json",
        "sentence_camembert_config.json",
        "sentence_albert_config.json",
        "sentence_xlm-roberta_config.json",
        "sentence_xlnet_config.json",
    ):
        if cfg := _read_json(path / name):
            break
    if cfg.get("transformer_task", "feature-extraction") != "feature-extraction":
        raise refuse(entry, f"runs feature extraction only, not {cfg['transformer_task']!r}")
    if cfg.get("modality_config", _FEATURE_EXTRACTION) != _FEATURE_EXTRACTION or cfg.get(
        "module_output_name", "token_embeddings"
    ) not in (None, "token_embeddings"):
        raise refuse(entry, "runs text -> last_hidden_state -> token_embeddings only (modality_config)")
    for key in ("processing_kwargs", "query_expansion"):
        if cfg.get(key):
            raise refuse(entry, f"does not apply the Transformer's {key}")
    tokenizer_kwargs = dict(cfg.get("processor_kwargs") or cfg.get("tokenizer_args") or {})
    tokenizer_kwargs.pop("trust_remote_code", None)
    config_kwargs = dict(cfg.get("config_kwargs") or cfg.get("config_args") or {})
    config = {**_read_json(path / "config.json"), **config_kwargs}
    max_len = cfg.get("max_seq_length")
    prompts = {"query": "", "document": ""}  # SentenceTransformer's defaults, filled from the saved config
    prompts.update({k: v or "" for k, v in (model_config.get("prompts") or {}).items()})
    default_prompt = model_config.get("default_prompt_name")
    if default_prompt is not None and default_prompt not in prompts:
        raise UserError(f"{folder}: default_prompt_name {default_prompt!r} is not one of the prompts {list(prompts)}")
    max_pos = config.get("max_position_embeddings")
    return TransformerStep(
        path=path,
        max_seq_length=int(max_len) if max_len else None,
        do_lower_case=bool(cfg.get("do_lower_case", False)),
        tokenizer_kwargs=tokenizer_kwargs,
        max_position_embeddings=int(max_pos) if isinstance(max_pos, int) and max_pos != -1 else None,
        hidden_size=config.get("hidden_size") if isinstance(config.get("hidden_size"), int) else None,
        prompts=prompts,
        default_prompt_name=default_prompt,
    )


def _pooling_step(entry: dict, cfg: dict, refuse) -> PoolingStep:
    """The modes as ``Pooling.load_config`` reads them: ``pooling_mode`` (a name or a list), else the legacy
    booleans in their fixed order, else mean."""
    mode = cfg.get("pooling_mode")
    if mode is None:
        mode = [m for key, m in _LEGACY_POOLING_KEYS.items() if cfg.get(key)] or ["mean"]
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    if not modes or any(m not in POOLING_MODES for m in modes):
        raise refuse(entry, f"does not know pooling mode {mode!r} ({', '.join(POOLING_MODES)})")
    return PoolingStep(str(entry.get("path") or entry.get("name")), modes, bool(cfg.get("include_prompt", True)))


def _dense_step(entry: dict, module_dir: Path, cfg: dict, refuse) -> DenseStep:
    import importlib

    import torch

    name = str(entry.get("path") or entry.get("name"))
    activation = cfg.get("activation_function", "torch.nn.modules.activation.Tanh")  # Dense's default: Tanh
    activation_class = None
    if isinstance(activation, str) and activation.startswith("torch.nn."):
        module_name, _, class_name = activation.rpartition(".")
        try:
            activation_class = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            activation_class = None
    short = activation_class.__name__ if activation_class is not None else None
    if short not in DENSE_ACTIVATIONS or activation_class is not getattr(torch.nn, short):
        raise refuse(
            entry, f"does not run the Dense module with activation {activation!r} ({', '.join(DENSE_ACTIVATIONS)})"
        )
    if (module_dir / "model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(str(module_dir / "model.safetensors"), device="cpu")
    elif (module_dir / "pytorch_model.bin").is_file():
        weights = torch.load(module_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise refuse(entry, "finds no model.safetensors / pytorch_model.bin for the Dense module")
    in_features, out_features = cfg.get("in_features"), cfg.get("out_features")
    use_bias, use_residual = bool(cfg.get("bias", True)), bool(cfg.get("use_residual", False))
    weight, bias, residual = weights.get("linear.weight"), weights.get("linear.bias"), weights.get("residual.weight")
    expect = (out_features, in_features)
    if (
        weight is None
        or tuple(weight.shape) != expect
        or (use_bias and (bias is None or tuple(bias.shape) != (out_features,)))
        or (use_residual and in_features != out_features and (residual is None or tuple(residual.shape) != expect))
    ):
        raise refuse(entry, f"finds Dense weights that are not those of a {in_features} -> {out_features} Dense")
    input_name = cfg.get("module_input_name") or "sentence_embedding"
    return DenseStep(
        name=name,
        weight=weight.float(),
        bias=bias.float() if use_bias else None,
        activation=short,
        input_name=input_name,
        output_name=cfg.get("module_output_name") or input_name,
        use_residual=use_residual,
        residual=residual.float() if use_residual and in_features != out_features else None,
    )
