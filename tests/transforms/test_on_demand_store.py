"""On-demand views through the FeatureStore: one function, the same values offline and
online, selected by name or feature service, with their inputs fetched and dropped."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headwater as hw
from headwater.cli.main import cli
from headwater.definitions import FeatureViewProjection, OnDemandFeatureView
from headwater.errors import DataError, DefinitionError, NotFoundError, RegistryError
from headwater.repo.loader import load_definitions
from tests.transforms.conftest import CARD_ROWS, FEATURES_PY, MERCHANT_ROWS, T0, T, make_repo

STAMP = pa.timestamp("us", "UTC")
ALL = ["amount_ratio:amount_vs_mean", "amount_ratio:is_large", "risk:risk_score",
       "risk:count_plus_one"]


def entity_frame(cards: list[int], merchants: list[int], amounts: list[float | None],
                 at: Any = T) -> pa.Table:
    return pa.table({"card_id": pa.array(cards, pa.int64()),
                     "merchant_id": pa.array(merchants, pa.int64()),
                     "event_timestamp": pa.array([at] * len(cards), STAMP),
                     "amount": pa.array(amounts, pa.float64())})


def entity_rows(cards: list[int], merchants: list[int],
                amounts: list[float | None]) -> list[dict[str, Any]]:
    return [{"card_id": c, "merchant_id": m, "amount": a}
            for c, m, a in zip(cards, merchants, amounts, strict=True)]


def latest(rows: list[tuple[Any, ...]], key: int) -> tuple[Any, ...] | None:
    """Brute force: the row of ``key`` with the greatest time at or before T."""
    seen = [r for r in rows if r[0] == key and T0 + timedelta(hours=r[1]) <= T]
    return max(seen, key=lambda r: r[1]) if seen else None


def reference(card: int, merchant: int, amount: float | None) -> dict[str, Any]:
    """The features computed by hand from the rows, as the repo's functions define them."""
    c, m = latest(CARD_ROWS, card), latest(MERCHANT_ROWS, merchant)
    mean = None if c is None else c[2]
    if amount is None or mean is None:
        ratio = None
    else:
        ratio = (amount / mean if mean != 0 else None if amount == 0  # 0/0 is NaN: null
                 else math.copysign(math.inf, amount))
    large = amount is not None and mean is not None and amount > 2 * mean
    risk = None if m is None or amount is None else m[2] * amount
    return {"amount_vs_mean": ratio, "is_large": large, "risk_score": risk,
            "count_plus_one": None if c is None else c[3] + 1}


def same(a: list[Any], b: list[Any]) -> bool:
    def norm(v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v
    return [norm(v) for v in a] == [norm(v) for v in b]


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hw.FeatureStore]:
    folder = make_repo(tmp_path_factory.mktemp("odfv") / "repo", "odfv_shared")
    with hw.FeatureStore(folder) as store:
        store.apply(load_definitions(folder), prune=True)
        store.materialize(T0 - timedelta(days=1), T)
        yield store


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([10, 11, 12]),
                          st.one_of(st.none(), st.floats(-1e6, 1e6))),
                min_size=1, max_size=12))
def test_offline_and_online_give_the_same_values_as_the_reference(
        shared_store: hw.FeatureStore, rows: list[tuple[int, int, float | None]]) -> None:
    cards, merchants, amounts = (list(c) for c in zip(*rows, strict=True))
    offline = shared_store.get_historical_features(
        entity_frame(cards, merchants, amounts), ALL).to_arrow()
    online = shared_store.get_online_features(
        ALL, entity_rows(cards, merchants, amounts), now=T).to_arrow()
    expected = [reference(*row) for row in rows]
    for feature in ("amount_vs_mean", "is_large", "risk_score", "count_plus_one"):
        assert offline.column(feature).type == online.column(feature).type
        assert same(offline.column(feature).to_pylist(), online.column(feature).to_pylist())
        assert same(online.column(feature).to_pylist(), [e[feature] for e in expected])


