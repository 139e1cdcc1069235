"""Generate question-answer pairs from extracted papers.

    python -m qa_pipeline.generate --config config/qa_generator.json \
        --input_dir data/extracted --output_dir data/qa_outputs/jsonl [--generator fallback]

Writes ``questions_answers.jsonl`` (one pair per line: ``question``, ``answer`` = the
passage, ``paper_id``, ``section``, ...), ``progress.json`` (papers done), and
``generation_stats.json`` (what the filters dropped, seconds per question). A rerun skips
papers already done; rows of a paper interrupted half-way are removed before it is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from embshared.errors import UserError, cli_entry
from embshared.files import write_json, write_jsonl
from embshared.io import DataError, read_jsonl
from embshared.runtime import seed_everything, setup_logging
from qa_pipeline.command_line import make_parser, resolve_config
from qa_pipeline.filters import FilterConfig, clean_claim, clean_question, normalised_key, reject_reason
from qa_pipeline.generators import (
    GENERATORS,
    FallbackConfig,
    FallbackGenerator,
    LocalLLMConfig,
    LocalLLMGenerator,
    OpenAIChatConfig,
    OpenAIChatGenerator,
    QuestionGenerator,
    load_local_llm,
)
from qa_pipeline.generators.base import QUERY_KINDS
from qa_pipeline.paper import Paper
from qa_pipeline.passages import Passage, PassageConfig, load_papers, paper_passages

logger = logging.getLogger(__name__)

#: the keys of every row of questions_answers.jsonl.
ROW_KEYS = (
    "id",
    "question",
    "answer",
    "paper_id",
    "section",
    "passage_id",
    "kind",
    "generator",
    "model",
    "created_at",
    "file_name",
)


@dataclass
class GenerateConfig:
    """Settings of ``qa_pipeline.generate`` (the sections configure each generator)."""

    input_dir: str = field(default="data/extracted", metadata={"help": "paper JSON (or .tei.xml / .txt) files"})
    output_dir: str = field(default="data/qa_outputs/jsonl", metadata={"help": "where the outputs go"})
    jsonl_output: str = "questions_answers.jsonl"
    progress_file: str = "progress.json"
    stats_file: str = "generation_stats.json"
    log_file: str = "qa_generation.log"
    generator: str = field(default="smollm2", metadata={"help": "smollm2 | openai | fallback"})
    query_kind: str = field(
        default="question",
        metadata={"help": "what smollm2 / openai write: question | claim (a statement the passage supports)"},
    )
    questions_per_passage: int = field(default=2, metadata={"help": "candidates asked for per passage"})
    chunk_passages: int = field(default=32, metadata={"help": "passages generated together before writing"})
    limit_papers: int = field(default=0, metadata={"help": "0 = all papers"})
    seed: int = 42
    passages: PassageConfig = field(default_factory=PassageConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    llm: LocalLLMConfig = field(default_factory=LocalLLMConfig)
    openai: OpenAIChatConfig = field(default_factory=OpenAIChatConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)

    def validate(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"key 'generator' must be one of {', '.join(GENERATORS)}, got '{self.generator}'")
        if self.query_kind not in QUERY_KINDS:
            raise ValueError(f"key 'query_kind' must be one of {', '.join(QUERY_KINDS)}, got '{self.query_kind}'")
        if self.questions_per_passage < 1:
            raise ValueError("key 'questions_per_passage' must be at least 1")


@dataclass
class GenerationStats:
    """What one run did (``generation_stats.json``)."""

    generator: str = ""
    model: str = ""
    papers_done: int = 0
    papers_skipped: int = 0
    passages: int = 0
    candidates: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    generation_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "generator": self.generator,
            "model": self.model,
            "papers_done": self.papers_done,
            "papers_skipped": self.papers_skipped,
            "passages": self.passages,
            "candidates": self.candidates,
            "kept": self.kept,
            "rejected": dict(sorted(self.rejected.items())),
            "generation_seconds": round(self.generation_seconds, 3),
            "seconds_per_question": round(self.generation_seconds / self.candidates, 4) if self.candidates else None,
            "seconds_per_kept_question": round(self.generation_seconds / self.kept, 4) if self.kept else None,
        }


def build_generator(cfg: GenerateConfig) -> QuestionGenerator:
    """The generator named by ``cfg.generator`` (loads the local LLM for ``smollm2``)."""
    n = cfg.questions_per_passage
    if cfg.generator == "smollm2":
        model, tokenizer, name = load_local_llm(cfg.llm)
        return LocalLLMGenerator(model, tokenizer, cfg.llm, n=n, seed=cfg.seed, model_name=name, kind=cfg.query_kind)
    if cfg.generator == "openai":
        return OpenAIChatGenerator(cfg.openai, n=n, kind=cfg.query_kind)
    return FallbackGenerator(cfg.fallback, n=n, seed=cfg.seed)


def paper_hash(paper: Paper) -> str:
    """A fingerprint of the paper's content: a changed paper is generated again."""
    data = json.dumps(paper.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(data.encode("utf-8")).hexdigest()[:16]


def make_rows(
    passage: Passage,
    candidates,
    generator: QuestionGenerator,
    cfg: FilterConfig,
    seen: set[str],
    stats: GenerationStats,
    file_name: str,
) -> list[dict]:
    """Clean and filter the candidates of one passage into output rows (updates ``seen``)."""
    rows = []
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for cand in candidates:
        if cand.kind == "pseudo_query":
            question = cand.question
        else:
            question = clean_claim(cand.question) if cand.kind == "claim" else clean_question(cand.question)
        question = " ".join(question.split())
        answer = cand.answer or passage.text
        reason = reject_reason(question, cand.kind, answer, cfg)
        key = normalised_key(question)
        if reason is None and key in seen:
            reason = "duplicate"
        if reason is not None:
            stats.rejected[reason] += 1
            continue
        seen.add(key)
        rows.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{passage.passage_id}|{question}")),
                "question": question,
                "answer": answer,
                "paper_id": passage.paper_id,
                "section": passage.section,
                "passage_id": passage.passage_id,
                "kind": cand.kind,
                "generator": generator.name,
                "model": generator.model_name,
                "created_at": now,
                "file_name": file_name,
            }
        )
    stats.kept += len(rows)
    return rows


