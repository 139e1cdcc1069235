"""Embedding-guided beam search: a causal LM proposes tokens, the sentence embedder chooses.

No training is needed: at every step each kept partial text (beam) asks the LM for its
``top_k`` most likely next tokens; every extension is embedded with the sentence model and
scored

    score = cos(embed(text), target) + fluency_weight * mean token log-prob of text under the LM

and the ``beam_width`` best distinct texts go on. Any beam may also end (scored with the
log-probability of the end token), and the best ended text is returned. ``fluency_weight = 0``
chases the cosine alone and drifts into word salad; larger weights keep the text fluent at
some cost in cosine (the benchmark reports the trade-off).

The proposer is pluggable (:class:`Proposer`): :class:`LMProposer` runs a Hugging Face causal
LM with a key/value cache after an arbitrary context of input vectors, which is how the
vec2text prefix model conditions the proposals on the target embedding (and on a hypothesis
to correct); a plain LM asked for a sentence (:func:`sentence_proposer`) gives the
training-free search.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from gapfill.config import GuidedSearchConfig

__all__ = [
    "Candidate",
    "GuidedSearchConfig",
    "LMProposer",
    "Proposer",
    "document_start_id",
    "guided_search",
    "int8_copy",
    "sentence_proposer",
]

logger = logging.getLogger(__name__)

#: texts -> (n, dim) L2-normalised embeddings
EmbedFn = Callable[[list[str]], np.ndarray]


class Proposer(Protocol):
    """Next-token log-probabilities for a growing set of beams (all beams have the same length)."""

    eos_id: int | None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a token sequence."""

    def start(self) -> torch.Tensor:
        """(1, vocab) log-probs of the first token; resets the proposer."""

    def advance(self, parents: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
        """(n, vocab) log-probs after appending ``tokens[i]`` to the current beam ``parents[i]``."""

    def banned(self) -> Sequence[int]:
        """Token ids never proposed (special tokens other than the end token)."""


class LMProposer:
    """A Hugging Face causal LM after a context of input vectors, with a key/value cache.

    Args:
        lm: the causal LM.
        tokenizer: its tokenizer (decoding and special tokens).
        context: what comes before the text: (ctx, lm_dim) input vectors (e.g. vec2text's
            prefix), a list of token ids (a prompt), or None (the start-of-text token).
        eos_id: the token that ends a text (default: the tokenizer's end-of-text token).
    """

    def __init__(self, lm, tokenizer, context: torch.Tensor | list[int] | None = None, eos_id: int | None = None):
        self.lm = lm
        self.tokenizer = tokenizer
        self.context = context
        self.eos_id = eos_id if eos_id is not None else tokenizer.eos_token_id
        self._cache = None

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.tokenizer.decode(list(ids), skip_special_tokens=True).split())

    def banned(self) -> Sequence[int]:
        return [i for i in self.tokenizer.all_special_ids if i != self.eos_id]

    @torch.no_grad()
    def context_inputs(self) -> torch.Tensor:
        """(ctx, lm_dim) input vectors of the context."""
        device = next(self.lm.parameters()).device
        if self.context is None or isinstance(self.context, list):
            ids = self.context or [document_start_id(self.tokenizer)]
            return self.lm.get_input_embeddings()(torch.tensor(ids, device=device))
        return self.context.to(device)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def sequence_logprobs(self, seqs: Sequence[Sequence[int]]) -> tuple[list[float], torch.Tensor]:
        """Mean token log-prob of each sequence (its end token included) after the context, and
        the (len + 1, vocab) next-token log-probs along the first sequence.

        The vocabulary projection is applied only where a token is scored (and along the first
        sequence), not over the context: with a 49k-token vocabulary it costs more than the LM.
        """
        emb = self.lm.get_input_embeddings()
        ctx = self.context_inputs()  # (ctx, lm_dim)
        end = [self.eos_id] if self.eos_id is not None else []
        rows = [torch.cat([ctx, emb(torch.tensor([*s, *end], dtype=torch.long, device=ctx.device))]) for s in seqs]
        width = max(len(r) for r in rows)
        inputs = torch.zeros(len(rows), width, ctx.shape[1], device=ctx.device)  # (n, width, lm_dim)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=ctx.device)
        for i, r in enumerate(rows):
            inputs[i, : len(r)] = r
            mask[i, : len(r)] = 1
        hidden = self.lm.get_decoder()(inputs_embeds=inputs, attention_mask=mask).last_hidden_state  # (n, width, d)
        head = self.lm.get_output_embeddings()
        means = []
        for i, s in enumerate(seqs):
            toks = torch.tensor([*s, *end], dtype=torch.long, device=ctx.device)
            if not len(toks):
                means.append(0.0)
                continue
            pos = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(toks), device=ctx.device)
            logp = torch.log_softmax(head(hidden[i, pos]).float(), -1)  # (len, vocab)
            means.append(float(logp[torch.arange(len(toks)), toks].mean()))
        first = torch.log_softmax(head(hidden[0, len(ctx) - 1 : len(ctx) + len(seqs[0])]).float(), -1)
        return means, first  # first: (len + 1, vocab)

    @torch.no_grad()
    def start(self) -> torch.Tensor:
        self.lm.eval()
        inputs = self.context_inputs()[None]  # (1, ctx, lm_dim)
        out = self.lm(inputs_embeds=inputs, use_cache=True, logits_to_keep=1)  # the head only at the last position
        self._cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (1, vocab)

    @torch.no_grad()
    def advance(self, parents: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
        device = next(self.lm.parameters()).device
        self._cache.reorder_cache(torch.tensor(list(parents), dtype=torch.long, device=device))
        ids = torch.tensor(list(tokens), dtype=torch.long, device=device)[:, None]  # (n, 1)
        out = self.lm(input_ids=ids, past_key_values=self._cache, use_cache=True)
        self._cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (n, vocab)


def int8_copy(lm):
    """A copy of ``lm`` whose linear layers are dynamically quantized to int8 (on a CPU; elsewhere
    ``lm`` itself), for proposing tokens faster.

    Decoding reads every weight once per token, so on a 2-core CPU it is bound by memory
    bandwidth, and int8 weights halve a step (SmolLM2-135M, 18 sequences: 228 -> 114 ms).
    Embeddings and norms stay as they are (so a vec2text model's trained norms are kept).
    """
    if next(lm.parameters()).device.type != "cpu":
        return lm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        return torch.ao.quantization.quantize_dynamic(lm, {torch.nn.Linear}, dtype=torch.qint8)


def document_start_id(tokenizer) -> int:
    """The token a plain LM saw before a document in pre-training (``<|endoftext|>`` for SmolLM2,
    whose ``bos_token`` is the chat's ``<|im_start|>``); else the BOS, EOS or 0."""
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return vocab["<|endoftext|>"]
    fallback = (tokenizer.bos_token_id, tokenizer.eos_token_id, getattr(tokenizer, "cls_token_id", None), 0)
    return next(i for i in fallback if i is not None)


def sentence_proposer(lm, tokenizer, prompt: str = "Sentence:") -> LMProposer:
    """A plain LM asked for one sentence: ``<document start>Sentence:`` before the text, and a
    line break as the end of the text (a plain LM after a bare start token begins with
    punctuation fragments, and rarely emits its end-of-text token after one sentence)."""
    ids = [document_start_id(tokenizer), *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    return LMProposer(lm, tokenizer, ids, eos_id=newline[-1] if newline else tokenizer.eos_token_id)


@dataclass
class Candidate:
    """A text found by the search: cosine to the target, mean token log-prob, and their blend."""

    text: str
    cosine: float
    logprob: float
    score: float


@dataclass
class _Beam:
    ids: list[int]
    logps: list[float]
    text: str = ""
    cosine: float = -1.0
    parent: int = 0  # index of the beam it extends, in the previous step


def _banned_by_ngrams(ids: list[int], n: int) -> set[int]:
    """Tokens that would repeat an n-gram already in ``ids``."""
    if n <= 0 or len(ids) < n - 1:
        return set()
    if n == 1:
        return set(ids)
    tail = tuple(ids[len(ids) - n + 1 :])
    return {ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i : i + n - 1]) == tail}


