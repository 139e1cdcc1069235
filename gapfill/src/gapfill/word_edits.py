"""Word edits towards a target embedding, with words from a collection's vocabulary.

The LM-proposed token edits of :func:`gapfill.guided_search.refine` only try tokens the LM
already finds likely at a position, so a text stuck one content word away from its target
("A skateboarder jumps off the *ramp*" for "... off the *stairs*") stays stuck. These edits
bring the missing words from the other side: the words of a collection (its vocabulary,
each embedded once with the sentence model) are ranked by how well their embedding points
along the *residual* ``target - embed(text)``, i.e. what the text still lacks, and the top
ones are tried as replacements of every word and as insertions at every position, beside
every single-word deletion. All edits are embedded; the ``rescored`` closest are scored by
the LM, and the best by ``cosine + fluency_weight * mean log-prob`` is kept if it beats the
text. Rounds repeat until no edit helps.

The vocabulary is the inverting side's knowledge of the domain (the words of the texts the
service was initialised with, or of the vec2text training texts); nothing of the target
text is used except its embedding.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from embshared.errors import UserError
from embshared.files import atomic_dir
from gapfill.guided_search import Candidate, EmbedFn, LMProposer, _EmbedCache

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)?")
# a whitespace-separated piece: leading punctuation, the word, trailing punctuation
PIECE = re.compile(r"^(\W*)(.*?)(\W*)$")

WORDS_FILE = "vocabulary.json"
EMBEDDINGS_FILE = "vocabulary.safetensors"


@dataclass
class Vocabulary:
    """Words (in their most frequent spelling) and their (n, dim) L2-normalised embeddings."""

    words: list[str]
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        if len(self.words) != len(self.embeddings):
            raise ValueError(f"{len(self.words)} words but {len(self.embeddings)} embeddings")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def from_texts(cls, texts: Iterable[str], embed: EmbedFn, max_words: int = 20000, min_count: int = 1) -> Vocabulary:
        """The ``max_words`` most frequent words of ``texts`` seen at least ``min_count`` times."""
        counts: Counter[str] = Counter()
        spellings: dict[str, Counter[str]] = {}
        for text in texts:
            for w in WORD.findall(text):
                key = w.lower()
                counts[key] += 1
                spellings.setdefault(key, Counter())[w] += 1
        keys = [k for k, c in counts.most_common(max_words) if c >= min_count]
        if not keys:
            raise UserError("no words to build a vocabulary from")
        words = [spellings[k].most_common(1)[0][0] for k in keys]
        return cls(words, np.asarray(embed(words), dtype=np.float32))

    def suggest(self, direction: np.ndarray, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """The ``k`` words whose embeddings point furthest along ``direction``."""
        skip = {w.lower() for w in exclude}
        scores = self.embeddings @ np.asarray(direction, dtype=np.float32)  # (n,)
        order = np.argsort(-scores)
        out = []
        for i in order:
            if self.words[i].lower() not in skip:
                out.append(self.words[i])
                if len(out) == k:
                    break
        return out

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        with atomic_dir(path, overwrite=overwrite) as tmp:
            save_file({"embeddings": np.ascontiguousarray(self.embeddings)}, str(tmp / EMBEDDINGS_FILE))
            (tmp / WORDS_FILE).write_text(json.dumps(self.words, ensure_ascii=False), encoding="utf-8")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        if not (path / WORDS_FILE).is_file():
            raise UserError(f"{path}: no {WORDS_FILE} (not a saved vocabulary)")
        words = json.loads((path / WORDS_FILE).read_text(encoding="utf-8"))
        return cls(words, load_file(str(path / EMBEDDINGS_FILE))["embeddings"])


def _split(text: str) -> list[tuple[str, str, str]]:
    """Whitespace pieces as (leading punctuation, word, trailing punctuation)."""
    out = []
    for piece in text.split():
        m = PIECE.match(piece)
        out.append((m.group(1), m.group(2), m.group(3)) if m else ("", piece, ""))
    return out


def _join(pieces: Sequence[tuple[str, str, str]]) -> str:
    return " ".join(f"{a}{w}{z}" for a, w, z in pieces if f"{a}{w}{z}")


def _uncapitalised(word: str) -> str:
    """``word`` as it would read inside a sentence: "The" -> "the", but "I", "DNA", "Paris" stay."""
    if word in {"A", "The", "An"} or (len(word) > 1 and word[1:].islower() and word.lower() in _FUNCTION_WORDS):
        return word.lower()
    return word


_FUNCTION_WORDS = {
    "a", "an", "the", "this", "that", "these", "those", "there", "it", "he", "she", "they", "we", "you",
    "in", "on", "at", "of", "for", "with", "to", "from", "by", "and", "but", "or", "some", "two", "three",
    "many", "several", "one", "his", "her", "their", "our", "my", "is", "are", "was", "were",
}  # fmt: skip


def word_edits(text: str, words: Sequence[str]) -> list[str]:
    """Every deletion of one word, and every replacement / insertion with one of ``words``.

    Punctuation around a replaced word stays; a word inserted at the very start is capitalised
    and the old first word lower-cased when it was only capitalised as the first word.
    """
    pieces = _split(text)
    out: list[str] = []
    if len(pieces) > 1:
        for i in range(len(pieces)):
            rest = [*pieces[:i], *pieces[i + 1 :]]
            if i == 0:
                a, w, z = rest[0]
                rest[0] = (a, w[:1].upper() + w[1:], z)
            if i == len(pieces) - 1:  # the final punctuation stays
                a, w, z = rest[-1]
                rest[-1] = (a, w, pieces[-1][2])
            out.append(_join(rest))
    for new in words:
        for i, (a, w, z) in enumerate(pieces):
            if w.lower() != new.lower():
                word = new[:1].upper() + new[1:] if i == 0 and w[:1].isupper() else new
                out.append(_join([*pieces[:i], (a, word, z), *pieces[i + 1 :]]))
        for i in range(len(pieces) + 1):
            if i == 0:
                first = [(a, _uncapitalised(w), z) for a, w, z in pieces[:1]]
                out.append(_join([("", new[:1].upper() + new[1:], ""), *first, *pieces[1:]]))
            elif i == len(pieces):  # before the final punctuation
                a, w, z = pieces[-1]
                out.append(_join([*pieces[:-1], (a, w, ""), ("", new, z)]))
            else:
                out.append(_join([*pieces[:i], ("", new, ""), *pieces[i:]]))
    return list(dict.fromkeys(t for t in out if t and t != text))


def _appended(text: str, word: str) -> str:
    """``text`` with ``word`` added as its last word (before the final punctuation), as :func:`word_edits` does."""
    pieces = _split(text)
    a, w, z = pieces[-1]
    return _join([*pieces[:-1], (a, w, ""), ("", word, z)])


def refine_words(
    text: str,
    target: np.ndarray,
    embed: EmbedFn,
    vocabulary: Vocabulary,
    scorer: LMProposer | None = None,
    rounds: int = 6,
    top_words: int = 24,
    rescored: int = 12,
    fluency_weight: float = 0.05,
    deadline: float | None = None,
    screen: int = 0,
) -> Candidate:
    """Edit ``text`` word by word towards ``target`` (see the module docstring).

    Args:
        scorer: an LM whose mean token log-prob is the fluency term (None: cosine only).
        rounds: at most this many accepted edits.
        top_words: vocabulary words tried per round (half along the residual, half along
            the target itself, which keeps proposing on-topic words once the residual is noise).
        rescored: closest edits whose fluency the LM scores per round.
        deadline: a ``time.perf_counter()`` value: no round starts that would end after it
            (by the previous round's duration).
        screen: with ``0 < screen < top_words``, each round first tries every word once (added
            at the end of the text) and keeps the ``screen`` words that move the text closest to
            the target for the edits at every position: about ``top_words / screen`` times
            fewer texts to embed per round.

    Returns:
        The best text found (``text`` itself if no edit helps); never a lower score than ``text``.
    """
    target = np.asarray(target, dtype=np.float32)
    target = target / max(float(np.linalg.norm(target)), 1e-12)
    cache = _EmbedCache(embed, target)

    def fluency(texts: list[str]) -> list[float]:
        if scorer is None or fluency_weight == 0:
            return [0.0] * len(texts)
        return scorer.sequence_logprobs([scorer.encode(t) for t in texts])[0]

    cos = cache.cosines([text])[0]
    lp = fluency([text])[0]
    best = Candidate(text, cos, lp, cos + fluency_weight * lp)
    last = 0.0  # seconds of the previous round
    for _ in range(rounds):
        began = time.perf_counter()
        if deadline is not None and began + last > deadline:
            break
        current = embed([best.text])[0]  # (dim,)
        residual = target - current * float(current @ target)
        present = [w for _, w, _ in _split(best.text)]
        n_res = max(1, top_words // 2)
        words = vocabulary.suggest(residual, n_res, exclude=present)
        words += vocabulary.suggest(target, top_words - n_res, exclude=[*present, *words])
        if 0 < screen < len(words) and present:
            probes = [_appended(best.text, w) for w in words]  # also among the edits below (cached)
            probe_cos = cache.cosines(probes)
            words = [words[j] for j in sorted(range(len(words)), key=lambda j: -probe_cos[j])[:screen]]
        texts = word_edits(best.text, words)
        if not texts:
            break
        cos_all = np.asarray(cache.cosines(texts))
        order = np.argsort(-cos_all)[:rescored]
        chosen = [texts[j] for j in order]
        lps = fluency(chosen)
        score, j, lp = max((float(cos_all[j]) + fluency_weight * m, j, m) for j, m in zip(order, lps))
        if score <= best.score:
            break
        best = Candidate(texts[j], float(cos_all[j]), lp, score)
        last = time.perf_counter() - began
    return best
