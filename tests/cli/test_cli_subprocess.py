"""The installed `headwater` console script, run as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def headwater_script() -> str:
    beside = Path(sys.executable).parent / "headwater"
    if beside.exists():
        return str(beside)
    found = shutil.which("headwater")
    if found is None:
        pytest.fail("the `headwater` console script is not installed; run `make venv`")
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    return subprocess.run([headwater_script(), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_init_apply_plan_list(tmp_path: Path) -> None:
    init = run("init", "fleet", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    repo = tmp_path / "fleet"

    apply = run("apply", cwd=repo)
    assert apply.returncode == 0, apply.stderr
    assert "Applied: 7 to create" in apply.stdout

    plan = run("plan", cwd=repo)
    assert plan.returncode == 0, plan.stderr
    assert "No changes" in plan.stdout

    listed = run("list", "--repo", str(repo), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("driver", "driver_stats", "conv_rate", "driver_model", "1d"):
        assert name in listed.stdout


def test_error_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = run("plan", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no headwater.yaml")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_usage_error_exit_code_2(tmp_path: Path) -> None:
    result = run("apply", "--frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such option" in result.stderr
