"""Sections saved whole from the Advanced page (monitor.snmp, monitor.mqtt, inventory):
the rule over the file, the keep/remove rule for secrets, and the encrypted storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import ClgwdConfig, parse_config
from clgwd.config.secret import Secret
from clgwd.settings import (
    InvalidSavedSettings,
    SavedSettings,
    SettingOverridden,
    check_file_change,
    prepare,
    save_section,
)
from clgwd.settings.rule import Mark, SavedSection, Source, resolve
from clgwd.settings.saved import _fill_secrets, _take_secrets
from clgwd.store import Store

FILE = ("monitor:\n  snmp:\n    listen: ['127.0.0.1:1161']\n    community: file-ro\n"
        "    users: [{name: ops, auth_key: file-auth-1, priv_key: file-priv-1}]\n"
        "inventory: {interval: 900}\n")


def _file(tmp_path: Path, extra: str = FILE) -> ClgwdConfig:
    return parse_config(f"state: {{dir: {tmp_path}}}\n{extra}")


def _resolve(file: ClgwdConfig, sections: dict[str, SavedSection]):  # type: ignore[no-untyped-def]
    return resolve(file, overlay=None, password=None, interval=None, marks={},
                   file_marks={}, sections=sections)


def test_a_saved_section_key_wins_and_the_shadowed_file_value_is_noted(
        tmp_path: Path) -> None:
    """A saved community is in force with source page; the file's other keys keep the
    file as source; the file's community, which no longer applies, is named in notes."""
    mark = Mark(Source.PAGE, "local:web:admin", 1.0)
    effective = _resolve(_file(tmp_path), {
        "monitor.snmp": SavedSection({"community": Secret("page-ro-1")}, mark)})
    assert effective.config.monitor.snmp.community == Secret("page-ro-1")
    assert effective.entry("monitor.snmp.community") == {
        "key": "monitor.snmp.community", "value": "set", "source": "page",
        "set_by": "local:web:admin", "set_at": 1.0}
    assert effective.source("monitor.snmp.users") == Source.FILE
    assert effective.source("monitor.snmp.max_repetitions") == Source.DEFAULT
    [note] = effective.notes
    assert note.startswith("monitor.snmp.community: the config file's value does not apply")
    assert "monitor.set" in note


def test_a_file_write_of_a_saved_key_is_refused(tmp_path: Path) -> None:
    """config.set of a key the page saved would change nothing: setting_overridden."""
    effective = _resolve(_file(tmp_path), {
        "inventory": SavedSection({"interval": 600.0}, Mark(Source.CLOUD, "cloud", 1.0))})
    assert effective.config.inventory.interval == 600.0
    with pytest.raises(SettingOverridden, match="inventory.interval: saved from the cloud"):
        check_file_change(effective, _file(tmp_path, FILE.replace("900", "1200")))


def test_a_saved_section_that_no_longer_fits_the_file_is_noted_not_applied(
        tmp_path: Path) -> None:
    """Saved traps naming a v3 user the file no longer has: the file's section applies
    and a note says why."""
    saved = SavedSection({"traps": [{"address": "127.0.0.1:162", "user": "ops"}]},
                         Mark(Source.PAGE))
    effective = _resolve(_file(tmp_path, ""),
                         {"monitor.snmp": saved})
    assert effective.config.monitor.snmp.traps == []
    [note] = effective.notes
    assert "monitor.snmp settings saved on the page do not fit" in note


def test_null_keeps_secrets_by_name_and_empty_removes_the_community(tmp_path: Path) -> None:
    """A user sent with null keys keeps the keys of the user in force with that name; a
    new user must give them; "" removes the community."""
    file = _file(tmp_path)
    current = file.monitor.snmp
    done = prepare(file, "monitor.snmp", {"community": "", "users": [
        {"name": "ops", "auth_key": None, "priv_key": None, "auth_protocol": "sha512"}]},
        current, None)
    assert done.section.community is None  # type: ignore[attr-defined]
    [ops] = done.section.users  # type: ignore[attr-defined]
    assert (ops.auth_key, ops.auth_protocol) == (Secret("file-auth-1"), "sha512")
    assert done.changed == ["community", "users"]
    with pytest.raises(InvalidSavedSettings, match=r"monitor.snmp.users\[0\].auth_key: is "
                                                   "required"):
        prepare(file, "monitor.snmp", {"users": [{"name": "new", "priv_key": "12345678"}]},
                current, None)
    with pytest.raises(InvalidSavedSettings, match="monitor.snmp.port: not a setting"):
        prepare(file, "monitor.snmp", {"port": 1}, current, None)


async def test_secrets_are_stored_encrypted_and_read_back(tmp_path: Path) -> None:
    """save_section keeps the secrets out of the settings row (a slot number instead) and
    in the secret box; load gives them back as Secret values."""
    config = _file(tmp_path)
    async with Store(config) as store:
        async with store.db.transaction() as tx:
            await save_section(tx, store, "monitor.mqtt", {
                "url": "mqtt://127.0.0.1:1883", "password": Secret("broker-secret-9")},
                "local:cli")
        row = await store.settings.get("saved.monitor.mqtt")
        assert row["values"]["password"] == {"$secret": 0}
        sealed = await store.db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?",
                                         ("saved.monitor.mqtt",))
        assert sealed is not None and "broker-secret-9" not in sealed[0]
        saved = await SavedSettings.load(store)
    section = saved.sections["monitor.mqtt"]
    assert section.values["password"] == Secret("broker-secret-9")
    assert section.mark.source == Source.PAGE and section.mark.actor == "local:cli"
    assert saved.resolve(config).config.monitor.mqtt.url == "mqtt://127.0.0.1:1883"


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                  st.builds(Secret, st.text(min_size=4, max_size=12)))
_data = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


@given(_data)
def test_secrets_taken_out_come_back_in_place(data: object) -> None:
    """Any nesting of lists, mappings and Secret leaves: what is stored in clear holds a
    numbered slot where each secret was (no Secret), and filling the slots gives the
    same data back."""
    slots: list[str] = []
    public = json.loads(json.dumps(_take_secrets(data, slots)))
    assert _slots(public) == list(range(len(slots)))
    assert _fill_secrets(public, slots) == data


def _slots(value: object) -> list[int]:
    if isinstance(value, dict):
        if set(value) == {"$secret"}:
            return [value["$secret"]]
        return [n for v in value.values() for n in _slots(v)]
    if isinstance(value, list):
        return [n for v in value for n in _slots(v)]
    return []
