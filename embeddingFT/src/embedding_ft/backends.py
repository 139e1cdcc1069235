"""Load a model with a back end: PyTorch (``SentenceTransformer``), ONNX Runtime or OpenVINO.

:func:`load_encoder` returns an object with the part of ``SentenceTransformer.encode`` the
workspace uses (texts, batch_size, normalize_embeddings, show_progress_bar), so index,
search, inference and evaluation take ``--backend`` without caring which one runs.

Where optimum is installed, sentence-transformers loads the exported files itself
(``SentenceTransformer(path, backend=..., model_kwargs={"file_name": ...})``) and that is
used; otherwise (as on the pinned stack, see :mod:`embedding_ft.export`) the file runs in
ONNX Runtime / OpenVINO here, and what the model's modules do around the transformer is
computed as sentence-transformers 6.2 computes it (:func:`embedding_ft.export.read_modules`
reads it; anything it cannot reproduce exactly is refused there, at export and at load):
the Transformer module's tokenization (max_seq_length, do_lower_case) and the model's
prompts, every Pooling mode (cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken,
or several concatenated; include_prompt; left or right padding), Dense modules (torch.nn
Identity / Tanh / GELU / ReLU / Sigmoid / SiLU, residual), Normalize, and truncate_dim.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embedding_ft.export import (
    FILES,
    DenseStep,
    NormalizeStep,
    PoolingStep,
    Step,
    TransformerStep,
    TruncateStep,
    check_model_folder,
    read_modules,
)
from embshared.errors import UserError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "openvino")


def default_file(backend: str, quant: str = "int8") -> str:
    return FILES[(backend, quant)]


class ExportedEncoder:
    """An exported transformer + the folder's tokenizer and modules, with ``encode`` like SentenceTransformer's.

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
        self.folder = check_model_folder(folder)
        self.backend = backend
        self.file_name = file_name
        self.compute_dtype = "bfloat16" if backend == "openvino" and precision == "bf16" else "float32"
        path = self.folder / file_name
        if not path.is_file():
            raise UserError(f"{path}: not exported yet (make export-embed MODEL={folder} BACKEND={backend})")
        steps = read_modules(self.folder)
        self.transformer: TransformerStep = steps[0]
        self.steps: list[Step] = steps[1:]
        self.tokenizer = _load_tokenizer(self.transformer)
        self.max_seq_length = self.tokenizer.model_max_length
        self.prompts = dict(self.transformer.prompts)
        self.default_prompt_name = self.transformer.default_prompt_name
        self._prompt_lengths: dict[str, int] = {}
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

    def _tokenize(self, texts: list[str], pad_to_multiple_of: int | None = None):
        if pad_to_multiple_of and (self.max_seq_length % pad_to_multiple_of or self.tokenizer.padding_side != "right"):
            # past max_seq_length it could pass the model's last position; on the left, pads shift the
            # position ids of the real tokens and so change their vectors
            pad_to_multiple_of = None
        return self.tokenizer(
            texts,
            padding=True,
            truncation="longest_first",
            max_length=self.max_seq_length,
            return_tensors="np",
            pad_to_multiple_of=pad_to_multiple_of,
        )

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        """As ``SentenceTransformer.encode``: ``prompt``, else ``prompts[prompt_name]``, else the default prompt."""
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise UserError(f"prompt name {prompt_name!r} is not one of the model's prompts {list(self.prompts)}")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None

    def _prompt_length(self, prompt: str) -> int:
        """The prompt's tokens, without a trailing special token (as the Transformer module counts them)."""
        if prompt not in self._prompt_lengths:
            ids = self._tokenize([prompt])["input_ids"][0]
            self._prompt_lengths[prompt] = len(ids) - int(int(ids[-1]) in set(self.tokenizer.all_special_ids))
        return self._prompt_lengths[prompt]

    def encode(
        self,
        texts,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        prompt_name: str | None = None,
        prompt: str | None = None,
        pad_to_multiple_of: int | None = None,
        **_ignored,
    ) -> np.ndarray:
        """(n, dim) float32 embeddings, computed as the model's modules compute them.

        ``pad_to_multiple_of``: pad each batch's length up to a multiple of it, when the tokenizer pads on the
        right and ``max_seq_length`` is a multiple of it. The vectors do not change (pads are masked); the
        runtime sees fewer distinct shapes, and OpenVINO keeps state for every shape it has run
        (:data:`embedding_ft.corpus_encoder.PAD_MULTIPLE`).
        """
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        prompt = self._resolve_prompt(prompt, prompt_name)
        prompt_length = self._prompt_length(prompt) if prompt else None
        # sorted by length so that each batch pads little, with SentenceTransformer.encode's own sort: the same
        # batches, hence the same padding (which changes the vectors where the tokenizer pads on the left)
        order = np.argsort([-len(t) for t in texts])
        out = np.zeros((len(texts), 0), dtype=np.float32)
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", disable=not show_progress_bar):
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = self._tokenize([prompt + t for t in batch] if prompt else batch, pad_to_multiple_of)
            feeds = {name: enc[name].astype(np.int64) for name in self._names if name in enc}
            if "token_type_ids" in self._names and "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            hidden = np.asarray(self._run(feeds), dtype=np.float32)  # (batch, seq, hidden)
            chunks.append(run_steps(self.steps, hidden, enc["attention_mask"], prompt_length))
        if chunks:
            pooled = np.concatenate(chunks)
            out = np.empty_like(pooled)
            out[order] = pooled
        if normalize_embeddings:
            out = _l2_normalize(out)
        return out[0] if single else out


