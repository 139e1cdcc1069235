"""Shared pieces of the three entry points: a config file, flags that override it, and
free ``key=value`` overrides (what ``make ... key=value`` forwards), in that order."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from embshared.config import ConfigError, config_help, load_config

T = TypeVar("T")


#: the subproject's shipped config folder (used when ``--config`` is not given and the
#: current folder has no ``config/<name>``).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def default_config_path(name: str) -> Path | None:
    """``config/<name>`` in the current folder, else in the subproject, else None."""
    for candidate in (Path("config") / name, CONFIG_DIR / name):
        if candidate.is_file():
            return candidate
    return None


def make_parser(description: str, config_cls: type, default_config: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with ``--config`` and trailing ``key=value`` overrides; its epilog
    lists every config key with its type and default.

    Args:
        description: the first line of ``--help``.
        config_cls: the config dataclass (its keys are listed).
        default_config: the file name looked up in ``config/`` when ``--config`` is not given.
    """
    keys = "\n".join(f"  {key} ({kind}, default {default!r})" for key, kind, default in config_help(config_cls))
    parser = argparse.ArgumentParser(
        description=description,
        epilog=f"config keys (set them in the file, with a flag, or as key=value):\n{keys}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"JSON or YAML config file (default: config/{default_config})")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")
    parser.set_defaults(default_config=default_config)
    return parser


def resolve_config(config_cls: type[T], args: argparse.Namespace, flags: Mapping[str, str]) -> T:
    """Defaults, then the config file (``--config``, else the default one if found), then the flags
    that were given (flag dest -> config key), then the ``key=value`` overrides.

    Raises:
        ConfigError: unknown key, wrong type, a named config file that does not exist.
    """
    path = args.config
    if path is None and getattr(args, "default_config", None):
        path = default_config_path(args.default_config)
    elif path is not None and not Path(path).is_file():
        raise ConfigError(f"{path}: config file not found")
    given = [
        (key, getattr(args, dest), f"--{dest}") for dest, key in flags.items() if getattr(args, dest, None) is not None
    ]
    return load_config(config_cls, path, args.overrides, values=given)
