"""The one settings rule: default < file < saved (page or cloud), pure cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from clgwd.config import ClgwdConfig, parse_config
from clgwd.config.secret import Secret
from clgwd.settings import SettingOverridden, Source, check_file_change
from clgwd.settings.rule import Mark, digest, resolve

OVERLAY = {"type": "ldap", "name": "HQ", "host": "192.0.2.9", "port": 1389,
           "username": "cn=page", "ldap": {"base_dn": "dc=page"}}


def _config(tmp_path: Path, extra: str = "") -> ClgwdConfig:
    return parse_config(f"state: {{dir: {tmp_path}}}\n{extra}")


def _file(tmp_path: Path) -> ClgwdConfig:
    return _config(tmp_path, "pbx: {type: ldap, host: 192.0.2.7, password: file-pass,"
                             " read_timeout: 33, ldap: {base_dn: 'dc=file', page_size: 77}}\n"
                             "sync: {interval_minutes: 45}\n")


def test_a_key_the_file_leaves_out_has_its_default(tmp_path: Path) -> None:
    """Nothing saved, key absent from the file: the built-in default, source default."""
    effective = resolve(_config(tmp_path), overlay=None, password=None, interval=None,
                        marks={}, file_marks={})
    entry = effective.entry("sync.interval_minutes")
    assert (entry["value"], entry["source"]) == (20, "default")
    assert effective.source("pbx.host") == Source.DEFAULT


def test_a_key_the_file_sets_comes_from_the_file(tmp_path: Path) -> None:
    """Nothing saved: the file's value, source file; secrets are reported as "set"."""
    effective = resolve(_file(tmp_path), overlay=None, password=None, interval=None,
                        marks={}, file_marks={})
    assert effective.entry("pbx.host")["value"] == "192.0.2.7"
    assert effective.source("pbx.host") == Source.FILE
    assert effective.entry("pbx.password") == {"key": "pbx.password", "value": "set",
                                               "source": "file", "set_by": None,
                                               "set_at": None}
    assert "file-pass" not in str(effective.report())


def test_saved_page_values_win_and_other_file_keys_stay(tmp_path: Path) -> None:
    """The page's saved PBX keys and password win; keys it does not show stay the file's."""
    mark = Mark(Source.PAGE, "local:web:admin", 1000.0)
    effective = resolve(_file(tmp_path), overlay=OVERLAY, password=Secret("page-pass"),
                        interval=None, marks={"pbx.host": mark}, file_marks={})
    pbx = effective.config.pbx
    assert (pbx.host, pbx.port, pbx.ldap.base_dn) == ("192.0.2.9", 1389, "dc=page")
    assert pbx.password is not None and pbx.password.reveal() == "page-pass"
    assert (pbx.read_timeout, pbx.ldap.page_size) == (33, 77)
    host = effective.entry("pbx.host")
    assert (host["source"], host["set_by"], host["set_at"]) == ("page", "local:web:admin",
                                                               1000.0)
    assert effective.source("pbx.ldap.base_dn") == Source.PAGE  # saved before marks: page
    assert effective.source("pbx.password") == Source.PAGE
    assert effective.source("pbx.read_timeout") == Source.FILE


def test_an_interval_saved_by_the_cloud_reports_cloud(tmp_path: Path) -> None:
    """``sync.schedule.set`` from the cloud: the saved interval wins, source cloud."""
    effective = resolve(_file(tmp_path), overlay=None, password=None, interval=15,
                        marks={"sync.interval_minutes": Mark(Source.CLOUD, "cloud", 5.0)},
                        file_marks={})
    assert effective.config.sync.interval_minutes == 15
    assert effective.entry("sync.interval_minutes")["source"] == "cloud"


