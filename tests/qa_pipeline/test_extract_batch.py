"""A batch of PDFs: bad files are reported and skipped, the rest extracted, reruns skip work."""

from __future__ import annotations

import json
import shutil

from pypdf import PdfWriter

from qa_pipeline.cli import extract
from qa_pipeline.paper import load_paper


def make_batch(folder, papers_dir):
    folder.mkdir()
    shutil.copy(papers_dir / "demarchis2016_jner_fes.pdf", folder / "good.pdf")
    blank = PdfWriter()
    blank.add_blank_page(width=612, height=792)
    with open(folder / "scanned.pdf", "wb") as handle:
        blank.write(handle)
    locked = PdfWriter(clone_from=papers_dir / "demarchis2016_jner_fes.pdf")
    locked.encrypt(user_password="pw", algorithm="RC4-128")
    with open(folder / "locked.pdf", "wb") as handle:
        locked.write(handle)


def test_batch_goes_on_after_bad_files(tmp_path, papers_dir, capsys):
    pdfs, out = tmp_path / "pdfs", tmp_path / "out"
    make_batch(pdfs, papers_dir)
    code = extract.main(["--input_dir", str(pdfs), "--output_dir", str(out), "--extractor", "local"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "extracted 1 paper(s) with local" in printed and "2 failed" in printed
    assert "locked.pdf: encrypted PDF" in printed and "scanned.pdf: no text layer" in printed
    assert sorted(p.name for p in out.glob("*.json")) == ["extraction_report.json", "good.json"]
    paper = load_paper(out / "good.json")
    assert paper.paper_id == "good" and paper.title.startswith("Multi-contact functional electrical stimulation")
    assert paper.sections and paper.references
    report = json.loads((out / "extraction_report.json").read_text())
    assert report["n_done"] == 1 and report["n_failed"] == 2
    assert report["done"]["good"]["extractor"] == "local" and report["seconds_per_paper"] > 0

    # A rerun skips the paper already extracted; overwrite=true redoes it.
    assert extract.main(["--input_dir", str(pdfs), "--output_dir", str(out), "--extractor", "local"]) == 0
    report = json.loads((out / "extraction_report.json").read_text())
    assert report["skipped"] == ["good"] and report["n_done"] == 0
    extract.main(["--input_dir", str(pdfs), "--output_dir", str(out), "extractor=local", "overwrite=true"])
    assert json.loads((out / "extraction_report.json").read_text())["n_done"] == 1


def test_all_files_bad_is_a_failure(tmp_path):
    pdfs = tmp_path / "pdfs"
    pdfs.mkdir()
    (pdfs / "x.pdf").write_bytes(b"not a pdf")
    assert extract.main(["--input_dir", str(pdfs), "--output_dir", str(tmp_path / "o"), "extractor=local"]) == 1


def test_bad_config_key_is_reported(tmp_path, capsys):
    assert extract.main(["--input_dir", str(tmp_path), "extractr=local"]) == 2
    assert "unknown key 'extractr'" in capsys.readouterr().err
