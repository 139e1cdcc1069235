"""Questions from a local causal LM (default SmolLM2-135M-Instruct, loaded by embshared).

Prompts are batched with left padding; each passage gets ``n`` sampled completions
(``num_return_sequences``), each stopped at its first line break, so a model that goes on
to answer its own question ("Q: ... A: ...") wastes no time. Sampling is seeded per batch,
so a rerun writes the same questions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from qa_pipeline.generators.base import Candidate, chat_messages
from qa_pipeline.passages import Passage

logger = logging.getLogger(__name__)


@dataclass
class LocalLLMConfig:
    """Settings of the local LLM generator."""

    model: str = field(
        default="smollm2",
        metadata={"help": "'smollm2' (packaged SmolLM2-135M-Instruct) or a local causal-LM folder"},
    )
    device: str = field(default="", metadata={"help": "torch device; '' = CUDA when available, else CPU"})
    batch_size: int = field(default=8, metadata={"help": "passages per generate() call"})
    max_new_tokens: int = field(default=48, metadata={"help": "longest question, in tokens"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (0 = greedy)"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus sampling"})
    max_passage_tokens: int = field(default=320, metadata={"help": "passages are cut to this many tokens"})


class LocalLLMGenerator:
    """Generate questions with a Hugging Face causal LM and its chat template.

    Args:
        model: the loaded ``AutoModelForCausalLM`` (in eval mode, on its device).
        tokenizer: its tokenizer (must have a chat template).
        cfg: generation settings.
        n: questions per passage.
        seed: base seed of the sampling.
        model_name: recorded with each pair.
        kind: "question" or "claim": what the prompt asks for (and the candidates' kind).
    """

    name = "smollm2"

    def __init__(
        self,
        model,
        tokenizer,
        cfg: LocalLLMConfig,
        n: int = 2,
        seed: int = 42,
        model_name: str = "",
        kind: str = "question",
    ):
        self.model = model
        self.kind = kind
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.n = n
        self.seed = seed
        self.model_name = model_name or getattr(model.config, "_name_or_path", "") or cfg.model
        self.batches_done = 0

    def _prompt(self, passage: str) -> str:
        ids = self.tokenizer(passage, add_special_tokens=False)["input_ids"]
        if len(ids) > self.cfg.max_passage_tokens:
            passage = self.tokenizer.decode(ids[: self.cfg.max_passage_tokens]).rsplit(" ", 1)[0] + " ..."
        messages = chat_messages(passage, kind=self.kind)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _stop_ids(self) -> list[int]:
        ids = [self.tokenizer.eos_token_id]
        newline = self.tokenizer("\n", add_special_tokens=False)["input_ids"]
        if len(newline) == 1:
            ids.append(newline[0])
        return [i for i in ids if i is not None]

    def generate(self, passages: list[Passage]) -> list[list[Candidate]]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        out: list[list[Candidate]] = [[] for _ in passages]
        # Similar lengths in one batch waste less compute on padding.
        order = sorted(range(len(passages)), key=lambda i: len(passages[i].text))
        batches = [order[i : i + self.cfg.batch_size] for i in range(0, len(order), self.cfg.batch_size)]
        sample = self.cfg.temperature > 0
        for batch in tqdm(batches, desc="generating", unit="batch", disable=len(batches) < 2, leave=False):
            prompts = [self._prompt(passages[i].text) for i in batch]
            enc = tok(prompts, return_tensors="pt", padding=True).to(self.model.device)
            torch.manual_seed(self.seed + self.batches_done)
            self.batches_done += 1
            kwargs = {"do_sample": True, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p} if sample else {}
            with torch.inference_mode():
                generated = self.model.generate(
                    **enc,
                    max_new_tokens=self.cfg.max_new_tokens,
                    num_return_sequences=self.n if sample else 1,
                    eos_token_id=self._stop_ids(),
                    pad_token_id=tok.pad_token_id,
                    **kwargs,
                )  # (len(batch) * n, prompt + new tokens)
            texts = tok.batch_decode(generated[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            per = len(texts) // len(batch)
            for k, i in enumerate(batch):
                out[i] = [Candidate(question=t, kind=self.kind) for t in texts[k * per : (k + 1) * per]]
        return out
