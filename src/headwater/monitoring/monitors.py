"""Running a :class:`~headwater.definitions.monitor.Monitor`: checks, storage, alerts.

:func:`run_monitor` runs each check of the monitor on the window ``[end - window, end)``:

==============  ==========================================================================
check           what it calls
==============  ==========================================================================
quality         :func:`headwater.monitoring.quality.check_feature_view` (each view of a
                feature service)
drift           :func:`headwater.monitoring.reference_drift.check_model_drift`
performance     :func:`headwater.monitoring.performance.check_performance`
skew            :func:`headwater.monitoring.skew.check_skew`
==============  ==========================================================================

and gathers their findings. A check that cannot run on the data it finds (a Headwater error:
no predictions logged, a label source that cannot be read, an unreachable store) gives one
failed, critical finding ``monitor.<check>`` carrying the error's message, and the other
checks still run: a monitor must say that it could not look. Any other exception is a bug:
the run is stored with status ``error`` and the exception propagates. A monitor whose
subject is deleted cannot stay registered (the registry refuses the dangling reference).

The run is stored in the registry database (``hw_monitor_runs``): status ``ok`` when no
finding failed, else ``alert``. For an alert, each failed finding is logged (WARNING, or
CRITICAL for critical findings) and the failed findings are POSTed as JSON to each of the
monitor's webhooks; a webhook that cannot be reached is logged and counted, and never fails
the run (the findings are stored either way). With ``retrain=True``, a failed drift or
performance finding with a measured value starts
:func:`headwater.monitoring.retrain.retrain`, whose outcome is one more finding
(``monitor.retrain``; failed when no candidate was promoted, or when it could not be judged,
e.g. a metric undefined on the fresh test rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureService
from headwater.definitions.monitor import Monitor
from headwater.errors import DataError, HeadwaterError
from headwater.monitoring.findings import Finding

if TYPE_CHECKING:
    from headwater.monitoring.profile import Profile
    from headwater.registry.monitor_tables import MonitorRun
    from headwater.store import FeatureStore

_log = logging.getLogger("headwater.monitoring")

RETRAIN_ON = ("drift.", "performance.")
"""A model monitor with ``retrain=True`` retrains when a finding of these checks failed with
a measured value (a drift or a degradation; not a check that could not measure)."""


def run_monitor(store: FeatureStore, name: str, *, end: datetime | None = None,
                alerts: bool = True) -> MonitorRun:
    """Run the registered monitor ``name`` on ``[end - window, end)`` (``end``: now, UTC),
    store the run, alert on failed findings (unless ``alerts`` is False) and return it."""
    from headwater.monitoring.alerts import alert_payload, log_alert, send_webhook
    from headwater.registry.monitor_tables import monitor_tables
    from headwater.types import to_utc

    monitor = store.registry.typed(Monitor, name)
    end = to_utc(end) if end is not None else datetime.now(UTC)
    start = end - monitor.window
    started = datetime.now(UTC)
    backend = monitor_tables(store.registry.backend)
    findings: list[Finding] = []
    profiles: dict[str, Profile] = {}
    try:
        for check in monitor.checks:
            findings.extend(_run_check(store, monitor, check, (start, end), profiles))
        if monitor.retrain and any(f.failed and f.value is not None
                                   and f.check.startswith(RETRAIN_ON) for f in findings):
            findings.extend(_run_check(store, monitor, "retrain", (start, end), profiles))
    except BaseException as exc:  # any failure, a bug too: stored as an error run, re-raised
        backend.record_monitor_run(
            store.project, name, started_at=started, finished_at=datetime.now(UTC),
            window_start=start, window_end=end, status="error", findings=findings,
            error=f"{type(exc).__name__}: {exc}", profiles=profiles)
        raise
    failed = [f for f in findings if f.failed]
    sent = 0
    if failed and alerts:
        log_alert(_log, store.project, name, failed)
        payload = alert_payload(store.project, name, (start, end), failed)
        for url in monitor.webhooks:
            try:
                result = send_webhook(url, payload)
            except HeadwaterError as exc:  # a URL the definition let through: log, go on
                _log.error("monitor '%s': no alert sent to a webhook: %s", name, exc)
                continue
            if result.delivered:
                sent += 1
            else:
                _log.error("monitor '%s': the alert did not reach %s: %s", name, result.url,
                           result.error)
    return backend.record_monitor_run(
        store.project, name, started_at=started, finished_at=datetime.now(UTC),
        window_start=start, window_end=end, status="alert" if failed else "ok",
        findings=findings, alerts_sent=sent, profiles=profiles)


def merged_profile(runs: Sequence[MonitorRun], key: str | None = None) -> Profile:
    """The profiles ``key`` of ``runs`` merged into one (their windows combined): ``key``
    may be left out when the runs profile one thing only. DataError when no run holds that
    profile, or ``key`` is needed and missing."""
    keys = sorted({k for run in runs for k in run.profiles})
    if key is None and len(keys) > 1:
        raise DataError(f"the runs hold profiles of {keys}. Fix: pass key= one of them")
    key = key if key is not None else (keys[0] if keys else "")
    found = [run.profiles[key] for run in runs if key in run.profiles]
    if not found:
        raise DataError(f"no run holds a profile of {key!r} (profiles held: {keys or 'none'})."
                        " Fix: run a model monitor with the drift check on windows that "
                        "logged predictions, or pass another key")
    merged = found[0]
    for other in found[1:]:
        merged = merged.merge(other)
    return merged


def _run_check(store: FeatureStore, monitor: Monitor, check: str,
               window: tuple[datetime, datetime], profiles: dict[str, Profile]
               ) -> tuple[Finding, ...]:
    """The findings of one check (which may add ``profiles`` of what it read), or the
    failed finding saying why it could not run."""
    start, end = window
    try:
        return _CHECKS[check](store, monitor, start, end, profiles)
    except HeadwaterError as exc:
        return (Finding(f"monitor.{check}", monitor.subject, "", None, None, True,
                        f"the {check} check of monitor '{monitor.name}' could not run: {exc}",
                        severity="critical", window_start=start, window_end=end,
                        details={"error": type(exc).__name__}),)


def _quality(store: FeatureStore, monitor: Monitor, start: datetime, end: datetime,
             profiles: dict[str, Profile]) -> tuple[Finding, ...]:
    from headwater.monitoring.quality import check_feature_view
    from headwater.monitoring.quality_rules import QualityRules

    options: dict[str, Any] = {"freshness": monitor.freshness}
    for key in ("max_null_rate", "max_out_of_range"):
        if key in monitor.thresholds:
            options[key] = monitor.thresholds[key]
    if "min_rows" in monitor.thresholds:
        options["min_rows"] = int(monitor.thresholds["min_rows"])
    rules = QualityRules(**options)
    found: list[Finding] = []
    for view in _views(store, monitor):
        found.extend(check_feature_view(store, view, start=start, end=end,
                                        rules=rules).findings)
    return tuple(found)


def _drift(store: FeatureStore, monitor: Monitor, start: datetime, end: datetime,
           profiles: dict[str, Profile]) -> tuple[Finding, ...]:
    from headwater.monitoring.reference_drift import check_model_drift
    from headwater.monitoring.view_drift import check_view_drift

    if not monitor.model:
        last = store.monitor_runs(monitor.name, limit=1)
        found: list[Finding] = []
        for view in _views(store, monitor):
            previous = last[0].profiles.get(view) if last else None
            result = check_view_drift(
                store, view, start=start, end=end, reference=monitor.reference_window,
                thresholds=monitor.drift_thresholds or None,
                fdr=monitor.threshold("fdr", 0.01),
                edges=previous.edges() if previous is not None else None)
            found.extend(result.findings)
            if result.profile is not None:
                profiles[view] = result.profile
        return tuple(found)

    model = check_model_drift(store, monitor.model, start=start, end=end,
                              fdr=monitor.threshold("fdr", 0.01),
                              thresholds=monitor.drift_thresholds or None)
    profiles.update({f"{monitor.model}:{v}": p for v, p in model.profiles.items()})
    return model.findings


def _views(store: FeatureStore, monitor: Monitor) -> list[str]:
    """The feature views a view or service monitor watches (a service's on-demand views
    compute their values, they store nothing to check)."""
    if monitor.feature_view:
        return [monitor.feature_view]
    stored = {v.name for v in store.list_feature_views()}
    service = store.registry.typed(FeatureService, monitor.feature_service)
    return [p.view for p in service.features if p.view in stored]


def _performance(store: FeatureStore, monitor: Monitor, start: datetime, end: datetime,
                 profiles: dict[str, Profile]) -> tuple[Finding, ...]:
    from headwater.definitions.model import CLASSIFICATION_METRICS, REGRESSION_METRICS
    from headwater.monitoring.performance import DEFAULT_MIN_LABELS, check_performance

    drop = monitor.thresholds.get("allowed_drop")
    allowed = (None if drop is None
               else dict.fromkeys((*CLASSIFICATION_METRICS, *REGRESSION_METRICS), drop))
    return check_performance(
        store, monitor.model, start=start, end=end, window=monitor.window,
        min_labels=int(monitor.threshold("min_labels", DEFAULT_MIN_LABELS)),
        allowed_drop=allowed).findings


def _skew(store: FeatureStore, monitor: Monitor, start: datetime, end: datetime,
          profiles: dict[str, Profile]) -> tuple[Finding, ...]:
    from headwater.monitoring.skew import DEFAULT_MAX_MISMATCH_RATE, check_skew

    return check_skew(store, monitor.model, start=start, end=end,
                      max_mismatch_rate=monitor.threshold("max_mismatch_rate",
                                                          DEFAULT_MAX_MISMATCH_RATE)).findings


def _retrain(store: FeatureStore, monitor: Monitor, start: datetime, end: datetime,
             profiles: dict[str, Profile]) -> tuple[Finding, ...]:
    from headwater.monitoring.retrain import retrain

    return (retrain(store, monitor.model, start=start, end=end).finding(monitor.subject),)


_CHECKS: dict[str, Callable[[FeatureStore, Monitor, datetime, datetime, dict[str, Profile]],
                            tuple[Finding, ...]]] = {
    "quality": _quality, "drift": _drift, "performance": _performance, "skew": _skew,
    "retrain": _retrain}
