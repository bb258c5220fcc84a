"""The commit's packer gives, byte for byte, the command hiredis packs."""

from __future__ import annotations

import hiredis
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.online.redis_node import pack_bytes


@settings(max_examples=300, deadline=None)
@given(args=st.lists(st.binary(max_size=300), min_size=1, max_size=40))
def test_pack_bytes_equals_hiredis(args: list[bytes]) -> None:
    assert pack_bytes(args) == hiredis.pack_command(tuple(args))  # type: ignore[arg-type]


def test_a_large_command_round_trips_through_the_resp_parser() -> None:
    args = [b"EVAL", b"return 1", b"0", *[bytes([i % 256]) * (i % 1500) for i in range(3000)],
            b"x" * 70_000, b"x" * 70_000]  # lengths past those whose heads are kept
    reader = hiredis.Reader()
    reader.feed(pack_bytes(args))
    assert reader.gets() == args  # a command is an array of bulk strings
