"""POST /predict: predictions from online features, errors, auth, metrics and the log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from headwater.inference.log import PredictionLog
from headwater.serving.http import create_app
from headwater.serving.keys import KeyRing
from headwater.testing.models import FEATURE_NAMES, applied_store
from tests.conftest import PrivateRedis
from tests.inference.conftest import Trained, recent_churn_repo, train_recent
from tests.models.conftest import offer_labels, offer_model
from tests.serving.test_http import metric

KEY = "predict-key-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """The trained churn repo (tests.inference), materialized up to now; shared by the
    tests that do not train or promote."""
    for trained in train_recent(tmp_path_factory.mktemp("served") / "repo"):
        trained.store.materialize(trained.start - timedelta(days=1), datetime.now(UTC))
        yield trained


@pytest.fixture
def client(served: Trained, tmp_path: Path) -> Iterator[TestClient]:
    log = PredictionLog(tmp_path / "log")
    with TestClient(create_app(served.store, api_keys=KeyRing([KEY.encode()]),
                               prediction_log=log),
                    headers={"Authorization": f"Bearer {KEY}"}) as test_client:
        yield test_client


def predict(client: TestClient, **body: Any) -> Any:
    return client.post("/predict", json={"model": "churn@production",
                                         "entities": [{"customer_id": 1}], **body})


def test_a_prediction_names_the_version_and_the_features_used(client: TestClient,
                                                              served: Trained) -> None:
    answer = predict(client, entities=[{"customer_id": 1}, {"customer_id": 77_777}])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "churn" and body["version"] == served.run.version
    assert len(body["request_id"]) == 32
    assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {0, 1}
    assert all(0.0 <= p <= 1.0 for p in body["probabilities"])
    assert list(body["features"]) == list(FEATURE_NAMES)
    assert body["features"]["spend_30d"][1] is None
    assert body["statuses"] == {"customer_stats": ["PRESENT", "MISSING"]}
    regression = predict(client, model="spend").json()
    assert regression["probabilities"] is None
    assert isinstance(regression["predictions"][0], float)


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"model": "nope"}, 404, None),
    ({"model": "churn@staging"}, 404, None),
    ({"model": "churn:99"}, 404, None),
    ({"model": "churn@"}, 422, "model"),
    ({"entities": [{"client": 1}]}, 422, "entities"),
    ({"entities": [{"customer_id": "one"}]}, 422, "entities"),
    ({"entities": []}, 422, "entities"),
])
def test_errors(client: TestClient, body: dict[str, Any], status: int,
                field: str | None) -> None:
    answer = predict(client, **body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["field"] == field


def test_auth_and_method(client: TestClient) -> None:
    assert predict(client).status_code == 200
    no_key = client.post("/predict", headers={"Authorization": ""},
                         json={"model": "churn", "entities": [{"customer_id": 1}]})
    assert no_key.status_code == 401
    assert client.get("/predict").status_code == 405


def test_predictions_are_counted_and_logged_exactly_once(served: Trained,
                                                         tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log", flush_rows=4)
    sent = [[{"customer_id": i}, {"customer_id": i + 1}] for i in range(1, 12)]
    bodies = []
    with TestClient(create_app(served.store, api_keys=None, prediction_log=log)) as client:
        for entities in sent:
            answer = client.post("/predict", json={"model": "churn", "entities": entities})
            bodies.append(answer.json())
        text = client.get("/metrics").text
    assert metric(text, "headwater_predictions_total", model="churn", version="1") == 22
    # the server's shutdown wrote everything: exactly the 22 rows, with their values
    glob = (tmp_path / "log" / "churn" / "date=*" / "*.parquet").as_posix()
    logged = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true) "
                        "ORDER BY request_id, customer_id").arrow().read_all()
    assert logged.num_rows == 22 and log.written_rows == 22 and log.dropped_rows == 0
    by_request = {b["request_id"]: b for b in bodies}
    assert set(logged.column("request_id").to_pylist()) == set(by_request)
    for row in logged.to_pylist():
        body = by_request[row["request_id"]]
        index = body["features"]["spend_30d"].index(row["spend_30d"])
        assert row["prediction"] == body["predictions"][index]
        assert row["probability"] == body["probabilities"][index]
        assert row["model"] == "churn" and row["model_version"] == 1
    assert not list((tmp_path / "log").rglob("*.tmp"))


def test_a_promotion_is_served_after_the_refresh(tmp_path: Path) -> None:
    for own in train_recent(tmp_path / "repo"):  # its own repo: it trains and promotes
        store = own.store
        store.materialize(own.start - timedelta(days=1), datetime.now(UTC))
        log = PredictionLog(tmp_path / "log")
        app = create_app(store, api_keys=None, prediction_log=log, model_refresh_seconds=0)
        with TestClient(app) as client:
            assert predict(client).json()["version"] == 1
            second = store.train("churn")
            store.promote("churn", second.version, force=True)
            # the version served so far answers while the promoted one loads
            assert predict(client).json()["version"] == 1
            app.predict.models.wait_loaded(60)  # type: ignore[union-attr]
            assert predict(client).json()["version"] == second.version
            assert predict(client, model="churn:1").json()["version"] == 1


def test_the_schema_documents_predict(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers={"Authorization": ""}).json()
    operation = schema["paths"]["/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"}
    assert {"PredictRequest", "PredictResponse"} <= set(schema["components"]["schemas"])


def test_request_fields_feed_on_demand_features_and_a_missing_one_is_named(
        tmp_path: Path) -> None:
    repo, start = recent_churn_repo(tmp_path / "repo")
    with applied_store(repo) as store:
        store.apply(offer_model(store, offer_labels(repo)))
        run = store.train("offer_churn")
        store.promote("offer_churn", run.version)
        store.materialize(start - timedelta(days=1), datetime.now(UTC))
        with TestClient(create_app(store, api_keys=None,
                                   prediction_log=PredictionLog(tmp_path / "log"))) as client:
            shared = client.post("/predict", json={
                "model": "offer_churn", "entities": [{"customer_id": 1}, {"customer_id": 2}],
                "request": {"discount": 0.25}})
            assert shared.status_code == 200, shared.text
            features = shared.json()["features"]
            assert features["discount"] == [0.25, 0.25]
            assert features["spend_after_discount"] == [
                s * 0.75 for s in features["spend_30d"]]
            per_row = client.post("/predict", json={
                "model": "offer_churn", "entities": [{"customer_id": 1}, {"customer_id": 2}],
                "request": [{"discount": 0.25}, {"discount": 0.0}]})
            assert per_row.json()["features"]["discount"] == [0.25, 0.0]
            assert per_row.json()["predictions"][0] == shared.json()["predictions"][0]
            missing = client.post("/predict", json={
                "model": "offer_churn", "entities": [{"customer_id": 1}]})
            assert missing.status_code == 422
            assert missing.json()["error"]["field"] == "request.discount"
            assert "discount" in missing.json()["error"]["message"]


def test_an_unreachable_online_store_is_503(tmp_path: Path,
                                            private_redis: PrivateRedis) -> None:
    repo, start = recent_churn_repo(tmp_path / "repo")
    (repo / "headwater.yaml").write_text(
        f"project: churn_redis_{uuid.uuid4().hex[:8]}\n"
        f"online: {{type: redis, url: '{private_redis.url}'}}\n")
    with applied_store(repo) as store:
        store.promote("churn", store.train("churn").version)
        store.materialize(start - timedelta(days=1), datetime.now(UTC))
        with TestClient(create_app(store, api_keys=None,
                                   prediction_log=PredictionLog(tmp_path / "log"))) as client:
            assert predict(client).status_code == 200
            private_redis.stop()
            down = predict(client)
            assert down.status_code == 503
            assert down.json()["error"]["type"] == "store_unavailable"
            private_redis.start()
            assert predict(client).json()["statuses"] == {"customer_stats": ["MISSING"]}


def test_aliased_models_are_loaded_when_the_server_starts(served: Trained,
                                                          tmp_path: Path) -> None:
    server = create_app(served.store, api_keys=None, prediction_log=PredictionLog(tmp_path))
    handler = server.predict
    assert handler.models._models == {}
    with TestClient(server):  # the lifespan runs the start-up
        loaded = dict(handler.models._models)
    assert "churn@production" in loaded
    assert loaded["churn@production"].plan.version.version == served.run.version


def test_logged_predictions_are_read_back_through_the_store(served: Trained) -> None:
    store = served.store
    before = store.read_predictions("churn").num_rows
    with TestClient(create_app(store, api_keys=None)) as client:  # the settings' log folder
        answers = [predict(client, entities=[{"customer_id": c}]).json() for c in (1, 2, 3)]
    logged = store.read_predictions("churn")  # the server wrote everything at shutdown
    assert logged.num_rows == before + 3
    rows = {r["request_id"]: r for r in logged.slice(before).to_pylist()}
    assert set(rows) == {a["request_id"] for a in answers}
    for customer, answer in zip((1, 2, 3), answers, strict=True):
        row = rows[answer["request_id"]]
        assert row["customer_id"] == customer
        assert row["probability"] == answer["probabilities"][0]
