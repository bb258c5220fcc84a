"""The scheduler's tables, in the same database as the catalog.

Written by the scheduler (:mod:`headwater.scheduler`): the DDL below and the
:class:`JobTables` methods mixed into
:class:`~headwater.registry.sql.SQLRegistryBackend`, so SQLite and PostgreSQL share them.
"""

from __future__ import annotations

SQLITE_DDL: tuple[str, ...] = ()
POSTGRES_DDL: tuple[str, ...] = ()


class JobTables:
    """Scheduler storage methods: run records and the claim that keeps two schedulers
    from running the same job twice."""
