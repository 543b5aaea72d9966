"""Render time and size of the product's own reports: the model dossier and an
individual explanation, built from records the flow made on the Adult data.

    .venv/bin/python bench/bench_reports.py [--repeats 5] [--epochs 2]

Set-up (not timed): a throwaway SQLite database and media folder, then the whole
flow (manage.py run_flow) on the bundled Adult spec. Timed: for the fine-tuned
version's full dossier, its business summary, and the released individual
explanation, building the HTML from the records (template + charts) and rendering
the PDF, the median of --repeats renders. Targets: individual explanation < 0.8 s,
dossier < 4 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "governance.settings",
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
            "MEDIA_ROOT": str(work / "media"),
            "GOVERNANCE_VAR_DIR": str(work),
            "CELERY_BROKER_URL": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from governance.flow import STEPS, run_flow
    from governance.models import Report
    from governance.progress import StepCounter
    from governance.services.reports import TAGGED_KINDS, report_html
    from reports.pdf import render_pdf

    call_command("migrate", verbosity=0)
    print("set-up: running the flow on Adult (not timed) ...", file=sys.stderr)
    summary = run_flow(
        spec_path=ROOT / "data" / "specs" / "adult.toml",
        actor="bench",
        epochs=args.epochs,
        progress=StepCounter(len(STEPS), stream=sys.stderr),
    )
    dossier = Report.objects.get(pk=summary["child_review"]["dossier"]["id"])
    individual = Report.objects.get(pk=summary["request"]["report"]["id"])
    business = Report(
        reference="R-BENCH",
        kind=Report.Kind.DOSSIER,
        audience=Report.Audience.BUSINESS,
        model_version=dossier.model_version,
    )
    targets = {
        "individual explanation": 0.8,
        "dossier (full)": 4.0,
        "dossier (business summary)": 4.0,
    }
    print(
        f"{'report':<28} {'median s':>9} {'p max s':>8} {'pages':>6} {'KiB':>7}"
        f" {'target s':>9}  met"
    )
    for label, report in (
        ("individual explanation", individual),
        ("dossier (full)", dossier),
        ("dossier (business summary)", business),
    ):
        seconds, rendered = [], None
        for _ in range(args.repeats):
            started = time.perf_counter()
            html = report_html(report)
            # Tagged as report_render tags it (the person's reports).
            tagged = report.kind in TAGGED_KINDS
            rendered = render_pdf(html, title=label, metadata={}, pdf_tags=tagged)
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        target = targets[label]
        print(
            f"{label:<28} {median:>9.3f} {max(seconds):>8.3f} {rendered.pages:>6}"
            f" {len(rendered.data) / 1024:>7.1f} {target:>9.1f}  "
            f"{'yes' if median < target else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
