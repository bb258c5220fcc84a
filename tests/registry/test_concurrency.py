"""Concurrent applies from several processes serialize: no lost write, no broken version chain."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from headwater.definitions import FeatureView
from headwater.registry.catalog import Registry

from .conftest import DRIVER, backend_target, open_target, run_workers, view

ROUNDS = 15
WORKERS = 3


def _worker(target: dict[str, Any], worker: int, barrier: Any) -> None:
    backend = open_target(target)
    registry = Registry(backend, "proj")
    barrier.wait(timeout=60)
    for round_ in range(ROUNDS):
        # every worker updates the shared view with a value no other worker writes
        shared = view("shared", ttl_days=1 + worker * 1000 + round_)
        registry.apply([DRIVER, shared, view(f"w{worker}_{round_}")])
    backend.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_applies_never_corrupt_the_registry(kind: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    target = backend_target(kind, tmp_path, request)
    open_target(target).close()  # create the tables once, as a first apply would

    run_workers(_worker, target, WORKERS)

    backend = open_target(target)
    registry = Registry(backend, "proj")
    log = registry.changes()
    # no lost write: every per-worker view is there
    names = {obj.name for obj in registry.list_objects("feature_view")}
    assert names == {"shared"} | {f"w{w}_{r}" for w in range(WORKERS) for r in range(ROUNDS)}
    # the shared view changed on every apply, so it has exactly one version per apply
    shared_changes = [c for c in log if c.name == "shared"]
    assert len(shared_changes) == WORKERS * ROUNDS
    # each object's changes form one unbroken chain of versions
    chains: dict[tuple[str, str], list[tuple[int | None, int | None]]] = defaultdict(list)
    for change in log:
        chains[(change.kind, change.name)].append((change.from_version, change.to_version))
    for key, chain in chains.items():
        expected_from = None
        for from_version, to_version in chain:
            assert from_version == expected_from, key
            expected_from = to_version
        versions = [r.version for r in registry.history(*key)]
        assert versions == list(range(1, len(chain) + 1)), key
        assert registry.record(*key).version == chain[-1][1]
    assert [c.id for c in log] == sorted(c.id for c in log)
    # the last shared version is one that some worker wrote in its final round
    final = registry.typed(FeatureView, "shared")
    assert final.ttl is not None
    assert final.ttl.days in {1 + w * 1000 + ROUNDS - 1 for w in range(WORKERS)}
    backend.close()
