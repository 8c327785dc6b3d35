"""Pre-flight's targets come from the configuration; ``network.preflight`` overrides."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from clgwd.cli.demo import demo_config_text
from clgwd.commands import CommandRouter
from clgwd.config import ClgwdConfig, Secret, parse_config
from clgwd.config.proxy import ProxyTarget
from clgwd.net.preflight import (
    PreflightTargets,
    config_targets,
    local_targets,
    run_preflight,
    system_ntp_servers,
    targets_from_config,
)
from tests.link.proxy_peer import tinyproxy


def _names(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['name']} {c['target']}": c for c in report["checks"]}


def _config(tmp: Path, **sections: Any) -> ClgwdConfig:
    (tmp / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    data: dict[str, Any] = {"state": {"dir": str(tmp)}, **sections}
    network = data.setdefault("network", {})
    network.setdefault("resolv_conf", str(tmp / "resolv.conf"))
    network.setdefault("preflight", {}).setdefault("timeout", 1)
    return parse_config(json.dumps(data))


async def _listener() -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def test_cloud_and_pbx_come_from_the_config(tmp_path: Path) -> None:
    """Without any network.preflight key, the cloud host:port of cloud.url and the
    PBX's address:port are checked (the demo's case: nothing was skipped)."""
    cloud, cloud_port = await _listener()
    pbx, pbx_port = await _listener()
    async with cloud, pbx:
        config = _config(tmp_path, cloud={"url": f"https://127.0.0.1:{cloud_port}"},
                         pbx={"type": "freepbx_mysql", "host": "127.0.0.1", "port": pbx_port,
                              "username": "u"})
        report = await run_preflight(config.network, await local_targets(config, {}, root=tmp_path))
    checks = _names(report)
    assert checks[f"cloud 127.0.0.1:{cloud_port}"]["ok"]
    assert checks[f"pbx 127.0.0.1:{pbx_port}"]["ok"]
    assert "sip-tls 127.0.0.1:5061" in checks


async def test_explicit_keys_override_the_config(tmp_path: Path) -> None:
    """network.preflight.cloud_host/pbx_host replace the defaults from cloud.url/pbx."""
    config = _config(tmp_path, cloud={"url": "https://127.0.0.1:9"},
                     network={"preflight": {"cloud_host": "127.0.0.2", "pbx_host": "127.0.0.3",
                                            "pbx_port": 7, "timeout": 1}})
    targets = targets_from_config(config, {"address": "127.0.0.4", "port": 8}, None)
    report = await run_preflight(config.network, targets)
    assert {"cloud 127.0.0.2:443", "pbx 127.0.0.3:7"} <= set(_names(report))
    assert not any("127.0.0.4" in k or ":9" in k for k in _names(report))


async def test_running_daemon_asks_the_pbx_settings_and_the_link_proxy(tmp_path: Path) -> None:
    """The daemon's provider takes the PBX from pbx.get (a page setting counts) and the
    proxy from the link."""
    config = _config(tmp_path, cloud={"url": "https://cloud.example.com"})
    router = CommandRouter()

    async def pbx_get(params: Any, ctx: Any) -> dict[str, Any]:
        return {"address": "192.0.2.20", "port": 4308}

    router.register("pbx.get", pbx_get, mutating=False)
    proxy = ProxyTarget("127.0.0.1", 3128, source="page")

    async def link_proxy() -> ProxyTarget | None:
        return proxy

    targets = await config_targets(lambda: config, router, link_proxy, root=tmp_path)()
    assert (targets.cloud_host, targets.cloud_port) == ("cloud.example.com", 443)
    assert (targets.pbx_host, targets.pbx_port, targets.proxy) == ("192.0.2.20", 4308, proxy)


async def test_the_cloud_check_aims_at_the_address_typed_at_the_gateway(
        tmp_path: Path) -> None:
    """A stock appliance's file has no cloud.url; the address saved on the Cloud step
    (cloud.status's cloud_url) is the cloud check's target."""
    config = _config(tmp_path)
    router = CommandRouter()

    async def cloud_status(params: Any, ctx: Any) -> dict[str, Any]:
        return {"cloud_url": "https://cloud.example.net:8443", "cloud_url_source": "page"}

    router.register("cloud.status", cloud_status, mutating=False)

    async def no_proxy() -> ProxyTarget | None:
        return None

    targets = await config_targets(lambda: config, router, no_proxy, root=tmp_path)()
    assert (targets.cloud_host, targets.cloud_port) == ("cloud.example.net", 8443)


@pytest.mark.peers
async def test_the_link_proxy_is_checked_with_its_credentials(tmp_path: Path) -> None:
    """With the link's proxy in force the cloud is checked through it (CONNECT with the
    stored user and password), not directly; a wrong password fails with the reason."""
    cloud, cloud_port = await _listener()
    async with cloud:
        config = _config(tmp_path, cloud={"url": f"https://127.0.0.1:{cloud_port}"})
        with tinyproxy(tmp_path / "proxy", auth=("gw", "Pr0xy-pass")) as proxy:
            good = ProxyTarget("127.0.0.1", proxy.port, "gw", Secret("Pr0xy-pass"))
            report = await run_preflight(config.network, targets_from_config(config, None, good))
            checks = _names(report)
            assert checks[f"proxy 127.0.0.1:{proxy.port}"]["ok"], checks
            assert f"cloud 127.0.0.1:{cloud_port}" not in checks
            bad = ProxyTarget("127.0.0.1", proxy.port, "gw", Secret("wrong-pass"))
            report = await run_preflight(config.network, targets_from_config(config, None, bad))
            line = _names(report)[f"proxy 127.0.0.1:{proxy.port}"]
            assert not line["ok"] and "did not accept" in line["detail"]
            assert "wrong-pass" not in json.dumps(report)


async def test_unusable_environment_proxy_is_a_failed_check(tmp_path: Path) -> None:
    """A broken HTTPS_PROXY is reported as a failing proxy line, not ignored."""
    config = _config(tmp_path, cloud={"url": "https://127.0.0.1:9"})
    targets = await local_targets(config, {"HTTPS_PROXY": "socks5://127.0.0.1:1080"},
                                root=tmp_path)
    assert isinstance(targets, PreflightTargets) and targets.proxy_problem
    report = await run_preflight(config.network, targets)
    line = _names(report)["proxy cloud proxy setting"]
    assert not line["ok"] and "HTTPS_PROXY" in line["detail"]


async def test_the_demo_config_is_checked(tmp_path: Path) -> None:
    """The demo's config (a cloud URL, no network.preflight keys) runs the cloud and
    SIP-TLS checks and the system's time servers instead of skipping everything."""
    cloud, cloud_port = await _listener()
    async with cloud:
        text = await asyncio.to_thread(demo_config_text, tmp_path, 8080, 8443,
                                       f"https://127.0.0.1:{cloud_port}", tmp_path / "ca.pem")
        config = parse_config(text)
        report = await run_preflight(config.network, targets_from_config(
            config, None, None, ntp_servers=("127.0.0.1",)))
    checks = _names(report)
    assert checks[f"cloud 127.0.0.1:{cloud_port}"]["ok"]
    assert {"sip-tls 127.0.0.1:5061", "ntp 127.0.0.1:123"} <= set(checks)


