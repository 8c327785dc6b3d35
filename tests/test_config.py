"""Config parsing: strict YAML, validation errors with key paths, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import ConfigError, Secret, load_config, parse_config
from clgwd.config.loader import format_location
from clgwd.config.models import StrictModel


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(issue) for issue in info.value.issues]


def test_empty_file_gives_working_defaults() -> None:
    """An empty config file is valid and listens on port 80 with state in /var/lib/clgwd."""
    config = parse_config("")
    assert config.http.listen[0].port == 80
    assert str(config.state.dir) == "/var/lib/clgwd"


def test_port_out_of_range_names_key_path_and_value() -> None:
    """The issue's own example: `http.listen[0].port: must be 1-65535, got 70000`."""
    assert _errors("http: {listen: [{port: 70000}]}") == [
        "http.listen[0].port: must be 0-65535 (0 picks a free port), got 70000"
    ]


def test_port_type_message_matches_issue_example() -> None:
    """`Port` fields (PBX, cloud) reject 0 too: `must be 1-65535, got 70000`."""
    from clgwd.config.models import Port

    class _M(StrictModel):
        port: Port = 1

    from pydantic import ValidationError

    from clgwd.config.loader import render_validation_error

    with pytest.raises(ValidationError) as info:
        _M.model_validate({"port": 70000})
    assert [str(i) for i in render_validation_error(info.value)] == [
        "port: must be 1-65535, got 70000"]


def test_unknown_key_is_rejected_with_its_path() -> None:
    """A typo is an error, not silently ignored."""
    assert _errors("http: {lisen: []}") == ["http.lisen: unknown key, got a list of 0 item(s)"]


def test_wrong_types_are_not_coerced() -> None:
    """Strict mode: a quoted number or 'yes' is not silently converted."""
    errors = _errors("http: {listen: [{port: '80'}]}\nstate: {outbox_max_records: yes}")
    assert "http.listen[0].port: must be an integer, got '80'" in errors
    assert "state.outbox_max_records: must be an integer, got True" in errors


def test_all_errors_are_reported_at_once() -> None:
    """Operators fix a file in one pass: every problem is listed."""
    errors = _errors("state: {dir: relative/path}\nhttp: {listen: [{host: nope, port: -1}]}")
    assert len(errors) == 3
    assert "state.dir: must be an absolute path, got 'relative/path'" in errors


def test_duplicate_keys_are_rejected_with_line_numbers() -> None:
    """PyYAML would keep the last value; we refuse and say where."""
    errors = _errors("logging:\n  level: info\nlogging:\n  level: debug\n")
    assert errors == ["YAML error at line 3, column 1: duplicate key 'logging' "
                      "(first defined on line 1)"]


def test_nested_duplicate_keys_are_rejected() -> None:
    errors = _errors("http:\n  listen: []\n  listen: []\n")
    assert "duplicate key 'listen'" in errors[0]


def test_top_level_must_be_mapping() -> None:
    assert _errors("- a\n- b\n") == ["must be a mapping of keys, got list"]


def test_invalid_yaml_reports_position() -> None:
    assert _errors("http: {listen: [}")[0].startswith("YAML error at line 1")


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    """File problems are ConfigErrors too, naming the file."""
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"logging: {level: \xe9}\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(bad)


class _WithSecret(StrictModel):
    password: Secret = Secret("")


def test_secret_fields_never_echo_rejected_values() -> None:
    """A wrongly typed password is reported without printing it."""
    from pydantic import ValidationError

    from clgwd.config.loader import render_validation_error

    with pytest.raises(ValidationError) as info:
        _WithSecret.model_validate({"password": 12345678})
    (issue,) = render_validation_error(info.value)
    assert "12345678" not in str(issue)
    assert str(issue) == "password: must be a string"


def test_secret_dumps_redacted() -> None:
    model = _WithSecret.model_validate({"password": "hunter22-secret"})
    assert model.password.reveal() == "hunter22-secret"
    assert "hunter22" not in repr(model)
    assert model.model_dump(mode="json") == {"password": "***"}
    assert f"{model.password}" == "***"


@given(st.lists(st.one_of(st.integers(0, 50), st.from_regex(r"[a-z_]{1,8}", fullmatch=True)),
                max_size=6))
def test_format_location_round_trips_indexes(loc: list[int | str]) -> None:
    """Every int becomes [n] and every name a dotted segment."""
    rendered = format_location(loc)
    assert rendered.count("[") == sum(isinstance(p, int) for p in loc)
    assert all(str(p) in rendered for p in loc)
