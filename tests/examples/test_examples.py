"""examples/ run: each example repo is copied, its data generated, applied and queried."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from headwater.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def python(script: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, script], cwd=cwd, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_driver_stats_example(tmp_path: Path) -> None:
    repo = tmp_path / "driver_stats"
    shutil.copytree(EXAMPLES / "driver_stats", repo,
                    ignore=shutil.ignore_patterns("data", ".headwater", "__pycache__"))
    assert "wrote 4200 rows" in python("generate_data.py", repo)

    runner = CliRunner()
    applied = runner.invoke(cli, ["apply", "--repo", str(repo)])
    assert applied.exit_code == 0, applied.output
    assert "Applied: 5 to create" in applied.output
    listed = runner.invoke(cli, ["list", "--repo", str(repo)])
    assert "Feature views (2)" in listed.output and "driver_scores:f2" in listed.output

    out = python("training_frame.py", repo)
    assert "1000 rows, columns: driver_id, event_timestamp, label, conv_rate, trips, f2" in out
