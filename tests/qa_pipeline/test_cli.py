"""The command lines: every qa entry point (cli module, the guide's ``python -m`` names, the bench,
the training script, the example) answers ``--help`` without loading a model; the guide's short flags and the
config precedence; the make targets run existing modules with the QA_ variables and the guide's names."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from embshared.config import save_config
from embshared.errors import UserError
from qa_pipeline.cli import extract, finetune, generate
from qa_pipeline.finetuning import FinetuneConfig
from qa_pipeline.paper import Paper, save_paper

#: cli module -> flags its --help must list (the guide's, a section key, the overrides)
HELP_FLAGS = {
    extract: ["--input_dir", "--output_dir", "--extractor", "--grobid_url", "--local.max_heading_words"],
    generate: ["--input_dir", "--generator", "--model", "--base_url", "--llm.batch_size", "--openai.base_url"],
    finetune: ["--input_jsonl", "--base_model", "--epochs", "--batch_size", "--num_epochs", "--mining.num_negatives"],
}


def run(args, cwd, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120, **kwargs)


@pytest.mark.parametrize("module", [extract, generate, finetune], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_cli_and_its_guide_command_answer_help(module, repo, capsys):
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--config", "key=value", *HELP_FLAGS[module]]:
        assert flag in text, flag
    assert "(default: " in text  # every key's default is shown
    # the guide's name runs the same command
    stage = module.__name__.rsplit(".", 1)[1]
    shown = run([sys.executable, "-m", f"qa_pipeline.{stage}", "--help"], repo / "qa_pipeline")
    assert shown.returncode == 0, shown.stderr
    flags = sorted(set(re.findall(r"--[\w.]+", text)))
    assert sorted(set(re.findall(r"--[\w.]+", shown.stdout))) == flags and len(flags) > 8
    assert " ".join(module.__doc__.splitlines()[0].split()) in " ".join(shown.stdout.split())


def test_guide_modules_keep_their_public_names():
    import qa_pipeline.extract as old_extract
    import qa_pipeline.finetune as old_finetune
    import qa_pipeline.generate as old_generate
    from qa_pipeline import extraction, finetuning, generation, qa_pairs, qa_rows

    assert old_extract.main is extract.main and old_extract.extract_folder is extraction.extract_folder
    assert old_generate.main is generate.main and old_generate.generate_pairs is generation.generate_pairs
    assert old_generate.ROW_KEYS is qa_rows.ROW_KEYS and old_generate.GenerateConfig is generation.GenerateConfig
    assert old_finetune.main is finetune.main and old_finetune.finetune is finetuning.finetune
    assert old_finetune.split_by_paper is qa_pairs.split_by_paper


def test_bench_script_and_example_answer_help(repo):
    bench = run([sys.executable, "bench/bench_qa.py", "--help"], repo / "qa_pipeline")
    assert bench.returncode == 0, bench.stderr
    for flag in ["--tracks", "--sample_size", "--cranfield.train.num_epochs", "--claims.sample_size", "key=value"]:
        assert flag in bench.stdout, flag
    script = run(["bash", "scripts/train_embeddings.sh", "--help"], repo / "qa_pipeline")
    assert script.returncode == 0 and "--batch_size N" in script.stdout and "key=value" in script.stdout
    example = run([sys.executable, "examples/use_finetuned_embeddings.py", "--help"], repo / "qa_pipeline")
    assert example.returncode == 0 and "--model" in example.stdout and "--pairs" in example.stdout


def test_finetune_guide_flags_and_precedence(tmp_path):
    """Defaults < config file < flags (the guide's short ones win over the key's own) < key=value."""
    config = tmp_path / "ft.json"
    save_config(FinetuneConfig(num_epochs=4, train_batch_size=8, learning_rate=1e-4), config)
    cfg = finetune.config_from_argv(["--config", str(config)])
    assert (cfg.num_epochs, cfg.train_batch_size, cfg.learning_rate) == (4.0, 8, 1e-4)
    cfg = finetune.config_from_argv(["--config", str(config), "--epochs", "2", "--batch_size", "16"])
    assert (cfg.num_epochs, cfg.train_batch_size, cfg.learning_rate) == (2.0, 16, 1e-4)
    argv = ["--config", str(config), "--num_epochs", "3", "--epochs", "2", "num_epochs=5", "mining.num_negatives=3"]
    cfg = finetune.config_from_argv(argv)
    assert cfg.num_epochs == 5.0 and cfg.mining.num_negatives == 3
    with pytest.raises(SystemExit):  # argparse types the guide's flags, as before
        finetune.config_from_argv(["--epochs", "two"])
    assert finetune.main(["--config", str(tmp_path / "missing.json")]) == 2


@pytest.mark.parametrize(("generator", "key"), [("openai", "openai.model"), ("fallback", "llm.model")])
def test_generate_model_flag_names_the_generators_model(generator, key, tmp_path, monkeypatch, capsys):
    save_paper(Paper(paper_id="p", title="T", abstract="Electrode arrays select muscles. " * 5), tmp_path / "in/p.json")
    seen = {}

    def stop(cfg):
        seen.update(openai=cfg.openai.model, llm=cfg.llm.model, base_url=cfg.openai.base_url)
        raise UserError("stopped before generating")

    monkeypatch.setattr(generate, "build_generator", stop)
    argv = ["--input_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"), "--generator", generator]
    assert generate.main([*argv, "--model", "m1", "--base_url", "http://llm.test/v1"]) == 2
    assert seen[key.split(".")[0]] == "m1" and seen["base_url"] == "http://llm.test/v1"
    other = "llm" if key.startswith("openai") else "openai"
    assert seen[other] != "m1"


def make_dry(repo, *args) -> str:
    return run(["make", "-n", "--no-print-directory", *args], repo, check=True).stdout


def test_make_targets_run_existing_modules_with_prefixed_and_guide_variables(repo):
    dry = make_dry(repo, "qa-extract", "qa-generate", "qa-train", "bench-qa")
    modules = re.findall(r"-m (qa_pipeline\.\w+)", dry)
    assert modules == ["qa_pipeline.extract", "qa_pipeline.generate", "qa_pipeline.finetune"]
    assert all(importlib.util.find_spec(m) is not None for m in modules)
    assert "bench/bench_qa.py" in dry and (repo / "qa_pipeline" / "bench" / "bench_qa.py").is_file()
    assert "--generator smollm2" in dry and "--extractor auto" in dry and "--epochs" not in dry

    guide = ["PDF_DIR=/p", "GENERATOR=fallback", "MODEL_NAME=m", "BASE_URL=http://u/v1", "EPOCHS=3", "BATCH_SIZE=16"]
    dry = make_dry(repo, "qa-extract", "qa-generate", "qa-train", *guide)
    assert "--input_dir /p " in dry and "--generator fallback --model m --base_url http://u/v1" in dry
    assert "--epochs 3 --batch_size 16" in dry
    dry = make_dry(repo, "qa-train", "QA_EPOCHS=5", "EPOCHS=3", "num_epochs=2")
    assert "--epochs 5" in dry and "'num_epochs=2'" in dry  # the QA_ name wins; key=value forwarded
    # a default another makefile gives the bare name does not leak into qa's commands
    dry = make_dry(repo, "--eval", "EPOCHS ?= 7", "--eval", "GENERATOR ?= other", "qa-train", "qa-generate")
    assert "--epochs" not in dry and "--generator smollm2" in dry
