"""Vec2Text: invert sentence embeddings into text with a small causal LM and iterative correction.

The generator is conditioned through prefix vectors: a projector MLP maps
``[e_target, e_hyp, e_target - e_hyp]`` to ``num_prefix`` vectors in the LM's input space.
Two forms share one model:

- zero-step:   ``[prefix(e_target, 0)] text``
- correction:  ``[prefix(e_target, e_hyp)] hypothesis [SEP] text``

Training uses (text, embedding) pairs; correction examples take as hypothesis a
neighbouring training text or a noised copy of the text (no generation is needed to train).
At inversion, each step generates ``beam_width`` hypotheses, embeds them, and keeps the
one closest to the target (never a worse one than it started from), which conditions the
next step: ``invert_embeddings(embeddings, model, embedder, num_steps)`` mirrors the
public API of jxmorris12/vec2text. With a :class:`~gapfill.guided_search.GuidedSearchConfig`
each step also runs the embedding-guided beam search with the model itself as proposer (its
prefix, and in corrections the hypothesis, condition the proposed tokens), and the search's
text competes with the beams under the same never-worse rule.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from embshared.config import load_config, save_config
from embshared.errors import UserError
from embshared.files import atomic_dir, write_json
from gapfill.config import Vec2TextConfig
from gapfill.embed_cache import EmbeddingCache
from gapfill.guided_search import GuidedSearchConfig, LMProposer, document_start_id, guided_search, refine
from gapfill.rewrite import Rewriter, choose
from gapfill.word_edits import Vocabulary, refine_words

logger = logging.getLogger(__name__)

#: texts -> (n, dim) L2-normalised embeddings
EmbedFn = Callable[[list[str]], np.ndarray]
ProgressFn = Callable[[int, int, dict[str, float]], None]

PROJECTOR_FILE = "projector.safetensors"
LM_FILE = "lm_trained.safetensors"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"


def sentence_embedder(model, batch_size: int = 64) -> EmbedFn:
    """An :data:`EmbedFn` from a SentenceTransformer (normalised float32 embeddings)."""

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    return embed


class Vec2Text(nn.Module):
    """A causal LM conditioned on an embedding (and optionally a hypothesis) through prefix vectors.

    Args:
        lm: a Hugging Face causal LM (``inputs_embeds`` capable).
        tokenizer: its tokenizer.
        projector: maps (batch, 3 * embed_dim) to (batch, num_prefix * lm_dim).
        separator: (1, lm_dim) learned vector between hypothesis and text.
        config: the Vec2Text config (num_prefix, lengths, generation settings).
        embed_dim: dimension of the inverted embeddings.
    """

    def __init__(
        self, lm, tokenizer, projector: nn.Module, separator: nn.Parameter, config: Vec2TextConfig, embed_dim: int
    ):
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.projector = projector
        self.separator = separator
        self.config = config
        self.embed_dim = embed_dim

    @classmethod
    def build(cls, lm, tokenizer, embed_dim: int, config: Vec2TextConfig) -> Vec2Text:
        """A fresh model around ``lm``: the projector's output starts at the scale of token embeddings."""
        lm_dim = lm.get_input_embeddings().weight.shape[1]
        token_std = lm.get_input_embeddings().weight.detach().float().std().item()
        projector = nn.Sequential(
            nn.Linear(3 * embed_dim, config.projector_hidden),
            nn.GELU(),
            nn.Linear(config.projector_hidden, config.num_prefix * lm_dim),
        )
        with torch.no_grad():
            projector[2].weight.mul_(token_std / max(projector[2].weight.std().item(), 1e-8) * 0.5)
            projector[2].bias.zero_()
        separator = nn.Parameter(torch.randn(1, lm_dim) * token_std)
        return cls(lm, tokenizer, projector, separator, config, embed_dim)

    @property
    def device(self) -> torch.device:
        return self.separator.device

    @property
    def eos_id(self) -> int:
        tok = self.tokenizer
        return tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.config.max_length]

    def prefix(self, target: torch.Tensor, hypothesis: torch.Tensor | None = None) -> torch.Tensor:
        """Prefix vectors for (batch, embed_dim) targets and hypothesis embeddings (None: zero-step)."""
        if hypothesis is None:
            hypothesis = torch.zeros_like(target)
        cond = torch.cat([target, hypothesis, target - hypothesis], dim=-1)  # (batch, 3 * embed_dim)
        out = self.projector(cond)  # (batch, num_prefix * lm_dim)
        return out.view(len(target), self.config.num_prefix, -1)  # (batch, num_prefix, lm_dim)

    def _context(self, target: torch.Tensor, hyp_emb: torch.Tensor | None, hyp_ids: list[int] | None) -> torch.Tensor:
        """(1, len, lm_dim) conditioning context of one example: prefix [+ hypothesis + separator]."""
        parts = [self.prefix(target[None], None if hyp_emb is None else hyp_emb[None])[0]]
        if hyp_ids is not None:
            ids = torch.tensor(hyp_ids, dtype=torch.long, device=self.device)
            parts += [self.lm.get_input_embeddings()(ids), self.separator]
        return torch.cat(parts)[None]

    @torch.no_grad()
    def proposer(
        self, target: np.ndarray, hypothesis: str | None = None, hyp_emb: np.ndarray | None = None
    ) -> LMProposer:
        """The model as a token proposer for :func:`gapfill.guided_search.guided_search`: the LM after
        the prefix of ``target`` (zero-step form) or after ``[prefix(target, hyp)] hypothesis [SEP]``."""
        self.eval()
        t = torch.as_tensor(np.asarray(target, dtype=np.float32), device=self.device)
        h = None if hyp_emb is None else torch.as_tensor(np.asarray(hyp_emb, dtype=np.float32), device=self.device)
        hyp_ids = self.encode_text(hypothesis) if hypothesis is not None else None
        context = self._context(t, h, hyp_ids)[0]  # (ctx, lm_dim)
        return LMProposer(self.lm, self.tokenizer, context, eos_id=self.eos_id)

    def loss(self, batch: list[dict]) -> torch.Tensor:
        """Mean next-token loss of the texts of a batch of examples.

        Each example has ``ids`` (target token ids), ``target`` (embed_dim,) and, for the
        correction form, ``hyp_ids`` and ``hyp_emb``.
        """
        emb_layer = self.lm.get_input_embeddings()
        rows, labels = [], []
        for ex in batch:
            target = torch.as_tensor(ex["target"], device=self.device)
            has_hyp = ex.get("hyp_ids") is not None
            hyp_emb = torch.as_tensor(ex["hyp_emb"], device=self.device) if has_hyp else None
            context = self._context(target, hyp_emb, ex.get("hyp_ids"))[0]  # (ctx, lm_dim)
            ids = torch.tensor([*ex["ids"], self.eos_id], dtype=torch.long, device=self.device)
            rows.append(torch.cat([context, emb_layer(ids)]))  # (ctx + len, lm_dim)
            labels.append(torch.cat([torch.full((len(context),), -100, device=self.device), ids]))
        width = max(len(r) for r in rows)
        lm_dim = rows[0].shape[1]
        inputs = torch.zeros(len(rows), width, lm_dim, device=self.device)  # (batch, width, lm_dim)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        target_ids = torch.full((len(rows), width), -100, dtype=torch.long, device=self.device)
        for i, (r, lab) in enumerate(zip(rows, labels)):
            inputs[i, : len(r)] = r
            mask[i, : len(r)] = 1
            target_ids[i, : len(lab)] = lab
        hidden = self.lm.get_decoder()(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        labels = target_ids[:, 1:]  # (batch, width - 1): position t predicts token t + 1
        scored = labels != -100
        # The vocabulary projection only where a token is predicted (not over prefix and hypothesis).
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][scored])  # (n_scored, vocab)
        return nn.functional.cross_entropy(logits.float(), labels[scored])

    @torch.no_grad()
    def generate(
        self, target: np.ndarray, hypothesis: str | None = None, hyp_emb: np.ndarray | None = None, beam_width: int = 4
    ) -> list[str]:
        """``beam_width`` texts for one target embedding (optionally correcting a hypothesis)."""
        self.eval()
        t = torch.as_tensor(np.asarray(target, dtype=np.float32), device=self.device)
        h = None if hyp_emb is None else torch.as_tensor(np.asarray(hyp_emb, dtype=np.float32), device=self.device)
        hyp_ids = self.encode_text(hypothesis) if hypothesis is not None else None
        context = self._context(t, h, hyp_ids)  # (1, ctx, lm_dim)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        with warnings.catch_warnings():
            # n-gram blocking applies to the new tokens only (the prompt is embeddings): intended.
            warnings.filterwarnings("ignore", message=".*without `input_ids`.*")
            out = self.lm.generate(
                inputs_embeds=context,
                attention_mask=torch.ones(context.shape[:2], dtype=torch.long, device=self.device),
                max_new_tokens=self.config.max_new_tokens,
                num_beams=beam_width,
                num_return_sequences=beam_width,
                do_sample=False,
                eos_token_id=self.eos_id,
                pad_token_id=pad,
                no_repeat_ngram_size=3,
            )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]


