"""The model registry of a feature store: versions, aliases, promotion, lineage, loading.

Versions, aliases and the promotion history live in the catalog's database
(:mod:`~headwater.registry.model_tables`), artifacts in the artifact store
(:mod:`~headwater.models.artifacts`). A version is immutable once registered; an alias
(``production``, ``staging``) points at one version and moves only through
:meth:`ModelRegistry.promote` / :meth:`ModelRegistry.unset_alias`, each move a line of
history.

Promotion is gated by the model spec's :class:`~headwater.definitions.model.PromotionRule`
objects for that alias, evaluated inside the alias-move transaction against the version
the alias points at right then, so two concurrent promotions cannot both pass against a
stale current version. ``force=True`` moves anyway and records ``promote --force`` with
the failed checks.

Loading (:meth:`ModelRegistry.load`) is on the ``/predict`` hot path:

* a loaded predictor is kept per ``(model, version)`` for the life of this object
  (versions never change, and the artifact's SHA-256 was checked when it was read);
* ``name@alias`` is resolved through a per-alias cache refreshed at most every
  :data:`ALIAS_REFRESH_S` seconds (one indexed query), because alias moves do not touch
  the catalog's change log. A promotion made through this object is seen at once; one
  made by another process within :data:`ALIAS_REFRESH_S`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.definitions.model import LOWER_IS_BETTER, PromotionRule
from headwater.errors import NotFoundError, RegistryError
from headwater.models.artifacts import ArtifactStore
from headwater.models.base import DEFAULT_ALIAS, AliasEvent, ModelRef, ModelVersion
from headwater.models.diff import VersionDiff, diff_versions
from headwater.registry.model_tables import ModelTables


class PromotionRefused(RegistryError):
    """A promotion rule of the model refused to move the alias (not a storage failure)."""

if TYPE_CHECKING:
    from headwater.models.base import Predictor
    from headwater.store import FeatureStore

ALIAS_REFRESH_S = 0.5
"""How long a resolved ``name@alias`` is trusted before the registry is asked again."""

_ALIAS = re.compile(r"^[A-Za-z0-9_]+\Z")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_REFS = 4096  # parsed reference strings kept (requests name models by string)


class _Stale(Exception):
    """The alias moved to a version registered after the guard's snapshot: retry."""


