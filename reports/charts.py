"""Small SVG charts for PDF reports, built as strings (no plotting library).

WeasyPrint spends most of a report's render time drawing SVG, so the charts
keep the element count low: one ``<path>`` per colour where shapes repeat,
integer coordinates, no filters, gradients, markers or text on a path, and
presentation attributes set once on a group rather than on every element.

Every label is data (feature names, group names, model names), so it goes
through :func:`xml_escape`; the SVG must stay well-formed XML whatever a user
typed. Each chart carries ``role="img"``, a ``<title>`` and a ``<desc>`` for
readers that use assistive technology.

Functions return SVG markup as ``str``. :func:`embed` turns it into the HTML a
template inserts (as ``<img src="data:...">``, which renders faster in
WeasyPrint 70 than an inline ``<svg>``: see bench/bench_reports_core.py).
Templates must mark the result safe; the markup is already escaped here.
"""

from __future__ import annotations

import base64
import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

FONT_FAMILY = "DejaVu Sans, sans-serif"
FONT_SIZE = 11
# DejaVu Sans averages about 0.6 em per character in mixed-case text; good
# enough to size label columns without measuring glyphs.
CHAR_WIDTH = FONT_SIZE * 0.6
INK = "#222"
GRID = "#ccc"
# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies
# and when printed in greyscale thanks to differing lightness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7")
POSITIVE = "#0072B2"
NEGATIVE = "#D55E00"

# Characters that XML 1.0 forbids even when escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_escape(text: object) -> str:
    """Escape text for XML content and double- or single-quoted attributes."""
    value = _XML_INVALID.sub("", str(text))
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def truncate(text: str, max_chars: int) -> str:
    """Shorten a label to fit a column, marking the cut with an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= max_chars:
        return text
    return text[: max(1, max_chars - 1)].rstrip() + "\u2026"


def format_number(value: float | None, *, signed: bool = False) -> str:
    """Three significant figures for readers, with steady decimals in a column.

    0.1234 -> "0.123", 0.49 -> "0.490", 12.34 -> "12.3", 12345 -> "12,345",
    0.000012 -> "1.20e-05"; NaN or None -> "n/a".
    """
    if value is None or math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if math.isinf(value):
        text = "\u221e"
    elif magnitude == 0:
        text = "0"
    elif magnitude >= 1e6 or magnitude < 1e-3:
        text = f"{magnitude:.2e}"
    elif magnitude >= 100:
        text = f"{magnitude:,.0f}"
    elif magnitude >= 10:
        text = f"{magnitude:.1f}"
    elif magnitude >= 1:
        text = f"{magnitude:.2f}"
    else:
        text = f"{magnitude:.3f}"
    if value < 0:
        text = "-" + text
    elif signed and value > 0:
        text = "+" + text
    return text


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels for evenly spaced ticks, with as many decimals as the step needs."""
    if len(ticks) < 2:
        return [format_number(t) for t in ticks]
    step = abs(ticks[1] - ticks[0])
    if step >= 1e6 or step < 1e-4:
        return [f"{t:.1e}" if t else "0" for t in ticks]
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return [f"{t:,.{decimals}f}" for t in ticks]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) spanning low..high."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick range must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:  # pragma: no cover - float edge
        ticks.append(round(value, 12))
    return ticks


@dataclass(frozen=True)
class _Scale:
    """Linear map from data values to integer pixel positions."""

    low: float
    high: float
    start: int
    end: int

    def __call__(self, value: float) -> int:
        span = self.high - self.low or 1.0
        return round(self.start + (value - self.low) / span * (self.end - self.start))


def _finite(values: Sequence[float], what: str) -> list[float]:
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{what} must be finite numbers")
    return numbers


def _open(width: int, height: int, title: str, desc: str) -> list[str]:
    # xmlns is required for the data-URI route (a standalone document).
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{xml_escape(title)}</title>",
        f"<desc>{xml_escape(desc)}</desc>",
        f'<g font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}" fill="{INK}">',
    ]


