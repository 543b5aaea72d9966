from __future__ import annotations

import base64
import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports import charts
from reports.pdf import page_is_blank, pdf_page_pngs, pdf_text, render_pdf

SVG = "{http://www.w3.org/2000/svg}"
DAY = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
HOSTILE = "<script>alert(1)</script> & \"quotes\" 'n' \x01bell"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def all_charts(label: str = "age") -> dict[str, str]:
    return {
        "hbar": charts.bar_chart_horizontal(
            [(label, 0.42), ("hours", -0.18), ("education", 0.0)], title=label
        ),
        "grouped": charts.grouped_bar_chart(
            [label, "Male"],
            [(label, [0.2, 0.3]), ("child / target", [0.25, 0.28])],
            title=label,
            y_label=label,
        ),
        "line": charts.line_chart(
            [18, 30, 45, 60], [-0.4, 0.1, 0.3, 0.2], title=label, x_label=label
        ),
        "tree": charts.lineage_tree(
            [(1, None, label, label), (2, 1, "child", "target")], title=label
        ),
        "timeseries": charts.time_series_chart(
            [(DAY, 0.52), (DAY + dt.timedelta(days=3), None), (LATER, 0.9)],
            title=label,
            lines=[(label, 0.6), ("fail", 0.75)],
            y_label=label,
        ),
    }


@pytest.mark.parametrize("kind", ["hbar", "grouped", "line", "tree", "timeseries"])
def test_charts_are_accessible_svg(kind: str) -> None:
    root = parse(all_charts()[kind])

    assert root.get("role") == "img"
    assert root[0].tag == f"{SVG}title"
    assert root[0].text == "age"
    assert root.find(f"{SVG}desc").text


@pytest.mark.parametrize("kind", ["hbar", "grouped", "line", "tree", "timeseries"])
def test_user_supplied_labels_cannot_inject_markup(kind: str) -> None:
    svg = all_charts(HOSTILE)[kind]

    root = parse(svg)  # still well-formed XML

    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert "<script" not in svg
    assert root[0].text == HOSTILE.replace("\x01", "")
    # The label is shown as literal text, escaped only in the markup.
    assert any(t.startswith("<script>alert(1)") for t in texts(root))


@pytest.mark.parametrize("kind", ["hbar", "grouped", "line", "tree", "timeseries"])
def test_chart_coordinates_are_integers(kind: str) -> None:
    root = parse(all_charts()[kind])

    for element in root.iter():
        for name in ("x", "y", "width", "height"):
            value = element.get(name)
            if value is not None:
                assert re.fullmatch(r"-?\d+", value), (element.tag, name, value)
        if element.tag == f"{SVG}path":
            assert "." not in element.get("d"), element.get("d")[:80]


def test_charts_use_no_costly_svg_features() -> None:
    svg = "".join(all_charts().values())

    for feature in ("<filter", "<textPath", "Gradient", "<marker", "<style", "<image"):
        assert feature not in svg


def test_horizontal_bars_sit_on_either_side_of_zero() -> None:
    svg = charts.bar_chart_horizontal(
        [("up", 0.5), ("down", -0.25)], title="c", positive_color="#00f"
    )
    root = parse(svg)

    paths = {p.get("fill"): p.get("d") for p in root.iter(f"{SVG}path")}
    up = [int(n) for n in re.findall(r"-?\d+", paths["#00f"])]
    down = [int(n) for n in re.findall(r"-?\d+", paths[charts.NEGATIVE])]
    [axis] = [
        p.get("d") for p in root.iter(f"{SVG}path") if p.get("stroke") == charts.INK
    ]
    zero = int(re.search(r"M(\d+) ", axis).group(1))
    assert up[0] == zero and up[2] > 0  # starts at zero, extends right
    assert down[0] + down[2] == zero  # ends at zero, from the left
    assert "+0.500" in texts(root) and "-0.250" in texts(root)


def test_horizontal_bars_have_a_value_axis_with_round_ticks() -> None:
    root = parse(charts.bar_chart_horizontal([("a", 7.58), ("b", 0.4)], title="c"))
    # Not a lone "0": ticks across the range, each a label under the bars.
    assert {"0", "2", "4", "6", "8"} <= set(texts(root))


def test_grouped_bars_on_a_narrow_range_show_their_values() -> None:
    svg = charts.grouped_bar_chart(
        ["source", "target"],
        [("base", [0.918, 0.877]), ("tuned", [0.911, 0.892])],
        title="AUC",
        y_range=(0.8, 1.0),
        value_labels=True,
    )
    shown = texts(parse(svg))
    assert {"0.918", "0.877", "0.911", "0.892"} <= set(shown)
    assert "0.80" in shown and "0.00" not in shown and "0" not in shown


