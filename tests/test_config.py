"""headwater.yaml parsing: defaults, backends by name, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import load_settings
from headwater.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "headwater.yaml").write_text(text)
    return tmp_path


def test_project_alone_gives_the_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "project: demo\n"))
    assert settings.project == "demo"
    assert settings.registry.backend == "sqlite"
    assert settings.registry.url == str(tmp_path.resolve() / ".headwater" / "registry.db")
    assert settings.offline.engine == "duckdb"


def test_postgres_registry_and_connections_with_env_expansion(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PG", "postgresql://u@db/x")
    settings = load_settings(write(tmp_path, (
        "project: p\nregistry: {url: '${HW_PG}', schema: cat}\n"
        "offline: {threads: 2, memory_limit: 4GB, connections: {default: '${HW_PG}'}}\n")))
    assert settings.registry.backend == "postgres"
    assert settings.registry.schema == "cat"
    assert settings.offline.connections == {"default": "postgresql://u@db/x"}
    assert settings.offline.threads == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "'project' must be"),
        ("project: 'my project'\n", "'project' must be"),
        ("project: p\nregistery: x\n", "unknown setting(s) ['registery']"),
        ("project: p\noffline: {engine: bigquery}\n", "not available"),
        ("project: p\noffline: {threads: 0}\n", "positive integer"),
        ("project: p\noffline: {connections: [a]}\n", "map names to URLs"),
        ("project: p\noffline: {master: 'local[2]'}\n", "add 'engine: spark'"),
        ("project: p\noffline: {engine: duckdb, spark_conf: {a: b}}\n",
         "offline.spark_conf is a Spark setting"),
        ("project: p\noffline: {engine: spark, spark_conf: {spark.sql.shuffle.partitions: 8}}\n",
         "quote each value"),
        ("project: p\noffline: {engine: spark, spark_conf: [a]}\n", "map Spark setting names"),
        ("project: p\noffline: {engine: spark, master: 3}\n", "Spark master URL"),
        ("project: p\noffline: {engine: spark, spark_conf: {spark.jars.packages: 'a:b:1'}}\n",
         "download"),
        ("project: p\nregistry: {url: '${HW_NOT_SET_ANYWHERE}'}\n", "HW_NOT_SET_ANYWHERE"),
        ("project: [unclosed\n", "not valid YAML"),
        ("project: p\nonline: {marker_retention_h: 0}\n", "positive number of hours"),
        ("project: p\nonline: {marker_retention_h: a day}\n", "positive number of hours"),
        ("project: p\nonline: {marker_retention_h: .nan}\n", "positive number of hours"),
        ("project: p\nonline: {marker_retention_h: true}\n", "positive number of hours"),
        ("project: p\nonline: {marker_retention_h: 1e11}\n", "up to 87,600 (10 years)"),
        ("project: p\nonline: {type: redis, marker_retention_h: 0.01}\n",
         "must be longer than stream.claim_timeout_s (60 s)"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert words in str(err.value)


def test_spark_engine_settings(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, (
        "project: p\noffline:\n  engine: spark\n  master: local[2]\n  spark_conf:\n"
        "    spark.sql.shuffle.partitions: '8'\n")))
    assert settings.offline.engine == "spark"
    assert settings.offline.master == "local[2]"
    assert settings.offline.spark_conf == {"spark.sql.shuffle.partitions": "8"}
    default = load_settings(write(tmp_path, "project: p\noffline: {engine: spark}\n"))
    assert default.offline.master is None and default.offline.spark_conf == {}


def test_a_folder_without_headwater_yaml_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="headwater init"):
        load_settings(tmp_path)
