"""Text clean-up for PDF text: Unicode normalisation, ligatures and words broken at line ends.

PDF text layers carry typesetting artefacts that hurt both question generation and
retrieval: ligature glyphs ("ﬁ" for "fi"), soft hyphens, non-breaking and zero-width
spaces, and words split across lines by justification ("repre-" + "sentation"). This
module undoes them. Whether a line-end hyphen is a break or a real compound hyphen
("non-painful", "BERT-Base") is decided from the document's own vocabulary first, then
by a few rules (see :func:`join_hyphenated`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

#: characters removed outright (soft hyphen, zero-width space/joiners, BOM).
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
#: ligature glyphs NFKC leaves alone or that some fonts map to private code points.
_EXTRA_LIGATURES = {"\ua732": "AA", "\ua733": "aa", "\u0132": "IJ", "\u0133": "ij", "\u0152": "OE", "\u0153": "oe"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v]+")

#: prefixes that usually keep their hyphen when a word is split after them ("non-|painful").
COMPOUND_PREFIXES = frozenset({"non", "self", "well", "cross", "multi", "semi", "anti", "quasi", "pseudo", "co"})

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
_LIGATURE_CHARS = re.compile("[\ufb00-\ufb06]")


def normalise_text(text: str) -> str:
    """NFKC-normalise ``text`` (ligatures, full-width forms, odd spaces) and drop invisible
    and control characters; runs of spaces become one space.

    Args:
        text: raw text from a PDF text layer or TEI file.

    Returns:
        The cleaned text (line breaks are kept).
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    for glyph, letters in _EXTRA_LIGATURES.items():
        text = text.replace(glyph, letters)
    text = _CONTROL.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


_TRAILING_FOOTNOTE = re.compile(r"(?<=[.!?])\s?\d{1,2}$")


def strip_footnote_marker(paragraph: str) -> str:
    """Drop a footnote number left after a paragraph's last full stop ("benchmark. 1")."""
    return _TRAILING_FOOTNOTE.sub("", paragraph.rstrip())


def has_ligatures(text: str) -> bool:
    """True if ``text`` still contains a ligature glyph (U+FB00..U+FB06)."""
    return bool(_LIGATURE_CHARS.search(text))


def word_counts(lines: Iterable[str]) -> Counter:
    """Lower-cased word counts of ``lines``, used to decide line-end hyphens."""
    counts: Counter = Counter()
    for line in lines:
        counts.update(w.lower() for w in _WORD.findall(line))
    return counts


def join_hyphenated(left: str, right: str, vocabulary: Counter | None = None) -> str:
    """Join the word ``left`` (ending in "-") with ``right``, the first word of the next line.

    Rules, in order:
      1. ``right`` starting with a capital or a digit keeps the hyphen ("BERT-Base", "COVID-19").
      2. The document's own vocabulary: the form ("pretrained" vs "pre-trained") seen more
         often elsewhere in the document wins.
      3. A known compound prefix ("non-", "self-", "multi-") keeps the hyphen.
      4. Otherwise the hyphen was a line break: drop it ("ingre-" + "dient" -> "ingredient").

    Args:
        left: the last word of a line, ending in "-".
        right: the first word of the next line.
        vocabulary: lower-cased word counts of the document.

    Returns:
        The joined word.
    """
    stem = left[:-1]
    if not right or not stem or not stem[-1].isalpha():
        return left + right
    if not right[0].islower():
        return left + right
    vocabulary = vocabulary or Counter()
    core = re.match(r"[A-Za-z]+", right)
    right_core = core.group(0).lower() if core else right.lower()
    stem_core = re.findall(r"[A-Za-z]+$", stem)
    stem_last = stem_core[0].lower() if stem_core else stem.lower()
    joined_count = vocabulary.get(stem_last + right_core, 0)
    hyphen_count = vocabulary.get(f"{stem_last}-{right_core}", 0)
    if hyphen_count > joined_count:
        return left + right
    if joined_count > 0:
        return stem + right
    if stem_last in COMPOUND_PREFIXES:
        return left + right
    return stem + right


def join_lines(lines: Sequence[str], vocabulary: Counter | None = None) -> str:
    """Join the lines of one paragraph into a single string, undoing line-end hyphenation.

    Args:
        lines: the lines, in reading order.
        vocabulary: lower-cased word counts of the whole document (see :func:`word_counts`).

    Returns:
        One line of text.
    """
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        if out.endswith("-") and not out.endswith(" -") and not out.endswith("--"):
            head, _, last = out.rpartition(" ")
            first, _, rest = line.partition(" ")
            joined = join_hyphenated(last, first, vocabulary)
            out = (f"{head} {joined}" if head else joined) + (f" {rest}" if rest else "")
        elif out.endswith(("\u2013", "\u2014", "/")):
            out += line  # "12–" + "15", "and/" + "or"
        else:
            out += " " + line
    return _SPACES.sub(" ", out).strip()


def broken_words(text: str) -> list[str]:
    """Words still broken by a hyphen and a space ("repre- sentation"), for checks and tests.

    A real compound followed by a space ("token- and sentence-level") is listed too; callers
    compare against the vocabulary when they need to tell them apart.
    """
    return re.findall(r"\b[a-z]{2,}- [a-z]{2,}\b", text)
