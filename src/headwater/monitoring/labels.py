"""Delayed labels joined to logged predictions: which label judges which prediction.

**The label join** (:func:`join_labels`). A logged prediction of entity ``k`` at time ``t``
(``logged_at``) takes the label of the label row with the same join keys (all equal, none
null) whose label time is the *first at or after* ``t``; with ``max_delay`` only when that
first time is at most ``t + max_delay`` (otherwise the prediction has no label: a later
label is about another outcome). Label rows of one entity at the same time are a tie: the
row that comes *last* in the label table (ingestion order: a later row corrects an earlier
one) wins. Several predictions may take the same label (each is judged by the outcome that
followed it). A prediction with no such label is *unlabelled*: it stays in the joined
table with a null ``label`` and is counted, but no metric uses it. Label rows with a null
label or a null time are refused (DataError), as training refuses them.

:func:`label_table` finds the labels and join keys of a registered model for
:func:`headwater.monitoring.performance.check_performance`, which computes metrics over the
joined table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from headwater.definitions.model import LabelSource
from headwater.errors import DataError
from headwater.offline.frames import to_arrow

if TYPE_CHECKING:
    from headwater.store import FeatureStore

LOGGED_AT, LABEL, LABELLED_AT = "logged_at", "label", "labelled_at"
CARRIED = ("request_id", "model_version", "prediction", "probability")
"""Prediction log columns the joined table keeps (when present), after keys and time."""


def join_labels(predictions: Any, labels: Any, *, keys: Sequence[str], label_column: str,
                label_time: str, max_delay: timedelta | None = None) -> pa.Table:
    """Each row of ``predictions`` (pandas, polars or Arrow with ``keys`` and
    ``logged_at``) with its label from ``labels`` by the rule of the module docstring.

    Returns, in the order of ``predictions``: ``keys``, ``logged_at`` (timestamp[us, UTC]),
    those of ``request_id``, ``model_version``, ``prediction``, ``probability`` present, then
    ``label`` (the label's value, null when unlabelled) and ``labelled_at`` (its time).
    DataError names a missing or all-null key, a key whose type differs between the two
    tables, a missing label or time column, null labels or times, a negative max_delay."""
    import duckdb

    from headwater.offline.sql_names import quote
    from headwater.offline.timestamps import TimeKind, as_instant, check_strings, time_kind

    preds, labs, keys = to_arrow(predictions, "predictions"), to_arrow(labels, "labels"), [*keys]
    _check_join(preds, labs, keys, label_column, label_time)
    if max_delay is not None and max_delay < timedelta(0):
        raise DataError(f"join_labels: max_delay {max_delay} is negative. Fix: pass a "
                        "timedelta >= 0, or None for no limit")
    carried = [c for c in CARRIED if c in preds.column_names]
    row = "__hw_row"
    preds = preds.select([*keys, LOGGED_AT, *carried]).append_column(
        row, pa.array(np.arange(preds.num_rows, dtype=np.int64)))
    labs = labs.select([*keys, label_time, label_column]).append_column(
        row, pa.array(np.arange(labs.num_rows, dtype=np.int64)))
    times, strings = {}, []
    for name, table, column in (("predictions", preds, LOGGED_AT), ("labels", labs, label_time)):
        kind = time_kind(table.schema.field(column).type)
        if kind is None:
            raise DataError(f"{name} time column '{column}' has type "
                            f"{table.schema.field(column).type}. Fix: use a timestamp, date "
                            "or ISO-8601 string column")
        times[name] = as_instant(quote(column), kind)
        if kind is TimeKind.STRING:
            strings.append((name, column))
    within = "TRUE" if max_delay is None else (
        f"epoch_us(l.__hw_lt) - epoch_us(p.__hw_pt) <= {max_delay // timedelta(microseconds=1)}")
    key_list = ", ".join(quote(k) for k in keys)
    query = f"""
        WITH l AS (
            SELECT * FROM (SELECT {key_list}, {times['labels']} AS __hw_lt,
                                  {quote(label_column)} AS __hw_label, {row}
                           FROM __hw_labels)
            QUALIFY row_number() OVER (PARTITION BY {key_list}, __hw_lt
                                       ORDER BY {row} DESC) = 1
        ), p AS (
            SELECT *, {times['predictions']} AS __hw_pt FROM __hw_predictions
        )
        SELECT {', '.join(f'p.{quote(k)}' for k in keys)}, p.__hw_pt AS {LOGGED_AT},
               {''.join(f'p.{quote(c)}, ' for c in carried)}
               CASE WHEN {within} THEN l.__hw_label END AS {LABEL},
               CASE WHEN {within} THEN l.__hw_lt END AS {LABELLED_AT}
        FROM p ASOF LEFT JOIN l
          ON {' AND '.join(f'p.{quote(k)} = l.{quote(k)}' for k in keys)}
         AND l.__hw_lt >= p.__hw_pt
        ORDER BY p.{row}
    """
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__hw_predictions", preds)
        con.register("__hw_labels", labs)
        for name, column in strings:  # a value that does not parse is an error, not null
            check_strings(con, f"__hw_{name}", {}, quote(column), owner=name, column=column)
        joined: pa.Table = con.sql(query).to_arrow_table()
    return joined.set_column(joined.schema.get_field_index(LOGGED_AT), LOGGED_AT,
                             joined.column(LOGGED_AT).cast(pa.timestamp("us", "UTC")))


def _check_join(preds: pa.Table, labs: pa.Table, keys: list[str], label_column: str,
                label_time: str) -> None:
    """DataError for what :func:`join_labels` refuses (see its docstring)."""
    for table, owner, wanted in ((preds, "the prediction log", [*keys, LOGGED_AT]),
                                 (labs, "the labels", [*keys, label_time, label_column])):
        missing = [c for c in dict.fromkeys(wanted) if c not in table.column_names]
        if missing or not keys:
            raise DataError(f"{owner} has no column(s) {missing or 'keys'}; its columns are "
                            f"{table.column_names}. Fix: pass keys= the entity join keys both "
                            "hold, and label_column=/label_time= columns of the labels")
    clash = sorted({label_column, label_time, LOGGED_AT, LABEL, LABELLED_AT, *CARRIED}
                   & set(keys))
    if clash or label_column == label_time:
        raise DataError(f"join_labels: the columns {clash or [label_column]} are used twice "
                        "(as a key and a time, label or log column). Fix: rename them")
    for key in keys:
        logged, labelled = preds.schema.field(key).type, labs.schema.field(key).type
        for kind, owner in ((logged, "prediction log"), (labelled, "labels")):
            if pa.types.is_null(kind):
                raise DataError(f"key '{key}' of the {owner} holds only nulls. Fix: fill the "
                                "entity keys")
        if value_family(logged) != value_family(labelled):
            raise DataError(f"key '{key}' is {logged} in the prediction log but {labelled} in "
                            "the labels, so no label would match. Fix: cast the labels' column "
                            f"to {logged}")
    for table, owner, column in ((labs, "labels", label_column), (labs, "labels", label_time),
                                 (preds, "predictions", LOGGED_AT)):
        nulls = table.column(column).null_count
        if nulls:
            raise DataError(f"{nulls} of {table.num_rows} {owner} rows have a null "
                            f"'{column}'. Fix: drop or fill those rows (a label row without "
                            "a label or time cannot judge a prediction)")


def value_family(kind: pa.DataType) -> str:
    """What values of type ``kind`` are for matching: ``"number"`` for any integer, float
    or decimal, ``"string"`` for strings, a dictionary as its values, else the type."""
    if pa.types.is_dictionary(kind):
        return value_family(kind.value_type)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    return str(kind)


def label_table(store: FeatureStore, model: str, labels: Any, *, keys: Sequence[str] | None,
                label_column: str | None, label_time: str | None
                ) -> tuple[pa.Table, dict[str, Any]]:
    """The label table of model ``model`` and the :func:`join_labels` arguments ``keys``,
    ``label_column`` and ``label_time`` for
    :func:`~headwater.monitoring.performance.check_performance`: ``labels`` a table, a
    :class:`~headwater.LabelSource` (read through the offline engine) or None for the
    ModelSpec's label source; ``keys`` by default the join keys of the ModelSpec's feature
    service; the label and time columns by default the label source's. DataError when
    ``label_column``/``label_time`` are given with a LabelSource."""
    from headwater.models.frame import join_keys

    spec = store.get_model(model) if (labels is None or keys is None or (
        not isinstance(labels, LabelSource) and None in (label_column, label_time))) else None
    if keys is None and spec is not None:
        keys = join_keys(store.resolve_features(spec.features, caller=f"model '{model}'"))
    keys = list(keys or ())
    if labels is None and spec is not None:
        labels = spec.label
    if isinstance(labels, LabelSource):
        if label_column is not None or label_time is not None:
            raise DataError("check_performance: label_column/label_time are for a label "
                            "table; a LabelSource names its own. Fix: drop them")
        label_column, label_time = labels.column, labels.source.timestamp_field
        table = store.offline.read_source(labels.source, [*keys, label_time, label_column])
    else:
        table = to_arrow(labels, "labels")
        if spec is not None:
            label_column = label_column or spec.label.column
            label_time = label_time or spec.label.source.timestamp_field
    return table, {"keys": keys, "label_column": label_column, "label_time": label_time}


__all__ = ["CARRIED", "LABEL", "LABELLED_AT", "LOGGED_AT", "join_labels", "label_table",
           "value_family"]
