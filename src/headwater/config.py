"""headwater.yaml -> typed settings.

A repo folder holds ``headwater.yaml``. Only ``project`` is required; everything else has an
embedded default::

    project: my_project
    registry: .headwater/registry.db          # a SQLite path, or postgresql://host/db
    offline:
      engine: duckdb                          # or: spark (pip install 'headwater[spark]')
      memory_limit: 8GB                       # DuckDB spills to temp_directory beyond this
      threads: 2
      temp_directory: .headwater/tmp
      connections:                            # named databases for SQLSource(connection=...)
        default: postgresql://127.0.0.1:5432/warehouse
      master: local[2]                        # spark only: spark.master (default local[*])
      spark_conf:                             # spark only: SparkSession settings (strings)
        spark.sql.shuffle.partitions: "8"
    online:
      type: sqlite                            # or: redis
      path: .headwater/online.db              # sqlite only
      url: redis://127.0.0.1:6379/0           # redis only (with cluster: any node)
      cluster: false                          # redis only: true for Redis Cluster
      marker_retention_h: 168                 # hours the stream's dedupe markers are kept
    server:                                   # headwater serve
      auth: true                              # false only for local work
      api_keys: ['${HEADWATER_API_KEY}']      # plus HEADWATER_API_KEYS (comma-separated)
    stream:                                   # headwater stream
      type: redis                             # or: nats (JetStream)
      url: redis://127.0.0.1:6379/0           # nats://127.0.0.1:4222 for nats
      group: headwater                        # consumer group / durable consumer name
      batch_size: 10000                       # messages per batch, at most
      block_ms: 1000                          # how long a read waits for messages
      claim_timeout_s: 60                     # Redis: claim entries idle this long; NATS: ack_wait
    artifacts: .headwater/artifacts           # model artifacts (a local folder)
    predictions: data/predictions             # where /predict logs requests and predictions

Values may use ``${VAR}`` to read an environment variable. Backends are chosen by name and
imported only when used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from headwater.errors import ConfigError
from headwater.online.base import MARKER_RETENTION

CONFIG_FILE = "headwater.yaml"
STATE_DIR = ".headwater"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PROJECT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_MARKER_RETENTION_H = 87_600


@dataclass(frozen=True)
class RegistrySettings:
    """Where the catalog lives: a SQLite file (default) or a PostgreSQL URL."""

    url: str
    schema: str | None = None

    @property
    def backend(self) -> str:
        return "postgres" if self.url.startswith(("postgresql://", "postgres://")) else "sqlite"


@dataclass(frozen=True)
class OfflineSettings:
    """The offline engine and the databases SQL sources read from."""

    engine: str = "duckdb"
    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None
    connections: dict[str, str] = field(default_factory=dict)
    master: str | None = None
    """Spark only: the ``spark.master`` URL (None: ``local[*]``)."""
    spark_conf: dict[str, str] = field(default_factory=dict)
    """Spark only: settings passed to the SparkSession builder."""


@dataclass(frozen=True)
class OnlineSettings:
    """The online store: an embedded SQLite file (default) or Redis; with ``cluster`` (Redis
    only) a Redis Cluster whose seed node is ``url``
    (:mod:`headwater.online.redis_cluster`).

    ``marker_retention_h``: how long the exactly-once markers of streamed and pushed events
    (one per event and view it feeds online) are kept, in hours. A redelivered event is
    recognised only while its marker is kept, so it must exceed the longest a committed
    batch may stay unacknowledged (the longest outage of every consumer to recover from
    without double counting), and the stream's ``claim_timeout_s``. Each marker costs Redis
    about 120 bytes (see docs/deployment.md, "Sizing")."""

    type: str = "sqlite"
    path: str | None = None
    url: str | None = None
    cluster: bool = False
    marker_retention_h: float = MARKER_RETENTION / timedelta(hours=1)


@dataclass(frozen=True)
class ServerSettings:
    """The feature server (``headwater serve``): API keys and whether auth is on.

    The keys are kept out of ``repr`` so that settings can be logged."""

    auth: bool = True
    api_keys: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class StreamSettings:
    """The stream ``headwater stream`` consumes: Redis Streams (default) or NATS JetStream.

    ``group`` is the Redis consumer group or the NATS durable consumer shared by every
    consumer process; up to ``batch_size`` messages are read at a time (a read returns what
    is there, so a large batch only helps a consumer catch up: each entity's tile record is
    read and written once per batch), a read waits up to ``block_ms`` for them, and a
    message left unacknowledged for ``claim_timeout_s`` (its consumer died) is taken over by
    another consumer (Redis ``XAUTOCLAIM``; NATS ``ack_wait``)."""

    type: str = "redis"
    url: str = "redis://127.0.0.1:6379/0"
    group: str = "headwater"
    batch_size: int = 10_000
    block_ms: int = 1000
    claim_timeout_s: float = 60.0


@dataclass(frozen=True)
class ModelSettings:
    """Where model artifacts are kept and where online predictions are logged (both
    absolute paths; relative values in headwater.yaml are read from the repo folder)."""

    artifacts: Path
    predictions: Path


@dataclass(frozen=True)
class Settings:
    """Everything read from one repo's headwater.yaml, with paths made absolute."""

    project: str
    repo_path: Path
    registry: RegistrySettings
    offline: OfflineSettings
    online: OnlineSettings = field(default_factory=OnlineSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    models: ModelSettings | None = None

    @property
    def artifacts_path(self) -> Path:
        """The artifact folder (``.headwater/artifacts`` unless ``artifacts:`` says)."""
        return self.models.artifacts if self.models else self.state_dir / "artifacts"

    @property
    def predictions_path(self) -> Path:
        """The prediction log folder (``data/predictions`` unless ``predictions:`` says)."""
        return self.models.predictions if self.models else self.repo_path / "data" / "predictions"

    @property
    def state_dir(self) -> Path:
        """Where embedded stores keep their files (``.headwater/`` in the repo)."""
        return self.repo_path / STATE_DIR


def load_settings(repo_path: str | os.PathLike[str]) -> Settings:
    """Read ``headwater.yaml`` from ``repo_path``; raises ConfigError naming the fix."""
    repo = Path(repo_path).resolve()
    path = repo / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {repo}. Fix: run 'headwater init {repo_path}' or create "
            f"{CONFIG_FILE} with a line 'project: my_project'"
        )
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping such as 'project: my_project'")
    return parse_settings(_expand(raw, path), repo)


