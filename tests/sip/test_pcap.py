"""PcapCutter: whole records only, the size cap, both byte orders, corrupt streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.sip.pcap import GLOBAL_HEADER, RECORD_HEADER, PcapCutter, PcapError


def _pcap(sizes: list[int], order: str = "<") -> bytes:
    magic = struct.pack(order + "I", 0xA1B2C3D4)
    out = magic + struct.pack(order + "HHiIII", 2, 4, 0, 0, 262144, 1)
    for n, size in enumerate(sizes):
        out += struct.pack(order + "IIII", n, 0, size, size) + bytes([n % 256]) * size
    return out


@given(st.lists(st.integers(0, 1600), max_size=30), st.integers(1, 200), st.sampled_from("<>"))
def test_any_split_gives_back_the_same_records(sizes: list[int], step: int, order: str) -> None:
    """However the pipe splits the stream, the output is the input, record for record."""
    data = _pcap(sizes, order)
    cutter = PcapCutter(limit=10**9)
    out = b"".join(cutter.feed(data[i:i + step]) for i in range(0, len(data), step))
    assert out == data and cutter.packets == len(sizes) and cutter.written == len(data)


def test_the_cap_refuses_the_first_record_that_would_pass_it() -> None:
    data = _pcap([100, 100, 100])
    limit = GLOBAL_HEADER + 2 * (RECORD_HEADER + 100) + 50
    cutter = PcapCutter(limit)
    out = cutter.feed(data)
    assert out == data[:GLOBAL_HEADER + 2 * (RECORD_HEADER + 100)]
    assert cutter.full and cutter.packets == 2 and cutter.written <= limit
    assert cutter.feed(_pcap([1])[GLOBAL_HEADER:]) == b""  # nothing after the cap


def test_not_a_pcap_or_an_impossible_record_is_an_error() -> None:
    with pytest.raises(PcapError, match="magic"):
        PcapCutter(1000).feed(b"GET / HTTP/1.1\r\n" * 3)
    bad = _pcap([])[:GLOBAL_HEADER] + struct.pack("<IIII", 0, 0, 10**7, 10**7)
    with pytest.raises(PcapError, match="corrupt"):
        PcapCutter(10**9).feed(bad)
