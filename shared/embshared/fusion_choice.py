"""Choose the hybrid (BM25 + dense) fusion for one collection on its dev queries, save it, read it back.

What is chosen: the fusion method (the convex fusion ``(1 - w) * z(bm25) + w * z(dense)`` or
weighted reciprocal-rank fusion), the dense weight ``w`` (0.0 to 1.0 by 0.1) and the BM25
parameters (k1 in {0.9, 1.2, 1.5}, b in {0.4, 0.75}, stemming on or off): 2 x 11 x 12 settings.

Why: one fixed weight is not right for every collection. Bruch et al. (2023, "An Analysis of
Fusion Functions for Hybrid Retrieval") show that the convex fusion beats RRF but that its
best weight depends on the collection (and on how good the dense model is), and BM25's k1/b
and stemming also move with the kind of text. A fine-tuned model changes the balance again.

On what: the dev queries only (the training run's dev split), ranked with
:func:`embshared.evaluate.evaluate_scores`, the workspace's one evaluation. The choice is never
made on the queries a report is judged on; the setting records where it was chosen
(``chosen_on``), by which metric, its score and the score of the fixed default on the same
queries. Ties (within 1e-9) go to the default setting, then to the weight nearest 0.5, then to
the convex fusion, then to the default BM25 parameters, so a dev split that cannot tell the
settings apart keeps today's behaviour.

RRF here is weighted like the convex fusion: ``w / (k + rank_dense) + (1 - w) / (k + rank_bm25)``
over each ranker's top :data:`RRF_DEPTH` documents (k = 60); at w = 0.5 it ranks as plain RRF.
A document that shares no term with the query (BM25 score 0) is not in BM25's ranking.

The chosen setting lives in ``fusion.json`` in a model folder (written by the training run)
and in an index folder (copied there by ``embedding_ft.index.build_index``).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from embshared.errors import UserError
from embshared.evaluate import evaluate_scores
from embshared.files import write_json
from embshared.fusion import convex_fusion, rrf_score_fn

FILE_NAME = "fusion.json"
METHODS = ("convex", "rrf")
RRF_DEPTH = 100  # each ranker's documents fused by RRF (as embshared.fusion.rrf_score_fn)
TIE = 1e-9

Variant = tuple[float, float, bool]  # BM25 (k1, b, stem)


@dataclass(frozen=True)
class FusionSetting:
    """One hybrid fusion: the method, the dense weight and the BM25 parameters (+ where it was chosen).

    Attributes:
        method: "convex" (z-scored scores) or "rrf" (reciprocal ranks).
        dense_weight: w, the dense share (BM25 gets 1 - w) in either method.
        rrf_k: the RRF constant (unused by the convex fusion).
        bm25_k1, bm25_b, bm25_stem: the BM25 index's parameters.
        chosen_on: e.g. "dev: 80 queries" (None for a setting nobody chose).
        metric: the metric it was chosen by, e.g. "ndcg@10".
        score: its mean ``metric`` on those queries.
        default_score: the mean ``metric`` of :meth:`default` on the same queries.
    """

    method: str = "convex"
    dense_weight: float = 0.5
    rrf_k: int = 60
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_stem: bool = True
    chosen_on: str | None = None
    metric: str | None = None
    score: float | None = None
    default_score: float | None = None

    def __post_init__(self):
        for name in ("dense_weight", "bm25_k1", "bm25_b", "score", "default_score"):  # numpy scalars -> float
            value = getattr(self, name)
            if _number(value):
                object.__setattr__(self, name, float(value))
        if isinstance(self.bm25_stem, np.bool_):
            object.__setattr__(self, "bm25_stem", bool(self.bm25_stem))
        _check(self)

    @classmethod
    def default(cls) -> FusionSetting:
        """Today's hybrid: convex, dense weight 0.5, BM25 k1 1.5, b 0.75, stemmed."""
        return cls()

    @property
    def bm25_variant(self) -> Variant:
        return (self.bm25_k1, self.bm25_b, self.bm25_stem)

    def same_fusion(self, other: FusionSetting) -> bool:
        """Same method, weight, k and BM25 (provenance ignored)."""
        return _core(self) == _core(other)

    def describe(self) -> str:
        """One line, e.g. "convex, dense weight 0.7, BM25 k1 1.2 b 0.75 stemmed (chosen on dev: 80 queries, ...)"."""
        method = "convex" if self.method == "convex" else f"rrf k={self.rrf_k}"
        stem = "stemmed" if self.bm25_stem else "not stemmed"
        text = f"{method}, dense weight {self.dense_weight:g}, BM25 k1 {self.bm25_k1:g} b {self.bm25_b:g} {stem}"
        if self.chosen_on is None:
            return text
        scores = "" if self.score is None else f", {self.metric} {self.score:.4f}"
        default = "" if self.default_score is None else f" vs {self.default_score:.4f} for the default"
        return f"{text} (chosen on {self.chosen_on}{scores}{default})"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> FusionSetting:
        """The setting in ``data``; a missing field takes the default's value, unknown keys are ignored.

        Raises:
            ValueError: a field of the wrong type or out of range (the message names it).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/fusion.json`` atomically; returns its path."""
        path = Path(folder) / FILE_NAME
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> FusionSetting | None:
        """The setting in ``folder/fusion.json``, None if there is none.

        Raises:
            UserError: the file is not valid JSON or a field is malformed (one line naming both).
        """
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise UserError(f"{path}: {str(exc).splitlines()[0]}") from None


def _core(setting: FusionSetting) -> tuple:
    return (setting.method, setting.dense_weight, setting.rrf_k, *setting.bm25_variant)


