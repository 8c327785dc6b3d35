"""The cloud address typed at the gateway in the settings rule: saved over file."""

from __future__ import annotations

from pathlib import Path

import pytest

from clgwd.config import ClgwdConfig, parse_config
from clgwd.settings import SettingOverridden, Source, check_file_change
from clgwd.settings.rule import resolve
from clgwd.settings.saved import SavedSettings

FILE_URL = "https://cloud-a.example.com"
SAVED_URL = "https://cloud-b.example.com:8443"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
"""The rule does not parse the CA (the link checked it before saving)."""


def _file(tmp_path: Path, cloud: str = "") -> ClgwdConfig:
    return parse_config(f"state: {{dir: {tmp_path}}}\n{cloud}")


def _with_ca(tmp_path: Path) -> ClgwdConfig:
    return _file(tmp_path, f"cloud: {{url: '{FILE_URL}', enrollment_ca_file: /etc/ca.pem}}\n")


def _saved(url: str, ca_pem: str | None = None) -> dict[str, object]:
    return {"url": url, "ca_pem": ca_pem, "actor": "local:web:admin", "at": 1000.0}


def test_the_saved_address_wins_over_the_file_and_names_who_saved_it(tmp_path: Path) -> None:
    """A saved address (with its CA) is in force, reported as saved from the page with
    who and when; the file's CA file, meant for the file's cloud, no longer applies."""
    effective = SavedSettings(cloud_address=_saved(SAVED_URL, PEM)).resolve(_with_ca(tmp_path))
    assert effective.config.cloud.url == SAVED_URL
    assert effective.config.cloud.enrollment_ca_file is None
    entry = effective.entry("cloud.url")
    assert entry == {"key": "cloud.url", "value": SAVED_URL, "source": "page",
                     "set_by": "local:web:admin", "set_at": 1000.0}
    assert effective.source("cloud.enrollment_ca_file") == Source.PAGE
    assert PEM not in str(effective.report())


def test_the_report_names_the_file_value_the_saved_one_overrides(tmp_path: Path) -> None:
    """The file's cloud.url and CA file that do not apply get a note each, naming who
    saved the winning value and how to change it."""
    effective = SavedSettings(cloud_address=_saved(SAVED_URL, PEM)).resolve(_with_ca(tmp_path))
    url_note = next(n for n in effective.notes if n.startswith("cloud.url:"))
    assert "config file's value does not apply" in url_note
    assert "local:web:admin" in url_note and "--cloud-url" in url_note
    assert any(n.startswith("cloud.enrollment_ca_file:") for n in effective.notes)


def test_a_saved_address_alone_applies_without_a_file_url(tmp_path: Path) -> None:
    """The stock appliance: no cloud.url in the file; the saved one is in force, with
    no note (there is no file value to override)."""
    effective = SavedSettings(cloud_address=_saved(SAVED_URL)).resolve(_file(tmp_path))
    assert effective.config.cloud.url == SAVED_URL
    assert effective.source("cloud.url") == Source.PAGE
    assert effective.notes == ()


def test_saving_the_files_own_address_keeps_the_files_ca(tmp_path: Path) -> None:
    """Saved = the file's address without a CA: the file's CA file still applies and
    is reported as the file's."""
    effective = SavedSettings(cloud_address=_saved(FILE_URL)).resolve(_with_ca(tmp_path))
    assert effective.config.cloud.enrollment_ca_file == Path("/etc/ca.pem")
    assert effective.source("cloud.enrollment_ca_file") == Source.FILE
    assert effective.source("cloud.url") == Source.PAGE
    assert effective.notes == ()


def test_nothing_saved_or_forgotten_the_file_applies(tmp_path: Path) -> None:
    """Without a saved address (never saved, or forgotten) the file's is in force."""
    effective = SavedSettings().resolve(_with_ca(tmp_path))
    assert effective.config.cloud.url == FILE_URL
    assert effective.source("cloud.url") == Source.FILE
    assert _file(tmp_path).cloud.url is None
    assert resolve(_file(tmp_path), overlay=None, password=None, interval=None, marks={},
                   file_marks={}).source("cloud.url") == Source.DEFAULT


def test_an_unreadable_saved_address_falls_back_to_the_file_with_a_note(
        tmp_path: Path) -> None:
    """A stored address that no longer validates (http://) is not used; a note says so."""
    effective = SavedSettings(cloud_address=_saved("http://old.example.com")).resolve(
        _with_ca(tmp_path))
    assert effective.config.cloud.url == FILE_URL
    assert any("cloud address saved on the page is not valid" in n for n in effective.notes)


def test_a_file_write_to_the_saved_address_is_refused(tmp_path: Path) -> None:
    """Writing cloud.url into the file (config.set at the gateway) while a saved address
    wins would change nothing: refused, naming the command that changes it."""
    effective = SavedSettings(cloud_address=_saved(SAVED_URL)).resolve(_with_ca(tmp_path))
    new_file = _file(tmp_path, "cloud: {url: 'https://cloud-c.example.com', "
                               "enrollment_ca_file: /etc/ca.pem}\n")
    with pytest.raises(SettingOverridden, match=r"cloud\.url: saved from the page"):
        check_file_change(effective, new_file)
