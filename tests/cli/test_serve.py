"""`headwater serve --workers 2` as a real process: workers start, serve, and stop."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from headwater.testing.processes import free_port, stop_process
from tests.cli.test_cli_subprocess import headwater_script
from tests.serving.conftest import build_repo

KEY = "subprocess-test-key"
START_TIMEOUT_S = 90.0
POLL_S = 0.05


def worker_pids(parent: int) -> list[int]:
    """Children of ``parent`` started by multiprocessing's spawn (uvicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path,
                 timeout: float = START_TIMEOUT_S) -> None:
    """Poll /health until it answers 200; fail if the server exits or ``timeout`` seconds
    pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", headers={"X-API-Key": KEY}).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        try:
            process.wait(POLL_S)  # the poll interval; returns only if the server died
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"headwater serve exited with {process.returncode}:\n{log.read_text()}")
    pytest.fail(f"headwater serve was not healthy within {timeout} s:\n"
                f"{log.read_text()}")


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {**os.environ, "HEADWATER_API_KEYS": KEY, "NO_COLOR": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [headwater_script(), "serve", "--repo", str(repo), "--port", str(port),
             "--workers", "2"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_healthy(process, url, log)
        assert len(worker_pids(process.pid)) == 2

        headers = {"Authorization": f"Bearer {KEY}"}
        read = {"features": ["globbed:conv_rate"], "entities": [{"driver_id": 1002}]}
        with httpx.Client(base_url=url, headers=headers) as client:  # keep-alive
            for _ in range(20):
                answer = client.post("/features", json=read)
                assert answer.status_code == 200, answer.text
                assert answer.json()["results"]["conv_rate"] == [0.6]
            row = {"driver_id": 1002, "event_timestamp": "2024-01-03T00:00:00Z",
                   "conv_rate": 0.125, "trips": 3}
            pushed = client.post("/push", json={"view": "globbed", "rows": [row]})
            assert pushed.status_code == 200, pushed.text
            assert client.post("/features", json=read).json()["results"]["conv_rate"] == [
                0.125]
            assert client.get("/health", headers={"Authorization": "Bearer nope"}
                              ).status_code == 401
        for _ in range(10):  # new connections, spread over the workers: all share the store
            answer = httpx.post(f"{url}/features", json=read, headers=headers)
            assert answer.json()["results"]["conv_rate"] == [0.125]
        assert "Serving project 'serve_test'" in log.read_text()
        assert KEY not in log.read_text()
    finally:
        workers = worker_pids(process.pid)
        stop_process(process, timeout=60)
    assert process.returncode == 0, log.read_text()
    assert [pid for pid in workers if running(pid)] == []


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