def _close(parts: list[str]) -> str:
    parts.append("</g></svg>")
    return "".join(parts)


def _text(x: int, y: int, text: str, anchor: str = "start", **attrs: object) -> str:
    extra = "".join(
        f' {key.replace("_", "-")}="{value}"' for key, value in attrs.items()
    )
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return f'<text x="{x}" y="{y}"{anchor_attr}{extra}>{xml_escape(text)}</text>'


def _y_label(middle: int, label: str) -> str:
    """A y-axis title, turned to read upwards along the axis."""
    return (
        f'<text x="12" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 12 {middle})">{xml_escape(label)}</text>'
    )


def _rects_path(rects: Sequence[tuple[int, int, int, int]]) -> str:
    """Many rectangles as the data of one path: one element to draw, not many."""
    return "".join(f"M{x} {y}h{w}v{h}h{-w}z" for x, y, w, h in rects if w and h)


def bar_chart_horizontal(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 600,
    value_label: str = "",
    positive_color: str = POSITIVE,
    negative_color: str = NEGATIVE,
    signed: bool = True,
    max_label_chars: int = 34,
    decimals: int | None = None,
) -> str:
    """Bars left and right of zero, one row per (label, value), in given order.

    Used for local explanations: each feature's contribution to one decision,
    positive bars pushing toward the outcome, negative bars against it. Values
    print with three significant figures, or with `decimals` fixed decimals so a
    column of them reads alike (+15.0, +0.5).
    """

    def shown(value: float) -> str:
        if decimals is None:
            return format_number(value, signed=signed)
        text = f"{value:,.{decimals}f}"
        if float(text.replace(",", "")) == 0:
            return f"{0:.{decimals}f}"  # neither "-0.0" nor "+0.0"
        return ("+" if signed and value > 0 else "") + text

    if not items:
        raise ValueError("a bar chart needs at least one item")
    labels = [truncate(label, max_label_chars) for label, _ in items]
    values = _finite([value for _, value in items], "bar values")
    row, top, bottom = 20, 8, 30 if value_label else 22
    label_w = min(int(max(len(lbl) for lbl in labels) * CHAR_WIDTH) + 10, width // 2)
    number_w = int(8 * CHAR_WIDTH)  # room for "+0.123" beside the longest bar
    height = top + row * len(values) + bottom
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values), 5)
    low, high = ticks[0], ticks[-1]
    left_pad = number_w if low < 0 else 4
    scale = _Scale(low, high, label_w + left_pad, width - number_w)
    zero = scale(0.0)

    desc = "; ".join(
        f"{label}: {shown(v)}" for label, v in zip(labels, values, strict=True)
    )
    parts = _open(width, height, title, desc)
    positive, negative, texts = [], [], []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + index * row
        end = scale(value)
        rect = (min(zero, end), y + 3, abs(end - zero), row - 6)
        (positive if value >= 0 else negative).append(rect)
        mid = y + row // 2 + 4  # baseline that centres 11 px text in the row
        texts.append(_text(label_w - 6, mid, label, "end"))
        number = shown(value)
        if value >= 0:
            texts.append(_text(max(end, zero) + 4, mid, number))
        else:
            texts.append(_text(end - 4, mid, number, "end"))
    if positive:
        parts.append(f'<path fill="{positive_color}" d="{_rects_path(positive)}"/>')
    if negative:
        parts.append(f'<path fill="{negative_color}" d="{_rects_path(negative)}"/>')
    axis_bottom = top + row * len(values)
    grid = "".join(f"M{scale(t)} {top}V{axis_bottom}" for t in ticks if t != 0)
    parts.append(f'<path stroke="{GRID}" fill="none" d="{grid}"/>')
    parts.append(f'<path stroke="{INK}" fill="none" d="M{zero} {top}V{axis_bottom}"/>')
    parts.extend(texts)
    parts.extend(
        _text(scale(t), axis_bottom + 14, text, "middle")
        for t, text in zip(ticks, tick_labels(ticks), strict=True)
    )
    if value_label:
        parts.append(_text(width // 2, height - 4, value_label, "middle"))
    return _close(parts)


def grouped_bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    width: int = 600,
    height: int = 240,
    y_label: str = "",
    colors: Sequence[str] = PALETTE,
    max_label_chars: int = 18,
    y_range: tuple[float, float] | None = None,
    value_labels: bool = False,
    lines: Sequence[tuple[str, float]] = (),
    intervals: Sequence[Sequence[tuple[float, float] | None]] = (),
) -> str:
    """Vertical bars: one cluster per group, one bar per series, with a legend.

    Used for fairness metrics, e.g. selection rate by sex for the parent and
    the fine-tuned model, on source and target domains. `y_range` fixes the
    axis (bars rise from its low end: for a bounded metric such as ROC AUC, a
    range near the values shows a difference a zero-based axis hides; the
    caller says so in the caption). `value_labels` prints each bar's value.
    `lines` draws a dashed horizontal line at each (label, value), e.g. a gate
    a rate must stay above, labelled at the right end. `intervals`, one list per
    series with one (low, high) or None per group, draws each as a whisker over
    its bar (the caller's caption says what interval it is).
    """
    if not groups or not series:
        raise ValueError("a grouped bar chart needs groups and series")
    if intervals and (
        len(intervals) != len(series)
        or any(len(per) != len(groups) for per in intervals)
    ):
        raise ValueError("intervals: one (low, high) or None per series and group")
    spans = [span for per in intervals for span in per if span is not None]
    for name, values in series:
        if len(values) != len(groups):
            raise ValueError(
                f"series {name!r} has {len(values)} values for {len(groups)} groups"
            )
    all_values = [v for _, values in series for v in _finite(values, "bar values")]
    line_values = _finite([value for _, value in lines], "line values")
    all_values += line_values
    all_values += _finite([v for span in spans for v in span], "interval bounds")
    if y_range is None:
        ticks = nice_ticks(min(0.0, *all_values), max(0.0, *all_values), 5)
    else:
        # The axis is the tick grid around y_range (axis_start tells a caption
        # where it begins); a bar outside it would be drawn wrong, so refuse.
        ticks = nice_ticks(*_finite(y_range, "y_range"), 5)
        if min(all_values) < ticks[0] or max(all_values) > ticks[-1]:
            raise ValueError("a bar value lies outside y_range")
    tick_text = tick_labels(ticks)
    left = int(max(len(t) for t in tick_text) * CHAR_WIDTH) + 14
    if y_label:
        left += 16
    legend_h, bottom = 20, 34
    # Room above the tallest bar for its value label, clear of the legend.
    plot_top, plot_bottom = legend_h + (22 if value_labels else 8), height - bottom
    y = _Scale(ticks[0], ticks[-1], plot_bottom, plot_top)
    plot_w = width - left - 8
    cluster = plot_w / len(groups)
    bar_w = max(2, int(cluster * 0.8 / len(series)))

    def said(s_index: int, g_index: int, value: float) -> str:
        span = intervals[s_index][g_index] if intervals else None
        if span is None:
            return format_number(value)
        low, high = min(span), max(span)
        return f"{format_number(value)} ({format_number(low)} to {format_number(high)})"

    desc = "; ".join(
        f"{name}: "
        + ", ".join(
            f"{group} {said(s_index, g_index, v)}"
            for g_index, (group, v) in enumerate(zip(groups, values, strict=True))
        )
        for s_index, (name, values) in enumerate(series)
    )
    parts = _open(width, height, title, desc)
    grid = "".join(f"M{left} {y(t)}H{width - 8}" for t in ticks)
    parts.append(f'<path stroke="{GRID}" fill="none" d="{grid}"/>')
    # Bars rise from zero, or from the axis' low end when the range excludes zero.
    base = min(max(0.0, ticks[0]), ticks[-1])
    zero = y(base)
    bars_by_series: list[list[tuple[int, int, int, int]]] = [[] for _ in series]
    value_texts = []
    whiskers = []
    for g_index in range(len(groups)):
        x0 = left + round(g_index * cluster + cluster * 0.1)
        for s_index, (_, values) in enumerate(series):
            top = y(values[g_index])
            x = x0 + s_index * bar_w
            bars_by_series[s_index].append(
                (x, min(top, zero), bar_w - 1, abs(zero - top))
            )
            span = intervals[s_index][g_index] if intervals else None
            if span is not None:
                mid, cap = x + (bar_w - 1) // 2, max(2, min(6, bar_w // 4))
                low_y, high_y = y(min(span)), y(max(span))
                whiskers.append(
                    f"M{mid} {low_y}V{high_y}M{mid - cap} {low_y}H{mid + cap}"
                    f"M{mid - cap} {high_y}H{mid + cap}"
                )
            if value_labels:
                value_texts.append(
                    _text(
                        x + bar_w // 2,
                        top - 3,
                        format_number(values[g_index]),
                        "middle",
                    )
                )
    for s_index, rects in enumerate(bars_by_series):
        color = colors[s_index % len(colors)]
        parts.append(f'<path fill="{color}" d="{_rects_path(rects)}"/>')
    parts.append(f'<path stroke="{INK}" fill="none" d="M{left} {zero}H{width - 8}"/>')
    if whiskers:
        parts.append(f'<path stroke="{INK}" fill="none" d="{"".join(whiskers)}"/>')
    dashed = f'stroke="{NEGATIVE}" stroke-dasharray="5 3" fill="none"'
    for value in line_values:
        parts.append(f'<path {dashed} d="M{left} {y(value)}H{width - 8}"/>')
    parts.extend(value_texts)
    parts.extend(
        _text(left - 4, y(t) + 4, text, "end")
        for t, text in zip(ticks, tick_text, strict=True)
    )
    group_chars = max(4, int(cluster / CHAR_WIDTH))
    for g_index, group in enumerate(groups):
        center = left + round((g_index + 0.5) * cluster)
        label = truncate(group, min(max_label_chars, group_chars))
        parts.append(_text(center, plot_bottom + 16, label, "middle"))
    if y_label:
        middle = (plot_top + plot_bottom) // 2
        parts.append(
            f'<text x="12" y="{middle}" text-anchor="middle" '
            f'transform="rotate(-90 12 {middle})">{xml_escape(y_label)}</text>'
        )
    x = left
    for s_index, (name, _) in enumerate(series):
        color = colors[s_index % len(colors)]
        label = truncate(name, 24)
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{color}"/>')
        parts.append(_text(x + 14, 15, label))
        x += 14 + int(len(label) * CHAR_WIDTH) + 16
    # Each line in the legend, so its label never sits on a bar.
    for (name, _), value in zip(lines, line_values, strict=True):
        label = f"{truncate(name, 24)} {format_number(value)}"
        parts.append(f'<path {dashed} d="M{x} 11H{x + 16}"/>')
        parts.append(_text(x + 20, 15, label))
        x += 20 + int(len(label) * CHAR_WIDTH) + 16
    return _close(parts)


def _merge_flat(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Drop interior points of runs with the same y: a step chart looks the same."""
    kept_x, kept_y = [xs[0]], [ys[0]]
    for i in range(1, len(xs)):
        if ys[i] == kept_y[-1] and i != len(xs) - 1 and ys[i + 1] == ys[i]:
            continue
        kept_x.append(xs[i])
        kept_y.append(ys[i])
    return kept_x, kept_y


def line_chart(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    title: str,
    width: int = 600,
    height: int = 220,
    x_label: str = "",
    y_label: str = "",
    step: bool = True,
    color: str = POSITIVE,
    max_points: int = 400,
) -> str:
    """A line (or step, the default) from (x, y) points sorted by x.

    Used for an EBM shape function: a feature's value against its score. The
    EBM's score is constant inside each bin, so ``step=True`` draws it as
    flat segments that change at bin edges (the value holds until the next x).
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("a line chart needs two or more (x, y) points")
    x_values, y_values = _finite(xs, "x values"), _finite(ys, "y values")
    pairs = sorted(zip(x_values, y_values, strict=True))
    x_values, y_values = [p[0] for p in pairs], [p[1] for p in pairs]
    if step:
        x_values, y_values = _merge_flat(x_values, y_values)
    if len(x_values) > max_points:
        # Evenly thin the points: beyond a few hundred the page cannot show more.
        stride = math.ceil(len(x_values) / max_points)
        keep = list(range(0, len(x_values), stride))
        if keep[-1] != len(x_values) - 1:
            keep.append(len(x_values) - 1)
        x_values = [x_values[i] for i in keep]
        y_values = [y_values[i] for i in keep]

    y_ticks = nice_ticks(min(0.0, *y_values), max(0.0, *y_values), 5)
    x_ticks = [
        t
        for t in nice_ticks(x_values[0], x_values[-1], 6)
        if x_values[0] <= t <= x_values[-1]
    ] or [x_values[0], x_values[-1]]
    y_text = tick_labels(y_ticks)
    left = int(max(len(t) for t in y_text) * CHAR_WIDTH) + 14
    if y_label:
        left += 16
    top, bottom = 10, 34 if x_label else 22
    x = _Scale(x_values[0], x_values[-1], left, width - 10)
    y = _Scale(y_ticks[0], y_ticks[-1], height - bottom, top)

    desc = (
        f"{len(xs)} points; x from {format_number(x_values[0])} to "
        f"{format_number(x_values[-1])}; y from {format_number(min(y_values))} to "
        f"{format_number(max(y_values))}"
    )
    parts = _open(width, height, title, desc)
    grid = "".join(f"M{left} {y(t)}H{width - 10}" for t in y_ticks)
    parts.append(f'<path stroke="{GRID}" fill="none" d="{grid}"/>')
    parts.append(
        f'<path stroke="{INK}" fill="none" d="M{left} {y(0.0)}H{width - 10}'
        f'M{left} {top}V{height - bottom}"/>'
    )
    points = [f"M{x(x_values[0])} {y(y_values[0])}"]
    for i in range(1, len(x_values)):
        px, py = x(x_values[i]), y(y_values[i])
        if step:
            points.append(f"H{px}V{py}")
        else:
            points.append(f"L{px} {py}")
    parts.append(
        f'<path stroke="{color}" stroke-width="2" fill="none" '
        f'stroke-linejoin="round" d="{"".join(points)}"/>'
    )
    parts.extend(
        _text(left - 4, y(t) + 4, text, "end")
        for t, text in zip(y_ticks, y_text, strict=True)
    )
    parts.extend(
        _text(x(t), height - bottom + 14, text, "middle")
        for t, text in zip(x_ticks, tick_labels(x_ticks), strict=True)
    )
    if x_label:
        parts.append(_text((left + width) // 2, height - 4, x_label, "middle"))
    if y_label:
        parts.append(_y_label((top + height - bottom) // 2, y_label))
    return _close(parts)


def time_series_chart(
    points: Sequence[tuple[datetime.datetime, float | None]],
    *,
    title: str,
    lines: Sequence[tuple[str, float]] = (),
    x_range: tuple[datetime.datetime, datetime.datetime] | None = None,
    width: int = 600,
    height: int = 200,
    y_label: str = "",
    color: str = POSITIVE,
    tz: datetime.tzinfo = datetime.UTC,
) -> str:
    """A measure over time: one dot per (moment, value), joined in time order,
    with each gate of `lines` drawn as a dashed horizontal line labelled at its
    right end ("warn 0.1"). A value of None (not measured: too little data) is
    not drawn: the line breaks there, and the description counts it.

    Used for a monitoring report: each run's value of one metric against the
    warning and fail lines it was judged by. `x_range` fixes the axis to the
    report's period, so a quiet stretch shows as empty space; the axis's dates
    are read in `tz`.
    """
    if not points:
        raise ValueError("a time-series chart needs at least one point")
    ordered = sorted(points, key=lambda point: point[0])
    moments = [moment.timestamp() for moment, _ in ordered]
    values = [None if v is None else float(v) for _, v in ordered]
    measured = _finite([v for v in values if v is not None], "values")
    gate_values = _finite([value for _, value in lines], "lines")
    gates = [(label, v) for (label, _), v in zip(lines, gate_values, strict=True)]
    low_x, high_x = (
        (x_range[0].timestamp(), x_range[1].timestamp())
        if x_range
        else (moments[0], moments[-1])
    )
    if high_x <= low_x:
        low_x, high_x = low_x - 43_200, high_x + 43_200  # half a day each side
    everything = measured + [value for _, value in gates]
    y_ticks = nice_ticks(min(0.0, *everything), max(0.0, *everything) or 1.0, 5)
    y_text = tick_labels(y_ticks)
    widest = max((len(f"{label} {format_number(v)}") for label, v in gates), default=0)
    label_w = int(widest * CHAR_WIDTH) + 8
    left = int(max(len(t) for t in y_text) * CHAR_WIDTH) + 14 + (16 if y_label else 0)
    top, bottom, right = 10, 22, width - 10 - label_w
    x = _Scale(low_x, high_x, left, right)
    y = _Scale(y_ticks[0], y_ticks[-1], height - bottom, top)

    skipped = sum(v is None for v in values)
    desc = (
        f"{len(measured)} measured point(s) from {ordered[0][0]:%Y-%m-%d} to "
        f"{ordered[-1][0]:%Y-%m-%d}"
        + (
            f", from {format_number(min(measured))} to {format_number(max(measured))}"
            if measured
            else ""
        )
        + (f"; {skipped} point(s) not measured, not drawn" if skipped else "")
        + "".join(f"; {label} line at {format_number(v)}" for label, v in gates)
    )
    parts = _open(width, height, title, desc)
    grid = "".join(f"M{left} {y(t)}H{right}" for t in y_ticks)
    parts.append(f'<path stroke="{GRID}" fill="none" d="{grid}"/>')
    parts.append(
        f'<path stroke="{INK}" fill="none" d="M{left} {y(y_ticks[0])}H{right}'
        f'M{left} {top}V{height - bottom}"/>'
    )
    label_at = height  # the baseline of the label below, so labels never overlap
    for index, (label, value) in sorted(enumerate(gates), key=lambda item: item[1][1]):
        # The last line given (the fail line) takes the darker, warmer colour.
        shade = NEGATIVE if index == len(gates) - 1 else PALETTE[1]
        parts.append(
            f'<path stroke="{shade}" stroke-dasharray="6 4" fill="none" '
            f'd="M{left} {y(value)}H{right}"/>'
        )
        label_at = min(y(value) + 4, label_at - FONT_SIZE - 1)
        parts.append(_text(right + 4, label_at, f"{label} {format_number(value)}"))
    segments, dots, pen_up = [], [], True
    for moment, value in zip(moments, values, strict=True):
        if value is None:
            pen_up = True
            continue
        px, py = x(moment), y(value)
        segments.append(f"{'M' if pen_up else 'L'}{px} {py}")
        dots.append(f"M{px} {py}h0")
        pen_up = False
    if segments:
        parts.append(
            f'<path stroke="{color}" stroke-width="2" fill="none" '
            f'stroke-linejoin="round" d="{"".join(segments)}"/>'
        )
        parts.append(
            f'<path stroke="{color}" stroke-width="7" stroke-linecap="round" '
            f'fill="none" d="{"".join(dots)}"/>'
        )
    parts.extend(
        _text(left - 4, y(t) + 4, text, "end")
        for t, text in zip(y_ticks, y_text, strict=True)
    )
    ticks = 1 if high_x - low_x < 86_400 * 2 else min(5, max(2, (right - left) // 110))
    for i in range(ticks):
        at = low_x + (high_x - low_x) * (i / (ticks - 1) if ticks > 1 else 0.5)
        day = datetime.datetime.fromtimestamp(at, tz=tz)
        anchor = (
            "start"
            if i == 0 and ticks > 1
            else "end"
            if i == ticks - 1 and ticks > 1
            else "middle"
        )
        parts.append(_text(x(at), height - bottom + 14, f"{day:%Y-%m-%d}", anchor))
    if y_label:
        parts.append(_y_label((top + height - bottom) // 2, y_label))
    return _close(parts)


def lineage_tree(
    nodes: Sequence[tuple[object, object | None, str, str]],
    *,
    title: str,
    highlight: object | None = None,
    box_width: int = 150,
    max_width: int = 640,
) -> str:
    """A top-down tree of (id, parent_id, label, sublabel) nodes.

    Roots are nodes whose parent is None or not in the list (a dossier may show
    only part of the lineage). Children keep the order they are given in. The
    ``highlight`` node (the version a report is about) is drawn in bold. A
    sublabel may hold several lines, separated by newlines (the version page
    adds the trained layers and the data); the boxes grow to hold them.
    The drawing is scaled down to ``max_width`` when the tree is wide.
    """
    if not nodes:
        raise ValueError("a lineage tree needs at least one node")
    by_id: dict[object, tuple[str, str]] = {}
    children: dict[object, list[object]] = {}
    order: list[object] = []
    for node_id, _parent, label, sublabel in nodes:
        if node_id in by_id:
            raise ValueError(f"duplicate node id {node_id!r}")
        by_id[node_id] = (label, sublabel)
        order.append(node_id)
    roots = []
    for node_id, parent_id, _, _ in nodes:
        if parent_id is None or parent_id not in by_id or parent_id == node_id:
            roots.append(node_id)
        else:
            children.setdefault(parent_id, []).append(node_id)

    # Tidy layout: leaves take consecutive slots, parents sit over their
    # children. Iterative DFS; `seen` guards against a cycle in bad data.
    slot: dict[object, float] = {}
    depth: dict[object, int] = {}
    seen: set[object] = set()
    next_leaf = 0
    unplaced = [n for n in order if n not in roots]
    for root in roots + unplaced:  # nodes on a cycle have no root: draw them too
        if root in seen:
            continue
        stack: list[tuple[object, int, bool]] = [(root, 0, False)]
        while stack:
            node_id, level, done = stack.pop()
            if done:
                kids = [
                    k for k in children.get(node_id, []) if depth.get(k) == level + 1
                ]
                if kids:
                    slot[node_id] = (slot[kids[0]] + slot[kids[-1]]) / 2
                else:
                    slot[node_id] = next_leaf
                    next_leaf += 1
                continue
            if node_id in seen:
                continue
            seen.add(node_id)
            depth[node_id] = level
            stack.append((node_id, level, True))
            for kid in reversed(children.get(node_id, [])):
                if kid not in seen:
                    stack.append((kid, level + 1, False))

    chars = int((box_width - 12) / CHAR_WIDTH)
    wrapped = {n: _wrap(by_id[n][0], chars) for n in order}
    name_lines = max(len(lines) for lines in wrapped.values())
    subs = {
        n: [
            line
            for part in by_id[n][1].split("\n")
            if part.strip()
            for line in _wrap(part, chars, max_lines=2)
        ]
        for n in order
    }
    sub_lines = max(1, max(len(lines) for lines in subs.values()))
    gap_x, gap_y, pad = 20, 34, 6
    box_h = 26 + 14 * (name_lines + sub_lines - 1)
    columns = max(1, next_leaf)
    levels = max(depth.values()) + 1
    width = pad * 2 + columns * box_width + (columns - 1) * gap_x
    height = pad * 2 + levels * box_h + (levels - 1) * gap_y

    def box_xy(node_id: object) -> tuple[int, int]:
        return (
            round(pad + slot[node_id] * (box_width + gap_x)),
            pad + depth[node_id] * (box_h + gap_y),
        )

    # The description says each sublabel line whole, however it was wrapped.
    subs_said = {
        n: [part.strip() for part in by_id[n][1].split("\n") if part.strip()]
        for n in order
    }
    desc = "; ".join(
        by_id[n][0]
        + (f" ({', '.join(subs_said[n])})" if subs_said[n] else "")
        + (f" derived from {by_id[p][0]}" if p in by_id and p != n else "")
        for n, p, _, _ in nodes
    )
    shown_w = min(width, max_width)
    shown_h = round(height * shown_w / width)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{shown_w}" '
        f'height="{shown_h}" viewBox="0 0 {width} {height}">',
        f"<title>{xml_escape(title)}</title>",
        f"<desc>{xml_escape(desc)}</desc>",
        f'<g font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}" fill="{INK}">',
    ]
    links = []
    for node_id, parent_id, _, _ in nodes:
        if node_id in roots or parent_id not in slot:
            continue
        if depth.get(node_id) != depth.get(parent_id, -2) + 1:
            continue  # a back edge of a cycle: the box is drawn, the link is not
        px, py = box_xy(parent_id)
        cx, cy = box_xy(node_id)
        mid = py + box_h + gap_y // 2
        links.append(
            f"M{px + box_width // 2} {py + box_h}V{mid}H{cx + box_width // 2}V{cy}"
        )
    if links:
        parts.append(f'<path stroke="#666" fill="none" d="{"".join(links)}"/>')
    boxes = [box_xy(n) for n in order if n != highlight]
    parts.append(
        f'<path fill="#f4f6f8" stroke="#666" '
        f'd="{_rects_path([(x, y, box_width, box_h) for x, y in boxes])}"/>'
    )
    if highlight in by_id:
        x, y = box_xy(highlight)
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_width}" height="{box_h}" '
            f'fill="#e3eef8" stroke="{POSITIVE}" stroke-width="2"/>'
        )
    for node_id in order:
        x, y = box_xy(node_id)
        center = x + box_width // 2
        weight = {"font_weight": "bold"} if node_id == highlight else {}
        for line_no, line in enumerate(wrapped[node_id]):
            parts.append(_text(center, y + 17 + 14 * line_no, line, "middle", **weight))
        below = y + 17 + 14 * len(wrapped[node_id]) + 1
        for line_no, line in enumerate(subs[node_id]):
            parts.append(
                _text(center, below + 14 * line_no, line, "middle", fill="#555")
            )
    return _close(parts)


def _wrap(text: str, chars: int, max_lines: int = 3) -> list[str]:
    """A name over up to `max_lines` lines of `chars`, broken after a separator
    where one is near (version names are "base/ft1-target"), else anywhere; only a
    name longer than every line together is cut, with an ellipsis."""
    text = " ".join(str(text).split())
    lines: list[str] = []
    while len(text) > chars and len(lines) < max_lines - 1:
        cut = max(text.rfind(sep, 0, chars) for sep in " /-_.")
        cut = cut + 1 if cut >= chars // 2 else chars
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        lines.append(truncate(text, chars))
    return lines


def axis_start(low: float, high: float) -> float:
    """Where an axis asked for low..high begins (grouped_bar_chart's y_range):
    the round tick at or below `low`."""
    return nice_ticks(low, high, 5)[0]


def svg_data_uri(svg: str) -> str:
    """The chart as a ``data:`` URL (the only kind the report fetcher allows)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def embed(
    svg: str, *, alt: str, inline: bool = False, caption: str | None = None
) -> str:
    """HTML that places a chart in a report: an ``<img>`` (default) or inline,
    under a visible caption (the chart's title; `caption` when given, else
    `alt`), so a reader and text extraction see what the chart shows.

    The ``<img>`` route is the default because WeasyPrint 70 draws it faster;
    ``alt`` repeats the chart's title for screen readers.
    """
    figcaption = f"<figcaption>{xml_escape(caption or alt)}</figcaption>"
    if inline:
        return f'<figure class="chart">{figcaption}{svg}</figure>'
    width = re.search(r'width="(\d+)"', svg)
    size = f' width="{width.group(1)}"' if width else ""
    return (
        f'<figure class="chart">{figcaption}<img src="{svg_data_uri(svg)}" '
        f'alt="{xml_escape(alt)}"{size}></figure>'
    )
