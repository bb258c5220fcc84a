"""The Headwater error tree.

Every error Headwater raises on purpose derives from :class:`HeadwaterError`::

    HeadwaterError
    ├── DefinitionError        an invalid Entity, source, FeatureView or FeatureService
    ├── ConfigError            a bad or missing headwater.yaml setting
    ├── RegistryError          the catalog refused a change (conflict, dangling reference)
    ├── NotFoundError          an unknown object, view or feature was asked for
    ├── DataError              malformed input data: bad timestamps, wrong types, missing columns
    ├── StoreUnavailableError  a service Headwater integrates with cannot be reached
    └── AuthError              a request lacks the right credentials
        └── ForbiddenError     valid credentials without the scope a request needs

Messages name the object, the field and the fix. The transport edges (CLI, HTTP) map these
errors to exit codes and status codes; the core never imports a web or CLI framework.
"""

from __future__ import annotations


class HeadwaterError(Exception):
    """Root of every error Headwater raises on purpose."""


class DefinitionError(HeadwaterError, ValueError):
    """A definition is invalid.

    ``obj`` names the object (``FeatureView 'driver_stats'``), ``field`` the offending
    attribute and ``fix`` what to change.
    """

    def __init__(self, obj: str, field: str, problem: str, fix: str) -> None:
        self.obj = obj
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{obj}: field '{field}': {problem}. Fix: {fix}")


class ConfigError(HeadwaterError, ValueError):
    """headwater.yaml is missing, malformed, or names an unknown backend."""


class RegistryError(HeadwaterError):
    """The registry refused a change, or its storage is inconsistent."""


class NotFoundError(HeadwaterError, KeyError):
    """An object, feature view or feature that does not exist was asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(HeadwaterError, ValueError):
    """Input data is malformed: unparseable or mixed-zone timestamps, wrong types, missing
    columns."""


class StoreUnavailableError(HeadwaterError, ConnectionError):
    """A service Headwater integrates with (PostgreSQL, Redis, ...) cannot be reached."""


class AuthError(HeadwaterError):
    """A request lacks valid credentials or the scope it needs."""


class ForbiddenError(AuthError):
    """A request's credentials are valid but lack the scope it needs (HTTP 403)."""
