"""Saving and loading a vec2text model: the projector and the trained LM parameters as
safetensors, the config and facts (embedding dimension, training log) as JSON, in one folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from embshared.config import load_config, save_config
from embshared.errors import UserError
from embshared.files import atomic_dir, write_json
from gapfill.config import Vec2TextConfig
from gapfill.vec2text.model import Vec2Text
from gapfill.vec2text.training import trainable_lm_parameters

PROJECTOR_FILE = "projector.safetensors"
LM_FILE = "lm_trained.safetensors"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"


def save(model: Vec2Text, path: str | Path, extra: dict | None = None, overwrite: bool = True) -> Path:
    """Write the projector, the trained LM parameters (safetensors) and config (JSON), atomically."""
    trained = {n for n, _ in trainable_lm_parameters(model)}
    lm_state = {k: v.detach().cpu().contiguous() for k, v in model.lm.state_dict().items() if k in trained}
    proj = {f"projector.{k}": v.detach().cpu().contiguous() for k, v in model.projector.state_dict().items()}
    proj["separator"] = model.separator.detach().cpu().contiguous()
    with atomic_dir(path, overwrite=overwrite) as tmp:
        save_file(proj, str(tmp / PROJECTOR_FILE))
        if lm_state:
            # Tied weights (input embedding = output head) appear once in safetensors.
            seen, unique_state = set(), {}
            for k, v in lm_state.items():
                if v.data_ptr() not in seen:
                    seen.add(v.data_ptr())
                    unique_state[k] = v
            save_file(unique_state, str(tmp / LM_FILE))
        save_config(model.config, tmp / CONFIG_FILE)
        write_json(tmp / META_FILE, {"embed_dim": model.embed_dim, **(extra or {})})
    return Path(path)


def load(path: str | Path, lm, tokenizer) -> Vec2Text:
    """Load a model written by :func:`save` around a freshly loaded base ``lm``."""
    path = Path(path)
    if not (path / PROJECTOR_FILE).is_file():
        raise UserError(f"{path}: no {PROJECTOR_FILE} (not a saved vec2text model)")
    config = load_config(Vec2TextConfig, path / CONFIG_FILE)
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    model = Vec2Text.build(lm, tokenizer, int(meta["embed_dim"]), config)
    tensors = load_file(str(path / PROJECTOR_FILE))
    model.projector.load_state_dict(
        {k[len("projector.") :]: v for k, v in tensors.items() if k.startswith("projector.")}
    )
    with torch.no_grad():
        model.separator.copy_(tensors["separator"])
    if (path / LM_FILE).is_file():
        missing = model.lm.load_state_dict(load_file(str(path / LM_FILE)), strict=False)
        if missing.unexpected_keys:
            raise UserError(f"{path / LM_FILE}: parameters not in the LM: {missing.unexpected_keys[:3]}")
        if hasattr(model.lm, "tie_weights"):
            model.lm.tie_weights()
    model.to(next(lm.parameters()).device)
    model.eval()
    return model
