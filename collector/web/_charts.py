"""Charts drawn on the server: inline SVG and plain data for the templates, no JavaScript.

Every number a chart shows is also written as text (bar totals, legend, tile
counts): a control-room screen is read from a distance and nothing may need a
mouse hover.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from html import escape
from typing import Any

from otsentry.collector.web._attack import OTHER, TACTICS, TECHNIQUES
from otsentry.common.finding import Severity

__all__ = ["SEVERITY_COLOURS", "severity_svg", "heat_map"]

#: Fill colours per severity, readable on the dark background (each also labelled in text).
SEVERITY_COLOURS = {Severity.INFO: "#8a94a6", Severity.LOW: "#4ea1ff", Severity.MEDIUM: "#ffd23f",
                    Severity.HIGH: "#ff8c1a", Severity.CRITICAL: "#ff3b3b"}

_W, _H, _LEFT, _TOP, _BOTTOM = 1200, 360, 70, 20, 60


def _label(ns: int, width: int) -> str:
    t = dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)
    return t.strftime("%H:%M:%S" if width < 600 * 10**9 else "%m-%d %H:%M")


def severity_svg(series: dict[str, Any]) -> str:
    """Stacked bars of findings per time bucket and severity (from ``severity_series``)."""
    counts: list[list[int]] = series["counts"]
    if not counts:
        return '<p class="empty">No findings yet.</p>'
    top = max(1, max(sum(c) for c in counts))
    plot_h, bar_w = _H - _TOP - _BOTTOM, (_W - _LEFT) / len(counts)
    out = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
           f'aria-label="Findings over time by severity">',
           f'<text x="{_LEFT - 10}" y="{_TOP + 8}" class="axis" text-anchor="end">{top}</text>',
           f'<text x="{_LEFT - 10}" y="{_H - _BOTTOM}" class="axis" text-anchor="end">0</text>',
           f'<line x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W}" y2="{_H - _BOTTOM}" class="base"/>']
    for i, per_sev in enumerate(counts):
        x, y = _LEFT + i * bar_w, _H - _BOTTOM
        for sev in Severity:
            h = per_sev[sev] / top * plot_h
            if h:
                y -= h
                out.append(f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" '
                           f'height="{h:.1f}" fill="{SEVERITY_COLOURS[sev]}"/>')
        if sum(per_sev):
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 6:.1f}" class="total" '
                       f'text-anchor="middle">{sum(per_sev)}</text>')
        if i % 4 == 0:
            start = series["start"] + i * series["width"]
            out.append(f'<text x="{x + 2:.1f}" y="{_H - _BOTTOM + 28}" class="axis">'
                       f'{escape(_label(start, series["width"]))}</text>')
    out.append("</svg>")
    return "".join(out)


def heat_map(counts: Counter[str]) -> list[dict[str, Any]]:
    """Tactic columns of technique tiles with their finding counts and a heat level 0..5.

    Techniques seen but not in :data:`TECHNIQUES` go under "Other".
    """
    top = max(counts.values(), default=0)
    columns: dict[str, list[dict[str, Any]]] = {t: [] for t in (*TACTICS, OTHER)}
    known = {**TECHNIQUES, **{t: ("", OTHER) for t in counts if t not in TECHNIQUES}}
    for tid, (name, tactic) in sorted(known.items()):
        n = counts.get(tid, 0)
        level = 0 if not n else 1 + min(4, int(4 * n / top))
        columns[tactic].append({"id": tid, "name": name, "count": n, "level": level})
    return [{"tactic": t, "techniques": tiles} for t, tiles in columns.items() if tiles]
