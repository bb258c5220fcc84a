"""The time series of a monitor's stored runs, and the report's strict JSON.

A monitor run stores one :class:`~headwater.monitoring.findings.Finding` per check and
target; over many runs each kind of finding becomes a time series that the report draws
(:mod:`headwater.monitoring.report_html`). :func:`monitor_series` groups the findings of
runs (given oldest first) into one :class:`Series` per key ``(check, subject, target,
model_version)``:

* ``subject`` is part of the key because a feature-service monitor checks several views
  whose findings share checks and targets (``quality.volume`` of each view);
* ``model_version`` (``details["model_version"]`` when it is an integer, else None) is part
  of it because a model monitor checks each version that served in a window against that
  version's own reference and training metrics: two versions are two series, not one line
  zig-zagging between two references.

Series are ordered by first appearance (run order, then finding order within a run). A
:class:`Point` is one finding: its time is the finding's ``window_end``, else the run's
``window_end``, else the run's ``started_at`` (a run always has one); ``value``,
``threshold`` and ``failed`` are the finding's, unchanged (value None: nothing was
measured). Points are sorted by time, findings of the same time in run order.

**Strict JSON.** JSON has no NaN or infinity; :func:`strict` spells non-finite floats as the
strings ``"inf"``, ``"-inf"`` and ``"nan"`` (as the alert payload does), so
``json.dumps(..., allow_nan=False)`` accepts the result and no number turns silently into
a null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.monitoring.findings import Finding
    from headwater.registry.monitor_tables import MonitorRun

FORMAT_VERSION = 1
"""The version of the report JSON layout (:func:`report_data`)."""

PERFORMANCE_PREFIX = "performance."


@dataclass(frozen=True)
class Point:
    """One finding of a series: when (``window_end``), the run it came from, and its
    ``value``, ``threshold`` and ``failed`` flag, as stored."""

    run_id: int
    window_end: datetime
    value: float | None
    threshold: float | None
    failed: bool
    severity: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (strict: see :func:`strict`); the time as ISO 8601."""
        return {"run_id": self.run_id, "window_end": self.window_end.isoformat(),
                "value": strict(self.value), "threshold": strict(self.threshold),
                "failed": self.failed, "severity": self.severity}


@dataclass(frozen=True)
class Series:
    """The findings of one ``(check, subject, target, model_version)`` over the runs."""

    check: str
    subject: str
    target: str
    model_version: int | None
    points: tuple[Point, ...]

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        return (self.check, self.subject, self.target, self.model_version)

    @property
    def performance(self) -> bool:
        """Whether this is a model metric (``performance.*``), drawn apart."""
        return self.check.startswith(PERFORMANCE_PREFIX)

    @property
    def label(self) -> str:
        """How the report names it: ``check · target (subject, version n)``."""
        what = f"{self.check} · {self.target}" if self.target else self.check
        where = self.subject + ("" if self.model_version is None
                                else f", version {self.model_version}")
        return f"{what} ({where})"

    @property
    def failed(self) -> int:
        """How many of its points failed."""
        return sum(p.failed for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (strict)."""
        return {"check": self.check, "subject": self.subject, "target": self.target,
                "model_version": self.model_version,
                "points": [p.to_dict() for p in self.points]}


def model_version(finding: Finding) -> int | None:
    """The model version a finding is about (``details["model_version"]``), or None."""
    version = finding.details.get("model_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def monitor_series(runs: Sequence[MonitorRun]) -> list[Series]:
    """One :class:`Series` per ``(check, subject, target, model_version)`` of the findings
    of ``runs`` (oldest first); see the module docstring for keys and order."""
    grouped: dict[tuple[str, str, str, int | None], list[tuple[int, Point]]] = {}
    order = 0
    for run in runs:
        for finding in run.findings:
            at = finding.window_end or run.window_end or run.started_at
            point = Point(run.id, at, finding.value, finding.threshold, finding.failed,
                          finding.severity, finding.message)
            key = (finding.check, finding.subject, finding.target, model_version(finding))
            grouped.setdefault(key, []).append((order, point))
            order += 1
    return [Series(*key, tuple(p for _, p in sorted(points, key=lambda o: (o[1].window_end,
                                                                           o[0]))))
            for key, points in grouped.items()]


def report_data(project: str, definition: Mapping[str, Any], runs: Sequence[MonitorRun],
                generated_at: datetime) -> dict[str, Any]:
    """The report's JSON document (strict)::

        {"format": 1, "project": ..., "monitor": name, "generated_at": ISO 8601,
         "definition": the monitor's spec (webhook URLs redacted: alerts.redact_webhook),
         "runs": [MonitorRun.to_dict(), ...]            # oldest first, as given
         "series": [{"check", "subject", "target", "model_version",
                     "points": [{"run_id", "window_end", "value", "threshold",
                                 "failed", "severity"}, ...]}, ...]}
    """
    from headwater.monitoring.alerts import redact_webhook

    spec = dict(definition)
    if isinstance(spec.get("webhooks"), list | tuple):
        spec["webhooks"] = [redact_webhook(str(u)) for u in spec["webhooks"]]
    document = {
        "format": FORMAT_VERSION, "project": project, "monitor": spec.get("name"),
        "generated_at": generated_at.isoformat(), "definition": spec,
        "runs": [run.to_dict() for run in runs],
        "series": [s.to_dict() for s in monitor_series(runs)],
    }
    result: dict[str, Any] = strict(document)
    return result


def strict(value: Any) -> Any:
    """``value`` with non-finite floats as ``"inf"``, ``"-inf"`` or ``"nan"``, tuples as
    lists and mapping keys as strings, so that strict JSON can hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


__all__ = ["FORMAT_VERSION", "Point", "Series", "model_version", "monitor_series",
           "report_data", "strict"]
