"""Figure: gateway process start -> ``cloudlink.local`` resolvable from a peer namespace.

Needs root (network namespaces). Builds a throw-away LAN (bridge + veth) in namespaces
named ``clgwd-net-*``, starts a python-zeroconf watcher in the peer namespace, then
starts ``python -m clgwd run`` in the gateway namespace and measures the time from
spawning the process to the peer's first successful resolution. Target: <= 3 s.

    sudo .venv/bin/python -m bench.mdns_start [RUNS]
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.mdns_common import GW_NETWORK, gateway_and_peer, main, watch_until_resolved
from tests.net.conftest import Lan, Procs, start_gateway

TARGET_S = 3.0


async def one_run(lan: Lan, procs: Procs, tmp: Path) -> float:
    gw_ns, peer_ns = gateway_and_peer(lan)
    watcher = await watch_until_resolved(procs, peer_ns, "cloudlink.local.", "198.18.0.10")
    spawned = time.time()
    await start_gateway(procs, gw_ns, tmp, GW_NETWORK.format(address="198.18.0.10/24"))
    resolved_at = await watcher
    return resolved_at - spawned


if __name__ == "__main__":
    main("process start -> cloudlink.local resolvable from a peer namespace", one_run, TARGET_S)
