"""Feature server metrics in the Prometheus text format, from a small in-process registry.

Exposed at ``GET /metrics``:

* ``headwater_http_requests_total{endpoint, method, status}``: requests answered;
* ``headwater_http_request_duration_seconds{endpoint, status}``: a latency histogram;
* ``headwater_online_rows_read_total{}``: entity rows served by ``/features``;
* ``headwater_push_rows_total{view, to}``: rows accepted by ``/push``;
* ``headwater_predictions_total{model, version}``: entity rows predicted by ``/predict``;
* ``headwater_prediction_log_rows_total{outcome}``: prediction log rows ``written``,
  ``dropped`` (the log's queue was full) or ``failed`` (a write error), as of the scrape.

Each server process counts in its own registry; updates run on the event loop thread, so
they take no lock. ``endpoint`` is the route (``/features``), or ``other`` for unknown
paths, which keeps the number of series bounded.

Several workers (``headwater serve --workers N``) share one port, and a scrape reaches
whichever worker accepts it, so per-process counts would jump around between scrapes. They
are summed instead (:class:`SharedMetrics`): every worker writes a snapshot of its counts
to a folder of the server's own (``<worker pid>-<random>.json``: a worker started later
with a dead one's pid does not replace its counts; replaced atomically every
:data:`SYNC_SECONDS` and at shutdown), and ``/metrics`` answers the sum of its live counts
and the other workers' snapshots. So every scrape shows the whole server, with other
workers' counts at most :data:`SYNC_SECONDS` old. The snapshot of a worker that died stays
in the sum (a counter must not go down while the server runs); the folder is removed when
the server stops, and the next server starts from zero, which Prometheus reads as a reset.
"""

from __future__ import annotations

import logging
import os
import uuid
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)
"""Upper bounds in seconds; an online read is expected in the first two."""

SYNC_SECONDS = 1.0
"""How often a worker writes its snapshot for the other workers' scrapes."""

Labels = tuple[str, ...]

_log = logging.getLogger("headwater.serving")


class Counter:
    """A monotonically increasing count per label values."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def set(self, labels: Labels, total: float) -> None:
        """Copy a total counted elsewhere (e.g. by a background thread)."""
        self.values[labels] = total

    def dump(self) -> list[Any]:
        return [[list(labels), value] for labels, value in self.values.items()]

    def add(self, dumped: list[Any]) -> None:
        """Add the counts of another process's :meth:`dump`."""
        for labels, value in dumped:
            self.inc(tuple(labels), float(value))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labels, values)} {_number(count)}"
                  for values, count in sorted(self.values.items())]
        return lines


class Histogram:
    """Observations per label values in fixed buckets, with their sum and count."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str],
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.buckets = tuple(buckets)
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
        counts, total = series
        counts[bisect_left(self.buckets, value)] += 1
        total[0] += value

    def dump(self) -> list[Any]:
        return [[list(labels), counts, total[0]]
                for labels, (counts, total) in self._series.items()]

    def add(self, dumped: list[Any]) -> None:
        """Add the observations of another process's :meth:`dump` (same buckets)."""
        for labels, counts, total in dumped:
            key = tuple(labels)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = ([0] * (len(self.buckets) + 1), [0.0])
            if len(counts) != len(series[0]):
                raise ValueError(f"{self.name}: a snapshot with {len(counts)} buckets")
            for i, count in enumerate(counts):
                series[0][i] += int(count)
            series[1][0] += float(total)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for values, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                lines.append(f"{self.name}_bucket"
                             f"{_labels((*self.labels, 'le'), (*values, le))} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(self.labels, values)} {_number(total[0])}")
            lines.append(f"{self.name}_count{_labels(self.labels, values)} {cumulative}")
        return lines


class ServerMetrics:
    """The feature server's metrics (see the module docstring)."""

    def __init__(self) -> None:
        self.requests = Counter("headwater_http_requests_total",
                                "HTTP requests answered, by endpoint, method and status.",
                                ("endpoint", "method", "status"))
        self.latency = Histogram("headwater_http_request_duration_seconds",
                                 "Time to answer an HTTP request, by endpoint and status.",
                                 ("endpoint", "status"))
        self.online_rows = Counter("headwater_online_rows_read_total",
                                   "Entity rows read from the online store by /features.", ())
        self.online_rows.inc((), 0)  # a counter without labels starts at 0
        self.push_rows = Counter("headwater_push_rows_total",
                                 "Rows accepted by /push, by feature view and target.",
                                 ("view", "to"))
        self.predictions = Counter("headwater_predictions_total",
                                   "Entity rows predicted by /predict, by model and version.",
                                   ("model", "version"))
        self.prediction_log = Counter("headwater_prediction_log_rows_total",
                                      "Prediction log rows written, dropped (queue full) or "
                                      "failed (write error).", ("outcome",))
        for outcome in ("written", "dropped", "failed"):
            self.prediction_log.set((outcome,), 0)

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.inc((endpoint, method, code))
        self.latency.observe((endpoint, code), seconds)

    def _all(self) -> tuple[Counter | Histogram, ...]:
        return (self.requests, self.latency, self.online_rows, self.push_rows,
                self.predictions, self.prediction_log)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all():
            lines += metric.render()
        return "\n".join(lines) + "\n"

    def snapshot(self) -> bytes:
        """Every count, as JSON that :meth:`add` reads (in another process)."""
        return orjson.dumps({metric.name: metric.dump() for metric in self._all()})

    def add(self, snapshot: bytes) -> None:
        """Add the counts of a :meth:`snapshot` to these."""
        data = orjson.loads(snapshot)
        for metric in self._all():
            metric.add(data.get(metric.name, []))


class SharedMetrics:
    """One worker's side of the metrics of several workers (module docstring): ``own``
    is this worker's registry, ``folder`` the server's snapshot folder."""

    def __init__(self, folder: Path, own: ServerMetrics) -> None:
        self.folder = Path(folder)
        self.own = own
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"

    def save(self, snapshot: bytes) -> None:
        """Replace this worker's snapshot file with ``snapshot`` (made on the event loop
        by ``own.snapshot()``; this may run on another thread)."""
        temp = self.folder / f".{self.name}.tmp"
        temp.write_bytes(snapshot)
        os.replace(temp, self.folder / self.name)

    def render(self, snapshot: bytes) -> str:
        """The Prometheus text of this worker's counts (``snapshot``, made on the event
        loop by ``own.snapshot()``) plus every other worker's last snapshot."""
        total = ServerMetrics()
        total.add(snapshot)
        for path in sorted(self.folder.glob("*.json")):
            if path.name == self.name:
                continue
            try:
                total.add(path.read_bytes())
            except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
                _log.warning("metrics snapshot %s skipped: %s", path, exc)
        return total.render()


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape(value)}"'
                     for name, value in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
