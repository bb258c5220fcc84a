"""``headwater stream``: help, refusals, and a bounded run over Redis Streams."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from headwater.cli.main import cli
from tests.streaming.stream_repo import (
    events,
    make_repo,
    offline_rows,
    payloads,
    publisher,
    stream_yaml,
    unique_topic,
)


def test_help_names_the_options_and_settings() -> None:
    result = CliRunner().invoke(cli, ["stream", "--help"])
    assert result.exit_code == 0
    for word in ("--source", "--consumer", "--max-events", "--idle-exit", "batch_size",
                 "claim_timeout_s", "<topic>.dead"):
        assert word in result.output


def test_an_unknown_source_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trips")
    result = CliRunner().invoke(cli, ["stream", "--repo", str(repo), "--source", "nope",
                                      "--idle-exit", "0.1"])
    assert result.exit_code == 1
    assert "'nope' is not a StreamSource" in result.output


def test_a_bad_stream_setting_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trips")
    (repo / "headwater.yaml").write_text("project: stream_test\nstream:\n  type: kafka\n")
    result = CliRunner().invoke(cli, ["stream", "--repo", str(repo), "--idle-exit", "0.1"])
    assert result.exit_code == 1
    assert "stream type 'kafka' is not available" in result.output


def test_max_events_stops_after_that_many_and_prints_the_counters(
        tmp_path: Path, redis_url: str) -> None:
    topic = unique_topic()
    repo = make_repo(tmp_path / "repo", topic, stream_yaml("redis", redis_url, batch_size=40))
    with publisher("redis", redis_url, topic) as pub:
        pub.publish(payloads(events(300)))
        result = CliRunner().invoke(cli, ["stream", "--repo", str(repo), "--consumer", "c",
                                          "--max-events", "100", "--idle-exit", "5"])
        assert result.exit_code == 0, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("100 events in 3 batches, 0 duplicates skipped, "
                               "0 dead-lettered"), last
        assert "events/s" in last
        assert offline_rows(repo).num_rows == 100
