"""The command-line helper of every entry point: flags from a config dataclass, and the run start.

An entry point parses, builds, calls and prints::

    @dataclass
    class TrainConfig:
        epochs: int = field(default=3, metadata={"help": "passes over the data"})
        threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})
        model: ModelConfig = field(default_factory=ModelConfig, metadata={"flat": True})  # --base_model

    @cli_entry
    def main(argv=None):
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, TrainConfig)  # --config FILE, --epochs N, ..., trailing key=value
        args = parser.parse_args(argv)
        cfg = config_from_args(TrainConfig, args)  # defaults < --config file < flags < key=value; validated
        start_run(threads=cfg.threads, seed=cfg.seed)
        ...

Values typed on the command line (flags and ``key=value``) are read as YAML scalars by
:func:`embshared.config.parse_override` and checked against the field's annotation by
embshared.config (one parser and one type check for files, flags and overrides: ``16`` is
an int, ``true``/``false`` a bool, ``null`` None, ``[64, 128]`` or ``--dims 64 128`` a list,
``1e-5`` a float). Two command-line conveniences: a ``str`` field takes the text as typed
(``--name yes`` is the string "yes"), and ``none``/``None`` mean None for a field that allows it.
A bad value fails with a :class:`~embshared.config.ConfigError` naming the key and where it came
from (``--epochs: key 'epochs' expects int, got 'two'``).

A dataclass-typed field is a section with dotted keys (``--mining.num_negatives 5``,
``mining.num_negatives=5``, ``mining: {num_negatives: 5}`` in a file). A section whose field
has ``metadata={"flat": True}`` (:data:`FLAT`) also lends its keys to the top level
(``--base_model``, ``base_model=...``, ``base_model:`` in a file), as well as taking the dotted
``model.base_model``; the saved config keeps the section. So a config can hold another one
instead of copying its fields and still take the flat keys a published guide uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

from embshared.config import OVERRIDE_SOURCE, ConfigError, _coerce, load_config, parse_override, read_config_file
from embshared.errors import UserError
from embshared.runtime import seed_everything, setup_logging

__all__ = [
    "FLAT",
    "NOISY_LOGGERS",
    "ConfigKey",
    "add_config_arguments",
    "add_config_flags",
    "config_from_args",
    "config_keys",
    "quiet_loggers",
    "resolve_config",
    "set_threads",
    "start_run",
    "torch_threads",
]

T = TypeVar("T")

#: metadata key of a section field whose keys are also top-level keys: ``metadata={"flat": True}``
FLAT = "flat"
#: libraries whose INFO lines (HTTP requests, model loading, index building) bury a run's own log
NOISY_LOGGERS = (
    "httpx",
    "httpcore",
    "urllib3",
    "filelock",
    "huggingface_hub",
    "sentence_transformers",
    "transformers",
    "faiss",
    "faiss.loader",
    "bm25s",
    "matplotlib",
    "PIL",
)
_NULLS = {"none", "null"}
_RESERVED = {"config", "overrides"}


# ---------------------------------------------------------------------------- config keys


class ConfigKey(NamedTuple):
    """One leaf key of a config dataclass, as the command line sees it."""

    path: str  # dotted path in the dataclass ("model.output_dim")
    name: str  # what the user types: the path, or the bare name inside a flat section ("output_dim")
    hint: Any  # the field's annotation
    default: Any
    help: str


def config_keys(cls: type) -> list[ConfigKey]:
    """Every leaf key of ``cls`` (sections descended), in field order.

    Raises:
        ValueError: two keys with one name (a flat section clashing with a field), or a
            field named ``config`` or ``overrides`` (the helper's own arguments).
    """
    keys = _keys(cls, "", flat=False)
    seen: dict[str, str] = {}
    for key in keys:
        if key.name in seen or key.name in _RESERVED:
            other = seen.get(key.name, "the command line helper")
            raise ValueError(f"{cls.__name__}: key '{key.name}' of '{key.path}' clashes with {other}")
        seen[key.name] = key.path
    return keys


def _keys(cls: type, prefix: str, flat: bool) -> list[ConfigKey]:
    hints = typing.get_type_hints(cls)
    instance = cls()
    keys: list[ConfigKey] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = f"{prefix}{f.name}"
        default = getattr(instance, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and dataclasses.is_dataclass(default):
            keys.extend(_keys(type(default), f"{path}.", flat=bool(f.metadata.get(FLAT))))
        else:
            name = f.name if flat else path
            keys.append(ConfigKey(path, name, hints[f.name], default, f.metadata.get("help", "")))
    return keys


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed) of e.g. ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 (a runtime Union of several types)
    return hint, False


def parse_value(text: Any, hint: Any) -> Any:
    """A command-line text as a YAML scalar for a field annotated ``hint`` (not yet type-checked).

    Non-strings (a bare boolean flag's True) pass through; ``none``/``null`` are None where the
    annotation allows None; a ``str`` field keeps the text as typed.
    """
    if not isinstance(text, str):
        return text
    inner, optional = _unwrap_optional(hint)
    if optional and text.strip().lower() in _NULLS:
        return None
    if inner is str:
        return text
    return parse_override(f"value={text}")[1]


def _parse_list(items: Sequence[str], hint: Any) -> Any:
    """``--split 0.8 0.1 0.1`` (one item each) or ``--split [0.8, 0.1, 0.1]`` (one YAML list)."""
    inner, _ = _unwrap_optional(hint)
    if len(items) == 1:
        single = parse_value(items[0], hint)
        if single is None or isinstance(single, list):
            return single
    args = typing.get_args(inner)
    item_hint = args[0] if args else Any
    return [parse_value(item, item_hint) for item in items]


def typed_value(key: ConfigKey, value: Any, source: str) -> Any:
    """A command-line value for ``key`` (a text, the texts of a list flag, or a bare bool flag's
    True), parsed and checked against the key's annotation.

    Raises:
        ConfigError: ``<source>: key '<name>' expects <type>, got <value>``.
    """
    value = _parse_list(value, key.hint) if isinstance(value, list) else parse_value(value, key.hint)
    return _coerce(value, key.hint, key.name, source)


# ---------------------------------------------------------------------------- flags


def _metavar(hint: Any) -> str:
    inner, _ = _unwrap_optional(hint)
    if typing.get_origin(inner) is typing.Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(inner)) + "}"
    if typing.get_origin(inner) in (list, tuple):
        args = typing.get_args(inner)
        return _metavar(args[0]) if args else "VALUE"
    if typing.get_origin(inner) is dict:
        return "MAPPING"
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        return "VALUE"
    return getattr(inner, "__name__", "VALUE").upper()


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--<name>`` for every key of ``cls``, with its help text and default.

    Flags that are not given stay out of the namespace (``argparse.SUPPRESS``), so that a
    config file is only overridden by what the user typed. A bool flag alone means true
    (``--mixed_precision``); ``--mixed_precision false`` works too. A list flag takes one
    or more items. Values are checked later, by :func:`config_from_args`.
    """
    for key in config_keys(cls):
        inner, _ = _unwrap_optional(key.hint)
        kwargs: dict[str, Any] = {
            "dest": key.path,
            "default": argparse.SUPPRESS,
            "help": f"{key.help} (default: {key.default})".lstrip(),
            "metavar": _metavar(key.hint),
        }
        if typing.get_origin(inner) in (list, tuple):
            kwargs["nargs"] = "+"
        elif inner is bool:
            kwargs.update(nargs="?", const=True, metavar="BOOL")
        parser.add_argument(f"--{key.name}", **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config FILE``, one flag per key of ``cls`` and trailing ``key=value`` overrides."""
    parser.add_argument("--config", default=None, help="YAML or JSON config file (flags and key=value win)")
    add_config_flags(parser, cls)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied last")


# ---------------------------------------------------------------------------- resolution


def _file_values(path: str | os.PathLike, keys: list[ConfigKey]) -> list[tuple[str, Any, str]]:
    """(dotted path, checked value, file) for every leaf a config file sets, flat keys moved into
    their sections; unknown keys pass unchecked so that load_config names them with the file."""
    source = str(path)
    by_name = {k.name: k for k in keys}
    by_path = {k.path: k for k in keys}
    sections = {k.path.rsplit(".", i)[0] for k in keys for i in range(1, k.path.count(".") + 1)}
    out: list[tuple[str, Any, str]] = []

    def walk(data: Mapping[str, Any], prefix: str) -> None:
        for name, value in data.items():
            written = f"{prefix}{name}"
            key = by_path.get(written) or (None if prefix else by_name.get(written))
            if key is None and written in sections and isinstance(value, Mapping):
                walk(value, f"{written}.")
            elif key is None:
                out.append((written, value, source))
            else:
                out.append((key.path, _coerce(value, key.hint, written, source), source))

    walk(read_config_file(path), "")
    return out


def resolve_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    flags: Iterable[tuple[str, Any]] = (),
    overrides: Iterable[str] = (),
) -> T:
    """Defaults < config file < flags < ``key=value`` overrides, each checked, then ``validate()``.

    Args:
        cls: the config dataclass.
        path: a YAML or JSON file (optional); keys may be dotted, nested or flat.
        flags: ``(name, text or value)`` pairs, e.g. ``("epochs", "5")``; errors name ``--<name>``.
        overrides: ``key=value`` strings.

    Raises:
        ConfigError: unknown key, wrong type, unreadable file, or ``validate()`` failing.
    """
    keys = config_keys(cls)
    by_name = {k.name: k for k in keys}
    by_path = {k.path: k for k in keys}
    values = _file_values(path, keys) if path is not None else []
    for name, value in flags:
        key = by_name.get(name) or by_path.get(name)
        if key is None:
            raise ConfigError(f"--{name}: unknown key '{name}'")
        values.append((key.path, typed_value(key, value, f"--{key.name}"), f"--{key.name}"))
    for item in overrides:
        name, parsed = parse_override(item)  # also checks the key=value form
        key = by_name.get(name) or by_path.get(name)
        if key is None:
            values.append((name, parsed, OVERRIDE_SOURCE))  # unknown: load_config names it
        else:
            text = item.split("=", 1)[1]
            values.append((key.path, typed_value(key, text, OVERRIDE_SOURCE), OVERRIDE_SOURCE))
    return load_config(cls, values=values)


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The config that :func:`add_config_arguments`' flags describe (see :func:`resolve_config`)."""
    given = vars(args)
    flags = [(k.name, given[k.path]) for k in config_keys(cls) if k.path in given]
    return resolve_config(cls, given.get("config"), flags, given.get("overrides") or ())


# ---------------------------------------------------------------------------- run start


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads; None or 0 keeps torch's default (torch is not imported then).

    On cores shared with other jobs one thread often beats two for small tensors.

    Raises:
        UserError: a negative count.
    """
    if threads is None or threads == 0:
        return
    if threads < 0:
        raise UserError(f"threads must be a positive integer (or 0 for torch's default), got {threads}")
    import torch

    torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``with torch_threads(1):`` runs the block with ``threads`` torch threads, then restores the count."""
    import torch

    before = torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def quiet_loggers(names: Iterable[str] = NOISY_LOGGERS, level: int = logging.WARNING) -> None:
    """Raise the level of third-party loggers that would bury the run's own INFO lines."""
    for name in names:
        logging.getLogger(name).setLevel(level)


def hide_hub_progress_bars() -> None:
    """No download/loading progress bars from huggingface_hub and transformers.

    Sets ``HF_HUB_DISABLE_PROGRESS_BARS`` (read when those libraries are imported) unless the
    user set it, and switches the bars off in the libraries already imported.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def start_run(
    *,
    threads: int | None = None,
    seed: int | None = None,
    quiet: bool = False,
    log_file: str | os.PathLike | None = None,
    noisy_loggers: Iterable[str] = NOISY_LOGGERS,
) -> None:
    """Start a run the same way in every entry point and benchmark.

    Logs to the console (and ``log_file``) at INFO, or WARNING when ``quiet``; puts the
    libraries in ``noisy_loggers`` at WARNING; when ``quiet``, turns off the Hugging Face
    progress bars too (the caller passes ``show_progress=not quiet`` to its own loops);
    seeds Python, NumPy and torch if ``seed`` is given; sets torch's CPU threads if
    ``threads`` is given (see :func:`set_threads`).

    Raises:
        UserError: a negative thread count.
    """
    setup_logging(logging.WARNING if quiet else logging.INFO, log_file)
    quiet_loggers(noisy_loggers)
    if quiet:
        hide_hub_progress_bars()
    if seed is not None:
        seed_everything(seed)
    set_threads(threads)
