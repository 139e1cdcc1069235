"""Export a model for fast CPU inference: ONNX Runtime or OpenVINO, fp32 or int8.

    python -m embedding_ft.cli.export --model RUN/final_model --backend onnx --quant int8
    python -m embedding_ft.cli.export --model sentence-transformers/all-MiniLM-L6-v2 --output models/minilm-onnx

The files are written inside the model folder (or a copy of it at --output) where
sentence-transformers' exporters put them; the command prints the file to load.
"""

from __future__ import annotations

import argparse
import shutil
import sysconfig
from pathlib import Path

from embedding_ft.export import BACKENDS, QUANTS, check_model_folder, export_model
from embshared.cli import start_run
from embshared.errors import UserError, cli_entry
from embshared.files import atomic_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder (e.g. a run's final_model) or a packaged name")
    parser.add_argument("--backend", choices=BACKENDS, default="onnx")
    parser.add_argument("--quant", choices=QUANTS, default="int8")
    parser.add_argument("--output", type=Path, help="copy the model here first and export into the copy")
    parser.add_argument("--calibration", type=Path, help="texts (.txt/.jsonl/BEIR) for OpenVINO int8 calibration")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_run()
    from embshared.models import resolve_model

    source = Path(resolve_model(args.model))
    check_model_folder(source)
    folder = source
    if args.output:
        if args.output.exists() and any(args.output.iterdir()):
            raise UserError(f"{args.output} already exists and is not empty")
        with atomic_dir(args.output, overwrite=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
        folder = args.output
    elif str(source.resolve()).startswith(sysconfig.get_paths()["purelib"]):
        raise UserError(f"{args.model} is an installed package; pass --output FOLDER to export a copy")
    texts = None
    if args.calibration:
        from embshared.io import read_documents

        texts = read_documents(args.calibration).texts[:256]
    result = export_model(folder, args.backend, args.quant, texts)
    print(f"exported {result.backend} ({result.quant}): {result.model_dir / result.file_name}")
    print(
        f"use it with: --model {result.model_dir} --backend {result.backend}"
        + (f"  (file {result.file_name})" if result.quant == "none" else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