# ---------------------------------------------------------------------------------------
# inversion


@dataclass
class Step:
    """The best hypothesis after one step of inversion."""

    text: str
    cosine: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    source: str = "beam"  # what produced the kept text: beam, search, refine, words, rewrite, initial, previous
    sources: list[str] = field(default_factory=list)  # what produced each candidate
    seconds: float = 0.0  # since the inversion started, when this step ended


def _pick(
    target: np.ndarray,
    texts: list[str],
    embed: EmbedFn,
    floor: float,
    search: GuidedSearchConfig | None,
    rewriter: Rewriter | None,
) -> tuple[int | None, np.ndarray, list[float]]:
    """Which proposal a step keeps (see :func:`gapfill.rewrite.choose`), with all embeddings and cosines."""
    emb = embed(texts)  # (n, dim)
    cos = [float(c) for c in emb @ (target / max(np.linalg.norm(target), 1e-12))]
    margin = search.fluent_margin if search is not None and rewriter is not None else 0.0
    fluency = (lambda idx: rewriter.fluency([texts[i] for i in idx])) if margin > 0 else None
    return choose(cos, floor, margin, fluency), emb, cos


def _propose(
    model: Vec2Text,
    target: np.ndarray,
    beam_width: int,
    search: GuidedSearchConfig | None,
    embed: EmbedFn,
    hypothesis: str | None = None,
    hyp_emb: np.ndarray | None = None,
    vocabulary: Vocabulary | None = None,
    rewriter: Rewriter | None = None,
) -> list[tuple[str, str]]:
    """(text, source) proposals of one step: the model's beams, plus the guided search's best text
    and LM-proposed edits (:func:`~gapfill.guided_search.refine`) of the hypothesis (or, at step
    0, of the search's text), both with the model conditioned on the target proposing tokens;
    with a ``vocabulary`` and ``search.word_rounds``, also word edits
    (:func:`~gapfill.word_edits.refine_words`) of the LM-edited text; with a ``rewriter`` and
    ``search.rewrite``, a fluent rewrite (:class:`~gapfill.rewrite.Rewriter`) of the last of them."""
    out = []
    if beam_width:
        out += [(t, "beam") for t in model.generate(target, hypothesis, hyp_emb, beam_width) if t.strip()]
    if search is not None:
        best, _ = guided_search(model.proposer(target, hypothesis, hyp_emb), target, embed, search)
        if best.text.strip():
            out.append((best.text, "search"))
        start = hypothesis if hypothesis is not None else best.text
        if search.refine_rounds and start.strip():
            edited = refine(model.proposer(target), start, target, embed, search)
            if edited.text.strip() and edited.text != start:
                out.append((edited.text, "refine"))
                start = edited.text
        if vocabulary is not None and search.word_rounds and start.strip():
            worded = refine_words(
                start,
                target,
                embed,
                vocabulary,
                model.proposer(target),
                rounds=search.word_rounds,
                top_words=search.word_top_k,
                rescored=search.refine_rescored,
                fluency_weight=search.fluency_weight,
            )
            if worded.text.strip() and worded.text != start:
                out.append((worded.text, "words"))
                start = worded.text
        if rewriter is not None and search.rewrite and start.strip():
            rewritten = rewriter.rewrite(start, target, embed, search)
            if rewritten.text.strip() and rewritten.text != start:
                out.append((rewritten.text, "rewrite"))
    return out


