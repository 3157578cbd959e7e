"""Pictures drawn on the server as inline SVG: the identity graph of a profile, a
histogram, a line over time and signed bars. No script draws them, so they show with
scripts off and in screenshots; every text is escaped.

The graph's nodes are the profile's records (squares, coloured by source) and identifiers
(circles, coloured by type); its edges are ``Explain``'s: a record to an identifier it
carries (a deterministic rule) or a record to another record (the model's match, drawn
thicker with its weight). Edges that did not link (a shared device, a generic value, a
rejected review) are dashed and red. Each edge carries ``data-edge`` (its index in the
``Explain`` answer) and an htmx ``hx-get`` of its explanation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
from markupsafe import Markup, escape

_TYPE_COLOURS = {
    "email": "#2b6cb0", "phone": "#2f855a", "device": "#b7791f", "idfa": "#b7791f",
    "gaid": "#b7791f", "cookie": "#975a16", "crm": "#6b46c1", "user": "#c05621",
    "message": "#718096", "ext": "#4a5568",
}
_SOURCE_COLOURS = ["#1a365d", "#22543d", "#44337a", "#742a2a", "#7b341e", "#234e52",
                   "#2a4365", "#553c9a"]


def _colour_of_type(kind: str) -> str:
    return _TYPE_COLOURS.get(kind.split(":", 1)[0], "#4a5568")


def _source_colour(source: str) -> str:
    return _SOURCE_COLOURS[sum(map(ord, source)) % len(_SOURCE_COLOURS)]


@dataclass(slots=True)
class GraphNode:
    node_id: str
    """``record:<key>`` or ``identifier:<type:value>``."""
    label: str
    kind: str
    """``record`` or ``identifier``."""
    group: str
    """The record's source or the identifier's type."""


@dataclass(slots=True)
class GraphEdge:
    index: int
    a: str
    b: str
    linked: bool
    rule: str
    weight: float | None


def graph_svg(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], edge_url: str,
              width: int = 760, height: int = 460) -> Markup:
    """The graph laid out by networkx (spring layout, fixed seed: the same profile is
    drawn the same way each time). ``edge_url`` is formatted with ``index``."""
    g = nx.Graph()
    g.add_nodes_from(n.node_id for n in nodes)
    for e in edges:
        if e.a in g and e.b in g:
            g.add_edge(e.a, e.b)
    if not nodes:
        return Markup('<p class="muted">No records.</p>')
    pos = nx.spring_layout(g, seed=7, k=1.6 / math.sqrt(max(len(g), 1)), iterations=80)
    pad = 40
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0

    def at(node_id: str) -> tuple[float, float]:
        x, y = pos[node_id]
        # labels are drawn right of their node: leave room for them on the right
        return (pad + (x - min(xs)) / span_x * (width - pad - 190),
                pad + (y - min(ys)) / span_y * (height - 2 * pad))

    out = [(f'<svg class="graph" role="img" aria-label="identity graph" '
           f'viewBox="0 0 {width} {height}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg">')]
    for e in edges:
        if e.a not in pos or e.b not in pos:
            continue
        (x1, y1), (x2, y2) = at(e.a), at(e.b)
        classes = ["edge", "linked" if e.linked else "unlinked"]
        classes.append("match" if e.weight is not None else "rule")
        stroke = 1.5 if e.weight is None else min(6.0, 1.5 + abs(e.weight) / 6)
        title = escape(f"{e.rule}{' (not linked)' if not e.linked else ''}"
                       + (f", weight {e.weight:+.1f}" if e.weight is not None else ""))
        url = escape(edge_url.format(index=e.index))
        out.append(
            f'<g class="{" ".join(classes)}" data-edge="{e.index}" hx-get="{url}" '
            f'hx-target="#edge-detail" tabindex="0"><title>{title}</title>'
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke-width="{stroke:.1f}"/>'
            f'<line class="hit" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/></g>')
    for n in nodes:
        x, y = at(n.node_id)
        label = escape(n.label if len(n.label) <= 28 else n.label[:27] + "…")
        if n.kind == "record":
            colour = _source_colour(n.group)
            shape = (f'<rect x="{x - 8:.1f}" y="{y - 8:.1f}" width="16" height="16" '
                     f'fill="{colour}"/>')
        else:
            colour = _colour_of_type(n.group)
            shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{colour}"/>'
        out.append(f'<g class="node {n.kind}" data-node="{escape(n.node_id)}">'
                   f'<title>{escape(n.label)}</title>{shape}'
                   f'<text x="{x + 11:.1f}" y="{y + 4:.1f}">{label}</text></g>')
    out.append("</svg>")
    return Markup("".join(out))


def histogram_svg(values: Sequence[float], bins: int = 20, width: int = 560,
                  height: int = 160, label: str = "") -> Markup:
    """Counts of ``values`` in ``bins`` equal bins, with the axis's ends labelled."""
    if not values:
        return Markup('<p class="muted">Nothing to draw.</p>')
    lo, hi = min(values), max(values)
    if hi == lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    top = max(counts)
    bar_w = (width - 40) / bins
    out = [(f'<svg class="chart" role="img" aria-label="{escape(label)}" '
           f'viewBox="0 0 {width} {height + 30}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg">')]
    for i, c in enumerate(counts):
        h = 0 if top == 0 else c / top * height
        x = 20 + i * bar_w
        left = lo + (hi - lo) * i / bins
        out.append(f'<rect class="bar" x="{x:.1f}" y="{height - h:.1f}" '
                   f'width="{bar_w - 2:.1f}" height="{h:.1f}"><title>'
                   f'{left:.1f} to {left + (hi - lo) / bins:.1f}: {c}</title></rect>')
    out.append(f'<text x="20" y="{height + 18}">{lo:.1f}</text>'
               f'<text x="{width - 20}" y="{height + 18}" text-anchor="end">{hi:.1f}</text>'
               f'<text x="{width / 2:.0f}" y="{height + 18}" text-anchor="middle">'
               f'{escape(label)}</text></svg>')
    return Markup("".join(out))


