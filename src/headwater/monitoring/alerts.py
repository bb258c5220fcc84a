"""Alerts on a monitor's failed findings: a JSON webhook and log lines.

- :func:`alert_payload` builds the JSON body of one alert: the project, the monitor, the
  run's window, a one-line ``text`` summary (what chat webhooks such as Slack's display),
  the count of failed findings by severity and the failed findings themselves
  (:meth:`~headwater.monitoring.findings.Finding.to_dict`). Findings that passed are left
  out.
- :func:`send_webhook` POSTs a payload as JSON with the standard library (no HTTP client
  dependency). A connection error, a timeout or a 5xx answer is retried with exponential
  backoff (``backoff``, ``2 * backoff``, ``4 * backoff`` ... seconds between attempts); a
  4xx answer is not (the request itself is wrong; resending cannot help), and neither is a
  redirect (following it would turn the POST into a GET and drop the alert). Delivery
  failures never raise: they come back as an :class:`AlertResult` with ``delivered=False``
  and the error. Credentials in the URL (``https://user:secret@host/...``) are sent as
  HTTP basic auth. A webhook URL is shown in results, errors, logs and reports only as
  :func:`redact_webhook` gives it: chat services put the secret in the path
  (``https://hooks.slack.com/services/T0/B0/<token>``) or the query, so only the scheme,
  host, port and a leading route segment are shown. A URL with a space, a control or a
  non-ASCII character is a ConfigError (it would reach the error text unredacted).
- :func:`log_alert` writes one log line per failed finding: WARNING, or CRITICAL for a
  finding of severity ``"critical"``.

A bad setting (a URL that is not http(s), a negative retry count) raises
:class:`~headwater.errors.ConfigError` at once, before anything is sent.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from headwater.errors import ConfigError, DataError
from headwater.monitoring.findings import SEVERITIES, Finding, json_safe

_BODY_SNIPPET = 200  # characters of an error answer's body kept in the error message


@dataclass(frozen=True)
class AlertResult:
    """How one webhook delivery went.

    ``url``: where it was sent, credentials redacted; ``delivered``: a 2xx answer came;
    ``status``: the HTTP status of the last attempt (None when it got no answer);
    ``error``: why it was not delivered (None when it was); ``attempts``: requests made."""

    url: str
    delivered: bool
    status: int | None
    error: str | None
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {"url": self.url, "delivered": self.delivered, "status": self.status,
                "error": self.error, "attempts": self.attempts}


def alert_payload(project: str, monitor: str,
                  run_window: tuple[datetime | None, datetime | None],
                  findings: Sequence[Finding]) -> dict[str, Any]:
    """The JSON body of an alert on the failed ones of ``findings``::

        {"project": ..., "monitor": ..., "window": {"start": iso | None, "end": iso | None},
         "text": "<one-line summary>", "failed": <count>,
         "severity_counts": {"info": n, "warning": n, "critical": n},
         "findings": [Finding.to_dict(), ...]}

    ``findings`` in the body are the failed ones, in the given order. A non-finite float
    (an infinite PSI, say) is written as the string ``"inf"``, ``"-inf"`` or ``"nan"`` and
    a numpy scalar as a Python number, so the body is strict JSON."""
    start, end = run_window
    bad = [f for f in findings if f.failed]
    counts = {severity: sum(f.severity == severity for f in bad) for severity in SEVERITIES}
    summary = ", ".join(f"{n} {severity}" for severity, n in reversed(counts.items()) if n)
    text = (f"headwater monitor '{monitor}' (project '{project}'): {len(bad)} failed "
            f"finding(s)" + (f" ({summary})" if summary else "")
            + f" in window [{_iso(start)}, {_iso(end)})")
    return {
        "project": project, "monitor": monitor,
        "window": {"start": _iso(start), "end": _iso(end)},
        "text": text, "failed": len(bad), "severity_counts": counts,
        "findings": [json_safe(f.to_dict()) for f in bad],
    }


def send_webhook(url: str, payload: Mapping[str, Any], *, timeout: float = 5.0,
                 retries: int = 2, backoff: float = 0.5,
                 headers: Mapping[str, str] | None = None) -> AlertResult:
    """POST ``payload`` as JSON to ``url``; at most ``1 + retries`` attempts (see the module
    docstring for what is retried), each waiting up to ``timeout`` seconds.

    ``headers`` are added to the request (an ``Authorization`` header, say). Raises
    ConfigError for a URL that is not http(s) with a host, or a non-positive ``timeout``,
    negative ``retries`` or ``backoff``; DataError when ``payload`` is not strict JSON.
    Never raises for a failed delivery."""
    target, auth = _target(url)
    shown = redact_webhook(url)
    if not timeout > 0:
        raise ConfigError(f"webhook {shown}: timeout must be > 0 seconds, not {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"webhook {shown}: retries must be an integer >= 0, not {retries!r}")
    if not backoff >= 0:
        raise ConfigError(f"webhook {shown}: backoff must be >= 0 seconds, not {backoff!r}")
    try:
        body = json.dumps(payload, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise DataError(f"webhook {shown}: the payload is not strict JSON: {exc}. Fix: build "
                        "it with alert_payload(), or keep to JSON scalars, lists and "
                        "dicts") from exc
    request_headers = {"Content-Type": "application/json", "User-Agent": "headwater",
                       **(auth or {}), **(headers or {})}
    opener = urllib.request.build_opener(_NoRedirect)
    status: int | None = None
    error = ""
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(backoff * 2 ** (attempt - 2))
        request = urllib.request.Request(target, data=body, headers=request_headers,
                                         method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read()
                return AlertResult(shown, True, int(response.status), None, attempt)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            error = f"HTTP {exc.code} {exc.reason}{_snippet(exc)}"
            if status < 500:
                if 300 <= status < 400:
                    location = exc.headers.get("Location")
                    error += (f"; redirected to {redact_webhook(location)}" if location else
                              "; redirected (no Location header)")
                    error += ", not followed: set the webhook URL to the final address"
                return AlertResult(shown, False, status, f"POST {shown}: {error}", attempt)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            status = None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"no answer ({type(reason).__name__}: {reason})"
    return AlertResult(shown, False, status,
                       f"POST {shown}: {error} after {retries + 1} attempt(s)", retries + 1)


def log_alert(logger: logging.Logger, project: str, monitor: str,
              findings: Sequence[Finding]) -> None:
    """Log one line per failed finding of ``findings``, at CRITICAL for severity
    ``"critical"`` and WARNING otherwise, naming the monitor, project, check, subject,
    target, value, threshold and the finding's message. Passed findings are not logged."""
    for finding in findings:
        if not finding.failed:
            continue
        level = logging.CRITICAL if finding.severity == "critical" else logging.WARNING
        logger.log(level, "monitor '%s' (project '%s'): %s failed on %s target '%s': "
                   "value=%s threshold=%s: %s", monitor, project, finding.check,
                   finding.subject, finding.target, finding.value, finding.threshold,
                   finding.message)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an HTTPError: a redirected POST would arrive as a GET."""

    def redirect_request(  # noqa: PLR0917 - the signature urllib calls
            self, req: urllib.request.Request, fp: Any, code: int, msg: str,
            headers: Any, newurl: str) -> urllib.request.Request | None:
        return None


def redact_webhook(url: str) -> str:
    """``url`` as messages, logs, results and reports show a webhook: the scheme, host and
    port; user info as ``***@``; of the path only a first segment that more segments follow
    (a route such as Slack's ``/services``), the rest as one ``***``, and a lone segment as
    ``***`` (ntfy's topic is the secret); every query parameter's value (a bare parameter
    whole) and a fragment as ``***``. A URL that cannot be split is ``***``.

    >>> redact_webhook("https://u:pw@hooks.slack.com/services/T0/B1/xYz?token=a&v2#f")
    'https://***@hooks.slack.com/services/***?token=***&***#***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an IPv6 host without its closing bracket, say
        return "***"
    _, at, host = parts.netloc.rpartition("@")
    first, _, rest = parts.path.lstrip("/").partition("/")
    path = (f"/{first}/***" if rest else "/***") if first else parts.path
    query = "&".join(f"{name}=***" if sep else "***"
                     for name, sep, _ in (pair.partition("=")
                                          for pair in parts.query.split("&") if pair))
    return urlunsplit((parts.scheme, f"***@{host}" if at else host, path, query,
                       "***" if parts.fragment else ""))


def check_webhook_url(url: str) -> None:
    """ConfigError naming the fix when ``url`` cannot be a webhook (not http(s), no host, a
    port that is not a number); what :func:`send_webhook` would refuse, checked early."""
    _target(url)


def _target(url: str) -> tuple[str, dict[str, str] | None]:
    """The URL to request (user info removed) and the basic-auth header it carried."""
    if not isinstance(url, str):
        raise ConfigError(f"a webhook URL must be a string, not {type(url).__name__}")
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise ConfigError(f"webhook URL {redact_webhook(url)!r} holds a space, a control or a "
                          "non-ASCII character. Fix: percent-encode it (a space as %20)")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"webhook URL {redact_webhook(url)!r} cannot be read ({exc}). Fix: "
                          "write it as https://host/path") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL {redact_webhook(url)!r} is not an http(s) URL with a "
                          "host. Fix: write it as https://host/path")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"webhook URL {redact_webhook(url)!r}: {exc}. Fix: write the port as "
                          "a number, https://host:8443/path") from exc
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return (urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)),
            {"Authorization": f"Basic {token}"})


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return ""
    return f": {' '.join(text.split())[:_BODY_SNIPPET]}" if text else ""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


__all__ = ["AlertResult", "alert_payload", "log_alert", "send_webhook"]
