"""Alerts: the payload's exact shape, webhook delivery to a real local HTTP receiver (retries
on 5xx and dead ports, none on 4xx or redirects), and the log lines."""

from __future__ import annotations

import base64
import json
import logging
import math
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from headwater.errors import ConfigError, DataError
from headwater.monitoring.alerts import alert_payload, log_alert, redact_webhook, send_webhook
from headwater.monitoring.findings import Finding

T = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
START = T - timedelta(days=1)
FAST = 0.001  # backoff in tests: the retry logic, not the waiting, is under test


def finding(target: str, *, failed: bool, severity: str = "warning",
            value: float | None = 0.2, details: dict[str, Any] | None = None) -> Finding:
    return Finding(check="drift.feature", subject="model:churn", target=target, value=value,
                   threshold=0.1, failed=failed, message=f"{target} drifted",
                   severity=severity, window_start=START, window_end=T,
                   details=details or {})


FINDINGS = (
    finding("age", failed=True, severity="critical", details={"psi": 0.2, "bins": [1, 2]}),
    finding("plan", failed=False),
    finding("tenure", failed=True, value=None),
    finding("spend", failed=True, severity="info"),
)


# -- a real HTTP receiver ---------------------------------------------------------------------

@dataclass
class Receiver:
    """Answers each POST with the next scripted status (the last one repeats) and keeps
    what it received."""

    url: str
    statuses: list[int]
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    headers: dict[int, dict[str, str]] = field(default_factory=dict)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", statuses=[200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers.items()), body))
            index = min(len(state.received), len(state.statuses)) - 1
            status = state.statuses[index]
            answer = b'{"error": "bad payload"}' if status == 400 else b"ok"
            self.send_response(status)
            for name, value in state.headers.get(status, {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/monitor"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- payload ----------------------------------------------------------------------------------

def test_payload_holds_the_failed_findings_and_counts() -> None:
    payload = alert_payload("proj", "churn-drift", (START, T), FINDINGS)
    failed = [f for f in FINDINGS if f.failed]
    assert payload == {
        "project": "proj", "monitor": "churn-drift",
        "window": {"start": "2024-02-29T02:00:00+00:00", "end": "2024-03-01T02:00:00+00:00"},
        "text": ("headwater monitor 'churn-drift' (project 'proj'): 3 failed finding(s) "
                 "(1 critical, 1 warning, 1 info) in window "
                 "[2024-02-29T02:00:00+00:00, 2024-03-01T02:00:00+00:00)"),
        "failed": 3,
        "severity_counts": {"info": 1, "warning": 1, "critical": 1},
        "findings": [f.to_dict() for f in failed],
    }
    assert [Finding.from_dict(f) for f in payload["findings"]] == failed
    json.dumps(payload, allow_nan=False)  # strict JSON


def test_payload_without_failures_or_window_and_non_finite_values() -> None:
    empty = alert_payload("p", "m", (None, None), [finding("age", failed=False)])
    assert empty["findings"] == [] and empty["failed"] == 0
    assert empty["severity_counts"] == {"info": 0, "warning": 0, "critical": 0}
    assert empty["window"] == {"start": None, "end": None}
    assert empty["text"] == "headwater monitor 'm' (project 'p'): 0 failed finding(s) " \
                            "in window [None, None)"
    odd = alert_payload("p", "m", (START, T), [
        finding("age", failed=True, value=math.inf, details={"psi": -math.inf, "p": [math.nan]})])
    (body,) = odd["findings"]
    assert (body["value"], body["details"]) == ("inf", {"psi": "-inf", "p": ["nan"]})
    json.dumps(odd, allow_nan=False)


# -- webhook ----------------------------------------------------------------------------------

def test_payload_is_received_exactly(receiver: Receiver) -> None:
    payload = alert_payload("proj", "churn-drift", (START, T), FINDINGS)
    result = send_webhook(receiver.url, payload, headers={"X-Token": "t0k"}, backoff=FAST)
    assert (result.delivered, result.status, result.error, result.attempts) == (
        True, 200, None, 1)
    assert result.url == redact_webhook(receiver.url) == receiver.url.replace(
        "/hooks/monitor", "/hooks/***")
    ((path, headers, body),) = receiver.received
    assert path == "/hooks/monitor"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Token"] == "t0k"
    assert json.loads(body) == payload


def test_a_503_is_retried_then_delivered(receiver: Receiver) -> None:
    receiver.statuses = [503, 200]
    result = send_webhook(receiver.url, {"a": 1}, retries=2, backoff=FAST)
    assert (result.delivered, result.status, result.error, result.attempts) == (
        True, 200, None, 2)
    assert [json.loads(body) for _, _, body in receiver.received] == [{"a": 1}, {"a": 1}]


def test_5xx_every_time_gives_up_after_the_retries(receiver: Receiver) -> None:
    receiver.statuses = [500]
    result = send_webhook(receiver.url, {"a": 1}, retries=3, backoff=FAST)
    assert (result.delivered, result.status, result.attempts) == (False, 500, 4)
    assert len(receiver.received) == 4
    assert result.error is not None
    assert result.error.startswith(f"POST {redact_webhook(receiver.url)}: HTTP 500 ")
    assert result.error.endswith("after 4 attempt(s)")


def test_a_400_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400, 200]
    result = send_webhook(receiver.url, {"a": 1}, retries=5, backoff=FAST)
    assert (result.delivered, result.status, result.attempts) == (False, 400, 1)
    assert len(receiver.received) == 1
    assert result.error == (f'POST {redact_webhook(receiver.url)}: HTTP 400 Bad Request: '
                            '{"error": "bad payload"}')


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [302, 200]
    receiver.headers[302] = {"Location": "http://u:pw@elsewhere.invalid/x"}
    result = send_webhook(receiver.url, {"a": 1}, retries=2, backoff=FAST)
    assert (result.delivered, result.status, result.attempts) == (False, 302, 1)
    assert len(receiver.received) == 1
    assert result.error is not None and "redirected to http://***@elsewhere.invalid/***" \
        in result.error and "pw" not in result.error
    receiver.statuses = [302]
    receiver.headers[302] = {"Location": "https://hooks.slack.com/services/T0/B1/t0ken"}
    result = send_webhook(receiver.url, {"a": 1}, retries=0, backoff=FAST)
    assert result.error is not None and "t0ken" not in result.error
    assert "redirected to https://hooks.slack.com/services/***" in result.error
    receiver.statuses = [302]
    receiver.headers[302] = {}
    result = send_webhook(receiver.url, {"a": 1}, retries=0, backoff=FAST)
    assert result.error is not None and "redirected (no Location header), not followed" \
        in result.error


def test_unreachable_port_fails_without_raising() -> None:
    url = f"http://hook:s3cret@127.0.0.1:{dead_port()}/x"
    result = send_webhook(url, {"a": 1}, retries=2, backoff=FAST, timeout=2.0)
    assert (result.delivered, result.status, result.attempts) == (False, None, 3)
    assert result.url == url.replace("hook:s3cret", "***").replace("/x", "/***")
    assert result.error is not None
    assert result.error.startswith(f"POST {result.url}: no answer (")
    assert "s3cret" not in result.error and "s3cret" not in repr(result)


def test_credentials_in_the_url_become_basic_auth(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "http://hook%40x:s3cret@")
    result = send_webhook(url, {"a": 1}, backoff=FAST)
    assert result.delivered and "s3cret" not in result.url
    assert result.url == url.replace("hook%40x:s3cret", "***").replace("/monitor", "/***")
    ((_, headers, _),) = receiver.received
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"hook@x:s3cret").decode()


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T00000000/B00000000/XXXXsecretXXXX",
     "https://hooks.slack.com/services/***"),
    ("https://discord.com/api/webhooks/123456/secret-token", "https://discord.com/api/***"),
    ("https://webhook.site/6f1c1a2e-0000-4000-8000-secret000000", "https://webhook.site/***"),
    ("https://ntfy.sh/secrettopic", "https://ntfy.sh/***"),
    ("https://ops:secret@hooks.example:8443/ml", "https://***@hooks.example:8443/***"),
    ("https://secret@hooks.example/", "https://***@hooks.example/"),
    ("https://hooks.example", "https://hooks.example"),
    ("https://[::1]:8443/in/secret", "https://[::1]:8443/in/***"),
    ("https://[::1/in/secret", "***"),
    ("https://hooks.example/in?token=secret&secret&v=2#secret",
     "https://hooks.example/***?token=***&***&v=***#***"),
])
def test_webhook_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert redact_webhook(url) == shown
    assert "secret" not in redact_webhook(url)


