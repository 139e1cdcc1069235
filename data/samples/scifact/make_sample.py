"""Build the bundled SciFact sample from ../shared/data/scifact (BEIR layout, train split).

Keeps every train query and its qrels, every positive abstract, and a seeded uniform
sample of the other abstracts as distractors, so that the corpus has ``--docs`` documents.
Lines are copied byte-for-byte from the source files; nothing is edited.

    python data/samples/scifact/make_sample.py --source ../shared/data/scifact --docs 2000 --seed 13
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from embshared.io import read_qrels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the SciFact BEIR folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--docs", type=int, default=2000, help="corpus size of the sample")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    qrels = read_qrels(args.source / "qrels" / "train.tsv")
    positives = {doc for rels in qrels.values() for doc in rels}
    lines = (args.source / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    ids = [json.loads(line)["_id"] for line in lines]
    others = sorted(i for i in ids if i not in positives)
    n_extra = max(0, args.docs - len(positives))
    keep = positives | set(random.Random(args.seed).sample(others, n_extra))

    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(args.out / "corpus.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(line for line, doc_id in zip(lines, ids) if doc_id in keep)
    with open(args.out / "queries.jsonl", "w", encoding="utf-8") as handle:
        for line in (args.source / "queries.jsonl").read_text(encoding="utf-8").splitlines(keepends=True):
            if json.loads(line)["_id"] in qrels:
                handle.write(line)
    shutil.copyfile(args.source / "qrels" / "train.tsv", args.out / "qrels" / "train.tsv")
    print(f"{len(keep)} documents ({len(positives)} positives), {len(qrels)} queries -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
