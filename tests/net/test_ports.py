"""Static ports reconciled in a namespace; commit-confirm rollback; validation first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from clgwd.config import ClgwdConfig, parse_config
from clgwd.config.network import PortConfig
from clgwd.net.component import ROLLBACK_ALERT, NetworkComponent
from clgwd.net.trial import InvalidPortConfig, NothingToConfirm
from clgwd.store import EventFilter, Store
from tests.net.conftest import (
    Lan,
    Procs,
    gateway_config,
    kernel_gateways,
    kernel_v4,
    sh,
    start_gateway,
    wait_for,
)

pytestmark = [pytest.mark.netns]


@pytest.fixture(autouse=True)
def allow_netns_socket_handover(blockbuster: BlockBuster) -> None:
    """``Netlink(netns=...)`` (tests only) gets its socket from a helper process that
    pyroute2 forks into the namespace; waiting for that fd blocks for milliseconds."""
    for name in blockbuster.functions:
        blockbuster.functions[name].can_block_in("pyroute2/process.py",
                                                 {"communicate", "start", "stop"})


def config_for(tmp: Path, ports: str, extra: str = "") -> ClgwdConfig:
    (tmp / "state").mkdir(exist_ok=True)
    return parse_config(
        f"state: {{dir: {tmp / 'state'}}}\n"
        f"control: {{socket: {tmp / 'control.sock'}}}\n"
        f"network:\n  resolv_conf: {tmp / 'resolv.conf'}\n  ports: {ports}\n{extra}")


STATIC_A = ("[{name: eth0, mode: static, address: 198.18.0.30/24, gateway: 198.18.0.1, "
            "dns: [198.18.0.53]}]")
PORT_B = PortConfig(name="eth0", mode="static", address="198.18.0.31", netmask="255.255.255.0",
                    gateway="198.18.0.254", dns=["198.18.0.54"])


@asynccontextmanager
async def running(config: ClgwdConfig, ns: str) -> AsyncIterator[tuple[Store, NetworkComponent]]:
    """Store + network component (managing ``ns``) with its loops running."""
    async with Store(config) as store, NetworkComponent(config, store, netns=ns) as net:
        task = asyncio.create_task(net.run())
        try:
            yield store, net
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_static_config_applied_and_read_back(lan: Lan, tmp_path: Path) -> None:
    """Address, default route and DNS of a static port reach the kernel and the status."""
    ns = lan.add_ns()
    lan.attach(ns, address="198.18.0.99/24")  # a stale address the config does not want
    async with running(config_for(tmp_path, STATIC_A), ns) as (_, net):
        assert kernel_v4(ns) == ["198.18.0.30/24"]
        assert kernel_gateways(ns) == ["198.18.0.1"]
        assert (tmp_path / "resolv.conf").read_text().endswith("nameserver 198.18.0.53\n")
        port = net.tracker.current.details["ports"][0]
        assert port["present"] and port["carrier"] and port["operstate"] == "UP"
        assert port["addresses"] == ["198.18.0.30/24"] and port["gateway"] == "198.18.0.1"


async def test_static_address_removed_by_hand_is_restored(lan: Lan, tmp_path: Path) -> None:
    """Desired state is kept: an address deleted outside clgwd comes back."""
    ns = lan.add_ns()
    lan.attach(ns)
    async with running(config_for(tmp_path, STATIC_A), ns):
        sh("ip", "-n", ns, "addr", "del", "198.18.0.30/24", "dev", "eth0")
        sh("ip", "-n", ns, "addr", "add", "198.18.0.77/24", "dev", "eth0")

        async def restored() -> bool:
            return kernel_v4(ns) == ["198.18.0.30/24"] and kernel_gateways(ns) == ["198.18.0.1"]

        await wait_for(restored, 3)


async def test_no_carrier_is_reported_not_retried(lan: Lan, tmp_path: Path) -> None:
    """Unplugging the cable shows 'no carrier' in status; the config stays applied."""
    ns = lan.add_ns()
    lan.attach(ns)
    async with running(config_for(tmp_path, STATIC_A), ns) as (_, net):
        lan.unplug(1)

        async def no_carrier() -> bool:
            return "no carrier" in net.tracker.current.message

        await wait_for(no_carrier, 3)
        assert net.tracker.current.state.value == "degraded"
        assert kernel_v4(ns) == ["198.18.0.30/24"]


async def test_unconfirmed_change_rolls_back(lan: Lan, tmp_path: Path) -> None:
    """A change not confirmed within the timeout is undone and an alert is raised."""
    ns = lan.add_ns()
    lan.attach(ns)
    async with running(config_for(tmp_path, STATIC_A), ns) as (store, net):
        trial = await net.propose([PORT_B], actor="local:test", confirm_within=1.0)
        assert kernel_v4(ns) == ["198.18.0.31/24"] and kernel_gateways(ns) == ["198.18.0.254"]

        async def rolled_back() -> bool:
            return net.trial is None and kernel_v4(ns) == ["198.18.0.30/24"] \
                and kernel_gateways(ns) == ["198.18.0.1"]

        await wait_for(rolled_back, 3)
        elapsed = time.time() - trial.started
        assert 1.0 <= elapsed <= 2.0, elapsed
        assert trial.previous[0].address == "198.18.0.30/24"
        assert [a.code for a in await store.alerts.active()] == [ROLLBACK_ALERT]
        events = await store.history.query(EventFilter(asset="Network ports"))
        assert [(e.actor, e.subject) for e in reversed(events)] == [
            ("local:test", "applied, awaiting confirmation"),
            ("local:network", "rolled back")]
        assert events[-1].properties_changed == ["eth0"]


async def test_confirmed_change_stays(lan: Lan, tmp_path: Path) -> None:
    """A confirmed change survives its deadline and a restart."""
    ns = lan.add_ns()
    lan.attach(ns)
    config = config_for(tmp_path, STATIC_A)
    async with running(config, ns) as (_, net):
        await net.propose([PORT_B], actor="local:test", confirm_within=0.5)
        assert await net.confirm("local:cli") == {"confirmed": True}
        await asyncio.sleep(1.0)
        assert kernel_v4(ns) == ["198.18.0.31/24"] and net.trial is None
        with pytest.raises(NothingToConfirm):
            await net.confirm("local:cli")
    async with running(config, ns) as (_, net):
        assert kernel_v4(ns) == ["198.18.0.31/24"]


async def test_restart_during_trial_rolls_back(lan: Lan, tmp_path: Path) -> None:
    """If the gateway stops while a change is on trial, the next start restores the old one."""
    ns = lan.add_ns()
    lan.attach(ns)
    config = config_for(tmp_path, STATIC_A)
    async with running(config, ns) as (_, net):
        await net.propose([PORT_B], actor="local:test", confirm_within=60)
        assert kernel_v4(ns) == ["198.18.0.31/24"]
    async with running(config, ns) as (store, net):
        assert kernel_v4(ns) == ["198.18.0.30/24"] and net.trial is None
        assert [a.code for a in await store.alerts.active()] == [ROLLBACK_ALERT]


async def test_invalid_proposal_never_touches_kernel(lan: Lan, tmp_path: Path) -> None:
    """Overlapping ports proposed at runtime are refused before any netlink call."""
    ns = lan.add_ns()
    lan.attach(ns)
    async with running(config_for(tmp_path, STATIC_A), ns) as (_, net):
        overlapping = [PORT_B, PortConfig(name="eth1", mode="static", address="198.18.0.40/24")]
        with pytest.raises(InvalidPortConfig, match=r"network.ports: ports\[1\].address must "
                                                     "not overlap"):
            await net.propose(overlapping, actor="local:test")
        assert kernel_v4(ns) == ["198.18.0.30/24"] and net.trial is None


async def test_cli_confirms_change_made_by_reload(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """Daemon end to end: a reloaded port change waits; `clgwd network confirm` keeps it;
    an unconfirmed one is rolled back."""
    ns = lan.add_ns()
    lan.attach(ns)
    ports = "ports: [{{name: eth0, mode: static, address: {}}}]\nconfirm: {{timeout: {}}}\n"
    gw = await start_gateway(procs, ns, tmp_path / "gw", ports.format("198.18.0.30/24", 30))
    assert kernel_v4(ns) == ["198.18.0.30/24"]
    gateway_config(gw.dir, ports.format("198.18.0.31/24", 30))
    assert (await gw.request("POST", "/v1/reload"))[0] == 200
    assert kernel_v4(ns) == ["198.18.0.31/24"]
    assert (await gw.status())["network"]["details"]["trial"]["actor"] == "local:config-file"
    code, out = await gw.cli("network", "confirm", "--socket", str(gw.socket))
    assert code == 0, out
    assert (await gw.status())["network"]["details"]["trial"] is None
    code, out = await gw.cli("network", "confirm", "--socket", str(gw.socket))
    assert code == 1 and "no network change is waiting" in out

    gateway_config(gw.dir, ports.format("198.18.0.32/24", 1))
    assert (await gw.request("POST", "/v1/reload"))[0] == 200
    assert kernel_v4(ns) == ["198.18.0.32/24"]

    async def rolled_back() -> bool:
        return kernel_v4(ns) == ["198.18.0.31/24"]

    await wait_for(rolled_back, 3)
