"""Generated Q&A pairs as training data: ``questions_answers.jsonl`` read into "pairs" examples
that keep each row's paper, and split into train and validation *by paper* (no paper on both sides,
no validation question seen in training)."""

from __future__ import annotations

import random
from pathlib import Path

from embshared.io import DataError, Examples, read_jsonl


def load_qa_pairs(path: str | Path) -> Examples:
    """Read ``questions_answers.jsonl`` into "pairs" examples that keep each row's paper id.

    Rows need a non-empty ``question`` and ``answer``; the paper comes from ``paper_id``
    (or ``file_name`` for files written by other tools). Exact duplicates are dropped.

    Raises:
        DataError: naming the file, line and field of the first bad row.
    """
    records = read_jsonl(path)
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for index, record in enumerate(records):
        line = records.line_of(index)
        for key in ("question", "answer"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise DataError(path, f"field '{key}' missing or empty", line)
        paper = record.get("paper_id") or record.get("file_name")
        if not isinstance(paper, str) or not paper.strip():
            raise DataError(path, "field 'paper_id' missing (needed to split by paper)", line)
        key = (record["question"].strip(), record["answer"].strip())
        if key in seen:
            continue
        seen.add(key)
        rows.append({"query": key[0], "document": key[1], "paper_id": paper.strip()})
    return Examples(format="pairs", rows=rows, source=str(path), dropped_duplicates=len(records) - len(rows))


def split_by_paper(examples: Examples, train_split: float, seed: int) -> tuple[Examples, Examples]:
    """Split pairs so that every paper is on one side only.

    Papers are shuffled with ``seed``; the first ``round((1 - train_split) * n_papers)``
    (at least one when there are two or more papers and ``train_split < 1``) go to validation.
    A question that appears with papers on both sides is kept on the train side only, so
    no validation query was seen in training.

    Returns:
        (train, validation) examples.
    """
    papers = sorted({r["paper_id"] for r in examples.rows})
    random.Random(seed).shuffle(papers)
    n_eval = 0
    if train_split < 1 and len(papers) > 1:
        n_eval = min(max(1, round((1 - train_split) * len(papers))), len(papers) - 1)
    eval_papers = set(papers[:n_eval])
    train_rows = [r for r in examples.rows if r["paper_id"] not in eval_papers]
    train_queries = {r["query"] for r in train_rows}
    eval_rows = [r for r in examples.rows if r["paper_id"] in eval_papers and r["query"] not in train_queries]
    return (
        Examples("pairs", train_rows, examples.source),
        Examples("pairs", eval_rows, examples.source),
    )
