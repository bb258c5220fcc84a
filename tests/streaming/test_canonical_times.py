"""Stream and push times in the canonical ISO-8601 form are parsed by Arrow's cast; on that
form it gives exactly what the engine's parser (``parse_strings``) gives, and leaves every
string it does not parse the same way to that parser."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.errors import DataError
from headwater.offline.timestamps import parse_strings
from headwater.streaming.push_rows import canonical_times, utc_micros


@st.composite
def times(draw: st.DrawFn) -> str:
    year = draw(st.integers(1000, 9999))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(
        st.integers(0, 60))
    digits = draw(st.integers(0, 7))
    fraction = "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits,
                                           max_size=digits))) if digits else ""
    zone = draw(st.sampled_from(["", "Z", "+00:00", "-08:00", "+05:30", "+14:00", "-12:45",
                                 "+0530", "+15:00", " UTC"]))
    sep = draw(st.sampled_from(["T", " "]))
    return (f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}"
            f"{fraction}{zone}")


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), times()), min_size=1, max_size=6))
def test_the_arrow_cast_agrees_with_the_engine_parser(values: list[str | None]) -> None:
    column = pa.chunked_array([pa.array(values, pa.string())])
    fast = canonical_times(column)
    try:
        engine = parse_strings(column, owner="push", column="ts")
    except DataError:
        assert fast is None  # refused by the engine: never accepted here
        return
    if fast is not None:
        assert fast.type == engine.type
        assert fast.to_pylist() == engine.to_pylist()


def test_canonical_times_cover_stream_payloads_and_leave_the_rest() -> None:
    stream = pa.chunked_array([["2024-05-01T10:00:00.123456+00:00", "2024-05-01T10:00:01Z"]])
    assert canonical_times(stream) is not None
    assert canonical_times(pa.chunked_array([["2024-05-01"]])) is None  # a date: the engine's
    mixed = pa.chunked_array([["2024-05-01T10:00:00Z", "2024-05-01T10:00:00"]])
    assert canonical_times(mixed) is None
    with pytest.raises(DataError, match="mixes values with a time zone"):
        utc_micros(mixed, "ts", "push")
