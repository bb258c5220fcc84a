"""``headwater monitor list|run|history``: on the repo `headwater init` writes, with a
feature-view monitor added to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from headwater.cli.main import cli

MONITOR = '''

stats_quality = hw.Monitor("stats_quality", feature_view="driver_stats",
                           window=timedelta(hours=6), freshness=timedelta(hours=2))
'''


def add_monitor(repo: Path) -> None:
    """Append the monitor to the repo's definitions."""
    definitions = next(p for p in repo.glob("*.py") if "hw.FeatureView(" in p.read_text())
    text = definitions.read_text()
    if "from datetime import" not in text:
        text = "from datetime import timedelta\n" + text
    definitions.write_text(text + MONITOR)


def test_run_list_and_history(runner: CliRunner, repo: Path) -> None:
    add_monitor(repo)
    applied = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert applied.exit_code == 0, applied.output
    listed = runner.invoke(cli, ["monitor", "list", "--repo", str(repo)])
    assert listed.exit_code == 0 and "stats_quality" in listed.output
    assert "never" in listed.output

    # far after the generated data: nothing in the window and stale, so exit status 1
    late = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    result = runner.invoke(cli, ["monitor", "run", "stats_quality", "--end", late.isoformat(),
                                 "--json", "--repo", str(repo)])
    assert result.exit_code == 3, result.output  # alerts: 3, errors: 1
    stored = json.loads(result.output.strip().splitlines()[-1])
    assert stored["status"] == "alert" and stored["monitor"] == "stats_quality"
    failed = {f["check"] for f in stored["findings"] if f["failed"]}
    assert {"quality.volume", "quality.freshness"} <= failed

    history = runner.invoke(cli, ["monitor", "history", "stats_quality", "--repo", str(repo)],
                            env={"COLUMNS": "240"})
    assert history.exit_code == 0 and "alert" in history.output
    assert "quality.freshness" in history.output

    out = repo / "reports"
    written = runner.invoke(cli, ["monitor", "report", "stats_quality", "--out", str(out),
                                  "--repo", str(repo)], env={"COLUMNS": "240"})
    assert written.exit_code == 0, written.output
    data = json.loads((out / "stats_quality.json").read_text())
    assert [r["status"] for r in data["runs"]] == ["alert"]
    assert "<svg" in (out / "stats_quality.html").read_text()

    unknown = runner.invoke(cli, ["monitor", "run", "nope", "--repo", str(repo)])
    assert unknown.exit_code != 0 and "nope" in unknown.output


def test_run_without_monitors_says_how_to_add_one(runner: CliRunner, repo: Path) -> None:
    assert runner.invoke(cli, ["apply", "--repo", str(repo)]).exit_code == 0
    result = runner.invoke(cli, ["monitor", "run", "--repo", str(repo)])
    assert result.exit_code != 0 and "hw.Monitor" in result.output
