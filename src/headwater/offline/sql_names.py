"""Names in generated DuckDB SQL.

Every identifier that reaches SQL text goes through :func:`quote`; user values never do, they
travel as named parameters. Internal names (temporary tables, helper columns) carry the
reserved ``__hw`` prefix, which definitions refuse for user names, so they never collide with
a user's column or view.
"""

from __future__ import annotations

import itertools

ROW = "__hw_row"
"""The entity row's position in the input: the result is ordered by it."""

TIME = "__hw_t"
"""The entity row's time, as given (before normalization)."""

_counter = itertools.count()


def quote(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def unique_name(stem: str) -> str:
    """A fresh internal name such as ``__hw_src_12`` for a temporary table or view.

    Names are unique within the process, so two retrievals running at once on cursors of
    the same database never clash."""
    return f"__hw_{stem}_{next(_counter)}"