@pytest.mark.parametrize("lowest", [0.16, 0.36, 0.56, 0.877])
def test_a_bounded_axis_starts_where_axis_start_says_and_keeps_every_bar(lowest):
    low = max(0.0, int((lowest - 0.05) * 10) / 10)
    svg = charts.grouped_bar_chart(
        ["a", "b"],
        [("s", [lowest, 0.95])],
        title="AUC",
        y_range=(low, 1.0),
        value_labels=True,
    )
    root = parse(svg)
    start = charts.axis_start(low, 1.0)
    assert start <= low
    ticks = [float(t) for t in texts(root) if t.replace(".", "").isdigit()]
    assert min(ticks) == pytest.approx(start)
    # Both bars are drawn: no value was clamped to nothing.
    [bars] = [p.get("d") for p in root.iter(f"{SVG}path") if p.get("fill") == "#0072B2"]
    assert bars.count("M") == 2
    with pytest.raises(ValueError, match="outside"):
        charts.grouped_bar_chart(["a"], [("s", [0.1])], title="AUC", y_range=(0.5, 1.0))


def test_wrapped_names_keep_their_text_and_cut_only_the_end() -> None:
    assert charts._wrap("abc def ghi", 7) == ["abc", "def ghi"]
    lines = charts._wrap("uvwxyz abcdefghijk lmnopqrstu vwxyz", 8, max_lines=2)
    assert lines[0] == "uvwxyz" and lines[1].startswith("abcdefg")
    assert lines[1].endswith("\u2026") and len(lines[1]) <= 8


def test_fixed_decimals_never_print_a_signed_zero() -> None:
    root = parse(
        charts.bar_chart_horizontal([("a", -0.04), ("b", 0.04)], title="c", decimals=1)
    )
    shown = texts(root)
    assert "-0.0" not in shown and "+0.0" not in shown and "0.0" in shown


def test_lineage_names_wrap_instead_of_being_cut() -> None:
    name = "german-credit-base/ft1-target-after-review"
    root = parse(charts.lineage_tree([(1, None, name, "finetuned · draft")], title="t"))
    shown = "".join(texts(root))
    assert "\u2026" not in shown
    assert name.replace("/", "") in shown.replace("/", "")


def test_a_chart_has_its_title_as_text_in_the_document() -> None:
    svg = charts.bar_chart_horizontal([("a", 1.0)], title="The title")
    html = charts.embed(svg, alt="Alt text", caption="Shown above the chart")
    assert "<figcaption>Shown above the chart</figcaption>" in html
    assert "<figcaption>Alt text</figcaption>" in charts.embed(svg, alt="Alt text")


def test_long_labels_are_truncated_with_an_ellipsis() -> None:
    root = parse(charts.bar_chart_horizontal([("x" * 200, 1.0)], title="c"))

    [label] = [t for t in texts(root) if t.startswith("x")]
    assert len(label) <= 34 and label.endswith("\u2026")
    assert "x" * 200 not in label


def test_grouped_chart_draws_one_path_per_series_and_a_legend() -> None:
    root = parse(
        charts.grouped_bar_chart(
            ["A", "B", "C"],
            [("parent", [0.1, 0.2, 0.3]), ("child", [0.3, -0.1, 0.2])],
            title="g",
        )
    )

    fills = [p.get("fill") for p in root.iter(f"{SVG}path") if p.get("fill") != "none"]
    assert fills == list(charts.PALETTE[:2])
    assert {"parent", "child", "A", "B", "C"} <= set(texts(root))


def test_grouped_chart_draws_a_gate_line_across_the_bars_and_names_it() -> None:
    root = parse(
        charts.grouped_bar_chart(
            ["A", "B"],
            [("rate", [0.5, 0.9])],
            title="g",
            lines=[("four-fifths line", 0.72)],
        )
    )
    dashed = [p for p in root.iter(f"{SVG}path") if p.get("stroke-dasharray")]
    # One line across the plot, one swatch in the legend.
    assert len(dashed) == 2
    assert "four-fifths line 0.720" in texts(root)
    # At 0.72 on the axis: between the 0.50 and 0.75 ticks (labels sit 4 px low).
    y_line = int(re.search(r"M\d+ (\d+)H", dashed[0].get("d")).group(1))
    tick_y = {t.text: int(t.get("y")) - 4 for t in root.iter(f"{SVG}text")}
    low, high = tick_y["0.50"], tick_y["0.75"]
    assert high < y_line < low
    assert abs(y_line - (low + (high - low) * (0.72 - 0.5) / 0.25)) <= 1
    with pytest.raises(ValueError, match="line values"):
        charts.grouped_bar_chart(
            ["A"], [("rate", [0.5])], title="g", lines=[("x", math.nan)]
        )


