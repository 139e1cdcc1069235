"""``python -m gapfill.cli <command> [args]``: runs the command's ``main`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import importlib
import sys

from gapfill.cli import COMMANDS


def command_module(name: str):
    """The module of a command name (``train-vec2text`` -> ``gapfill.cli.train_vec2text``)."""
    return importlib.import_module(f"gapfill.cli.{COMMANDS[name]}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return command_module(argv[0]).main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m gapfill.cli",
        description="gapfill's commands; `python -m gapfill.cli <command> --help` shows a command's flags.",
        epilog="commands:\n"
        + "\n".join(f"  {name:16s} {command_module(name).__doc__.splitlines()[0]}" for name in COMMANDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), help="the command")
    parser.add_argument("args", nargs="*", default=[], help="its arguments")
    parser.parse_args(argv)  # --help, or an error naming the commands
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
