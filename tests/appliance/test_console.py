"""The appliance's console banner (`clgwd console-banner`, /run/issue on the image)."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import stat
from pathlib import Path

import aiohttp

from clgwd.appliance.console import OnboardingFacts, render_issue
from clgwd.cli.console import onboarding_facts, write_issue
from clgwd.config import ClgwdConfig
from tests.daemon.proc import DaemonProcess, run_cli, write_config

ADDRESSES = [ipaddress.ip_address("198.51.100.101"), ipaddress.ip_address("2001:db8::5")]


def test_first_boot_banner_shows_name_ip_code_and_fingerprint() -> None:
    """Before the password is set the screen shows everything needed to onboard."""
    facts = OnboardingFacts(setup_code="ABCDE-FGHIJ", fingerprint="AA:BB")
    text = render_issue(ClgwdConfig(), ADDRESSES, facts)
    assert "https://cloudlink.local/" in text
    assert "https://198.51.100.101/" in text
    assert "2001:db8::5" not in text  # the URL lines are IPv4, like the daemon's banner
    assert "Setup code: ABCDE-FGHIJ  (enter it on the first visit)" in text
    assert "Certificate fingerprint (SHA-256):\n    AA\n    BB\n" in text
    assert "No address yet" not in text


def test_a_real_fingerprint_fits_80_columns() -> None:
    """32 bytes in hex are 95 characters: split over two lines on the console."""
    fingerprint = ":".join(f"{i:02X}" for i in range(32))
    text = render_issue(ClgwdConfig(), ADDRESSES, OnboardingFacts(fingerprint=fingerprint))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert fingerprint[:47] in text and fingerprint[48:] in text


def test_code_is_hidden_once_the_password_is_set() -> None:
    """After onboarding the screen no longer shows a code that would be useless anyway."""
    facts = OnboardingFacts(setup_code="ABCDE-FGHIJ", password_set=True)
    text = render_issue(ClgwdConfig(), ADDRESSES, facts)
    assert "ABCDE-FGHIJ" not in text
    assert "not needed, the admin password is set" in text


def test_no_address_and_no_state_yet_say_so() -> None:
    """Before the first DHCP lease and the first start the banner says what is missing."""
    text = render_issue(ClgwdConfig(), [], OnboardingFacts())
    assert "not available yet (clgwd is starting)" in text
    assert "No address yet: connect eth0 or eth1" in text


def test_renamed_host_and_backslashes() -> None:
    """The persisted mDNS name wins; agetty escapes are neutralised."""
    text = render_issue(ClgwdConfig(), ADDRESSES,
                        OnboardingFacts(hostname="cloudlink-2", setup_code="\\l"))
    assert "https://cloudlink-2.local/" in text
    assert "Setup code: \\\\l " in text


def test_write_issue_is_atomic_and_world_readable(tmp_path: Path) -> None:
    """agetty (not root's umask) must be able to read it; no temp file is left."""
    target = tmp_path / "issue"
    write_issue(target, "one\n")
    write_issue(target, "two\n")
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["issue"]


def test_empty_state_dir_gives_no_facts(tmp_path: Path) -> None:
    """Before clgwd's first start (or mid-wipe) nothing is invented."""
    assert onboarding_facts(tmp_path / "missing") == OnboardingFacts()


async def test_banner_from_a_real_state_dir(tmp_path: Path) -> None:
    """The command shows the code the daemon logs and accepts, then hides it once used."""
    config = write_config(tmp_path, extra="network: {mdns: {hostname: boxname}}\n")
    proc = await DaemonProcess.start(config)
    try:
        line = await proc.wait_for_line("Setup code for the first visit:")
        logged = line.rsplit(" ", 1)[-1]
        url_line = await proc.wait_for_line("Onboarding page: https://127.0.0.1:")
        base = url_line.rsplit(" ", 1)[-1].rstrip("/")
        code, out, err = await run_cli("console-banner", "--config", str(config))
        assert code == 0, err
        assert f"Setup code: {logged}  (enter it on the first visit)" in out
        assert "https://boxname.local/" in out
        assert "not available yet" not in out  # the fingerprint is there too
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as s:
            async with s.post(f"{base}/api/v1/session/setup",
                              json={"setup_code": logged, "password": "0123456789ab"}) as r:
                assert r.status == 201
        code, out, err = await run_cli("console-banner", "--config", str(config),
                                       "--output", str(tmp_path / "issue"))
        assert code == 0, err
        issue = await asyncio.to_thread((tmp_path / "issue").read_text)
        assert logged not in issue
        assert "the admin password is set" in issue
    finally:
        proc.send(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
