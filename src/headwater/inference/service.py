"""The features a model version reads: its feature service as registered when it was trained.

Training records the feature service's name and registry version in the version's lineage
(``feature_service``, ``feature_service_version``). Batch inference and ``/predict`` select
that same version of the service, so a service edited after training does not change what an
existing model version is fed: the current definition is used when it is still that version,
else the stored spec of that version is decoded from the registry's history. (The feature
views it names are read as they are now; a view changed incompatibly since training surfaces
as a missing or mistyped model input, a DataError naming the column.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.definitions import FeatureService
from headwater.errors import NotFoundError, RegistryError

if TYPE_CHECKING:
    from headwater.models.base import ModelVersion
    from headwater.store import FeatureStore


def training_service(store: FeatureStore, version: ModelVersion) -> FeatureService:
    """The feature service ``version`` was trained on, at the registry version it had then."""
    from headwater.definitions.base import from_spec

    label = f"model '{version.model}' version {version.version}"
    name = version.lineage.get("feature_service")
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{label} records no feature service in its lineage. Fix: "
                            "retrain it with 'headwater train' so its lineage is complete")
    wanted = version.lineage.get("feature_service_version")
    try:
        record = store.registry.record(FeatureService.kind, name)
    except NotFoundError:
        record = None
    if record is not None and (wanted is None or record.version == wanted):
        return store.get_feature_service(name)
    history = store.registry.history(FeatureService.kind, name)
    spec = next((r.spec for r in history if r.version == wanted), None)
    if spec is None:
        raise NotFoundError(
            f"{label} was trained on feature service '{name}' version {wanted}, which the "
            f"registry no longer holds. Fix: re-apply that feature service, or retrain the "
            "model on the current one")

    def resolve(kind: str, ref: str) -> Any:
        return store.registry.get(kind, ref)

    service = from_spec(spec, resolve)
    if not isinstance(service, FeatureService):
        raise RegistryError(f"the registry's feature_service '{name}' version {wanted} does "
                            "not decode to a FeatureService. Fix: re-apply it")
    return service
