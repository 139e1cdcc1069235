"""The GROBID client: a server that is down (no server can run here), and a mocked one
that answers like GROBID with the real TEI of a shared paper."""

from __future__ import annotations

import socket

import httpx
import pytest

from qa_pipeline.cli import extract
from qa_pipeline.extractors import GrobidClient, GrobidExtractor, GrobidUnavailable, LocalExtractor, build_extractor
from qa_pipeline.extractors.base import ExtractionError


@pytest.fixture
def dead_url() -> str:
    """A localhost URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_server_down_gives_a_clear_message(dead_url, tmp_path):
    client = GrobidClient(dead_url)
    assert client.is_alive() is False
    with pytest.raises(
        GrobidUnavailable, match=r"not reachable \(connection refused\); start one with .*--extractor local"
    ):
        client.check()
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(GrobidUnavailable, match="connection refused"):
        client.process_fulltext(pdf)


def test_auto_falls_back_to_local_and_grobid_does_not(dead_url):
    client = GrobidClient(dead_url)
    assert isinstance(build_extractor("auto", client), LocalExtractor)
    with pytest.raises(GrobidUnavailable):
        build_extractor("grobid", client)
    with pytest.raises(ValueError, match="unknown extractor 'pymupdf'"):
        build_extractor("pymupdf", client)


def test_cli_with_grobid_down_exits_with_one_line_error(dead_url, papers_dir, tmp_path, capsys):
    code = extract.main(
        [
            "--input_dir",
            str(papers_dir),
            "--output_dir",
            str(tmp_path / "out"),
            "--extractor",
            "grobid",
            "--grobid_url",
            dead_url,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: GROBID server at {dead_url} is not reachable")
    assert not list((tmp_path / "out").glob("*.json"))


def grobid_mock(tei: str, statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    """A fake GROBID: /api/isalive says true; processFulltextDocument answers ``statuses`` in turn."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/isalive":
            return httpx.Response(200, text="true")
        if request.url.path == "/api/processFulltextDocument" and request.method == "POST":
            status = statuses.pop(0) if statuses else 200
            return httpx.Response(status, text=tei if status == 200 else "")
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def test_mocked_server_round_trip(papers_dir):
    tei = (papers_dir / "specter_2020.acl-main.207.grobid.tei.xml").read_text(encoding="utf-8")
    seen: list[httpx.Request] = []
    client = GrobidClient("http://grobid.test:8070/", transport=grobid_mock(tei, [503, 200], seen), retry_delay=0)
    assert client.is_alive()
    extractor = build_extractor("auto", client)
    assert isinstance(extractor, GrobidExtractor)
    paper = extractor.extract(papers_dir / "specter_2020.acl-main.207.pdf")
    assert paper.extractor == "grobid" and paper.paper_id == "specter_2020.acl-main.207"
    assert paper.title.startswith("SPECTER: Document-level Representation Learning")
    assert len(paper.references) == 57
    posts = [r for r in seen if r.method == "POST"]
    assert len(posts) == 2  # one 503 (busy), retried once
    body = posts[-1].read()
    assert b'name="input"; filename="specter_2020.acl-main.207.pdf"' in body
    assert body.count(b"%PDF") >= 1 and b'name="includeRawCitations"' in body


def test_mocked_server_errors_are_per_file(papers_dir):
    pdf = papers_dir / "demarchis2016_jner_fes.pdf"
    client = GrobidClient("http://grobid.test", transport=grobid_mock("", [204], []), retry_delay=0)
    with pytest.raises(ExtractionError, match="GROBID found no content"):
        client.process_fulltext(pdf)
    client = GrobidClient("http://grobid.test", transport=grobid_mock("", [503, 503], []), retries=1, retry_delay=0)
    with pytest.raises(ExtractionError, match="HTTP 503"):
        client.process_fulltext(pdf)
    bad = GrobidExtractor(GrobidClient("http://grobid.test", transport=grobid_mock("<html/>", [], [])))
    with pytest.raises(ExtractionError, match="unreadable TEI"):
        bad.extract(pdf)
