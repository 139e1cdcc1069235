"""Every target `make help` lists resolves what it runs, and every CLI it runs answers --help.

`make -n` prints each target's commands with the variables expanded (dummy values for the ones a
user must give); the test collects the `python -m <module> [subcommand]` and `python <script>.py`
commands from that output. Modules must import and their `main(argv)` must exit 0 on `--help`;
scripts must exist and compile, and those built on argparse must answer `--help` too (run in this
process: the heavy imports are shared with the rest of the suite).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embshared.runtime import repo_root

REPO = repo_root()
NOT_CLI = {"help", "setup", "test", "test-all", "lint", "format", "clean", "distclean", "setup-llama", "test-gapfill"}
DUMMIES = ["MODEL=m", "DATA=d", "DOCS=d", "INDEX=i", "QUERY=q", "TEXTS=a|b"]
SUBPROJECTS = ["", "embeddingFT", "jsonembed", "ragcun", "gapfill", "qa_pipeline"]
COMMAND = re.compile(r"python3? (?:-m ([A-Za-z_][\w.]*)(?: ([a-z][a-z0-9-]*))?|(\S+\.py))")


def _targets() -> list[str]:
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


def _commands() -> tuple[set[tuple[str, str | None]], set[str]]:
    targets = [t for t in _targets() if t not in NOT_CLI]
    dry = subprocess.run(["make", "-n", *targets, *DUMMIES], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    modules, scripts = set(), set()
    for module, sub, script in COMMAND.findall(dry.stdout):
        if module and module not in {"pip", "venv", "pytest"}:
            modules.add((module, sub or None))
        elif script:
            scripts.add(script)
    return modules, scripts


@pytest.fixture(scope="module")
def commands():
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    return _commands()


def _help(call) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code in (0, None), out.getvalue()
    return out.getvalue()


def test_make_targets_run_known_commands(commands):
    modules, scripts = commands
    # the main job's five commands and at least one command of every subproject are reached
    names = {m for m, _ in modules}
    for expected in ["embedding_ft.cli.train", "embedding_ft.cli.index", "embedding_ft.cli.search"]:
        assert expected in names
    for package in ["embedding_ft", "embedding_model", "gapfill", "qa_pipeline"]:
        assert any(n.split(".")[0] == package for n in names), package
    assert any(s.startswith("ragcun/") for s in scripts)


def test_every_module_a_make_target_runs_answers_help(commands):
    modules, _ = commands
    for module, sub in sorted(modules, key=lambda x: (x[0], x[1] or "")):
        imported = importlib.import_module(module)
        main = getattr(imported, "main", None)
        if main is None:  # `python -m package`: its __main__ module holds main
            main = importlib.import_module(module + ".__main__").main
        argv = [sub, "--help"] if sub else ["--help"]
        text = _help(lambda main=main, argv=argv: main(argv))
        assert "usage" in text.lower(), (module, sub, text[:200])


def _script_path(script: str) -> Path:
    for sub in SUBPROJECTS:  # some targets `cd` into their subproject first
        path = REPO / sub / script
        if path.is_file():
            return path
    raise AssertionError(f"{script}: no such file (make -n names it)")


def test_every_script_a_make_target_runs_exists_and_answers_help(commands, monkeypatch):
    _, scripts = commands
    for script in sorted(scripts):
        path = _script_path(script)
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")
        if "argparse" not in source:
            continue  # key=value benches: compiling is the check
        before = set(sys.modules)
        with monkeypatch.context() as patch:
            patch.setattr(sys, "argv", [str(path), "--help"])
            patch.syspath_prepend(str(path.parent))  # as Python does for a script
            text = _help(lambda p=path: runpy.run_path(str(p), run_name="__main__"))
        for name in set(sys.modules) - before:  # the script's sibling modules (common, scifact, ...)
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(path.parent)):
                del sys.modules[name]
        assert "usage" in text.lower(), (script, text[:200])