def test_inputs_are_fetched_and_dropped_unless_asked_for_in_request_order(
        shared_store: hw.FeatureStore) -> None:
    features = ["risk:risk_score", "card_stats:amount_mean", "amount_ratio:amount_vs_mean"]
    frame = shared_store.get_historical_features(
        entity_frame([1, 2], [10, 11], [30.0, 1.0]), features).to_arrow()
    assert frame.column_names == ["card_id", "merchant_id", "event_timestamp", "amount",
                                  "risk_score", "amount_mean", "amount_vs_mean"]
    online = shared_store.get_online_features(
        features, entity_rows([1, 2], [10, 11], [30.0, 1.0]), now=T)
    assert online.feature_names == ["risk_score", "amount_mean", "amount_vs_mean"]
    assert online.to_dict()["amount_vs_mean"] == [1.5, 0.25]
    assert frame.column("amount_vs_mean").to_pylist() == [1.5, 0.25]
    # the views read for the function report their status, hidden columns never show
    assert set(online.metadata) == {"card_stats", "merchant_stats"}


def test_full_feature_names_name_on_demand_columns_by_their_view(
        shared_store: hw.FeatureStore) -> None:
    features = ["amount_ratio:amount_vs_mean", "card_stats:amount_mean"]
    frame = shared_store.get_historical_features(
        entity_frame([1], [10], [30.0]), features, full_feature_names=True).to_arrow()
    assert frame.column_names[-2:] == ["amount_ratio__amount_vs_mean", "card_stats__amount_mean"]
    online = shared_store.get_online_features(features, entity_rows([1], [10], [30.0]),
                                              full_feature_names=True, now=T)
    assert online.to_dict()["amount_ratio__amount_vs_mean"] == [1.5]


def test_a_feature_service_with_on_demand_features(shared_store: hw.FeatureStore) -> None:
    service = shared_store.get_feature_service("fraud_model")
    frame = shared_store.get_historical_features(
        entity_frame([1, 3], [10, 12], [30.0, 1.0]), service).to_pandas()
    assert list(frame.columns[4:]) == ["amount_vs_mean", "is_large", "risk_score", "txn_count"]
    online = shared_store.get_online_features(
        service, entity_rows([1, 3], [10, 12], [30.0, 1.0]), now=T).to_dict()
    assert online["amount_vs_mean"] == [1.5, math.inf]
    assert online["risk_score"] == [7.5, None]
    assert same(list(frame["amount_vs_mean"]), online["amount_vs_mean"])
    assert same(list(frame["risk_score"]), online["risk_score"])


def test_a_missing_request_field_is_a_data_error_naming_it(
        shared_store: hw.FeatureStore) -> None:
    no_amount = entity_frame([1], [10], [1.0]).drop_columns(["amount"])
    with pytest.raises(DataError, match=r"no column 'amount', a request field of on-demand "
                                        r"view 'amount_ratio'\. Fix: add"):
        shared_store.get_historical_features(no_amount, ["amount_ratio:amount_vs_mean"])
    with pytest.raises(DataError, match="no column 'amount'"):
        shared_store.get_historical_features(no_amount.to_pandas(),
                                             ["amount_ratio:amount_vs_mean"])
    query = ("SELECT card_id, ts AS event_timestamp FROM card_stats")
    job = shared_store.get_historical_features(query, ["amount_ratio:amount_vs_mean"])
    with pytest.raises(DataError, match="no column 'amount'"):
        job.to_arrow()
    rows = [{"card_id": 1, "amount": 2.0}, {"card_id": 2}]
    with pytest.raises(DataError, match="entity row 1 has no 'amount', a request field of "
                                        "on-demand view 'amount_ratio'"):
        shared_store.get_online_features(["amount_ratio:amount_vs_mean"], rows, now=T)


def test_request_fields_are_checked_against_their_dtype(
        shared_store: hw.FeatureStore) -> None:
    frame = entity_frame([1], [10], [1.0]).set_column(
        3, "amount", pa.array(["lots"]))
    with pytest.raises(DataError, match=r"request field 'amount' of on-demand view "
                                        r"'amount_ratio'.*holds string"):
        shared_store.get_historical_features(frame, ["amount_ratio:amount_vs_mean"]).to_arrow()
    with pytest.raises(DataError, match=r"request field 'amount'.*holds string"):
        shared_store.get_online_features(["amount_ratio:amount_vs_mean"],
                                         [{"card_id": 1, "amount": "lots"}], now=T)
    integral = shared_store.get_online_features(  # an int for a Float64 field is fine
        ["amount_ratio:amount_vs_mean"], [{"card_id": 1, "amount": 30}], now=T)
    assert integral.to_dict()["amount_vs_mean"] == [1.5]


