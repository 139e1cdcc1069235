"""Command-line flags generated from a config dataclass.

Every field becomes ``--name`` (with the field's help text and default); the values given
are typed by the field's annotation and applied over the config file, then ``key=value``
overrides are applied, and the result is validated. So the flags of the public guide
(``--batch_size 16``, ``--mixed_precision``) and the house overrides (``batch_size=16``)
work the same way and are checked by embshared.config.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from embshared.config import OVERRIDE_SOURCE, ConfigError, apply_override, load_config, parse_override

T = TypeVar("T")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(inner type, is optional) of an annotation like ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _converter(name: str, hint: Any):
    inner, optional = _unwrap(hint)

    def convert(text: str):
        if optional and text.strip().lower() in {"none", "null"}:
            return None
        if inner is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise argparse.ArgumentTypeError(f"--{name} expects true or false, got {text!r}")
        if inner in (int, float):
            try:
                return inner(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"--{name} expects {inner.__name__}, got {text!r}") from None
        if typing.get_origin(inner) is typing.Literal:
            choices = typing.get_args(inner)
            if text not in choices:
                raise argparse.ArgumentTypeError(f"--{name} expects one of {', '.join(choices)}, got {text!r}")
        return text

    return convert


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field`` for every field of ``cls``; flags not given stay absent from the namespace."""
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        help_text = f.metadata.get("help", "")
        default = getattr(defaults, f.name)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{help_text} (default: {default})"}
        inner, _ = _unwrap(hint)
        if typing.get_origin(inner) in (list, tuple):
            item = typing.get_args(inner)[0]
            kwargs.update(nargs="+", type=_converter(f.name, item), metavar=item.__name__.upper())
        elif inner is bool:
            kwargs.update(nargs="?", const=True, type=_converter(f.name, hint), metavar="BOOL")
        else:
            kwargs.update(type=_converter(f.name, hint), metavar=getattr(inner, "__name__", "VALUE").upper())
        parser.add_argument(f"--{f.name}", **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config FILE``, one flag per field, and trailing ``key=value`` overrides."""
    parser.add_argument("--config", default=None, help="YAML or JSON config file (flags and overrides win)")
    add_config_flags(parser, cls)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")


def build_config(cls: type[T], args: argparse.Namespace, overrides: Sequence[str] | None = None) -> T:
    """Defaults < ``--config`` file < flags < ``key=value`` overrides; then validate."""
    cfg = load_config(cls, getattr(args, "config", None))
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            apply_override(cfg, f.name, getattr(args, f.name), source=f"{OVERRIDE_SOURCE} (--{f.name})")
    for item in overrides if overrides is not None else getattr(args, "overrides", []):
        apply_override(cfg, *parse_override(item))
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{OVERRIDE_SOURCE}: {exc}") from None
    return cfg