def test_grouped_chart_draws_each_interval_as_a_whisker_and_says_it() -> None:
    root = parse(
        charts.grouped_bar_chart(
            ["A", "B"],
            [("rate", [0.5, 0.25])],
            title="g",
            y_range=(0.0, 1.0),
            intervals=[[(0.3, 0.7), None]],
        )
    )
    tick_y = {t.text: int(t.get("y")) - 4 for t in root.iter(f"{SVG}text")}
    [whiskers] = [
        p.get("d") for p in root.iter(f"{SVG}path") if p.get("stroke") == charts.INK
    ][1:]  # after the zero line
    # One whisker (B has none), from 0.3 to 0.7 on the axis, with two caps.
    [(low, high)] = re.findall(r"M\d+ (\d+)V(\d+)", whiskers)
    zero, top = tick_y["0.00"], tick_y["1.00"]
    assert abs(int(low) - (zero + (top - zero) * 0.3)) <= 1
    assert abs(int(high) - (zero + (top - zero) * 0.7)) <= 1
    assert whiskers.count("H") == 2
    desc = root.find(f"{SVG}desc").text
    assert desc == "rate: A 0.500 (0.300 to 0.700), B 0.250"
    with pytest.raises(ValueError, match="one \\(low, high\\) or None per series"):
        charts.grouped_bar_chart(
            ["A", "B"], [("rate", [0.5, 0.2])], title="g", intervals=[[(0, 1)]]
        )
    with pytest.raises(ValueError, match="outside y_range"):
        charts.grouped_bar_chart(
            ["A"],
            [("rate", [0.5])],
            title="g",
            y_range=(0.0, 1.0),
            intervals=[[(0.2, 1.6)]],
        )


def test_time_series_draws_measured_points_and_each_gate_line_named() -> None:
    points = [
        (LATER, 0.9),  # out of order: drawn in time order
        (DAY, 0.52),
        (DAY + dt.timedelta(days=3), None),  # too little data: not drawn
        (DAY + dt.timedelta(days=10), 0.7),
    ]
    root = parse(
        charts.time_series_chart(
            points,
            title="AUC",
            lines=[("warn", 0.6), ("fail", 0.62)],
            x_range=(DAY - dt.timedelta(days=1), LATER + dt.timedelta(days=1)),
        )
    )
    desc = root.find(f"{SVG}desc").text
    assert "3 measured point(s)" in desc and "1 point(s) not measured" in desc
    assert "warn line at 0.600" in desc and "fail line at 0.620" in desc
    dashed = [p for p in root.iter(f"{SVG}path") if p.get("stroke-dasharray")]
    assert len(dashed) == 2
    labels = {t.text: int(t.get("y")) for t in root.iter(f"{SVG}text")}
    # Lines 0.02 apart: their labels are pushed apart, never drawn on each other.
    assert labels["warn 0.600"] - labels["fail 0.620"] >= charts.FONT_SIZE
    # The period's first and last days label the axis.
    assert "2026-10-31" in labels and "2026-11-21" in labels
    line = next(p for p in root.iter(f"{SVG}path") if p.get("stroke-width") == "2").get(
        "d"
    )
    xs = [int(x) for x in re.findall(r"[ML](\d+) ", line)]
    assert len(xs) == 3 and xs == sorted(xs)
    with pytest.raises(ValueError, match="at least one point"):
        charts.time_series_chart([], title="t")
    with pytest.raises(ValueError, match="lines"):
        charts.time_series_chart([(DAY, 0.1)], title="t", lines=[("x", math.inf)])


def test_grouped_chart_refuses_series_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="series 'child' has 1 values for 2 groups"):
        charts.grouped_bar_chart(
            ["A", "B"], [("parent", [1, 2]), ("child", [1])], title="g"
        )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        charts.bar_chart_horizontal([("a", bad)], title="c")
    with pytest.raises(ValueError, match="finite"):
        charts.line_chart([0, 1], [0, bad], title="c")


def test_step_chart_holds_each_score_until_the_next_bin() -> None:
    root = parse(charts.line_chart([3, 1, 2], [0.3, 0.1, 0.2], title="s"))

    [line] = [p for p in root.iter(f"{SVG}path") if p.get("stroke-width") == "2"]
    commands = re.findall(r"[MHVL]", line.get("d"))
    assert commands == ["M", "H", "V", "H", "V"]  # sorted by x, flat then jump


def test_line_chart_thins_thousands_of_points() -> None:
    xs = list(range(5000))
    root = parse(
        charts.line_chart(
            xs, [math.sin(x / 50) for x in xs], title="s", step=False, max_points=300
        )
    )

    [line] = [p for p in root.iter(f"{SVG}path") if p.get("stroke-width") == "2"]
    assert 250 <= line.get("d").count("L") <= 301