def correction_step(
    model: Vec2Text,
    target: np.ndarray,
    embed: EmbedFn,
    start: Step,
    start_emb: np.ndarray,
    beam_width: int,
    search: GuidedSearchConfig | None = None,
    vocabulary: Vocabulary | None = None,
    rewriter: Rewriter | None = None,
) -> tuple[Step, np.ndarray]:
    """One round of correction: propose texts conditioned on (target, start), keep the closest
    (with a ``rewriter``: the most fluent within ``search.fluent_margin`` of the closest).

    The proposals are ``beam_width`` beams of the model and, with ``search``, the guided
    search's text and the edits. Only proposals closer to the target than ``start`` can
    replace it, so the result is never further from the target than ``start``.
    """
    proposals = _propose(model, target, beam_width, search, embed, start.text, start_emb, vocabulary, rewriter)
    if not proposals:
        return Step(start.text, start.cosine, [], "previous"), start_emb
    texts = [t for t, _ in proposals]
    i, emb, all_cos = _pick(target, texts, embed, start.cosine, search, rewriter)
    candidates = list(zip(texts, all_cos))
    sources = [src for _, src in proposals]
    if i is not None:
        return Step(texts[i], all_cos[i], candidates, sources[i], sources), emb[i]
    return Step(start.text, start.cosine, candidates, "previous", sources), start_emb


