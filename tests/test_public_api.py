"""The public surface is exactly what we promise; heavy libraries load only when used."""

from __future__ import annotations

import subprocess
import sys

import headwater as hw

PUBLIC = {
    "Array", "AuthError", "Bool", "ConfigError", "DType", "DataError", "DefinitionError",
    "Entity", "FeatureService", "FeatureStore", "FeatureView", "Field", "FileSource",
    "Float32", "Float64", "HeadwaterError", "Int32", "Int64", "NotFoundError",
    "RegistryError", "SQLSource", "StoreUnavailableError", "String", "Timestamp",
    "__version__",
    # issue 4: real-time pipelines
    "Aggregation", "OnDemandFeatureView", "PushSource", "RequestSource", "StreamSource",
    "on_demand_feature_view",
    # issue 5: model lifecycle
    "Job", "LabelSource", "ModelSpec", "PromotionRule", "RandomSplit", "TimeSplit",
    # issue 6: monitoring
    "Monitor", "detect_drift",
    # issue 9: access control
    "ForbiddenError",
}


def test_public_names_are_pinned() -> None:
    assert set(hw.__all__) == PUBLIC
    public_attributes = {n for n in vars(hw) if not n.startswith("_")} - {"annotations"}
    # subpackages appear as attributes once imported; everything else must be in __all__
    leaked = {n for n in public_attributes - PUBLIC
              if not isinstance(getattr(hw, n), type(hw))}
    assert leaked == set()


def test_feature_store_methods_named_by_the_issue_exist() -> None:
    for method in ("apply", "plan", "get_historical_features", "list_feature_views",
                   "get_feature_view", "train", "promote", "predict"):
        assert callable(getattr(hw.FeatureStore, method))
    import inspect

    params = list(inspect.signature(hw.FeatureStore.get_historical_features).parameters)
    assert params[:4] == ["self", "entity_df", "features", "full_feature_names"]
    # issue 5: store.train("churn"), store.promote("churn", version=..., alias="production"),
    # store.predict("churn@production", entity_df)
    assert list(inspect.signature(hw.FeatureStore.train).parameters)[:2] == ["self", "model"]
    assert list(inspect.signature(hw.FeatureStore.promote).parameters)[:4] == [
        "self", "model", "version", "alias"]
    assert list(inspect.signature(hw.FeatureStore.predict).parameters)[:3] == [
        "self", "model", "entity_df"]


def test_import_headwater_loads_no_heavy_or_optional_library() -> None:
    code = (
        "import sys, headwater\n"
        "heavy = ['pandas', 'polars', 'duckdb', 'pyarrow', 'psycopg', 'sklearn', 'click',"
        " 'rich', 'yaml', 'numpy', 'adbc_driver_postgresql']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
