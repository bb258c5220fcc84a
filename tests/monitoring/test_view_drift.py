"""Feature view drift: a window of new data against the window before it, through the
offline engine; shifted columns flagged and only those, exact counts, empty windows named,
and a monitor's window profiles merging across its runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import headwater as hw
from headwater.monitoring.drift import detect_drift
from headwater.monitoring.view_drift import check_view_drift

START = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
PER_DAY = 4_000
SHIFT_FROM = START + 3 * DAY  # from here on, `amount` moves by half a standard deviation


def rows() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 5 * PER_DAY
    offsets = np.sort(rng.integers(0, 5 * 86_400_000_000, n))
    ts = np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    shifted = ts >= np.datetime64(SHIFT_FROM.replace(tzinfo=None), "us")
    return pa.table({
        "card_id": rng.integers(1, 500, n),
        "ts": pa.array(ts, pa.timestamp("us", "UTC")),
        "amount": rng.normal(50.0, 10.0, n) + np.where(shifted, 5.0, 0.0),
        "merchant": rng.choice(["food", "fuel", "travel", "retail"], n, p=[.4, .3, .2, .1]),
    })


@pytest.fixture
def store(tmp_path: Path) -> Iterator[hw.FeatureStore]:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "headwater.yaml").write_text("project: view_drift\n")
    pq.write_table(rows(), repo / "data" / "txns.parquet")
    card = hw.Entity("card", join_keys=["card_id"])
    txns = hw.FeatureView("txns", entities=[card],
                          source=hw.FileSource("data/txns.parquet", timestamp_field="ts"),
                          schema=[hw.Field("amount", hw.Float64),
                                  hw.Field("merchant", hw.String)], ttl=DAY)
    instance = hw.FeatureStore(repo)
    instance.apply([card, txns])
    try:
        yield instance
    finally:
        instance.close()


def window(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    ts = table.column("ts").to_numpy()
    low, high = (np.datetime64(t.replace(tzinfo=None), "us") for t in (start, end))
    return table.filter(pa.array((ts >= low) & (ts < high))).select(["amount", "merchant"])


def test_the_shifted_column_is_flagged_and_only_it(store: hw.FeatureStore) -> None:
    start, end = SHIFT_FROM, SHIFT_FROM + DAY
    result = check_view_drift(store, "txns", start=start, end=end)
    data = rows()
    before, now = window(data, start - DAY, start), window(data, start, end)
    assert (result.reference_rows, result.current_rows) == (before.num_rows, now.num_rows)
    # the same numbers as hw.detect_drift on the same rows, read here from the file
    expected = detect_drift(before, now)
    got = {f.target: (f.value, f.threshold, f.failed) for f in result.findings}
    assert got == {c.column: (c.statistic, c.threshold, c.drifted) for c in expected.columns}
    assert {name for name, (_, _, drifted) in got.items() if drifted} == {"amount"}
    assert result.profile is not None and result.profile.rows == now.num_rows


def test_no_drift_between_two_unshifted_days(store: hw.FeatureStore) -> None:
    result = check_view_drift(store, "txns", start=START + DAY, end=START + 2 * DAY)
    assert result.findings and not result.failed


def test_an_empty_window_is_named_not_compared(store: hw.FeatureStore) -> None:
    late = START + 30 * DAY
    result = check_view_drift(store, "txns", start=late, end=late + DAY)
    (finding,) = result.findings
    assert finding.failed and finding.value is None
    assert "the reference window and the current window" in finding.message


def test_a_view_monitor_runs_drift_and_its_profiles_merge(store: hw.FeatureStore) -> None:
    store.apply([hw.Monitor("txn_watch", feature_view="txns", checks=("quality", "drift"),
                            window=DAY, thresholds={"drift.amount": 0.002})])
    runs = [store.run_monitor("txn_watch", end=START + k * DAY, alerts=False)
            for k in (2, 3, 4)]
    flagged = [{f.target for f in r.findings if f.check == "drift.feature" and f.failed}
               for r in runs]
    assert flagged[-1] == {"amount"}  # the day the shift began
    assert all(f.threshold == 0.002 for r in runs for f in r.findings
               if f.check == "drift.feature" and f.target == "amount")
    merged = store.monitor_profile("txn_watch", "txns")
    data = rows()
    assert merged.rows == window(data, START + DAY, START + 4 * DAY).num_rows
    amount = window(data, START + DAY, START + 4 * DAY).column("amount").to_numpy()
    assert merged["amount"].mean == pytest.approx(amount.mean(), rel=1e-9)


def test_a_model_monitor_takes_no_reference_window() -> None:
    with pytest.raises(hw.DefinitionError, match="reference_window"):
        hw.Monitor("m", model="churn", reference_window=DAY)
