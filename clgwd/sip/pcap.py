"""Cut a pcap byte stream at packet boundaries, so a size-capped capture stays valid.

tcpdump writes the classic pcap format to our pipe: a 24-byte global header, then per
packet a 16-byte record header whose bytes 8-11 are the captured length, in the byte
order the header's magic number announces. Reads from a pipe split records anywhere;
``PcapCutter`` hands out only whole records and refuses the first one that would pass
the cap, instead of truncating the file mid-packet.
"""

from __future__ import annotations

import struct
from typing import Final

GLOBAL_HEADER: Final = 24
RECORD_HEADER: Final = 16
_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",  # microsecond timestamps
    b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">",  # nanosecond timestamps
}
MAX_RECORD: Final = 256 * 1024
"""tcpdump's largest snapshot length; a bigger record length means a corrupt stream."""


class PcapError(ValueError):
    """The stream is not a pcap file (wrong magic, impossible record length)."""


class PcapCutter:
    """Feed raw chunks, get back the bytes to write: whole records up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.written = 0
        self.packets = 0
        self.full = False
        """True once a record was refused because it would pass ``limit``."""
        self._buffer = bytearray()
        self._order: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        """The complete records (and the global header) in ``chunk`` and before it that
        still fit; after ``full`` everything is dropped."""
        if self.full:
            return b""
        self._buffer += chunk
        out = bytearray()
        if self._order is None:
            if len(self._buffer) < GLOBAL_HEADER:
                return b""
            self._order = _MAGICS.get(bytes(self._buffer[:4]))
            if self._order is None:
                raise PcapError("not a pcap stream (unknown magic number)")
            out += self._take(GLOBAL_HEADER)
        while len(self._buffer) >= RECORD_HEADER:
            (length,) = struct.unpack_from(self._order + "I", self._buffer, 8)
            if length > MAX_RECORD:
                raise PcapError(f"pcap record of {length} bytes: the stream is corrupt")
            size = RECORD_HEADER + length
            if len(self._buffer) < size:
                break
            if self.written + len(out) + size > self.limit:
                self.full = True
                self._buffer.clear()
                break
            out += self._take(size)
            self.packets += 1
        self.written += len(out)
        return bytes(out)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