class QAWriter:
    """The output folder: the JSONL of pairs and the progress file, kept consistent.

    On opening, rows of papers not marked done (an interrupted run) and unreadable lines
    are removed, so every paper's rows are either all there or absent.
    """

    def __init__(self, out_dir: Path, cfg: GenerateConfig):
        self.jsonl = out_dir / cfg.jsonl_output
        self.progress_path = out_dir / cfg.progress_file
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


def generate_pairs(
    papers: list[Paper], generator: QuestionGenerator, cfg: GenerateConfig, out_dir: str | os.PathLike
) -> GenerationStats:
    """Generate, filter and write Q&A pairs for ``papers`` into ``out_dir``, skipping papers
    already done there.

    Papers are processed in chunks of about ``cfg.chunk_passages`` passages (so a batched
    LLM sees full batches even when papers are single abstracts); the papers of a chunk are
    written and marked done together as soon as the chunk is done.

    Returns:
        The statistics of this run (also written to ``generation_stats.json``).
    """
    out = Path(out_dir)
    writer = QAWriter(out, cfg)
    writer.open()
    stats = GenerationStats(generator=generator.name, model=generator.model_name)
    todo: list[tuple[Paper, str, list[Passage]]] = []
    for paper in papers:
        digest = paper_hash(paper)
        if writer.is_done(paper, digest):
            stats.papers_skipped += 1
            continue
        writer.forget(paper.paper_id)
        todo.append((paper, digest, paper_passages(paper, cfg.passages)))
    logger.info(
        "%d paper(s) to do (%d passages), %d already done; generator %s (%s)",
        len(todo),
        sum(len(p) for _, _, p in todo),
        stats.papers_skipped,
        generator.name,
        generator.model_name,
    )

    chunks: list[list[tuple[Paper, str, list[Passage]]]] = [[]]
    for item in todo:
        if chunks[-1] and sum(len(p) for _, _, p in chunks[-1]) + len(item[2]) > cfg.chunk_passages:
            chunks.append([])
        chunks[-1].append(item)
    bar = tqdm(total=len(todo), desc=f"Q&A ({generator.name})", unit="paper")
    for chunk in chunks:
        passages = [p for _, _, ps in chunk for p in ps]
        start = time.perf_counter()
        candidates = generator.generate(passages) if passages else []
        seconds = time.perf_counter() - start
        stats.generation_seconds += seconds
        by_passage = dict(zip((p.passage_id for p in passages), candidates))
        finished = []
        for paper, digest, paper_passages_ in chunk:
            rows: list[dict] = []
            n_candidates = 0
            rejected_before = Counter(stats.rejected)
            for passage in paper_passages_:
                cands = by_passage.get(passage.passage_id, [])
                n_candidates += len(cands)
                rows.extend(
                    make_rows(
                        passage,
                        cands,
                        generator,
                        cfg.filters,
                        writer.seen,
                        stats,
                        Path(paper.source).name or paper.paper_id,
                    )
                )
            stats.passages += len(paper_passages_)
            stats.candidates += n_candidates
            info = {
                "passages": len(paper_passages_),
                "candidates": n_candidates,
                "rejected": dict(stats.rejected - rejected_before),
                # this paper's share of the generation time of its chunk
                "seconds": round(seconds * len(paper_passages_) / max(len(passages), 1), 3),
            }
            finished.append((paper, digest, rows, info))
            stats.papers_done += 1
        writer.add(finished)
        bar.update(len(finished))
        bar.set_postfix(pairs=stats.kept)
    bar.close()
    summary = stats.to_dict()
    logger.info(
        "kept %d of %d candidate(s); dropped %s; %.1f s generating (%s s per question)",
        stats.kept,
        stats.candidates,
        summary["rejected"],
        stats.generation_seconds,
        summary["seconds_per_question"],
    )
    write_json(out / cfg.stats_file, summary)
    if todo and writer.rows_total() == 0:
        raise NoPairsError(nothing_usable(stats, writer))
    return stats


