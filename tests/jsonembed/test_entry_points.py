"""Every jsonembed entry point resolves: --help of each CLI module, the package from the guide's folder
(src layout), the guide's train flags, and `make -n` of every jsonembed target with its variables."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys

import pytest

import embedding_model.cli
from embedding_model.cli import train as train_cli
from embedding_model.config import PROJECT_DIR, JsonEmbedConfig, resolve_config_path
from embshared.cli import config_from_args

CLI_MODULES = sorted(
    info.name for info in pkgutil.iter_modules(embedding_model.cli.__path__) if info.name not in {"common"}
)


def test_the_guide_commands_are_all_there():
    assert CLI_MODULES == ["embed", "evaluate", "search", "train"]


@pytest.mark.parametrize("name", CLI_MODULES)
def test_every_cli_answers_help(name, capsys):
    module = importlib.import_module(f"embedding_model.cli.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m embedding_model.cli.{name} ")
    assert "--threads" in out and "--quiet" in out and "--skip-invalid" in out and "--device" in out


def test_package_is_the_src_one_from_the_guide_folder(repo):
    # the guide runs `python -m embedding_model.cli.train ... --config config/default.yaml` inside jsonembed/
    code = "import embedding_model, embedding_model.config as c; print(embedding_model.__file__); print(c.PROJECT_DIR)"
    for cwd in (repo / "jsonembed", repo):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
        package, project = out.stdout.splitlines()
        assert package == str(repo / "jsonembed" / "src" / "embedding_model" / "__init__.py")
        assert project == str(repo / "jsonembed")
    assert repo / "jsonembed" == PROJECT_DIR
    assert (PROJECT_DIR / "config" / "default.yaml").is_file()


def _train_config(argv: list[str]) -> tuple[JsonEmbedConfig, argparse.Namespace]:
    args = train_cli.build_parser().parse_intermixed_args(argv)
    vars(args).pop("device", None)
    args.config = resolve_config_path(args.config)
    return config_from_args(JsonEmbedConfig, args), args


def test_train_takes_the_guide_flags_every_key_and_overrides_last():
    cfg, args = _train_config(
        [
            *[
                "d.jsonl",
                "char_dim=48",
                "--output",
                "m.pt",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--max-chars",
                "100",
            ],
            *["--lr", "0.01", "--kernel_sizes", "3", "7", "--pooling", "mean", "--threads", "1", "epochs=4"],
        ]
    )
    assert (cfg.batch_size, cfg.max_chars, cfg.lr, cfg.kernel_sizes, cfg.pooling) == (16, 100, 0.01, [3, 7], "mean")
    assert cfg.epochs == 4 and cfg.char_dim == 48  # key=value wins over --epochs
    assert args.data == "d.jsonl" and args.output == "m.pt" and args.threads == 1
    assert cfg.temperature == 0.05  # the rest from config/default.yaml, found without --config


def test_train_device_flag_is_not_written_into_the_config():
    parser = train_cli.build_parser()
    args = parser.parse_intermixed_args(["d.jsonl", "-o", "m.pt", "--device", "cpu"])
    assert args.device == "cpu"
    cfg, _ = _train_config(["d.jsonl", "-o", "m.pt", "--device", "cpu"])
    assert cfg.device == ""
    cfg, _ = _train_config(["d.jsonl", "-o", "m.pt", "device=cpu"])  # the config key itself still works
    assert cfg.device == "cpu"


def _dry_run(repo, *args: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    targets = ["json-train", "json-search", "json-embed", "json-eval", "bench-json"]
    out = subprocess.run(["make", "-n", *targets, *args], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = re.sub(r"\\\n", " ", out.stdout).splitlines()  # join the recipes' continued lines
    commands = [" ".join(line.split()) for line in lines]  # and their runs of blanks
    return [line for line in commands if "embedding_model.cli." in line or "jsonembed/bench/" in line]


def test_make_targets_default_commands(repo):
    train, search, embed, evaluate, quality, speed = _dry_run(repo)
    assert "-m embedding_model.cli.train data/samples/scifact/corpus.jsonl --output jsonembed/runs/model.pt" in train
    assert "--config jsonembed/config/default.yaml" in train and "--epochs" not in train
    assert '--query "vitamin D deficiency and bone fractures" --topk 5 --cache-dir jsonembed/runs/cache' in search
    assert "--input data/samples/scifact/corpus.jsonl --output jsonembed/runs/embeddings.npy" in embed
    assert "--qrels data/samples/scifact/qrels/train.tsv --output jsonembed/runs/eval.json" in evaluate
    assert quality.endswith("jsonembed/bench/bench_quality.py") and speed.endswith("jsonembed/bench/bench_speed.py")


def test_make_targets_take_the_documented_variables_and_no_other_makefiles(repo):
    train, search, embed, evaluate, quality, _ = _dry_run(
        repo,
        "JSON_DATA=my.jsonl",
        "JSON_MODEL=my.pt",
        "JSON_QUERY=desk lamp",
        "JSON_TOPK=3",
        "JSON_FLAGS=--explain --hybrid",
        "JSON_EPOCHS=2",
        "JSON_BENCH_ARGS=--reuse",
        "char_dim=48",
        "MODEL=other.pt",  # embeddingFT's variables are not jsonembed's
        "DATA=other.jsonl",
        "EPOCHS=9",
    )
    assert "cli.train my.jsonl --output my.pt" in train and "--epochs 2 'char_dim=48'" in train
    assert '--model my.pt --data my.jsonl --query "desk lamp" --topk 3' in search and "--explain --hybrid" in search
    assert "--model my.pt --input my.jsonl" in embed and "--model my.pt --data my.jsonl" in evaluate
    assert quality.endswith("bench_quality.py --reuse 'char_dim=48'")
    assert not any("other" in line for line in (train, search, embed, evaluate)) and "--epochs 9" not in train
