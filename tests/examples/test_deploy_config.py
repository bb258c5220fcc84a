"""examples/deploy/headwater.yaml, the deployment guide's sample configuration, loads and
picks the production backends; docs/deployment.md names only real commands and options."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.cli.main import cli
from headwater.config import load_settings
from headwater.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "deploy"
GUIDE = ROOT / "docs" / "deployment.md"
SECRETS = {"HEADWATER_PG_PASSWORD": "pg-secret-1", "HEADWATER_REDIS_PASSWORD": "redis-secret-2",
           "HEADWATER_API_KEY": "api-key-3"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    shutil.copy(EXAMPLE / "headwater.yaml", tmp_path / "headwater.yaml")
    return tmp_path


def test_the_sample_configuration_picks_the_production_backends(repo: Path) -> None:
    settings = load_settings(repo)
    assert settings.registry.backend == "postgres"
    assert settings.registry.url == (
        "postgresql://headwater:pg-secret-1@postgres.internal:5432/headwater")
    assert settings.registry.schema == "headwater"
    assert settings.online.type == "redis"
    assert settings.online.url == "redis://:redis-secret-2@redis-online.internal:6379/0"
    assert settings.online.cluster is False
    assert settings.online.marker_retention_h == 48
    assert settings.offline.engine == "spark"
    assert settings.offline.master == "spark://spark-master.internal:7077"
    assert settings.offline.spark_conf["spark.sql.shuffle.partitions"] == "64"
    assert settings.stream.type == "redis"
    assert settings.stream.url.endswith("@redis-streams.internal:6379/0")
    assert settings.stream.group == "shop_features"
    assert settings.server.auth is True
    assert settings.server.api_keys == ("api-key-3",)
    assert settings.artifacts_path == Path("/mnt/headwater/artifacts")
    assert settings.predictions_path == Path("/mnt/headwater/predictions")


def test_the_sample_holds_no_secret_and_names_a_missing_one(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (EXAMPLE / "headwater.yaml").read_text()
    values = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # no comments
    assert set(re.findall(r"\$\{(\w+)\}", values)) == set(SECRETS)
    assert not any(value in text for value in SECRETS.values())
    monkeypatch.delenv("HEADWATER_REDIS_PASSWORD")
    with pytest.raises(ConfigError, match="HEADWATER_REDIS_PASSWORD is not set"):
        load_settings(repo)


def test_the_guide_names_real_commands_and_options() -> None:
    text = GUIDE.read_text()
    assert "examples/deploy/headwater.yaml" in text
    runner = CliRunner()
    used = set(re.findall(r"headwater ([a-z][a-z-]+)((?: --?[a-z][a-z-]*(?: [^\s`|-][^\s`|]*)?)*)",
                          text))
    assert {command for command, _ in used} >= {"serve", "stream", "scheduler", "ui", "keys",
                                                "materialize-incremental", "apply"}
    for command, options in used:
        helped = runner.invoke(cli, [command, "--help"])
        assert helped.exit_code == 0, f"headwater {command}: {helped.output}"
        for option in re.findall(r"(--[a-z][a-z-]*)", options):
            assert option in helped.output, f"headwater {command} has no {option}"
