"""The output folder of a generation run, kept consistent across interruptions:
``questions_answers.jsonl`` (the pairs) and ``progress.json`` (the papers done, keyed by a hash of
their content). Rows of a paper not marked done are removed on opening, so every paper's rows are
either all there or absent, and a rerun redoes only what is missing or changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from embshared.files import write_json, write_jsonl
from embshared.io import DataError, read_jsonl
from qa_pipeline.filters import normalised_key
from qa_pipeline.paper import Paper

logger = logging.getLogger(__name__)


def paper_hash(paper: Paper) -> str:
    """A fingerprint of the paper's content: a changed paper is generated again."""
    data = json.dumps(paper.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(data.encode("utf-8")).hexdigest()[:16]


class QAWriter:
    """The output folder: the JSONL of pairs and the progress file, kept consistent.

    On opening, rows of papers not marked done (an interrupted run) and unreadable lines
    are removed, so every paper's rows are either all there or absent.

    Args:
        out_dir: the output folder.
        jsonl_name: the file of pairs in it (``GenerateConfig.jsonl_output``).
        progress_name: the progress file in it (``GenerateConfig.progress_file``).
    """

    def __init__(
        self, out_dir: Path, jsonl_name: str = "questions_answers.jsonl", progress_name: str = "progress.json"
    ):
        self.jsonl = out_dir / jsonl_name
        self.progress_path = out_dir / progress_name
        self.progress: dict = {"papers": {}}
        self.seen: set[str] = set()

    def open(self) -> None:
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        if self.progress_path.exists():
            try:
                self.progress = json.loads(self.progress_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(self.progress_path, f"invalid JSON ({exc.msg}); delete it to start over") from None
            self.progress.setdefault("papers", {})
        if not self.jsonl.exists() or self.jsonl.stat().st_size == 0:
            return
        try:
            rows = read_jsonl(self.jsonl, skip_invalid=True)
            skipped = rows.skipped
        except DataError:
            rows, skipped = [], 1
        done = self.progress["papers"]
        kept = [r for r in rows if done.get(r.get("paper_id"), {}).get("status") == "done"]
        if len(kept) != len(rows) or skipped:
            logger.info("removing %d row(s) of unfinished papers from %s", len(rows) - len(kept) + skipped, self.jsonl)
            write_jsonl(self.jsonl, kept)
        self.seen = {normalised_key(str(r.get("question", ""))) for r in kept}

    def rows_total(self) -> int:
        """Pairs held by the output file (all papers, earlier runs included)."""
        return sum(int(e.get("pairs", 0)) for e in self.progress["papers"].values())

    def is_done(self, paper: Paper, digest: str) -> bool:
        entry = self.progress["papers"].get(paper.paper_id, {})
        return entry.get("status") == "done" and entry.get("hash") == digest

    def forget(self, paper_id: str) -> None:
        """Drop the rows of a paper whose content changed (it is generated again)."""
        if paper_id not in self.progress["papers"]:
            return
        rows = read_jsonl(self.jsonl) if self.jsonl.exists() and self.jsonl.stat().st_size else []
        kept = [r for r in rows if r.get("paper_id") != paper_id]
        write_jsonl(self.jsonl, kept)
        self.seen = {normalised_key(str(r.get("question", ""))) for r in kept}
        del self.progress["papers"][paper_id]

    def add(self, finished: list[tuple[Paper, str, list[dict], dict]]) -> None:
        """Append the rows of finished papers (paper, content hash, rows, info), then mark
        them done: one fsync and one progress write per chunk of papers."""
        with open(self.jsonl, "a", encoding="utf-8") as handle:
            for _, _, rows, _ in finished:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for paper, digest, rows, info in finished:
            self.progress["papers"][paper.paper_id] = {
                "status": "done",
                "hash": digest,
                "pairs": len(rows),
                "completed_at": now,
                **info,
            }
        self.progress["updated_at"] = now
        write_json(self.progress_path, self.progress)