def parse_settings(raw: Mapping[str, Any], repo: Path) -> Settings:
    """Build settings from an already loaded mapping (used by tests and embedders)."""
    _known(raw, {"project", "registry", "offline", "online", "server", "stream", "artifacts",
                 "predictions"}, CONFIG_FILE)
    project = raw.get("project")
    if not isinstance(project, str) or not _PROJECT.match(project):
        raise ConfigError(
            f"{CONFIG_FILE}: 'project' must be a name of letters, digits and underscores, "
            f"got {project!r}. Fix: add a line 'project: my_project'"
        )
    registry = _registry(raw.get("registry"), repo)
    online, stream = _online(raw.get("online"), repo), _stream(raw.get("stream"))
    if online.marker_retention_h * 3600 <= stream.claim_timeout_s:
        raise ConfigError(
            f"{CONFIG_FILE}: online.marker_retention_h ({online.marker_retention_h:g} h) must "
            f"be longer than stream.claim_timeout_s ({stream.claim_timeout_s:g} s): an event "
            "redelivered after its marker is pruned would count twice. Fix: raise "
            "online.marker_retention_h (it must outlast any consumer outage to recover from)")
    return Settings(project, repo, registry, _offline(raw.get("offline")),
                    online, _server(raw.get("server")), stream,
                    ModelSettings(_folder(raw, "artifacts", repo, f"{STATE_DIR}/artifacts"),
                                  _folder(raw, "predictions", repo, "data/predictions")))


def _folder(raw: Mapping[str, Any], name: str, repo: Path, default: str) -> Path:
    value = raw.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{CONFIG_FILE}: '{name}' must be a folder path, got {value!r}. "
                          f"Fix: '{name}: {default}'")
    path = Path(value)
    return path if path.is_absolute() else repo / path


def _registry(value: Any, repo: Path) -> RegistrySettings:
    if value is None:
        return RegistrySettings(str(repo / STATE_DIR / "registry.db"))
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise ConfigError(f"{CONFIG_FILE}: 'registry' must be a path, a postgresql:// URL, "
                          "or a mapping with 'url' (and optional 'schema')")
    _known(value, {"url", "schema"}, "registry")
    settings = RegistrySettings(value["url"], value.get("schema"))
    if settings.backend == "sqlite" and not Path(settings.url).is_absolute():
        settings = RegistrySettings(str(repo / settings.url), settings.schema)
    return settings


