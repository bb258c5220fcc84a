"""The demo's monitoring step: drift injected into live data is detected, alerted, retrained
on, and reported.

With the server still running, the step pushes new ``driver_stats`` rows for every driver
through the real-time path (``store.push``) whose ``conv_rate`` is moved far from what the
model was trained on, then asks ``POST /predict`` for the drivers again (the server logs
each prediction with its inputs). A model monitor (``hw.Monitor`` with the ``drift`` check,
a webhook and ``retrain=True``) then runs on the last minutes: the drift check compares the
logged inputs and predictions with the training reference and flags ``conv_rate``; the
alert is POSTed to a webhook receiver the demo runs on 127.0.0.1; the retraining trains a
candidate and promotes it only if it beats production on fresh test rows (the labels end
where the training data ends, so there are few or none in the window, and the outcome says
why the candidate was not promoted); and the report is written as HTML and JSON under
``monitoring-reports/``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.demo.server import predict_over_http
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.store import FeatureStore

MONITOR = "conversion_drift"
WINDOW = timedelta(minutes=10)
DRIFTED_RATE = 0.97
"""The conv_rate pushed for every driver: the generated rates spread over [0, 1)."""
LOG_WAIT_SECONDS = 30.0
REPORTS = "monitoring-reports"


@dataclass(frozen=True)
class MonitorDemo:
    """What the monitoring step saw."""

    pushed: int
    predictions: int
    drifted: tuple[str, ...]
    alerts: int
    retrain: str
    report: Path


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A JSON webhook receiver on a free loopback port: its URL and what it received."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the demo prints its own summary

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def watch_drift(store: FeatureStore, connection: HTTPConnection, drivers: Sequence[int],
                model_ref: str, *, requests: int) -> MonitorDemo:
    """Run the monitoring step (module docstring) against the running server."""
    import hashlib

    import headwater as hw

    model = model_ref.split("@", 1)[0]
    now = datetime.now(UTC)
    trips = store.get_online_features(["driver_stats:trips"],
                                      [{"driver_id": d} for d in drivers]).to_dict()["trips"]
    rows = [{"driver_id": d, "event_timestamp": now, "created": now,
             "conv_rate": DRIFTED_RATE - 0.02 * (int(hashlib.sha1(str(d).encode())
                                                     .hexdigest(), 16) % 100) / 100,
             "trips": t} for d, t in zip(drivers, trips, strict=True)]  # trips unchanged
    store.push("driver_stats", rows)
    logged_before = store.read_predictions(model).num_rows
    served = predict_over_http(connection, model_ref, [{"driver_id": d} for d in drivers],
                               requests)
    _wait_logged(store, model, logged_before + served.requests)
    with webhook_receiver() as (url, received):
        store.apply([hw.Monitor(MONITOR, model=model, checks=("drift",), window=WINDOW,
                                webhooks=(url,), retrain=True,
                                description="the demo's drift watch")])
        run = store.run_monitor(MONITOR, end=datetime.now(UTC) + timedelta(seconds=1))
        alerts = len(received)
    drifted = tuple(sorted(f.target for f in run.findings
                           if f.failed and f.check == "drift.feature"))
    if "conv_rate" not in drifted:
        raise HeadwaterError(f"the monitor did not flag the injected drift of conv_rate: "
                             f"{[(f.check, f.target, f.value) for f in run.findings]}")
    retrained = next((f.message for f in run.findings if f.check == "monitor.retrain"),
                     "no retraining")
    page = _report(store, Path(store.repo_path) / REPORTS)
    return MonitorDemo(len(rows), served.requests, drifted, alerts, retrained, page)


def _wait_logged(store: FeatureStore, model: str, rows: int) -> None:
    """Until the server's prediction log (written every second) holds ``rows`` rows."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while store.read_predictions(model).num_rows < rows:
        if time.monotonic() > deadline:
            raise HeadwaterError(f"the server logged fewer than {rows} predictions of "
                                 f"'{model}' within {LOG_WAIT_SECONDS:.0f} s")
        time.sleep(0.2)  # the log flushes every second; bounded by the deadline


def _report(store: FeatureStore, folder: Path) -> Path:
    from headwater.monitoring.report_html import write_monitor_report

    page, _ = write_monitor_report(store, MONITOR, folder)
    return page
