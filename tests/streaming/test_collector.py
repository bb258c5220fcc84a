"""The consumer's garbage-collector pacing: raised while consumers run, restored after."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from headwater.streaming.collector import YOUNG_THRESHOLD, paced_collector


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    found = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*found)


def test_raised_while_running_and_restored_after() -> None:
    with paced_collector():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_consumers_restore_what_the_first_found() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def first() -> None:
        with paced_collector():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with paced_collector():
        second_in.set()
        first_out.wait(10)
        seen.append(gc.get_threshold())  # the first ended: still paced for this one
    thread.join(10)
    assert seen == [(YOUNG_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_or_a_disabled_collector_is_left_alone() -> None:
    gc.set_threshold(100_000, 5, 5)
    with paced_collector():
        assert gc.get_threshold() == (100_000, 5, 5)
    gc.set_threshold(0, 10, 10)
    with paced_collector():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_restored_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), paced_collector():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
