"""One pass over a document collection: length-sorted token-budget batches, streamed to disk, resumable, cached.

:class:`CorpusEncoder` embeds a collection as unit float32 vectors, in the collection's order:

- the texts are sorted by tokenized length (longest first, the encoder's own tokenizer and
  ``max_seq_length``) and cut into batches by a token budget: a batch takes as many texts as fit
  ``token_budget // (its longest text's length)``, at least one, so short texts go in large
  batches and long ones in small batches, with little padding either way (an exported encoder pads
  each batch to a multiple of :data:`PAD_MULTIPLE` tokens, so that it sees few distinct shapes);
- the vectors are streamed to disk in shards of ``shard_size`` texts (in sorted order), each
  written atomically; a rerun after a kill skips the shards already written; after each shard the
  C heap's free pages go back to the OS (:func:`embshared.runtime.release_free_memory`);
- the result, ``vectors.npy`` in the :class:`EmbeddingCache` folder of the key (model
  fingerprint, back end + file, max_seq_length, collection hash), is assembled shard by shard
  into a memory-mapped file in the original order (memory stays bounded), renamed into place,
  and returned memory-mapped; the shards are then removed. ``meta.json``, written last, marks
  it complete: a second pass over the same texts with the same model is read, not encoded;
- an adapter model (:mod:`embedding_ft.adapter`) whose base model's vectors of the same texts
  are in the cache gets its vectors from them through its head (:func:`embedding_ft.adapter.apply_head`),
  with no transformer pass;
- ``backend="auto"`` tries the exported files already in the model folder (:data:`embedding_ft.export.FILES`;
  nothing is exported here) on a sample of the collection, keeps those whose vectors pass a parity
  gate against PyTorch (``gate="exact"``: cosine >= 0.9999 for every sample text; ``"approximate"``:
  mean cosine >= 0.99), and uses the fastest of them and PyTorch; PyTorch when none passes. Where
  the device computes in bfloat16 natively (:func:`embshared.runtime.bf16_native`), PyTorch under
  bf16 autocast and OpenVINO's bf16 inference are measured too, under the same gate: on a 2-core
  AMD EPYC (Zen 4) they pass the exact gate (cosine >= 0.99997) at 2.2x PyTorch fp32, while on a
  Xeon with the same flag bf16 was slower than fp32, so it is measured, never assumed.

Nothing is pickled: arrays are ``.npy`` read with ``allow_pickle=False``, metadata is JSON.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embedding_ft import backends
from embshared.files import atomic_write, write_json
from embshared.runtime import bf16_native, release_free_memory

logger = logging.getLogger(__name__)

__all__ = [
    "GATES",
    "CacheKey",
    "CorpusEncoder",
    "CorpusVectors",
    "EmbeddingCache",
    "collection_hash",
    "exported_copy",
]

VECTORS = "vectors.npy"
META = "meta.json"
SHARDS = "shards"
DEFAULT_SHARD_SIZE = 8192
DEFAULT_TOKEN_BUDGET = 16384  # tokens per batch: e.g. 64 texts of 256 tokens, 128 of 128
#: an exported encoder's batches are padded to a multiple of this length, and cut by the budget at that length:
#: at most max_seq_length / 8 full-batch shapes. OpenVINO keeps state for every (batch, length) it has run;
#: on the short tail of the 50k collection (16k texts) this took 120 shapes to 30 and the pass 4% faster
PAD_MULTIPLE = 8
SAMPLE_SIZE = 64  # texts the parity gate of backend="auto" compares on
#: gate -> (minimum cosine of every sample text, minimum mean cosine)
GATES = {"exact": (0.9999, 0.9999), "approximate": (-1.0, 0.99)}
_HEAD_CHUNK = 65_536  # rows through an adapter's head at a time


def collection_hash(texts) -> str:
    """A short hash of the texts in their order."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class CacheKey:
    """What determines a collection's vectors: the model's weights, the back end and file, the token length, the texts."""

    model_fingerprint: str
    backend: str
    file_name: str | None
    max_seq_length: int | None
    collection: str
    prompt_name: str | None = None
    compute_dtype: str = "float32"

    def fields(self) -> dict:
        """The key as stored; float32's leaves ``compute_dtype`` out, so caches made before it existed still match."""
        out = asdict(self)
        if out["compute_dtype"] == "float32":
            del out["compute_dtype"]
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fields(), sort_keys=True).encode()).hexdigest()[:20]


