"""Inline SVG charts built as strings, so the report needs no JavaScript and fetches nothing.

All elements are built by ``_el``, which escapes every attribute and text: the caller embeds
the result unescaped (as markup) in the HTML page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from ctrbench.report.axes import Axis, byte_axis, count_axis, linear_axis, nice_step, spread_axis

# Tableau 10: distinguishable, and readable on white.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")

FONT_SIZE = 11
CHAR_WIDTH = 0.6 * FONT_SIZE  # rough advance of one character, for label collision tests
MARGIN = {"left": 62, "right": 28, "top": 28, "bottom": 44}
GRID_COLOR, FRAME_COLOR, MUTED_COLOR = "#e5e7eb", "#9ca3af", "#4b5563"

Formatter = Callable[[float], str]


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    color: str
    tooltip: str = ""
    error: tuple[float, float] | None = None  # (low, high) of its confidence interval on y, drawn as a bar
    on_front: bool = False  # on the Pareto front: joined by the front's dashed line
    highlight: bool = False  # ringed (the cheapest model not significantly worse than the best)


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: Sequence[tuple[float, float]]
    highlight_x: float | None = None  # drawn as a ring, e.g. the best epoch


def _attr(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _el(tag: str, text: object = None, *, children: str = "", **attrs: object) -> str:
    """One SVG element; ``class_`` and ``font_size`` become ``class`` and ``font-size``."""
    rendered = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(_attr(value), quote=True)}"'
        for name, value in attrs.items()
        if value is not None
    )
    if text is None and not children:
        return f"<{tag}{rendered}/>"
    return f"<{tag}{rendered}>{children}{'' if text is None else escape(str(text))}</{tag}>"


def _label(text: object, x: float, y: float, anchor: str = "start", **attrs: object) -> str:
    return _el("text", text, x=x, y=y, dy="0.32em", text_anchor=anchor, font_size=FONT_SIZE, **attrs)


class _Canvas:
    """Maps data to pixels inside the plot area and collects SVG elements."""

    def __init__(self, width: int, height: int, x_axis: Axis, y_axis: Axis, right_margin: int = MARGIN["right"]):
        self.width, self.height = width, height
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.right, self.bottom = width - right_margin, height - MARGIN["bottom"]
        self.x_axis, self.y_axis = x_axis, y_axis
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        return self.left + self.x_axis.fraction(x) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - self.y_axis.fraction(y) * (self.bottom - self.top)

    def frame(self, title: str, x_label: str, y_label: str, x_format: Formatter | None = None) -> None:
        x_format = x_format or self.x_axis.tick_label
        add = self.parts.append
        add(_el("text", title, class_="chart-title", x=self.left, y=16, font_size=12, font_weight=600))
        for tick in self.y_axis.ticks:
            y = self.py(tick)
            add(_el("line", x1=self.left, x2=self.right, y1=y, y2=y, stroke=GRID_COLOR))
            add(_label(self.y_axis.tick_label(tick), self.left - 6, y, "end"))
        for tick in self.x_axis.ticks:
            x = self.px(tick)
            add(_el("line", x1=x, x2=x, y1=self.top, y2=self.bottom, stroke=GRID_COLOR, stroke_opacity=0.6))
            add(_label(x_format(tick), x, self.bottom + 14, "middle"))
        plot_width, plot_height = self.right - self.left, self.bottom - self.top
        add(_el("rect", x=self.left, y=self.top, width=plot_width, height=plot_height, fill="none", stroke=FRAME_COLOR))
        add(_label(x_label, (self.left + self.right) / 2, self.height - 10, "middle"))
        add(_label(y_label, 0, 0, "middle", transform=f"translate(12 {(self.top + self.bottom) / 2}) rotate(-90)"))

    def svg(self, label: str, css_class: str, **attrs: object) -> str:
        return _svg(label, css_class, self.width, self.height, "\n".join(self.parts), **attrs)


def _svg(label: str, css_class: str, width: int, height: int, body: str, **attrs: object) -> str:
    title = _el("title", label)
    return _el(
        "svg",
        children=f"{title}\n{body}\n",
        class_=f"chart {css_class}",
        role="img",
        aria_label=label,
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        **attrs,
    )


def empty_chart(title: str, message: str, width: int = 520, height: int = 120) -> str:
    body = _el("text", title, x=8, y=16, font_size=12, font_weight=600)
    body += _label(message, width / 2, height / 2 + 8, "middle", fill=MUTED_COLOR)
    return _svg(title, "chart-empty", width, height, body)


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(canvas: _Canvas, anchors: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Put each label beside its point, shifted up/down or to the left when it would hit another.

    Returns (x, y, text-anchor) per label; greedy, which is enough for a handful of models.
    """
    radius, gap = 6, 8
    taken = [(x - radius, y - radius, x + radius, y + radius) for x, y, _ in anchors]
    placed: list[tuple[float, float, str]] = []
    for x, y, text in anchors:
        width, half_height = len(text) * CHAR_WIDTH, (FONT_SIZE + 2) / 2
        candidates = []
        for shift in (0, -13, 13, -26, 26, -39, 39):
            ly = y + shift
            candidates.append((x + gap, ly, "start", (x + gap, ly - half_height, x + gap + width, ly + half_height)))
            candidates.append((x - gap, ly, "end", (x - gap - width, ly - half_height, x - gap, ly + half_height)))
        inside = [
            c
            for c in candidates
            if c[3][0] >= 0 and c[3][2] <= canvas.width and c[3][1] >= canvas.top and c[3][3] <= canvas.bottom + 4
        ]
        free = [c for c in inside if not any(_overlaps(c[3], box) for box in taken)]
        choice = (free or inside or candidates)[0]
        taken.append(choice[3])
        placed.append(choice[:3])
    return placed


