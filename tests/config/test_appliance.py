"""`clgwd check-config --appliance` refuses configs that lock the technician out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clgwd.config import load_config
from clgwd.config.appliance import lockout_problems

ROOT = Path(__file__).resolve().parents[2]
APPLIANCE = ROOT / "image" / "clgwd.appliance.yaml"


def _check(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clgwd", "check-config", *flags, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clgwd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_image_config_passes_and_manages_two_ports_with_mdns() -> None:
    """The shipped appliance profile: eth0 and eth1 by DHCP, mDNS on, nothing refused."""
    config = load_config(APPLIANCE)
    assert [(p.name, p.mode) for p in config.network.ports] == [("eth0", "dhcp"),
                                                                ("eth1", "dhcp")]
    assert config.network.mdns.enabled
    assert lockout_problems(config) == []
    result = _check(APPLIANCE, "--appliance")
    assert result.returncode == 0, result.stderr


def test_no_managed_port_is_refused_with_the_key_path(tmp_path: Path) -> None:
    """No port: nothing gives the appliance an address; exit 78 naming network.ports."""
    path = _config(tmp_path, "network: {ports: [], mdns: {enabled: true}}\n")
    result = _check(path, "--appliance")
    assert result.returncode == 78
    assert "lock the technician out" in result.stderr
    assert "network.ports: no Ethernet port is managed" in result.stderr


@pytest.mark.parametrize("listen", ["[]", "[{host: 127.0.0.1}, {host: '::1'}]"])
def test_page_on_no_lan_address_is_refused(tmp_path: Path, listen: str) -> None:
    """An empty or loopback-only tls_listen hides the page from the LAN."""
    path = _config(tmp_path, "network: {ports: [{name: eth0}]}\n"
                             f"http: {{tls_listen: {listen}}}\n")
    result = _check(path, "--appliance")
    assert result.returncode == 78
    assert "http.tls_listen" in result.stderr
    assert "network.ports" not in result.stderr


def test_both_problems_are_reported_together(tmp_path: Path) -> None:
    """A technician fixing the file sees every reason at once."""
    config = load_config(_config(tmp_path, "http: {tls_listen: []}\n"))
    problems = lockout_problems(config)
    assert [p.split(" ", 1)[0].rstrip(":") for p in problems] == ["network.ports",
                                                                  "http.tls_listen"]


def test_without_the_flag_a_developer_config_stays_valid(tmp_path: Path) -> None:
    """The lock-out rule is the appliance's: the example config (no ports) still passes."""
    result = _check(ROOT / "clgwd.example.yaml")
    assert result.returncode == 0, result.stderr
    assert _check(ROOT / "clgwd.example.yaml", "--appliance").returncode == 78


def test_run_appliance_refuses_to_start(tmp_path: Path) -> None:
    """`clgwd run --appliance` (the image's ExecStart) exits 78 before starting anything."""
    path = _config(tmp_path, f"state: {{dir: {tmp_path / 'state'}}}\n")
    result = subprocess.run([sys.executable, "-m", "clgwd", "run", "--appliance",
                             "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 78
    assert "network.ports: no Ethernet port is managed" in result.stderr
    assert not (tmp_path / "state").exists()
