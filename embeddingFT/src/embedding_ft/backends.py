"""Load a model with a back end: PyTorch (``SentenceTransformer``), ONNX Runtime or OpenVINO.

:func:`load_encoder` returns an object with the part of ``SentenceTransformer.encode`` the
workspace uses (texts, batch_size, normalize_embeddings, show_progress_bar), so index,
search, inference and evaluation take ``--backend`` without caring which one runs.

Where optimum is installed, sentence-transformers loads the exported files itself
(``SentenceTransformer(path, backend=..., model_kwargs={"file_name": ...})``) and that is
used; otherwise (as on the pinned stack, see :mod:`embedding_ft.export`) the file runs in
ONNX Runtime / OpenVINO here, with the tokenizer and pooling read from the same folder:
the tokenizer, mean/CLS pooling as in ``1_Pooling/config.json``, and the ``Normalize``
module if the model has one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embedding_ft.export import FILES, check_model_folder, read_modules
from embshared.errors import UserError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")


def default_file(backend: str, quant: str = "int8") -> str:
    return FILES[(backend, quant)]


class ExportedEncoder:
    """An exported transformer + the folder's tokenizer and pooling, with ``encode`` like SentenceTransformer's.

    Args:
        folder: the model folder.
        backend: "onnx" or "openvino".
        file_name: the exported file, relative to ``folder``.
        threads: intra-op threads (default: the runtime's choice).
        precision: OpenVINO's inference precision for the float parts ("f32" or "bf16").
    """

    def __init__(
        self, folder: str | Path, backend: str, file_name: str, threads: int | None = None, precision: str = "f32"
    ):
        from transformers import AutoTokenizer

        self.folder = check_model_folder(folder)
        self.backend = backend
        self.file_name = file_name
        path = self.folder / file_name
        if not path.is_file():
            raise UserError(f"{path}: not exported yet (make export-embed MODEL={folder} BACKEND={backend})")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.max_seq_length, self.pooling, self.normalize = read_modules(self.folder)
        if backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._names = [i.name for i in self._session.get_inputs()]
            self._run = lambda feeds: self._session.run(None, feeds)[0]
        elif backend == "openvino":
            import openvino as ov

            core = ov.Core()
            # f32 unless asked: on CPUs with bf16 OpenVINO would otherwise run the float parts in bf16
            config = {"INFERENCE_PRECISION_HINT": precision}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            compiled = core.compile_model(str(path), "CPU", config)
            self._names = [i.get_any_name() for i in compiled.inputs]
            request = compiled.create_infer_request()
            self._run = lambda feeds: request.infer(feeds)[compiled.output(0)]
        else:
            raise UserError(f"unknown backend {backend!r} (choose one of {', '.join(BACKENDS)})")

    def get_embedding_dimension(self) -> int:
        return int(self.encode(["x"]).shape[1])

    def encode(
        self,
        texts,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        **_ignored,
    ) -> np.ndarray:
        """(n, dim) float32 embeddings, pooled as the model's Pooling module says."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        # sort by length so that each batch pads little (as SentenceTransformer.encode does)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", disable=not show_progress_bar):
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = self.tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np"
            )
            feeds = {name: enc[name].astype(np.int64) for name in self._names if name in enc}
            if "token_type_ids" in self._names and "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            hidden = np.asarray(self._run(feeds), dtype=np.float32)  # (batch, seq, hidden)
            chunks.append(_pool(hidden, enc["attention_mask"], self.pooling))
        if chunks:
            pooled = np.concatenate(chunks)
            out = np.empty_like(pooled)
            out[order] = pooled
        if self.normalize or normalize_embeddings:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0]
    m = mask[..., None].astype(np.float32)  # (batch, seq, 1)
    if mode == "max":
        return np.where(m > 0, hidden, -1e9).max(axis=1)
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)  # mean


def _optimum_available() -> bool:
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


def load_encoder(model: str, backend: str = "torch", file_name: str | None = None, device: str | None = None):
    """A model for ``encode``: SentenceTransformer for "torch", else the exported file.

    Args:
        model: a model folder (or, for "torch", any name ``resolve_model`` knows).
        backend: "torch", "onnx" or "openvino".
        file_name: the exported file inside the folder (default: the int8 export).
        device: torch device for "torch".
    """
    from embshared.models import load_sentence_transformer

    if backend == "torch":
        return load_sentence_transformer(model, device=device)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    file_name = file_name or default_file(backend)
    if backend == "onnx" and _optimum_available():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(model), backend="onnx", model_kwargs={"file_name": file_name})
    return ExportedEncoder(model, backend, file_name)
