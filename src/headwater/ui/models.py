"""The models page: every model's versions, aliases, lineage and promotion history.

Without a query the page lists every model (a registered ModelSpec, or a model whose spec was
removed but whose versions are still registered) in a summary table, then per model:

* its **versions** (oldest first): number, created, aliases now pointing at it, estimator,
  train / test rows, each metric (4 decimals, as ``headwater models`` prints them) and the
  lineage of the training run behind it: feature service and its registry version, the
  first characters of the training frame's fingerprint and of the repo's git commit, and
  the run id;
* a small line chart per metric across the versions (x: when each version was created),
  drawn by :func:`headwater.monitoring.report_svg.line_chart`; a promotion rule's threshold
  on that metric is the dashed line and a version missing it a red point;
* its **promotion history**: every alias move, oldest first, with the rules checked.

``?model=NAME`` shows that model alone, with its spec (estimator parameters, feature service,
label, split, metrics, promotion rules, owner, tags) and the inputs and full lineage of its
newest version. A name with neither a spec nor versions is the store's NotFoundError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.monitoring.report_series import Point, Series
from headwater.monitoring.report_svg import WIDTH, line_chart
from headwater.ui.html import badge, esc, link, table, when

if TYPE_CHECKING:
    from headwater.definitions import ModelSpec
    from headwater.models.base import AliasEvent, ModelVersion
    from headwater.store import FeatureStore

FIGURE = f'class="card" style="margin:0;width:{WIDTH + 22}px"'
"""A chart's figure: a card as wide as the chart, its caption wrapped to it."""
PAGE = "/models"
PREFIX = 12
"""Characters shown of a training fingerprint, a git commit or a run id."""
OVERVIEW_VERSIONS = 20
"""Versions (the newest) and alias moves each model shows on the overview; its own page
shows them all."""


def render(store: FeatureStore, query: Mapping[str, str]) -> str:
    """The page's body: every model, or the one ``query["model"]`` names."""
    name = query.get("model")
    if name:
        return _detail(store, name)
    return _overview(store)


