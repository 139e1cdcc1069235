"""Build a RAG training set: for each question, the top-k contexts retrieved with a trained model.

    python -m embedding_ft.cli.rag_dataset --model RUN/final_model \
        --questions questions.jsonl --documents corpus.jsonl --top-k 5 --output rag.jsonl
    python embeddingFT/scripts/create_rag_dataset.py ...   (the same, through the script shim) \
        --questions questions.jsonl --documents corpus.jsonl --top-k 5 --output rag.jsonl

Questions: .jsonl/.json/.csv/.tsv records with a `question` (or `query`/`text`) field, or a
.txt file with one question per line; other fields (e.g. `answer`) are carried over.
Documents: anything `embshared.io.read_documents` reads (a BEIR folder or corpus.jsonl,
records with a text field, or a .txt file with one document per line). Output: one JSON object per question,
`{"question", "contexts": [{"id", "text", "score"}], ...carried fields}`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embshared.cli import start_run
from embshared.errors import UserError, cli_entry
from embshared.files import write_jsonl
from embshared.io import DataError, read_documents, read_records

QUESTION_FIELDS = ("question", "query", "text")


def read_questions(path: Path) -> list[dict]:
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(path, "no such file")
        rows = [{"question": line.strip()} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not rows:
            raise DataError(path, "no questions found")
        return rows
    records = read_records(path)
    rows = []
    for index, record in enumerate(records):
        key = next((k for k in QUESTION_FIELDS if isinstance(record.get(k), str) and record[k].strip()), None)
        if key is None:
            raise DataError(path, f"no question field ({', '.join(QUESTION_FIELDS)})", records.line_of(index))
        rows.append({"question": record[key].strip(), **{k: v for k, v in record.items() if k != key}})
    return rows


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.rag_dataset", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the trained model folder (or any model name)")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--documents", type=Path, required=True)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--index", choices=["flat", "hnsw", "ivf"], default="flat", help="FAISS index kind")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    start_run()
    questions = read_questions(args.questions)
    docs = read_documents(args.documents)
    documents = dict(zip(docs.ids, docs.texts))

    from embshared.models import load_sentence_transformer
    from embshared.search import FaissIndex

    model = load_sentence_transformer(args.model)
    doc_ids = list(documents)
    doc_emb = model.encode(
        [documents[d] for d in doc_ids], batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=True
    )
    index = FaissIndex(doc_emb.shape[1], "ip", kind=args.index).add(doc_ids, doc_emb)
    q_emb = model.encode(
        [q["question"] for q in questions],
        batch_size=args.batch_size,
        normalize_embeddings=True,
        show_progress_bar=True,
    )
    ids, scores = index.search(q_emb, args.top_k)
    rows = [
        {**q, "contexts": [{"id": d, "text": documents[d], "score": round(s, 6)} for d, s in zip(hit_ids, hit_scores)]}
        for q, hit_ids, hit_scores in zip(questions, ids, scores)
    ]
    n = write_jsonl(args.output, rows)
    print(f"wrote {n} questions with top-{args.top_k} contexts to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
