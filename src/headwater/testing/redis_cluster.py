"""A real Redis Cluster of ``redis-server`` processes on loopback ports, for tests.

:class:`LocalRedisCluster` starts three (by default) ``redis-server --cluster-enabled yes``
masters without persistence, each in a folder of its own under ``workdir`` (its
``nodes.conf`` there), on free loopback ports (client and cluster bus), gives each a third
of the 16,384 slots (``CLUSTER ADDSLOTSRANGE``), joins them (``CLUSTER MEET``) and waits for
``cluster_state:ok`` on every node. A node can be stopped and started again on its port (it
rejoins with its slots, empty). It never touches any other Redis::

    with LocalRedisCluster(shutil.which("redis-server"), tmp_path) as cluster:
        store = RedisClusterOnlineStore(cluster.url, "project")
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from headwater.testing.processes import free_port, stop_process

SLOTS = 16_384


class LocalRedisCluster:
    """Redis Cluster masters on 127.0.0.1 (``urls``, ``url`` of the first); stop with
    :meth:`stop` or use as a context manager."""

    def __init__(self, binary: str, workdir: Path, nodes: int = 3,
                 node_timeout_ms: int = 5000) -> None:
        self.binary = binary
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms
        self.ports = [free_port() for _ in range(nodes)]
        self.bus_ports = [free_port() for _ in range(nodes)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}/0" for port in self.ports]

    @property
    def url(self) -> str:
        return self.urls[0]

    def client(self, node: int) -> Any:
        """A plain redis-py client of one node (close it after use)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.ports[node], socket_timeout=5)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, assign the slots, join the nodes and wait for the cluster;
        on a failure every node is stopped and RuntimeError raised."""
        try:
            for node in range(len(self.ports)):
                self.start_node(node, timeout)
            count = len(self.ports)
            for node in range(count):
                first, last = SLOTS * node // count, SLOTS * (node + 1) // count - 1
                self._call(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in range(1, count):
                self._call(0, "CLUSTER", "MEET", "127.0.0.1", self.ports[node],
                           self.bus_ports[node])
            self.wait_ok(timeout)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, RuntimeError):
                raise
            raise RuntimeError(f"the Redis Cluster on ports {self.ports} did not start: "
                               f"{exc}") from exc

    def start_node(self, node: int, timeout: float = 30.0) -> None:
        """Start one node (again) on its ports and wait until it answers PING."""
        folder = self.workdir / f"node-{node}"
        folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [self.binary, "--port", str(self.ports[node]), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus_ports[node]),
             "--cluster-config-file", str(folder / "nodes.conf"),
             "--cluster-node-timeout", str(self.node_timeout_ms),
             "--cluster-require-full-coverage", "no", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--daemonize", "no", "--logfile", str(folder / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._processes[node] = process
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call(node, "PING")
                return
            except Exception as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "log").read_text(errors="replace")[-2000:] \
                        if (folder / "log").exists() else ""
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port "
                                       f"{self.ports[node]}: {exc}\n{log}") from exc
                time.sleep(0.02)

    def stop_node(self, node: int) -> None:
        """Stop one node (SIGTERM, then SIGKILL) and wait until it has exited."""
        process = self._processes[node]
        if process is not None:
            stop_process(process)
            self._processes[node] = None

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every node says ``cluster_state:ok`` and knows every node's slots."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in range(len(self.ports)):
                try:
                    info = self._call(node, "CLUSTER", "INFO").decode()
                    known = sum(1 + int(end) - int(start)
                                for start, end, *_ in self._call(node, "CLUSTER", "SLOTS"))
                    states.append("cluster_state:ok" in info and known == SLOTS)
                except Exception:  # noqa: BLE001 -- a node still starting: not ok yet
                    states.append(False)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster on ports {self.ports} is not ok after "
                                   f"{timeout} s (nodes ok: {states})")
            time.sleep(0.05)

    def node_of_slot(self, slot: int) -> int:
        """Which node (index) serves ``slot`` now."""
        for start, end, master, *_ in self._call(0, "CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return self.ports.index(int(master[1]))
        raise LookupError(f"slot {slot} has no node")

    def move_slot(self, slot: int, target: int) -> None:
        """Migrate ``slot`` with its keys to node ``target`` (:meth:`start_migration`, then
        :meth:`finish_migration`)."""
        if self.node_of_slot(slot) != target:
            self.start_migration(slot, target)
            self.finish_migration(slot, target)

    def start_migration(self, slot: int, target: int) -> int:
        """Mark ``slot`` IMPORTING on node ``target`` and MIGRATING on its node (returned):
        until :meth:`finish_migration`, a command on keys the source no longer has is
        answered ``ASK``."""
        source = self.node_of_slot(slot)
        source_id = self._call(source, "CLUSTER", "MYID").decode()
        target_id = self._call(target, "CLUSTER", "MYID").decode()
        self._call(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self._call(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        return source

    def finish_migration(self, slot: int, target: int) -> None:
        """``MIGRATE`` the keys of ``slot`` still on its node to ``target``, then give the
        slot to ``target`` on every node (``CLUSTER SETSLOT ... NODE``)."""
        source = self.node_of_slot(slot)
        target_id = self._call(target, "CLUSTER", "MYID").decode()
        while True:
            keys = self._call(source, "CLUSTER", "GETKEYSINSLOT", slot, 1000)
            if not keys:
                break
            self._call(source, "MIGRATE", "127.0.0.1", self.ports[target], "", 0, 5000,
                       "KEYS", *keys)
        for node in (target, source, *[n for n in range(len(self.ports))
                                       if n not in (source, target)]):
            self._call(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_ok()

    def _call(self, node: int, *args: Any) -> Any:
        client = self.client(node)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop every node."""
        for node in range(len(self._processes)):
            self.stop_node(node)

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
