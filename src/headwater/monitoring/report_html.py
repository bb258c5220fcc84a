"""The report of one monitor: a self-contained HTML page and a JSON of the same results.

:func:`write_monitor_report` reads the stored runs of a registered
:class:`~headwater.definitions.monitor.Monitor` (the newest ``limit`` that started at or
after ``since``) and writes two files into a folder:

* ``<name>.json``: :func:`headwater.monitoring.report_series.report_data`: the monitor's
  spec (webhook URLs redacted: alerts.redact_webhook), its runs oldest first
  (``MonitorRun.to_dict()``) and one time series per
  ``(check, subject, target, model_version)`` of ``(window_end, value, threshold, failed)``;
  strict JSON (non-finite floats as strings).
* ``<name>.html``: one page that opens offline (inline style and SVG drawn by
  :mod:`headwater.monitoring.report_svg`; no script, font, image or link): a header (the
  monitor, its subject, checks, thresholds and the last run's status), the latest run's
  findings (failed first, in red; critical before warning before info), **statistics over
  time** (one line chart per series other than ``performance.*``: value, dashed threshold,
  failed points in red), **performance over time** (the ``performance.*`` series) and, for
  a model monitor, **reference vs current** histograms of the features and outputs whose
  drift finding failed in the latest run.

**Histograms.** A drift finding of :mod:`headwater.monitoring.reference_drift` stores the
bucket counts it tested in its details: ``reference_counts`` and ``current_counts`` over
``edges`` (numeric bins; values outside the training range count in the end bins) or
``buckets`` (categories, or the values of a flag, and ``<other>``). Those are drawn as
shares, side by side. A finding without ``current_counts`` (a column missing from the
logs, or a finding written before counts were stored) gets the training reference's
histogram alone, read from the model version's reference artifact (checked against its
SHA-256), and the page says that no current counts were stored. A reference that cannot be
read (missing or altered artifact, unknown version) is named on the page with the error's
message; the rest of the report is still written.

Every name and message is HTML-escaped. Errors: an unknown monitor is a NotFoundError (with
the known names); a monitor without stored runs (in ``since``) a DataError saying to run it
first.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import DataError, HeadwaterError
from headwater.monitoring.report_series import Series, model_version, monitor_series, report_data
from headwater.monitoring.report_svg import histogram_chart, line_chart, moment, number

if TYPE_CHECKING:
    from headwater.definitions.monitor import Monitor
    from headwater.monitoring.findings import Finding
    from headwater.registry.monitor_tables import MonitorRun
    from headwater.store import FeatureStore

ReferenceLookup = Callable[[int | None], Mapping[str, Any] | None]
"""The reference statistics of a model version (None: the latest version), None when the
version has none; raises a HeadwaterError when they cannot be read."""

DRIFT_CHECKS = ("drift.feature", "drift.prediction")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
NO_CURRENT = ("Current counts were not stored in this finding's details (it needs "
              "'current_counts' with 'reference_counts' and 'edges' or 'buckets'): the "
              "training reference alone is drawn.")

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
table{border-collapse:collapse;margin:0.5em 0}th,td{padding:3px 9px;
border-bottom:1px solid #ddd;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#fde2e1}tr.failed td:first-child{font-weight:600;color:#a40000}
.status{padding:1px 7px;border-radius:3px;font-weight:600}.status-ok{background:#dff0d8}
.status-alert{background:#f8c9c7;color:#a40000}.status-error{background:#333;color:#fff}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;border:1px solid #e4e4e4;
padding:6px}figure.failed{border-color:#d62728}figcaption{font-size:0.85em;max-width:380px}
.note{color:#555;font-style:italic}code{background:#f4f4f4;padding:0 3px}"""


