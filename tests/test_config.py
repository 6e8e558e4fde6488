import types
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from jamey_engine.config import SETTINGS, Settings
from jamey_engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_put_everything_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"JAMEY_DATA_DIR": str(tmp_path)})
    assert settings.data_dir == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'jamey.db'}"
    assert settings.backup_dir == tmp_path / "backups"
    assert settings.port == 3000
    assert settings.backup_interval is None


def test_overrides_beat_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"JAMEY_PORT": "4000"}, port="5000", data_dir=str(tmp_path))
    assert settings.port == 5000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JAMEY_PORT", "eighty"),
        ("JAMEY_PORT", "70000"),
        ("JAMEY_DEFAULT_RATE_LIMIT", "lots"),
        ("JAMEY_BACKUP_INTERVAL", "daily"),
        ("JAMEY_RATE_LIMIT_STORAGE", "mongodb://x"),
        ("PROMETHEUS_URL", "localhost:9090"),
        ("JAMEY_MAX_CONTENT_BYTES", "-1"),
    ],
)
def test_an_invalid_value_fails_fast_naming_the_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({variable: value})
    assert variable in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("JAMEY_PORT", "eighty", "not a port between 1 and 65535"),
        ("JAMEY_MAX_CONTENT_BYTES", "1e3", "must be a whole number above zero"),
        ("JAMEY_BACKUP_KEEP", "some", "must be a whole number, zero or above"),
        ("JAMEY_LOCK_TIMEOUT", "nan", "must be a number above zero"),
    ],
)
def test_a_value_that_is_not_a_number_gets_the_rule_not_a_python_message(
    variable: str, value: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({variable: value})
    assert str(excinfo.value).endswith(rule)
    assert "literal" not in str(excinfo.value)


def test_every_setting_is_documented_in_the_readme_and_the_configuration_page() -> None:
    for page in (ROOT / "README.md", ROOT / "docs" / "reference" / "configuration.md"):
        text = page.read_text()
        missing = [s.env for s in SETTINGS if f"`{s.env}`" not in text]
        assert not missing, f"settings missing from {page.name}: {missing}"


def _has_type(value: object, hint: object) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(isinstance(part, item) for part in value)
    return isinstance(value, origin or hint)  # type: ignore[arg-type]


def test_every_setting_is_one_field_of_settings_in_order_and_parses_to_its_type(tmp_path: Path) -> None:
    """The table (name, default, help, parser) and the dataclass (what mypy checks) are written
    apart; they must name the same settings, and each parser must give its field's type."""
    assert [s.attr for s in SETTINGS] == [f.name for f in fields(Settings)]
    hints = typing.get_type_hints(Settings)
    for environ in ({}, {"JAMEY_BACKUP_INTERVAL": "1h", "JAMEY_BACKUP_REMOTE_KEEP": "3"}):
        settings = Settings.from_env({"JAMEY_DATA_DIR": str(tmp_path), **environ})
        wrong = {
            f.name: type(getattr(settings, f.name)).__name__
            for f in fields(Settings)
            if not _has_type(getattr(settings, f.name), hints[f.name])
        }
        assert not wrong, f"settings parsed to a type their field does not declare: {wrong}"
