"""Drawing anomaly cycles: Graphviz text (``.dot``) and a self-made SVG (``.svg``).

Theory of operation
-------------------
The input is a graph checker :class:`Result`; every anomaly that has
``steps`` (a cycle) is drawn as its own panel, up to :data:`MAX_CYCLES`.
Nodes are the cycle's operations (T1, T2, ... with their history index and
process); edges carry their relation (ww, wr, rw, process, realtime) and the
per-edge explanation as a tooltip.

``.dot`` is plain Graphviz text, one ``cluster`` per cycle, for users who have
Graphviz. ``.svg`` needs nothing: nodes sit on a circle, edges are slightly
bent quadratic Béziers (so the two directions of a pair do not overlap) with
an arrowhead and a label at their midpoint.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from jepsenlike.checkers.result import Result

MAX_CYCLES = 20
COLORS = {
    "ww": "#1f77b4",
    "wr": "#2ca02c",
    "rw": "#d62728",
    "process": "#9467bd",
    "realtime": "#ff7f0e",
}


def cycles_of(result: Result) -> list[dict[str, Any]]:
    """The cycle anomalies in a graph checker result."""
    out = []
    for records in result.details.get("anomalies", {}).values():
        for rec in records:
            if rec.get("steps"):
                out.append(rec)
    return out[:MAX_CYCLES]


def _node_label(t: dict[str, Any]) -> str:
    return f"{t['name']}\nop {t['index']} (p{t['process']})"


def to_dot(result: Result) -> str:
    """Graphviz text with one cluster per anomaly cycle."""
    lines = ["digraph anomalies {", "  node [shape=circle, fontsize=10];"]
    for i, rec in enumerate(cycles_of(result)):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_str(rec['type'])};")
        ids = {t["index"]: f"c{i}_{j}" for j, t in enumerate(rec["txns"])}
        for t in rec["txns"]:
            lines.append(f"    {ids[t['index']]} [label={_dot_str(_node_label(t))}];")
        for s in rec["steps"]:
            color = COLORS.get(s["rel"], "black")
            lines.append(
                f"    {ids[s['from']]} -> {ids[s['to']]} [label={_dot_str(s['rel'])}, "
                f"color={_dot_str(color)}, fontcolor={_dot_str(color)}, "
                f"tooltip={_dot_str(s['why'])}];"
            )
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


PANEL_W = 520
PANEL_H = 400
NODE_R = 30


def to_svg(result: Result) -> str:
    """An SVG drawing of the anomaly cycles (circle layout, labelled edges)."""
    cycles = cycles_of(result)
    height = max(1, len(cycles)) * PANEL_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PANEL_W}" height="{height}" '
        f'viewBox="0 0 {PANEL_W} {height}" font-family="sans-serif">',
        "<defs>",
    ]
    for rel, color in COLORS.items():
        out.append(
            f'<marker id="arrow-{rel}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    if not cycles:
        out.append('<text x="20" y="40" font-size="14">no anomaly cycles</text>')
    for i, rec in enumerate(cycles):
        out.append(_panel(rec, i * PANEL_H))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(rec: dict[str, Any], top: float) -> str:
    txns = rec["txns"]
    n = len(txns)
    cx, cy = PANEL_W / 2, top + PANEL_H / 2 + 10
    radius = 0 if n == 1 else min(140, 50 + 30 * n)
    pos: dict[int, tuple[float, float]] = {}
    for j, t in enumerate(txns):
        a = -math.pi / 2 + 2 * math.pi * j / n
        pos[t["index"]] = (cx + radius * math.cos(a), cy + radius * math.sin(a))
    parts = [
        f'<g class="cycle"><rect x="1" y="{top + 1}" width="{PANEL_W - 2}" '
        f'height="{PANEL_H - 2}" fill="white" stroke="#ccc"/>',
        f'<text x="12" y="{top + 24}" font-size="16" font-weight="bold">'
        f"{escape(rec['type'])}</text>",
    ]
    for s in rec["steps"]:
        parts.append(_edge(pos[s["from"]], pos[s["to"]], s))
    for t in txns:
        x, y = pos[t["index"]]
        name, detail = _node_label(t).split("\n")
        parts.append(
            f'<g class="node"><title>{escape(str(t.get("value")))}</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{NODE_R}" fill="#f7f7f7" stroke="#333"/>'
            f'<text x="{x:.1f}" y="{y - 2:.1f}" text-anchor="middle" font-size="13">'
            f"{escape(name)}</text>"
            f'<text x="{x:.1f}" y="{y + 12:.1f}" text-anchor="middle" font-size="9">'
            f"{escape(detail)}</text></g>"
        )
    parts.append("</g>")
    return "\n".join(parts)


def _edge(p: tuple[float, float], q: tuple[float, float], step: dict[str, Any]) -> str:
    (x1, y1), (x2, y2) = p, q
    dx, dy = x2 - x1, y2 - y1
    dist = math.hypot(dx, dy) or 1.0
    ux, uy = dx / dist, dy / dist
    # bend to the left of the direction of travel, so A->B and B->A separate
    bend = 0.18 * dist
    mx, my = (x1 + x2) / 2 - uy * bend, (y1 + y2) / 2 + ux * bend
    # start and end on the node circles, aimed at the control point
    sx, sy = _toward(x1, y1, mx, my, NODE_R)
    ex, ey = _toward(x2, y2, mx, my, NODE_R)
    color = COLORS.get(step["rel"], "#000")
    lx, ly = (sx + 2 * mx + ex) / 4, (sy + 2 * my + ey) / 4  # the curve's midpoint
    return (
        f'<g class="edge"><title>{escape(step["why"])}</title>'
        f'<path d="M {sx:.1f} {sy:.1f} Q {mx:.1f} {my:.1f} {ex:.1f} {ey:.1f}" fill="none" '
        f'stroke="{color}" stroke-width="2" marker-end="url(#arrow-{escape(step["rel"])})"/>'
        f'<text x="{lx:.1f}" y="{ly - 4:.1f}" text-anchor="middle" font-size="12" '
        f'fill="{color}">{escape(step["rel"])}</text></g>'
    )


def _toward(x: float, y: float, tx: float, ty: float, r: float) -> tuple[float, float]:
    d = math.hypot(tx - x, ty - y) or 1.0
    return x + (tx - x) / d * r, y + (ty - y) / d * r


def write_graph(path: str, result: Result) -> None:
    """Write the anomaly cycles to ``path`` (``.dot`` or ``.svg``)."""
    text = to_svg(result) if path.endswith(".svg") else to_dot(result)
    Path(path).write_text(text, encoding="utf-8")
