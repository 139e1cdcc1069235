"""Augmented views of a record for contrastive training.

A training pair is, with probability ``query_view_prob``, a *query-shaped* view of the
record against the full record text (what search embeds), else two record views:

- query-shaped views (:meth:`Augmenter.query_view`), one kind drawn by the weights
  ``query_field_weight``, ``query_span_weight``, ``query_code_weight``,
  ``query_words_weight``: one field's whole value (``field_value``; a title, a name), a
  run of words of a field (``crop_span``), a token holding a digit (``code_token``; a code,
  a number, a year), or a few words of one field in their order but not adjacent
  (``word_sample``, a keyword query). Then character noise (:func:`embedding_model.typos.noisy_words`:
  insertions, deletions, transpositions, substitutions with the ``noise_*`` probabilities)
  and digit masking. These teach "a query finds its record", typos included.
- record views, each drawn independently from the record's segments:

1. ``crop_span`` (probability ``span_crop_prob``): the view is a run of words from one
   field, without its key: a query-like view that teaches the model to match free text
   against whole records. Spans come from the part of the record the model reads (its
   first ``max_chars`` characters), so both views share their content.
2. Otherwise ``drop_fields`` (each field with ``field_drop_prob``, at least one kept),
   ``shuffle_fields`` (with ``field_shuffle_prob``) and, with ``key_drop_prob``, the values
   are written without their ``key=``.
3. ``mask_digits`` replaces each digit by ``#`` with ``digit_mask_prob`` (prices, SKUs and
   years then cannot be matched by their digits alone).

With a teacher (distillation, :mod:`embedding_model.teacher`), the query-shaped pairs are
built from views the teacher embedded once: :meth:`Augmenter.clean_query_views` draws a
record's clean views (the teacher's inputs), and :meth:`Augmenter.distill_pair` pairs a noisy
copy of one of them with a noisy copy of the record (:meth:`Augmenter.student_noise`: typos,
case, missing / extra spaces, digit masking; field order for the record). Record-view pairs
stay as above. Without a teacher none of this runs, so the draws (and the trained weights)
are those of the self-supervised training.

All randomness comes from the ``random.Random`` passed in, so views are reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from embedding_model.records import Segment, segments_to_text, visible_segments
from embedding_model.typos import CharNoise, case_noise, noisy_words, space_noise
from embedding_model.vocab import MASK_CHAR

QUERY_KINDS = ("field", "span", "code", "words")


def drop_fields(segments: Sequence[Segment], prob: float, rng: random.Random) -> list[Segment]:
    """Drop each segment with probability ``prob``; one random segment survives if all would go."""
    kept = [s for s in segments if rng.random() >= prob]
    if not kept and segments:
        kept = [segments[rng.randrange(len(segments))]]
    return kept


def shuffle_fields(segments: Sequence[Segment], prob: float, rng: random.Random) -> list[Segment]:
    """With probability ``prob``, the segments in a random order; otherwise unchanged."""
    out = list(segments)
    if len(out) > 1 and rng.random() < prob:
        rng.shuffle(out)
    return out


_DIGIT = re.compile(r"\d")


def mask_digits(text: str, prob: float, rng: random.Random) -> str:
    """Replace each digit by ``#`` with probability ``prob``."""
    if prob <= 0.0:
        return text
    return _DIGIT.sub(lambda m: MASK_CHAR if rng.random() < prob else m.group(), text)


def crop_span(segments: Sequence[Segment], min_words: int, max_words: int, rng: random.Random) -> str:
    """A contiguous run of ``min_words``..``max_words`` words from one segment's value.

    The segment is chosen with probability proportional to its word count, so long text
    fields give most of the crops, as queries mostly target them.
    """
    words_per_segment = [value.split() for _, value in segments]
    weights = [len(w) for w in words_per_segment]
    if not any(weights):
        return ""
    words = rng.choices(words_per_segment, weights=weights, k=1)[0]
    length = min(len(words), rng.randint(min_words, max_words))
    start = rng.randint(0, len(words) - length)
    return " ".join(words[start : start + length])


