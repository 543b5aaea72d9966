"""PDF rendering speed and size: PDF/A on or off, charts inline or as <img>.

    .venv/bin/python bench/bench_reports_core.py [--repeats 3] [--json out.json]

Two documents built on templates/reports/base.html with reports.charts:
  * short:   an individual explanation, 1-2 pages: two bar charts and a table;
  * dossier: a model dossier, ~10 pages: eight charts (bars, grouped bars,
             shape functions, lineage) and long tables;
  * charts:  the dossier's eight charts alone, to isolate SVG drawing cost.
Each combination of PDF variant (none, pdf/a-3b) and chart embedding (inline
<svg>, <img src="data:image/svg+xml...">) is rendered once to warm fonts and
caches, then timed `--repeats` times in the same process (a report worker
renders many documents per process), round-robin across the
combinations; the medians of wall and CPU seconds are printed. The first, cold
render of the process is printed too. Targets: explanation < 0.8 s, dossier < 4 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"short": 0.8, "dossier": 4.0, "charts": 0.8}


def _engine():
    # A standalone engine: the bench needs the report templates, not the project.
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=False)
    from django.template import Engine

    return Engine(dirs=[str(ROOT / "templates")], autoescape=True)


def _features(rng: random.Random, count: int) -> list[tuple[str, float]]:
    names = [
        "age",
        "education_num",
        "hours_per_week",
        "capital_gain",
        "capital_loss",
        "marital_status = Married-civ-spouse",
        "occupation = Exec-managerial",
        "relationship = Husband",
        "workclass = Federal-gov",
        "native_country = United-States",
        "race = White",
        "sex = Female",
    ]
    items = [(names[i % len(names)], rng.uniform(-1.2, 1.2)) for i in range(count)]
    return sorted(items, key=lambda item: -abs(item[1]))


def _table(rng: random.Random, rows: int, caption: str) -> str:
    body = "".join(
        f"<tr><td>feature_{i}</td><td>{rng.choice(['numeric', 'categorical'])}</td>"
        f'<td class="num">{rng.uniform(0, 1):.3f}</td>'
        f'<td class="num">{rng.uniform(-1, 1):+.3f}</td>'
        f"<td>{'stable' if rng.random() > 0.3 else 'shifted (PSI > 0.2)'}</td></tr>"
        for i in range(rows)
    )
    return (
        f"<table><caption>{caption}</caption><thead><tr><th>Feature</th>"
        '<th>Type</th><th class="num">Importance</th><th class="num">Shift</th>'
        f"<th>Status</th></tr></thead><tbody>{body}</tbody></table>"
    )


def build_documents(inline: bool) -> dict[str, str]:
    """HTML for the two benchmark documents, charts embedded as asked."""
    from reports import charts

    rng = random.Random(7)
    engine = _engine()
    template = engine.from_string(
        '{% extends "reports/base.html" %}'
        "{% block content %}{{ body|safe }}{% endblock %}"
        "{% block small_print %}{{ small|safe }}{% endblock %}"
    )
    small = (
        "<h2>Your rights</h2><p>This explanation is provided under Articles "
        "15(1)(h) and 22 GDPR. You may contest the decision and obtain human "
        "review.</p>" * 2
    )

    def embed(svg: str, alt: str) -> str:
        return charts.embed(svg, alt=alt, inline=inline)

    from django.template import Context

    short_body = (
        "<h2>Why this decision</h2>"
        '<p class="notice">The model estimated a score of 0.31 against a '
        "threshold of 0.50.</p>"
        + embed(
            charts.bar_chart_horizontal(
                _features(rng, 10), title="Contributions", value_label="score"
            ),
            "Contributions",
        )
        + "<h2>What would change it</h2>"
        + embed(
            charts.grouped_bar_chart(
                ["hours_per_week", "education_num", "capital_gain"],
                [("Your case", [38, 9, 0]), ("Counterfactual", [50, 13, 0])],
                title="Counterfactual",
            ),
            "Counterfactual",
        )
        + _table(rng, 12, "Inputs used")
    )
    dossier_parts = ["<h2>Lineage</h2>"]
    dossier_parts.append(
        embed(
            charts.lineage_tree(
                [
                    (1, None, "adult-base v1", "private sector"),
                    (2, 1, "adult-gov v2", "government"),
                    (3, 1, "adult-self v3", "self-employed"),
                    (4, 2, "adult-gov v4", "government, 2026"),
                    (5, 2, "adult-gov v5", "state only"),
                ],
                title="Lineage",
                highlight=4,
            ),
            "Lineage",
        )
    )
    for section in range(3):
        dossier_parts.append(f"<h2>Section {section + 1}</h2>")
        dossier_parts.append(_table(rng, 45, f"Features, part {section + 1}"))
    for index in range(3):
        xs = [18 + i * 0.5 for i in range(150)]
        ys = [round(math.sin(x / 6) + rng.uniform(-0.1, 0.1), 2) for x in xs]
        dossier_parts.append(
            embed(
                charts.line_chart(
                    xs, ys, title=f"Shape {index}", x_label="age", y_label="score"
                ),
                f"Shape {index}",
            )
        )
    for index in range(2):
        dossier_parts.append(
            embed(
                charts.grouped_bar_chart(
                    ["Female", "Male", "Amer-Indian", "Asian-Pac", "Black", "White"],
                    [
                        ("parent / source", [rng.uniform(0, 0.4) for _ in range(6)]),
                        ("parent / target", [rng.uniform(0, 0.4) for _ in range(6)]),
                        ("child / target", [rng.uniform(0, 0.4) for _ in range(6)]),
                    ],
                    title=f"Selection rate {index}",
                    y_label="selection rate",
                ),
                f"Selection rate {index}",
            )
        )
    for index in range(2):
        dossier_parts.append(
            embed(
                charts.bar_chart_horizontal(
                    _features(rng, 15), title=f"Importance {index}"
                ),
                f"Importance {index}",
            )
        )
    dossier_parts.append(_table(rng, 60, "Per-group metrics"))
    chart_parts = [part for part in dossier_parts if 'class="chart"' in part]

    documents = {}
    for name, body, title in (
        ("short", short_body, "Explanation of an automated decision"),
        ("dossier", "".join(dossier_parts), "Model dossier: adult-gov v4"),
        ("charts", "".join(chart_parts), "Charts only"),
    ):
        documents[name] = template.render(
            Context(
                {
                    "title": title,
                    "kind": "Benchmark",
                    "reference": "BENCH-0001",
                    "body": body,
                    "small": small,
                }
            )
        )
    return documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # HarfBuzz notice

    from reports.pdf import render_pdf

    metadata = {"author": "bench", "report_reference": "BENCH-0001"}
    cold_start = time.perf_counter()
    render_pdf("<p>warm-up</p>", title="warm-up", metadata=metadata)
    cold = time.perf_counter() - cold_start

    combos = [
        (name, inline, variant)
        for name in ("short", "dossier", "charts")
        for inline in (False, True)
        for variant in (None, "pdf/a-3b")
    ]
    html = {inline: build_documents(inline) for inline in (False, True)}
    wall: dict[tuple, list[float]] = {combo: [] for combo in combos}
    cpu: dict[tuple, list[float]] = {combo: [] for combo in combos}
    last = {}
    # Round-robin so that load from other processes hits every variant alike;
    # CPU seconds are reported beside wall seconds for the same reason.
    for repeat in range(args.repeats + 1):
        for combo in combos:
            name, inline, variant = combo
            cpu_start = time.process_time()
            rendered = render_pdf(
                html[inline][name], title=name, metadata=metadata, pdf_variant=variant
            )
            if repeat == 0:
                continue  # warm-up: caches, font loading
            cpu[combo].append(time.process_time() - cpu_start)
            wall[combo].append(rendered.seconds)
            last[combo] = rendered
    results = [
        {
            "document": name,
            "charts": "inline-svg" if inline else "img-data-uri",
            "variant": variant or "plain",
            "seconds": round(statistics.median(wall[combo]), 3),
            "cpu_seconds": round(statistics.median(cpu[combo]), 3),
            "pages": last[combo].pages,
            "kib": round(len(last[combo].data) / 1024, 1),
            "html_kib": round(len(html[inline][name]) / 1024, 1),
            "target_s": TARGETS[name],
        }
        for combo in combos
        for name, inline, variant in [combo]
    ]
    from weasyprint.pdf.fonts import harfbuzz_subset

    print(f"first render in a fresh process (fonts, imports): {cold:.2f} s")
    # Font subsetting by fontTools (the fallback) cost ~0.3 s per document.
    print(f"HarfBuzz subset library: {'yes' if harfbuzz_subset else 'NO (fontTools)'}")
    header = (
        f"{'document':8} {'charts':13} {'variant':9} {'wall s':>7} {'cpu s':>6} "
        f"{'pages':>5} {'PDF KiB':>8} {'HTML KiB':>8} {'target':>7}"
    )
    print(header)
    for row in results:
        flag = "ok" if row["seconds"] < row["target_s"] else "SLOW"
        print(
            f"{row['document']:8} {row['charts']:13} {row['variant']:9} "
            f"{row['seconds']:7.3f} {row['cpu_seconds']:6.3f} {row['pages']:5d} "
            f"{row['kib']:8.1f} "
            f"{row['html_kib']:8.1f} {row['target_s']:5.1f}s {flag}"
        )
    if args.json:
        args.json.write_text(json.dumps({"cold_s": cold, "results": results}, indent=2))


if __name__ == "__main__":
    main()