def scatter_svg(
    points: Sequence[Point],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_format: Formatter,
    x_bytes: bool = False,
    y_within: tuple[float, float] | None = None,
    width: int = 520,
    height: int = 340,
) -> str:
    """One labelled dot per point, with its error bar where it has one; the points on the Pareto front joined in x
    order by a dashed line, a highlighted point ringed; the x axis turns logarithmic when the values spread widely."""
    points = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not points:
        return empty_chart(title, "no results with both values")
    xs = [p.x for p in points]
    ys = [y for p in points for y in (p.error or (p.y,))]
    x_axis = byte_axis(xs) if x_bytes else spread_axis(xs)
    canvas = _Canvas(width, height, x_axis, linear_axis(ys, within=y_within))
    canvas.frame(title, x_label + (" (log scale)" if x_axis.log else ""), y_label, x_format)

    anchors = [(canvas.px(p.x), canvas.py(p.y), p.label) for p in points]
    front = sorted((p.x, p.y) for p in points if p.on_front)
    if len(front) > 1:
        coords = " ".join(f"{canvas.px(x):.1f},{canvas.py(y):.1f}" for x, y in front)
        canvas.parts.append(
            _el("polyline", children=_el("title", "Pareto front"), class_="pareto-front", points=coords, fill="none",
                stroke=MUTED_COLOR, stroke_width=1.2, stroke_dasharray="4 3")
        )  # fmt: skip
    for point, (x, y, _) in zip(points, anchors):
        if point.error:
            low, high = (canvas.py(bound) for bound in point.error)
            canvas.parts.append(_el("line", class_="error-bar", x1=x, y1=low, x2=x, y2=high, stroke=point.color, stroke_width=1.5))
        if point.highlight:
            canvas.parts.append(_el("circle", class_="highlight", cx=x, cy=y, r=9, fill="none", stroke=point.color, stroke_width=1.5))
        tooltip = _el("title", point.tooltip) if point.tooltip else ""
        canvas.parts.append(
            _el(
                "circle",
                children=tooltip,
                class_="point",
                cx=x,
                cy=y,
                r=5,
                fill=point.color,
                stroke="#fff",
                stroke_width=1.5,
            )
        )
    for (x, y, text), (lx, ly, anchor) in zip(anchors, _place_labels(canvas, anchors)):
        if abs(ly - y) > 1:  # label pushed away from its dot: a leader line keeps them paired
            canvas.parts.append(_el("line", x1=x, y1=y, x2=lx, y2=ly, stroke=FRAME_COLOR, stroke_width=0.8))
        canvas.parts.append(_label(text, lx, ly, anchor, class_="point-label"))
    return canvas.svg(title, "chart-scatter")