def field_value(segments: Sequence[Segment], rng: random.Random) -> str:
    """One field's whole value, the field chosen uniformly (a title, a name, a category)."""
    if not segments:
        return ""
    return segments[rng.randrange(len(segments))][1]


_CODE = re.compile(r"\S*\d\S*")


def code_token(segments: Sequence[Segment], rng: random.Random) -> str:
    """A whitespace token holding a digit (a code, a number, a year), chosen uniformly; "" if none.

    Punctuation around the token (``(2024),``) is stripped; inner punctuation (``AB-12.5``) stays.
    """
    tokens = [m.group().strip(".,;:()[]{}\"'") for _, value in segments for m in _CODE.finditer(value)]
    tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    return tokens[rng.randrange(len(tokens))] if tokens else ""


def word_sample(segments: Sequence[Segment], min_words: int, max_words: int, rng: random.Random) -> str:
    """``min_words``..``max_words`` distinct positions of one field's words, kept in their order.

    The field is chosen with probability proportional to its word count (as in
    :func:`crop_span`); unlike a span, the words need not be adjacent, as in a keyword query.
    """
    words_per_segment = [value.split() for _, value in segments]
    weights = [len(w) for w in words_per_segment]
    if not any(weights):
        return ""
    words = rng.choices(words_per_segment, weights=weights, k=1)[0]
    count = min(len(words), rng.randint(min_words, max_words))
    return " ".join(words[i] for i in sorted(rng.sample(range(len(words)), count)))


