"""The consistency law for latest-value features.

Deliver every row with ``ts <= T`` (and none later) by materialization, in random pieces
and orders; then for every entity ``k``, ``get_online_features(k)`` at ``T`` equals
``get_historical_features`` for ``(k, T)``, value for value, with statuses that match
(null offline <=> MISSING or EXPIRED online).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headwater as hw

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DRIVER = hw.Entity("driver", join_keys=["driver_id"])
KEYS = st.integers(1, 4)
MINUTES = st.integers(0, 40)


def minute(m: int) -> datetime:
    return T0 + timedelta(minutes=m)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    with_created = draw(st.booleans())
    created = st.one_of(st.none(), st.integers(0, 2)) if with_created else st.none()
    rows = draw(st.lists(st.tuples(KEYS, MINUTES, created, st.floats(-1e6, 1e6),
                                   st.one_of(st.none(), st.text(max_size=3))),
                         min_size=1, max_size=40))
    at = draw(st.integers(0, 45))
    return {
        "rows": rows,
        "with_created": with_created,
        "ttl": draw(st.one_of(st.none(), st.integers(1, 30))),
        "at": at,
        "cuts": draw(st.lists(st.integers(0, max(at - 1, 0)), max_size=3)),
        "reverse": draw(st.booleans()),
        "incremental": draw(st.booleans()),
        "overshoot": draw(st.integers(0, 10)),
    }


def write_repo(folder: Path, scenario: dict[str, object]) -> hw.FeatureView:
    (folder / "headwater.yaml").write_text("project: law\n")
    rows = scenario["rows"]
    assert isinstance(rows, list)
    columns: dict[str, pa.Array] = {
        "driver_id": pa.array([r[0] for r in rows], pa.int64()),
        "ts": pa.array([minute(r[1]) for r in rows], pa.timestamp("us", "UTC")),
        "rate": pa.array([r[3] for r in rows], pa.float64()),
        "city": pa.array([r[4] for r in rows], pa.string()),
    }
    if scenario["with_created"]:
        columns["created"] = pa.array([None if r[2] is None else minute(r[2]) for r in rows],
                                      pa.timestamp("us", "UTC"))
    pq.write_table(pa.table(columns), folder / "rows.parquet")
    ttl = scenario["ttl"]
    return hw.FeatureView(
        "stats", entities=[DRIVER],
        source=hw.FileSource("rows.parquet", "ts",
                             "created" if scenario["with_created"] else None),
        schema=[hw.Field("rate", hw.Float64), hw.Field("city", hw.String)],
        ttl=None if ttl is None else timedelta(minutes=int(str(ttl))),
    )


def deliver(store: hw.FeatureStore, scenario: dict[str, object], at: datetime) -> None:
    """Every row with ts <= at, in random pieces and orders; or, when asked, the first piece
    and then ``materialize_incremental`` for the rest (it must continue from the
    watermark)."""
    cuts = sorted({minute(c) for c in scenario["cuts"] if minute(c) < at})  # type: ignore[attr-defined]
    bounds = [minute(-1), *cuts, at]
    pieces = [(bounds[i] if i == 0 else bounds[i] + timedelta(microseconds=1), bounds[i + 1])
              for i in range(len(bounds) - 1)]
    if scenario["reverse"]:
        pieces.reverse()
    if scenario["incremental"]:
        store.materialize(*pieces[0] if not scenario["reverse"] else (bounds[0], bounds[1]))
        store.materialize_incremental(at)
        return
    for start, end in pieces:
        store.materialize(start, end)


def read_both(store: hw.FeatureStore, at: datetime,
              keys: list[int]) -> tuple[dict[str, list[object]], dict[str, list[object]],
                                        list[str]]:
    online = store.get_online_features(["stats:rate", "stats:city"],
                                       [{"driver_id": k} for k in keys], now=at)
    entity_df = pa.table({"driver_id": pa.array(keys, pa.int64()),
                          "event_timestamp": pa.array([at] * len(keys),
                                                      pa.timestamp("us", "UTC"))})
    offline = store.get_historical_features(entity_df, ["stats:rate", "stats:city"])
    return (online.to_dict(), offline.to_arrow().to_pydict(),
            online.metadata["stats"].statuses)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenarios())
def test_online_at_t_equals_offline_at_t(scenario: dict[str, object]) -> None:
    at = minute(int(str(scenario["at"])))
    rows = scenario["rows"]
    assert isinstance(rows, list)
    ttl = scenario["ttl"]
    keys = list(range(1, 6))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        view = write_repo(folder, scenario)
        with hw.FeatureStore(folder) as store:
            store.apply([DRIVER, view])
            deliver(store, scenario, at)
            got, expected, statuses = read_both(store, at, keys)
            assert got["rate"] == expected["rate"]
            assert got["city"] == expected["city"]
            for i, key in enumerate(keys):
                times = [minute(r[1]) for r in rows if r[0] == key and minute(r[1]) <= at]
                fresh = [t for t in times
                         if ttl is None or t >= at - timedelta(minutes=int(str(ttl)))]
                assert statuses[i] == ("PRESENT" if fresh else "EXPIRED" if times
                                       else "MISSING")

            # rows after T delivered as well: the law no longer promises equality, but a
            # value from after T is never served at T
            overshoot = int(str(scenario["overshoot"]))
            if overshoot:
                store.materialize(at + timedelta(microseconds=1),
                                  at + timedelta(minutes=overshoot))
                got, expected, statuses = read_both(store, at, keys)
                for i in range(len(keys)):
                    if statuses[i] == "PRESENT":
                        assert got["rate"][i] == expected["rate"][i]
                        assert got["city"][i] == expected["city"][i]
                    else:
                        assert got["rate"][i] is None and got["city"][i] is None
