"""Text for a map point that lands there: fluent LM candidates, moved towards the point by landing score.

1. **Candidates**: the instruction LM (SmolLM2-135M-Instruct) is shown the documents nearest
   to the point and asked for one sentence joining their topics (all of them, and pairs
   from opposite sides of the point); several answers are sampled per prompt. They are fluent
   by construction and already about the region's topics.
2. **Rewrites**: the best candidates are rewritten by the same LM (sampled), which moves them
   in small, still fluent steps.
3. **Word edits**: words of the collection's vocabulary that point along the direction that
   moves the text's landing point towards the target (the encoder's gradient, see
   :meth:`gapfill.landing.LandingScorer.direction`) replace, join or leave the best text.

Every text is scored by :class:`gapfill.landing.LandingScorer` (distance in radii after
embed -> encoder, plus fluency); the best is returned with the top candidates. The answer
time is bounded by ``max_seconds``: after the candidates, a stage (or a round of one) starts
only if its estimated time fits in what is left. The estimate of an LM stage is the
candidate stage's seconds per sampled sequence times its sequences; of a word-edit round,
its edits times the seconds per landed text so far, plus the texts it scores for fluency
times the seconds per fluency score so far.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from gapfill.config import GapTextConfig
from gapfill.guided_search import document_start_id, int8_copy
from gapfill.landing import Circle, EmbedFn, FluencyFn, Landed, LandingScorer, circle_at
from gapfill.parametric_umap import ParametricUMAP
from gapfill.word_edits import Vocabulary, word_edits

JOIN_PROMPT = "Here are some sentences:\n{docs}\n\nWrite one new sentence that joins their topics."
PAIR_PROMPT = "Write one short sentence that combines these two sentences:\n1. {a}\n2. {b}"
REWRITE_PROMPT = "Rewrite this sentence in other words, as one short sentence:\n{text}"

_PREAMBLE = re.compile(
    r"^\s*(?:sure[,!.]?|certainly[,!.]?|okay[,!.]?|here(?:'s| is| are)[^:\n]*:|(?:new |rewritten |combined )?sentence:|answer:)\s*",
    re.IGNORECASE,
)
_META = re.compile(r"\b(?:sentences?|rephras\w*|rewrit\w*|topics?|paraphras\w*)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(]|\d+[.)](?:\s|$))")  # next: a sentence or list item


def clean_answer(text: str, min_words: int = 3) -> str:
    """One sentence from an LM answer: the first non-empty line without a preamble ("Here is a
    sentence:") or quotes, cut after its first sentence; "" when fewer than ``min_words`` words
    remain, when the answer talks about the task ("... can be rephrased as") or was cut off
    before the end of its first sentence."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[0]
    if _PREAMBLE.match(line) and _PREAMBLE.sub("", line).strip() == "" and len(lines) > 1:
        line = lines[1]  # "Here is a sentence:" on a line of its own
    line = _PREAMBLE.sub("", line).strip()
    line = re.sub(r"^\d+[.)]\s*", "", line).strip().strip("\"'“”").strip()
    line = _SENTENCE_END.split(line, maxsplit=1)[0].strip()
    if _META.search(line) or not line.rstrip("\"')]”").endswith((".", "!", "?")):
        return ""
    return line if len(line.split()) >= min_words else ""


class LMSampler:
    """Samples answers of an instruction LM to prompts (its chat template when it has one, else a
    plain ``prompt\\nAnswer:`` ending at a line break).

    With ``int8`` (on a CPU) the answers come from an int8 copy of the LM
    (:func:`~gapfill.guided_search.int8_copy`, about twice as fast); the caller's LM is left as
    it is (the fluency score stays the fp32 model's).
    """

    def __init__(self, lm, tokenizer, int8: bool = False):
        self.lm = int8_copy(lm) if int8 else lm
        self.tokenizer = tokenizer

    def prompt_ids(self, prompt: str) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return tok(text, add_special_tokens=False)["input_ids"]
        return [document_start_id(tok), *tok(f"{prompt}\nAnswer:", add_special_tokens=False)["input_ids"]]

    def sample(self, prompts: Sequence[str], n: int, config: GapTextConfig, seed: int = 0) -> list[list[str]]:
        """``n`` sampled answers to each prompt, cleaned to one sentence each (unusable ones dropped)."""
        raw = self.generate(prompts, n, config, seed)
        return [[c for c in (clean_answer(a) for a in answers) if c] for answers in raw]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], n: int, config: GapTextConfig, seed: int = 0) -> list[list[str]]:
        """``n`` sampled answers to each prompt, as the LM wrote them.

        All prompts go through the LM as one left-padded batch. Each prompt is read once: its
        key/value cache is computed for the distinct prompts and repeated ``n`` times
        (``DynamicCache.batch_repeat_interleave``) before ``generate`` samples from it. Plain
        ``generate(num_return_sequences=n)`` would read every prompt ``n`` times, and on a CPU
        those prompt tokens cost more than the sampled ones.
        """
        from transformers import DynamicCache

        tok = self.tokenizer
        device = next(self.lm.parameters()).device
        rows = [self.prompt_ids(p) for p in prompts]
        width = max(map(len, rows))
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)  # (prompts, width)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        cache = DynamicCache(config=self.lm.config)
        if width > 1:  # the prompts but their last token, once each; positions as generate() counts them
            positions = (mask[:, :-1].cumsum(-1) - 1).clamp_min(0)
            self.lm(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions,
                    past_key_values=cache, use_cache=True)  # fmt: skip
            cache.batch_repeat_interleave(n)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*generation flags.*")
            torch.manual_seed(seed)
            out = self.lm.generate(
                input_ids=ids.repeat_interleave(n, dim=0),  # (prompts * n, width): prompt i's rows i*n..
                attention_mask=mask.repeat_interleave(n, dim=0),
                past_key_values=cache if width > 1 else None,
                do_sample=True,
                temperature=config.temperature,
                top_k=config.top_k,  # (top-p would sort the whole vocabulary at every token: slow on a CPU)
                max_new_tokens=config.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
        answers = tok.batch_decode(out[:, width:], skip_special_tokens=True)  # prompt i's answers: rows i*n..
        return [answers[i * n : (i + 1) * n] for i in range(len(rows))]


@dataclass
class GapText:
    """The text chosen for a point, where it lands, and what was considered."""

    best: Landed
    candidates: list[Landed]  # the top candidates, best first
    circle: Circle
    neighbours: list[int]  # indices of the documents shown to the LM
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_best: dict[str, dict] = field(default_factory=dict)  # the best text after each stage (what it buys)
    considered: int = 0  # texts scored
    kept_from: str = ""  # the stage that produced the best text

    def to_dict(self) -> dict:
        return {
            "text": self.best.text,
            "landed": self.best.landed,
            "distance": self.best.distance,
            "distance_radii": self.best.radii,
            "fluency": self.best.fluency,
            "score": self.best.score,
            "source": self.best.source,
            "target": [self.circle.x, self.circle.y],
            "radius": self.circle.radius,
            "candidates": [c.to_dict() for c in self.candidates],
            "neighbours": self.neighbours,
            "seconds": self.seconds,
            "stage_seconds": self.stage_seconds,
            "stage_best": self.stage_best,
            "considered": self.considered,
        }


def _shorten(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


def opposite_pairs(point: np.ndarray, coords: np.ndarray, k: int = 2) -> list[tuple[int, int]]:
    """Up to ``k`` pairs (i, j) of rows of ``coords`` lying most nearly on opposite sides of ``point``."""
    rel = np.asarray(coords, dtype=np.float64) - np.asarray(point, dtype=np.float64)
    unit = rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T  # (m, m): -1 = opposite sides
    pairs, used = [], set()
    for flat in np.argsort(cos, axis=None):
        i, j = divmod(int(flat), len(coords))
        if i < j and i not in used and j not in used:
            pairs.append((i, j))
            used.update((i, j))
            if len(pairs) == k:
                break
    return pairs


def write_for_point(
    point,
    umap: ParametricUMAP,
    embed: EmbedFn,
    coords: np.ndarray,
    texts: Sequence[str],
    sampler: LMSampler,
    fluency: FluencyFn | None = None,
    vocabulary: Vocabulary | None = None,
    config: GapTextConfig | None = None,
    circle: Circle | None = None,
    top: int = 5,
) -> GapText:
    """Text for a map point, chosen by landing score (see the module docstring).

    Args:
        point: (2,) map coordinates (e.g. a gap's centre).
        umap: the trained map; ``coords`` are its (n, 2) coordinates of the documents ``texts``.
        embed: the sentence embedder the map was fitted on.
        sampler: the instruction LM that writes candidates and rewrites.
        fluency: mean token log-prob per text under the plain LM (None: landing only).
        vocabulary: words for the word edits (None: no word edits).
        circle: the target circle (default: the empty circle at ``point``, see :func:`circle_at`).
        top: candidates returned beside the best.
    """
    cfg = config or GapTextConfig()
    start = time.perf_counter()
    point = np.asarray(point, dtype=np.float32)
    circle = circle or circle_at(point, coords)
    scorer = LandingScorer(
        umap, embed, circle, fluency, cfg.fluency_weight, cfg.inner, cfg.outside_penalty, cfg.refine_landing
    )
    k = min(cfg.n_neighbours, len(texts))
    near = [int(i) for i in np.atleast_1d(cKDTree(coords).query(point, k=k)[1])]
    stages: dict[str, float] = {}
    stage_best: dict[str, dict] = {}

    def fits(seconds: float) -> bool:
        """Whether work estimated at ``seconds`` ends within the budget."""
        return time.perf_counter() - start + seconds <= cfg.max_seconds

    def finish(stage: str, began: float) -> None:
        stages[stage] = time.perf_counter() - began
        ranked = scorer.ranked()
        if ranked:
            b = ranked[0]
            stage_best[stage] = {"text": b.text, "radii": b.radii, "fluency": b.fluency, "score": b.score}

    # 1. candidates joining the neighbours' topics
    t = time.perf_counter()
    shown = [_shorten(texts[i], cfg.max_doc_words) for i in near]  # a long document would slow every prompt
    prompts = [JOIN_PROMPT.format(docs="\n".join(f"- {t}" for t in shown[:4]))]
    prompts += [PAIR_PROMPT.format(a=shown[i], b=shown[j]) for i, j in opposite_pairs(point, coords[near])]
    for answers in sampler.sample(prompts, cfg.samples, cfg, seed=cfg.seed):
        scorer.score(answers, "lm")
    finish("candidates", t)
    per_sequence = stages["candidates"] / (len(prompts) * cfg.samples)  # LM seconds per sampled sequence

    # 2. sampled rewrites of the best ones
    t = time.perf_counter()
    for r in range(cfg.rewrite_rounds):
        best = scorer.ranked()[: cfg.rewrite_best]
        if not best or not fits(per_sequence * len(best) * cfg.samples):
            break
        prompts = [REWRITE_PROMPT.format(text=cand.text) for cand in best]
        for answers in sampler.sample(prompts, cfg.samples, cfg, seed=cfg.seed + r + 1):
            scorer.score(answers, "rewrite")
    finish("rewrites", t)

    # 3. landing-guided word edits of the best text
    t = time.perf_counter()
    if vocabulary is not None and scorer.ranked():
        for _ in range(cfg.word_rounds):
            best = scorer.ranked()[0]
            if best.radii < cfg.edit_until:
                break  # landed inside: edits glue words in and would only cost fluency
            words = vocabulary.suggest(scorer.direction(best.text), cfg.word_top_k)
            edits = word_edits(best.text, words)
            if not fits(scorer.cost(len(edits), min(cfg.rescored, len(edits)))):
                break  # scoring the edits would pass the budget (at the seconds per text measured so far)
            scorer.score(edits, "words", rescore_top=cfg.rescored)
            if scorer.ranked()[0].text == best.text:
                break
    finish("word_edits", t)

    ranked = scorer.ranked()
    if not ranked:  # the LM gave nothing usable: fall back to the nearest document
        ranked = scorer.score([texts[near[0]]], "nearest")
    return GapText(
        best=ranked[0],
        candidates=ranked[:top],
        circle=circle,
        neighbours=near,
        seconds=time.perf_counter() - start,
        stage_seconds=stages,
        stage_best=stage_best,
        considered=len(scorer.ranked()),
        kept_from=ranked[0].source,
    )