async def test_a_time_server_name_is_the_dns_check(tmp_path: Path) -> None:
    """With the cloud addressed by IP, the name servers are asked for a time server's
    name (here 'localhost' against a name server on 127.0.0.1 that does not answer)."""
    config = _config(tmp_path, cloud={"url": "https://127.0.0.1:9"})
    report = await run_preflight(config.network, targets_from_config(
        config, None, None, ntp_servers=("127.0.0.1", "localhost")))
    assert "dns localhost" in _names(report)


def test_system_time_servers(tmp_path: Path) -> None:
    """timesyncd NTP= wins, then chrony/ntpd server and pool lines; FallbackNTP last."""
    (tmp_path / "etc/systemd").mkdir(parents=True)
    (tmp_path / "etc/chrony").mkdir(parents=True)
    (tmp_path / "etc/systemd/timesyncd.conf").write_text(
        "[Time]\n#NTP=commented.example\nFallbackNTP=fallback.example\n")
    (tmp_path / "etc/chrony/chrony.conf").write_text(
        "pool 2.debian.pool.ntp.org iburst\nserver 192.0.2.123 iburst # lab\nallow all\n")
    assert system_ntp_servers(tmp_path) == ("2.debian.pool.ntp.org", "192.0.2.123")
    (tmp_path / "etc/chrony/chrony.conf").unlink()
    assert system_ntp_servers(tmp_path) == ("fallback.example",)
    (tmp_path / "etc/systemd/timesyncd.conf").write_text("[Time]\nNTP=a.example b.example\n")
    assert system_ntp_servers(tmp_path) == ("a.example", "b.example")