def test_flat_runs_of_a_step_chart_collapse() -> None:
    root = parse(
        charts.line_chart(list(range(100)), [0.5] * 50 + [1.0] * 50, title="s")
    )

    [line] = [p for p in root.iter(f"{SVG}path") if p.get("stroke-width") == "2"]
    assert len(line.get("d")) < 60


def _boxes(svg: str) -> dict[str, tuple[int, int]]:
    """Label -> (x centre, y) of each lineage box, from its label text."""
    root = parse(svg)
    return {
        t.text: (int(t.get("x")), int(t.get("y")))
        for t in root.iter(f"{SVG}text")
        if t.get("font-weight") or t.get("fill") is None
    }


def test_lineage_tree_puts_parents_above_and_between_children() -> None:
    svg = charts.lineage_tree(
        [
            ("b", None, "base", "source"),
            ("c1", "b", "child one", "target"),
            ("c2", "b", "child two", "target"),
            ("g", "c1", "grandchild", "2026"),
        ],
        title="Lineage",
        highlight="c1",
    )
    boxes = _boxes(svg)

    assert boxes["base"][1] < boxes["child one"][1] < boxes["grandchild"][1]
    assert boxes["child one"][1] == boxes["child two"][1]
    assert boxes["base"][0] == (boxes["child one"][0] + boxes["child two"][0]) // 2
    root = parse(svg)
    bold = [t.text for t in root.iter(f"{SVG}text") if t.get("font-weight") == "bold"]
    assert bold == ["child one"]


def test_lineage_tree_survives_bad_data() -> None:
    # A parent outside the list becomes a root; a cycle is drawn, not followed.
    svg = charts.lineage_tree(
        [
            (1, 99, "orphan", ""),
            (2, 3, "loop a", ""),
            (3, 2, "loop b", ""),
            (4, 4, "self", ""),
        ],
        title="t",
    )

    assert {"orphan", "loop a", "loop b", "self"} <= set(texts(parse(svg)))
    with pytest.raises(ValueError, match="duplicate node id 1"):
        charts.lineage_tree([(1, None, "a", ""), (1, None, "b", "")], title="t")


def test_wide_lineage_trees_are_scaled_to_the_page() -> None:
    nodes = [(0, None, "base", "")] + [(i, 0, f"child {i}", "") for i in range(1, 12)]

    root = parse(charts.lineage_tree(nodes, title="t", max_width=640))

    assert int(root.get("width")) == 640
    assert int(root.get("viewBox").split()[2]) > 640


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [
        (0.1234, False, "0.123"),
        (0.49, False, "0.490"),
        (0.49, True, "+0.490"),
        (-0.25, True, "-0.250"),
        (12.34, False, "12.3"),
        (1.5, False, "1.50"),
        (12345.6, False, "12,346"),
        (0.000012, False, "1.20e-05"),
        (2.5e7, False, "2.50e+07"),
        (0, True, "0"),
        (math.nan, False, "n/a"),
        (None, False, "n/a"),
    ],
)
def test_numbers_are_formatted_for_readers(
    value: float, signed: bool, text: str
) -> None:
    assert charts.format_number(value, signed=signed) == text


def test_ticks_are_round_and_cover_the_range() -> None:
    ticks = charts.nice_ticks(-0.37, 0.81)

    assert ticks[0] <= -0.37 and ticks[-1] >= 0.81
    assert charts.tick_labels(ticks) == ["-0.5", "0.0", "0.5", "1.0"]
    assert charts.tick_labels(charts.nice_ticks(0, 1000)) == [
        "0",
        "250",
        "500",
        "750",
        "1,000",
    ]
    assert charts.nice_ticks(2, 2)[0] < 2 < charts.nice_ticks(2, 2)[-1]


def test_embed_as_img_carries_the_svg_in_a_data_url() -> None:
    svg = all_charts()["hbar"]

    html = charts.embed(svg, alt=HOSTILE)

    src = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(src).decode() == svg
    assert "<script" not in html
    assert 'width="600"' in html
    assert charts.embed(svg, alt="x", inline=True).count("<svg") == 1


@pytest.mark.parametrize("inline", [False, True])
def test_charts_render_in_a_pdf_with_their_labels(inline: bool, tmp_path: Path) -> None:
    body = "".join(
        charts.embed(svg, alt=kind, inline=inline)
        for kind, svg in all_charts("capital_gain").items()
    )
    html = f"<html><body>{body}</body></html>"

    result = render_pdf(html, title="charts", metadata={}, pdf_variant=None)

    assert result.blocked_urls == ()
    assert "capital_gain" in pdf_text(result.data)
    assert "+0.420" in pdf_text(result.data)
    pages = pdf_page_pngs(result.data, tmp_path, dpi=30)
    assert not any(page_is_blank(page) for page in pages)