def write_monitor_report(store: FeatureStore, name: str, folder: Path, *,
                         since: datetime | None = None, limit: int = 100) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.html`` and ``<folder>/<name>.json`` (module docstring) from
    the newest ``limit`` runs of monitor ``name`` that started at or after ``since``
    (naive: UTC); ``folder`` is created when missing. Returns ``(html, json)`` paths."""
    monitor, runs = _report_runs(store, name, since, limit)
    generated = datetime.now(UTC)
    document = report_data(store.project, monitor.spec(), runs, generated)
    page = render_monitor_html(store.project, monitor, runs, generated_at=generated,
                               reference=_store_references(store, monitor.model)
                               if monitor.model else None)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    html_path, json_path = target / f"{name}.html", target / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n",
                         encoding="utf-8")
    html_path.write_text(page, encoding="utf-8")
    return html_path, json_path


def monitor_report_html(store: FeatureStore, name: str, *, since: datetime | None = None,
                        limit: int = 100) -> str:
    """The HTML report of monitor ``name`` (what :func:`write_monitor_report` writes), as a
    string: the dashboard serves it."""
    monitor, runs = _report_runs(store, name, since, limit)
    return render_monitor_html(store.project, monitor, runs,
                               reference=_store_references(store, monitor.model)
                               if monitor.model else None)


def _report_runs(store: FeatureStore, name: str, since: datetime | None,
                 limit: int) -> tuple[Monitor, list[MonitorRun]]:
    monitor = store.get_monitor(name)
    runs = list(reversed(store.monitor_runs(name, since=since, limit=limit)))
    if not runs:
        window = f" since {since.isoformat()}" if since is not None else ""
        raise DataError(f"monitor '{name}' has no stored runs{window}, so there is nothing "
                        f"to report. Fix: run `headwater monitor run {name}` first"
                        + (", or pass an earlier since" if since is not None else ""))
    return monitor, runs


def render_monitor_html(project: str, monitor: Monitor, runs: Sequence[MonitorRun], *,
                        reference: ReferenceLookup | None = None,
                        generated_at: datetime | None = None) -> str:
    """The HTML page of ``monitor``'s ``runs`` (oldest first, at least one); ``reference``
    gives model versions' reference statistics for the histograms (module docstring)."""
    if not runs:
        raise DataError(f"render_monitor_html: monitor '{monitor.name}' has no runs. Fix: "
                        f"run `headwater monitor run {monitor.name}` first")
    latest = runs[-1]
    series = monitor_series(runs)
    statistics = [s for s in series if not s.performance]
    performance = [s for s in series if s.performance]
    body = [f"<h1>Monitor <code>{escape(monitor.name)}</code></h1>",
            _header(project, monitor, runs), "<h2>Latest run</h2>", _latest(latest),
            "<h2>Statistics over time</h2>",
            _charts(statistics, "No checks other than performance in these runs.")]
    if monitor.model or performance:
        body += ["<h2>Performance over time</h2>",
                 _charts(performance, "No performance findings in these runs.")]
    if monitor.model:
        body += ["<h2>Reference vs current</h2>", _histograms(latest, reference)]
    when = moment(generated_at or datetime.now(UTC))
    body.append(f'<p class="note">Generated {escape(when)}; the same results are in '
                f"<code>{escape(monitor.name)}.json</code>.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Monitor {escape(monitor.name)}</title><style>{_STYLE}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _header(project: str, monitor: Monitor, runs: Sequence[MonitorRun]) -> str:
    from headwater.monitoring.alerts import redact_webhook

    latest = runs[-1]
    thresholds = ", ".join(f"{k} = {number(v)}" for k, v in sorted(monitor.thresholds.items()))
    rows = [("Project", escape(project)), ("Subject", escape(monitor.subject)),
            ("Checks", escape(", ".join(monitor.checks))),
            ("Window", escape(_duration(monitor.window))),
            ("Thresholds", escape(thresholds or "the checks' defaults"))]
    if monitor.freshness is not None:
        rows.append(("Freshness SLO", escape(_duration(monitor.freshness))))
    rows += [("Webhooks", escape(", ".join(redact_webhook(u) for u in monitor.webhooks)
                                 or "none")),
             ("Retrain", "yes" if monitor.retrain else "no"),
             ("Runs shown", escape(f"{len(runs)}, started {moment(runs[0].started_at)} to "
                                   f"{moment(latest.started_at)}")),
             ("Last status", _status(latest.status) + " " + escape(_window(latest)))]
    return ('<table class="summary">' + "".join(
        f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>")


def _latest(run: MonitorRun) -> str:
    lines = [f"<p>Run {run.id}, window {escape(_window(run))}: {_status(run.status)}, "
             f"{len(run.failed)} of {len(run.findings)} findings failed, "
             f"{run.alerts_sent} alert(s) sent.</p>"]
    if run.error:
        lines.append(f'<p class="error">The run raised: {escape(run.error)}</p>')
    ordered = sorted(run.findings, key=lambda f: (not f.failed,
                                                  SEVERITY_ORDER.get(f.severity, 3)))
    rows = []
    for f in ordered:
        cells = [escape(f.check), escape(f.subject), escape(f.target),
                 number(f.value), number(f.threshold), "yes" if f.failed else "no",
                 escape(f.severity), escape(f.message)]
        classes = ["", "", "", "num", "num", "", "", ""]
        rows.append(f'<tr class="{"failed" if f.failed else "ok"}">' + "".join(
            f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
            for c, v in zip(classes, cells, strict=True)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("check", "subject", "target", "value",
                                              "threshold", "failed", "severity", "message"))
    lines.append(f'<table class="findings"><thead><tr>{head}</tr></thead><tbody>'
                 + "".join(rows) + "</tbody></table>")
    return "\n".join(lines)


def _charts(series: Sequence[Series], empty: str) -> str:
    if not series:
        return f'<p class="note">{escape(empty)}</p>'
    figures = []
    for s in series:
        hollow = any(p.value is None or not math.isfinite(p.value) for p in s.points)
        caption = (f"{s.label}: {len(s.points)} point(s), {s.failed} failed; red: failed, "
                   "dashed: threshold" + ("; hollow: no finite value (none measured at the "
                                         "bottom, infinite at the edge)" if hollow else ""))
        figures.append(f'<figure class="{"failed" if s.failed else "ok"}">'
                       f"<figcaption>{escape(caption)}</figcaption>{line_chart(s)}</figure>")
    return '<div class="charts">' + "".join(figures) + "</div>"


def _histograms(run: MonitorRun, reference: ReferenceLookup | None) -> str:
    drifted = [f for f in run.findings if f.failed and f.check in DRIFT_CHECKS and f.target]
    if not drifted:
        return '<p class="note">No feature or prediction drifted in the latest run.</p>'
    references: dict[int | None, Mapping[str, Any] | str | None] = {}
    figures = []
    for finding in drifted:
        chart, note = _from_details(finding)
        if chart is None and note is None:
            chart, note = _from_reference(finding, reference, references)
        caption = f"{finding.check} · {finding.target}: {finding.message}"
        figures.append('<figure class="failed"><figcaption>' + escape(caption)
                       + (f'<br><span class="note">{escape(note)}</span>' if note else "")
                       + "</figcaption>" + (chart or "") + "</figure>")
    return '<div class="charts">' + "".join(figures) + "</div>"


def _from_details(finding: Finding) -> tuple[str | None, str | None]:
    """The reference vs current chart from the finding's own counts; (None, None) when it
    has no current counts, (None, why) when they do not fit their buckets."""
    details = finding.details
    if details.get("current_counts") is None:
        return None, None
    current = _numbers(details.get("current_counts"))
    ref = _numbers(details.get("reference_counts"))
    labels = _labels(details)
    if (current is None or ref is None or labels is None
            or not len(current) == len(ref) == len(labels)):
        return None, ("The finding's details hold current counts that do not match its "
                      "reference counts and buckets, so they are not drawn.")
    return histogram_chart(f"{finding.target}: reference vs current", labels, ref,
                           current), None


def _from_reference(finding: Finding, lookup: ReferenceLookup | None,
                    cache: dict[int | None, Mapping[str, Any] | str | None]
                    ) -> tuple[str | None, str]:
    """The training reference's histogram of the finding's column, and the note why no
    current counts are drawn (or why nothing is)."""
    version = model_version(finding)
    if lookup is None:
        return None, NO_CURRENT + " No model registry was given to read the reference from."
    if version not in cache:
        try:
            cache[version] = lookup(version)
        except HeadwaterError as exc:  # shown on the page: the rest of the report stands
            cache[version] = f"The reference statistics could not be read: {exc}"
    loaded = cache[version]
    if isinstance(loaded, str):
        return None, loaded
    which = "" if version is None else f" of version {version}"
    if loaded is None:
        return None, f"The model version{which} has no reference statistics."
    stats = (loaded.get("features", {}).get(finding.target)
             if finding.check == "drift.feature" else loaded.get(finding.target))
    labels, counts = _reference_buckets(stats)
    if labels is None or counts is None:
        return None, f"The reference{which} holds no histogram of '{finding.target}'."
    return histogram_chart(f"{finding.target}: training reference{which}", labels,
                           counts), NO_CURRENT


def _reference_buckets(stats: Any) -> tuple[list[str] | None, list[float] | None]:
    """Bucket labels and counts of one column of a reference (numeric histogram, or top
    categories and ``<other>``)."""
    if not isinstance(stats, Mapping):
        return None, None
    histogram = stats.get("histogram")
    if stats.get("kind") == "numeric" and isinstance(histogram, Mapping):
        labels = _labels(histogram)
        counts = _numbers(histogram.get("counts"))
        if labels is not None and counts is not None and len(counts) == len(labels):
            return labels, counts
    if stats.get("kind") == "categorical" and isinstance(stats.get("top"), list):
        top = stats["top"]
        return ([str(t["value"]) for t in top] + ["<other>"],
                [float(t["count"]) for t in top] + [float(stats.get("other", 0))])
    return None, None


def _labels(details: Mapping[str, Any]) -> list[str] | None:
    """Bucket labels: ``[lo, hi)`` per pair of ``edges`` (the last closed), else the
    ``buckets`` as given."""
    edges = _numbers(details.get("edges"))
    if edges is not None and len(edges) > 1:
        last = len(edges) - 2
        return [f"[{number(lo)}, {number(hi)}{']' if i == last else ')'}"
                for i, (lo, hi) in enumerate(itertools.pairwise(edges))]
    buckets = details.get("buckets")
    if isinstance(buckets, list) and buckets:
        return [str(b) for b in buckets]
    return None


def _numbers(values: Any) -> list[float] | None:
    """``values`` when they are a list of numbers, else None."""
    if isinstance(values, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values
    return None


def _duration(span: timedelta) -> str:
    """``2 days``, ``6 hours``, ``90 minutes``; other spans as Python prints them."""
    for unit, size in (("day", timedelta(days=1)), ("hour", timedelta(hours=1)),
                       ("minute", timedelta(minutes=1)), ("second", timedelta(seconds=1))):
        if span % size == timedelta(0):
            count = span // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return str(span)


def _status(status: str) -> str:
    return f'<span class="status status-{escape(status)}">{escape(status)}</span>'


def _window(run: MonitorRun) -> str:
    if run.window_start is None or run.window_end is None:
        return "(no window)"
    return f"[{moment(run.window_start)}, {moment(run.window_end)})"


def _store_references(store: FeatureStore, model: str) -> ReferenceLookup:
    """Reference statistics of ``model``'s versions, read through the artifact store
    (which refuses bytes whose SHA-256 differs from the registry's)."""

    def lookup(version: int | None) -> Mapping[str, Any] | None:
        if version is None:
            versions = store.models.versions(model)
            if not versions:
                raise DataError(f"model '{model}' has no registered version")
            chosen = max(versions, key=lambda v: v.version)
        else:
            chosen = store.models.get(f"{model}:{version}")
        if chosen.reference is None:
            return None
        loaded: Mapping[str, Any] = json.loads(store.models.artifacts.get(chosen.reference))
        return loaded

    return lookup


__all__ = ["ReferenceLookup", "render_monitor_html", "write_monitor_report"]
