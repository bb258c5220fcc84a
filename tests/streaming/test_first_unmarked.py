"""Which messages of a batch the consumer applies: the first copy of each id not applied."""

from __future__ import annotations

from headwater.streaming.consumer import first_unmarked


def test_marked_ids_and_repeats_within_the_batch_are_skipped() -> None:
    ids = ["1-0", "2-0", "1-0", "3-0", "2-0", "4-0"]
    assert first_unmarked(ids, {"3-0"}) == [True, True, False, False, False, True]


def test_a_fresh_batch_is_applied_whole() -> None:
    assert first_unmarked(["5", "6", "7"], set()) == [True, True, True]
    assert first_unmarked([], set()) == []
