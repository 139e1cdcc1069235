"""Process set-up shared by every entry point: seeding, device choice, logging."""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import numpy as np

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported or installed) torch, on CPU and CUDA."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # torch is optional for the pure-data parts
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def pick_device(requested: str | None = None) -> str:
    """Return ``requested`` if given, else "cuda" when a GPU is available, else "cpu"."""
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def setup_logging(level: int | str = logging.INFO, log_file: str | os.PathLike | None = None) -> None:
    """Log to the console and, if given, to ``log_file`` (appending), with one format."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)


def is_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE set to a true value)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def repo_root() -> Path:
    """The workspace checkout (shared/ is installed editable from it)."""
    return Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The public datasets beside the checkout: $EMBED_SHARED_DATA, else ``<repo>/../shared/data``."""
    env = os.environ.get("EMBED_SHARED_DATA")
    return Path(env) if env else repo_root().parent / "shared" / "data"


def bf16_supported(device: str) -> bool:
    """True when bfloat16 pays off on ``device``: CUDA with bf16, or a CPU with AMX tiles.

    A CPU with AVX512-BF16 but no AMX runs bfloat16 natively yet gains nothing from it: on
    the 2-core Xeon this workspace is benchmarked on, bf16 autocast trained MiniLM at about
    0.85x and encoded at about 0.7x the speed of fp32 (embeddingFT/bench/results). So
    ``bf16: auto`` means fp32 there; ``bf16=true`` still forces it. On a 2-core AMD EPYC (Zen 4,
    AVX512-BF16, no AMX) bf16 autocast *encoded* at 2.0x fp32 (make bench-scale); training there
    was not measured, so training keeps this rule, while encoding measures (:func:`bf16_native`).
    """
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.cpu._is_amx_tile_supported()
        except (AttributeError, RuntimeError):
            return False
    return False


def bf16_native(device: str) -> bool:
    """True when ``device`` computes in bfloat16 natively (CUDA with bf16; a CPU with AVX512-BF16 or AMX).

    Whether that is *faster* differs from CPU to CPU, so callers measure before they choose:
    encoding MiniLM under bf16 autocast ran at about 0.7x fp32 on a 2-core Xeon with AVX512-BF16,
    and at 2.15x on a 2-core AMD EPYC (Zen 4) with the same flag (cosine to fp32 >= 0.99997).
    """
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim(0)``); False where there is no glibc.

    Why by hand: glibc keeps memory that native libraries (OpenVINO, tokenizers, numpy) freed in
    its arenas, so a long pass's resident size ratchets up with every new allocation pattern and
    never comes down; no library in the workspace exposes the call. Measured on the short tail of
    the 50k collection (16k texts in 8 shards, OpenVINO int8, AMD EPYC): after the first shard RSS
    grew 0.40 GB without it (0.12 GB with lengths padded to a multiple of 8) and 0.07 GB with
    both, and the trim after the first shard took RSS from 4.4 GB to 1.8 GB; no cost in time.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return False
