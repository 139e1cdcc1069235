"""Search results as plain data and as text: what ``python -m embedding_model.cli.search`` prints.

:func:`search_results` runs queries on a :class:`~embedding_model.retrieval.RecordSearch` and
gives one ``{"query", "mode", "hits"}`` dict per query (each hit: rank, source line, score, the
record, and optionally the fields that contributed most); :func:`format_results` lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from embedding_model.retrieval import RecordSearch


def search_results(
    engine: RecordSearch,
    queries: Sequence[str],
    topk: int,
    hybrid: bool = False,
    explain_fields: int | None = None,
) -> list[dict]:
    """One ``{"query", "mode", "hits"}`` dict per query.

    Args:
        engine: the records, their embeddings and the model (with its fusion settings).
        queries: query texts (checked by the caller: each has a letter or digit).
        topk: hits per query.
        hybrid: fuse with BM25 (``engine.fusion``) instead of the dense ranking alone.
        explain_fields: when given, each hit lists this many fields whose removal costs the
            most similarity (``--explain``).
    """
    embedder, records = engine.embedder, engine.records
    query_vectors = embedder.embed_queries(queries)
    if hybrid:
        ranked = engine.hybrid(queries, topk, query_vectors)
    else:
        ranked = engine.dense(queries, topk, query_vectors)
    mode = f"hybrid, {engine.fusion.label()}" if hybrid else "dense"
    out = []
    for query, vector, hits in zip(queries, query_vectors, ranked):
        rows = []
        for rank, hit in enumerate(hits, start=1):
            row = {
                "rank": rank,
                "line": records.lines[hit.index],
                "score": hit.score,
                "record": records.records[hit.index],
            }
            if explain_fields is not None:
                fields = embedder.explain(vector, records.segments[hit.index])[:explain_fields]
                row["explain"] = [{"field": f.key, "value": f.value, "contribution": f.contribution} for f in fields]
            rows.append(row)
        out.append({"query": query, "mode": mode, "hits": rows})
    return out


def _short(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def format_results(results: list[dict]) -> str:
    """The terminal listing: per query a header, one line per hit, its explained fields, a blank line."""
    lines = []
    for result in results:
        score_name = "fused" if result["mode"].startswith("hybrid") else "cosine"
        lines.append(f'query: "{result["query"]}"  ({result["mode"]}; {score_name} scores)')
        for hit in result["hits"]:
            text = json.dumps(hit["record"], ensure_ascii=False)
            lines.append(f"{hit['rank']:>3}. {hit['score']:.4f}  line {hit['line']}  {_short(text, 160)}")
            for field in hit.get("explain", []):
                lines.append(f"       {field['contribution']:+.4f}  {field['field']} = {_short(field['value'], 100)}")
        lines.append("")
    return "".join(line + "\n" for line in lines)
