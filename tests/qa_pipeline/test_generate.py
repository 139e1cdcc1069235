"""Q&A generation end to end (fallback generator): schema, filters, resume, repair."""

from __future__ import annotations

import json

import pytest

from embshared.io import read_jsonl
from qa_pipeline.cli import generate
from qa_pipeline.generation import GenerateConfig, generate_pairs
from qa_pipeline.generators import Candidate, FallbackConfig, FallbackGenerator
from qa_pipeline.paper import Paper, save_paper
from qa_pipeline.passages import PassageConfig, paper_passages
from qa_pipeline.qa_rows import ROW_KEYS


class ScriptedGenerator:
    """Returns fixed raw outputs per passage, to test the cleaning and filtering path."""

    name = "scripted"
    model_name = "script"

    def __init__(self, outputs):
        self.outputs = outputs
        self.calls = 0

    def generate(self, passages):
        self.calls += 1
        return [[Candidate(q) for q in self.outputs] for _ in passages]


WORDS = [
    "electrode",
    "array",
    "muscle",
    "stimulation",
    "forearm",
    "patient",
    "glove",
    "finger",
    "wrist",
    "signal",
    "pulse",
    "current",
]


def varied_text(seed: int, sentences: int) -> str:
    """Distinct sentences (no sentence repeats another), so no candidate is a duplicate."""
    out = []
    for i in range(sentences):
        words = [WORDS[(seed * 7 + i * 3 + k) % len(WORDS)] for k in range(7)]
        out.append(f"The {' '.join(words)} case {seed}-{i} was measured.")
    return " ".join(out)


def small_paper(pid: str, n_sections: int = 2) -> Paper:
    from qa_pipeline.paper import Section

    seed = sum(map(ord, pid))
    return Paper(
        paper_id=pid,
        title=f"Paper {pid}",
        abstract="We study electrode arrays for hand opening after stroke in eight subjects. " + varied_text(seed, 3),
        sections=[Section(f"Part {i}", [varied_text(seed + 100 * (i + 1), 4)]) for i in range(n_sections)],
        source=f"/pdfs/{pid}.pdf",
    )


def test_rows_schema_and_filters(tmp_path):
    outputs = [
        "Question: What do electrode arrays select?\nA: muscles",  # kept (cleaned)
        "What do electrode arrays select?",  # duplicate of the first
        "Electrode arrays select muscles.",  # not a question
        "Why?",  # too short
        "Electrode arrays select muscles for stimulation of the forearm in patients?",  # not a question
    ]
    gen = ScriptedGenerator(outputs)
    cfg = GenerateConfig(passages=PassageConfig(min_words=10))
    stats = generate_pairs([small_paper("p1")], gen, cfg, tmp_path)
    rows = read_jsonl(tmp_path / "questions_answers.jsonl")
    assert len(rows) == 1
    row = rows[0]
    assert tuple(row) == ROW_KEYS
    assert row["question"] == "What do electrode arrays select?"
    assert row["answer"].startswith("Paper p1. We study electrode arrays")  # the abstract passage
    assert (row["paper_id"], row["section"], row["passage_id"]) == ("p1", "Abstract", "p1#0")
    assert (row["generator"], row["model"], row["file_name"], row["kind"]) == (
        "scripted",
        "script",
        "p1.pdf",
        "question",
    )
    assert stats.passages == 3 and stats.candidates == 15 and stats.kept == 1
    # 15 candidates: 1 kept; its copy in passage 1 and both copies in passages 2-3 are duplicates.
    assert stats.rejected == {"duplicate": 5, "not_a_question": 6, "too_short": 3}
    saved = json.loads((tmp_path / "generation_stats.json").read_text())
    assert saved["kept"] == 1 and saved["rejected"]["not_a_question"] == 6 and saved["seconds_per_question"] >= 0


def test_rerun_skips_done_papers_and_redoes_changed_ones(tmp_path):
    papers = [small_paper("p1"), small_paper("p2")]
    gen = FallbackGenerator(FallbackConfig(), n=2)
    cfg = GenerateConfig(passages=PassageConfig(min_words=10))
    first = generate_pairs(papers, gen, cfg, tmp_path)
    rows = read_jsonl(tmp_path / "questions_answers.jsonl")
    assert first.papers_done == 2 and len(rows) == first.kept > 0
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert set(progress["papers"]) == {"p1", "p2"} and progress["papers"]["p1"]["status"] == "done"

    again = generate_pairs(papers, gen, cfg, tmp_path)
    assert again.papers_done == 0 and again.papers_skipped == 2
    assert len(read_jsonl(tmp_path / "questions_answers.jsonl")) == len(rows)

    changed = [small_paper("p1", n_sections=3), papers[1]]
    third = generate_pairs(changed, gen, cfg, tmp_path)
    assert third.papers_done == 1 and third.papers_skipped == 1
    new_rows = read_jsonl(tmp_path / "questions_answers.jsonl")
    assert {r["passage_id"] for r in new_rows if r["paper_id"] == "p1"} >= {"p1#3"}
    ids = [r["id"] for r in new_rows]
    assert len(ids) == len(set(ids))


def test_interrupted_run_is_repaired(tmp_path):
    papers = [small_paper("p1"), small_paper("p2")]
    gen = FallbackGenerator(FallbackConfig(), n=2)
    cfg = GenerateConfig(passages=PassageConfig(min_words=10))
    generate_pairs(papers[:1], gen, cfg, tmp_path)
    path = tmp_path / "questions_answers.jsonl"
    good = path.read_text()
    # A crash while writing p2: some of its rows written, one cut off, progress not updated.
    p2_row = json.dumps({"id": "x", "question": "Q?", "answer": "A", "paper_id": "p2"})
    path.write_text(good + p2_row + "\n" + p2_row[:20], encoding="utf-8")
    stats = generate_pairs(papers, gen, cfg, tmp_path)
    assert stats.papers_skipped == 1 and stats.papers_done == 1
    rows = read_jsonl(path)
    assert all(r["id"] != "x" for r in rows)
    assert {r["paper_id"] for r in rows} == {"p1", "p2"}


