"""Cron expressions: five fields, evaluated in UTC at minute resolution.

``minute hour day-of-month month day-of-week``, as in Vixie cron (the Linux ``crontab``):

* each field is a comma-separated list of ``*``, ``N``, ``A-B``, each optionally followed by
  ``/STEP`` (``*/15``, ``8-18/2``); ``N/STEP`` means ``N-max/STEP``;
* months accept ``jan``-``dec`` and weekdays ``sun``-``sat`` (any case), also inside ranges;
  weekday ``0`` and ``7`` are both Sunday (``fri-sun`` and ``5-7`` are Friday to Sunday);
* the day rule: when both day-of-month and day-of-week are restricted (their field does not
  begin with ``*``), a day matches if EITHER matches (``0 0 1 * mon`` runs on the 1st and on
  every Monday); otherwise both must match. As in Vixie cron, a field beginning with ``*``
  (``*/2`` too) counts as unrestricted for this rule;
* the shorthands ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``) and ``@hourly`` are accepted.

A bad expression raises :class:`ValueError` naming the field and the value; so does one
that can never match (``0 0 31 2 *``).

>>> parse_cron("*/15 9-17 * * mon-fri").next_after(datetime(2024, 1, 6, 12, 0, tzinfo=UTC))
datetime.datetime(2024, 1, 8, 9, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from headwater.types import to_utc

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: tuple[dict[str, int], ...] = (
    {}, {}, {},
    {name: i + 1 for i, name in enumerate(_MONTHS)},
    {name: i for i, name in enumerate(_WEEKDAYS)},
)
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February can have 29
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the allowed values of each field and the day rule.

    ``weekdays`` use 0 for Sunday (7 is folded into 0). Times are UTC; naive datetimes are
    read as UTC, aware ones converted.
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires in the minute holding ``moment`` (seconds ignored)."""
        t = to_utc(moment)
        return (t.minute in self.minutes and t.hour in self.hours and t.month in self.months
                and self._day_matches(t.date()))

    def next_after(self, moment: datetime) -> datetime:
        """The first minute strictly after ``moment`` at which the schedule fires (UTC,
        seconds and microseconds zero)."""
        t = to_utc(moment).replace(second=0, microsecond=0) + _MINUTE
        while True:
            if t.month not in self.months:
                year, month = t.year, _next_value(self.months, t.month)
                if month is None:
                    year, month = year + 1, min(self.months)
                t = datetime(year, month, 1, tzinfo=UTC)
            elif not self._day_matches(t.date()):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
            elif t.hour not in self.hours:
                hour = _next_value(self.hours, t.hour)
                day = datetime(t.year, t.month, t.day, tzinfo=UTC)
                t = day + (timedelta(hours=hour) if hour is not None else timedelta(days=1))
            elif t.minute not in self.minutes:
                minute = _next_value(self.minutes, t.minute)
                hour_start = t.replace(minute=0)
                t = hour_start + (timedelta(minutes=minute) if minute is not None
                                  else timedelta(hours=1))
            else:
                return t

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five-field cron expression (or a shorthand such as ``@daily``).

    Raises :class:`ValueError` with a message naming the bad field and value.
    """
    if not isinstance(expression, str):
        raise ValueError(f"a cron expression is a string, not {type(expression).__name__}")
    text = " ".join(expression.split())
    text = _SHORTHANDS.get(text.lower(), text)
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expression!r} has {len(fields)} field(s); expected 5: "
            "minute hour day-of-month month day-of-week")
    values = [_parse_field(i, value) for i, value in enumerate(fields)]
    weekdays = frozenset(d % 7 for d in values[4])
    schedule = CronSchedule(
        expression=expression, minutes=values[0], hours=values[1], days=values[2],
        months=values[3], weekdays=weekdays,
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"))
    if not (schedule.days_restricted and schedule.weekdays_restricted) and not any(
            day <= _MONTH_DAYS[month - 1] for month in schedule.months for day in schedule.days):
        raise ValueError(f"cron expression {expression!r} never matches: no month in its "
                         "month field has any day of its day-of-month field")
    return schedule


def _parse_field(index: int, text: str) -> frozenset[int]:
    name = _FIELDS[index]
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"cron {name} field {text!r} has an empty list item")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(name, step_text, item)
            if step < 1:
                raise ValueError(f"cron {name} step in {item!r} must be at least 1")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _dash, last = span.partition("-")
            start, end = _value(index, first, item), _value(index, last, item)
            if index == 4 and end == 0 and start > 0:
                end = 7  # 'fri-sun': Sunday closes a weekday range as 7
            if start > end:
                raise ValueError(f"cron {name} range {item!r} runs backwards; "
                                 f"write it from low to high ({low}-{high})")
        else:
            start = _value(index, span, item)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    if index == 4 and text.startswith("*"):
        values.discard(7)  # '*' already holds Sunday as 0
    return frozenset(values)


def _value(index: int, text: str, item: str) -> int:
    name = _FIELDS[index]
    low, high = _BOUNDS[index]
    named = _NAMES[index].get(text.lower())
    value = named if named is not None else _number(name, text, item)
    if not low <= value <= high:
        raise ValueError(f"cron {name} value {text!r} in {item!r} is outside {low}-{high}")
    return value


def _number(name: str, text: str, item: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"cron {name} field has {text!r} in {item!r}; expected a number"
                         + (" or a name" if name in ("month", "day-of-week") else ""))
    return int(text)


def _next_value(allowed: frozenset[int], current: int) -> int | None:
    """The smallest allowed value above ``current``, or None."""
    later = [value for value in allowed if value > current]
    return min(later) if later else None