def line_svg(points: Sequence[tuple[str, float]], width: int = 560, height: int = 140,
             label: str = "") -> Markup:
    """A line through ``points`` (x label, y value), the first and last labelled."""
    if not points:
        return Markup('<p class="muted">No data in the window.</p>')
    ys = [y for _x, y in points]
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    step = (width - 60) / max(1, len(points) - 1)

    def xy(i: int, y: float) -> tuple[float, float]:
        return 40 + i * step, 10 + (hi - y) / (hi - lo) * (height - 20)

    path = " ".join(f"{'M' if i == 0 else 'L'}{xy(i, y)[0]:.1f},{xy(i, y)[1]:.1f}"
                    for i, (_x, y) in enumerate(points))
    out = [(f'<svg class="chart" role="img" aria-label="{escape(label)}" '
           f'viewBox="0 0 {width} {height + 24}" width="100%" '
           f'xmlns="http://www.w3.org/2000/svg"><path class="line" d="{path}"/>')]
    for i, (x, y) in enumerate(points):
        cx, cy = xy(i, y)
        out.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5">'
                   f'<title>{escape(x)}: {y:g}</title></circle>')
    out.append(f'<text x="2" y="14">{hi:g}</text><text x="2" y="{height - 6}">{lo:g}</text>'
               f'<text x="40" y="{height + 18}">{escape(points[0][0])}</text>'
               f'<text x="{width - 20}" y="{height + 18}" text-anchor="end">'
               f'{escape(points[-1][0])}</text></svg>')
    return Markup("".join(out))


def bars_svg(items: Sequence[tuple[str, float]], width: int = 420) -> Markup:
    """Signed horizontal bars (a comparison's match weight: green for, red against)."""
    if not items:
        return Markup("")
    top = max(abs(v) for _n, v in items) or 1.0
    row = 20
    mid = width / 2 + 40
    half = width / 2 - 50
    out = [(f'<svg class="bars" viewBox="0 0 {width + 40} {row * len(items) + 4}" '
           f'width="100%" xmlns="http://www.w3.org/2000/svg">')]
    for i, (name, value) in enumerate(items):
        w = abs(value) / top * half
        x = mid if value >= 0 else mid - w
        cls = "for" if value >= 0 else "against"
        y = i * row + 2
        out.append(f'<text x="{mid - half - 6:.0f}" y="{y + 13}" text-anchor="end">'
                   f'{escape(name)}</text><rect class="{cls}" x="{x:.1f}" y="{y}" '
                   f'width="{max(w, 1):.1f}" height="{row - 6}"/>'
                   f'<text x="{mid + half + 4:.0f}" y="{y + 13}">{value:+.1f}</text>')
    out.append("</svg>")
    return Markup("".join(out))