def test_cli_end_to_end_on_a_real_paper(tmp_path, local_papers, capsys):
    """extract -> generate on one real paper with the no-model generator."""
    paper = local_papers["demarchis2016_jner_fes"]
    save_paper(paper, tmp_path / "in" / f"{paper.paper_id}.json")
    out = tmp_path / "out"
    code = generate.main(
        [
            "--input_dir",
            str(tmp_path / "in"),
            "--output_dir",
            str(out),
            "--generator",
            "fallback",
            "questions_per_passage=2",
        ]
    )
    assert code == 0
    assert "pair(s) from 1 paper(s)" in capsys.readouterr().out
    rows = read_jsonl(out / "questions_answers.jsonl")
    passages = paper_passages(paper)
    assert len(passages) >= 15
    assert len(rows) >= 1.5 * len(passages)  # ~2 per passage, minus filtered ones
    assert {r["paper_id"] for r in rows} == {paper.paper_id}
    sections = {r["section"] for r in rows}
    assert {"Abstract", "Background", "Results"} <= sections
    assert all(r["question"] not in r["answer"] for r in rows)
    assert (out / "qa_generation.log").stat().st_size > 0
    assert generate.main(["--input_dir", str(tmp_path / "in"), "--output_dir", str(out), "generator=fallback"]) == 0
    assert "(1 already done)" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        generate.main(["--input_dir", str(tmp_path / "none"), "--output_dir", str(out), "--generator", "fallback"]) == 2
    )
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()  # nothing written for bad input
    assert generate.main(["--input_dir", str(tmp_path), "--output_dir", str(out), "generator=gpt"]) == 2
    assert "key 'generator' must be one of" in capsys.readouterr().err


class FailingAfter:
    """Writes one scripted question per passage for ``good_calls`` calls, then raises (a crash mid-run)."""

    name = "scripted"
    model_name = "script"

    def __init__(self, good_calls: int):
        self.good_calls = good_calls
        self.passages_seen: list[str] = []

    def generate(self, passages):
        if self.good_calls == 0:
            raise KeyboardInterrupt("killed")
        self.good_calls -= 1
        self.passages_seen += [p.passage_id for p in passages]
        return [[Candidate(f"What is measured in case {p.passage_id}?")] for p in passages]


def test_resume_after_an_interruption_skips_finished_papers(tmp_path):
    papers = [small_paper(f"p{i}", n_sections=0) for i in range(5)]  # one passage each
    cfg = GenerateConfig(chunk_passages=2, passages=PassageConfig(min_words=10))
    first = FailingAfter(good_calls=1)
    with pytest.raises(KeyboardInterrupt):
        generate_pairs(papers, first, cfg, tmp_path)
    progress = json.loads((tmp_path / "progress.json").read_text())["papers"]
    assert sorted(progress) == ["p0", "p1"]  # the first chunk (2 passages) was written and marked done
    before = read_jsonl(tmp_path / "questions_answers.jsonl")
    second = FailingAfter(good_calls=10)
    stats = generate_pairs(papers, second, cfg, tmp_path)
    assert stats.papers_skipped == 2 and stats.papers_done == 3
    assert second.passages_seen == ["p2#0", "p3#0", "p4#0"]  # nothing finished is generated again
    rows = read_jsonl(tmp_path / "questions_answers.jsonl")
    assert rows[:2] == before and [r["paper_id"] for r in rows] == ["p0", "p1", "p2", "p3", "p4"]


def test_paper_json_without_text_is_refused(tmp_path, capsys):
    save_paper(small_paper("good"), tmp_path / "in" / "good.json")
    empty = Paper(paper_id="empty", title="A title only", sections=[])
    save_paper(empty, tmp_path / "in" / "empty.json")
    out = tmp_path / "out"
    args = ["--input_dir", str(tmp_path / "in"), "--output_dir", str(out), "--generator", "fallback"]
    assert generate.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "empty.json" in err and "field 'abstract' is empty" in err and "'sections'" in err
    assert not out.exists()  # nothing written


def test_nothing_usable_ends_with_counts_and_no_training_set(tmp_path, capsys, monkeypatch):
    """A generator whose every answer is empty or not a question: non-zero exit with the counts,
    and no (empty) questions_answers.jsonl left for qa-train to pick up."""
    for pid in ("p1", "p2"):
        save_paper(small_paper(pid), tmp_path / "in" / f"{pid}.json")
    bad = ScriptedGenerator(["", "Electrode arrays select muscles."])
    monkeypatch.setattr(generate, "build_generator", lambda cfg: bad)
    out = tmp_path / "out"
    args = ["--input_dir", str(tmp_path / "in"), "--output_dir", str(out), "passages.min_words=10"]
    assert generate.main(args) == 2
    (err,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]  # logs aside
    # 2 papers x 3 passages x 2 answers
    assert "12 candidate(s) for 6 passage(s) of 2 paper(s)" in err and "empty 6, not_a_question 6" in err
    assert not (out / "questions_answers.jsonl").exists() and not (out / "progress.json").exists()
    assert json.loads((out / "generation_stats.json").read_text())["kept"] == 0
    # with a working generator the rerun does every paper (nothing was marked done)
    monkeypatch.setattr(generate, "build_generator", lambda cfg: ScriptedGenerator(["What do arrays select?"]))
    assert generate.main(args) == 0
    assert "from 2 paper(s) (0 already done)" in capsys.readouterr().out
