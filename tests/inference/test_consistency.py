"""The same entity at the same time gets the same prediction online and offline.

Deliver every feature row up to T (materialize), then predict for each customer at T from
the online store (``/predict``, and ``predict_online`` with ``now=T``) and offline
(``store.predict`` with an entity frame at T): the predictions are equal and the
probabilities within 1e-9.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient

from headwater.inference.log import PredictionLog
from headwater.inference.online import predict_online, serving_plan
from headwater.serving.http import create_app
from headwater.testing.models import FEATURE_NAMES
from tests.inference.conftest import CUSTOMERS, Trained

IDS = [*range(1, CUSTOMERS + 1), 10_000]  # and one customer never seen


def offline(trained: Trained, model: str, at: datetime) -> pa.Table:
    frame = pa.table({"customer_id": pa.array(IDS, pa.int64()),
                      "ts": pa.array([at] * len(IDS), pa.timestamp("us", tz="UTC"))})
    return trained.store.predict(model, frame).to_arrow()


def assert_same(online_predictions: list[object], online_probabilities: list[float] | None,
                batch: pa.Table) -> None:
    assert online_predictions == batch.column("prediction").to_pylist()
    if online_probabilities is None:
        assert "probability" not in batch.column_names
    else:
        np.testing.assert_allclose(online_probabilities, batch.column("probability").to_numpy(),
                                   rtol=0, atol=1e-9)


def test_predict_online_at_a_past_time_equals_batch_inference(own_trained: Trained) -> None:
    trained = own_trained  # materialized up to a past time: not the shared repo
    store = trained.store
    moment = trained.start + timedelta(days=20, hours=7, minutes=30)
    store.materialize(trained.start - timedelta(days=1), moment)
    for model in ("churn@production", "spend"):
        version = store.get_model_version(model)
        predictor = store.load_model(f"{version.model}:{version.version}")
        plan = serving_plan(store, predictor.version)
        result = predict_online(store, predictor, plan, [{"customer_id": i} for i in IDS],
                                now=moment)
        batch = offline(trained, model, moment)
        assert_same(result.predictions.tolist(),
                    None if result.probabilities is None else result.probabilities.tolist(),
                    batch)
        assert result.inputs.equals(batch.select(list(FEATURE_NAMES)))
        assert result.response.metadata["customer_stats"].statuses == (
            ["PRESENT"] * CUSTOMERS + ["MISSING"])


def test_predict_endpoint_now_equals_batch_inference_at_that_time(
        trained: Trained, tmp_path: Path) -> None:
    store = trained.store
    moment = datetime.now(UTC)  # the data's last day is today: fresh for the 3-day ttl
    store.materialize(trained.start - timedelta(days=1), moment)
    log = PredictionLog(tmp_path / "log")
    with TestClient(create_app(store, api_keys=None, prediction_log=log)) as client:
        answers = {model: client.post("/predict", json={
            "model": model, "entities": [{"customer_id": i} for i in IDS]})
            for model in ("churn@production", "spend:1")}
    for model, answer in answers.items():
        assert answer.status_code == 200, answer.text
        body = answer.json()
        batch = offline(trained, model, moment)  # no row after `moment` exists
        assert_same(body["predictions"], body["probabilities"], batch)
        assert body["features"] == batch.select(list(FEATURE_NAMES)).to_pydict()
        assert body["statuses"]["customer_stats"] == ["PRESENT"] * CUSTOMERS + ["MISSING"]