class _EmbedCache:
    """Embeds texts once (the same partial text shows up again when a beam ends)."""

    def __init__(self, embed: EmbedFn, target: np.ndarray):
        self.embed = embed
        self.target = target
        self.cos: dict[str, float] = {}

    def cosines(self, texts: Sequence[str]) -> list[float]:
        new = list(dict.fromkeys(t for t in texts if t not in self.cos))
        if new:
            emb = self.embed(new)  # (n_new, dim)
            for t, c in zip(new, emb @ self.target):
                self.cos[t] = float(c)
        return [self.cos[t] for t in texts]


def guided_search(
    proposer: Proposer, target: np.ndarray, embed: EmbedFn, config: GuidedSearchConfig | None = None
) -> tuple[Candidate, list[Candidate]]:
    """Search for a text whose embedding is close to ``target`` among the LM's proposals.

    Args:
        proposer: next-token distributions (a plain or conditioned LM).
        target: (dim,) the embedding to reach (normalised here).
        embed: texts -> (n, dim) L2-normalised embeddings of the sentence model.
        config: beam width, top-k, length, fluency weight.

    Returns:
        The best ended text by score, and all ended texts (best first).
    """
    cfg = config or GuidedSearchConfig()
    target = np.asarray(target, dtype=np.float32)
    target = target / max(float(np.linalg.norm(target)), 1e-12)
    cache = _EmbedCache(embed, target)
    lam = cfg.fluency_weight
    banned_always = torch.tensor(sorted(set(proposer.banned())), dtype=torch.long)
    eos = proposer.eos_id

    def score(cos: float, logps: list[float]) -> float:
        return cos + lam * float(np.mean(logps))

    logp = proposer.start()  # (1, vocab)
    beams = [_Beam([], [])]
    ended: dict[str, Candidate] = {}

    def end(beam: _Beam, end_logp: float | None) -> None:
        if not beam.text:
            return
        logps = beam.logps + ([end_logp] if end_logp is not None else [])
        cand = Candidate(beam.text, beam.cosine, float(np.mean(logps)), score(beam.cosine, logps))
        if beam.text not in ended or cand.score > ended[beam.text].score:
            ended[beam.text] = cand

    for _ in range(cfg.max_new_tokens):
        lp = logp.clone()
        if eos is not None:
            for b, beam in enumerate(beams):
                end(beam, float(lp[b, eos]))
            lp[:, eos] = -torch.inf
        if len(banned_always):
            lp[:, banned_always] = -torch.inf
        for b, beam in enumerate(beams):
            blocked = _banned_by_ngrams(beam.ids, cfg.no_repeat_ngram_size)
            if blocked:
                lp[b, list(blocked)] = -torch.inf
        top_lp, top_ids = lp.topk(min(cfg.top_k, lp.shape[1]), dim=-1)  # (n_beams, k)
        proposals = []  # (beam index, token, its log-prob, text)
        for b, beam in enumerate(beams):
            for tok_lp, tok in zip(top_lp[b].tolist(), top_ids[b].tolist()):
                if tok_lp == -np.inf:
                    continue
                ids = [*beam.ids, tok]
                proposals.append((b, tok, tok_lp, proposer.decode(ids)))
        if not proposals:
            break
        cos = cache.cosines([p[3] for p in proposals])
        scored = sorted(
            ((score(c, [*beams[p[0]].logps, p[2]]), c, p) for c, p in zip(cos, proposals)),
            key=lambda t: -t[0],
        )
        kept, seen = [], set()
        for _s, c, (b, tok, tok_lp, text) in scored:
            if text in seen or not text:
                continue
            seen.add(text)
            kept.append(_Beam([*beams[b].ids, tok], [*beams[b].logps, tok_lp], text, c, parent=b))
            if len(kept) == cfg.beam_width:
                break
        if not kept:
            break
        logp = proposer.advance([k.parent for k in kept], [k.ids[-1] for k in kept])
        beams = kept
    for b, beam in enumerate(beams):
        end(beam, float(logp[b, eos]) if eos is not None else None)
    if not ended:
        return Candidate("", -1.0, 0.0, -np.inf), []
    ranked = sorted(ended.values(), key=lambda c: -c.score)
    return ranked[0], ranked


