"""Definitions: frozen, validated descriptions of entities, sources, views and services.

Nothing here does I/O; checks that need data (do the columns exist?) run at ``apply``.
"""

from __future__ import annotations

from headwater.definitions.aggregation import Aggregation
from headwater.definitions.base import Definition, from_spec, to_spec
from headwater.definitions.entity import Entity
from headwater.definitions.feature_service import FeatureService
from headwater.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from headwater.definitions.job import Job
from headwater.definitions.model import (
    LabelSource,
    ModelSpec,
    PromotionRule,
    RandomSplit,
    TimeSplit,
)
from headwater.definitions.monitor import Monitor
from headwater.definitions.on_demand import (
    OnDemandFeatureView,
    RequestSource,
    on_demand_feature_view,
)
from headwater.definitions.references import FeatureRef, parse_feature_ref
from headwater.definitions.sources import (
    FileSource,
    PushSource,
    Source,
    SQLSource,
    StreamSource,
    batch_source_of,
)

TOP_LEVEL_KINDS: dict[str, type[Definition]] = {
    cls.kind: cls
    for cls in (Entity, FeatureView, OnDemandFeatureView, FeatureService, ModelSpec, Job,
                Monitor)
}

__all__ = [
    "TOP_LEVEL_KINDS",
    "Aggregation",
    "Definition",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "Job",
    "LabelSource",
    "ModelSpec",
    "Monitor",
    "OnDemandFeatureView",
    "PromotionRule",
    "PushSource",
    "RandomSplit",
    "RequestSource",
    "SQLSource",
    "Source",
    "StreamSource",
    "TimeSplit",
    "batch_source_of",
    "from_spec",
    "on_demand_feature_view",
    "parse_feature_ref",
    "to_spec",
]