def _search_config(model: Vec2Text, search: GuidedSearchConfig | bool | None) -> GuidedSearchConfig | None:
    if search is None:
        return model.config.search if model.config.use_search else None
    if search is True:
        return model.config.search
    return search or None


def invert(
    model: Vec2Text,
    target: np.ndarray,
    embed: EmbedFn,
    num_steps: int | None = None,
    beam_width: int | None = None,
    search: GuidedSearchConfig | bool | None = None,
    initial: Sequence[str] = (),
    vocabulary: Vocabulary | None = None,
    rewriter: Rewriter | None = None,
    max_seconds: float | None = None,
) -> list[Step]:
    """Invert one embedding; returns the best hypothesis after step 0 (zero-step) and each correction.

    Embeddings are memoised for the whole inversion (:class:`~gapfill.embed_cache.EmbeddingCache`):
    the steps propose many texts again. Each step records when it ended (``Step.seconds``).

    Args:
        max_seconds: a time budget: no correction step starts when the last step's duration
            would take the inversion past it (so fewer than ``num_steps`` may run).
        initial: extra starting hypotheses competing at step 0 (e.g. the nearest known text;
            source "initial"), which the corrections then edit.
        vocabulary: words for the word edits of every step (with ``search.word_rounds``),
            e.g. :meth:`~gapfill.word_edits.Vocabulary.from_texts` of the collection.
        rewriter: a plain instruction LM that rewrites each step's text fluently (with
            ``search.rewrite``) and makes each step prefer fluent proposals (``search.fluent_margin``).
        search: the embedding-guided search run at every step beside the beams: a config,
            True (the model's ``config.search``), False (beams only), or None (the model's
            ``config.use_search`` decides).
    """
    start = time.perf_counter()
    cfg = model.config
    if not isinstance(embed, EmbeddingCache):
        embed = EmbeddingCache(embed)
    search = _search_config(model, search)
    num_steps = cfg.num_steps if num_steps is None else num_steps
    beam_width = cfg.beam_width if beam_width is None else beam_width
    target = np.asarray(target, dtype=np.float32)
    target = target / max(float(np.linalg.norm(target)), 1e-12)
    proposals = _propose(model, target, beam_width, search, embed, vocabulary=vocabulary, rewriter=rewriter)
    proposals += [(t, "initial") for t in initial if t.strip()]
    proposals = proposals or [("", "beam")]
    texts = [t for t, _ in proposals]
    i, embs, all_cos = _pick(target, texts, embed, -np.inf, search, rewriter)
    sources = [src for _, src in proposals]
    steps = [Step(texts[i], all_cos[i], list(zip(texts, all_cos)), sources[i], sources)]
    steps[0].seconds = time.perf_counter() - start
    emb = embs[i]
    for _ in range(num_steps):
        last = steps[-1].seconds - (steps[-2].seconds if len(steps) > 1 else 0.0)
        if max_seconds is not None and steps[-1].seconds + last > max_seconds:
            break
        step, emb = correction_step(model, target, embed, steps[-1], emb, beam_width, search, vocabulary, rewriter)
        step.seconds = time.perf_counter() - start
        steps.append(step)
    return steps


