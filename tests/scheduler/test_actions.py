"""Scheduled train (with promotion) and predict jobs on the repo `headwater init` writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq

import headwater as hw
from headwater.scheduler.base import SUCCEEDED
from headwater.scheduler.runner import Scheduler
from tests.scheduler.conftest import T0, Clock

MODEL = "driver_conversion"
HOUR = timedelta(hours=1)


def test_a_train_job_registers_and_promotes_a_version(store: hw.FeatureStore,
                                                      clock: Clock) -> None:
    store.apply([hw.Job("retrain", schedule="0 * * * *", action="train", target=MODEL,
                        options={"promote": "production"})])
    scheduler = Scheduler(store, owner="s1", now=clock)  # started at 00:05
    clock.set(T0 + HOUR)  # 01:05: the 01:00 slot
    (run,) = scheduler.run_due()
    assert run.status == SUCCEEDED, run.error
    version = store.get_model_version(f"{MODEL}@production")
    assert version.version == 1
    labels = pq.read_metadata(store.repo_path / "data" / "driver_labels.parquet").num_rows
    assert run.rows == labels  # every label row: train + test
    assert f"trained {MODEL} version 1" in (run.detail or "")
    assert "promoted to production" in (run.detail or "")


def test_a_refused_promotion_is_a_result_not_a_failure(store: hw.FeatureStore,
                                                       clock: Clock) -> None:
    # production is held by a version whose roc_auc no retrain can beat by 1.0
    first = store.train(MODEL)
    store.promote(MODEL, first.version, "production")
    spec = store.get_model(MODEL)
    strict = hw.PromotionRule("roc_auc", min_improvement=1.0)
    store.apply([_with_promotion(spec, strict),
                 hw.Job("retrain", schedule="0 * * * *", action="train", target=MODEL,
                        options={"promote": True}, retries=0)])
    scheduler = Scheduler(store, owner="s1", now=clock)
    clock.set(T0 + HOUR)
    (run,) = scheduler.run_due()
    assert run.status == SUCCEEDED and run.error is None
    assert "not promoted to production" in (run.detail or ""), run.detail
    assert store.get_model_version(f"{MODEL}@production").version == first.version
    assert store.get_model_version(f"{MODEL}:2").version == 2  # trained and registered


def test_a_promotion_the_registry_cannot_write_fails_the_run(store: hw.FeatureStore,
                                                             clock: Clock) -> None:
    # not a rule's verdict but a storage failure: the run fails (and would be retried)
    from headwater.errors import RegistryError
    from headwater.scheduler.base import FAILED

    def locked(*args: object, **kwargs: object) -> object:
        raise RegistryError("the registry stayed locked for 60s: database is locked")

    store.apply([hw.Job("retrain", schedule="0 * * * *", action="train", target=MODEL,
                        options={"promote": True}, retries=0)])
    store.promote = locked  # type: ignore[method-assign]
    scheduler = Scheduler(store, owner="s1", now=clock)
    clock.set(T0 + HOUR)
    (run,) = scheduler.run_due()
    assert run.status == FAILED
    assert "database is locked" in (run.error or "")


def _with_promotion(spec: hw.ModelSpec, rule: hw.PromotionRule) -> hw.ModelSpec:
    import dataclasses

    return dataclasses.replace(spec, promotion=(rule,))


def test_a_predict_job_writes_the_scored_rows_to_parquet(repo: Path, store: hw.FeatureStore,
                                                         clock: Clock) -> None:
    run = store.train(MODEL)
    store.promote(MODEL, run.version, "production")
    entities = pq.read_table(repo / "data" / "driver_labels.parquet").select(["driver_id"])
    pq.write_table(entities.slice(0, 25), repo / "data" / "to_score.parquet")
    store.apply([hw.Job("score", schedule="30 2 * * *", action="predict",
                        target=f"{MODEL}@production",
                        options={"entities": "data/to_score.parquet",
                                 "output": "data/predictions/score_{date}.parquet"})])
    scheduler = Scheduler(store, owner="s1", now=clock)
    clock.set(T0 + 3 * HOUR)  # 03:05: the 02:30 slot
    (done,) = scheduler.run_due()
    assert done.status == SUCCEEDED, done.error
    output = repo / "data" / "predictions" / "score_2024-01-02.parquet"
    table = pq.read_table(output)
    assert done.rows == table.num_rows == 25
    assert "prediction" in table.column_names
    # each row was scored as of the scheduled time (the column the job filled in)
    assert set(table.column("event_timestamp").to_pylist()) == {done.scheduled_for}
