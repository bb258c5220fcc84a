"""What every monitoring check reports: a list of :class:`Finding`.

A check (drift, data quality, model performance, training/serving skew) looks at one
*subject* (``"feature_view:driver_stats"``, ``"model:driver_conversion"``) over one time
window and gives one finding per thing it measured: a column's null rate, a metric's value,
a feature's mismatch rate. A finding holds the measured ``value``, the ``threshold`` it was
held against and whether it ``failed``; ``message`` says in words what was found and, when
it failed, what to look at. Monitors (:class:`headwater.Monitor`) store findings in the
registry database, alert on the failed ones and draw them over time in reports, so every
check speaks this one shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One measurement of a check.

    ``check``: which check and what it measured, dotted (``"drift"``,
    ``"quality.null_rate"``, ``"performance.roc_auc"``, ``"skew.mismatch_rate"``);
    ``subject``: what was checked (``"feature_view:<name>"``, ``"feature_service:<name>"``,
    ``"model:<name>"``); ``target``: the column, feature or metric (``""`` for the subject
    as a whole, e.g. its volume); ``value``: what was measured (None when nothing could be,
    e.g. an empty window, which then fails); ``threshold``: the bound ``value`` was held
    against (None when the check has none); ``failed``: whether it broke the bound;
    ``severity``: how loudly a failure alerts; ``window_start``/``window_end``: the time
    window looked at (UTC, end exclusive; None when the check had no window); ``details``:
    JSON-able extras (a p-value, the reference value, counts)."""

    check: str
    subject: str
    target: str
    value: float | None
    threshold: float | None
    failed: bool
    message: str
    severity: str = "warning"
    window_start: datetime | None = None
    window_end: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding.severity must be one of {SEVERITIES}, "
                             f"not {self.severity!r}")
        if self.value is not None and math.isnan(self.value):
            raise ValueError(f"Finding {self.check} of {self.subject}/{self.target}: value is "
                             "NaN; report None (nothing measured) with failed=True instead")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: datetimes as ISO 8601 strings."""
        out = asdict(self)
        out["details"] = dict(self.details)
        for name in ("window_start", "window_end"):
            value = getattr(self, name)
            out[name] = None if value is None else value.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        for name in ("window_start", "window_end"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["details"] = dict(values.get("details") or {})
        return cls(**values)


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON takes it: datetimes as ISO 8601, non-finite floats as the
    strings ``"inf"``, ``"-inf"``, ``"nan"``, bytes as hex, numpy scalars as Python
    numbers, mappings (string keys) and sequences recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return json_safe(item())  # a numpy scalar
    return value


class HasFindings:
    """The results of checks (and stored monitor runs) hold ``findings``; this gives them
    ``failed``, the ones that failed, in order."""

    findings: tuple[Finding, ...]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.failed]


def failed(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that failed, in order."""
    return [f for f in findings if f.failed]


__all__ = ["SEVERITIES", "Finding", "HasFindings", "failed", "json_safe"]
