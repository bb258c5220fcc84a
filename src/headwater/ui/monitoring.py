"""The monitoring page: every monitor's last run, and one monitor's results over time.

Without a query the page lists every registered monitor (subject, checks, window, its last
run: when, status, failed findings, alerts sent) and the latest runs of all monitors, those
of monitors deleted since included.

``?monitor=NAME`` shows one monitor: its definition (webhooks by host only: their paths
often hold credentials), the latest run's findings (failed first, then by severity:
critical, warning, info), a line chart per series of findings over its last
:data:`RUNS_SHOWN` runs (statistics first, then ``performance.*``; built by
:func:`headwater.monitoring.report_series.monitor_series` and drawn by
:func:`headwater.monitoring.report_svg.line_chart`, as the monitor's HTML report does) and
the runs themselves, and a link to the monitor's full report (``/report``, the page
``headwater monitor report NAME`` writes, with the reference-vs-current histograms). An
unknown name is the store's NotFoundError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from headwater.monitoring.report_html import SEVERITY_ORDER
from headwater.monitoring.report_series import Series, monitor_series
from headwater.monitoring.report_svg import WIDTH, line_chart, number
from headwater.ui.html import badge, esc, link, table, when

if TYPE_CHECKING:
    from headwater.definitions import Monitor
    from headwater.monitoring.findings import Finding
    from headwater.registry.monitor_tables import MonitorRun
    from headwater.store import FeatureStore

FIGURE = f'class="card" style="margin:0;width:{WIDTH + 22}px"'
"""A chart's figure: a card as wide as the chart, its caption wrapped to it."""
PAGE = "/monitoring"
RUNS_SHOWN = 100
"""Runs of one monitor drawn and listed (newest)."""
RECENT_RUNS = 20
"""Runs of all monitors listed on the overview."""
STATUS_KIND = {"ok": "ok", "alert": "bad", "error": "warn"}


def render(store: FeatureStore, query: Mapping[str, str]) -> str:
    """The page's body: every monitor, or the one ``query["monitor"]`` names."""
    name = query.get("monitor")
    if name:
        return _detail(store, store.get_monitor(name))
    return _overview(store)


