"""On-demand feature views: a vectorized Python function over request data and features.

``OnDemandFeatureView`` names its inputs (``sources``: feature views, projections of them and
``RequestSource`` objects that describe data sent with each request) and its output
``schema``. The function gets one batch of rows (a pandas DataFrame by default, or a pyarrow
Table with ``mode="arrow"``) whose columns are the input features (by feature name) and the
request fields, and returns a batch with the schema's columns, one row per input row. The same
function runs in ``get_historical_features`` and ``get_online_features``
(:mod:`headwater.transforms`).

The registry stores the function's source text (``function_source``) so a changed function is
a new version; the callable itself is taken from the repo's code, and the store refuses to run
a function whose code differs from the registered version.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from headwater.definitions.base import Definition, as_tuple, check_identifier, check_tags, spec_type
from headwater.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from headwater.errors import DefinitionError
from headwater.types import DType

MODES = ("pandas", "arrow")


def _fields(me: str, value: object) -> tuple[Field, ...]:
    try:
        fields = as_tuple(value)
    except TypeError:
        fields = ()
    if not fields or not all(isinstance(f, Field) for f in fields):
        raise DefinitionError(me, "schema", "expected a non-empty list of hw.Field",
                              "pass schema=[hw.Field('amount', hw.Float64)]")
    names = [f.name for f in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(me, "schema", f"fields {duplicates} are listed twice",
                              "list each field once")
    return fields


@spec_type
@dataclass(frozen=True)
class RequestSource:
    """Data sent with each request (online) or present as columns of the entity frame
    (offline), typed by ``schema``."""

    name: str
    schema: tuple[Field, ...]
    description: str = ""

    def __post_init__(self) -> None:
        me = f"RequestSource '{self.name}'"
        check_identifier(me, "name", self.name)
        object.__setattr__(self, "schema", _fields(me, self.schema))


OnDemandInput = FeatureView | FeatureViewProjection | RequestSource


@dataclass(frozen=True)
class InputColumn:
    """One column an on-demand function gets: a feature of feature view ``view`` (by its
    feature name), or a request field (``view`` None)."""

    name: str
    dtype: DType
    view: str | None


def function_source(function: Callable[..., Any]) -> str:
    """The source text of ``function`` without its decorators, dedented; what the registry
    records and compares."""
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError) as exc:
        raise DefinitionError(
            f"on-demand function '{getattr(function, '__name__', function)}'", "function",
            "its source code cannot be read", "define it in a .py file of the repo") from exc
    lines = textwrap.dedent(text).splitlines()
    while lines and lines[0].lstrip().startswith("@"):
        # drop decorator lines (a multi-line decorator call ends at the line opening the def)
        lines.pop(0)
        while lines and not lines[0].lstrip().startswith(("def ", "async def ")) and (
                not lines[0].lstrip().startswith("@")):
            lines.pop(0)
    return "\n".join(lines).strip() + "\n"


@spec_type
@dataclass(frozen=True)
class OnDemandFeatureView(Definition):
    """Features computed at request time by ``function`` from ``sources``.

    Build it with the :func:`on_demand_feature_view` decorator. Features are selected as
    ``"name:feature"``, as for any feature view."""

    kind: ClassVar[str] = "on_demand_feature_view"
    name: str
    sources: tuple[OnDemandInput, ...]
    schema: tuple[Field, ...]
    function_source: str = ""
    mode: str = "pandas"
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    function: Callable[..., Any] | None = field(default=None, compare=False, hash=False,
                                                 repr=False, metadata={"spec": False})
    """The callable; not stored in the registry (its source text is)."""

    def __post_init__(self) -> None:
        check_identifier("OnDemandFeatureView", "name", self.name)
        me = f"OnDemandFeatureView '{self.name}'"
        try:
            sources = as_tuple(self.sources)
        except TypeError:
            sources = ()
        if not sources or not all(isinstance(s, OnDemandInput) for s in sources):
            raise DefinitionError(
                me, "sources", "expected a list of feature views, projections and "
                "hw.RequestSource", "pass sources=[txn, hw.RequestSource('request', schema=...)]")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "schema", _fields(me, self.schema))
        if self.mode not in MODES:
            raise DefinitionError(me, "mode", f"unknown mode {self.mode!r}",
                                  f"use one of {', '.join(MODES)}")
        if self.function is not None:
            if not callable(self.function):
                raise DefinitionError(me, "function", f"{self.function!r} is not callable",
                                      "decorate a function with @hw.on_demand_feature_view")
            if not self.function_source:
                object.__setattr__(self, "function_source", function_source(self.function))
        if not self.function_source:
            raise DefinitionError(me, "function", "no function given",
                                  "decorate a function with @hw.on_demand_feature_view(...)")
        object.__setattr__(self, "tags", check_tags(me, self.tags))

    @property
    def request_sources(self) -> tuple[RequestSource, ...]:
        return tuple(s for s in self.sources if isinstance(s, RequestSource))

    @property
    def features(self) -> tuple[Field, ...]:
        return self.schema

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.schema)

    def __getitem__(self, features: str | Sequence[str]) -> FeatureViewProjection:
        """``odfv[["a"]]`` selects features for a FeatureService."""
        return FeatureViewProjection(self.name, as_tuple(features))

    def inputs(self, lookup: Callable[[str], FeatureView]) -> tuple[InputColumn, ...]:
        """The columns the function gets, in source order: the features of each source view
        (all of them, or the projected ones) and the request fields.

        ``lookup(name)`` returns the registered feature view (schema resolved). Raises
        DefinitionError when a projection names a feature the view lacks, or when two
        sources give the same column name."""
        me = f"OnDemandFeatureView '{self.name}'"
        columns: dict[str, InputColumn] = {}
        for source in self.sources:
            if isinstance(source, RequestSource):
                given = [InputColumn(f.name, f.dtype, None) for f in source.schema]
                label = f"request source '{source.name}'"
            else:
                name = source.name if isinstance(source, FeatureView) else source.view
                view = lookup(name)
                wanted = (source.features if isinstance(source, FeatureViewProjection)
                          else None) or view.feature_names
                unknown = [n for n in wanted if n not in view.feature_names]
                if unknown:
                    raise DefinitionError(
                        me, "sources", f"feature view '{name}' has no feature(s) {unknown}",
                        f"project features it has: {list(view.feature_names)}")
                dtypes = {f.name: f.dtype for f in view.features}
                given = [InputColumn(n, dtypes[n], name) for n in wanted]
                label = f"feature view '{name}'"
            for column in given:
                first = columns.get(column.name)
                if first is not None:
                    where = (f"feature view '{first.view}'" if first.view is not None
                             else "a request source")
                    raise DefinitionError(
                        me, "sources", f"column '{column.name}' is given by both {where} and "
                        f"{label}", "select distinct features from the views "
                        "(view[['feature']]) or rename the request field, so that each "
                        "input column name is given once")
                columns[column.name] = column
        return tuple(columns.values())


def on_demand_feature_view(
    *, sources: Sequence[OnDemandInput], schema: Sequence[Field], name: str | None = None,
    mode: str = "pandas", description: str = "", owner: str = "",
    tags: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], OnDemandFeatureView]:
    """Decorate a vectorized function to make an :class:`OnDemandFeatureView` named after it.

    Example (in a repo file)::

        @hw.on_demand_feature_view(
            sources=[txn, hw.RequestSource("request", schema=[hw.Field("amount", hw.Float64)])],
            schema=[hw.Field("amount_vs_mean", hw.Float64)])
        def amount_ratio(batch):
            return pd.DataFrame({"amount_vs_mean": batch["amount"] / batch["amount_mean_1h"]})
    """

    def wrap(function: Callable[..., Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=name or function.__name__, sources=tuple(sources), schema=tuple(schema),
            mode=mode, description=description or (inspect.getdoc(function) or ""),
            owner=owner, tags=dict(tags or {}), function=function,
        )

    return wrap


__all__ = ["MODES", "InputColumn", "OnDemandFeatureView", "RequestSource", "function_source",
           "on_demand_feature_view"]
