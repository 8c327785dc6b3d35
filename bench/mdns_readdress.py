"""Figure: the port's address changes -> peers resolve the new address.

Needs root. The gateway runs with a static port (198.18.0.10); the benchmark rewrites
the config to 198.18.0.20 and asks the daemon to reload (the same path as an operator's
change), then measures until a python-zeroconf peer resolves ``cloudlink.local`` to the
new address. Target: <= 2 s.

    sudo .venv/bin/python -m bench.mdns_readdress [RUNS]
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.mdns_common import GW_NETWORK, gateway_and_peer, main, watch_until_resolved
from tests.net.conftest import Lan, Procs, gateway_config, start_gateway, wait_for

TARGET_S = 2.0


async def one_run(lan: Lan, procs: Procs, tmp: Path) -> float:
    gw_ns, peer_ns = gateway_and_peer(lan)
    gw = await start_gateway(procs, gw_ns, tmp, GW_NETWORK.format(address="198.18.0.10/24"))

    async def published() -> bool:
        return (await gw.status())["mdns"]["details"].get("mdns_state") == "published"

    await wait_for(published, 10)
    watcher = await watch_until_resolved(procs, peer_ns, "cloudlink.local.", "198.18.0.20")
    gateway_config(tmp, GW_NETWORK.format(address="198.18.0.20/24"))
    changed = time.time()
    status, body = await gw.request("POST", "/v1/reload")
    if status != 200:
        raise RuntimeError(f"reload failed: {body}")
    return await watcher - changed


if __name__ == "__main__":
    main("address change -> peers resolve the new address", one_run, TARGET_S)