def _check(s: FusionSetting) -> None:
    """Raise ValueError naming the first malformed field."""
    rules = [
        ("method", s.method in METHODS, f"one of {', '.join(METHODS)}"),
        ("dense_weight", _number(s.dense_weight) and 0 <= s.dense_weight <= 1, "a number in [0, 1]"),
        ("rrf_k", isinstance(s.rrf_k, int) and not isinstance(s.rrf_k, bool) and s.rrf_k > 0, "a positive integer"),
        ("bm25_k1", _number(s.bm25_k1) and s.bm25_k1 >= 0, "a number >= 0"),
        ("bm25_b", _number(s.bm25_b) and 0 <= s.bm25_b <= 1, "a number in [0, 1]"),
        ("bm25_stem", isinstance(s.bm25_stem, bool), "true or false"),
        ("chosen_on", s.chosen_on is None or isinstance(s.chosen_on, str), "a string or null"),
        ("metric", s.metric is None or isinstance(s.metric, str), "a string or null"),
        ("score", s.score is None or _number(s.score), "a number or null"),
        ("default_score", s.default_score is None or _number(s.default_score), "a number or null"),
    ]
    for name, ok, expected in rules:
        if not ok:
            raise ValueError(f"field '{name}' must be {expected}, got {getattr(s, name)!r}")


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def fuse(setting: FusionSetting, dense: np.ndarray, bm25: np.ndarray) -> np.ndarray:
    """(batch, n_docs) fused scores of ``dense`` and ``bm25`` (both (batch, n_docs)) under ``setting``.

    Convex: :func:`embshared.fusion.convex_fusion`. RRF: ``w / (k + rank_dense) + (1 - w) / (k + rank_bm25)``
    over each ranker's top :data:`RRF_DEPTH`; a BM25 score of 0 (no shared term) is not ranked.
    """
    w = setting.dense_weight
    if setting.method == "convex":
        return convex_fusion(dense, bm25, w)
    components = [lambda _: dense, lambda _: bm25]
    return rrf_score_fn(components, depth=RRF_DEPTH, k=setting.rrf_k, floors=[None, 0.0], weights=[w, 1.0 - w])([])


def bm25_variants() -> list[Variant]:
    """The BM25 grid (k1, b, stem): stemming on/off x k1 in {0.9, 1.2, 1.5} x b in {0.4, 0.75} (12)."""
    return [(k1, b, stem) for stem in (True, False) for k1 in (0.9, 1.2, 1.5) for b in (0.4, 0.75)]


def dense_weights() -> list[float]:
    """The dense weights tried: 0.0, 0.1, ..., 1.0."""
    return [round(0.1 * i, 1) for i in range(11)]


def bm25_matrices(
    doc_ids: Sequence[str], texts: Sequence[str], queries: Sequence[str], variants: Sequence[Variant] | None = None
) -> dict[Variant, np.ndarray]:
    """Each variant's (n_queries, n_docs) BM25 score matrix (one index per variant; columns follow ``doc_ids``)."""
    from embshared.search import BM25Index

    out = {}
    for k1, b, stem in variants if variants is not None else bm25_variants():
        index = BM25Index(k1=k1, b=b, stem=stem).index(doc_ids, texts)
        out[(k1, b, stem)] = index.score_matrix(queries)
    return out


def candidates(variants: Sequence[Variant]) -> list[FusionSetting]:
    """Every (method, weight, BM25 variant) in the order ties are broken: default first, then nearest 0.5, ..."""
    default = FusionSetting.default()
    rest = [
        FusionSetting(method, w, default.rrf_k, *variant)
        for w in sorted(dense_weights(), key=lambda w: (round(abs(w - 0.5), 6), w))
        for method in METHODS
        for variant in sorted(variants, key=lambda v: v != default.bm25_variant)
    ]
    return [default] + [s for s in rest if not s.same_fusion(default)]


def choose_fusion(
    dense: np.ndarray,
    bm25_by_variant: Mapping[Variant, np.ndarray],
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, float]],
    metric: str = "ndcg@10",
    chosen_on: str | None = None,
) -> FusionSetting:
    """The setting with the best mean ``metric`` on these (dev) queries; ties to the default, then w nearest 0.5.

    Args:
        dense: (n_queries, n_docs) dense scores (cosine), row i for ``query_ids[i]``.
        bm25_by_variant: (k1, b, stem) -> (n_queries, n_docs) BM25 scores (:func:`bm25_matrices`);
            must include the default's (1.5, 0.75, True).
        query_ids, doc_ids, qrels: as :func:`embshared.evaluate.evaluate_scores`.
        metric: the metric to maximise.
        chosen_on: recorded on the setting (default "dev: N queries", N those with a relevant qrel).

    Returns:
        The chosen setting, with ``chosen_on``, ``metric``, ``score`` and ``default_score`` filled in.
    """
    default = FusionSetting.default()
    if default.bm25_variant not in bm25_by_variant:
        raise ValueError(f"bm25_by_variant needs the default BM25 variant {default.bm25_variant}")

    def mean(setting: FusionSetting) -> float:
        scores = fuse(setting, dense, bm25_by_variant[setting.bm25_variant])
        return float(evaluate_scores(scores, query_ids, doc_ids, qrels, [metric])[0][metric])

    default_score = mean(default)
    best, best_score = default, default_score
    for setting in candidates(list(bm25_by_variant))[1:]:  # [0] is the default
        score = mean(setting)
        if score > best_score + TIE:
            best, best_score = setting, score
    n = sum(1 for q in query_ids if q in qrels)
    where = chosen_on or f"dev: {n} queries"
    return replace(best, chosen_on=where, metric=metric, score=best_score, default_score=default_score)