def status(text: str) -> str:
    """A run status as a coloured badge."""
    return badge(text, STATUS_KIND.get(text, ""))


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Findings failed first, then by severity (critical first), else as stored."""
    return sorted(findings, key=lambda f: (not f.failed, SEVERITY_ORDER.get(f.severity, 3)))


def _overview(store: FeatureStore) -> str:
    monitors = sorted(store.list_monitors(), key=lambda m: m.name)
    if not monitors:
        return ('<p class="muted">No monitor is registered yet: define an hw.Monitor in the '
                "repo and run <code>headwater apply</code>.</p>")
    rows = []
    for monitor in monitors:
        runs = store.monitor_runs(monitor.name, limit=1)
        last = runs[0] if runs else None
        rows.append([
            link(PAGE, monitor.name, monitor=monitor.name), _subject(monitor),
            esc(", ".join(monitor.checks)), esc(_span(monitor.window)),
            "never run" if last is None else _window(last),
            "—" if last is None else status(last.status),
            "—" if last is None else esc(f"{len(last.failed)} of {len(last.findings)}"),
            "—" if last is None else esc(last.alerts_sent), esc(monitor.description)])
    names = {m.name for m in monitors}
    recent = [[when(r.started_at),
               link(PAGE, r.monitor, monitor=r.monitor) if r.monitor in names
               else esc(r.monitor) + ' <span class="muted">(deleted)</span>',
               _window(r), status(r.status), _failed_names(r), esc(r.alerts_sent)]
              for r in store.monitor_runs(limit=RECENT_RUNS)]
    return (table(["monitor", "subject", "checks", "window", "last run window", "status",
                   "failed findings", "alerts sent", "description"], rows)
            + "<h2>Latest runs</h2>"
            + table(["started", "monitor", "window", "status", "failed", "alerts sent"],
                    recent, empty="no monitor has run yet"))


def _detail(store: FeatureStore, monitor: Monitor) -> str:
    runs = store.monitor_runs(monitor.name, limit=RUNS_SHOWN)
    parts = [f'<p>{link(PAGE, "All monitors")}</p>',
             f"<h2>Monitor {esc(monitor.name)}</h2>"]
    if monitor.description:
        parts.append(f"<p>{esc(monitor.description)}</p>")
    parts.append(_definition(monitor))
    command = f"headwater monitor run {monitor.name}"
    if not runs:
        parts.append(f'<p class="muted">No run yet: run <code>{esc(command)}</code>.</p>')
        return "".join(parts)
    latest = runs[0]
    series = monitor_series(list(reversed(runs)))
    statistics = [s for s in series if not s.performance]
    performance = [s for s in series if s.performance]
    parts += ["<h3>Latest run</h3>", _latest(latest), "<h3>Statistics over time</h3>",
              _charts(statistics, "No checks other than performance in these runs.")]
    if monitor.model or performance:
        parts += ["<h3>Performance over time</h3>",
                  _charts(performance, "No performance findings in these runs.")]
    parts += [f"<h3>Runs ({esc(len(runs))} newest)</h3>", _runs(runs),
              f'<p>{link("/report", "The latest report", monitor=monitor.name)}: these runs '
              "with reference against current histograms of drifted columns (<code>headwater "
              f"monitor report {esc(monitor.name)}</code> writes it with a JSON of the same "
              "results).</p>"]
    return "".join(parts)


def _definition(monitor: Monitor) -> str:
    thresholds = ", ".join(f"{k} = {number(v)}" for k, v in sorted(monitor.thresholds.items()))
    hosts = sorted({urlsplit(u).hostname or "?" for u in monitor.webhooks})
    rows = [("subject", _subject(monitor)), ("checks", esc(", ".join(monitor.checks))),
            ("window", esc(_span(monitor.window)))]
    if monitor.reference_window is not None:
        rows.append(("reference window", esc(_span(monitor.reference_window))))
    if monitor.freshness is not None:
        rows.append(("freshness", esc(_span(monitor.freshness))))
    rows += [("thresholds", esc(thresholds or "the checks' defaults")),
             ("webhooks", esc(f"{len(monitor.webhooks)}"
                              + (f" ({', '.join(hosts)})" if hosts else ""))),
             ("retrain", "yes" if monitor.retrain else "no"),
             ("owner", esc(monitor.owner or "—")),
             ("tags", esc(", ".join(f"{k}={v}" for k, v in sorted(monitor.tags.items()))
                          or "—"))]
    return table(["field", "value"], [[esc(k), v] for k, v in rows])


def _latest(run: MonitorRun) -> str:
    head = (f"<p>Run {esc(run.id)} started {when(run.started_at)}, window {_window(run)}: "
            f"{status(run.status)}, {esc(len(run.failed))} of {esc(len(run.findings))} "
            f"findings failed, {esc(run.alerts_sent)} alert(s) sent.</p>")
    if run.error:
        head += f'<p>{badge("error", "bad")} the run raised: {esc(run.error)}</p>'
    rows = [[esc(f.check), esc(f.subject), esc(f.target), esc(number(f.value)),
             esc(number(f.threshold)), badge("failed", "bad") if f.failed else "no",
             esc(f.severity), esc(f.message)] for f in ordered(run.findings)]
    return head + table(["check", "subject", "target", "value", "threshold", "failed",
                         "severity", "message"], rows, empty="the run made no finding")


def _charts(series: Sequence[Series], empty: str) -> str:
    if not series:
        return f'<p class="muted">{esc(empty)}</p>'
    figures = [f"<figure {FIGURE}><figcaption>{esc(s.label)}: {esc(len(s.points))} "
               f"point(s), {esc(s.failed)} failed</figcaption>{line_chart(s)}</figure>"
               for s in series]
    return '<div class="cards">' + "".join(figures) + "</div>"


def _runs(runs: Sequence[MonitorRun]) -> str:
    rows = [[esc(r.id), when(r.started_at), _window(r), status(r.status),
             esc(len(r.findings)), _failed_names(r), esc(r.alerts_sent), esc(r.error or "")]
            for r in runs]
    return table(["run", "started", "window", "status", "findings", "failed", "alerts sent",
                  "error"], rows)


def _subject(monitor: Monitor) -> str:
    if monitor.model:
        return "model " + link("/models", monitor.model, model=monitor.model)
    if monitor.feature_view:
        return "feature view " + esc(monitor.feature_view)
    return "feature service " + esc(monitor.feature_service)


def _failed_names(run: MonitorRun) -> str:
    names = [f"{f.check}:{f.target}" if f.target else f.check for f in run.failed]
    return esc(", ".join(dict.fromkeys(names))) or "—"


def _window(run: MonitorRun) -> str:
    if run.window_start is None or run.window_end is None:
        return "—"
    return f"{when(run.window_start)} to {when(run.window_end)}"


def _span(span: timedelta) -> str:
    """``1 day``, ``6 hours``, ``90 minutes``; other spans as Python prints them."""
    for unit, size in (("day", timedelta(days=1)), ("hour", timedelta(hours=1)),
                       ("minute", timedelta(minutes=1))):
        if span % size == timedelta(0):
            count = span // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return str(span)
