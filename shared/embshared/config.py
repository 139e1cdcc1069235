"""Configs: a dataclass per component, loaded from YAML/JSON, then ``key=value`` overrides.

Values of overrides are parsed as YAML scalars (``16`` is an int, ``true`` a bool,
``[64, 128]`` a list); dotted keys reach nested sections (``mining.num_negatives=5``).
Unknown keys and wrong types fail with a message naming the key and where it came from.

Example::

    @dataclass
    class Mining:
        num_negatives: int = 3

    @dataclass
    class TrainConfig:
        batch_size: int = 32
        mining: Mining = field(default_factory=Mining)

    cfg = load_config(TrainConfig, "configs/default.yaml", ["batch_size=16"])
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from embshared.errors import UserError
from embshared.files import write_text

T = TypeVar("T")

OVERRIDE_SOURCE = "command line"
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(UserError):
    """A config file or override that does not fit its dataclass."""


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_describe(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints widen to floats)."""

    def fail() -> typing.NoReturn:
        raise ConfigError(f"{source}: key '{key}' expects {_describe(tp)}, got {value!r}")

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        fail()
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        fail()
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and typing.get_args(tp):
            value = [value]  # a single value where a list is expected: `matryoshka_dims=64`
        if not isinstance(value, (list, tuple)):
            fail()
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            fail()
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            fail()
        return _build(tp, value, source, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)  # `1e-5` in a YAML file (YAML 1.1 wants a dot)
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a run name `2024` or a model id that looks numeric
        fail()
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    fail()


def _build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known keys: {known})")
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}", source) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``key=value`` and parse the value as a YAML scalar or flow collection."""
    if "=" not in item:
        raise ConfigError(f"{OVERRIDE_SOURCE}: override '{item}' is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"{OVERRIDE_SOURCE}: override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: keep the raw string (e.g. a path with a colon)
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-5` (no dot) as a string; users mean a number
    return key, value


def apply_override(cfg: Any, key: str, value: Any, source: str = OVERRIDE_SOURCE) -> None:
    """Set the dotted ``key`` of a dataclass instance to ``value``, type-checked."""
    parts = key.split(".")
    target = cfg
    for depth, part in enumerate(parts):
        names = {f.name for f in dataclasses.fields(target)}
        if part not in names:
            known = ", ".join(sorted(names))
            where = ".".join(parts[:depth]) or "top level"
            raise ConfigError(f"{source}: unknown key '{key}' ({where} has: {known})")
        if depth == len(parts) - 1:
            hint = typing.get_type_hints(type(target))[part]
            setattr(target, part, _coerce(value, hint, key, source))
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise ConfigError(f"{source}: key '{'.'.join(parts[: depth + 1])}' is not a section")


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON mapping; an empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    data: Mapping[str, Any] | None = None,
    values: Iterable[tuple[str, Any, str]] = (),
) -> T:
    """Build ``cls`` from defaults, then a YAML/JSON file, then typed values (command-line
    flags), then ``key=value`` overrides; validate the result.

    Args:
        cls: the config dataclass.
        path: a YAML or JSON file (optional).
        overrides: ``key=value`` strings, applied in order.
        data: a mapping used instead of a file (e.g. a JSON request body).
        values: ``(key, value, source)`` triples applied before the overrides, e.g.
            ``("num_epochs", 3, "--epochs")``; errors name the source.

    Raises:
        ConfigError: unknown key, wrong type, unreadable file.
    """
    source = str(path) if path is not None else "config"
    raw = read_config_file(path) if path is not None else dict(data or {})
    cfg = _build(cls, raw, source)
    for key, value, value_source in values:
        apply_override(cfg, key, value, source=value_source)
    for item in overrides:
        key, value = parse_override(item)
        apply_override(cfg, key, value)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (or JSON for a .json path), atomically."""
    data = config_to_dict(cfg)
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    write_text(path, text)


def config_help(cls: type) -> list[tuple[str, str, Any]]:
    """(dotted key, type, default) for every leaf key of a config dataclass, for --help texts."""
    rows: list[tuple[str, str, Any]] = []
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend((f"{f.name}.{k}", t, d) for k, t, d in config_help(type(value)))
        else:
            rows.append((f.name, _describe(hints[f.name]), value))
    return rows
