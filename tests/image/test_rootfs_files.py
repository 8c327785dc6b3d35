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


def test_drop_ins_keep_the_update_settings_and_open_the_real_release_root() -> None:
    """Signed updates (docs/updates.md): no drop-in resets OnFailure= or ReadWritePaths=,
    and every unit that writes the release root may write its real path on the image
    (/opt/clgwd is a symlink to /var/opt/clgwd)."""
    for unit in ("clgwd.service", "clgwd-rollback.service", "clgwd-update-deadline.service"):
        conf = (FILES / f"etc/systemd/system/{unit}.d/50-appliance.conf").read_text()
        lines = conf.splitlines()
        assert "OnFailure=" not in lines and "ReadWritePaths=" not in lines, unit
        assert "ReadWritePaths=/var/opt/clgwd" in lines, unit
        base = (ROOT / "systemd" / unit).read_text().splitlines()
        assert any(line.startswith("ReadWritePaths=") and line.endswith("/opt/clgwd")
                   for line in base), unit
    assert "OnFailure=clgwd-rollback.service" in (ROOT / "systemd" / "clgwd.service").read_text()


def test_console_unit_runs_the_console_banner_command() -> None:
    """The console unit starts `clgwd console-banner` of the current release."""
    unit = (FILES / "etc/systemd/system/clgwd-console.service").read_text()
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert start.startswith("ExecStart=/opt/clgwd/current/bin/clgwd console-banner ")
