"""Inline SVG charts for the monitor report, drawn from plain numbers (no plotting library,
nothing fetched: the page must open offline).

* :func:`line_chart`: one series over time. The value is a solid line through the measured
  points (broken where nothing was measured); the threshold a dashed line (straight across
  the plot when it never changes, else through each point's threshold); every point a
  ``<circle>`` whose ``class`` holds ``failed`` (red, larger) or ``ok``, with a ``<title>``
  giving its time, value and threshold. A point without a finite value (None: nothing
  measured; or an infinity) is drawn hollow at the bottom (top for ``+inf``) of the plot.
* :func:`histogram_chart`: bucket shares (count over the total, so a small reference and a
  large window compare) of a reference and, when given, a current sample, side by side per
  bucket, each bar with a ``<title>`` giving its count and share.

Every text is HTML-escaped here (names may hold ``<`` or ``&``); the SVG carries no
``xmlns`` (HTML5 inline SVG needs none) and no link.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from headwater.monitoring.report_series import Series

WIDTH, HEIGHT = 380, 160
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
RED, BLUE, GREY = "#d62728", "#1f77b4", "#9a9a9a"


def number(value: float | None) -> str:
    """A value as the report writes it: 4 significant digits, ``none`` for None."""
    if value is None:
        return "none"
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)
                                  and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def moment(at: datetime) -> str:
    """A time as the report writes it, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def line_chart(series: Series) -> str:
    """The SVG of ``series`` over time (module docstring)."""
    points = series.points
    times = [p.window_end.timestamp() for p in points]
    values = [p.value for p in points]
    thresholds = [p.threshold for p in points]
    finite = [v for v in (*values, *thresholds) if v is not None and math.isfinite(v)]
    least, most = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (most - least) * 0.08 if most > least else (abs(most) * 0.1 or 1.0)
    low, high = least - pad, most + pad
    first, last = min(times), max(times)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def x(t: float) -> float:
        return (x0 + x1) / 2 if last == first else x0 + (t - first) / (last - first) * (x1 - x0)

    def y(v: float) -> float:
        return y1 - (v - low) / (high - low) * (y1 - y0)

    parts = [_axes(x0, x1, y0, y1),
             _text(x0 - 4, y(most) + 4, number(most), anchor="end"),
             _text(x0 - 4, y(least) + 4, number(least), anchor="end") if most > least else "",
             _text(x0, HEIGHT - 8, moment(points[0].window_end), anchor="start"),
             ]
    if last > first:
        parts.append(_text(x1, HEIGHT - 8, moment(points[-1].window_end), anchor="end"))
    parts.append(_threshold(times, thresholds, x=x, y=y, x0=x0, x1=x1))
    line = _path([(x(t), y(v)) if v is not None and math.isfinite(v) else None
                  for t, v in zip(times, values, strict=True)])
    if line:
        parts.append(f'<path class="value" d="{line}" fill="none" stroke="{BLUE}" '
                     'stroke-width="1.5"/>')
    for t, p in zip(times, points, strict=True):
        measured = p.value is not None and math.isfinite(p.value)
        cy = y(p.value) if measured and p.value is not None else (
            y0 if p.value is not None and p.value > 0 else y1)
        colour = RED if p.failed else BLUE
        fill = colour if measured else "white"
        state = "failed" if p.failed else "ok"
        tip = (f"{moment(p.window_end)}: value {number(p.value)}, threshold "
               f"{number(p.threshold)}" + (" (failed)" if p.failed else ""))
        parts.append(f'<circle class="point {state}" cx="{x(t):.1f}" cy="{cy:.1f}" '
                     f'r="{4.5 if p.failed else 3}" fill="{fill}" stroke="{colour}" '
                     f'stroke-width="1.5"><title>{escape(tip)}</title></circle>')
    return _svg("series", series.label, parts,
                {"data-check": series.check, "data-target": series.target,
                 "data-subject": series.subject})