def model_key(
    model: str,
    backend: str,
    file_name: str | None,
    max_seq_length: int | None,
    texts_hash: str,
    prompt_name: str | None = None,
    compute_dtype: str = "float32",
) -> CacheKey:
    """The key of ``model``'s vectors (its fingerprint as :func:`embedding_ft.index.model_identity` computes it)."""
    from embedding_ft.identity import model_identity

    fingerprint = model_identity(str(model), backend, file_name)["model_fingerprint"]
    return CacheKey(fingerprint, backend, file_name, max_seq_length, texts_hash, prompt_name, compute_dtype)


def exact_backends() -> list[tuple[str, str | None, str]]:
    """(backend, file_name, compute_dtype) of every encoder whose vectors may feed reported figures.

    PyTorch and the fp32 exports; in bfloat16 too, since ``auto`` chooses bf16 under the exact
    gate only where it measured cosine >= 0.9999 to fp32 on the collection.
    """
    from embedding_ft.export import FILES

    fp32 = [("torch", None)] + [(b, f) for (b, q), f in FILES.items() if q == "none"]
    return [(b, f, "float32") for b, f in fp32] + [(b, f, "bfloat16") for b, f in fp32 if b != "onnx"]


class EmbeddingCache:
    """Completed vectors of collections, one folder per :class:`CacheKey`: ``vectors.npy`` + ``meta.json``.

    A folder without ``meta.json`` is a pass in progress (its ``shards/``).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def folder(self, key: CacheKey) -> Path:
        return self.root / key.digest()

    def load(self, key: CacheKey) -> np.ndarray | None:
        """The completed (n, dim) float32 vectors of ``key``, memory-mapped, else None."""
        folder = self.folder(key)
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            if meta.get("key") != key.fields():
                return None
            vectors = np.load(folder / VECTORS, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape != (meta["n"], meta["dim"]):
            logger.warning("%s: damaged cached vectors, encoding again", folder)
            return None
        return vectors

    def __contains__(self, key: CacheKey) -> bool:
        return self.load(key) is not None

    def lookup(
        self, model: str, texts, max_seq_length: int | None, prompt_name: str | None = None
    ) -> np.ndarray | None:
        """``model``'s completed vectors of ``texts`` on an exact back end (:func:`exact_backends`), else None.

        For readers that did not encode (benchmarks judging a run's models): the key is rebuilt
        for each exact back end in turn, nothing is searched for by file name.
        """
        first = model_key(model, "torch", None, max_seq_length, collection_hash(texts), prompt_name)
        for backend, file_name, dtype in exact_backends():  # the fingerprint is the weights', whatever runs them
            vectors = self.load(replace(first, backend=backend, file_name=file_name, compute_dtype=dtype))
            if vectors is not None:
                return vectors
        return None


class CorpusEncoder:
    """Encodes a collection (see the module docstring).

    Args:
        model: the model folder or name (:func:`embedding_ft.backends.load_encoder`).
        backend: "torch", "onnx", "openvino" or "auto".
        file_name: the exported file (onnx / openvino; default the int8 export).
        cache: where vectors and shards go; None: a temporary folder removed after the pass (no resume,
            and the vectors are returned in memory, not memory-mapped).
        shard_size: texts per shard (in sorted order).
        token_budget: tokens per batch.
        gate: the parity gate of ``backend="auto"``, "exact" or "approximate".
        encoder: an already loaded encoder for ``model`` (with ``backend``); without a
            ``tokenizer`` attribute each shard is handed to its ``encode`` whole.
        sample_size: the texts the parity gate compares on.
        prompt_name: the model's prompt to encode with (e.g. "document"; None: its default prompt).
        export: ``backend="auto"`` also exports the model to ONNX (fp32, and int8 under the
            approximate gate) once, into ``<cache>/exports/`` (never into the model folder),
            and measures those files too. Needs a cache.
        compute_dtype: "float32" or "bfloat16" (:func:`embedding_ft.backends.load_encoder`); under
            ``backend="auto"`` it is measured and chosen with the back end.
    """

    def __init__(
        self,
        model: str,
        backend: str = "torch",
        file_name: str | None = None,
        cache: EmbeddingCache | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        gate: str = "exact",
        encoder=None,
        sample_size: int = SAMPLE_SIZE,
        prompt_name: str | None = None,
        export: bool = False,
        compute_dtype: str = "float32",
    ):
        if shard_size < 1 or token_budget < 1:
            raise ValueError("shard_size and token_budget must be >= 1")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {sorted(GATES)}, got {gate!r}")
        self.model = str(model)
        self.backend = backend
        self.file_name = file_name
        self.cache = cache
        self.shard_size = shard_size
        self.token_budget = token_budget
        self.gate = gate
        self.sample_size = sample_size
        self.prompt_name = prompt_name
        self.export = export
        self.compute_dtype = getattr(encoder, "compute_dtype", compute_dtype)
        self._encoder = encoder
        self.choice: dict | None = None  # backend="auto": what was measured and chosen
        self.batches: list[int] = []  # the last pass's batch sizes (texts per call)
        self.encoded_shards: list[int] = []  # the last pass's shards encoded (not resumed)

    # -- the encoder --------------------------------------------------------------------------

    @property
    def encoder(self):
        if self._encoder is None:
            if self.backend == "auto":
                raise RuntimeError("backend 'auto' is resolved by encode()")
            self._encoder = backends.load_encoder(
                self.source_folder(), self.backend, self.file_name, compute_dtype=self.compute_dtype
            )
        return self._encoder

    def use(self, backend: str, file_name: str | None, compute_dtype: str = "float32") -> None:
        """Encode on ``backend`` / ``file_name`` (e.g. another process's ``auto`` choice): loaded on first use,
        from the model folder or, for a file only exported into the cache, from there."""
        chosen = (backend, file_name, compute_dtype)
        if chosen != (self.backend, self.file_name, self.compute_dtype) or self.backend == "auto":
            self.backend, self.file_name, self.compute_dtype, self._encoder = *chosen, None

    def source_folder(self) -> str:
        """The folder the encoder loads from: the model folder, or its export in the cache when only that holds the file."""
        file_name = self.file_name
        if file_name is None or self.cache is None:
            return self.model
        from embedding_ft.identity import model_identity
        from embshared.models import resolve_model

        folder = Path(resolve_model(self.model))
        if (folder / file_name).is_file():
            return self.model
        exported = self.cache.root / "exports" / model_identity(str(folder), "onnx", None)["model_fingerprint"]
        return str(exported) if (exported / file_name).is_file() else self.model

    def _resolve_auto(self, texts: list[str]) -> None:
        """backend="auto": the fastest back end whose vectors pass the gate on a sample; torch when none does."""
        rows = np.linspace(0, len(texts) - 1, min(self.sample_size, len(texts))).round().astype(int)
        sample = [texts[i] for i in dict.fromkeys(rows.tolist())]
        torch_encoder = self._encoder or backends.load_encoder(self.model, "torch", None)
        if isinstance(torch_encoder, backends.AutocastEncoder):  # the reference is fp32
            torch_encoder = torch_encoder.model
        reference, torch_seconds = _timed(torch_encoder, sample, self.prompt_name)
        measured = [self._measurement("torch", None, "float32", torch_seconds, None, None)]
        min_each, min_mean = GATES[self.gate]
        reference_length = getattr(torch_encoder, "max_seq_length", None)
        for backend, file_name, where, dtype in self._candidates(torch_encoder):
            try:
                if backend == "torch":
                    candidate = backends.AutocastEncoder(torch_encoder)
                else:
                    candidate = backends.load_encoder(str(where), backend, file_name, compute_dtype=dtype)
                    if reference_length:  # the length the caller set, not the folder's
                        candidate.max_seq_length = reference_length
                vectors, seconds = _timed(candidate, sample, self.prompt_name)
            except Exception as exc:  # a file that does not load or run is not a candidate
                logger.warning("backend auto: %s %s %s not usable (%s)", backend, file_name or "", dtype, exc)
                continue
            if vectors.shape != reference.shape:
                cosines = np.full(len(sample), -1.0)
            else:
                cosines = np.sum(_unit(vectors) * _unit(reference), axis=1)
            passed = bool(cosines.min() >= min_each and cosines.mean() >= min_mean)
            measured.append(self._measurement(backend, file_name, dtype, seconds, cosines, where, passed))
            del candidate  # measured, then released: each runtime keeps its buffers while it lives
            gc.collect()
        best = min((m for m in measured if m["passed"]), key=lambda m: m["seconds"])
        for m in measured:
            logger.info(
                "backend auto (gate %s, %d texts): %s %s %s %.3f s%s%s",
                self.gate,
                len(sample),
                m["backend"],
                m["file_name"] or "",
                m["compute_dtype"],
                m["seconds"],
                f", cosine min {m['min_cosine']:.6f} mean {m['mean_cosine']:.6f}" if "min_cosine" in m else "",
                "" if m["passed"] else " (fails the gate)",
            )
        logger.info("backend auto: using %s %s %s", best["backend"], best["file_name"] or "", best["compute_dtype"])
        self.backend, self.file_name, self.compute_dtype = best["backend"], best["file_name"], best["compute_dtype"]
        if self.backend == "torch":
            bf16 = self.compute_dtype == "bfloat16"
            self._encoder = backends.AutocastEncoder(torch_encoder) if bf16 else torch_encoder
        else:  # loaded again: only the chosen runtime stays in memory
            del torch_encoder
            self._encoder = None
            gc.collect()
            self._encoder = backends.load_encoder(
                best["where"], self.backend, self.file_name, compute_dtype=self.compute_dtype
            )
            if reference_length:
                self._encoder.max_seq_length = reference_length
        self.choice = {"gate": self.gate, "sample": len(sample), "measured": measured, "chosen": best}

    def _candidates(self, torch_encoder) -> list[tuple[str, str | None, Path | None, str]]:
        """(backend, file_name, folder, compute_dtype) to measure against PyTorch fp32: the model folder's exports
        (and, with ``export``, the cache's), in fp32 and, where the device computes it natively, bf16."""
        from embedding_ft.export import FILES
        from embshared.models import resolve_model

        folder = Path(resolve_model(self.model)).expanduser()
        files = [(b, f, folder) for (b, _), f in FILES.items() if folder.is_dir() and (folder / f).is_file()]
        if self.export and self.cache is not None and folder.is_dir():
            exported = exported_copy(folder, self.cache.root / "exports", self.gate)
            have = {(b, f) for b, f, _ in files}  # the model folder's own files first
            if exported is not None:
                files += [
                    (b, f, exported) for (b, _), f in FILES.items() if (b, f) not in have and (exported / f).is_file()
                ]
        out = [(b, f, where, "float32") for b, f, where in files]
        device = getattr(getattr(torch_encoder, "device", None), "type", "cpu")
        if bf16_native(device):
            out.append(("torch", None, None, "bfloat16"))
        if bf16_native("cpu"):  # OpenVINO runs on the CPU
            out += [(b, f, where, "bfloat16") for b, f, where in files if b == "openvino"]
        return out

    @staticmethod
    def _measurement(backend, file_name, dtype, seconds, cosines, where, passed=True) -> dict:
        out = {"backend": backend, "file_name": file_name, "compute_dtype": dtype, "seconds": seconds, "passed": passed}
        if cosines is not None:
            out |= {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean()), "where": str(where)}
        return out

    def resolve_backend(self, texts) -> tuple[str, str | None, str]:
        """(backend, file_name, compute_dtype) that will encode ``texts``: "auto" is resolved here (once)."""
        if self.backend == "auto":
            texts = texts if isinstance(texts, list) else list(texts)
            if not texts or self._adapter_key(texts) is not None:
                # nothing to measure on, or an adapter over cached base vectors (no forward pass at all)
                self.backend, self.file_name, self.compute_dtype = "torch", None, "float32"
            else:
                self._resolve_auto(texts)
        return self.backend, self.file_name, self.compute_dtype

    # -- the pass -----------------------------------------------------------------------------

    def key(self, texts_hash: str) -> CacheKey:
        return model_key(
            self.model,
            self.backend,
            self.file_name,
            getattr(self.encoder, "max_seq_length", None),
            texts_hash,
            self.prompt_name,
            self.compute_dtype,
        )

    def encode(self, texts, show_progress: bool = True) -> np.ndarray:
        """(n, dim) unit float32 vectors of ``texts`` in their order, memory-mapped from the cache folder."""
        texts = list(texts)
        self.batches, self.encoded_shards = [], []
        self.resolve_backend(texts)
        if not texts:
            return np.zeros((0, _dimension(self.encoder)), dtype=np.float32)
        texts_hash = collection_hash(texts)
        key = self.key(texts_hash)
        if self.cache is None:
            with _scratch() as root:
                vectors = self._run(EmbeddingCache(root), key, texts, show_progress)
                return np.array(vectors)  # the scratch folder goes: a copy in memory
        return self._run(self.cache, key, texts, show_progress)

    def _run(self, cache: EmbeddingCache, key: CacheKey, texts: list[str], show_progress: bool) -> np.ndarray:
        done = cache.load(key)
        if done is not None:
            logger.info("%d vectors read from the cache %s", len(texts), cache.folder(key))
            return done
        folder = cache.folder(key)
        base = self._adapter_base(cache, key, texts) if self.backend == "torch" else None
        if base is not None:
            return self._from_base(folder, key, base, show_progress)
        order, lengths = self._sorted(texts, show_progress and len(texts) > 4096)
        shard_dir = folder / f"{SHARDS}-{self.shard_size}"
        shard_dir.mkdir(parents=True, exist_ok=True)
        n_shards = -(-len(texts) // self.shard_size)
        done_shards = {i for i in range(n_shards) if _shard_ok(shard_dir, i, self._shard_len(i, len(texts)))}
        if done_shards:
            logger.info("%s: resuming, %d of %d shards already encoded", folder, len(done_shards), n_shards)
        tokenizer = getattr(self.encoder, "tokenizer", None)
        padding = {"pad_to_multiple_of": PAD_MULTIPLE} if isinstance(self.encoder, backends.ExportedEncoder) else {}
        if padding:
            lengths = -(-lengths // PAD_MULTIPLE) * PAD_MULTIPLE  # the lengths the batches will have
        with tqdm(
            total=len(texts),
            unit="doc",
            desc="encoding",
            disable=not show_progress,
            initial=sum(self._shard_len(i, len(texts)) for i in done_shards),
        ) as bar:
            for shard in range(n_shards):
                if shard in done_shards:
                    continue
                start = shard * self.shard_size
                rows = order[start : start + self.shard_size]
                if tokenizer is None:  # the encoder batches itself
                    spans = [(0, len(rows))]
                else:
                    spans = _budget_batches(lengths[rows], self.token_budget)
                parts = []
                for lo, hi in spans:
                    batch = [texts[i] for i in rows[lo:hi]]
                    self.batches.append(len(batch))
                    vectors = self.encoder.encode(
                        batch,
                        batch_size=len(batch),
                        normalize_embeddings=True,
                        show_progress_bar=False,
                        **({"prompt_name": self.prompt_name} if self.prompt_name else {}),
                        **padding,
                    )
                    parts.append(np.asarray(vectors, dtype=np.float32))
                    bar.update(len(batch))
                _save_npy(shard_dir / _shard_name(shard), np.concatenate(parts))  # as the encoder gave them
                self.encoded_shards.append(shard)
                release_free_memory()  # else the C heap keeps every shard's freed batches: see its docstring
        # assembled in the original order, a shard at a time, into a memory-mapped file
        dim = int(np.load(shard_dir / _shard_name(0), mmap_mode="r", allow_pickle=False).shape[1])
        tmp = folder / f".{VECTORS}.tmp"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), dim))
        for shard in range(n_shards):
            start = shard * self.shard_size
            out[order[start : start + self.shard_size]] = np.load(shard_dir / _shard_name(shard), allow_pickle=False)
        out.flush()
        del out
        return self._finish(folder, key, tmp, len(texts), dim, shard_dir)

    def _finish(self, folder: Path, key: CacheKey, tmp: Path, n: int, dim: int, shard_dir: Path | None) -> np.ndarray:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, folder / VECTORS)
        meta = {"key": key.fields(), "model": self.model, "n": n, "dim": dim, "format": 1}
        write_json(folder / META, meta)
        if shard_dir is not None:
            shutil.rmtree(shard_dir, ignore_errors=True)
        return np.load(folder / VECTORS, mmap_mode="r", allow_pickle=False)

    def _shard_len(self, shard: int, n: int) -> int:
        return min(self.shard_size, n - shard * self.shard_size)

    def _sorted(self, texts: list[str], show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(order, lengths): positions longest first (stable) and each text's length in tokens (truncated)."""
        tokenizer = getattr(self.encoder, "tokenizer", None)
        if tokenizer is None:
            lengths = np.array([len(t) for t in texts], dtype=np.int64)
        else:
            limit = getattr(self.encoder, "max_seq_length", None)
            lengths = np.empty(len(texts), dtype=np.int64)
            with tqdm(total=len(texts), unit="doc", desc="measuring lengths", disable=not show_progress) as bar:
                for start in range(0, len(texts), 4096):  # tokenized a chunk at a time: bounded memory
                    chunk = texts[start : start + 4096]
                    ids = tokenizer(chunk, add_special_tokens=True, truncation=limit is not None, max_length=limit)
                    lengths[start : start + len(chunk)] = [len(x) for x in ids["input_ids"]]
                    bar.update(len(chunk))
        return np.argsort(-lengths, kind="stable"), lengths

    # -- adapters -----------------------------------------------------------------------------

    def _adapter_base_key(self, texts_hash: str, max_seq_length: int | None, cache: EmbeddingCache) -> CacheKey | None:
        """The key of the adapter's base model's vectors of these texts in ``cache``, on any exact back end."""
        from embedding_ft.adapter import AdapterInfo, is_adapter

        if not is_adapter(self.model):
            return None
        info = AdapterInfo.load(self.model)
        if info is None or not info.base or not info.base.get("model"):
            return None
        try:
            first = model_key(info.base["model"], "torch", None, max_seq_length, texts_hash)
        except Exception as exc:  # the base is gone: no shortcut
            logger.info("%s: the adapter's base %s is not available (%s)", self.model, info.base["model"], exc)
            return None
        if info.base.get("model_fingerprint") not in (None, first.model_fingerprint):
            logger.info("%s: its base %s has changed since training: no shortcut", self.model, info.base["model"])
            return None
        for backend, file_name, dtype in exact_backends():  # the fingerprint is the weights', whatever runs them
            base = replace(first, backend=backend, file_name=file_name, compute_dtype=dtype)
            if base in cache:
                return base
        return None

    def _adapter_key(self, texts: list[str]) -> CacheKey | None:
        """backend="auto": the cached base vectors' key when the adapter shortcut applies (torch encoder loaded)."""
        from embedding_ft.adapter import is_adapter

        if self.cache is None or not is_adapter(self.model):
            return None
        if self._encoder is None:
            self._encoder = backends.load_encoder(self.model, "torch", None)
        max_len = getattr(self._encoder, "max_seq_length", None)
        return self._adapter_base_key(collection_hash(texts), max_len, self.cache)

    def _adapter_base(self, cache: EmbeddingCache, key: CacheKey, texts: list[str]) -> np.ndarray | None:
        base = self._adapter_base_key(key.collection, key.max_seq_length, cache)
        return None if base is None else cache.load(base)

    def _from_base(self, folder: Path, key: CacheKey, base: np.ndarray, show_progress: bool) -> np.ndarray:
        """The adapter's vectors: its head on the cached base vectors, a chunk at a time."""
        from embedding_ft.adapter import apply_head

        logger.info("%s: adapter vectors from its base model's cached vectors (no transformer pass)", self.model)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{VECTORS}.tmp"
        out = None
        with tqdm(total=len(base), unit="doc", desc="adapter head", disable=not show_progress) as bar:
            for start in range(0, len(base), _HEAD_CHUNK):
                vectors = apply_head(self.model, np.array(base[start : start + _HEAD_CHUNK]))  # a writable copy
                if out is None:
                    out = np.lib.format.open_memmap(
                        tmp, mode="w+", dtype=np.float32, shape=(len(base), vectors.shape[1])
                    )
                out[start : start + len(vectors)] = vectors
                bar.update(len(vectors))
        dim = out.shape[1]
        out.flush()
        del out
        return self._finish(folder, key, tmp, len(base), dim, None)


class CorpusVectors:
    """One model's vectors of one collection (a run's mining texts), encoded once through a :class:`CorpusEncoder`.

    Mining, the false-negative audit, the base model's evaluation and the adapter's head table
    all read the base model's document vectors from here, by text; it is handed to each of
    them, and the encoder's cache makes a rerun (or a resumed run) read instead of encode.
    Texts outside the collection are encoded on demand, not cached.
    """

    def __init__(self, encoder: CorpusEncoder, texts: list[str], show_progress: bool = True):
        self.encoder = encoder
        self.texts = list(texts)
        self.show_progress = show_progress
        self._row = {t: i for i, t in reversed(list(enumerate(self.texts)))}  # the first row of a repeated text
        self._vectors: np.ndarray | None = None

    def all(self) -> np.ndarray:
        """(n, dim) unit float32 vectors of the collection, in its order (memory-mapped from the cache)."""
        if self._vectors is None:
            self._vectors = self.encoder.encode(self.texts, self.show_progress)
        return self._vectors

    def of(self, texts) -> np.ndarray:
        """(len(texts), dim) vectors of ``texts`` in their order: rows of the collection, others encoded now."""
        texts = list(texts)
        rows = [self._row.get(t, -1) for t in texts]
        out = np.empty((len(texts), self.all().shape[1]), dtype=np.float32)
        known = [i for i, r in enumerate(rows) if r >= 0]
        if known:
            picked = np.array([rows[i] for i in known])
            order = np.argsort(picked)  # rows in increasing order: sequential reads of the memory-map
            out[np.array(known)[order]] = self._vectors[picked[order]]
        missing = [i for i, r in enumerate(rows) if r < 0]
        if missing:
            prompt = {"prompt_name": self.encoder.prompt_name} if self.encoder.prompt_name else {}
            out[missing] = self.encoder.encoder.encode(
                [texts[i] for i in missing], normalize_embeddings=True, show_progress_bar=False, **prompt
            )
        return out


# ---------------------------------------------------------------------------------------------


def exported_copy(folder: Path, root: Path, gate: str) -> Path | None:
    """A copy of the model ``folder`` with its exports, made once under ``root`` (None if it cannot be exported).

    ONNX and OpenVINO fp32 always (on MiniLM, abstracts: 1.23x and 1.95x PyTorch, cosine 1.0000,
    ``make bench-export``); their int8 files too under the approximate gate (2.07x and 3.47x, mean
    cosine ~0.99: they never pass the exact gate). The copy is made beside its final name and
    renamed into place, so a killed export leaves nothing that looks finished.
    """
    from embedding_ft.export import FILES, export_model
    from embedding_ft.identity import model_identity
    from embshared.errors import UserError

    quants = ["none"] + (["int8"] if gate == "approximate" else [])
    wanted = [(backend, quant) for quant in quants for backend in ("onnx", "openvino")]
    target = root / model_identity(str(folder), "onnx", None)["model_fingerprint"]
    if all((target / FILES[w]).is_file() for w in wanted):
        return target
    tmp = root / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    try:
        if target.is_dir():  # an earlier export without this quantisation: start from it
            shutil.copytree(target, tmp)
        else:
            shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("onnx", "openvino", "checkpoint-*"))
        for backend, quant in wanted:
            if not (tmp / FILES[(backend, quant)]).is_file():
                export_model(tmp, backend, quant)
    except (UserError, OSError, RuntimeError, ValueError) as exc:  # a model the runner cannot run: torch only
        logger.warning("backend auto: %s not exported (%s)", folder, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    logger.info(
        "backend auto: exported %s (%s) in %.1f s",
        folder,
        ", ".join(f"{b} {q}" for b, q in wanted),
        time.perf_counter() - start,
    )
    return target


def _budget_batches(lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """(start, end) spans over ``lengths`` (longest first): each as long as budget // its longest length allows, >= 1."""
    spans, start = [], 0
    while start < len(lengths):
        size = max(1, budget // max(int(lengths[start]), 1))
        spans.append((start, min(start + size, len(lengths))))
        start += size
    return spans


def _shard_name(shard: int) -> str:
    return f"shard_{shard:06d}.npy"


def _shard_ok(shard_dir: Path, shard: int, rows: int) -> bool:
    try:
        array = np.load(shard_dir / _shard_name(shard), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return array.dtype == np.float32 and array.ndim == 2 and array.shape[0] == rows


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` atomically (a temporary file renamed over ``path``)."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def _timed(encoder, texts: list[str], prompt_name: str | None = None) -> tuple[np.ndarray, float]:
    """(vectors, seconds) of ``texts``, after a short warm-up."""
    prompt = {"prompt_name": prompt_name} if prompt_name else {}
    encoder.encode(texts[:4], batch_size=4, normalize_embeddings=True, show_progress_bar=False, **prompt)
    start = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False, **prompt)
    return np.asarray(vectors, dtype=np.float32), time.perf_counter() - start


def _dimension(encoder) -> int:
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        if hasattr(encoder, name):
            return int(getattr(encoder, name)())
    return 0


@contextlib.contextmanager
def _scratch():
    import tempfile

    root = tempfile.mkdtemp(prefix="corpus_encoder.")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
