"""Generate question-answer pairs from extracted papers.

    python -m qa_pipeline.generate --config config/qa_generator.json \
        --input_dir data/extracted --output_dir data/qa_outputs/jsonl [--generator fallback]

``make qa-generate`` runs it; the work is :func:`qa_pipeline.generation.generate_pairs`.
"""

from __future__ import annotations

from pathlib import Path

from embshared.cli import start_run
from embshared.errors import cli_entry
from qa_pipeline.cli.common import build_parser, resolve
from qa_pipeline.generation import GenerateConfig, build_generator, generate_pairs
from qa_pipeline.passages import load_papers

#: the guide's flags that are not config keys (``--input_dir``, ``--generator``, ... are)
GUIDE_FLAGS = {
    "model": {"help": "llm.model (smollm2 or a local folder) / openai.model"},
    "base_url": {"help": "openai.base_url of an OpenAI-compatible endpoint"},
}
#: the config key each sets (``--model`` is handled apart: it names the local LLM or the OpenAI
#: model, by the generator chosen)
ALIASES = {"base_url": "openai.base_url"}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0], GenerateConfig, "qa_generator.json", GUIDE_FLAGS).parse_args(argv)
    cfg = resolve(GenerateConfig, args, ALIASES)
    if args.model:
        if cfg.generator == "openai":
            cfg.openai.model = args.model
        else:
            cfg.llm.model = args.model
    start_run()
    papers = load_papers(cfg.input_dir)  # bad input fails before anything is written
    if cfg.limit_papers > 0:
        papers = papers[: cfg.limit_papers]
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # now the output folder exists: log there too; the other generators seed themselves and need no torch
    start_run(log_file=out / cfg.log_file, seed=cfg.seed if cfg.generator == "smollm2" else None)
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
