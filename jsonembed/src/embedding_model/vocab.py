"""The character vocabulary: built from the training text, with PAD and UNK.

Index 0 is PAD (zero vector, never trained), 1 is UNK: every character not in the
vocabulary maps to it, so unseen scripts or symbols at search time never fail. The digit
mask character of the augmentations is always in the vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

PAD, UNK = 0, 1
SPECIALS = ("<pad>", "<unk>")
MASK_CHAR = "#"


class CharVocab:
    """Characters <-> ids.

    Args:
        chars: the vocabulary's characters (ids 2, 3, ... in this order).
        lowercase: lower-case text before lookup.
    """

    def __init__(self, chars: Sequence[str], lowercase: bool = True):
        self.chars = list(chars)
        self.lowercase = lowercase
        self._index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        # code point -> id lookup table for the vectorised batch (every code point past its end is UNK)
        size = max((ord(c) for c in self.chars), default=0) + 1
        self._table = np.full(size, UNK, dtype=np.int64)
        for c, i in self._index.items():
            self._table[ord(c)] = i

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, lowercase: bool = True) -> CharVocab:
        """Keep characters seen at least ``min_freq`` times, most frequent first (ties by code point)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text.lower() if lowercase else text)
        kept = [c for c, n in counts.items() if n >= min_freq and len(c) == 1]
        if MASK_CHAR not in kept:
            kept.append(MASK_CHAR)
        kept.sort(key=lambda c: (-counts[c], c))
        return cls(kept, lowercase)

    def __len__(self) -> int:
        return len(self.chars) + len(SPECIALS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars and self.lowercase == other.lowercase

    def encode(self, text: str, max_chars: int) -> list[int]:
        """Ids of the first ``max_chars`` characters (UNK for unknown ones)."""
        text = text[:max_chars]
        if self.lowercase:
            text = text.lower()
        index = self._index
        return [index.get(c, UNK) for c in text]

    def _ids(self, text: str, max_chars: int) -> np.ndarray:
        """:meth:`encode` as an int64 array, by table lookup on the code points."""
        text = text[:max_chars]
        if self.lowercase:
            text = text.lower()
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.full(len(codes), UNK, dtype=np.int64)
        known = codes < len(self._table)
        ids[known] = self._table[codes[known]]
        return ids

    def batch(self, texts: Sequence[str], max_chars: int, min_length: int = 1) -> torch.Tensor:
        """A (batch, length) LongTensor padded with PAD to the longest text (at least ``min_length``)."""
        encoded = [self._ids(t, max_chars) for t in texts]
        length = max(min_length, max((len(e) for e in encoded), default=0))
        out = np.full((len(encoded), length), PAD, dtype=np.int64)
        for row, ids in enumerate(encoded):
            out[row, : len(ids)] = ids
        return torch.from_numpy(out)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "lowercase": self.lowercase, "specials": list(SPECIALS)}

    @classmethod
    def from_dict(cls, data: dict) -> CharVocab:
        if list(data.get("specials", [])) != list(SPECIALS):
            raise ValueError(f"unexpected special tokens {data.get('specials')}")
        chars = data["chars"]
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ValueError("'chars' must be a list of single characters")
        return cls(chars, bool(data["lowercase"]))
