"""What the three commands share: the subproject's config folder (the default ``--config``), a
parser whose flags come from the config dataclass (embshared.cli) plus the guide's short flags,
and the config resolved from defaults < config file < flags < ``key=value``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from embshared.cli import add_config_flags, config_from_args

T = TypeVar("T")

#: the subproject's shipped config folder (used when ``--config`` is not given and the
#: current folder has no ``config/<name>``).
CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


def default_config_path(name: str) -> Path | None:
    """``config/<name>`` in the current folder, else in the subproject, else None."""
    for candidate in (Path("config") / name, CONFIG_DIR / name):
        if candidate.is_file():
            return candidate
    return None


def build_parser(
    description: str, config_cls: type, default_config: str, guide_flags: Mapping[str, dict] | None = None
) -> argparse.ArgumentParser:
    """``--config``, the guide's short flags, a ``--<key>`` flag for every key of ``config_cls``
    (dotted for sections, with help and default) and trailing ``key=value`` overrides.

    Args:
        description: the first line of ``--help``.
        config_cls: the config dataclass.
        default_config: the file name looked up in ``config/`` when ``--config`` is not given.
        guide_flags: flag name -> ``add_argument`` keywords of flags that are not config keys
            (``{"epochs": {"type": float, "help": "num_epochs"}}``); :func:`resolve`'s ``aliases``
            say which key each one sets.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config",
        default=None,
        help=f"JSON or YAML config file (default: config/{default_config} in the current folder, else "
        "qa_pipeline/config/); flags and key=value win",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")
    if guide_flags:
        guide = parser.add_argument_group("the guide's flags")
        for name, kwargs in guide_flags.items():
            guide.add_argument(f"--{name}", **kwargs)
    add_config_flags(parser.add_argument_group("config keys (also in the file, or as key=value)"), config_cls)
    parser.set_defaults(default_config=default_config)
    return parser


def resolve(config_cls: type[T], args: argparse.Namespace, aliases: Mapping[str, str] | None = None) -> T:
    """Defaults, then the config file (``--config``, else the default one if found), then the flags
    that were given, then the ``key=value`` overrides; validated.

    Args:
        aliases: the guide's short flags: argparse dest -> config key (``{"epochs": "num_epochs"}``);
            a short flag given wins over the key's own flag.

    Raises:
        ConfigError: unknown key, wrong type, a config file that does not exist, validation.
    """
    if args.config is None:
        args.config = default_config_path(args.default_config)
    for dest, key in (aliases or {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            setattr(args, key, value)  # as if --<key> had been given
    return config_from_args(config_cls, args)
