"""The files image/build copies into the appliance (image/rootfs/) say what they must."""

from __future__ import annotations

import re
from pathlib import Path

from clgwd.config import load_config

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "image" / "rootfs"


def test_clgwd_home_is_not_the_state_dir() -> None:
    """The factory reset refuses to wipe the user's home: the home must not be state.dir."""
    line = next(raw for raw in (FILES / "usr/lib/sysusers.d/clgwd.conf").read_text()
                .splitlines() if raw.startswith("u clgwd "))
    home = re.findall(r'"[^"]*"|\S+', line)[4]
    state = load_config(ROOT / "image" / "clgwd.appliance.yaml").state.dir
    assert Path(home) != state
    assert home == "/nonexistent"


def test_polkit_rule_grants_only_reboot_to_clgwd() -> None:
    """The narrow rule: user clgwd, the two logind reboot actions, nothing else."""
    rule = (FILES / "etc/polkit-1/rules.d/50-clgwd.rules").read_text()
    assert set(re.findall(r'action\.id === "([^"]+)"', rule)) == {
        "org.freedesktop.login1.reboot", "org.freedesktop.login1.reboot-multiple-sessions"}
    assert re.findall(r'subject\.user === "([^"]+)"', rule) == ["clgwd"]
    assert rule.count("polkit.Result.YES") == 1


def test_journal_is_persistent_and_capped() -> None:
    conf = (FILES / "etc/systemd/journald.conf.d/50-clgwd.conf").read_text().splitlines()
    assert "Storage=persistent" in conf
    assert any(re.fullmatch(r"SystemMaxUse=\d+M", line) for line in conf)


def test_appliance_drop_in_runs_the_current_release_with_the_lockout_check() -> None:
    """ExecStart is replaced (not added to) and keeps /opt/clgwd/current."""
    conf = (FILES / "etc/systemd/system/clgwd.service.d/50-appliance.conf").read_text()
    starts = [line for line in conf.splitlines() if line.startswith("ExecStart=")]
    assert starts == ["ExecStart=", "ExecStart=/opt/clgwd/current/bin/clgwd run --appliance "
                                    "--config /etc/clgwd/clgwd.yaml"]
