"""Q&A generation: passages of extracted papers -> a generator (chosen by name) -> cleaned and
filtered question-answer rows in a resumable output folder.

Writes ``questions_answers.jsonl`` (one pair per line: ``question``, ``answer`` = the
passage, ``paper_id``, ``section``, ...), ``progress.json`` (papers done), and
``generation_stats.json`` (what the filters dropped, seconds per question). A rerun skips
papers already done; rows of a paper interrupted half-way are removed before it is redone.
The command line is :mod:`qa_pipeline.cli.generate` (``python -m qa_pipeline.generate``).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from embshared.errors import UserError
from embshared.files import write_json
from qa_pipeline.filters import FilterConfig
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
from qa_pipeline.passages import Passage, PassageConfig, paper_passages
from qa_pipeline.qa_output import QAWriter, paper_hash
from qa_pipeline.qa_rows import GenerationStats, make_rows

logger = logging.getLogger(__name__)


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


def build_generator(cfg: GenerateConfig) -> QuestionGenerator:
    """The generator named by ``cfg.generator`` (loads the local LLM for ``smollm2``)."""
    n = cfg.questions_per_passage
    if cfg.generator == "smollm2":
        model, tokenizer, name = load_local_llm(cfg.llm)
        return LocalLLMGenerator(model, tokenizer, cfg.llm, n=n, seed=cfg.seed, model_name=name, kind=cfg.query_kind)
    if cfg.generator == "openai":
        return OpenAIChatGenerator(cfg.openai, n=n, kind=cfg.query_kind)
    return FallbackGenerator(cfg.fallback, n=n, seed=cfg.seed)


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
    writer = QAWriter(out, cfg.jsonl_output, cfg.progress_file)
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