def test_an_on_demand_column_never_overwrites_an_entity_column(
        shared_store: hw.FeatureStore) -> None:
    frame = entity_frame([1], [10], [1.0]).append_column("risk_score", pa.array([0.0]))
    with pytest.raises(DataError, match="column 'risk_score' would be overwritten"):
        shared_store.get_historical_features(frame, ["risk:risk_score"])


def test_registry_round_trip_versions_and_prune(repo: Path, store: hw.FeatureStore) -> None:
    applied = {d.name: d for d in load_definitions(repo) if isinstance(d, OnDemandFeatureView)}
    registered = store.get_on_demand_feature_view("amount_ratio")
    assert registered.spec() == applied["amount_ratio"].spec()  # sources by reference
    assert registered.sources[0] == store.get_feature_view("card_stats")
    assert registered.function is None  # only the source text is stored
    assert [v.name for v in store.list_on_demand_feature_views()] == ["amount_ratio", "risk"]
    assert store.registry.record("on_demand_feature_view", "risk").version == 1

    changed = FEATURES_PY.replace('pc.add(batch["txn_count"], 1)', 'pc.add(batch["txn_count"], 2)')
    (repo / "features.py").write_text(changed)
    plan = store.plan(load_definitions(repo), prune=True)
    assert [str(c) for c in plan.changes] == [
        "~ on_demand_feature_view risk v1 -> v2 (changed: function_source)"]
    store.apply(load_definitions(repo), prune=True)
    assert store.registry.record("on_demand_feature_view", "risk").version == 2
    online = store.get_online_features(["risk:count_plus_one"], [{"card_id": 1, "merchant_id": 10,
                                                                  "amount": 1.0}], now=T)
    assert online.to_dict()["count_plus_one"] == [4]  # txn_count 2, plus the new 2

    kept = [d for d in load_definitions(repo) if d.name not in ("risk", "fraud_model")]
    plan = store.apply(kept, prune=True)
    assert {(c.action, c.kind, c.name) for c in plan.changes} == {
        ("delete", "on_demand_feature_view", "risk"), ("delete", "feature_service", "fraud_model")}
    with pytest.raises(NotFoundError, match="no feature_view named 'risk'.*on-demand: "
                                            r"\['amount_ratio'\]"):
        store.get_online_features(["risk:risk_score"], [{"card_id": 1}], now=T)


def test_references_are_checked_at_apply(repo: Path, store: hw.FeatureStore) -> None:
    defs = {d.name: d for d in load_definitions(repo)}
    ratio = defs["amount_ratio"]
    assert isinstance(ratio, OnDemandFeatureView)
    request = hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])
    unregistered = hw.FeatureView(name="elsewhere", entities=[defs["card"]],
                                  source=defs["card_stats"].source,  # type: ignore[attr-defined]
                                  schema=[hw.Field("txn_count", hw.Int64)])

    def odfv(**changes: Any) -> OnDemandFeatureView:
        return dataclasses.replace(ratio, name="checked", **changes)

    with pytest.raises(RegistryError, match="'checked' refers to feature_view 'elsewhere', "
                                            "which is not registered"):
        store.apply([odfv(sources=(unregistered, request))])
    with pytest.raises(RegistryError, match="'checked' reads feature view 'elsewhere', which "
                                            "is not registered"):
        store.apply([odfv(sources=(unregistered[["txn_count"]], request))])
    with pytest.raises(DefinitionError, match=r"feature view 'card_stats' has no feature\(s\) "
                                              r"\['nope'\]"):
        store.apply([odfv(sources=(FeatureViewProjection("card_stats", ("nope",)),))])
    twice = hw.RequestSource("more", schema=[hw.Field("txn_count", hw.Int64)])
    with pytest.raises(DefinitionError, match=r"column 'txn_count' is given by both feature "
                                              r"view 'card_stats' and request source 'more'.*"
                                              r"Fix: select distinct features"):
        store.apply([odfv(sources=(defs["card_stats"], twice))])
    with pytest.raises(DefinitionError, match="feature view 'card_stats' has the same name"):
        store.apply([dataclasses.replace(ratio, name="card_stats")])
    with pytest.raises(RegistryError, match=r"selects \['nope'\] from feature view "
                                            "'amount_ratio'"):
        store.apply([hw.FeatureService("s", features=["amount_ratio:nope"])])
    # the feature view cannot drop a feature an on-demand view reads
    slim = dataclasses.replace(defs["card_stats"], schema=(hw.Field("amount_mean", hw.Float64),))
    with pytest.raises(DefinitionError, match=r"has no feature\(s\) \['txn_count'\]"):
        store.apply([slim])
    assert store.registry.record("feature_view", "card_stats").version == 1  # nothing written


