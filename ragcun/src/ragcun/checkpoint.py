"""Checkpoints of a GaussianEmbeddingGemma: tensors and a plain config in one ``.pt`` file.

A checkpoint holds only tensors, strings, numbers, lists and dicts, so it is read with
``torch.load(..., weights_only=True)`` (no pickled code runs). Layout::

    {"format": "ragcun.gaussian_embedding", "version": 1,
     "model_config": {...},              # ModelConfig as a dict (architecture + freezing)
     "base_dim": 384,
     "base_weights_included": bool,      # False: head only, the base is config.base_model as shipped
     "model_state_dict": {name: tensor},
     "training": {...}}                  # optional: optimizer/scheduler state for --resume

A head-only checkpoint (frozen, unmodified base) is a few hundred kB instead of 90 MB.
Loading checks every tensor's name and shape against the model built from the config
and names the first mismatch, so a checkpoint of another model shape fails clearly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from embshared.config import ConfigError, config_to_dict, load_config
from embshared.errors import UserError
from embshared.files import atomic_write
from ragcun.model import GaussianEmbeddingGemma, ModelConfig

FORMAT = "ragcun.gaussian_embedding"
VERSION = 1
#: ModelConfig fields that fix tensor shapes or weights; they must agree with the checkpoint.
ARCH_FIELDS = ("base_model", "output_dim", "head_hidden_dim")


class CheckpointError(UserError):
    """A missing, unreadable or incompatible checkpoint."""


def checkpoint_payload(model: GaussianEmbeddingGemma) -> dict[str, Any]:
    """The model part of a checkpoint (weights + config)."""
    head_only = model.config.freeze_base and model.base_pristine
    state = {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if not head_only or name.startswith("head.")
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": config_to_dict(model.config),
        "base_dim": model.base_dim,
        "base_weights_included": not head_only,
        "model_state_dict": state,
    }


def save_checkpoint(path: str | os.PathLike, model: GaussianEmbeddingGemma, **extra: Any) -> Path:
    """Write a checkpoint atomically; ``extra`` entries (e.g. ``training=...``) are stored beside the model."""
    payload = checkpoint_payload(model)
    payload.update(extra)
    path = Path(path)
    with atomic_write(path, "wb", encoding=None) as handle:
        torch.save(payload, handle)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint's contents (tensors on CPU) with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ragcun checkpoint (no '{FORMAT}' format marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, this code reads {VERSION}")
    for key in ("model_config", "base_dim", "model_state_dict", "base_weights_included"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return payload


def stored_config(payload: dict[str, Any], source: str | os.PathLike) -> ModelConfig:
    """The ModelConfig saved in a checkpoint."""
    try:
        return load_config(ModelConfig, data=payload["model_config"])
    except ConfigError as exc:
        raise CheckpointError(f"{source}: invalid model_config ({exc})") from None


def merge_model_config(requested: ModelConfig, stored: ModelConfig, source: str | os.PathLike) -> ModelConfig:
    """Architecture from the checkpoint, freezing and truncation from ``requested``.

    A requested architecture value (not None) that differs from the stored one is an error:
    the checkpoint has another model shape.
    """
    for name in ARCH_FIELDS:
        want, have = getattr(requested, name), getattr(stored, name)
        if want is not None and want != have:
            raise CheckpointError(
                f"{source}: checkpoint of another model shape: {name} is {have!r} in the checkpoint "
                f"but {want!r} was asked for"
            )
    merged = ModelConfig(**vars(requested))
    for name in ARCH_FIELDS:
        setattr(merged, name, getattr(stored, name))
    if merged.max_seq_length is None:
        merged.max_seq_length = stored.max_seq_length
    return merged


def load_weights(model: GaussianEmbeddingGemma, payload: dict[str, Any], source: str | os.PathLike) -> None:
    """Copy a checkpoint's tensors into ``model`` after checking every name and shape."""
    state = payload["model_state_dict"]
    expected = model.state_dict()
    for name, tensor in state.items():
        if name not in expected:
            raise CheckpointError(f"{source}: checkpoint of another model shape: the model has no tensor '{name}'")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: checkpoint of another model shape: '{name}' is {tuple(tensor.shape)} in the checkpoint "
                f"but {tuple(expected[name].shape)} in the model"
            )
    included = bool(payload["base_weights_included"])
    required = [n for n in expected if included or n.startswith("head.")]
    missing = [n for n in required if n not in state]
    if missing:
        raise CheckpointError(f"{source}: checkpoint of another model shape: tensor '{missing[0]}' is missing")
    model.load_state_dict(state, strict=False)
    if included:
        model.base_pristine = False


def load_model(
    path: str | os.PathLike, device: str | None = None, requested: ModelConfig | None = None
) -> GaussianEmbeddingGemma:
    """Build the model a checkpoint describes and load its weights.

    Args:
        path: a ``.pt`` checkpoint written by :func:`save_checkpoint`.
        device: torch device (CUDA when available).
        requested: freezing/truncation to use, and architecture values the caller expects
            (e.g. ``output_dim``); a mismatch with the checkpoint raises CheckpointError.
    """
    payload = read_checkpoint(path)
    stored = stored_config(payload, path)
    config = stored if requested is None else merge_model_config(requested, stored, path)
    model = GaussianEmbeddingGemma.from_config(config, device=device)
    if model.base_dim != payload["base_dim"]:
        raise CheckpointError(
            f"{path}: checkpoint of another model shape: base dimension {payload['base_dim']} in the checkpoint "
            f"but {model.base_dim} for {config.base_model}"
        )
    load_weights(model, payload, path)
    model.eval()
    return model
