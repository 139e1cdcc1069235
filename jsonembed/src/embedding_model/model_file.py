"""Model files: tensors plus the config and vocabulary as plain data.

Two formats, chosen by the file name:

- ``*.safetensors``: the tensors, with the config and vocabulary as JSON strings in the
  safetensors metadata.
- anything else (the guide's ``my_model.pt``): a ``torch.save`` dict holding only tensors,
  strings and lists, read back with ``torch.load(..., weights_only=True)``; no pickled code
  is ever executed.

Both carry ``format: jsonembed-char-cnn`` and a version, so a file from another program is
recognised and refused with a clear message.

The tensors are the character CNN's alone (``CharCNNEncoder.state_dict()``), also when it was
distilled from a teacher: the teacher's weights never enter the file, nor does the projection
that compared the two during training (:class:`~embedding_model.losses.DistillationHead`). The
config names the teacher (a path or a packaged model's name) as a record of how the model was
trained; a file written before distillation existed has no ``teacher`` key and reads as
``teacher: null``, which is how it was trained.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from embedding_model.config import JsonEmbedConfig
from embedding_model.model import CharCNNEncoder, build_encoder
from embedding_model.vocab import CharVocab
from embshared.config import ConfigError, load_config
from embshared.errors import UserError
from embshared.files import atomic_write

FORMAT = "jsonembed-char-cnn"
FORMAT_VERSION = 1


class ModelFileError(UserError):
    """A file that is not a jsonembed model (or a damaged one)."""


def save_model(
    path: str | os.PathLike, encoder: CharCNNEncoder, vocab: CharVocab, cfg: JsonEmbedConfig, info: dict | None = None
) -> Path:
    """Write the encoder's weights, config and vocabulary to ``path`` atomically.

    Args:
        path: the model file; ``.safetensors`` selects safetensors, anything else torch.save.
        encoder: the trained encoder.
        vocab: its character vocabulary.
        cfg: the resolved config it was built and trained with.
        info: small JSON-able facts to keep with the model (training summary).
    """
    from embshared.config import config_to_dict

    path = Path(path)
    tensors = {name: t.detach().cpu().contiguous() for name, t in encoder.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config_to_dict(cfg)),
        "vocab": json.dumps(vocab.to_dict(), ensure_ascii=False),
        "info": json.dumps(info or {}),
    }
    with atomic_write(path, "wb") as handle:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import save

            handle.write(save(tensors, metadata=meta))
        else:
            torch.save({**meta, "state_dict": tensors}, handle)
    return path


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) from either format; raises ModelFileError for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK"):  # torch.save writes a zip archive
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: not a jsonembed model file (torch.load refused it: {first})") from None
        if not isinstance(data, dict) or "state_dict" not in data:
            raise ModelFileError(f"{path}: not a jsonembed model file (a torch file without config and vocabulary)")
        tensors = data.pop("state_dict")
        return {k: v for k, v in data.items() if isinstance(v, str)}, tensors
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # pragma: no cover - safetensors is a dependency
        raise ModelFileError(f"{path}: not a torch model file and safetensors is not installed") from None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: not a jsonembed model file (neither a torch nor a safetensors file)") from None
    return meta, tensors


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[CharCNNEncoder, CharVocab, JsonEmbedConfig, dict]:
    """Read a model file written by :func:`save_model`.

    Returns:
        (encoder in eval mode on ``device``, vocabulary, config, info).

    Raises:
        ModelFileError: missing file, another program's file, or a damaged one.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file" if not path.exists() else f"{path}: is a folder")
    meta, tensors = _read(path)
    if meta.get("format") != FORMAT:
        found = f"format {meta['format']!r}" if "format" in meta else "no jsonembed format tag"
        raise ModelFileError(f"{path}: not a jsonembed model file ({found})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ModelFileError(
            f"{path}: jsonembed model format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}"
        )
    try:
        stored = json.loads(meta["config"])
        if isinstance(stored, dict):
            stored.setdefault("teacher", None)  # written before distillation: trained without a teacher
        cfg = load_config(JsonEmbedConfig, data=stored)
        vocab = CharVocab.from_dict(json.loads(meta["vocab"]))
        info: dict[str, Any] = json.loads(meta.get("info") or "{}")
    except (KeyError, ValueError, ConfigError) as exc:
        raise ModelFileError(f"{path}: damaged jsonembed model file ({exc})") from None
    encoder = build_encoder(cfg, len(vocab))
    try:
        encoder.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFileError(f"{path}: weights do not match the stored config ({first})") from None
    encoder.eval()
    return encoder.to(device), vocab, cfg, info
