"""Inversion: an embedding back to text by a zero-step guess and correction steps.

Each step proposes texts (the model's beams and, with :class:`Correctors`, the guided search,
token edits, word edits and a fluent rewrite), embeds them and keeps the closest to the target,
never a worse one than it started from; ``invert_embeddings(embeddings, model, embed, num_steps)``
mirrors the public API of jxmorris12/vec2text.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from embshared.errors import UserError
from gapfill.config import GuidedSearchConfig, Vec2TextConfig
from gapfill.embed_cache import EmbeddingCache
from gapfill.guided_search import guided_search, refine
from gapfill.rewrite import Rewriter, choose
from gapfill.vec2text.model import EmbedFn, Vec2Text
from gapfill.word_edits import Vocabulary, refine_words

#: share of a time budget that stages are not planned into: what the estimates miss (each step's
#: final choice, a round slower than the one before); without it texts ended up to 1.1 s past 30 s.
BUDGET_RESERVE = 0.05


@dataclass
class Step:
    """The best hypothesis after one step of inversion."""

    text: str
    cosine: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    source: str = "beam"  # what produced the kept text: beam, search, refine, words, rewrite, initial, previous
    sources: list[str] = field(default_factory=list)  # what produced each candidate
    seconds: float = 0.0  # since the inversion started, when this step ended
    core_seconds: float = 0.0  # of its beams and guided search: what a step takes at least


@dataclass(frozen=True)
class Correctors:
    """What every inversion step runs beside the model's beams (all off by default).

    Args:
        search: the embedding-guided search (with the model proposing tokens) and the LM token
            edits (``refine_rounds``); None: beams only. Its settings also switch the two below.
        vocabulary: words for the word edits of every step (with ``search.word_rounds``),
            e.g. :meth:`~gapfill.word_edits.Vocabulary.from_texts` of the collection.
        rewriter: a plain instruction LM that rewrites each step's text fluently (with
            ``search.rewrite``) and makes each step prefer fluent proposals (``search.fluent_margin``).
    """

    search: GuidedSearchConfig | None = None
    vocabulary: Vocabulary | None = None
    rewriter: Rewriter | None = None

    @classmethod
    def of(
        cls,
        config: Vec2TextConfig,
        search: GuidedSearchConfig | bool | None = None,
        vocabulary: Vocabulary | None = None,
        rewriter: Rewriter | None = None,
    ) -> Correctors:
        """Correctors with the search named as a model's config does: ``search`` a config, True
        (``config.search``), False (beams only) or None (``config.use_search`` decides)."""
        if search is None:
            search = config.search if config.use_search else None
        elif search is True:
            search = config.search
        return cls(search or None, vocabulary, rewriter)

    @property
    def fluent_margin(self) -> float:
        """Cosine a step gives up for fluency (:func:`gapfill.rewrite.choose`): only with a rewriter."""
        return self.search.fluent_margin if self.search is not None and self.rewriter is not None else 0.0


NO_CORRECTORS = Correctors()


def _pick(
    target: np.ndarray, texts: list[str], embed: EmbedFn, floor: float, correctors: Correctors
) -> tuple[int | None, np.ndarray, list[float]]:
    """Which proposal a step keeps (see :func:`gapfill.rewrite.choose`), with all embeddings and cosines."""
    emb = embed(texts)  # (n, dim)
    cos = [float(c) for c in emb @ (target / max(np.linalg.norm(target), 1e-12))]
    margin = correctors.fluent_margin
    fluency = (lambda idx: correctors.rewriter.fluency([texts[i] for i in idx])) if margin > 0 else None
    return choose(cos, floor, margin, fluency), emb, cos


def _propose(
    model: Vec2Text,
    target: np.ndarray,
    beam_width: int,
    correctors: Correctors,
    embed: EmbedFn,
    hypothesis: str | None = None,
    hyp_emb: np.ndarray | None = None,
    deadline: float | None = None,
) -> tuple[list[tuple[str, str]], float]:
    """(text, source) proposals of one step: the model's beams, plus the guided search's best text
    and LM-proposed edits (:func:`~gapfill.guided_search.refine`) of the hypothesis (or, at step
    0, of the search's text), both with the model conditioned on the target proposing tokens;
    with a ``vocabulary`` and ``search.word_rounds``, also word edits
    (:func:`~gapfill.word_edits.refine_words`) of the LM-edited text; with a ``rewriter`` and
    ``search.rewrite``, a fluent rewrite (:class:`~gapfill.rewrite.Rewriter`) of the last of them.
    Returns the proposals and the seconds the beams and the guided search took.

    With a ``deadline`` (a ``time.perf_counter()`` value) the stages after the guided search
    start only if they fit: the LM token edits and the rewrite are each estimated at the guided
    search's own seconds (each is a guided search over edits or after a prompt), and the word
    edits stop their rounds early enough to leave the rewrite its time."""
    search, vocabulary, rewriter = correctors.search, correctors.vocabulary, correctors.rewriter
    int8 = search is not None and search.lm_int8
    out = []
    began = time.perf_counter()
    core = 0.0
    if beam_width:
        out += [(t, "beam") for t in model.generate(target, hypothesis, hyp_emb, beam_width, int8) if t.strip()]
        core = time.perf_counter() - began
    if search is not None:
        searched = time.perf_counter()
        best, _ = guided_search(model.proposer(target, hypothesis, hyp_emb, int8), target, embed, search)
        stage = time.perf_counter() - searched  # the estimate of each later LM stage
        core = time.perf_counter() - began

        def fits(seconds: float) -> bool:
            return deadline is None or time.perf_counter() + seconds <= deadline

        rewriting = rewriter is not None and search.rewrite
        if best.text.strip():
            out.append((best.text, "search"))
        start = hypothesis if hypothesis is not None else best.text
        if search.refine_rounds and start.strip() and fits(stage * (2 if rewriting else 1)):
            edited = refine(model.proposer(target, int8=int8), start, target, embed, search)
            if edited.text.strip() and edited.text != start:
                out.append((edited.text, "refine"))
                start = edited.text
        if vocabulary is not None and search.word_rounds and start.strip():
            words_deadline = None if deadline is None else deadline - (stage if rewriting else 0.0)
            worded = _word_edits(model, target, embed, start, correctors, words_deadline)
            if worded.text.strip() and worded.text != start:
                out.append((worded.text, "words"))
                start = worded.text
        if rewriting and start.strip() and fits(stage):
            rewritten = rewriter.rewrite(start, target, embed, search)
            if rewritten.text.strip() and rewritten.text != start:
                out.append((rewritten.text, "rewrite"))
    return out, core


def _word_edits(
    model: Vec2Text, target: np.ndarray, embed: EmbedFn, text: str, correctors: Correctors, deadline: float | None
):
    """:func:`~gapfill.word_edits.refine_words` of ``text`` with the correctors' vocabulary and search settings."""
    search = correctors.search
    return refine_words(
        text,
        target,
        embed,
        correctors.vocabulary,
        model.proposer(target, int8=search.lm_int8),
        rounds=search.word_rounds,
        top_words=search.word_top_k,
        rescored=search.refine_rescored,
        fluency_weight=search.fluency_weight,
        deadline=deadline,
        screen=search.word_screen,
    )


def correction_step(
    model: Vec2Text,
    target: np.ndarray,
    embed: EmbedFn,
    start: Step,
    start_emb: np.ndarray,
    beam_width: int,
    correctors: Correctors = NO_CORRECTORS,
    deadline: float | None = None,
) -> tuple[Step, np.ndarray]:
    """One round of correction: propose texts conditioned on (target, start), keep the closest
    (with a rewriter: the most fluent within ``search.fluent_margin`` of the closest). With a
    ``deadline`` (a ``time.perf_counter()`` value) its stages after the guided search start only
    if they fit, as in step 0.

    The proposals are ``beam_width`` beams of the model and those of the ``correctors``
    (none by default). Only proposals closer to the target than ``start`` can replace it, so
    the result is never further from the target than ``start``.
    """
    proposals, core = _propose(model, target, beam_width, correctors, embed, start.text, start_emb, deadline)
    if not proposals:
        return Step(start.text, start.cosine, [], "previous", core_seconds=core), start_emb
    texts = [t for t, _ in proposals]
    i, emb, all_cos = _pick(target, texts, embed, start.cosine, correctors)
    candidates = list(zip(texts, all_cos))
    sources = [src for _, src in proposals]
    if i is not None:
        return Step(texts[i], all_cos[i], candidates, sources[i], sources, core_seconds=core), emb[i]
    return Step(start.text, start.cosine, candidates, "previous", sources, core_seconds=core), start_emb


def polish(
    model: Vec2Text,
    target: np.ndarray,
    embed: EmbedFn,
    last: Step,
    last_emb: np.ndarray,
    correctors: Correctors,
    deadline: float | None = None,
) -> tuple[Step, np.ndarray]:
    """``last`` after word edits (:func:`~gapfill.word_edits.refine_words`) of its text until the
    ``deadline``: the time a budget leaves after the last correction step that fits (a step's
    beams and guided search take most of it, and mostly keep the previous text). The edited
    text replaces ``last`` only if it is closer to the target (source "polish"); the result
    keeps ``last``'s candidates, with the edited text added."""
    search = correctors.search
    if search is None or correctors.vocabulary is None or not search.word_rounds or not last.text.strip():
        return last, last_emb
    worded = _word_edits(model, target, embed, last.text, correctors, deadline)
    if worded.text == last.text:
        return last, last_emb
    emb = embed([worded.text])[0]
    cosine = float(emb @ target)
    tried = dataclasses.replace(
        last, candidates=[*last.candidates, (worded.text, cosine)], sources=[*last.sources, "polish"]
    )
    if cosine <= last.cosine:
        return tried, last_emb
    return dataclasses.replace(tried, text=worded.text, cosine=cosine, source="polish"), emb


def invert(
    model: Vec2Text,
    target: np.ndarray,
    embed: EmbedFn,
    num_steps: int | None = None,
    beam_width: int | None = None,
    correctors: Correctors | None = None,
    initial: Sequence[str] = (),
    max_seconds: float | None = None,
) -> list[Step]:
    """Invert one embedding; returns the best hypothesis after step 0 (zero-step) and each correction.

    Embeddings are memoised for the whole inversion (:class:`~gapfill.embed_cache.EmbeddingCache`):
    the steps propose many texts again. Each step records when it ended (``Step.seconds``).

    Args:
        num_steps, beam_width: correction steps and beams per step (default: the model's config).
        correctors: what every step runs beside the beams; None: ``Correctors.of(model.config)``
            (the model's guided search if its ``config.use_search``, no word edits or rewrites).
        initial: extra starting hypotheses competing at step 0 (e.g. the nearest known text;
            source "initial"), which the corrections then edit.
        max_seconds: a time budget: no correction step starts when the last step's beams and
            guided search would take the inversion past it (so fewer than ``num_steps`` may
            run), and inside every step the stages after the guided search start only if they
            fit (see ``_propose``); stages are planned to end ``BUDGET_RESERVE`` of it early.
            With ``search.polish``, the time left after the last step goes to word edits of
            its text (:func:`polish`), which then replace the last step.
    """
    start = time.perf_counter()
    cfg = model.config
    if not isinstance(embed, EmbeddingCache):
        embed = EmbeddingCache(embed)
    correctors = Correctors.of(cfg) if correctors is None else correctors
    num_steps = cfg.num_steps if num_steps is None else num_steps
    beam_width = cfg.beam_width if beam_width is None else beam_width
    target = np.asarray(target, dtype=np.float32)
    target = target / max(float(np.linalg.norm(target)), 1e-12)
    plan = None if max_seconds is None else max_seconds * (1.0 - BUDGET_RESERVE)
    deadline = None if plan is None else start + plan
    proposals, core = _propose(model, target, beam_width, correctors, embed, deadline=deadline)
    proposals += [(t, "initial") for t in initial if t.strip()]
    proposals = proposals or [("", "beam")]
    texts = [t for t, _ in proposals]
    i, embs, all_cos = _pick(target, texts, embed, -np.inf, correctors)
    sources = [src for _, src in proposals]
    steps = [Step(texts[i], all_cos[i], list(zip(texts, all_cos)), sources[i], sources, core_seconds=core)]
    steps[0].seconds = time.perf_counter() - start
    emb = embs[i]
    for _ in range(num_steps):
        if plan is not None and time.perf_counter() - start + steps[-1].core_seconds > plan:
            break
        step, emb = correction_step(model, target, embed, steps[-1], emb, beam_width, correctors, deadline)
        step.seconds = time.perf_counter() - start
        steps.append(step)
    search = correctors.search
    if search is not None and search.polish and (deadline is None or time.perf_counter() < deadline):
        steps[-1], emb = polish(model, target, embed, steps[-1], emb, correctors, deadline)
        steps[-1].seconds = time.perf_counter() - start
    return steps


def invert_embeddings(
    embeddings: np.ndarray,
    model: Vec2Text,
    embed: EmbedFn,
    num_steps: int | None = None,
    beam_width: int | None = None,
    correctors: Correctors | None = None,
) -> list[str]:
    """Texts whose embeddings are close to the rows of ``embeddings`` (n, dim)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != model.embed_dim:
        raise UserError(f"embeddings must have shape (n, {model.embed_dim}), got {tuple(embeddings.shape)}")
    return [invert(model, e, embed, num_steps, beam_width, correctors)[-1].text for e in embeddings]
