"""Augmented views of a record for contrastive training.

Each view is drawn independently from the record's segments:

1. ``crop_span`` (probability ``span_crop_prob``): the view is a run of words from one
   field, without its key: a query-like view that teaches the model to match free text
   against whole records. Spans come from the part of the record the model reads (its
   first ``max_chars`` characters), so both views share their content.
2. Otherwise ``drop_fields`` (each field with ``field_drop_prob``, at least one kept),
   ``shuffle_fields`` (with ``field_shuffle_prob``) and, with ``key_drop_prob``, the values
   are written without their ``key=``.
3. ``mask_digits`` replaces each digit by ``#`` with ``digit_mask_prob`` (prices, SKUs and
   years then cannot be matched by their digits alone).

All randomness comes from the ``random.Random`` passed in, so views are reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from embedding_model.records import KEY_SEP, SEGMENT_SEP, Segment, segments_to_text
from embedding_model.vocab import MASK_CHAR


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


def visible_segments(segments: Sequence[Segment], max_chars: int) -> list[Segment]:
    """The segments cut to what the model reads of the full record text (its first ``max_chars``)."""
    out: list[Segment] = []
    used = 0
    for key, value in segments:
        room = max_chars - used - len(key) - len(KEY_SEP)
        if room <= 0:
            break
        out.append((key, value[:room]))
        used += len(key) + len(KEY_SEP) + len(value) + len(SEGMENT_SEP)
    return out


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