def _offline(value: Any) -> OfflineSettings:
    if value is None:
        return OfflineSettings()
    if not isinstance(value, dict):
        raise ConfigError(f"{CONFIG_FILE}: 'offline' must be a mapping, e.g. 'engine: duckdb'")
    _known(value, {"engine", "memory_limit", "threads", "temp_directory", "connections",
                   "master", "spark_conf"}, "offline")
    engine = value.get("engine", "duckdb")
    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"{CONFIG_FILE}: offline engine '{engine}' is not available. "
                          "Fix: use 'engine: duckdb' or 'engine: spark'")
    threads = value.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{CONFIG_FILE}: offline.threads must be a positive integer")
    connections = value.get("connections") or {}
    if not isinstance(connections, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in connections.items()
    ):
        raise ConfigError(f"{CONFIG_FILE}: offline.connections must map names to URLs, "
                          "e.g. 'default: postgresql://127.0.0.1/warehouse'")
    master, conf = _spark(value, engine)
    memory = value.get("memory_limit")
    temp = value.get("temp_directory")
    return OfflineSettings(engine, None if memory is None else str(memory), threads,
                           None if temp is None else str(temp), dict(connections), master, conf)


def _spark(value: dict[str, Any], engine: str) -> tuple[str | None, dict[str, str]]:
    """The Spark settings of ``offline``: ``master`` and ``spark_conf``, engine spark only."""
    given = [k for k in ("master", "spark_conf") if k in value]
    if given and engine != "spark":
        raise ConfigError(f"{CONFIG_FILE}: offline.{given[0]} is a Spark setting but the "
                          f"offline engine is '{engine}'. Fix: add 'engine: spark', or "
                          f"remove offline.{given[0]}")
    master = value.get("master")
    if master is not None and (not isinstance(master, str) or not master.strip()):
        raise ConfigError(f"{CONFIG_FILE}: offline.master must be a Spark master URL such "
                          "as 'local[2]' or 'spark://host:7077'")
    conf = value.get("spark_conf") or {}
    if not isinstance(conf, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in conf.items()
    ):
        raise ConfigError(f"{CONFIG_FILE}: offline.spark_conf must map Spark setting names "
                          "to strings. Fix: quote each value, e.g. "
                          "'spark.sql.shuffle.partitions: \"8\"'")
    if "spark.jars.packages" in conf:
        raise ConfigError(f"{CONFIG_FILE}: offline.spark_conf.spark.jars.packages would make "
                          "Spark download jars at run time. Fix: install the jars locally and "
                          "name them in spark.jars")
    return master, dict(conf)


def _online(value: Any, repo: Path) -> OnlineSettings:
    default_path = str(repo / STATE_DIR / "online.db")
    if value is None:
        return OnlineSettings(path=default_path)
    if not isinstance(value, dict):
        raise ConfigError(f"{CONFIG_FILE}: 'online' must be a mapping, e.g. 'type: redis'")
    _known(value, {"type", "path", "url", "cluster", "marker_retention_h"}, "online")
    kind = value.get("type", "sqlite")
    retention = value.get("marker_retention_h", OnlineSettings.marker_retention_h)
    if isinstance(retention, bool) or not isinstance(retention, int | float) or not (
            0 < retention <= MAX_MARKER_RETENTION_H):
        raise ConfigError(f"{CONFIG_FILE}: online.marker_retention_h must be a positive "
                          f"number of hours up to {MAX_MARKER_RETENTION_H:,} (10 years), got "
                          f"{retention!r}. Fix: e.g. 'marker_retention_h: 24'")
    retention = float(retention)
    cluster = value.get("cluster", False)
    if not isinstance(cluster, bool):
        raise ConfigError(f"{CONFIG_FILE}: online.cluster must be true or false, got "
                          f"{cluster!r}. Fix: 'cluster: true' for Redis Cluster")
    if cluster and kind != "redis":
        raise ConfigError(f"{CONFIG_FILE}: online.cluster is for 'type: redis' only, but the "
                          f"online store type is '{kind}'. Fix: set 'type: redis' or drop "
                          "'cluster'")
    if kind == "sqlite":
        path = str(value.get("path") or default_path)
        if not Path(path).is_absolute():
            path = str(repo / path)
        return OnlineSettings("sqlite", path=path, marker_retention_h=retention)
    if kind == "redis":
        url = value.get("url", "redis://127.0.0.1:6379/0")
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"{CONFIG_FILE}: online.url must be a redis:// URL, got {url!r}")
        if cluster and not url.startswith(("redis://", "rediss://")):
            raise ConfigError(f"{CONFIG_FILE}: online.cluster needs a redis:// URL of a "
                              f"cluster node (host and port), got {url!r}. Fix: 'url: "
                              "redis://127.0.0.1:7000/0'")
        return OnlineSettings("redis", url=url, cluster=cluster, marker_retention_h=retention)
    raise ConfigError(f"{CONFIG_FILE}: online store type '{kind}' is not available. "
                      "Fix: use 'type: sqlite' or 'type: redis'")


