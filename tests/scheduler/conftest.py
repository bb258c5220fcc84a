"""Scheduler fixtures: a repo made by `headwater init`, applied, and a clock tests move."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import headwater as hw
from headwater.repo import init_repo, load_repo

START = datetime(2024, 1, 1, tzinfo=UTC)  # the generated data's first hour
N_HOURS = 48
T0 = START + timedelta(hours=24, minutes=5)  # inside the data, between slots


class Clock:
    """A scheduler clock that only moves when the test says so."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def set(self, t: datetime) -> None:
        self.t = t


def make_repo(folder: Path, registry: str | None = None) -> Path:
    """`headwater init` (4 drivers x 48 hours) with an optional registry line, applied
    without its example job (each test registers the jobs it runs)."""
    init_repo(folder, "sched", n_drivers=4, n_hours=N_HOURS, start=START)
    if registry is not None:
        config = folder / "headwater.yaml"
        config.write_text(config.read_text() + f"registry: {registry}\n")
    with hw.FeatureStore(folder) as store:
        store.apply([d.obj for d in load_repo(folder) if not isinstance(d.obj, hw.Job)])
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def store(repo: Path) -> Iterator[hw.FeatureStore]:
    with hw.FeatureStore(repo) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)
