"""``DriftReport``: the result of :func:`headwater.monitoring.drift.detect_drift`.

One :class:`ColumnDrift` per tested column. ``statistic`` is the effect size that is compared
with ``threshold`` (named by ``effect``); ``test_statistic`` is the Kolmogorov-Smirnov ``D`` or
the chi-squared value behind ``p_value``; ``p_adjusted`` is the Benjamini-Hochberg adjusted
p-value compared with the report's ``fdr``. Counts exclude nulls, which are reported apart.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: the column order of ``to_pandas`` (the first seven are the ones the issue names)
COLUMNS = ("column", "kind", "test", "statistic", "threshold", "p_value", "drifted",
           "effect", "p_adjusted", "test_statistic", "reference_count", "current_count",
           "reference_nulls", "current_nulls")


@dataclass(frozen=True)
class ColumnDrift:
    """The drift result of one column."""

    column: str
    kind: str
    test: str
    statistic: float
    threshold: float
    p_value: float
    drifted: bool
    effect: str
    p_adjusted: float
    test_statistic: float
    reference_count: int
    current_count: int
    reference_nulls: int
    current_nulls: int

    @property
    def reference_null_rate(self) -> float:
        return self.reference_nulls / (self.reference_count + self.reference_nulls)

    @property
    def current_null_rate(self) -> float:
        return self.current_nulls / (self.current_count + self.current_nulls)


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift results and the settings that produced them."""

    columns: tuple[ColumnDrift, ...]
    fdr: float
    reference_rows: int
    current_rows: int
    skipped: tuple[str, ...] = ()

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns, in column order."""
        return [c.column for c in self.columns if c.drifted]

    def __getitem__(self, column: str) -> ColumnDrift:
        for result in self.columns:
            if result.column == column:
                return result
        raise KeyError(column)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the settings and one dict per column."""
        return {"fdr": self.fdr, "reference_rows": self.reference_rows,
                "current_rows": self.current_rows, "skipped": list(self.skipped),
                "drifted_columns": self.drifted_columns,
                "columns": [_plain(asdict(c)) for c in self.columns]}

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per column (:data:`COLUMNS`)."""
        import pandas as pd

        rows = [asdict(c) for c in self.columns]
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML page (inline style, no script, nothing fetched) with
        the summary and the per-column table; returns the path."""
        target = Path(path)
        target.write_text(render_html(self), encoding="utf-8")
        return target


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    # JSON has no infinity: an effect that is infinite (a constant reference) becomes None
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
tr.drifted td{background:#fde2e1;font-weight:600}"""


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if value and abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def render_html(report: DriftReport) -> str:
    """The report as one HTML document."""
    names = [f.name for f in fields(ColumnDrift)]
    order = [n for n in COLUMNS if n in names]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in order)
    body = []
    for result in report.columns:
        row = asdict(result)
        css = ' class="drifted"' if result.drifted else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_cell(row[n])}</td>" for n in order)
                    + "</tr>")
    drifted = ", ".join(html.escape(c) for c in report.drifted_columns) or "none"
    skipped = (f"<p>Not tested (type): {html.escape(', '.join(report.skipped))}</p>"
               if report.skipped else "")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Drift report</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>Drift report</h1>\n"
        f"<p>{report.reference_rows:,} reference rows, {report.current_rows:,} current rows; "
        f"a column drifts when its Benjamini-Hochberg adjusted p-value is at most "
        f"{report.fdr} and its effect size (statistic) reaches the threshold.</p>\n"
        f"<p>Drifted: {len(report.drifted_columns)} of {len(report.columns)} columns: "
        f"{drifted}</p>\n{skipped}\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body) + "\n</tbody>\n</table>\n</body></html>\n")