class ModelRegistry:
    """The models of ``store``'s project (see the module docstring)."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._artifacts: ArtifactStore | None = None
        self._predictors: dict[tuple[str, int], Predictor] = {}
        self._resolved: dict[tuple[str, str], tuple[float, int]] = {}
        self._refs: dict[str, ModelRef] = {}
        self._lock = threading.Lock()

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store at ``settings.artifacts_path``."""
        if self._artifacts is None:
            self._artifacts = ArtifactStore(self._store.settings.artifacts_path)
        return self._artifacts

    @property
    def _backend(self) -> ModelTables:
        backend = self._store.registry.backend
        if not isinstance(backend, ModelTables):
            raise RegistryError(f"the registry backend {type(backend).__name__} has no model "
                                "tables. Fix: use the SQLite or PostgreSQL registry")
        return backend

    @property
    def _project(self) -> str:
        return self._store.project

    # -- versions ------------------------------------------------------------------------

    def register(self, version: ModelVersion) -> ModelVersion:
        """Record ``version`` under the model's next version number and return it with
        that number. Its artifacts must already be in the artifact store."""
        if not _NAME.match(version.model):
            raise RegistryError(f"model name {version.model!r} is not an identifier. Fix: "
                                "use letters, digits and '_', starting with a letter")
        for ref in (version.artifact, version.reference):
            if ref is not None and not self.artifacts.exists(ref):
                raise RegistryError(
                    f"model '{version.model}': artifact {self.artifacts.path(ref)} is missing "
                    f"or not {ref.size} bytes; nothing was registered. Fix: store it with "
                    "ArtifactStore.put before registering")
        return self._backend.add_model_version(self._project, version)

    def names(self) -> list[str]:
        """Models with at least one registered version, sorted."""
        return self._backend.model_names(self._project)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first (empty when none)."""
        return self._backend.model_versions(self._project, name)

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version of ``name``."""
        return self._backend.aliases(self._project, name)

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``ref`` names (``churn:3``, ``churn@staging``, ``churn``); a
        NotFoundError lists the model's versions and aliases."""
        parsed = self._parse(ref)
        number = parsed.version if parsed.version is not None else self._alias(parsed)
        found = self._backend.model_version(self._project, parsed.name, number)
        if found is None:
            raise self._not_found(parsed)
        return found

    def _alias(self, ref: ModelRef) -> int:
        number = self.aliases(ref.name).get(str(ref.alias))
        if number is None:
            raise self._not_found(ref)
        return number

    def _not_found(self, ref: ModelRef) -> NotFoundError:
        versions = [v.version for v in self.versions(ref.name)]
        if not versions:
            names = self.names()
            return NotFoundError(
                f"no model '{ref.name}' is registered in project '{self._project}'; models: "
                f"{names or 'none'}. Fix: check the name, or train it ('headwater train "
                f"{ref.name}')")
        aliases = self.aliases(ref.name)
        listing = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
        what = f"version {ref.version}" if ref.version is not None else f"alias '{ref.alias}'"
        return NotFoundError(
            f"model '{ref.name}' has no {what}; versions: {versions}, aliases: {listing}. "
            f"Fix: name one of them ('{ref.name}:{versions[-1]}'), or promote a version to "
            "the alias")

    def _parse(self, ref: str | ModelRef) -> ModelRef:
        if isinstance(ref, ModelRef):
            return ref
        parsed = self._refs.get(ref)
        if parsed is None:
            parsed = ModelRef.parse(ref)
            if len(self._refs) >= _MAX_REFS:
                self._refs.clear()
            self._refs[ref] = parsed
        return parsed

    def diff(self, name: str, a: int, b: int) -> VersionDiff:
        """What changed from version ``a`` to version ``b`` of ``name``."""
        return diff_versions(self.get(ModelRef(name, version=a)),
                             self.get(ModelRef(name, version=b)))

    # -- aliases -------------------------------------------------------------------------

    def promote(self, name: str, version: int, alias: str = DEFAULT_ALIAS, *,
                force: bool = False, reason: str = "promote") -> AliasEvent:
        """Point ``alias`` of ``name`` at ``version`` if the spec's promotion rules for
        that alias pass (see the module docstring); a failing rule is a RegistryError
        naming the rule, both values and the fix. ``force=True`` moves anyway and records
        ``<reason> --force`` with the checks."""
        if not isinstance(alias, str) or not _ALIAS.match(alias):
            raise RegistryError(f"alias {alias!r} of model '{name}' is not a name. Fix: use "
                                "letters, digits and '_' (production, staging)")
        candidate = self.get(ModelRef(name, version=version))
        rules = self._rules(name, alias)
        label = f"{reason} --force" if force else reason
        for _ in range(3):
            known = {v.version: v for v in self.versions(name)} if rules else {}
            guard = _Gate(candidate, alias, rules, known, force)
            try:
                event = self._backend.move_alias(self._project, name, alias, version,
                                                 reason=label, guard=guard)
            except _Stale:
                continue
            self._forget(name, alias)
            return event
        raise RegistryError(f"alias '{alias}' of model '{name}' kept moving while it was being "
                            "promoted. Fix: retry")

    def _rules(self, name: str, alias: str) -> tuple[PromotionRule, ...]:
        try:
            spec = self._store.get_model(name)
        except NotFoundError:
            return ()  # the spec was removed: its versions have no rules any more
        return tuple(rule for rule in spec.promotion if rule.alias == alias)

    def unset_alias(self, name: str, alias: str) -> AliasEvent:
        """Remove ``alias`` from ``name`` (NotFoundError when it is not set)."""
        event = self._backend.move_alias(self._project, name, alias, None, reason="unset")
        self._forget(name, alias)
        return event

    def history(self, name: str | None = None) -> list[AliasEvent]:
        """Alias moves, oldest first, of one model or all."""
        return self._backend.alias_events(self._project, name)

    def _forget(self, name: str, alias: str) -> None:
        self._resolved.pop((name, alias), None)

    # -- loading -------------------------------------------------------------------------

    def resolve(self, ref: str | ModelRef) -> tuple[str, int]:
        """``(model, version)`` that ``ref`` names now (aliases cached, module docstring)."""
        parsed = self._parse(ref)
        if parsed.version is not None:
            return parsed.name, parsed.version
        key = (parsed.name, str(parsed.alias))
        now = time.monotonic()
        cached = self._resolved.get(key)
        if cached is not None and now - cached[0] < ALIAS_REFRESH_S:
            return parsed.name, cached[1]
        number = self._alias(parsed)
        self._resolved[key] = (now, number)
        return parsed.name, number

    def load(self, ref: str | ModelRef) -> Predictor:
        """A predictor for the version ``ref`` names, its artifact verified by SHA-256
        (RegistryError on a mismatch). Loaded once per version and kept."""
        key = self.resolve(ref)
        predictor = self._predictors.get(key)
        if predictor is not None:
            return predictor
        from headwater.models.predictor import load_predictor

        with self._lock:
            predictor = self._predictors.get(key)
            if predictor is None:
                version = self.get(ModelRef(key[0], version=key[1]))
                predictor = load_predictor(version, self.artifacts.get(version.artifact))
                self._predictors[key] = predictor
        return predictor


