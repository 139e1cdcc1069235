"""Fluent rewrites of a hypothesis, and the fluency-aware choice of a step's text.

Token and word edits chase the cosine and can glue fluent fragments together ("TheBBC
reports has warned that in some infant languages negatively benefits ..."). Here the
instruction-tuned LM (SmolLM2-135M-Instruct) is asked to rewrite the current hypothesis as
one fluent sentence while the embedding-guided search chooses its tokens, so the rewrite
keeps the hypothesis's content words, moves towards the target, and reads as the LM's own
text. A step of the inversion then keeps, among the proposals whose cosine is within
``fluent_margin`` of the closest one (and above the step's starting hypothesis, so the
cosine still never falls), the most fluent by the plain LM's mean token log-prob.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gapfill.config import GuidedSearchConfig
from gapfill.guided_search import (
    Candidate,
    EmbedFn,
    LMProposer,
    document_start_id,
    guided_search,
    int8_copy,
    sentence_proposer,
)

REWRITE_PROMPT = (
    "Rewrite the following text as one short, fluent English sentence that keeps its meaning.\n\nText: {text}"
)


class Rewriter:
    """A plain instruction-tuned LM that rewrites hypotheses and scores fluency.

    Args:
        lm: the causal LM (not the vec2text model's, whose weights may be trained).
        tokenizer: its tokenizer; with a chat template the prompt is a user turn, without one
            a plain ``Text: ... Rewritten:`` prompt ending at a line break.
        prompt: the instruction, with ``{text}`` for the hypothesis.
    """

    def __init__(self, lm, tokenizer, prompt: str = REWRITE_PROMPT):
        self.lm = lm
        self.tokenizer = tokenizer
        self.prompt = prompt
        self._scorer = sentence_proposer(lm, tokenizer)
        self._int8 = None

    def proposing_lm(self, int8: bool = False):
        """The LM that proposes a rewrite's tokens: with ``int8``, its int8 copy
        (:func:`~gapfill.guided_search.int8_copy`, made once); fluency is always scored by ``lm``."""
        if not int8:
            return self.lm
        if self._int8 is None:
            self._int8 = int8_copy(self.lm)
        return self._int8

    def proposer(self, text: str, int8: bool = False) -> LMProposer:
        """The LM after the rewrite prompt for ``text``, ending at the end of its answer."""
        tok = self.tokenizer
        lm = self.proposing_lm(int8)
        if getattr(tok, "chat_template", None):
            messages = [{"role": "user", "content": self.prompt.format(text=text)}]
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return LMProposer(lm, tok, tok(prompt, add_special_tokens=False)["input_ids"], eos_id=tok.eos_token_id)
        ids = [document_start_id(tok), *tok(f"Text: {text}\nRewritten:", add_special_tokens=False)["input_ids"]]
        newline = tok("\n", add_special_tokens=False)["input_ids"]
        return LMProposer(lm, tok, ids, eos_id=newline[-1] if newline else tok.eos_token_id)

    def rewrite(self, text: str, target: np.ndarray, embed: EmbedFn, config: GuidedSearchConfig) -> Candidate:
        """The guided search's best rewrite of ``text`` towards ``target``."""
        return guided_search(self.proposer(text, config.lm_int8), target, embed, config)[0]

    def fluency(self, texts: Sequence[str]) -> list[float]:
        """Mean token log-prob of each text under the plain LM asked for a sentence (higher: more fluent)."""
        if not texts:
            return []
        return self._scorer.sequence_logprobs([self._scorer.encode(t) for t in texts])[0]


def choose(cosines: Sequence[float], floor: float, margin: float, fluency=None) -> int | None:
    """Index of the text a step keeps, or None when no text beats ``floor``.

    Without ``fluency`` (or with ``margin`` 0) the closest text; otherwise the most fluent of
    the texts within ``margin`` of the closest. Only texts with a cosine above ``floor`` (the
    starting hypothesis's) are eligible, so the kept cosine never falls.

    Args:
        cosines: cosine of each proposal to the target.
        floor: the cosine to beat (``-inf`` at step 0).
        margin: how much cosine may be given up for fluency, relative to the closest proposal.
        fluency: callable ``texts indices -> scores`` (higher is more fluent), or None.
    """
    cos = np.asarray(cosines, dtype=np.float64)
    if not len(cos) or cos.max() <= floor:
        return None
    best = int(np.argmax(cos))
    if fluency is None or margin <= 0:
        return best
    eligible = [i for i in range(len(cos)) if cos[i] > floor and cos[i] >= cos[best] - margin]
    if len(eligible) == 1:
        return eligible[0]
    scores = fluency(eligible)
    return eligible[int(np.argmax(scores))]
