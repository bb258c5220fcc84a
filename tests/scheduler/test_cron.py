"""Cron expressions: parsing, the day rule, and next_after against a minute-by-minute search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.scheduler.cron import parse_cron

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def brute_next(expression: str, after: datetime, limit: timedelta) -> datetime | None:
    """The reference: try every minute after ``after`` for ``limit``."""
    schedule = parse_cron(expression)
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = after + limit
    while t <= end:
        if schedule.matches(t):
            return t
        t += timedelta(minutes=1)
    return None


def test_fields_lists_ranges_steps_and_names() -> None:
    s = parse_cron("0,30 8-18/5 */10 JAN-mar,dec mon-fri")
    assert s.minutes == {0, 30}
    assert s.hours == {8, 13, 18}
    assert s.days == {1, 11, 21, 31}
    assert s.months == {1, 2, 3, 12}
    assert s.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("5/20 * * * *").minutes == {5, 25, 45}


def test_sunday_is_0_and_7() -> None:
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("0 0 * * 0").weekdays == {0}
    assert parse_cron("0 0 * * 5-7").weekdays == {5, 6, 0}
    assert parse_cron("0 0 * * fri-sun").weekdays == {5, 6, 0}
    assert parse_cron("0 0 * * *").weekdays == set(range(7))
    sunday = datetime(2024, 1, 7, tzinfo=UTC)
    assert parse_cron("0 0 * * 7").next_after(T0) == sunday


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # the 15th (a Monday in Jan 2024 is the 1st, 8th, 15th...) or any Friday
    both = parse_cron("0 0 15 * fri")
    assert both.next_after(T0) == datetime(2024, 1, 5, tzinfo=UTC)  # Friday 5th
    assert both.matches(datetime(2024, 1, 15, tzinfo=UTC))  # a Monday, but the 15th
    # a '*' day field: both must match (Vixie cron counts '*/2' as unrestricted too)
    assert parse_cron("0 0 * * fri").next_after(T0) == datetime(2024, 1, 5, tzinfo=UTC)
    step = parse_cron("0 0 */2 * fri")  # odd days AND Fridays (OR would give Wednesday 3rd)
    assert not step.matches(datetime(2024, 1, 3, tzinfo=UTC))
    assert step.next_after(T0) == datetime(2024, 1, 5, tzinfo=UTC)
    assert step.next_after(datetime(2024, 1, 5, tzinfo=UTC)) == datetime(2024, 1, 19, tzinfo=UTC)


def test_next_after_is_strictly_later_utc_and_minute_aligned() -> None:
    s = parse_cron("*/15 * * * *")
    assert s.next_after(T0) == T0 + timedelta(minutes=15)
    assert s.next_after(T0 + timedelta(seconds=59)) == T0 + timedelta(minutes=15)
    naive = datetime(2024, 1, 1, 0, 14, 30)
    assert s.next_after(naive) == T0 + timedelta(minutes=15)
    paris = timezone(timedelta(hours=1))
    assert s.next_after(datetime(2024, 1, 1, 1, 0, tzinfo=paris)) == T0 + timedelta(minutes=15)
    assert parse_cron("@hourly").next_after(T0) == T0 + timedelta(hours=1)
    assert parse_cron("@yearly").next_after(T0) == datetime(2025, 1, 1, tzinfo=UTC)


def test_leap_day_is_found_years_ahead() -> None:
    assert parse_cron("0 0 29 2 *").next_after(datetime(2024, 3, 1, tzinfo=UTC)) == \
        datetime(2028, 2, 29, tzinfo=UTC)
    assert parse_cron("0 12 29 2 *").matches(datetime(2028, 2, 29, 12, 0, 59, tzinfo=UTC))


@pytest.mark.parametrize(("expression", "message"), [
    ("* * * *", "has 4 field(s); expected 5"),
    ("* * * * * *", "has 6 field(s)"),
    ("", "has 0 field(s)"),
    ("60 * * * *", "minute value '60' in '60' is outside 0-59"),
    ("* 24 * * *", "hour value '24'"),
    ("* * 0 * *", "day-of-month value '0'"),
    ("* * * 13 *", "month value '13'"),
    ("* * * * 8", "day-of-week value '8'"),
    ("* * * foo *", "month field has 'foo'"),
    ("*/0 * * * *", "step in '*/0' must be at least 1"),
    ("10-5 * * * *", "range '10-5' runs backwards"),
    ("1,,2 * * * *", "empty list item"),
    ("-1 * * * *", "minute field has ''"),
    ("0 0 30 2 *", "never matches"),
    ("0 0 31 4,6 *", "never matches"),
])
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_cron(expression)
    assert message in str(info.value)


def test_a_job_with_a_bad_schedule_is_a_definition_error() -> None:
    import headwater as hw
    from headwater.errors import DefinitionError

    with pytest.raises(DefinitionError, match=r"schedule.*outside 0-23"):
        hw.Job("j", schedule="0 25 * * *", action="materialize_incremental")


def _field(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    value = st.integers(low, high).map(str)
    if names:
        value = value | st.sampled_from(names)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda ab: f"{min(ab)}-{max(ab)}")
    item = st.one_of(value, ranged, st.just("*"))
    stepped = st.tuples(item, st.integers(1, max(1, (high - low) // 2 + 1))).map(
        lambda pair: f"{pair[0]}/{pair[1]}")
    return st.lists(st.one_of(item, stepped), min_size=1, max_size=3).map(",".join)


EXPRESSIONS = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12, ("jan", "feb", "jul", "dec")),
    _field(0, 7, ("sun", "mon", "fri", "sat")),
).map(" ".join)
HORIZON = timedelta(days=2)
MOMENTS = st.datetimes(datetime(2023, 1, 1), datetime(2026, 12, 31),
                       timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(expression=EXPRESSIONS, after=MOMENTS)
def test_next_after_equals_a_minute_by_minute_search(expression: str, after: datetime) -> None:
    try:
        schedule = parse_cron(expression)
    except ValueError as exc:
        assert "never matches" in str(exc)  # generated fields are otherwise valid
        return
    found = schedule.next_after(after)
    assert found > after and found.second == 0 and found.microsecond == 0
    assert schedule.matches(found)
    # the reference finds the same minute from ``after``, or no match in its horizon; and
    # none in the horizon before ``found`` either
    reference = brute_next(expression, after, HORIZON)
    assert reference == (found if found - after <= HORIZON else None)
    if found - after > HORIZON:
        assert brute_next(expression, found - HORIZON, HORIZON) == found
