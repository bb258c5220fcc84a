"""The wait before a retry doubles per failed attempt and is capped."""

from __future__ import annotations

from datetime import timedelta

import headwater as hw
from headwater.scheduler.runner import MAX_RETRY_WAIT, retry_wait


def test_the_backoff_doubles_then_stops_at_the_cap() -> None:
    job = hw.Job("j", schedule="* * * * *", action="materialize_incremental", retries=100,
                 retry_backoff=timedelta(seconds=30))
    assert [retry_wait(job, n) for n in (1, 2, 3)] == [
        timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert retry_wait(job, 20) == MAX_RETRY_WAIT
    assert retry_wait(job, 100) == MAX_RETRY_WAIT  # 30 s * 2**99 would overflow a datetime
    none = hw.Job("k", schedule="* * * * *", action="materialize_incremental",
                  retry_backoff=timedelta(0))
    assert retry_wait(none, 5) == timedelta(0)
