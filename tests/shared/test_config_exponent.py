"""Overrides written in exponent notation without a dot (`1e-5`) are numbers, as users mean."""

from dataclasses import dataclass

import pytest

from embshared.config import ConfigError, load_config, parse_override


@dataclass
class _Opt:
    learning_rate: float = 0.1
    name: str = "run"


@pytest.mark.parametrize(("raw", "expected"), [("1e-5", 1e-5), ("2E3", 2000.0), ("-3.5e-2", -0.035), (".5e1", 5.0)])
def test_exponent_without_dot_is_a_float(raw, expected):
    key, value = parse_override(f"learning_rate={raw}")
    assert key == "learning_rate"
    assert isinstance(value, float) and value == pytest.approx(expected)


def test_exponent_override_reaches_float_field_and_strings_stay_strings():
    cfg = load_config(_Opt, overrides=["learning_rate=1e-5", "name=e5"])
    assert cfg.learning_rate == pytest.approx(1e-5)
    assert cfg.name == "e5"
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(_Opt, overrides=["learning_rate=1e-5x"])


def test_exponent_in_yaml_file_reaches_float_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-5\nname: 1e-5\n", encoding="utf-8")
    cfg = load_config(_Opt, path)
    assert cfg.learning_rate == pytest.approx(1e-5)
    assert cfg.name == "1e-5"
