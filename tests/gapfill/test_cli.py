"""The command lines: every gapfill command answers ``--help`` (as a module and through
``python -m gapfill.cli <command>``), and the make targets' command lines parse into the
configs they mean (the module exists, the flags and key=value overrides land in their keys)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from embshared.cli import config_from_args
from embshared.errors import UserError
from gapfill.cli import COMMANDS, fill, serve, train_vec2text
from gapfill.cli.__main__ import main as dispatch
from gapfill.config import ServiceConfig, Vec2TextConfig
from gapfill.corpus import read_texts, sample_texts

#: command -> (module, flags its --help must list)
HELP_FLAGS = {
    "train-vec2text": (train_vec2text, ["--texts", "--output", "--threads", "--config", "--batch_size", "key=value"]),
    "serve": (serve, ["--threads", "--config", "--port", "--umap.n_epochs", "--gap_text.max_seconds", "key=value"]),
    "fill": (fill, ["--url", "--output", "--max-gaps", "--max-seconds"]),
}


def run(args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120, check=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_answers_help(command, capsys):
    module, flags = HELP_FLAGS[command]
    for main, argv in ((module.main, ["--help"]), (dispatch, [command, "--help"])):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert f"python -m gapfill.cli {command}" in text
        for flag in flags:
            assert flag in text, (command, flag)


def test_python_m_gapfill_cli_lists_its_commands_and_refuses_others(repo, capsys):
    shown = run([sys.executable, "-m", "gapfill.cli", "--help"], repo)
    assert all(name in shown.stdout for name in COMMANDS) and "Train the embedding -> text" in shown.stdout
    for argv in ([], ["bogus"]):
        with pytest.raises(SystemExit) as exited:
            dispatch(argv)
        assert exited.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def make_line(repo, target: str, *args: str) -> list[str]:
    """The arguments after ``-m gapfill.cli <command>`` of ``make -n <target>``."""
    dry = run(["make", "-n", "--no-print-directory", target, *args], repo).stdout.replace("\\\n", " ")
    line = next(x for x in dry.splitlines() if "-m gapfill.cli" in x)
    return shlex.split(line.split("-m gapfill.cli", 1)[1])


def test_make_targets_parse_into_their_configs(repo, tmp_path):
    argv = make_line(repo, "gapfill-serve", "GAPFILL_THREADS=1", "port=8080", "umap.n_epochs=5")
    assert argv[0] == "serve"
    args = serve.build_parser().parse_args(argv[1:])
    cfg = config_from_args(ServiceConfig, args)
    assert args.threads == 1 and cfg.port == 8080 and cfg.umap.n_epochs == 5 and cfg.host == "127.0.0.1"

    argv = make_line(repo, "gapfill-train-vec2text", "GAPFILL_V2T_SECONDS=60", "batch_size=4")
    assert argv[0] == "train-vec2text"
    args = train_vec2text.build_parser().parse_args(argv[1:])
    cfg = config_from_args(Vec2TextConfig, args)
    assert args.threads == 1 and args.texts[0].startswith("stsb:") and args.output.endswith("stsb-prefix")
    assert (cfg.batch_size, cfg.trainable, cfg.max_train_seconds, cfg.correction_fraction) == (
        4,
        "projector+norms",
        60.0,
        0.25,
    )

    argv = make_line(repo, "gapfill-fill", f"GAPFILL_FILL_OUT={tmp_path / 'g.jsonl'}")
    args = fill.build_parser().parse_args(argv[1:])
    assert argv[0] == "fill" and args.output == str(tmp_path / "g.jsonl") and args.url == "http://127.0.0.1:8000"


def test_read_texts_and_sample(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a cat\n\nthe dog\na cat\n  fish  \n", encoding="utf-8")
    assert read_texts(str(path)) == ["a cat", "the dog", "fish"]
    texts = [f"t{i}" for i in range(10)]
    picked = sample_texts(texts, 4, seed=1)
    assert len(picked) == 4 and picked == sorted(picked, key=texts.index) and sample_texts(texts, 4, 1) == picked
    assert sample_texts(texts, 0) == texts and sample_texts(texts, 50) == texts
    with pytest.raises(UserError, match="no such file"):
        read_texts(str(tmp_path / "missing.txt"))
