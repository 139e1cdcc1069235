"""The retrieval tasks the bench judges the pipeline on, as data: Cranfield's records as paper
JSON (written and read back as qa-extract's output is) with its questions and graded qrels, a
seeded dev / rest split of a task's queries (settings are chosen on dev only), and the first
``k`` pairs of each paper.
"""

from __future__ import annotations

import random
from pathlib import Path

from embshared.io import BeirDataset, load_cranfield
from qa_pipeline.paper import Paper
from qa_pipeline.passages import load_papers
from qa_pipeline.records import records_to_papers, write_papers


def cranfield_papers(folder: Path, papers_dir: Path) -> tuple[list[Paper], list[str]]:
    """The collection's records as paper JSON in ``papers_dir``, read back by the generator's
    loader; returns the papers and the ids of the records without text (not written)."""
    collection = load_cranfield(folder)
    made = records_to_papers(collection.records, prefix="cranfield-", source=str(folder / "cran.all.1400"))
    write_papers(made.papers, papers_dir)
    return load_papers(papers_dir), made.empty


def cranfield_beir(folder: Path, papers: list[Paper]) -> BeirDataset:
    """The retrieval task: the 225 questions and graded qrels against the papers' text
    ("title abstract"), keyed by Cranfield's document ids."""
    collection = load_cranfield(folder)
    corpus = {p.metadata["record_id"]: {"title": p.title, "text": p.abstract} for p in papers}
    qrels = {q: {d: g for d, g in rel.items() if d in corpus} for q, rel in collection.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if rel}
    queries = {q: t for q, t in collection.queries.items() if q in qrels}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, source=str(folder))


def query_split(query_ids, seed: int, n_dev: int) -> dict[str, set[str]]:
    """A seeded split of the query ids: "dev" (used to choose settings) and "rest" (reported only)."""
    ids = sorted(query_ids)
    random.Random(seed).shuffle(ids)
    return {"dev": set(ids[:n_dev]), "rest": set(ids[n_dev:])}


def limit_per_paper(rows: list[dict], k: int) -> list[dict]:
    """The first ``k`` rows of each paper (all when ``k`` is 0), in file order."""
    if k <= 0:
        return rows
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        n = seen.get(row["paper_id"], 0)
        if n < k:
            out.append(row)
        seen[row["paper_id"]] = n + 1
    return out
