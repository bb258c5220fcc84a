"""Fixtures for CLI tests: a click runner and a repo made by `headwater init`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.repo import init_repo


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repo as `headwater init` writes it (4 drivers x 48 hours)."""
    folder = tmp_path / "repo"
    init_repo(folder, "demo_project", n_drivers=4, n_hours=48)
    return folder
