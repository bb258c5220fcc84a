"""Headwater: an ML platform built around a feature store.

Define entities, sources and feature views in Python, register them with
``FeatureStore.apply`` and build point-in-time correct training frames with
``FeatureStore.get_historical_features``.
"""

from __future__ import annotations

from headwater.definitions import (
    Aggregation,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    Job,
    LabelSource,
    ModelSpec,
    Monitor,
    OnDemandFeatureView,
    PromotionRule,
    PushSource,
    RandomSplit,
    RequestSource,
    SQLSource,
    StreamSource,
    TimeSplit,
    on_demand_feature_view,
)
from headwater.errors import (
    AuthError,
    ConfigError,
    DataError,
    DefinitionError,
    ForbiddenError,
    HeadwaterError,
    NotFoundError,
    RegistryError,
    StoreUnavailableError,
)
from headwater.monitoring import detect_drift
from headwater.store import FeatureStore
from headwater.types import Array, Bool, DType, Float32, Float64, Int32, Int64, String, Timestamp

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "Array",
    "AuthError",
    "Bool",
    "ConfigError",
    "DType",
    "DataError",
    "DefinitionError",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "Float32",
    "Float64",
    "ForbiddenError",
    "HeadwaterError",
    "Int32",
    "Int64",
    "Job",
    "LabelSource",
    "ModelSpec",
    "Monitor",
    "NotFoundError",
    "OnDemandFeatureView",
    "PromotionRule",
    "PushSource",
    "RandomSplit",
    "RegistryError",
    "RequestSource",
    "SQLSource",
    "StoreUnavailableError",
    "StreamSource",
    "String",
    "TimeSplit",
    "Timestamp",
    "__version__",
    "detect_drift",
    "on_demand_feature_view",
]
