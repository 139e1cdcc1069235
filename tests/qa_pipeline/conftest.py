"""Fixtures of the qa_pipeline tests: the shared papers (PDF + GROBID TEI), extracted once."""

from __future__ import annotations

from pathlib import Path

import pytest

PAPERS = ("specter_2020.acl-main.207", "demarchis2016_jner_fes")


@pytest.fixture(scope="session")
def papers_dir(shared_data) -> Path:
    folder = shared_data / "papers"
    if not all((folder / f"{name}.pdf").is_file() for name in PAPERS):
        pytest.skip(f"shared papers not found in {folder}")
    return folder


@pytest.fixture(scope="session")
def tei_papers(papers_dir):
    """paper name -> Paper parsed from GROBID's TEI."""
    from qa_pipeline.extractors.tei import parse_tei

    return {name: parse_tei(papers_dir / f"{name}.grobid.tei.xml") for name in PAPERS}


@pytest.fixture(scope="session")
def local_papers(papers_dir):
    """paper name -> Paper from the local pypdf extractor (about 1 s per paper)."""
    from qa_pipeline.extractors.local import LocalExtractor

    extractor = LocalExtractor()
    return {name: extractor.extract(papers_dir / f"{name}.pdf") for name in PAPERS}
