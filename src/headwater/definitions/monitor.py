"""Monitors: checks of a model, a feature view or a feature service, run on a schedule.

A :class:`Monitor` names one *subject* and the checks to run on it; each run looks at the
time window ``[end - window, end)`` (``end``: the run's scheduled time, or now):

* a **model** (``model=``): ``"drift"``, its served inputs and predictions against the
  reference statistics of the training set (:mod:`headwater.monitoring.reference_drift`);
  ``"performance"``, its logged predictions joined with the labels that arrived, against
  the version's training metrics (:mod:`headwater.monitoring.performance`); ``"skew"``,
  what was served against the offline recomputation (:mod:`headwater.monitoring.skew`).
  Default: all three.
* a **feature view** (``feature_view=``): ``"quality"``, schema, null rates, value ranges,
  volume and freshness against ``freshness`` (:mod:`headwater.monitoring.quality`); and, when
  asked for, ``"drift"``: the window's rows against those of the ``reference_window``
  before it (default: as long as ``window``; :mod:`headwater.monitoring.view_drift`).
  Default: quality.
* a **feature service** (``feature_service=``): the same checks of each of its views.

``thresholds`` override the checks' documented defaults by name (:data:`THRESHOLDS`), e.g.
``{"max_mismatch_rate": 0.05, "allowed_drop": 0.02}``; ``"drift.<column>"`` or
``"drift.numeric"`` / ``"drift.categorical"`` set the drift check's effect-size threshold
(PSI for numeric columns, Jensen-Shannon for categorical ones) of one column or kind. A run
stores its findings in the registry database; when one fails it is logged and POSTed as JSON
to each of ``webhooks``. With ``retrain=True`` a model monitor whose drift or performance
check measured a failure (not one that could not measure: no traffic, no labels) trains a
candidate version and promotes it only if it beats the version in production on the same
fresh test window (:mod:`headwater.monitoring.retrain`).

Schedule a monitor with a :class:`~headwater.definitions.job.Job` of action ``"monitor"``,
or run it with ``headwater monitor run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from headwater.definitions.base import Definition, check_identifier, check_tags, spec_type
from headwater.errors import DefinitionError

MODEL_CHECKS = ("drift", "performance", "skew")
VIEW_CHECKS = ("quality", "drift")
DEFAULT_VIEW_CHECKS = ("quality",)

THRESHOLDS: dict[str, str] = {
    "fdr": "drift: false discovery rate across columns, in (0, 1) (default 0.01)",
    "max_mismatch_rate": "skew: largest share of mismatched served values (default 0.01)",
    "allowed_drop": "performance: largest drop of every metric from its training value",
    "min_labels": "performance: fewest labelled predictions for a window's metrics "
                  "(default 100)",
    "max_null_rate": "quality: largest null rate of a column",
    "max_out_of_range": "quality: largest share of values outside the expected range "
                        "(default 0)",
    "min_rows": "quality: fewest rows in the window (default 1)",
}
"""The thresholds a monitor may set, with what each bounds (and ``drift.<column or kind>``)."""
RATES = ("max_mismatch_rate", "max_null_rate", "max_out_of_range")
COUNTS = ("min_labels", "min_rows")
DRIFT_PREFIX = "drift."


@spec_type
@dataclass(frozen=True)
class Monitor(Definition):
    """Checks of one model, feature view or feature service over a time window.

    >>> Monitor("churn_watch", model="churn", webhooks=("https://hooks.example/ml",)).checks
    ('drift', 'performance', 'skew')
    """

    kind: ClassVar[str] = "monitor"

    name: str
    model: str = ""
    feature_view: str = ""
    feature_service: str = ""
    checks: tuple[str, ...] = ()
    window: timedelta = timedelta(days=1)
    reference_window: timedelta | None = None
    freshness: timedelta | None = None
    thresholds: dict[str, float] = field(default_factory=dict, hash=False)
    webhooks: tuple[str, ...] = ()
    retrain: bool = False
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_identifier("Monitor", "name", self.name)
        me = f"Monitor '{self.name}'"
        named = [(f, v) for f, v in (("model", self.model), ("feature_view", self.feature_view),
                                      ("feature_service", self.feature_service)) if v]
        if len(named) != 1:
            raise DefinitionError(me, "model", "a monitor watches exactly one subject, "
                                  f"got {[f for f, _ in named] or 'none'}",
                                  "pass one of model=, feature_view= or feature_service=")
        subject, target = named[0]
        check_identifier(me, subject, target)
        allowed = MODEL_CHECKS if self.model else VIEW_CHECKS
        given = (self.checks,) if isinstance(self.checks, str) else tuple(self.checks)
        checks = given or (MODEL_CHECKS if self.model else DEFAULT_VIEW_CHECKS)
        unknown = [c for c in checks if c not in allowed]
        if unknown or len(set(checks)) != len(checks):
            raise DefinitionError(me, "checks", f"{list(checks)} is not a list of distinct "
                                  f"checks of a {subject.replace('_', ' ')}",
                                  f"use some of {list(allowed)}")
        object.__setattr__(self, "checks", checks)
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise DefinitionError(me, "window", f"{self.window!r} is not a positive timedelta",
                                  "pass window=timedelta(days=1)")
        if self.freshness is not None and (not isinstance(self.freshness, timedelta)
                                           or self.freshness <= timedelta(0)):
            raise DefinitionError(me, "freshness", f"{self.freshness!r} is not a positive "
                                  "timedelta", "pass freshness=timedelta(hours=2), or None")
        if self.reference_window is not None and (
                not isinstance(self.reference_window, timedelta)
                or self.reference_window <= timedelta(0)):
            raise DefinitionError(me, "reference_window", f"{self.reference_window!r} is not "
                                  "a positive timedelta", "pass reference_window=timedelta(days=7)")
        if self.reference_window is not None and self.model:
            raise DefinitionError(me, "reference_window", "a model's drift is measured "
                                  "against its training set", "leave reference_window out")
        if self.freshness is not None and self.model:
            raise DefinitionError(me, "freshness", "a freshness SLO applies to feature views",
                                  "monitor the model's feature views for freshness")
        thresholds = self.thresholds
        if not isinstance(thresholds, dict) or not all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in thresholds.items()):
            raise DefinitionError(me, "thresholds", "thresholds must map names to numbers",
                                  "pass thresholds={'max_mismatch_rate': 0.05}")
        for key, value in thresholds.items():
            _check_threshold(me, key, float(value))
        object.__setattr__(self, "thresholds", {k: float(v) for k, v in thresholds.items()})
        webhooks = (self.webhooks,) if isinstance(self.webhooks, str) else tuple(self.webhooks)
        from headwater.errors import ConfigError
        from headwater.monitoring.alerts import check_webhook_url

        for url in webhooks:
            try:
                check_webhook_url(url)
            except ConfigError as exc:
                raise DefinitionError(me, "webhooks", str(exc).split(". Fix:")[0],
                                      "pass webhooks=('https://hooks.example/ml',)") from None
        object.__setattr__(self, "webhooks", webhooks)
        if not isinstance(self.retrain, bool):
            raise DefinitionError(me, "retrain", f"{self.retrain!r} is not a boolean",
                                  "pass retrain=True or False")
        if self.retrain and not self.model:
            raise DefinitionError(me, "retrain", "only a model monitor can retrain",
                                  "set retrain=False, or monitor a model")
        for name in ("description", "owner"):
            if not isinstance(getattr(self, name), str):
                raise DefinitionError(me, name, f"expected a string, got "
                                      f"{type(getattr(self, name)).__name__}",
                                      f"pass {name}='...'")
        object.__setattr__(self, "tags", check_tags(me, self.tags))

    @property
    def subject(self) -> str:
        """``"model:<name>"``, ``"feature_view:<name>"`` or ``"feature_service:<name>"``."""
        if self.model:
            return f"model:{self.model}"
        if self.feature_view:
            return f"feature_view:{self.feature_view}"
        return f"feature_service:{self.feature_service}"

    def threshold(self, name: str, default: float) -> float:
        """The monitor's value of threshold ``name``, else ``default``."""
        return self.thresholds.get(name, default)

    @property
    def drift_thresholds(self) -> dict[str, float]:
        """The drift check's effect-size thresholds, by column or kind."""
        return {k.removeprefix(DRIFT_PREFIX): v for k, v in self.thresholds.items()
                if k.startswith(DRIFT_PREFIX)}