def test_a_webhook_secret_in_the_path_is_not_in_the_result(receiver: Receiver) -> None:
    url = receiver.url.replace("/hooks/monitor", "/services/T0/B1/t0ken")
    receiver.statuses = [500]
    result = send_webhook(url, {"a": 1}, retries=0, backoff=FAST)
    assert not result.delivered and receiver.received[0][0] == "/services/T0/B1/t0ken"
    assert result.url.endswith("/services/***")
    assert "t0ken" not in repr(result)
    for bad in ("ftp://hooks.example/services/T0/B1/t0ken",
                "https://hooks.example/services/T0/B1/t0 ken",
                "https://hooks.example/services/T0/B1/t0k\u00e9n",
                "https://[::1/services/T0/B1/t0ken"):
        with pytest.raises(ConfigError) as error:
            send_webhook(bad, {"a": 1})
        assert "t0k" not in str(error.value) and "Fix:" in str(error.value)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "example.com/hook", "https://",
                                 "http://host:port/x", "file:///etc/passwd"])
def test_a_url_that_is_not_http_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="webhook URL"):
        send_webhook(url, {"a": 1})


def test_bad_settings_and_payloads_raise_at_once(receiver: Receiver) -> None:
    with pytest.raises(ConfigError, match="retries must be an integer >= 0, not -1"):
        send_webhook(receiver.url, {}, retries=-1)
    with pytest.raises(ConfigError, match="timeout must be > 0 seconds"):
        send_webhook(receiver.url, {}, timeout=0)
    with pytest.raises(ConfigError, match="backoff must be >= 0 seconds"):
        send_webhook(receiver.url, {}, backoff=-1.0)
    with pytest.raises(DataError, match="the payload is not strict JSON"):
        send_webhook(receiver.url, {"v": math.nan})
    with pytest.raises(DataError, match="the payload is not strict JSON"):
        send_webhook(receiver.url, {"when": T})
    assert receiver.received == []


# -- log --------------------------------------------------------------------------------------

def test_log_alert_writes_one_line_per_failed_finding(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("headwater.test_alerts")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        log_alert(logger, "proj", "churn-drift", FINDINGS)
    expected = [
        (logging.CRITICAL, "monitor 'churn-drift' (project 'proj'): drift.feature failed on "
         "model:churn target 'age': value=0.2 threshold=0.1: age drifted"),
        (logging.WARNING, "monitor 'churn-drift' (project 'proj'): drift.feature failed on "
         "model:churn target 'tenure': value=None threshold=0.1: tenure drifted"),
        (logging.WARNING, "monitor 'churn-drift' (project 'proj'): drift.feature failed on "
         "model:churn target 'spend': value=0.2 threshold=0.1: spend drifted"),
    ]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == expected