class NoPairsError(UserError):
    """The generator produced nothing usable: no training set to write."""


def nothing_usable(stats: GenerationStats, writer: QAWriter) -> str:
    """Remove the empty outputs (so no later step trains on an empty file and a rerun redoes
    every paper) and say what happened, with the counts."""
    writer.jsonl.unlink(missing_ok=True)
    writer.progress_path.unlink(missing_ok=True)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.rejected.items())) or "none"
    return (
        f"no usable question-answer pair: {stats.candidates} candidate(s) for {stats.passages} passage(s) of "
        f"{stats.papers_done} paper(s) from generator {stats.generator} ({stats.model}), all dropped "
        f"(reasons: {reasons}); nothing written to {writer.jsonl}"
    )


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0], GenerateConfig, "qa_generator.json")
    parser.add_argument("--input_dir", help="folder of extracted papers")
    parser.add_argument("--output_dir", help="output folder")
    parser.add_argument("--generator", choices=sorted(GENERATORS), help="question generator")
    parser.add_argument("--model", help="llm.model (smollm2 or a local folder) / openai.model")
    parser.add_argument("--base_url", help="openai.base_url of an OpenAI-compatible endpoint")
    args = parser.parse_args(argv)
    flags = {
        "input_dir": "input_dir",
        "output_dir": "output_dir",
        "generator": "generator",
        "base_url": "openai.base_url",
    }
    cfg = resolve_config(GenerateConfig, args, flags)
    if args.model:
        if cfg.generator == "openai":
            cfg.openai.model = args.model
        else:
            cfg.llm.model = args.model
    setup_logging()
    papers = load_papers(cfg.input_dir)  # bad input fails before anything is written
    if cfg.limit_papers > 0:
        papers = papers[: cfg.limit_papers]
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(log_file=out / cfg.log_file)
    if cfg.generator == "smollm2":
        seed_everything(cfg.seed)  # the other generators seed themselves and need no torch
    generator = build_generator(cfg)
    stats = generate_pairs(papers, generator, cfg, out)
    summary = stats.to_dict()
    print(
        f"{summary['kept']} pair(s) from {summary['papers_done']} paper(s) ({summary['papers_skipped']} already done); "
        f"dropped {sum(stats.rejected.values())}: {summary['rejected']} -> {out / cfg.jsonl_output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
