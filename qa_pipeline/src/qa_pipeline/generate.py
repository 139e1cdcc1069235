"""``python -m qa_pipeline.generate`` (the guide's command name): runs :mod:`qa_pipeline.cli.generate`.

The generation itself is :mod:`qa_pipeline.generation` (with :mod:`qa_pipeline.qa_rows` and
:mod:`qa_pipeline.qa_output`); their names are re-exported here for code that imported them from
this module.
"""

from __future__ import annotations

from qa_pipeline.cli.generate import main
from qa_pipeline.generation import GenerateConfig, NoPairsError, build_generator, generate_pairs, nothing_usable
from qa_pipeline.qa_output import QAWriter, paper_hash
from qa_pipeline.qa_rows import ROW_KEYS, GenerationStats, make_rows

__all__ = [
    "ROW_KEYS",
    "GenerateConfig",
    "GenerationStats",
    "NoPairsError",
    "QAWriter",
    "build_generator",
    "generate_pairs",
    "main",
    "make_rows",
    "nothing_usable",
    "paper_hash",
]

if __name__ == "__main__":
    raise SystemExit(main())
