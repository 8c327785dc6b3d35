"""Peer side of the mDNS benchmarks: report when NAME resolves to EXPECTED.

Run inside the peer namespace: ``python bench/mdns_watch.py NAME BIND EXPECTED``.
Prints ``ready``, then polls: each poll is a *fresh* python-zeroconf instance (empty
cache) sending one query and waiting up to 100 ms, as a newly arriving peer would.
Prints ``resolved <unix time>`` the first time the answer is exactly EXPECTED.

Why fresh instances: the goodbye for the old address and the new A record do reach a
long-lived peer (tests/net/test_mdns.py::test_goodbyes_on_readdress_and_shutdown checks
them on the wire, and avahi switches within ~0.6 s), but python-zeroconf's
AddressResolver in a long-lived instance kept answering from its cache in our runs, which
would measure that client's cache rather than the gateway.
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