def _load_tokenizer(step: TransformerStep):
    """The tokenizer as the Transformer module sets it up: its kwargs, ``max_seq_length`` (else the saved
    ``model_max_length`` capped at ``max_position_embeddings``) and ``do_lower_case``."""
    from transformers import AutoTokenizer

    kwargs = dict(step.tokenizer_kwargs)
    if step.max_seq_length is not None and "model_max_length" not in kwargs:
        kwargs["model_max_length"] = step.max_seq_length
    tokenizer = AutoTokenizer.from_pretrained(str(step.path), **kwargs)
    if "model_max_length" not in kwargs and step.max_position_embeddings is not None:
        tokenizer.model_max_length = min(tokenizer.model_max_length, step.max_position_embeddings)
    if step.do_lower_case:
        if tokenizer.is_fast:
            from tokenizers.normalizers import Lowercase
            from tokenizers.normalizers import Sequence as NormalizerSequence

            normalizer = tokenizer.backend_tokenizer.normalizer
            members = list(normalizer) if isinstance(normalizer, NormalizerSequence) else [normalizer]
            if not any(isinstance(n, Lowercase) for n in members):
                tokenizer.backend_tokenizer.normalizer = NormalizerSequence(
                    [Lowercase(), *(n for n in members if n is not None)]
                )
        else:
            try:
                tokenizer.do_lower_case = True
            except AttributeError:
                tokenizer.basic_tokenizer.do_lower_case = True
    return tokenizer