def _check_threshold(me: str, key: str, value: float) -> None:
    """DefinitionError unless ``value`` suits threshold ``key``."""
    import math

    if key not in THRESHOLDS and not (key.startswith(DRIFT_PREFIX) and key != DRIFT_PREFIX):
        raise DefinitionError(me, "thresholds", f"unknown threshold {key!r}",
                              f"use some of {sorted(THRESHOLDS)}, or 'drift.<column>'")
    if not math.isfinite(value):
        raise DefinitionError(me, "thresholds", f"{key}={value} is not finite",
                              "pass a finite number")
    if key == "fdr" and not 0 < value < 1:
        raise DefinitionError(me, "thresholds", f"fdr={value} is not between 0 and 1",
                              "pass e.g. fdr=0.01")
    if key in RATES and not 0 <= value <= 1:
        raise DefinitionError(me, "thresholds", f"{key}={value} is not a share in [0, 1]",
                              f"pass e.g. {key}=0.05")
    if key in COUNTS and (value < 0 or value != int(value)):
        raise DefinitionError(me, "thresholds", f"{key}={value} is not a whole number >= 0",
                              f"pass e.g. {key}=100")
    if value < 0:
        raise DefinitionError(me, "thresholds", f"{key}={value} is negative",
                              "pass a threshold of zero or more")
