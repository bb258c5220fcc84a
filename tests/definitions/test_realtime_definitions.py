"""Definitions of issue 4: aggregations, push/stream/request sources, on-demand views."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import headwater as hw
from headwater.aggregation import FUNCTIONS
from headwater.definitions import OnDemandFeatureView, batch_source_of, from_spec
from headwater.definitions.aggregation import FUNCTION_NAMES, resolve_granularity_us
from headwater.errors import DefinitionError

CARD = hw.Entity("card", join_keys=["card_id"])
FILES = hw.FileSource("data/txns/", timestamp_field="ts")
STREAM = hw.StreamSource(name="transactions", timestamp_field="ts", batch_source=FILES)
HOUR = timedelta(hours=1)


def card_txn(**overrides: Any) -> hw.FeatureView:
    kwargs: dict[str, Any] = {
        "name": "card_txn", "entities": [CARD], "source": STREAM,
        "schema": [hw.Field("amount", hw.Float64), hw.Field("merchant", hw.String)],
        "aggregations": [
            hw.Aggregation(column="amount", function="mean", window=HOUR,
                           name="amount_mean_1h"),
            hw.Aggregation(column="amount", function="count", window=timedelta(days=7),
                           granularity=HOUR, name="txn_count_7d"),
        ],
    }
    kwargs.update(overrides)
    return hw.FeatureView(**kwargs)


def test_the_definitions_know_every_function_of_the_algebra() -> None:
    assert set(FUNCTION_NAMES) == set(FUNCTIONS)


def test_an_aggregation_gets_a_default_name_and_granularity() -> None:
    agg = hw.Aggregation("amount", "mean", HOUR)
    assert agg.name == "amount_mean_1h"
    assert agg.granularity_us == 60_000_000  # 1 minute up to one hour
    assert hw.Aggregation("amount", "sum", timedelta(days=2)).granularity_us == 3_600_000_000
    assert hw.Aggregation("x", "max", timedelta(days=1)).granularity_us == 300_000_000
    assert hw.Aggregation("x", "max", timedelta(days=90)).granularity_us == 86_400_000_000
    ninety = hw.Aggregation("x", "count", timedelta(seconds=90))
    assert ninety.name == "x_count_90s" and ninety.granularity_us == 30_000_000


def test_an_aggregated_view_types_its_features_from_the_columns() -> None:
    view = card_txn(aggregations=[
        hw.Aggregation("amount", f, HOUR) for f in FUNCTION_NAMES if f != "count_distinct"
    ] + [hw.Aggregation("merchant", "count_distinct", HOUR),
         hw.Aggregation("merchant", "last", HOUR)])
    dtypes = {f.name: f.dtype for f in view.features}
    assert dtypes == {
        "amount_count_1h": hw.Int64, "amount_sum_1h": hw.Float64, "amount_mean_1h": hw.Float64,
        "amount_min_1h": hw.Float64, "amount_max_1h": hw.Float64,
        "amount_stddev_1h": hw.Float64, "amount_variance_1h": hw.Float64,
        "amount_last_1h": hw.Float64, "merchant_count_distinct_1h": hw.Int64,
        "merchant_last_1h": hw.String,
    }
    ints = card_txn(schema=[hw.Field("amount", hw.Int32)],
                    aggregations=[hw.Aggregation("amount", "sum", HOUR),
                                  hw.Aggregation("amount", "max", HOUR)])
    assert [f.dtype for f in ints.features] == [hw.Int64, hw.Int64]
    assert view.is_aggregated and not card_txn(aggregations=[]).is_aggregated


def test_an_aggregated_view_without_schema_has_no_features_until_apply() -> None:
    view = card_txn(schema=None)
    assert view.features == ()
    assert view.batch_source == FILES


def test_aggregated_views_and_sources_round_trip_through_their_spec() -> None:
    view = card_txn()
    back = from_spec(view.spec(), lambda kind, name: CARD)
    assert back == view and back.spec_hash() == view.spec_hash()
    push = card_txn(source=hw.PushSource("txn_push", batch_source=FILES))
    assert from_spec(push.spec(), lambda kind, name: CARD) == push
    longer = card_txn(aggregations=[hw.Aggregation("amount", "mean", 2 * HOUR)])
    assert longer.spec_hash() != view.spec_hash()


def test_push_and_stream_sources_take_time_columns_from_their_batch_source() -> None:
    dated = hw.FileSource("data/t/", timestamp_field="ts", created_timestamp_field="written")
    push = hw.PushSource("p", batch_source=dated)
    assert push.time_columns() == ("ts", "written")
    stream = hw.StreamSource("s", timestamp_field="ts", batch_source=dated)
    assert stream.time_columns() == ("ts", "written") and stream.topic == "s"
    assert hw.StreamSource("s", "ts", dated, topic="events.card").topic == "events.card"
    assert batch_source_of(stream) == dated and batch_source_of(dated) == dated


def _odfv(**overrides: Any) -> OnDemandFeatureView:
    kwargs: dict[str, Any] = {
        "name": "ratio", "sources": [card_txn(), hw.RequestSource("request", [
            hw.Field("amount", hw.Float64)])],
        "schema": [hw.Field("amount_vs_mean", hw.Float64)], "function_source": "def f(b): ...",
    }
    kwargs.update(overrides)
    return OnDemandFeatureView(**kwargs)


def amount_ratio(batch: Any) -> Any:
    return batch


def test_the_decorator_records_the_function_and_its_source() -> None:
    view = hw.on_demand_feature_view(
        sources=[card_txn(), hw.RequestSource("request", schema=[hw.Field("amount",
                                                                          hw.Float64)])],
        schema=[hw.Field("amount_vs_mean", hw.Float64)])(amount_ratio)
    assert view.name == "amount_ratio" and view.function is amount_ratio
    assert view.function_source.startswith("def amount_ratio(batch: Any) -> Any:")
    spec = view.spec()
    assert "function" not in spec and spec["sources"][0] == {"$ref": "feature_view",
                                                             "name": "card_txn"}
    back = from_spec(spec, lambda kind, name: card_txn())
    assert back == view and back.function is None


BAD: list[tuple[Callable[[], object], str, str]] = [
    (lambda: hw.Aggregation("amount", "median", HOUR), "function", "count, sum"),
    (lambda: hw.Aggregation("amount", "sum", timedelta(0)), "window", "positive"),
    (lambda: hw.Aggregation("amount", "sum", HOUR, granularity=timedelta(minutes=7)),
     "granularity", "divides"),
    (lambda: hw.Aggregation("amount", "sum", 3600), "window", "timedelta"),  # type: ignore
    (lambda: hw.Aggregation("amount", "sum", HOUR, name="bad name"), "name", "letters"),
    (lambda: card_txn(ttl=HOUR), "ttl", "window"),
    (lambda: card_txn(aggregations=[hw.Aggregation("amount", "sum", HOUR, name="x"),
                                    hw.Aggregation("amount", "max", HOUR, name="x")]),
     "aggregations", "own name"),
    (lambda: card_txn(aggregations=[hw.Aggregation("card_id", "count", HOUR)]),
     "aggregations[0]", "value column"),
    (lambda: card_txn(aggregations=[hw.Aggregation("fee", "sum", HOUR)]),
     "aggregations[0]", "hw.Field('fee'"),
    (lambda: card_txn(aggregations=[hw.Aggregation("merchant", "mean", HOUR)]),
     "column", "numeric column"),
    (lambda: hw.PushSource("p", batch_source="data/x/"), "batch_source",  # type: ignore
     "FileSource"),
    (lambda: hw.StreamSource("s", timestamp_field="event_ts", batch_source=FILES),
     "timestamp_field", "timestamp_field='ts'"),
    (lambda: hw.StreamSource("s", "ts", FILES, topic="a b"), "topic", "without spaces"),
    (lambda: hw.RequestSource("request", schema=[]), "schema", "hw.Field"),
    (lambda: _odfv(sources=[]), "sources", "RequestSource"),
    (lambda: _odfv(mode="polars"), "mode", "pandas"),
    (lambda: _odfv(function_source=""), "function", "on_demand_feature_view"),
    (lambda: _odfv(schema=[hw.Field("a", hw.Int64), hw.Field("a", hw.Int64)]), "schema",
     "once"),
]


@pytest.mark.parametrize(("build", "field", "fix"), BAD)
def test_bad_definitions_name_the_field_and_the_fix(build: Callable[[], object], field: str,
                                                    fix: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        build()
    message = str(caught.value)
    assert f"'{field}'" in message or f"field {field}" in message, message
    assert fix in message, message


def test_granularity_rules_are_the_architecture_defaults() -> None:
    minute, hour, day = 60_000_000, 3_600_000_000, 86_400_000_000
    assert resolve_granularity_us(hour, None) == minute
    assert resolve_granularity_us(2 * hour, None) == 5 * minute
    assert resolve_granularity_us(hour + minute, None) == minute  # 5 min does not divide it
    assert resolve_granularity_us(day, None) == 5 * minute
    assert resolve_granularity_us(30 * day, None) == hour
    assert resolve_granularity_us(31 * day, None) == day