def line_chart_svg(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    highlight_label: str = "",
    x_format: Formatter | None = None,
    width: int = 520,
    height: int = 340,
) -> str:
    """One polyline per series over integer x (epochs; or e.g. log2 lengths labelled by ``x_format``), with a legend
    to the right of the plot."""
    finite = [[(x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y)] for s in series]
    series, finite = [s for s, pts in zip(series, finite) if pts], [pts for pts in finite if pts]
    if not series:
        return empty_chart(title, "no per-epoch values")
    xs, ys = [x for pts in finite for x, _ in pts], [y for pts in finite for _, y in pts]
    legend_entries = [s.label for s in series] + ([highlight_label] if highlight_label else [])
    legend_width = int(max(len(text) for text in legend_entries) * CHAR_WIDTH) + 34
    x_axis, y_axis = linear_axis(xs, integer=True), linear_axis(ys)
    canvas = _Canvas(width + legend_width, height, x_axis, y_axis, right_margin=legend_width)
    canvas.frame(title, x_label, y_label, x_format)

    for s, pts in zip(series, finite):
        parts = [_el("title", s.label)]
        coords = " ".join(f"{canvas.px(x):.1f},{canvas.py(y):.1f}" for x, y in pts)
        parts.append(_el("polyline", points=coords, fill="none", stroke=s.color, stroke_width=2))
        for x, y in pts:
            parts.append(_el("circle", cx=canvas.px(x), cy=canvas.py(y), r=2.5, fill=s.color))
            if x == s.highlight_x:
                ring = {"fill": "none", "stroke": s.color, "stroke_width": 1.5}
                parts.append(_el("circle", cx=canvas.px(x), cy=canvas.py(y), r=6, **ring))
        canvas.parts.append(_el("g", children="".join(parts), class_="series", data_series=s.label))

    legend_x = canvas.right + 14
    for row, s in enumerate(series):
        y = canvas.top + 8 + row * 18
        canvas.parts.append(_el("line", x1=legend_x, x2=legend_x + 16, y1=y, y2=y, stroke=s.color, stroke_width=3))
        canvas.parts.append(_label(s.label, legend_x + 22, y))
    if highlight_label:
        y = canvas.top + 12 + len(series) * 18
        ring = {"fill": "none", "stroke": MUTED_COLOR, "stroke_width": 1.5}
        canvas.parts.append(_el("circle", cx=legend_x + 8, cy=y, r=5, **ring))
        canvas.parts.append(_label(highlight_label, legend_x + 22, y, fill=MUTED_COLOR))
    return canvas.svg(title, "chart-lines")


def histogram_svg(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    title: str,
    label: str,
    color: str,
    x_label: str,
    marker: float | None = None,
    marker_label: str = "mean",
    below: int = 0,
    above: int = 0,
    width: int = 340,
    height: int = 210,
) -> str:
    """Bars of a precomputed histogram (``len(edges) == len(counts) + 1``) with ``marker`` drawn as a
    dashed vertical line. ``label`` is the accessible name (``<title>`` and ``aria-label``).

    For readers and tests the counts are also on the ``<svg>`` as ``data-counts`` (space separated),
    the edges as ``data-edges``, and on each bar as ``data-count``; values outside the edges are in
    ``data-below`` / ``data-above`` and, when there are any, written in the chart.
    """
    if len(edges) != len(counts) + 1 or not counts:
        raise ValueError(f"a histogram needs len(edges) == len(counts) + 1 >= 2, got {len(edges)} and {len(counts)}")
    lo, hi = float(edges[0]), float(edges[-1])
    step = nice_step(hi - lo, 4)
    x_ticks = tuple(lo + i * step for i in range(round((hi - lo) / step) + 1) if lo + i * step <= hi + 1e-9)
    canvas = _Canvas(width, height, Axis(lo, hi, x_ticks), count_axis(max(counts)))
    canvas.frame(title, x_label, "samples")

    last = len(counts) - 1
    for index, count in enumerate(counts):
        left, right = canvas.px(float(edges[index])), canvas.px(float(edges[index + 1]))
        top = canvas.py(float(count))
        closing = "]" if index == last else ")"
        tooltip = _el("title", f"[{edges[index]:g}, {edges[index + 1]:g}{closing}: {count}")
        canvas.parts.append(
            _el(
                "rect",
                children=tooltip,
                class_="bar",
                x=left + 0.5,
                y=top,
                width=max(right - left - 1.0, 0.5),
                height=canvas.bottom - top,
                fill=color,
                fill_opacity=0.85,
                data_count=str(int(count)),
            )
        )
    if marker is not None and lo <= marker <= hi:
        x = canvas.px(marker)
        canvas.parts.append(
            _el(
                "line",
                children=_el("title", f"{marker_label} {marker:.3f}"),
                class_="marker",
                x1=x,
                x2=x,
                y1=canvas.top,
                y2=canvas.bottom,
                stroke="#111827",
                stroke_width=1.5,
                stroke_dasharray="4 3",
                data_value=f"{marker:.6g}",
            )
        )
        anchor = "start" if canvas.px(marker) < (canvas.left + canvas.right) / 2 else "end"
        offset = 4 if anchor == "start" else -4
        canvas.parts.append(_label(f"{marker_label} {marker:.2f}", x + offset, canvas.top + 9, anchor, class_="marker-label"))
    outside = [text for n, text in ((below, f"{below} below {lo:g}"), (above, f"{above} above {hi:g}")) if n]
    if outside:
        text = " · ".join(outside)
        canvas.parts.append(_label(text, canvas.right - 4, canvas.top + 24, "end", fill=MUTED_COLOR, class_="outside"))
    return canvas.svg(
        label,
        "chart-histogram",
        data_counts=" ".join(str(int(count)) for count in counts),
        data_edges=" ".join(f"{float(edge):g}" for edge in edges),
        data_below=str(int(below)),
        data_above=str(int(above)),
    )