def test_a_cloud_write_into_the_file_reports_cloud_until_the_file_is_edited(
        tmp_path: Path) -> None:
    """The cloud's config.set value is ``cloud`` while the file keeps it, then ``file``."""
    mark = Mark(Source.CLOUD, "cloud", 5.0, digest("salt", "pbx.read_timeout", 33.0))
    kept = resolve(_file(tmp_path), overlay=None, password=None, interval=None, marks={},
                   file_marks={"pbx.read_timeout": mark}, salt="salt")
    assert kept.source("pbx.read_timeout") == Source.CLOUD
    edited = resolve(_config(tmp_path, "pbx: {type: ldap, host: h, read_timeout: 34}\n"),
                     overlay=None, password=None, interval=None, marks={},
                     file_marks={"pbx.read_timeout": mark}, salt="salt")
    assert edited.source("pbx.read_timeout") == Source.FILE


def test_saved_pbx_that_no_longer_fits_the_file_is_reported_not_hidden(
        tmp_path: Path) -> None:
    """A reloaded file the saved PBX keys do not fit: the file applies, a note says why."""
    broken = {**OVERLAY, "port": 0}
    effective = resolve(_file(tmp_path), overlay=broken, password=None, interval=None,
                        marks={}, file_marks={})
    assert effective.config.pbx.host == "192.0.2.7"
    assert effective.source("pbx.host") == Source.FILE
    [note] = effective.notes
    assert "pbx.port" in note and "do not fit" in note


def test_a_file_change_a_saved_value_overrides_is_refused_naming_the_key(
        tmp_path: Path) -> None:
    """Writing a shadowed key into the file is refused with the key and the command."""
    effective = resolve(_file(tmp_path), overlay=OVERLAY, password=None, interval=30,
                        marks={}, file_marks={})
    new = _config(tmp_path, "pbx: {type: ldap, host: 198.51.100.4, password: file-pass,"
                            " read_timeout: 33, ldap: {base_dn: 'dc=file', page_size: 77}}\n"
                            "sync: {interval_minutes: 25}\n")
    with pytest.raises(SettingOverridden) as caught:
        check_file_change(effective, new)
    message = caught.value.message
    assert message.startswith("pbx.host: saved from the page")
    assert "pbx.set" in message and "sync.interval_minutes:" in message
    assert "sync.schedule.set" in message
    unshadowed = _config(tmp_path, "pbx: {type: ldap, host: 192.0.2.7, password: file-pass,"
                                   " read_timeout: 40, ldap: {base_dn: 'dc=file',"
                                   " page_size: 77}}\nsync: {interval_minutes: 45}\n")
    assert check_file_change(effective, unshadowed) == {"pbx.read_timeout": 40.0}


def test_a_file_value_a_saved_value_overrides_is_noted_not_silent(tmp_path: Path) -> None:
    """A key the file sets to another value than the saved one gets a note naming it
    (a hand edit that cannot apply is visible); equal values and unset keys do not."""
    mark = Mark(Source.CLOUD, "cloud", 1.0)
    effective = resolve(_file(tmp_path), overlay={"host": "192.0.2.7", "name": "HQ"},
                        password=None, interval=30,
                        marks={"sync.interval_minutes": mark}, file_marks={})
    assert effective.notes == (
        "sync.interval_minutes: the config file's value does not apply: the value saved "
        "from the cloud by cloud wins; change it with sync.schedule.set, from the "
        "onboarding page's Sync step, the CLI or the cloud",)


def test_a_proxy_saved_on_the_page_that_no_longer_validates_is_noted(tmp_path: Path) -> None:
    """A stored page proxy the config model refuses: the file's proxy applies and a
    note says why, instead of failing every report."""
    effective = resolve(_config(tmp_path), overlay=None, password=None, interval=None,
                        marks={}, file_marks={}, proxy={"mode": "manual", "host": "a b"})
    assert effective.config.cloud.proxy is None
    assert effective.source("cloud.proxy") == Source.DEFAULT
    assert any("proxy saved on the page" in note for note in effective.notes)