def histogram_chart(title: str, buckets: Sequence[str], reference: Sequence[float],
                    current: Sequence[float] | None = None) -> str:
    """The SVG of bucket shares of ``reference`` (grey) and ``current`` (blue) counts, one
    pair of bars per bucket label (module docstring)."""
    n = len(buckets)
    width = max(WIDTH, LEFT + 24 + RIGHT + 30 * n)
    x0, x1, y0, y1 = LEFT + 24, width - RIGHT, TOP + 14, HEIGHT + 40 - 50
    shares = [_shares(reference)] + ([_shares(current)] if current is not None else [])
    counts = [list(reference)] + ([list(current)] if current is not None else [])
    top = max((s for sample in shares for s in sample), default=0.0) or 1.0
    step = (x1 - x0) / max(n, 1)
    bar = step * 0.8 / len(shares)
    names = ("reference", "current")
    parts = [_axes(x0, x1, y0, y1), _text(x0 - 4, y0 + 4, f"{top:.0%}", anchor="end"),
             _text(x0 - 4, y1, "0%", anchor="end")]
    for i, label in enumerate(buckets):
        for j, sample in enumerate(shares):
            height = sample[i] / top * (y1 - y0)
            left = x0 + i * step + step * 0.1 + j * bar
            tip = f"{label}: {names[j]} {number(counts[j][i])} ({sample[i]:.1%})"
            parts.append(f'<rect class="{names[j]}" x="{left:.1f}" y="{y1 - height:.1f}" '
                         f'width="{bar:.1f}" height="{height:.1f}" '
                         f'fill="{GREY if j == 0 else BLUE}"><title>{escape(tip)}</title>'
                         "</rect>")
        short = label if len(label) <= 18 else label[:17] + "…"
        cx, cy = x0 + (i + 0.5) * step, y1 + 10
        parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="9" text-anchor="end" '
                     f'transform="rotate(-35 {cx:.1f} {cy:.1f})">{escape(short)}</text>')
    for j, _ in enumerate(shares):
        parts.append(f'<rect x="{x1 - 150 + j * 75}" y="{TOP - 6}" width="10" height="10" '
                     f'fill="{GREY if j == 0 else BLUE}"/>')
        parts.append(_text(x1 - 136 + j * 75, TOP + 3, names[j], anchor="start"))
    return _svg("histogram", title, parts, {"data-buckets": str(n)}, width=width,
                height=HEIGHT + 40)


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def _threshold(times: Sequence[float], thresholds: Sequence[float | None], *,
               x: Callable[[float], float], y: Callable[[float], float], x0: float,
               x1: float) -> str:
    """The dashed threshold line: across the plot when constant, else through points."""
    known = {t for t in thresholds if t is not None and math.isfinite(t)}
    if not known:
        return ""
    if len(known) == 1 and all(t is not None for t in thresholds):
        level = y(known.pop())
        d = f"M{x0:.1f} {level:.1f} L{x1:.1f} {level:.1f}"
    else:
        d = _path([(x(t), y(v)) if v is not None and math.isfinite(v) else None
                   for t, v in zip(times, thresholds, strict=True)], single=True)
    return (f'<path class="threshold" d="{d}" fill="none" stroke="{RED}" '
            'stroke-width="1" stroke-dasharray="4 3"/>')


def _path(points: Sequence[tuple[float, float] | None], *, single: bool = False) -> str:
    """An SVG path through ``points``, broken at None; a lone point becomes a short tick
    when ``single`` (a threshold known at one time only)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    out = []
    for run in runs:
        drawn = run
        if len(run) == 1 and single:
            (px, py), = run
            drawn = [(px - 6, py), (px + 6, py)]
        if drawn:
            out.append("M" + " L".join(f"{px:.1f} {py:.1f}" for px, py in drawn))
    return " ".join(out)


def _axes(x0: float, x1: float, y0: float, y1: float) -> str:
    return (f'<path class="axes" d="M{x0} {y0} L{x0} {y1} L{x1} {y1}" fill="none" '
            'stroke="#444" stroke-width="1"/>')


def _text(x: float, y: float, text: str, *, anchor: str) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _svg(kind: str, title: str, parts: Sequence[str], data: dict[str, str], *,
         width: int = WIDTH, height: int = HEIGHT) -> str:
    attributes = "".join(f' {k}="{escape(v)}"' for k, v in data.items())
    return (f'<svg class="{kind}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"{attributes}>'
            f"<title>{escape(title)}</title>" + "".join(p for p in parts if p) + "</svg>")


__all__ = ["histogram_chart", "line_chart", "moment", "number"]
