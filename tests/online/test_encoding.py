"""The batch key encoder and the split record decoders agree with the one-at-a-time ones."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from headwater.online.encoding import (
    decode_event,
    decode_record,
    decode_values,
    encode_key,
    encode_keys,
    encode_record,
)

_VALUES = st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=40))
_NAMES = st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=9, unique=True)


@given(names=_NAMES, data=st.data())
def test_encode_keys_gives_the_bytes_of_encode_key(names: list[str], data: Any) -> None:
    rows = data.draw(st.lists(st.tuples(*[_VALUES] * len(names)), max_size=20))
    columns = [[row[i] for row in rows] for i in range(len(names))]
    assert encode_keys(names, columns) == [encode_key(names, row) for row in rows]


@given(event=st.integers(min_value=-(2**62), max_value=2**62),
       created=st.none() | st.integers(min_value=-(2**62), max_value=2**62),
       generation=st.integers(min_value=0, max_value=2**32 - 1),
       values=st.lists(st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
                       | st.floats(allow_nan=False) | st.text(max_size=20) | st.booleans(),
                       max_size=12))
def test_decode_event_and_values_split_decode_record(
        event: int, created: int | None, generation: int, values: list[Any]) -> None:
    data = encode_record(event, created, generation, values)
    record = decode_record(data)
    assert decode_event(data) == (record.event_us, record.generation) == (event, generation)
    assert decode_values(data) == record.values == values
