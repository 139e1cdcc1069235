"""Extract a folder of PDFs into one paper JSON each (GROBID, local pypdf, or auto).

    python -m qa_pipeline.extract --config config/qa_extractor.json --input_dir pdfs/ \
        --output_dir data/extracted --extractor auto

``make qa-extract`` runs it; the work is :func:`qa_pipeline.extraction.extract_folder`.
"""

from __future__ import annotations

from embshared.cli import start_run
from embshared.errors import cli_entry
from qa_pipeline.cli.common import build_parser, resolve
from qa_pipeline.extraction import ExtractConfig, extract_folder


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0], ExtractConfig, "qa_extractor.json").parse_args(argv)
    cfg = resolve(ExtractConfig, args)
    start_run()
    report = extract_folder(cfg)
    print(
        f"extracted {len(report.done)} paper(s) with {report.extractor}, skipped {len(report.skipped)} already done, "
        f"{len(report.failed)} failed -> {cfg.output_dir}"
    )
    for error in report.failed.values():
        print(f"  failed: {error}")
    if report.failed and not report.done and not report.skipped:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