def invert_embeddings(
    embeddings: np.ndarray,
    model: Vec2Text,
    embed: EmbedFn,
    num_steps: int | None = None,
    beam_width: int | None = None,
    search: GuidedSearchConfig | bool | None = None,
) -> list[str]:
    """Texts whose embeddings are close to the rows of ``embeddings`` (n, dim)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != model.embed_dim:
        raise UserError(f"embeddings must have shape (n, {model.embed_dim}), got {tuple(embeddings.shape)}")
    return [invert(model, e, embed, num_steps, beam_width, search)[-1].text for e in embeddings]


# ---------------------------------------------------------------------------------------
# training data


def noised(text: str, rng: random.Random) -> str:
    """A corrupted copy of ``text``: words dropped, swapped or repeated (a cheap hypothesis)."""
    words = text.split()
    if len(words) < 3:
        return " ".join(words[::-1]) or text
    out = [w for w in words if rng.random() > 0.2]
    for _ in range(max(1, len(out) // 6)):
        if len(out) > 1:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out) if out else words[0]


def make_examples(
    model: Vec2Text,
    texts: Sequence[str],
    embeddings: np.ndarray,
    embed: EmbedFn,
    correction_fraction: float,
    seed: int = 0,
    neighbours: int = 5,
) -> list[dict]:
    """Training examples: every text in zero-step form, and a share also in correction form.

    Correction hypotheses alternate between a near neighbour among the training texts (a
    related but different sentence, like a zero-step output) and a noised copy of the text.
    """
    rng = random.Random(seed)
    emb = np.asarray(embeddings, dtype=np.float32)
    examples = [{"ids": model.encode_text(t), "target": emb[i]} for i, t in enumerate(texts)]
    chosen = [i for i in range(len(texts)) if rng.random() < correction_fraction]
    if not chosen:
        return examples
    noisy, noisy_src, hyps = [], [], {}
    for n, i in enumerate(chosen):
        if n % 2 == 0 and len(texts) > neighbours + 1:
            sims = emb @ emb[i]  # (n_texts,)
            sims[i] = -1
            sims[sims > 0.98] = -1  # not the text itself under another spelling
            top = np.argpartition(-sims, neighbours)[:neighbours]
            j = int(rng.choice(list(top)))
            hyps[i] = (texts[j], emb[j])
        else:
            noisy.append(noised(texts[i], rng))
            noisy_src.append(i)
    if noisy:
        noisy_emb = embed(noisy)
        for k, i in enumerate(noisy_src):
            hyps[i] = (noisy[k], noisy_emb[k])
    for i, (hyp, hyp_emb) in hyps.items():
        examples.append(
            {
                "ids": model.encode_text(texts[i]),
                "target": emb[i],
                "hyp_ids": model.encode_text(hyp),
                "hyp_emb": hyp_emb,
            }
        )
    rng.shuffle(examples)
    return examples


TRAINABLE = {
    "projector": lambda name: False,
    "projector+norms": lambda name: "norm" in name,
    "all": lambda name: True,
}


def trainable_lm_parameters(model: Vec2Text) -> list[tuple[str, nn.Parameter]]:
    """The LM parameters trained under ``config.trainable`` (the rest are frozen)."""
    keep = TRAINABLE[model.config.trainable]
    out = []
    for name, param in model.lm.named_parameters():
        param.requires_grad_(keep(name))
        if param.requires_grad:
            out.append((name, param))
    return out


def train(
    model: Vec2Text,
    examples: list[dict],
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    val_examples: list[dict] | None = None,
) -> list[dict[str, float]]:
    """Train the projector (and the chosen LM parameters) on prepared examples.

    Returns:
        The log: one dict per logged step (step, loss, elapsed seconds, learning rate).
    """
    cfg = model.config
    if not examples:
        raise UserError("no training examples")
    lm_params = [p for _, p in trainable_lm_parameters(model)]
    groups = [{"params": [*model.projector.parameters(), model.separator], "lr": cfg.learning_rate}]
    if lm_params:
        groups.append({"params": lm_params, "lr": cfg.lm_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    start = time.perf_counter()

    def schedule(s: int) -> float:
        """Linear warm-up, then linear decay over the steps or the time budget, whichever ends first."""
        done = s / total
        if cfg.max_train_seconds:
            done = max(done, (time.perf_counter() - start) / cfg.max_train_seconds)
        return min(1.0, (s + 1) / warmup) * max(0.05, 1 - done)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(cfg.seed)
    log: list[dict[str, float]] = []
    step, running = 0, []
    bar = tqdm(total=total, desc="vec2text", unit="step", mininterval=5)
    model.train()
    stop = False
    for _epoch in range(cfg.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            batch = [examples[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running.append(loss.item())
            bar.update(1)
            elapsed = time.perf_counter() - start
            stopping = bool(cfg.max_train_seconds and elapsed > cfg.max_train_seconds) or (
                should_stop is not None and should_stop()
            )
            if step % 10 == 0 or step == total or stopping:
                entry = {
                    "step": step,
                    "loss": float(np.mean(running)),
                    "seconds": elapsed,
                    "lr": scheduler.get_last_lr()[0],
                }
                running = []
                log.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.3f}")
            if progress is not None:
                progress(step, total, {"loss": loss.item(), "seconds": elapsed, "lr": scheduler.get_last_lr()[0]})
            if stopping:
                stop = True
                break
        if stop:
            break
    bar.close()
    if val_examples:
        log.append(
            {
                "step": step,
                "val_loss": evaluate_loss(model, val_examples, cfg.batch_size),
                "seconds": time.perf_counter() - start,
            }
        )
    model.eval()
    logger.info("trained %d steps in %.0f s", step, time.perf_counter() - start)
    return log


def train_on_texts(
    texts: list[str], config: Vec2TextConfig, device: str | None = None, cache_dir: str | Path | None = None
) -> tuple[Vec2Text, list[dict[str, float]]]:
    """A model trained on ``texts`` from scratch: the sentence model of ``config.embedder``
    embeds them (cached on disk under ``cache_dir``), SmolLM2 is wrapped by :meth:`Vec2Text.build`,
    and :func:`train` runs on :func:`make_examples`, up to 64 examples (a tenth) held out.

    Returns:
        The model and the training log (its last entry the held-out loss).
    """
    from embshared.bench import cached_embeddings
    from embshared.models import load_sentence_transformer, load_smollm2
    from embshared.runtime import pick_device

    device = pick_device(device)
    embed = sentence_embedder(load_sentence_transformer(config.embedder, device=device))
    start = time.perf_counter()
    emb = cached_embeddings(texts, embed, cache_dir, config.embedder)
    logger.info("embedded in %.0f s", time.perf_counter() - start)
    lm, tokenizer = load_smollm2(device=device)
    model = Vec2Text.build(lm, tokenizer, emb.shape[1], config).to(device)
    examples = make_examples(model, texts, emb, embed, config.correction_fraction, config.seed)
    n_val = min(64, len(examples) // 10)
    log = train(model, examples[n_val:], val_examples=examples[:n_val])
    return model, log


@torch.no_grad()
def evaluate_loss(model: Vec2Text, examples: list[dict], batch_size: int = 16) -> float:
    """Mean loss over examples (per batch, averaged)."""
    model.eval()
    losses = [model.loss(examples[i : i + batch_size]).item() for i in range(0, len(examples), batch_size)]
    return float(np.mean(losses))


# ---------------------------------------------------------------------------------------
# fluency


@torch.no_grad()
def perplexity(lm, tokenizer, texts: Sequence[str], batch_size: int = 16) -> float:
    """Token-level perplexity of ``texts`` under a plain LM (a fluency figure; lower is more fluent).

    Each text is scored after the document-start token (``<|endoftext|>`` for SmolLM2); the perplexity is exp of the mean
    negative log-likelihood over all scored tokens.
    """
    lm.eval()
    start_id = document_start_id(tokenizer)
    device = next(lm.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for i in range(0, len(texts), batch_size):
        ids = [[start_id, *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts[i : i + batch_size]]
        ids = [x for x in ids if len(x) > 1]
        if not ids:
            continue
        width = max(map(len, ids))
        inp = torch.zeros(len(ids), width, dtype=torch.long, device=device)
        lab = torch.full((len(ids), width), -100, dtype=torch.long, device=device)
        mask = torch.zeros(len(ids), width, dtype=torch.long, device=device)
        for r, x in enumerate(ids):
            inp[r, : len(x)] = torch.tensor(x)
            lab[r, 1 : len(x)] = torch.tensor(x[1:])
            mask[r, : len(x)] = 1
        logits = lm(input_ids=inp, attention_mask=mask).logits[:, :-1]  # (batch, width - 1, vocab)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), lab[:, 1:], ignore_index=-100, reduction="sum")
        total_nll += nll.item()
        total_tokens += int((lab[:, 1:] != -100).sum())
    return float(math.exp(total_nll / max(total_tokens, 1)))


# ---------------------------------------------------------------------------------------
# persistence


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
    import json

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
