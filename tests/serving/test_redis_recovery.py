"""The server over a real Redis that stops and starts again: 503 while down, then 200."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

import headwater as hw
from headwater.serving.http import create_app
from tests.conftest import PrivateRedis
from tests.serving.conftest import build_repo

READ = {"features": ["globbed:conv_rate"], "entities": [{"driver_id": 1001}]}
ROW = {"driver_id": 1001, "event_timestamp": "2024-01-02T00:00:00Z", "conv_rate": 0.25,
       "trips": 2}


def test_redis_down_gives_503_and_the_server_recovers_when_it_returns(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    repo = build_repo(tmp_path / "repo", f"online: {{type: redis, url: '{private_redis.url}'}}\n")
    with hw.FeatureStore(repo) as store, TestClient(create_app(store, api_keys=None)) as client:
        answer = client.post("/features", json=READ)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"]["conv_rate"] == [0.5]

        private_redis.stop()
        for _ in range(2):  # stays down: every request answers, none crashes the server
            down = client.post("/features", json=READ)
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["type"] == "store_unavailable"
            assert "cannot read the Redis online store" in error["message"]
            assert private_redis.url in error["message"] and "Fix:" in error["message"]
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert health.json()["checks"]["registry"] == "ok"
        assert health.json()["checks"]["online_store"].startswith("unavailable: cannot reach")
        pushed = client.post("/push", json={"view": "globbed", "rows": [ROW]})
        assert pushed.status_code == 503

        private_redis.start()  # the same port, empty: it keeps no data
        assert client.get("/health").status_code == 200
        back = client.post("/features", json=READ)
        assert back.status_code == 200, back.text
        assert back.json()["views"]["globbed"]["statuses"] == ["MISSING"]
        assert client.post("/push", json={"view": "globbed", "rows": [ROW]}).status_code == 200
        assert client.post("/features", json=READ).json()["results"]["conv_rate"] == [0.25]
