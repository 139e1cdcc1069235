"""A memo of an embedding function by text.

One inversion embeds the same texts many times: the step's proposals again after the guided
search, the refinements and the word edits embedded them, the same partial texts in the
search of every step, the same edits of an unchanged text in later rounds. The memo embeds
each distinct text once and hands every call one batch of the new texts.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

EmbedFn = Callable[[list[str]], np.ndarray]


class EmbeddingCache:
    """``embed`` with a memo: texts seen before are not embedded again (least recently used dropped
    beyond ``max_items``). ``calls``, ``texts`` and ``embedded`` count the work asked and done."""

    def __init__(self, embed: EmbedFn, max_items: int = 200_000):
        self.embed = embed
        self.max_items = max_items
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self.calls = self.texts = self.embedded = 0
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        self.calls += 1
        self.texts += len(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if new:
            start = time.perf_counter()
            emb = np.asarray(self.embed(new), dtype=np.float32)  # (n_new, dim)
            self.seconds += time.perf_counter() - start
            self.embedded += len(new)
            for t, e in zip(new, emb):
                self._memo[t] = e
            while len(self._memo) > self.max_items:
                self._memo.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        for t in texts:
            self._memo.move_to_end(t)
        return np.stack([self._memo[t] for t in texts])
