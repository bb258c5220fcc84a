"""`headwater materialize` and `materialize-incremental` over a repo made by `init`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

import headwater as hw
from headwater.cli.main import cli


def test_materialize_then_incremental_serves_online(runner: CliRunner, repo: Path) -> None:
    assert runner.invoke(cli, ["apply", "--repo", str(repo)]).exit_code == 0
    result = runner.invoke(cli, ["materialize", "2024-01-01", "2024-01-01T12:00:00",
                                 "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "driver_stats: 4 rows from 2024-01-01T00:00:00+00:00" in result.output
    result = runner.invoke(cli, ["materialize-incremental", "2024-01-02T06:00:00",
                                 "--repo", str(repo), "--views", "driver_stats"])
    assert result.exit_code == 0, result.output
    assert "from 2024-01-01T12:00:00+00:00 to 2024-01-02T06:00:00+00:00" in result.output
    with hw.FeatureStore(repo) as store:
        response = store.get_online_features(["driver_stats:trips"], [{"driver_id": 1001}],
                                             now=datetime(2024, 1, 2, 6, tzinfo=UTC))
        assert response.metadata["driver_stats"].event_timestamps == [
            datetime(2024, 1, 2, 6, tzinfo=UTC)]
    again = runner.invoke(cli, ["materialize-incremental", "2024-01-02", "--repo", str(repo),
                                "--views", "driver_stats"])
    assert again.exit_code == 0
    assert "Nothing to materialize" in again.output


def test_bad_times_and_unknown_views_are_clear_errors(runner: CliRunner, repo: Path) -> None:
    runner.invoke(cli, ["apply", "--repo", str(repo)])
    bad = runner.invoke(cli, ["materialize", "yesterday", "2024-01-02", "--repo", str(repo)])
    assert bad.exit_code == 2
    assert "'yesterday' is not an ISO-8601 time" in bad.output
    backwards = runner.invoke(cli, ["materialize", "2024-01-02", "2024-01-01",
                                    "--repo", str(repo)])
    assert backwards.exit_code == 1
    assert "is after end" in backwards.output
    unknown = runner.invoke(cli, ["materialize", "2024-01-01", "2024-01-02", "--repo",
                                  str(repo), "--views", "nope"])
    assert unknown.exit_code == 1
    assert "no feature_view named 'nope'" in unknown.output
