"""The demo's HTTP client sends a request again, once, on a new connection when the server
closed the idle keep-alive one (as uvicorn does after 5 s), and only then."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from headwater.demo.server import post


class _ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    """Answers over HTTP/1.1 without ``Connection: close``, then drops the connection:
    the client believes it may reuse it."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(body)
        answer = json.dumps({"n": len(self.seen)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server() -> Iterator[int]:
    _ClosesAfterEachAnswer.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosesAfterEachAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_on_a_connection_the_server_closed_is_sent_again_once() -> None:
    with _server() as port:
        connection = HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            answers = [post(connection, "/x", json.dumps({"i": i}))[0] for i in range(3)]
        finally:
            connection.close()
    assert [a["n"] for a in answers] == [1, 2, 3]  # each request reached the server once
    assert _ClosesAfterEachAnswer.seen == [json.dumps({"i": i}).encode() for i in range(3)]


def test_a_server_that_is_gone_is_not_retried_forever() -> None:
    with _server() as port:
        pass  # stopped: nothing listens on the port any more
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises(OSError):
        post(connection, "/x", "{}")
