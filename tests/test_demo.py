"""The demo: generated data -> repo -> trained, promoted model -> served features and
predictions -> batch scores -> live events, at a small size."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from headwater.cli.main import cli
from headwater.demo import MARKER, STEPS, DemoSize, StepReport, run_demo
from headwater.errors import HeadwaterError

SMALL = DemoSize(n_drivers=40, n_hours=72, n_rows=3_000)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    def step_started(self, index: int, name: str) -> None:
        self.events.append(("start", index, name))

    def step_finished(self, index: int, report: StepReport) -> None:
        self.events.append(("end", index, report.name))


def test_demo_learns_from_point_in_time_features(tmp_path: Path) -> None:
    listener = Recorder()
    result = run_demo(tmp_path / "demo", SMALL, listener=listener)

    assert result.metric_name == "roc_auc"
    assert isinstance(result.metric, float)
    assert 0.5 < result.metric <= 1.0
    assert result.features == ("conv_rate", "trips")
    assert result.train_rows + result.test_rows == SMALL.n_rows
    assert result.test_rows == pytest.approx(0.2 * SMALL.n_rows, rel=0.05)
    assert result.model_version == 1

    steps = {s.name: s for s in result.steps}
    assert tuple(steps) == STEPS
    assert steps["generate data"].rows == SMALL.n_drivers * SMALL.n_hours
    assert steps["train model"].rows == SMALL.n_rows
    assert "driver_conversion@production -> version 1" in steps["promote to production"].detail
    assert all(s.seconds >= 0 for s in result.steps)
    expected = [(kind, i, name) for i, name in enumerate(STEPS) for kind in ("start", "end")]
    assert listener.events == expected

    assert steps["materialize"].rows == 2 * SMALL.n_drivers  # driver_stats and driver_trips
    assert steps["serve online features"].rows == 5
    assert result.served.requests == 200
    assert set(result.served.statuses["driver_stats"]) == {"PRESENT"}

    predicted = result.predicted
    assert (predicted.model, predicted.version) == ("driver_conversion", 1)
    assert len(predicted.probabilities) == 5 and predicted.requests == 200
    assert all(p is not None and 0.0 <= p <= 1.0 for p in predicted.probabilities)
    assert set(predicted.predictions) <= {0, 1}
    assert 0 < predicted.p50_ms <= predicted.p99_ms
    assert result.scored_rows == SMALL.n_drivers
    scores = pq.read_table(result.repo / "data/scores/driver_conversion.parquet")
    assert scores.num_rows == SMALL.n_drivers
    assert {"driver_id", "prediction", "probability"} <= set(scores.column_names)

    live = result.live
    assert steps["stream live events"].rows == live.events == live.batches * 50
    assert live.reads > 0 and live.fresh_p99_ms >= live.fresh_p50_ms > 0
    # every driver got trips in the last hour: at least the live ones, pushed just now
    assert all(count >= 1 for count in result.live_values["trips_1h"])
    assert len(result.live_values["last_fare"]) == 5
    assert len(result.served.results["conv_rate"]) == 5
    assert 0 < result.served.p50_ms <= result.served.p99_ms

    monitored = result.monitored
    assert "conv_rate" in monitored.drifted and monitored.alerts == 1
    assert monitored.pushed == SMALL.n_drivers and monitored.predictions >= SMALL.n_drivers
    assert "candidate driver_conversion:2" in monitored.retrain
    assert monitored.report.is_file() and monitored.report.suffix == ".html"
    assert monitored.report.with_suffix(".json").is_file()

    assert (result.repo / "headwater.yaml").is_file()
    assert (result.repo / MARKER).is_file()


def test_demo_replaces_its_own_folder_and_refuses_others(tmp_path: Path) -> None:
    tiny = DemoSize(n_drivers=5, n_hours=24, n_rows=400)
    run_demo(tmp_path / "demo", tiny)
    (tmp_path / "demo" / "left_over.txt").write_text("x")
    run_demo(tmp_path / "demo", tiny)
    assert not (tmp_path / "demo" / "left_over.txt").exists()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(HeadwaterError, match="not made by the demo"):
        run_demo(mine, tiny)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_demo_size_is_validated() -> None:
    with pytest.raises(HeadwaterError, match="at least"):
        DemoSize(n_drivers=0)


def test_demo_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "demo", "--dir", str(tmp_path / "d"), "--drivers", "20", "--hours", "48",
        "--rows", "1500",
    ])
    assert result.exit_code == 0, result.output
    assert "ROC AUC: 0." in result.output
    assert "Monitor: drift flagged in [" in result.output and "conv_rate" in result.output
    assert "Dashboard: headwater ui --repo" in result.output and "127.0.0.1:6567" in result.output
    for step in STEPS:
        assert step in result.output


def test_logic_modules_do_not_import_the_cli_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, headwater.demo, headwater.repo\n"
            "print(','.join(m for m in ('click', 'rich', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
