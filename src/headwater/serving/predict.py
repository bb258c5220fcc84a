"""``POST /predict``: a request body -> predictions, on the edge's fast path.

The edge (:mod:`~headwater.serving.edge`) reads the body and maps errors to statuses; this
module does the rest: parse (:func:`~headwater.serving.requests.parse_predict`), find the
model version and its loaded predictor (:class:`ModelCache`), read online features and
predict (:func:`~headwater.inference.online.predict_online`: one online round trip,
on-demand features inside it), answer with orjson, count the predictions and hand the
request to the prediction log (:mod:`~headwater.inference.log`) without waiting for it.

Response (documented by ``PredictResponse``)::

    {"model": "churn", "version": 3, "request_id": "9f1c...",
     "predictions": [1, 0], "probabilities": [0.83, 0.12],
     "features": {"orders_30d": [4, 0], "amount": [12.5, 12.5]},
     "statuses": {"customer_stats": ["PRESENT", "MISSING"]}}

Errors: an unknown model, version or alias is 404 (NotFoundError); a malformed body or a
missing request field is 422 naming the field (``request.amount``); an unreachable online
store or registry is 503.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from headwater.errors import HeadwaterError, StoreUnavailableError
from headwater.inference.log import PredictionLog, PredictionRecord
from headwater.inference.online import ServingPlan, predict_online, serving_plan
from headwater.serving.requests import parse_predict

if TYPE_CHECKING:
    from headwater.models.base import ModelVersion, Predictor
    from headwater.serving.metrics import ServerMetrics
    from headwater.store import FeatureStore

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY
REFRESH_SECONDS = 2.0
"""How long a resolved alias is trusted before the registry is asked again: an alias moved
by ``promote`` is served within this time."""
MAX_MODELS = 256

_log = logging.getLogger("headwater.serving")


@dataclass(frozen=True)
class ServedModel:
    """A model reference resolved to a loaded version and its serving plan."""

    predictor: Predictor
    plan: ServingPlan
    generation: int
    checked_at: float


class ModelCache:
    """Model references -> loaded predictors.

    A reference is resolved through the registry (``store.models.get``) at most every
    ``refresh_seconds``; the predictor is loaded (``store.models.load``, which verifies the
    artifact's SHA-256) only when the reference points at another version than before, and
    the serving plan is rebuilt when the registry's definitions changed. Between checks a
    request costs a dict lookup. A registry that cannot be reached at a check keeps the
    version already served (a warning is logged); with nothing served yet it is a 503.
    The first load of a reference happens on the caller's thread (the server loads every
    aliased version at start, :meth:`warm_up`); when an alias moves to another version, the
    version served so far keeps answering while the new one loads on a thread of its own,
    so no request waits seconds for a promotion."""

    def __init__(self, store: FeatureStore, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._models: dict[str, ServedModel] = {}
        self._loading: dict[tuple[str, str, int], threading.Thread] = {}
        self._lock = threading.RLock()

    def get(self, ref: str) -> ServedModel:
        """The served model for ``ref``; NotFoundError for an unknown model, version or
        alias."""
        served = self._models.get(ref)
        now = time.monotonic()
        generation = self.store.plan_generation()
        if (served is not None and now - served.checked_at < self.refresh_seconds
                and served.generation == generation):
            return served
        with self._lock:
            try:
                version = self.store.models.get(ref)
            except StoreUnavailableError as exc:
                if served is None:
                    raise
                _log.warning("registry unreachable, serving %s as model '%s' version %d: %s",
                             ref, served.plan.version.model, served.plan.version.version, exc)
                served = ServedModel(served.predictor, served.plan, served.generation, now)
                self._models[ref] = served
                return served
            served = self._models.get(ref)
            moved = served is not None and (
                served.plan.version.version != version.version
                or served.plan.version.model != version.model)
            if served is not None and moved:
                # keep answering with the version served so far while the new one loads
                self._load_later(ref, version, generation)
                served = ServedModel(served.predictor, served.plan, served.generation, now)
                self._models[ref] = served
                return served
            if served is None:
                predictor = self.store.models.load(f"{version.model}:{version.version}")
                plan = serving_plan(self.store, predictor.version)
            elif served.generation != generation:
                predictor = served.predictor
                plan = serving_plan(self.store, predictor.version)
            else:
                predictor, plan = served.predictor, served.plan
            served = ServedModel(predictor, plan, generation, now)
            if len(self._models) >= MAX_MODELS:
                self._models.clear()
            self._models[ref] = served
            return served

    def _load_later(self, ref: str, version: ModelVersion, generation: int) -> None:
        """Load ``version`` for ``ref`` on a thread of its own and swap it in when ready
        (loading takes milliseconds to seconds: requests must not wait on it). A failed load
        is logged and tried again at the next check."""
        key = (ref, version.model, version.version)
        if key in self._loading:
            return

        def load() -> None:
            try:
                predictor = self.store.models.load(f"{version.model}:{version.version}")
                plan = serving_plan(self.store, predictor.version)
            except HeadwaterError as exc:
                _log.error("could not load model '%s' version %d for %s; still serving the "
                           "version before: %s", version.model, version.version, ref, exc)
                return
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._models[ref] = ServedModel(predictor, plan, generation, time.monotonic())

        thread = threading.Thread(target=load, name=f"headwater-load-{ref}", daemon=True)
        self._loading[key] = thread
        thread.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        """Wait for the versions being loaded in the background (tests, shutdown)."""
        with self._lock:
            threads = list(self._loading.values())
        for thread in threads:
            thread.join(timeout)

    def warm_up(self) -> int:
        """Load every aliased version of every model now (at server start), so the first
        ``/predict`` of a model does not pay for imports and artifact loading (seconds, for
        scikit-learn). A version that cannot be loaded is logged and left to fail, with its
        error, on the requests that ask for it. Returns the number of references loaded."""
        loaded = 0
        for name in self.store.models.names():
            for alias in self.store.models.aliases(name):
                try:
                    self.get(f"{name}@{alias}")
                    loaded += 1
                except HeadwaterError as exc:
                    _log.warning("model %s@%s could not be loaded at start: %s", name, alias,
                                 exc)
        return loaded

    def forget(self) -> None:
        """Drop every resolved reference: the next request asks the registry again."""
        with self._lock:
            self._models.clear()


class PredictHandler:
    """Answers ``POST /predict`` bodies (see the module docstring)."""

    def __init__(self, store: FeatureStore, metrics: ServerMetrics, log: PredictionLog,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.metrics = metrics
        self.log = log
        self.models = ModelCache(store, refresh_seconds)

    def __call__(self, body: bytes) -> bytes:
        query = parse_predict(body)
        served = self.models.get(query.model)
        result = predict_online(self.store, served.predictor, served.plan, query.rows)
        version = result.version
        request_id = uuid.uuid4().hex
        predictions = result.predictions.tolist()
        probabilities = (None if result.probabilities is None
                         else result.probabilities.tolist())
        features = result.inputs.to_pydict()
        response = result.response
        payload: dict[str, Any] = {
            "model": version.model, "version": version.version, "request_id": request_id,
            "predictions": predictions, "probabilities": probabilities,
            "features": features,
            "statuses": {name: meta.statuses for name, meta in response.metadata.items()},
        }
        out = orjson.dumps(payload, option=JSON_OPTIONS)
        self.metrics.predictions.inc((version.model, str(version.version)), len(predictions))
        entity_names = response.entity_names
        extra = [n for n in query.request_names if n not in features]
        self.log.log(PredictionRecord(
            request_id, time.time_ns() // 1000, version.model, version.version,
            {name: [row.get(name) for row in query.rows] for name in entity_names},
            features, {name: [row.get(name) for row in query.rows] for name in extra},
            result.predictions, result.probabilities, result.inputs.schema))
        return out
