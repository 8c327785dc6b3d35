"""Peer side of the mDNS benchmarks: report when NAME resolves to EXPECTED.

Run inside the peer namespace: ``python bench/mdns_watch.py NAME BIND EXPECTED``.
Prints ``ready``, then polls: each poll is a *fresh* python-zeroconf instance (empty
cache) sending one query and waiting up to 100 ms, as a newly arriving peer would.
Prints ``resolved <unix time>`` the first time the answer is exactly EXPECTED.

A long-lived python-zeroconf instance that had cached the old address did not pick up
the new one in our runs (avahi did, within 0.6 s; see tests/net/test_mdns.py), so the
figure is measured with fresh queries.
"""

from __future__ import annotations

import asyncio
import sys
import time

from zeroconf import AddressResolver, IPVersion
from zeroconf.asyncio import AsyncZeroconf


async def resolve_once(name: str, bind: str) -> list[str]:
    azc = AsyncZeroconf(interfaces=[bind], ip_version=IPVersion.V4Only)
    try:
        resolver = AddressResolver(name)
        await resolver.async_request(azc.zeroconf, 100)
        return list(resolver.parsed_addresses())
    finally:
        await azc.async_close()


async def main(name: str, bind: str, expected: str) -> None:
    print("ready", flush=True)
    while await resolve_once(name, bind) != [expected]:
        pass
    print(f"resolved {time.time():.4f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
