"""POST /features with on-demand features: request fields ride in the entity rows, and the
server finds the functions in the repo (it did not apply them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import headwater as hw
from headwater.definitions import Definition, OnDemandFeatureView
from headwater.repo.loader import load_definitions
from headwater.serving.http import create_app
from tests.transforms.conftest import FEATURES_PY, T0, make_repo


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, TestClient]]:
    repo = make_repo(tmp_path / "repo", f"odfv_http_{tmp_path.name}")
    registered: list[Definition] = [
        dataclasses.replace(d, function=None) if isinstance(d, OnDemandFeatureView) else d
        for d in load_definitions(repo)]  # no function in this process: the repo's is used
    with hw.FeatureStore(repo) as store:
        store.apply(registered)
        store.materialize(T0 - timedelta(days=1), T0 + timedelta(hours=5))
    with hw.FeatureStore(repo) as store, TestClient(create_app(store, api_keys=None)) as client:
        yield repo, client


def test_request_fields_come_in_the_entity_rows(served: tuple[Path, TestClient]) -> None:
    _, client = served
    answer = client.post("/features", json={
        "features": ["card_stats:txn_count", "amount_ratio:amount_vs_mean", "risk:risk_score"],
        "entities": [{"card_id": 1, "merchant_id": 10, "amount": 30},
                     {"card_id": 2, "merchant_id": 11, "amount": 1.0}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["metadata"]["feature_names"] == ["txn_count", "amount_vs_mean", "risk_score"]
    # the online store holds the latest rows (up to T0 + 5 h); the function runs over them
    assert body["results"]["amount_vs_mean"] == [1.5, 0.25]
    assert body["results"]["risk_score"] == [7.5, 2.0]
    assert body["results"]["txn_count"] == [2, 5]


def test_a_feature_service_and_the_errors(served: tuple[Path, TestClient]) -> None:
    repo, client = served
    service = client.post("/features", json={
        "feature_service": "fraud_model",
        "entities": [{"card_id": 1, "merchant_id": 10, "amount": 30.0}]})
    assert service.status_code == 200, service.text
    assert service.json()["results"]["is_large"] == [False]

    missing = client.post("/features", json={"features": ["amount_ratio:amount_vs_mean"],
                                              "entities": [{"card_id": 1}]})
    assert missing.status_code == 422
    assert missing.json()["error"]["type"] == "data_error"
    assert "no 'amount', a request field" in missing.json()["error"]["message"]

    (repo / "features.py").write_text(FEATURES_PY.replace("2 * batch", "3 * batch"))
    with hw.FeatureStore(repo) as store, TestClient(create_app(store, api_keys=None)) as fresh:
        changed = fresh.post("/features", json={
            "features": ["amount_ratio:is_large"],
            "entities": [{"card_id": 1, "merchant_id": 10, "amount": 30.0}]})
    assert changed.status_code == 422
    assert changed.json()["error"] == {
        "type": "definition_error", "field": "function",
        "message": "OnDemandFeatureView 'amount_ratio': field 'function': the function in the "
                   "repo differs from the registered version. Fix: run headwater apply to "
                   "register the changed function, or restore the registered code"}
