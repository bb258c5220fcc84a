"""Registry conformance: versions, plans, the change log and atomic applies on every backend."""

from __future__ import annotations

import pytest

import headwater as hw
from headwater.errors import DefinitionError, NotFoundError, RegistryError
from headwater.registry.base import Change, RegistryBackend
from headwater.registry.catalog import Registry

from .conftest import DRIVER, view


def test_apply_creates_version_one_and_logs_each_object(registry: Registry) -> None:
    service = hw.FeatureService("model", features=[view()])
    plan = registry.apply([DRIVER, view(), service])
    assert plan.applied
    assert [(c.action, c.kind, c.name, c.to_version) for c in plan.changes] == [
        ("create", "entity", "driver", 1),
        ("create", "feature_view", "driver_stats", 1),
        ("create", "feature_service", "model", 1),
    ]
    log = registry.changes()
    assert [(c.action, c.name, c.from_version, c.to_version) for c in log] == [
        ("create", "driver", None, 1),
        ("create", "driver_stats", None, 1),
        ("create", "model", None, 1),
    ]
    assert len({c.apply_id for c in log}) == 1
    assert registry.get("feature_view", "driver_stats") == view()
    assert registry.get("feature_service", "model") == service


def test_reapplying_the_same_definitions_changes_nothing(registry: Registry) -> None:
    registry.apply([DRIVER, view()])
    before = registry.backend.last_change_id("proj")
    plan = registry.apply([DRIVER, view()])
    assert not plan.has_changes
    assert set(plan.unchanged) == {("entity", "driver"), ("feature_view", "driver_stats")}
    assert registry.backend.last_change_id("proj") == before


def test_a_changed_definition_gets_a_new_version_and_keeps_the_old(registry: Registry) -> None:
    registry.apply([DRIVER, view(ttl_days=1)])
    preview = registry.plan([DRIVER, view(ttl_days=2)])
    assert not preview.applied
    assert [(c.action, c.from_version, c.to_version, c.fields) for c in preview.changes] == [
        ("update", 1, 2, ("ttl",))
    ]
    assert registry.get("feature_view", "driver_stats") == view(ttl_days=1)  # plan wrote nothing

    registry.apply([DRIVER, view(ttl_days=2)])
    history = registry.history("feature_view", "driver_stats")
    assert [r.version for r in history] == [1, 2]
    assert history[0].spec == view(ttl_days=1).spec()
    assert history[1].spec == view(ttl_days=2).spec()
    assert registry.record("feature_view", "driver_stats").version == 2
    got = registry.get("feature_view", "driver_stats")
    assert isinstance(got, hw.FeatureView)
    assert got.ttl is not None and got.ttl.days == 2


def test_prune_deletes_and_a_recreated_object_continues_its_versions(registry: Registry) -> None:
    registry.apply([DRIVER, view(), view("other")])
    plan = registry.apply([DRIVER, view()], prune=True)
    assert [(c.action, c.name, c.from_version) for c in plan.changes] == [
        ("delete", "other", 1)
    ]
    with pytest.raises(NotFoundError, match="other"):
        registry.get("feature_view", "other")
    assert [r.version for r in registry.history("feature_view", "other")] == [1]

    plan = registry.apply([view("other", ttl_days=3)])
    assert [(c.action, c.to_version) for c in plan.changes] == [("create", 2)]
    assert [c.action for c in registry.changes() if c.name == "other"] == [
        "create", "delete", "create"
    ]


def test_without_prune_missing_objects_stay(registry: Registry) -> None:
    registry.apply([DRIVER, view(), view("other")])
    assert not registry.apply([view()]).has_changes
    assert registry.get("feature_view", "other") == view("other")


def test_a_view_whose_entity_is_not_registered_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="entity 'driver', which is not registered"):
        registry.apply([view()])
    assert registry.backend.last_change_id("proj") == 0
    assert registry.list_objects() == []


def test_deleting_an_entity_still_in_use_is_refused(registry: Registry) -> None:
    registry.apply([DRIVER, view()])
    before = registry.backend.last_change_id("proj")
    with pytest.raises(RegistryError, match="driver"):
        registry.apply([view("unrelated")], prune=True)
    assert registry.backend.last_change_id("proj") == before
    assert registry.get("feature_view", "driver_stats") == view()


def test_a_service_selecting_unknown_features_is_refused(registry: Registry) -> None:
    bad = hw.FeatureService("model", features=["driver_stats:nope"])
    with pytest.raises(RegistryError, match="nope"):
        registry.apply([DRIVER, view(), bad])
    missing_view = hw.FeatureService("model", features=["ghost:*"])
    with pytest.raises(RegistryError, match="ghost"):
        registry.apply([DRIVER, view(), missing_view])
    assert registry.backend.last_change_id("proj") == 0


def test_two_different_objects_with_one_name_are_refused(registry: Registry) -> None:
    with pytest.raises(DefinitionError, match="two different definitions"):
        registry.apply([DRIVER, view(ttl_days=1), view(ttl_days=2)])


def test_a_failure_mid_write_leaves_nothing_behind(backend: RegistryBackend) -> None:
    good = Change("create", "entity", "a", {"x": 1}, "h1")
    unencodable = Change("create", "entity", "b", {"x": object()}, "h2")
    with pytest.raises(TypeError):
        backend.write("proj", lambda heads: [good, unencodable])
    assert backend.heads("proj") == {}
    assert backend.changes("proj") == []
    assert backend.history("proj", "entity", "a") == []


def test_projects_are_isolated(backend: RegistryBackend) -> None:
    Registry(backend, "one").apply([DRIVER])
    other = Registry(backend, "two")
    assert other.list_objects() == []
    assert other.changes() == []


def test_the_cache_sees_changes_made_through_another_handle(backend: RegistryBackend) -> None:
    first, second = Registry(backend, "proj"), Registry(backend, "proj")
    first.apply([DRIVER, view(ttl_days=1)])
    assert second.get("feature_view", "driver_stats") == view(ttl_days=1)
    first.apply([view(ttl_days=5)])
    assert second.get("feature_view", "driver_stats") == view(ttl_days=5)


def test_unknown_names_list_what_is_registered(registry: Registry) -> None:
    registry.apply([DRIVER, view()])
    with pytest.raises(NotFoundError, match=r"registered: \['driver_stats'\]"):
        registry.get("feature_view", "driver_stat")


def test_watermarks_are_one_row_per_view_replaced_in_place(backend: RegistryBackend) -> None:
    from datetime import UTC, datetime

    first = datetime(2024, 1, 1, tzinfo=UTC)
    later = datetime(2024, 1, 2, 12, 30, tzinfo=UTC)
    assert backend.watermarks("proj") == {}
    backend.set_watermark("proj", "driver_stats", 1, first)
    backend.set_watermark("proj", "driver_stats", 2, later)
    backend.set_watermark("other", "driver_stats", 1, first)
    assert backend.watermarks("proj") == {"driver_stats": (2, later)}
    assert backend.watermarks("other") == {"driver_stats": (1, first)}


def test_derived_values_are_kept_until_the_catalog_changes(registry: Registry) -> None:
    registry.apply([DRIVER, view()])
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert registry.derived("k", compute) == 1
    assert registry.derived("k", compute) == 1  # kept
    registry.apply([view(ttl_days=9)])
    assert registry.derived("k", compute) == 2  # recomputed after a change
