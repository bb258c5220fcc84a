"""Servers of each fault test's own: a persistent redis-server and a PostgreSQL cluster, on
free loopback ports with their data in temporary folders, stopped and deleted afterwards.
A missing binary skips the test, or fails it under HEADWATER_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headwater.testing.processes import (
    PostgresCluster,
    RedisServer,
    ServiceStartError,
    free_port,
)
from tests.conftest import service_unavailable


def redis_binary() -> str:
    """The redis-server binary, or skip (fail in CI) without one."""
    binary = os.environ.get("HEADWATER_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "no redis-server binary on PATH")
    assert binary is not None
    return binary


def start_redis(workdir: Path, *, persist: bool) -> RedisServer:
    """A started RedisServer; retries on another port if one was taken meanwhile."""
    server = RedisServer(redis_binary(), workdir, persist=persist)
    for attempt in range(3):
        try:
            server.start()
            return server
        except ServiceStartError:
            if attempt == 2:
                raise
            server.port = free_port()
    return server


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose acknowledged writes survive a stop and start (AOF, fsync
    always), killed at teardown."""
    server = start_redis(tmp_path / "redis-aof", persist=True)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence for this test only, killed at teardown."""
    server = start_redis(tmp_path / "redis", persist=False)
    try:
        yield server
    finally:
        server.kill()


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries, or skip (fail in CI) without them."""
    configured = os.environ.get("HEADWATER_TEST_POSTGRES_BIN")
    candidates = [Path(configured)] if configured else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(str(shutil.which("initdb"))).parent
    service_unavailable("PostgreSQL server binaries",
                        "no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH "
                        "(set HEADWATER_TEST_POSTGRES_BIN)")
    raise AssertionError("unreachable")


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL cluster of this test's own (``.url``,
    ``.restart_immediately()``), stopped and deleted at teardown."""
    cluster = PostgresCluster(postgres_bin())
    try:
        for attempt in range(3):  # another process may take the free port first
            try:
                cluster.start()
                break
            except ServiceStartError:
                if attempt == 2:
                    raise
                cluster.port = free_port()
        yield cluster
    finally:
        cluster.close()


class FaultyFolder:
    """A small tmpfs mounted on a folder of the test's own, turned read-only or full on
    demand, so writers really get EROFS and ENOSPC (as root, chmod does not stop writes).
    Files already in the folder are kept (copied into the tmpfs)."""

    SIZE = 4 * 1024 * 1024

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mounted = False

    def _mount(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mount", *args], capture_output=True, text=True, check=False,
                              timeout=30)

    def mount(self) -> None:
        keep = self.folder.parent / f".{self.folder.name}.before-mount"
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.folder, keep)
        done = self._mount("-t", "tmpfs", "-o", f"size={self.SIZE},mode=0755", "tmpfs",
                           str(self.folder))
        if done.returncode != 0:
            shutil.rmtree(keep)
            service_unavailable("mount (tmpfs)", f"cannot mount a tmpfs here: "
                                f"{done.stderr.strip()}; the test needs root and mount rights")
        self.mounted = True
        shutil.copytree(keep, self.folder, dirs_exist_ok=True)
        shutil.rmtree(keep)

    def read_only(self) -> None:
        """Remount read-only: every write gets EROFS."""
        self._remount("ro")

    def writable(self) -> None:
        self._remount("rw")

    def _remount(self, mode: str) -> None:
        done = self._mount("-o", f"remount,{mode}", str(self.folder))
        assert done.returncode == 0, done.stderr

    def fill(self, leave: int = 0) -> None:
        """Take all free space but ``leave`` bytes with a hidden file no reader reads."""
        free = os.statvfs(self.folder)
        size = max(0, free.f_bavail * free.f_frsize - leave)
        with open(self.filler, "wb") as out:
            out.truncate(0)
            chunk = b"\0" * (1 << 16)
            written = 0
            try:
                while written < size:
                    written += out.write(chunk[:min(len(chunk), size - written)])
                out.flush()
            except OSError:
                pass  # full already

    @property
    def filler(self) -> Path:
        return self.folder / ".filler"

    def free_space(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        """Unmount (lazily: a process may still hold a file); the tmpfs's files go."""
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False, timeout=30)
            self.mounted = False


@pytest.fixture
def faulty() -> Iterator[Callable[[Path], FaultyFolder]]:
    """``faulty(folder)`` mounts a FaultyFolder there; every one is unmounted at
    teardown."""
    made: list[FaultyFolder] = []

    def mount(folder: Path) -> FaultyFolder:
        made.append(FaultyFolder(folder))
        made[-1].mount()
        return made[-1]

    try:
        yield mount
    finally:
        for folder in made:
            folder.unmount()