def _without_functions(repo: Path) -> list[hw.FeatureView | Any]:
    """The repo's definitions as the registry holds them: on-demand views without their
    callable, so this process has no function to fall back on."""
    return [dataclasses.replace(d, function=None) if isinstance(d, OnDemandFeatureView) else d
            for d in load_definitions(repo)]


def test_a_store_that_did_not_apply_loads_functions_from_the_repo_and_refuses_changed_code(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", f"odfv_load_{tmp_path.name}")
    with hw.FeatureStore(repo) as store:
        store.apply(_without_functions(repo))
        store.materialize(T0 - timedelta(days=1), T)
    rows = entity_rows([1], [10], [30.0])
    with hw.FeatureStore(repo) as server:  # like a server process: code from the repo
        assert server.get_online_features(["risk:risk_score"], rows, now=T).to_dict()[
            "risk_score"] == [7.5]

    (repo / "features.py").write_text(FEATURES_PY.replace("pc.multiply", "pc.add"))
    with hw.FeatureStore(repo) as server:
        server.get_online_features(["amount_ratio:amount_vs_mean"], rows, now=T)  # unchanged
        with pytest.raises(DefinitionError, match=r"OnDemandFeatureView 'risk': field "
                                                  r"'function': the function in the repo "
                                                  r"differs.*Fix: run headwater apply"):
            server.get_online_features(["risk:risk_score"], rows, now=T)
        with pytest.raises(DefinitionError, match="differs"):
            server.get_historical_features(entity_frame([1], [10], [30.0]), ["risk:*"])

    cut = FEATURES_PY.index("@hw.on_demand_feature_view(\n    sources=[card_stats[")
    without_risk = FEATURES_PY[:cut]
    (repo / "features.py").write_text(without_risk)
    with hw.FeatureStore(repo) as server, pytest.raises(
            DefinitionError, match=r"'risk'.*does not define it.*run headwater apply"):
        server.get_online_features(["risk:risk_score"], rows, now=T)


def test_headwater_list_shows_on_demand_views(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["list", "--repo", str(repo)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "On-demand feature views (2)" in result.output
    assert "amount_vs_mean: float64" in result.output
    assert "card_stats[txn_count]" in result.output
    assert "request (request): amount" in result.output


def test_offline_frames_from_pandas_keep_their_rows(shared_store: hw.FeatureStore) -> None:
    frame = entity_frame([3, 1, 3], [10, 10, 10], [1.0, None, 2.0]).to_pandas()
    out = shared_store.get_historical_features(frame, ["amount_ratio:*"]).to_pandas()
    assert list(out["card_id"]) == [3, 1, 3]
    assert same(list(out["amount_vs_mean"]), [math.inf, None, math.inf])
    assert isinstance(out, pd.DataFrame)


REQUEST_ONLY_PY = FEATURES_PY + '''

@hw.on_demand_feature_view(sources=[request], schema=[hw.Field("doubled", hw.Float64)],
                           mode="arrow")
def doubled(batch):
    return pa.table({"doubled": pc.multiply(batch["amount"], 2.0)})
'''


def test_an_on_demand_view_over_request_data_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", f"odfv_request_{tmp_path.name}", REQUEST_ONLY_PY)
    with hw.FeatureStore(repo) as store:
        store.apply(load_definitions(repo))
        frame = store.get_historical_features(entity_frame([1, 2], [10, 10], [3.0, None]),
                                              ["doubled:doubled"]).to_arrow()
        online = store.get_online_features(["doubled:doubled"],
                                           [{"amount": 3.0}, {"amount": None}], now=T)
    assert frame.column("doubled").to_pylist() == [6.0, None]
    assert online.to_dict() == {"doubled": [6.0, None]}
    assert len(online) == 2
