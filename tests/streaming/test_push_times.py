"""One ISO-8601 parser: a time string means the same instant, or is refused with the same
DataError, whether the offline engine reads it from a source or a push receives it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from tests.streaming.conftest import DRIVER, T0

FAR = T0 + timedelta(days=365)
ACCEPTED = {
    "2024-01-01T10:00:00Z": T0 + timedelta(hours=10),
    "2024-01-01 10:00:00+02:00": T0 + timedelta(hours=8),
    "2024-01-01T10:00:00+0530": T0 + timedelta(hours=4, minutes=30),
    "2024-01-01 10:00:00 Europe/Paris": T0 + timedelta(hours=9),
    "2024-01-01 10:00:00 UTC": T0 + timedelta(hours=10),
    "2024-01-01 10:00:00": T0 + timedelta(hours=10),  # naive: UTC
    "2024-01-01": T0,
    "2024-1-1": T0,
    "2024-01-01T10:00:00.1234567Z": T0 + timedelta(hours=10, microseconds=123456),
}
REFUSED = {
    "unparseable": (["2024-01-01", "yesterday"], "not an ISO-8601 timestamp: 'yesterday'"),
    "zoned and naive": (["2024-01-01T00:00:00Z", "2024-01-01 00:00:00"],
                        "mixes values with a time zone"),
    "zone name and date": (["2024-01-01 10:00:00 Europe/Paris", "2024-1-2"],
                           "mixes values with a time zone"),
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "headwater.yaml").write_text("project: push_times\n")
    (tmp_path / "data" / "times").mkdir(parents=True)
    return tmp_path


def view() -> hw.FeatureView:
    return hw.FeatureView("times", entities=[DRIVER], schema=[hw.Field("value", hw.Int64)],
                          source=hw.FileSource("data/times/", "event_timestamp"))


def store_with_times(repo: Path, times: list[str]) -> Iterator[hw.FeatureStore]:
    """A store whose one source file holds ``times`` as strings, driver i at times[i]."""
    pq.write_table(pa.table({
        "driver_id": pa.array(range(len(times)), pa.int64()),
        "event_timestamp": pa.array(times, pa.string()),
        "value": pa.array(range(len(times)), pa.int64()),
    }), repo / "data" / "times" / "part-0.parquet")
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, view()])
        yield store


@pytest.mark.parametrize("text", list(ACCEPTED))
def test_an_accepted_time_string_is_the_same_instant_offline_and_pushed(
        repo: Path, text: str) -> None:
    for store in store_with_times(repo, [text]):
        latest = store.offline.latest_rows(view(), T0 - timedelta(days=1), FAR).read_all()
        assert latest.column("__hw_ts").to_pylist() == [ACCEPTED[text]]
        store.push("times", [{"driver_id": 7, "event_timestamp": text, "value": 1}])
        response = store.get_online_features(["times:value"], [{"driver_id": 7}], now=FAR)
        assert response.metadata["times"].event_timestamps == [ACCEPTED[text]]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_time_column_is_the_same_data_error_offline_and_pushed(
        repo: Path, case: str) -> None:
    times, words = REFUSED[case]
    for store in store_with_times(repo, times):
        entity_df = pa.table({"driver_id": pa.array([0], pa.int64()),
                              "event_timestamp": pa.array([FAR], pa.timestamp("us", UTC))})
        with pytest.raises(hw.DataError, match="Fix:") as offline:
            store.get_historical_features(entity_df, ["times:value"]).to_arrow()
        rows = [{"driver_id": i, "event_timestamp": t, "value": i} for i, t in enumerate(times)]
        with pytest.raises(hw.DataError, match="Fix:") as pushed:
            store.push("times", rows)
        for err in (offline, pushed):
            assert words in str(err.value)
            assert "time column 'event_timestamp'" in str(err.value)



def test_a_time_column_of_another_view_is_parsed_by_the_same_rules(repo: Path) -> None:
    """An offline push carries the source's other columns; one that is a timestamp in the
    files (another view's time) takes the same strings, and converts them the same way."""
    stamp = pa.timestamp("us", UTC)
    pq.write_table(pa.table({
        "driver_id": pa.array([0], pa.int64()), "event_timestamp": pa.array([T0], stamp),
        "value": pa.array([0], pa.int64()), "seen_at": pa.array([T0], stamp),
    }), repo / "data" / "times" / "part-0.parquet")
    with hw.FeatureStore(repo) as store:
        store.apply([DRIVER, view()])
        for text, instant in ACCEPTED.items():
            result = store.push("times", [{"driver_id": 7, "event_timestamp": T0, "value": 1,
                                           "seen_at": text}], to="offline")
            assert result.offline_file is not None
            written = pq.read_table(result.offline_file).column("seen_at").to_pylist()
            assert written == [instant]
        for times, words in REFUSED.values():
            rows = [{"driver_id": 7, "event_timestamp": T0, "value": 1, "seen_at": t}
                    for t in times]
            with pytest.raises(hw.DataError, match=words.replace("(", r"\(")):
                store.push("times", rows, to="offline")
