"""False-negative audit of mined hard negatives: how many look like unlabelled positives.

A mined negative is *suspect* when, for its query,

- ``above_positive``: the mining model scores it at or above the labelled positive, or
- ``top10_both``: it is in the top 10 of both BM25 (with a score above 0) and the mining model (two unrelated
  rankers agreeing that it answers the query is the classic sign of a missing label).

Users of mining report that many negatives at ranks 20-200 are unlabelled positives; no
library shows it, so every run writes the counts to its summary and the suspects, with
their scores and ranks, to ``false_negative_audit.jsonl`` for a person to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from embshared.search import BM25Index


@dataclass
class AuditReport:
    """Counts over all mined negatives, and the suspect examples (worst first)."""

    n_rows: int = 0
    n_negatives: int = 0
    above_positive: int = 0
    top10_both: int = 0
    suspects: int = 0
    median_dense_rank: float | None = None
    examples: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        share = (lambda n: round(n / self.n_negatives, 4)) if self.n_negatives else (lambda n: 0.0)
        return {
            "rows": self.n_rows,
            "negatives": self.n_negatives,
            "above_positive": self.above_positive,
            "top10_bm25_and_dense": self.top10_both,
            "suspects": self.suspects,
            "suspect_share": share(self.suspects),
            "median_dense_rank_of_negatives": self.median_dense_rank,
        }


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of every column in each row of (n_queries, n_docs) scores."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(scores.shape[1])[None, :]
    return ranks


def audit_negatives(
    rows: list[dict],
    corpus: list[str],
    encode: Callable[[list[str]], np.ndarray],
    corpus_embeddings: np.ndarray | None = None,
    max_examples: int = 50,
    preview_chars: int = 300,
) -> AuditReport:
    """Audit mined n-tuple / triplet rows (``anchor``, ``positive``, ``negative*``).

    Args:
        rows: the mined rows.
        corpus: the mining corpus (the negatives come from it).
        encode: texts -> (n, dim) L2-normalised embeddings by the mining model.
        corpus_embeddings: (len(corpus), dim) normalised embeddings of ``corpus`` when
            already known (the mining cache), else they are encoded.
        max_examples: how many suspects to keep, highest negative-to-positive score first.
        preview_chars: texts in the examples are cut to this length.
    """
    report = AuditReport(n_rows=len(rows))
    if not rows:
        return report
    row_of = {text: i for i, text in enumerate(corpus)}
    docs = corpus_embeddings if corpus_embeddings is not None else encode(corpus)  # (n_docs, dim)
    anchors = list(dict.fromkeys(r["anchor"] for r in rows))
    anchor_of = {a: i for i, a in enumerate(anchors)}
    q = encode(anchors)  # (n_anchors, dim)
    dense = q @ docs.T  # (n_anchors, n_docs)
    dense_ranks = _ranks(dense)
    bm25 = BM25Index().index([str(i) for i in range(len(corpus))], corpus)
    top_ids, top_scores = bm25.search(anchors, 10)
    bm25_top10 = [{int(i) for i, sc in zip(ids, scores) if sc > 0} for ids, scores in zip(top_ids, top_scores)]

    extra = [r["positive"] for r in rows if r["positive"] not in row_of]
    extra_emb = dict(zip(dict.fromkeys(extra), encode(list(dict.fromkeys(extra))))) if extra else {}
    neg_ranks, suspects = [], []
    for row in rows:
        a = anchor_of[row["anchor"]]
        pos = row["positive"]
        pos_score = float(dense[a, row_of[pos]]) if pos in row_of else float(q[a] @ extra_emb[pos])
        for key, neg in row.items():
            if not key.startswith("negative") or neg not in row_of:
                continue
            d = row_of[neg]
            report.n_negatives += 1
            rank = int(dense_ranks[a, d])
            neg_ranks.append(rank)
            score = float(dense[a, d])
            above = score >= pos_score
            both = rank < 10 and d in bm25_top10[a]
            report.above_positive += above
            report.top10_both += both
            if above or both:
                report.suspects += 1
                suspects.append(
                    {
                        "query": row["anchor"],
                        "positive": pos[:preview_chars],
                        "negative": neg[:preview_chars],
                        "positive_score": round(pos_score, 4),
                        "negative_score": round(score, 4),
                        "dense_rank": rank,
                        "in_bm25_top10": d in bm25_top10[a],
                        "why": "above_positive" if above else "top10_bm25_and_dense",
                    }
                )
    report.median_dense_rank = float(np.median(neg_ranks)) if neg_ranks else None
    suspects.sort(key=lambda e: e["negative_score"] - e["positive_score"], reverse=True)
    report.examples = suspects[:max_examples]
    return report
