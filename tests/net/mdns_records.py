"""Run in a peer namespace: print every mDNS A record for NAME heard on the wire.

Usage: python mdns_records.py BIND NAME. Prints ``ready``, then one JSON line per A
record received: {"address": ..., "ttl": ...} (ttl 0 = a goodbye). Runs until killed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from zeroconf import IPVersion, RecordUpdate, RecordUpdateListener, Zeroconf
from zeroconf.asyncio import AsyncZeroconf


class _Printer(RecordUpdateListener):
    def __init__(self, name: str) -> None:
        self.name = name.lower()

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        for update in records:
            record: Any = update.new
            if record.name.lower() == self.name and record.type == 1:
                print(json.dumps({"address": socket.inet_ntoa(record.address),
                                  "ttl": record.ttl}), flush=True)


async def main(bind: str, name: str) -> None:
    azc = AsyncZeroconf(interfaces=[bind], ip_version=IPVersion.V4Only)
    await azc.zeroconf.async_wait_for_start()
    azc.zeroconf.async_add_listener(_Printer(name), None)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