def _server(value: Any) -> ServerSettings:
    if value is None:
        return ServerSettings()
    if not isinstance(value, dict):
        raise ConfigError(f"{CONFIG_FILE}: 'server' must be a mapping, e.g. "
                          "'api_keys: [${HEADWATER_API_KEY}]'")
    _known(value, {"auth", "api_keys"}, "server")
    auth = value.get("auth", True)
    if not isinstance(auth, bool):
        raise ConfigError(f"{CONFIG_FILE}: server.auth must be true or false, got {auth!r}")
    keys = value.get("api_keys") or []
    if isinstance(keys, str) or not isinstance(keys, list) or not all(
        isinstance(k, str) and k.strip() for k in keys
    ):
        raise ConfigError(f"{CONFIG_FILE}: server.api_keys must be a list of non-empty "
                          "strings, e.g. ['${HEADWATER_API_KEY}']")
    return ServerSettings(auth, tuple(k.strip() for k in keys))


_STREAM_URLS = {"redis": ("redis://", "rediss://", "unix://"), "nats": ("nats://", "tls://")}


def _stream(value: Any) -> StreamSettings:
    if value is None:
        return StreamSettings()
    if not isinstance(value, dict):
        raise ConfigError(f"{CONFIG_FILE}: 'stream' must be a mapping, e.g. 'type: redis'")
    _known(value, {"type", "url", "group", "batch_size", "block_ms", "claim_timeout_s"},
           "stream")
    kind = value.get("type", "redis")
    if kind not in _STREAM_URLS:
        raise ConfigError(f"{CONFIG_FILE}: stream type {kind!r} is not available. Fix: use "
                          "'type: redis' (Redis Streams) or 'type: nats' (NATS JetStream)")
    default = "redis://127.0.0.1:6379/0" if kind == "redis" else "nats://127.0.0.1:4222"
    url = value.get("url", default)
    if not isinstance(url, str) or not url.startswith(_STREAM_URLS[kind]):
        raise ConfigError(f"{CONFIG_FILE}: stream.url must start with "
                          f"{' or '.join(_STREAM_URLS[kind])} for type {kind}, got {url!r}")
    group = value.get("group", "headwater")
    if not isinstance(group, str) or not _PROJECT.match(group):
        raise ConfigError(f"{CONFIG_FILE}: stream.group must be a name of letters, digits "
                          f"and underscores, got {group!r}")
    numbers = {}
    for name, low in (("batch_size", 1), ("block_ms", 1), ("claim_timeout_s", 0.001)):
        number = value.get(name, getattr(StreamSettings, name))
        if isinstance(number, bool) or not isinstance(number, int | float) or number < low:
            raise ConfigError(f"{CONFIG_FILE}: stream.{name} must be a positive number, "
                              f"got {number!r}")
        if name != "claim_timeout_s" and not isinstance(number, int):
            raise ConfigError(f"{CONFIG_FILE}: stream.{name} must be an integer, got "
                              f"{number!r}")
        numbers[name] = number
    return StreamSettings(kind, url, group, int(numbers["batch_size"]),
                          int(numbers["block_ms"]), float(numbers["claim_timeout_s"]))


def _known(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(allowed)}")


def _expand(value: Any, path: Path) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path) for v in value]
    return value


def redact_url(url: str) -> str:
    """``url`` with any password (user info or ``?password=``) shown as ``***``, for
    messages and logs."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if "password" in query:
        query = urlencode([(name, "***" if name == "password" else value)
                           for name, value in parse_qsl(query, keep_blank_values=True)],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