def refine(
    proposer: LMProposer,
    text: str,
    target: np.ndarray,
    embed: EmbedFn,
    config: GuidedSearchConfig | None = None,
) -> Candidate:
    """Edit a text towards the target with LM-proposed edits, keeping what the score prefers.

    Each round tries every single-token deletion, and at every position the LM's
    ``refine_top_k`` most likely tokens (given the text to their left) as a replacement or an
    insertion; the edits are embedded, the ``refine_rescored`` closest are scored by the LM,
    and the best by ``cosine + fluency_weight * mean log-prob`` replaces the text if it beats
    it. The beam search is myopic (it judges partial texts); these edits fix the whole text.

    Returns:
        The best text found (``text`` itself if no edit helps).
    """
    cfg = config or GuidedSearchConfig()
    target = np.asarray(target, dtype=np.float32)
    target = target / max(float(np.linalg.norm(target)), 1e-12)
    cache = _EmbedCache(embed, target)
    banned = set(proposer.banned()) | ({proposer.eos_id} if proposer.eos_id is not None else set())
    ids = proposer.encode(text)
    means, pos_logp = proposer.sequence_logprobs([ids])
    cos = cache.cosines([proposer.decode(ids)])[0]
    best = Candidate(proposer.decode(ids), cos, means[0], cos + cfg.fluency_weight * means[0])
    for _ in range(cfg.refine_rounds):
        if not ids:
            break
        pos_logp[:, sorted(banned)] = -torch.inf
        top = pos_logp.topk(cfg.refine_top_k, dim=-1).indices.tolist()  # (len + 1, k)
        edits = [ids[:i] + ids[i + 1 :] for i in range(len(ids)) if len(ids) > 1]
        for i in range(len(ids) + 1):
            for tok in top[i]:
                edits.append([*ids[:i], tok, *ids[i:]])  # insertion before position i
                if i < len(ids) and tok != ids[i]:
                    edits.append([*ids[:i], tok, *ids[i + 1 :]])  # replacement of token i
        texts, seqs = [], []
        for e in edits:
            t = proposer.decode(e)
            if t and t != best.text and t not in texts:
                texts.append(t)
                seqs.append(e)
        if not texts:
            break
        cos = np.asarray(cache.cosines(texts))
        order = np.argsort(-cos)[: cfg.refine_rescored]
        means, _ = proposer.sequence_logprobs([seqs[j] for j in order])
        scored = [(float(cos[j]) + cfg.fluency_weight * m, j, m) for j, m in zip(order, means)]
        score, j, mean = max(scored)
        if score <= best.score:
            break
        ids = seqs[j]
        best = Candidate(texts[j], float(cos[j]), mean, score)
        _, pos_logp = proposer.sequence_logprobs([ids])
    return best
