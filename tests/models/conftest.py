"""Shared fixtures of the model tests: a generated churn repo with its definitions applied.

The repo is small (120 customers over 40 days, about 700 labelled rows) so that training in
a test takes well under a second after the imports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

import headwater as hw
from headwater.definitions import Definition
from headwater.definitions.feature_view import FeatureViewProjection
from headwater.testing.models import LABELS_FILE, applied_store, churn_repo

CUSTOMERS = 120
DAYS = 40


@pytest.fixture
def churn_path(tmp_path: Path) -> Path:
    """A churn repo (with the ``spend`` regression model) written to a fresh folder."""
    return churn_repo(tmp_path / "repo", customers=CUSTOMERS, days=DAYS, regression=True)


@pytest.fixture
def store(churn_path: Path) -> Iterator[hw.FeatureStore]:
    """A FeatureStore over ``churn_path`` with its definitions applied."""
    opened = applied_store(churn_path)
    try:
        yield opened
    finally:
        opened.close()


@hw.on_demand_feature_view(
    sources=[FeatureViewProjection("customer_stats", ("spend_30d",)),
             hw.RequestSource("offer", schema=[hw.Field("discount", hw.Float64)])],
    schema=[hw.Field("spend_after_discount", hw.Float64)], mode="arrow")
def spend_after_discount(batch: pa.Table) -> pa.Table:
    """Spend with the offered discount applied (the discount comes with the request)."""
    import pyarrow.compute as pc

    return pa.table({"spend_after_discount": pc.multiply(
        batch.column("spend_30d"), pc.subtract(1.0, batch.column("discount")))})


def offer_labels(churn_path: Path) -> hw.FileSource:
    """The churn labels with a ``discount`` column, in ``data/offer_labels.parquet``."""
    import numpy as np
    import pyarrow.parquet as pq

    labels = pq.read_table(churn_path / LABELS_FILE)
    discount = np.random.default_rng(2).uniform(0, 0.5, size=labels.num_rows)
    pq.write_table(labels.append_column("discount", pa.array(discount)),
                   churn_path / "data" / "offer_labels.parquet")
    return hw.FileSource("data/offer_labels.parquet", timestamp_field="ts", name="offers")


def offer_model(store: hw.FeatureStore, source: hw.FileSource,
                name: str = "offer_churn") -> list[Definition]:
    """An on-demand view reading a request field, a service with it and a model on it."""
    service = hw.FeatureService("offer_features", features=[
        store.get_feature_view("customer_stats"), spend_after_discount])
    spec = hw.ModelSpec(name=name, features=service, label=hw.LabelSource(source, "churned"),
                        estimator=HistGradientBoostingClassifier(max_iter=20))
    return [spend_after_discount, service, spec]
