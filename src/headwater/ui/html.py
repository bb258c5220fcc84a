"""HTML helpers of the dashboard: escaping, tables, links, badges and the page layout.

Every value that reaches a page goes through :func:`esc` (or a helper that calls it), so a
feature named ``<script>`` shows as text. Pages return body fragments; :func:`layout` wraps
one in the document with the navigation and the stylesheet link.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode

STYLESHEET = "/static/ui.css"
ICON = "/static/icon.svg"
ICON_SVG = ("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
            "<path d='M1 11c3-4 5 2 8-2s4-4 6-2v8H1z' fill='#2458d3'/></svg>")
"""The tab icon: a wave (the xmlns is the SVG namespace name, never fetched)."""

CSS = """
:root { --fg: #1d2433; --muted: #5b6478; --line: #d9dee8; --bg: #f6f7fa; --accent: #2458d3;
        --bad: #c62828; --good: #2e7d32; --warn: #b26a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 0 24px;
         display: flex; gap: 24px; align-items: center; height: 52px; }
header .brand { font-weight: 700; }
header nav a { margin-right: 16px; color: var(--muted); text-decoration: none; }
header nav a.current { color: var(--accent); font-weight: 600; }
main { padding: 20px 24px; max-width: 1280px; }
h1 { font-size: 20px; margin: 4px 0 16px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line);
        width: 100%; margin-bottom: 16px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #eef1f6; font-weight: 600; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
         background: #e8ecf4; }
.badge.ok { background: #e3f3e5; color: var(--good); }
.badge.bad { background: #fbe4e4; color: var(--bad); }
.badge.warn { background: #fdf0dc; color: var(--warn); }
form.search input { padding: 6px 10px; width: 320px; border: 1px solid var(--line);
                    border-radius: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
"""


def esc(value: object) -> str:
    """``value`` as HTML text (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def href(path: str, **query: object) -> str:
    """A link target: ``path`` with the non-empty ``query`` parameters, escaped."""
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return esc(f"{path}?{urlencode(params)}" if params else path)


def link(path: str, text: object, **query: object) -> str:
    return f'<a href="{href(path, **query)}">{esc(text)}</a>'


def badge(text: object, kind: str = "") -> str:
    """A small label; ``kind`` is ``ok``, ``bad``, ``warn`` or empty."""
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *,
          empty: str = "nothing yet") -> str:
    """A table of already-rendered cells (escape values with :func:`esc` first)."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def when(moment: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC``, or an em dash."""
    return "—" if moment is None else esc(moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def duration(value: timedelta | float | None) -> str:
    """A duration (a timedelta, or seconds) in the largest sensible unit."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 0)):
        if seconds >= size:
            amount = seconds / size if size else seconds
            return esc(f"{amount:,.0f} {unit}" if amount >= 100 else f"{amount:.3g} {unit}")
    return esc(f"{seconds:.3g} s")  # negative


def layout(title: str, body: str, *, pages: Mapping[str, str], current: str,
           project: str) -> str:
    """The whole document: header with the project and the navigation, then ``body``."""
    nav = "".join(
        f'<a href="/{esc(path)}"{" class=current" if path == current else ""}>{esc(name)}</a>'
        for path, name in pages.items())
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} · {esc(project)} · Headwater</title>"
            f'<link rel=stylesheet href="{STYLESHEET}">'
            f'<link rel=icon type="image/svg+xml" href="{ICON}"></head><body>'
            f'<header><span class=brand>Headwater</span><span class=muted>{esc(project)}'
            f"</span><nav>{nav}</nav></header><main><h1>{esc(title)}</h1>{body}</main>"
            "</body></html>")