def metric(value: object) -> str:
    """A metric value as the page shows it: 4 decimals (``—`` when missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return esc(f"{float(value):.4f}")


def short(text: object, size: int = PREFIX) -> str:
    """The first ``size`` characters of an identifier (``—`` when missing), escaped."""
    return "—" if not text else esc(str(text)[:size])


def _overview(store: FeatureStore) -> str:
    specs = {spec.name: spec for spec in store.list_models()}
    names = sorted(set(specs) | set(store.models.names()))
    if not names:
        return ('<p class="muted">No model is registered yet: define an hw.ModelSpec in the '
                "repo, run <code>headwater apply</code>, then <code>headwater train "
                "NAME</code>.</p>")
    history: dict[str, list[AliasEvent]] = {}
    for event in store.models.history():
        history.setdefault(event.model, []).append(event)
    rows, sections = [], []
    for name in names:
        spec, versions = specs.get(name), store.models.versions(name)
        aliases = store.models.aliases(name)
        latest = versions[-1] if versions else None
        rows.append([link(PAGE, name, model=name),
                     esc(spec.task if spec else latest.task if latest else ""),
                     esc(len(versions)), _aliases(aliases),
                     _metrics(latest) if latest else '<span class="muted">not trained</span>',
                     esc(spec.owner if spec else ""), esc(spec.description if spec else "")])
        shown = versions[-OVERVIEW_VERSIONS:]
        more = ("" if len(shown) == len(versions) else
                f'<p class="muted">The newest {len(shown)} of {len(versions)} versions: '
                f"{link(PAGE, 'all of them', model=name)}.</p>")
        sections.append(f'<h2 id="model-{esc(name)}">{link(PAGE, name, model=name)}</h2>'
                        + _about(spec) + more
                        + _model(name, spec, shown, history.get(name, [])[-OVERVIEW_VERSIONS:]))
    summary = table(["model", "task", "versions", "aliases", "latest metrics", "owner",
                     "description"], rows)
    return summary + "".join(sections)


def _detail(store: FeatureStore, name: str) -> str:
    versions = store.models.versions(name)
    spec = next((s for s in store.list_models() if s.name == name), None)
    if spec is None and not versions:
        store.get_model(name)  # NotFoundError with the known names
    parts = [f'<p>{link(PAGE, "All models")}</p>', f"<h2>Model {esc(name)}</h2>",
             _about(spec)]
    parts.append(_spec(spec) if spec is not None else
                 '<p class="muted">Its spec is no longer registered; its versions are.</p>')
    parts.append(_model(name, spec, versions, store.models.history(name)))
    if versions:
        parts.append(_inputs(versions[-1]))
    return "".join(parts)


def _about(spec: ModelSpec | None) -> str:
    return "" if spec is None or not spec.description else f"<p>{esc(spec.description)}</p>"


def _model(name: str, spec: ModelSpec | None, versions: Sequence[ModelVersion],
           events: Sequence[AliasEvent]) -> str:
    """The versions table, the metric charts and the promotion history of one model."""
    if not versions:
        return (f'<p class="muted">No version yet: run <code>headwater train {esc(name)}'
                "</code>.</p>")
    present = list(dict.fromkeys(m for v in versions for m in v.metrics))
    names = [m for m in dict.fromkeys([*(spec.metrics if spec else ()), *present])
             if m in present]  # the spec's order first
    rows = []
    for v in versions:
        lineage = v.lineage
        service = lineage.get("feature_service")
        rows.append([
            esc(v.version), when(v.created_at),
            " ".join(badge(a, "ok") for a in v.aliases) or "—",
            f'<span title="{esc(v.estimator_class)}">'
            f"{esc(v.estimator_class.rpartition('.')[2])}</span>",
            _rows(lineage.get("rows")),
            "—" if lineage.get("fit_seconds") is None else
            esc(f"{lineage['fit_seconds']:.3g} s"),
            *(metric(v.metrics.get(m)) for m in names),
            "—" if not service else
            esc(f"{service} v{lineage.get('feature_service_version', '?')}"),
            short(lineage.get("training_fingerprint")), short(lineage.get("code_revision")),
            short(v.run_id)])
    versions_table = table(["version", "created", "aliases", "estimator", "rows train / test",
                            "fit", *names, "feature service", "training data", "code", "run"], rows)
    charts = "".join(_chart(name, m, versions, spec) for m in names)
    return ("<h3>Versions</h3>" + versions_table
            + "<h3>Metrics across versions</h3>" + f'<div class="cards">{charts}</div>'
            + "<h3>Promotion history</h3>" + _history(events))


def _chart(name: str, metric_name: str, versions: Sequence[ModelVersion],
           spec: ModelSpec | None) -> str:
    """One metric over the versions, by creation time; a promotion rule's threshold on it
    is the dashed line and a version that misses it a failed (red) point."""
    rule = next((r for r in (spec.promotion if spec else ()) if r.metric == metric_name
                 and r.threshold is not None), None)
    points = []
    for v in versions:
        value = v.metrics.get(metric_name)
        known = value is not None and not math.isnan(value)
        missed = rule is not None and known and value is not None and not (
            rule.meets_threshold(value))
        points.append(Point(v.version, v.created_at, value if known else None,
                            rule.threshold if rule is not None else None, missed, "info",
                            f"version {v.version}"))
    series = Series(metric_name, f"model:{name}", "", None, tuple(points))
    first, last = versions[0].version, versions[-1].version
    span = f"version {first}" if first == last else f"versions {first} to {last}"
    return (f"<figure {FIGURE}><figcaption>{esc(metric_name)}: {esc(span)}"
            f"</figcaption>{line_chart(series)}</figure>")


def _history(events: Sequence[AliasEvent]) -> str:
    rows = [[when(e.at), esc(e.alias), _number(e.from_version), _number(e.to_version),
             badge(e.reason, "warn" if "force" in e.reason else ""), esc(e.describe_checks())]
            for e in events]
    return table(["at", "alias", "from", "to", "reason", "checks"], rows,
                 empty="no alias has been set")


def _spec(spec: ModelSpec) -> str:
    from headwater.definitions.base import to_spec

    source = spec.label.source
    rules = "; ".join(
        f"{r.metric} on {r.alias}" + (f", min improvement {r.min_improvement:g}"
                                      if r.min_improvement else "")
        + (f", threshold {r.threshold:g}" if r.threshold is not None else "")
        for r in spec.promotion)
    rows = [("task", spec.task), ("estimator", spec.estimator_class),
            ("parameters", json.dumps(spec.params(), sort_keys=True)),
            ("feature service", spec.features.name),
            ("label", f"{spec.label.column} from {source.name or getattr(source, 'path', '')}"),
            ("split", json.dumps(to_spec(spec.split), sort_keys=True)),
            ("metrics", ", ".join(spec.metrics)), ("promotion rules", rules or "none"),
            ("owner", spec.owner or "—"),
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted(spec.tags.items())) or "—")]
    return "<h3>Spec</h3>" + table(["field", "value"], [[esc(k), esc(v)] for k, v in rows])


def _inputs(version: ModelVersion) -> str:
    """The newest version's input features and full lineage."""
    lineage = [[esc(k), esc(json.dumps(v, sort_keys=True, default=str))]
               for k, v in version.lineage.items()]
    features = ", ".join(version.features)
    return (f"<h3>Version {esc(version.version)}: inputs and lineage</h3>"
            f"<p>{esc(len(version.features))} features: {esc(features)}</p>"
            + table(["lineage", "value"], lineage))


def _aliases(aliases: Mapping[str, int]) -> str:
    return " ".join(badge(f"{a} → {v}", "ok") for a, v in sorted(aliases.items())) or "—"


def _metrics(version: ModelVersion) -> str:
    return esc(", ".join(f"{k} {float(v):.4f}" for k, v in version.metrics.items()))


def _rows(rows: Any) -> str:
    if not isinstance(rows, Mapping):
        return "—"
    return esc(" / ".join(f"{rows[k]:,}" if isinstance(rows.get(k), int) else "?"
                          for k in ("train", "test")))


def _number(value: int | None) -> str:
    return "—" if value is None else esc(value)
