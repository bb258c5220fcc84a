"""On-demand views in selections: their inputs resolve to distinct columns, and selecting
their features fetches what their functions read, under hidden names unless asked for."""

from __future__ import annotations

import pytest

import headwater as hw
from headwater.definitions import FeatureView, OnDemandFeatureView
from headwater.definitions.selection import HIDDEN_PREFIX, resolve_selection
from headwater.errors import DefinitionError, NotFoundError

CARD = hw.Entity("card", join_keys=["card_id"])
SOURCE = hw.FileSource("x.parquet", timestamp_field="ts")
STATS = hw.FeatureView(name="stats", entities=[CARD], source=SOURCE,
                       schema=[hw.Field("mean", hw.Float64), hw.Field("count", hw.Int64)])
OTHER = hw.FeatureView(name="other", entities=[CARD], source=SOURCE,
                       schema=[hw.Field("mean", hw.Float64), hw.Field("risk", hw.Float64)])
REQUEST = hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])


def odfv(*sources: object, name: str = "ratio") -> OnDemandFeatureView:
    return hw.OnDemandFeatureView(name=name, sources=sources,  # type: ignore[arg-type]
                                  schema=[hw.Field("ratio", hw.Float64)],
                                  function_source="def ratio(b): ...\n")


def lookup(*views: FeatureView | OnDemandFeatureView):  # type: ignore[no-untyped-def]
    known = {v.name: v for v in views}

    def find(name: str) -> FeatureView | OnDemandFeatureView:
        if name not in known:
            raise NotFoundError(f"no view '{name}'")
        return known[name]

    return find


def test_inputs_are_the_sources_features_then_the_request_fields() -> None:
    view = odfv(STATS, OTHER[["risk"]], REQUEST)
    inputs = view.inputs(lookup(STATS, OTHER))
    assert [(c.name, c.view, c.dtype) for c in inputs] == [
        ("mean", "stats", hw.Float64), ("count", "stats", hw.Int64),
        ("risk", "other", hw.Float64), ("amount", None, hw.Float64)]


@pytest.mark.parametrize(("sources", "message"), [
    ((STATS, OTHER), "column 'mean' is given by both feature view 'stats' and feature view "
                     "'other'"),
    ((STATS[["mean"]], hw.RequestSource("r", [hw.Field("mean", hw.Float64)])),
     "column 'mean' is given by both feature view 'stats' and request source 'r'"),
    ((REQUEST, hw.RequestSource("again", [hw.Field("amount", hw.Int64)])),
     "column 'amount' is given by both a request source and request source 'again'"),
])
def test_two_sources_giving_one_column_is_a_definition_error(sources: tuple[object, ...],
                                                             message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        odfv(*sources).inputs(lookup(STATS, OTHER))
    assert info.value.field == "sources"
    assert "select distinct features" in info.value.fix


def test_selecting_an_on_demand_feature_fetches_its_inputs_under_hidden_names() -> None:
    view = odfv(STATS, OTHER[["risk"]], REQUEST)
    selection = resolve_selection(["ratio:ratio", "stats:count"], lookup(STATS, OTHER, view))
    assert selection.order == ("ratio", "count")
    assert [(r.view.name, r.output_names) for r in selection.requests] == [
        ("stats", ("count", f"{HIDDEN_PREFIX}stats__mean")),
        ("other", (f"{HIDDEN_PREFIX}other__risk",))]
    (request,) = selection.on_demand
    assert request.inputs == (("mean", f"{HIDDEN_PREFIX}stats__mean"), ("count", "count"),
                              ("risk", f"{HIDDEN_PREFIX}other__risk"))
    assert [f.name for f in request.request_fields] == ["amount"]
    assert selection.fetched_order == ("count", f"{HIDDEN_PREFIX}stats__mean",
                                       f"{HIDDEN_PREFIX}other__risk")
    assert selection.base().on_demand == ()
    assert selection.base().order == selection.fetched_order


def test_without_on_demand_features_the_selection_is_as_before() -> None:
    selection = resolve_selection(["stats:*"], lookup(STATS, odfv(STATS)))
    assert selection.on_demand == () and selection.fetched is None
    assert selection.base() is selection
    assert selection.order == ("mean", "count")


def test_an_on_demand_output_name_clash_needs_full_feature_names() -> None:
    clash = hw.OnDemandFeatureView(name="again", sources=[STATS],
                                   schema=[hw.Field("count", hw.Int64)],
                                   function_source="def again(b): ...\n")
    views = lookup(STATS, clash)
    with pytest.raises(DefinitionError, match="'count' comes from both 'stats' and 'again'"):
        resolve_selection(["stats:count", "again:count"], views)
    selection = resolve_selection(["stats:count", "again:count"], views,
                                  full_feature_names=True)
    assert selection.order == ("stats__count", "again__count")
    # the function reads 'count' from the column the request fetches anyway
    assert selection.on_demand[0].inputs == (("mean", f"{HIDDEN_PREFIX}stats__mean"),
                                             ("count", "stats__count"))


def test_a_feature_service_takes_on_demand_views_whole_or_by_feature() -> None:
    view = odfv(STATS, REQUEST)
    service = hw.FeatureService("s", features=[view, STATS[["count"]]])
    assert [(p.view, p.features) for p in service.features] == [("ratio", None),
                                                                ("stats", ("count",))]
    selection = resolve_selection(service, lookup(STATS, view))
    assert selection.order == ("ratio", "count")
