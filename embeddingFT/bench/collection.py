"""A seeded, documented collection of N documents for the scale benchmark (``make bench-scale``).

    python embeddingFT/bench/collection.py --size 200000 --out work/scale/collection-200000.jsonl [--seed 0]

Nothing here is shipped: the collection is written at run time under ``bench/work/`` from the
shared corpora in ``../shared/data`` (their licences in each folder's README).

- **SciFact's 5,183 abstracts come first, intact, with their own ids**, so SciFact's claims are
  judged on the same qrels with ``N - 5,183`` distractors beside the documents they cite.
- **Distractor i** (ids ``syn-<source>-<i>``) is rewritten from one seed document of a source
  chosen in proportion to its size (SciFact 5,183 abstracts, Cranfield 1,400, PubMedQA 500
  contexts): each of the seed's sentences is kept or, with probability 0.5, swapped for a
  sentence of another document of the same source; the sentences are then shuffled, and the
  title's words too. Distractors read like the domain (same vocabulary, same lengths, BM25 and
  the model both find them plausible) but are no document's copy.
- **Distractor i depends only on (seed, i)**, so the first M documents of a collection of N
  are the collection of M: 50k is a prefix of 200k, and so on.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def sources(data: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """{source: [(title, sentences), ...]} of the shared corpora that are present."""
    from embshared.io import load_beir
    from embshared.io.cranfield import load_cranfield

    out: dict[str, list[tuple[str, list[str]]]] = {}
    scifact = load_beir(data / "scifact")
    out["scifact"] = [(d.get("title", ""), _sentences(d.get("text", ""))) for d in scifact.corpus.values()]
    if (data / "cranfield" / "cran.all.1400").is_file():
        cran = load_cranfield(data / "cranfield")
        out["cranfield"] = [(r.get("title", ""), _sentences(r.get("text", ""))) for r in cran.records]
    if (data / "pubmedqa" / "corpus.jsonl").is_file():
        with open(data / "pubmedqa" / "corpus.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        out["pubmedqa"] = [(r.get("title", ""), _sentences(r["text"])) for r in rows]
    return {name: [d for d in docs if d[1]] for name, docs in out.items()}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s.strip()]


def documents(n: int, data: Path, seed: int = 0) -> Iterator[dict]:
    """The collection's first ``n`` documents as {"_id", "title", "text"}: SciFact's own, then distractors."""
    from embshared.io import load_beir

    scifact = load_beir(data / "scifact")
    own = list(scifact.corpus.items())
    for doc_id, doc in own[:n]:
        yield {"_id": doc_id, "title": doc.get("title", ""), "text": doc.get("text", "")}
    pools = sources(data)
    names = sorted(pools)
    weights = np.array([len(pools[name]) for name in names], dtype=np.float64)
    weights /= weights.sum()
    for i in range(max(0, n - len(own))):
        rng = np.random.default_rng([seed, i])
        name = names[int(rng.choice(len(names), p=weights))]
        pool = pools[name]
        title, sentences = pool[int(rng.integers(len(pool)))]
        out = []
        for sentence in sentences:
            if rng.random() < 0.5:
                other = pool[int(rng.integers(len(pool)))][1]
                sentence = other[int(rng.integers(len(other)))]
            out.append(sentence)
        rng.shuffle(out)
        words = title.split()
        rng.shuffle(words)
        yield {"_id": f"syn-{name}-{i}", "title": " ".join(words), "text": " ".join(out)}


def write(n: int, out: Path, data: Path, seed: int = 0) -> Path:
    """Write the collection of ``n`` documents to ``out`` (JSONL), atomically; kept when already there."""
    from embshared.files import atomic_write

    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:
        for doc in documents(n, data, seed):
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    from embshared.runtime import shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write(args.size, args.out, shared_data_dir(), args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
