"""Scheduled jobs: periodic work declared in the repo and run by ``headwater scheduler``.

A :class:`Job` names a cron ``schedule`` (five fields, UTC) and what to run:

* ``materialize_incremental``: ``target`` names feature views (comma-separated), empty for
  all online views; the end of each run is its scheduled time;
* ``train``: ``target`` names a model; ``options``: ``promote`` (an alias to promote the new
  version to, through the model's promotion rules);
* ``predict``: ``target`` is a model reference (``churn@production``); ``options``:
  ``entities`` (a SQL query over the offline data or a Parquet path) and ``output`` (a
  Parquet path; ``{date}`` is replaced by the run's scheduled date);
* ``monitor``: ``target`` names a monitor.

A failed run is retried up to ``retries`` times, waiting ``retry_backoff`` and doubling it
each time; each attempt is recorded in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from headwater.definitions.base import Definition, check_identifier, check_tags, spec_type
from headwater.errors import DefinitionError

ACTIONS = ("materialize_incremental", "train", "predict", "monitor")
OptionValue = str | int | float | bool


@spec_type
@dataclass(frozen=True)
class Job(Definition):
    """A periodic job: ``action`` on ``target`` at each time ``schedule`` (cron, UTC)
    matches.

    >>> Job("nightly_features", schedule="0 2 * * *",
    ...     action="materialize_incremental").action
    'materialize_incremental'
    """

    kind: ClassVar[str] = "job"

    name: str
    schedule: str
    action: str
    target: str = ""
    options: dict[str, OptionValue] = field(default_factory=dict, hash=False)
    retries: int = 2
    retry_backoff: timedelta = timedelta(seconds=30)
    enabled: bool = True
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_identifier("Job", "name", self.name)
        me = f"Job '{self.name}'"
        if self.action not in ACTIONS:
            raise DefinitionError(me, "action", f"unknown action {self.action!r}",
                                  f"use one of {list(ACTIONS)}")
        if self.action in ("train", "predict", "monitor") and not self.target:
            raise DefinitionError(me, "target", f"a {self.action} job needs a target",
                                  "name the model (or monitor) it runs")
        if not isinstance(self.schedule, str):
            raise DefinitionError(me, "schedule", "expected a cron expression",
                                  "pass schedule='*/15 * * * *'")
        from headwater.scheduler.cron import parse_cron

        try:
            parse_cron(self.schedule)
        except ValueError as exc:
            raise DefinitionError(me, "schedule", str(exc),
                                  "use five cron fields: minute hour day month weekday, "
                                  "e.g. '0 2 * * *'") from None
        if not isinstance(self.options, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool)
                for k, v in self.options.items()):
            raise DefinitionError(me, "options", "options must map names to strings, "
                                  "numbers or booleans", "pass options={'output': 'x.parquet'}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not (
                0 <= self.retries <= 100):
            raise DefinitionError(me, "retries", f"{self.retries!r} is not 0 to 100",
                                  "pass retries=2")
        if not isinstance(self.retry_backoff, timedelta) or self.retry_backoff < timedelta(0):
            raise DefinitionError(me, "retry_backoff", "expected a non-negative timedelta",
                                  "pass retry_backoff=timedelta(seconds=30)")
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "tags", check_tags(me, self.tags))