@dataclass(frozen=True)
class _Gate:
    """The promotion guard: evaluates ``rules`` with the alias's current version (read
    inside the move's transaction); raises RegistryError on a failure unless ``force``.
    ``known`` are the model's versions read just before the transaction."""

    candidate: ModelVersion
    alias: str
    rules: tuple[PromotionRule, ...]
    known: dict[int, ModelVersion]
    force: bool

    def __call__(self, current: int | None) -> list[dict[str, Any]]:
        candidate, alias, rules, known = self.candidate, self.alias, self.rules, self.known
        if current is not None and rules and current not in known:
            raise _Stale
        previous = known.get(current) if current is not None else None
        checks: list[dict[str, Any]] = []
        failures: list[str] = []
        for rule in rules:
            value = candidate.metrics.get(rule.metric)
            against = previous.metrics.get(rule.metric) if previous is not None else None
            problems = []
            if value is None:
                problems.append(f"version {candidate.version} has no metric '{rule.metric}'")
            elif not rule.meets_threshold(value):
                problems.append(f"{rule.metric} {value} misses the threshold {rule.threshold}")
            if previous is not None and previous.version != candidate.version:
                if against is None:
                    problems.append(f"the current {alias} version {previous.version} has no "
                                    f"metric '{rule.metric}' to compare with")
                elif value is not None and not rule.better(value, against):
                    lower = rule.metric in LOWER_IS_BETTER
                    needed = against - rule.min_improvement if lower else (
                        against + rule.min_improvement)
                    problems.append(
                        f"{rule.metric} {value} does not beat the current {alias} version "
                        f"{previous.version}'s {against} (needs {'<=' if lower else '>='} "
                        f"{needed}, min_improvement {rule.min_improvement})")
            checks.append({"metric": rule.metric, "candidate": value, "current": against,
                           "current_version": previous.version if previous else None,
                           "threshold": rule.threshold, "min_improvement": rule.min_improvement,
                           "passed": not problems})
            failures.extend(f"rule {rule.metric} ({alias}): {p}" for p in problems)
        if failures and not self.force:
            raise PromotionRefused(
                f"cannot promote {candidate.model}:{candidate.version} to '{alias}': "
                f"{'; '.join(failures)}. Fix: train a better model, or promote with force=True "
                "('headwater models promote --force'), which records the override")
        return checks
