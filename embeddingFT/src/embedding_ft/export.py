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
from dataclasses import dataclass
from pathlib import Path

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


def read_modules(folder: Path) -> tuple[int, str, bool]:
    """(max_seq_length, pooling mode, normalize) from a sentence-transformers folder; a module or pooling mode
    the exported runner (:class:`embedding_ft.backends.ExportedEncoder`) cannot compute is refused in one line."""
    modules = json.loads((folder / "modules.json").read_text())
    kinds = [m.get("type", "") for m in modules]
    for m in modules:  # what the runner cannot compute is refused, never silently skipped
        kind = m.get("type", "").rsplit(".", 1)[-1]
        if kind not in ("Transformer", "Pooling", "Normalize"):
            raise UserError(
                f"{folder}: the exported runner does not run the {kind} module ({m.get('path') or m.get('name')}); "
                "use BACKEND=torch for this model"
            )
    pooling = "mean"
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            cfg_path = folder / m.get("path", "") / "config.json"
            if cfg_path.is_file():
                cfg = json.loads(cfg_path.read_text())
                mode = cfg.get("pooling_mode")
                if mode:
                    if mode not in ("mean", "cls", "max"):
                        raise UserError(
                            f"{cfg_path}: the exported runner does not compute pooling mode {mode!r} "
                            "(mean, cls, max); use BACKEND=torch for this model"
                        )
                    pooling = mode
                elif unsupported := [
                    k
                    for k in (
                        "pooling_mode_mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens",
                        "pooling_mode_lasttoken",
                    )
                    if cfg.get(k)
                ]:
                    raise UserError(
                        f"{cfg_path}: the exported runner does not compute {unsupported[0]} (mean, cls, max); "
                        "use BACKEND=torch for this model"
                    )
                elif cfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif cfg.get("pooling_mode_max_tokens"):
                    pooling = "max"
    max_len = 256
    for name in ("sentence_bert_config.json", "0_Transformer/sentence_bert_config.json"):
        path = folder / name
        if path.is_file():
            max_len = json.loads(path.read_text()).get("max_seq_length", max_len) or max_len
            break
    return int(max_len), pooling, any(k.endswith("Normalize") for k in kinds)
