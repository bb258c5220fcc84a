"""The `headwater` commands on their happy paths, through click's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.cli.main import cli

COMMANDS = ["init", "plan", "apply", "list", "demo"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_on_every_command(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_group_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    for command in COMMANDS:
        assert f"  {command} " in result.output


@pytest.mark.parametrize("command", ["plan", "apply", "list"])
def test_repo_option_defaults_to_the_current_folder(runner: CliRunner, command: str) -> None:
    result = runner.invoke(cli, [command, "--help"])
    assert "--repo" in result.output and "[default: .]" in result.output


def test_init_writes_a_repo(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["init", str(tmp_path / "new-repo")])
    assert result.exit_code == 0, result.output
    assert "project new_repo" in result.output
    assert "data/driver_stats.parquet" in result.output
    assert (tmp_path / "new-repo/headwater.yaml").read_text().count("project: new_repo") == 1
    assert (tmp_path / "new-repo/data/driver_stats.parquet").stat().st_size > 0


def test_init_with_project_name(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["init", str(tmp_path / "r"), "--project", "fleet"])
    assert result.exit_code == 0, result.output
    assert "project: fleet" in (tmp_path / "r/headwater.yaml").read_text()


def test_apply_then_plan_shows_nothing_to_change(runner: CliRunner, repo: Path) -> None:
    planned = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert planned.exit_code == 0, planned.output
    assert "+ entity driver v1" in planned.output
    assert "+ feature_view driver_stats v1" in planned.output
    assert "+ feature_service driver_model v1" in planned.output
    assert "+ feature_view driver_trips v1" in planned.output
    assert "+ model driver_conversion v1" in planned.output
    assert "+ job nightly_features v1" in planned.output
    assert "7 to create" in planned.output

    applied = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert applied.exit_code == 0, applied.output
    assert "Applied: 7 to create" in applied.output

    again = runner.invoke(cli, ["plan", "-r", str(repo)])
    assert again.exit_code == 0, again.output
    assert "No changes. 7 object(s) up to date." in again.output


def test_list_shows_entities_views_with_types_and_ttl_and_services(
        runner: CliRunner, repo: Path) -> None:
    assert runner.invoke(cli, ["apply", "--repo", str(repo)]).exit_code == 0
    result = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Project demo_project" in out
    assert "Entities (1)" in out and "driver_id" in out
    assert "Feature views (2)" in out and "trips_1h: int64" in out
    assert "conv_rate: float64" in out and "trips: int64" in out and "1d" in out
    assert "Feature services (2)" in out and "driver_stats:*" in out
    assert "Models (1)" in out and "driver_conversion" in out
    assert "HistGradientBoostingClassifier" in out
    assert "Jobs (1)" in out and "0 2 * * *" in out and "materialize_incremental" in out


def test_list_of_an_empty_registry(runner: CliRunner, repo: Path) -> None:
    result = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "Entities (0)" in result.output and "Feature services (0)" in result.output


def test_apply_changes_and_prunes_what_the_files_no_longer_define(
        runner: CliRunner, repo: Path) -> None:
    assert runner.invoke(cli, ["apply", "--repo", str(repo)]).exit_code == 0
    features = repo / "features.py"
    text = features.read_text()
    text = text.replace("ttl=timedelta(days=1)", "ttl=timedelta(hours=6)")
    text = text.replace('driver_live = hw.FeatureService("driver_live", '
                        'features=[driver_trips])\n', "")
    features.write_text(text)

    planned = runner.invoke(cli, ["plan", "--repo", str(repo)])
    assert planned.exit_code == 0, planned.output
    assert "~ feature_view driver_stats v1 -> v2 (changed: ttl)" in planned.output
    assert "- feature_service driver_live v1" in planned.output

    applied = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert applied.exit_code == 0, applied.output
    listed = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert "Feature services (1)" in listed.output and "6h" in listed.output
    assert "driver_live" not in listed.output


def test_commands_default_to_the_current_folder(
        runner: CliRunner, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert runner.invoke(cli, ["apply"]).exit_code == 0
    result = runner.invoke(cli, ["plan"])
    assert result.exit_code == 0 and "No changes" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "headwater" in result.output