@dataclass
class Augmenter:
    """Draws one augmented text view of a record's segments (see the module docstring)."""

    field_drop_prob: float = 0.2
    field_shuffle_prob: float = 0.5
    digit_mask_prob: float = 0.1
    key_drop_prob: float = 0.3
    span_crop_prob: float = 0.3
    span_min_words: int = 3
    span_max_words: int = 16
    max_chars: int | None = None
    query_view_prob: float = 0.0
    query_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # QUERY_KINDS order
    query_min_words: int = 2
    query_max_words: int = 8
    noise: CharNoise = field(default_factory=CharNoise)
    case_prob: float = 0.0  # distillation views only
    space_prob: float = 0.0  # distillation views only

    @classmethod
    def from_config(cls, cfg) -> Augmenter:
        return cls(
            field_drop_prob=cfg.field_drop_prob,
            field_shuffle_prob=cfg.field_shuffle_prob,
            digit_mask_prob=cfg.digit_mask_prob,
            key_drop_prob=cfg.key_drop_prob,
            span_crop_prob=cfg.span_crop_prob,
            span_min_words=cfg.span_min_words,
            span_max_words=cfg.span_max_words,
            max_chars=cfg.max_chars,
            query_view_prob=cfg.query_view_prob,
            query_weights=(
                cfg.query_field_weight,
                cfg.query_span_weight,
                cfg.query_code_weight,
                cfg.query_words_weight,
            ),
            query_min_words=cfg.query_min_words,
            query_max_words=cfg.query_max_words,
            noise=CharNoise.from_config(cfg),
            case_prob=cfg.noise_case_prob,
            space_prob=cfg.noise_space_prob,
        )

    def view(self, segments: Sequence[Segment], rng: random.Random) -> str:
        """One random view of a record as text."""
        if rng.random() < self.span_crop_prob:
            source = visible_segments(segments, self.max_chars) if self.max_chars else segments
            text = crop_span(source, self.span_min_words, self.span_max_words, rng)
        else:
            kept = shuffle_fields(drop_fields(segments, self.field_drop_prob, rng), self.field_shuffle_prob, rng)
            text = segments_to_text(kept, with_keys=rng.random() >= self.key_drop_prob)
        if self.max_chars:
            text = text[: self.max_chars]  # the model reads no further; masking the rest would be wasted work
        return mask_digits(text, self.digit_mask_prob, rng)

    def query_view(self, segments: Sequence[Segment], rng: random.Random, kind: str | None = None) -> str:
        """One query-shaped view (of ``kind``, else a kind drawn by ``query_weights``), noised and digit-masked.

        A kind with nothing to offer (no digit in the record for ``code``) falls back to a span.
        """
        text = self.clean_query_view(segments, rng, kind)
        text = noisy_words(text, self.noise, rng)
        return mask_digits(text, self.digit_mask_prob, rng)

    def clean_query_view(self, segments: Sequence[Segment], rng: random.Random, kind: str | None = None) -> str:
        """:meth:`query_view` before its noise: the text a query of that kind would be, spelt as in the record."""
        source = visible_segments(segments, self.max_chars) if self.max_chars else list(segments)
        if kind is None:
            kind = rng.choices(QUERY_KINDS, weights=self.query_weights, k=1)[0]
        if kind == "field":
            text = field_value(source, rng)
        elif kind == "code":
            text = code_token(source, rng)
        elif kind == "words":
            text = word_sample(source, self.query_min_words, self.query_max_words, rng)
        elif kind == "span":
            text = ""
        else:
            raise ValueError(f"unknown query view {kind!r} (choose from {', '.join(QUERY_KINDS)})")
        if not text:
            text = crop_span(source, self.query_min_words, self.query_max_words, rng)
        return text

    def clean_query_views(self, segments: Sequence[Segment], count: int, rng: random.Random) -> list[str]:
        """Up to ``count`` distinct clean query-shaped views of a record (fewer when draws repeat), in draw order.

        These are what a teacher embeds once; the student later sees noisy copies of them.
        """
        views: dict[str, None] = {}
        for _ in range(count):
            text = " ".join(self.clean_query_view(segments, rng).split())
            if text:
                views.setdefault(text)
        return list(views)

    def student_noise(self, text: str, rng: random.Random) -> str:
        """The student's copy of a text the teacher sees clean: typos, missing / extra spaces, case, digit masks."""
        text = noisy_words(text, self.noise, rng)
        text = space_noise(text, self.space_prob, rng, self.noise.min_letters)
        text = case_noise(text, self.case_prob, rng)
        return mask_digits(text, self.digit_mask_prob, rng)

    def noisy_record(self, segments: Sequence[Segment], rng: random.Random) -> str:
        """The student's copy of the record the teacher embeds: the part the model reads, fields shuffled
        with ``field_shuffle_prob``, each value noised (keys stay as written: records' keys carry no typos)."""
        source = visible_segments(segments, self.max_chars) if self.max_chars else list(segments)
        shuffled = shuffle_fields(source, self.field_shuffle_prob, rng)
        text = segments_to_text([(key, self.student_noise(value, rng)) for key, value in shuffled])
        return text[: self.max_chars] if self.max_chars else text

    def distill_pair(
        self, segments: Sequence[Segment], views: Sequence[str], rng: random.Random
    ) -> tuple[str, str, int | None]:
        """A training pair with a teacher: (noisy copy of one of ``views``, noisy copy of the record, its index)
        with ``query_view_prob``, else two record views and None (a pair without teacher targets).

        Args:
            segments: the record.
            views: its clean query-shaped views that the teacher embedded.
            rng: the source of randomness.
        """
        if views and rng.random() < self.query_view_prob:
            index = rng.randrange(len(views))
            return self.student_noise(views[index], rng), self.noisy_record(segments, rng), index
        return self.view(segments, rng), self.view(segments, rng), None

    def pair(self, segments: Sequence[Segment], rng: random.Random) -> tuple[str, str]:
        """A training pair: (query-shaped view, full record text) with ``query_view_prob``, else two record views."""
        if self.query_view_prob > 0 and rng.random() < self.query_view_prob:
            full = segments_to_text(segments)
            return self.query_view(segments, rng), full[: self.max_chars] if self.max_chars else full
        return self.view(segments, rng), self.view(segments, rng)