def run_steps(steps: list[Step], hidden: np.ndarray, mask: np.ndarray, prompt_length: int | None = None) -> np.ndarray:
    """The sentence embeddings of one batch: the modules after the transformer, on its (batch, seq, hidden)
    output and the (batch, seq) attention mask, each as sentence-transformers 6.2 computes it."""
    features = {"token_embeddings": hidden}
    for step in steps:
        if isinstance(step, PoolingStep):
            features["sentence_embedding"] = _pool(
                features["token_embeddings"], mask, step.modes, None if step.include_prompt else prompt_length
            )
        elif isinstance(step, DenseStep):
            features[step.output_name] = _dense(step, features[step.input_name])
        elif isinstance(step, NormalizeStep):
            if step.input_name in features:
                features[step.output_name] = _l2_normalize(features[step.input_name])
        elif isinstance(step, TruncateStep):
            features["sentence_embedding"] = features["sentence_embedding"][..., : step.dim]
        else:
            raise TypeError(f"not a step the runner computes: {step!r}")
    return np.ascontiguousarray(features["sentence_embedding"], dtype=np.float32)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.normalize(x, dim=-1): x / max(||x||, 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: tuple[str, ...], prompt_length: int | None) -> np.ndarray:
    """``Pooling._forward_padded``: each mode's (batch, hidden) vectors, concatenated in ``modes``' order.

    ``prompt_length`` (the prompt is excluded: include_prompt=False) zeroes the mask before each row's first
    ``leading pads + prompt_length`` positions. With m the mask so made, T the padded length and p the row's
    leading pads (``argmax`` of the original mask, 0 when padded on the right):
    cls = h[argmax m]; max = max over m of h; mean = sum(m h) / max(sum m, 1e-9);
    mean_sqrt_len_tokens = sum(m h) / sqrt(max(sum m, 1e-9)); weightedmean with w_t = m_t (t + 1 - p):
    sum(w h) / max(sum w, 1e-9); lasttoken = m_j h_j at the last j with m_j = 1 (0 when there is none).
    """
    batch, seq, _ = hidden.shape
    original = np.asarray(mask).astype(np.float32)  # (batch, seq)
    leading = original.argmax(axis=1)  # pads before the first token (left padding), else 0
    m = original
    if prompt_length:
        positions = np.arange(seq)[None, :]
        m = np.where(positions < (leading + prompt_length)[:, None], np.float32(0), original)
    rows = np.arange(batch)
    out = []
    mean_sum = count = None
    for mode in modes:
        if mode == "cls":
            out.append(hidden[rows, m.argmax(axis=1)])
        elif mode == "max":
            out.append(np.where(m[..., None] > 0, hidden, np.float32(-np.inf)).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            if mean_sum is None:
                mean_sum = np.matmul(m[:, None, :], hidden)[:, 0]  # (batch, hidden)
                count = np.maximum(m.sum(axis=1, keepdims=True), np.float32(1e-9))
            out.append(mean_sum / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "weightedmean":
            weights = m * (np.arange(1, seq + 1, dtype=np.float32)[None, :] - leading[:, None].astype(np.float32))
            total = np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
            out.append(np.matmul(weights[:, None, :], hidden)[:, 0] / total)
        elif mode == "lasttoken":
            flipped = m[:, ::-1]
            index = np.where(flipped.max(axis=1) == 0, seq - 1, flipped.argmax(axis=1))
            last = seq - index - 1
            out.append(hidden[rows, last] * m[rows, last][:, None])
        else:  # read_modules refuses other modes
            raise ValueError(f"unknown pooling mode {mode!r}")
    return out[0] if len(out) == 1 else np.concatenate(out, axis=-1)


def _dense(step: DenseStep, x: np.ndarray) -> np.ndarray:
    """``Dense.forward``: activation(linear(x)) [+ x, or + residual(x)], in torch as sentence-transformers runs it."""
    import torch

    with torch.inference_mode():
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        out = getattr(torch.nn, step.activation)()(torch.nn.functional.linear(inputs, step.weight, step.bias))
        if step.use_residual:
            out = out + (inputs if step.residual is None else torch.nn.functional.linear(inputs, step.residual))
        return out.numpy()


def _optimum_available() -> bool:
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


COMPUTE_DTYPES = ("float32", "bfloat16")
_OPENVINO_PRECISION = {"float32": "f32", "bfloat16": "bf16"}


class AutocastEncoder:
    """A SentenceTransformer whose ``encode`` runs under bfloat16 autocast (every other attribute is the model's).

    Autocast rather than ``model.to(torch.bfloat16)``: the matrix products run in bf16 while
    layer norms, softmax and pooling stay in fp32. On MiniLM and SciFact abstracts its vectors
    have cosine >= 0.99997 to fp32's (AMD EPYC Zen 4, 2 cores, 2.15x faster); whether it is
    faster depends on the CPU, which is why ``backend: auto`` measures it before choosing it.
    """

    compute_dtype = "bfloat16"

    def __init__(self, model):
        object.__setattr__(self, "model", model)

    def encode(self, *args, **kwargs):
        import torch

        device_type = self.model.device.type
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            return self.model.encode(*args, **kwargs)

    def __getattr__(self, name):
        if name == "model":  # not set yet (copy / unpickling build the object without __init__)
            raise AttributeError(name)
        return getattr(self.model, name)

    def __deepcopy__(self, memo):  # the serving engine copies its encoder per worker
        import copy

        return AutocastEncoder(copy.deepcopy(self.model, memo))

    def __setattr__(self, name, value):  # max_seq_length and the like belong to the model
        setattr(self.model, name, value)


def load_encoder(
    model: str,
    backend: str = "torch",
    file_name: str | None = None,
    device: str | None = None,
    compute_dtype: str = "float32",
):
    """A model for ``encode``: SentenceTransformer for "torch", else the exported file.

    Args:
        model: a model folder (or, for "torch", any name ``resolve_model`` knows).
        backend: "torch", "onnx" or "openvino".
        file_name: the exported file inside the folder (default: the int8 export).
        device: torch device for "torch".
        compute_dtype: "float32", or "bfloat16" (torch: autocast; openvino: its bf16 inference
            precision for the float parts; ONNX Runtime has no bf16 CPU kernels and refuses it).
    """
    from embshared.models import load_sentence_transformer

    if compute_dtype not in COMPUTE_DTYPES:
        raise UserError(f"unknown compute dtype {compute_dtype!r} (choose one of {', '.join(COMPUTE_DTYPES)})")
    if backend == "torch":
        loaded = load_sentence_transformer(model, device=device)
        return AutocastEncoder(loaded) if compute_dtype == "bfloat16" else loaded
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    if backend == "onnx" and compute_dtype != "float32":
        raise UserError("the onnx back end computes in float32 only (bfloat16: torch or openvino)")
    file_name = file_name or default_file(backend)
    if backend == "onnx" and _optimum_available():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(model), backend="onnx", model_kwargs={"file_name": file_name})
    return ExportedEncoder(model, backend, file_name, precision=_OPENVINO_PRECISION[compute_dtype])
