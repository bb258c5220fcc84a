"""The demo's model: a time-based split, a scikit-learn classifier and its ROC AUC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from headwater.errors import DataError, HeadwaterError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

LABEL = "label"

Split: TypeAlias = tuple["np.ndarray", "np.ndarray"]


def split_by_time(frame: pa.Table, features: tuple[str, ...]) -> tuple[Split, Split, str]:
    """The earlier 80% of rows (by event time) to train, the rest to test."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    times = frame.column("event_timestamp").cast(pa.int64()).to_numpy()
    cutoff = int(np.quantile(times, 0.8))
    x = np.column_stack([
        pc.cast(frame.column(n), pa.float64()).to_numpy(zero_copy_only=False)
        for n in features
    ])
    y = frame.column(LABEL).to_numpy()
    before = times < cutoff
    moment = pa.scalar(cutoff, pa.timestamp("us", tz="UTC")).as_py()
    return (x[before], y[before]), (x[~before], y[~before]), f"{moment:%Y-%m-%d %H:%M} UTC"


def _sklearn() -> Any:
    try:
        import sklearn.ensemble
        import sklearn.metrics
    except ImportError as exc:
        raise HeadwaterError("the demo trains a scikit-learn model. Fix: "
                             "pip install 'headwater[ml]'") from exc
    return sklearn


def train(x: np.ndarray, y: np.ndarray) -> Any:
    sklearn = _sklearn()
    model = sklearn.ensemble.HistGradientBoostingClassifier(max_iter=50, random_state=0)
    model.fit(x, y)
    return model


def roc_auc(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    if len(np.unique(y)) < 2:
        raise DataError("the test rows hold only one label value, so ROC AUC is undefined. "
                        "Fix: run the demo with more entity rows")
    scores = model.predict_proba(x)[:, 1]
    return float(_sklearn().metrics.roc_auc_score(y, scores))
