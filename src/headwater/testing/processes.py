"""Helpers for tests, benchmarks and the demo that run Headwater's own processes on
loopback: a free port, stopping a child process politely, then firmly, and servers of a
caller's own (:class:`RedisServer`, :class:`PostgresCluster`) that fault tests stop, kill
and restart without touching shared services."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaps the child."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class ServiceStartError(RuntimeError):
    """A server of a test's own did not start; the message carries the end of its log."""


class RedisServer:
    """A ``redis-server`` of one caller's own on a loopback port, with its data in
    ``workdir``. With ``persist`` every write is appended to an AOF file and fsynced before
    it is acknowledged, so values survive :meth:`stop` and :meth:`start` (or a SIGKILL);
    without it a restarted server is empty."""

    def __init__(self, binary: str, workdir: Path, *, persist: bool = False,
                 port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.persist = persist
        self.port = port or free_port()
        self._process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (same port as before) and return once it accepts connections;
        ServiceStartError when it does not."""
        if self.running:
            return
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                       else ["--appendonly", "no"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.workdir), "--daemonize", "no",
             "--logfile", ""],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._process = process
        self.log = []
        ready = threading.Event()

        def follow() -> None:  # drains the log so the server never blocks on a full pipe
            if process.stdout is None:
                return
            for line in process.stdout:
                self.log.append(line.rstrip())
                if "Ready to accept connections" in line:
                    ready.set()
            ready.set()  # the server exited

        threading.Thread(target=follow, daemon=True).start()
        if not ready.wait(timeout) or not self.running:
            self.kill()
            tail = "\n".join(self.log[-20:])
            raise ServiceStartError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM (a persistent server fsyncs its AOF) and wait until it has exited."""
        if self._process is not None:
            stop_process(self._process, 30)

    def kill(self) -> None:
        """SIGKILL the server, if running, and reap it."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(30)

    def restart(self) -> None:
        """Stop the server and start it again on the same port."""
        self.stop()
        self.start()


class PostgresCluster:
    """A PostgreSQL cluster of one caller's own: ``initdb`` in a fresh folder, served on a
    loopback port with its unix socket in that folder, trust authentication, database
    ``postgres``. PostgreSQL refuses to run as root, so as root every command runs as the
    ``os_user`` (default ``postgres``), who owns the folder. :meth:`close` stops the server
    and deletes the folder."""

    def __init__(self, bin_dir: Path, *, os_user: str = "postgres") -> None:
        self.bin_dir = bin_dir
        self.os_user = os_user if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="headwater-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if self.os_user is not None:
            shutil.chown(self.root, self.os_user, self.os_user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--no-instructions")

    @property
    def url(self) -> str:
        """The ``postgresql://`` URL of the database ``postgres`` over TCP."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120.0) -> str:
        command = [str(self.bin_dir / program), *args]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=self.root)
        if done.returncode != 0:
            raise ServiceStartError(f"{program} failed ({done.returncode}): "
                                    f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def _options(self) -> str:
        # fsync off: the faults here kill processes, not the machine, and the page cache
        # survives a process crash
        return (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} -c fsync=off")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", self._options(), "-w", "-t", "60", "start")

    def restart_immediately(self) -> None:
        """``pg_ctl restart -m immediate``: every backend dies at once, open transactions
        are lost, and the server runs crash recovery on the way up."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", self._options(), "-m", "immediate", "-w", "-t", "60", "restart")

    def stop(self) -> None:
        """Stop the server fast (``-m fast``); nothing when it is not running."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def server_log(self) -> str:
        """The server's log file, for failure messages."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
