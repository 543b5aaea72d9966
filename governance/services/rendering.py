"""Rendering a report, and what waits for it.

An individual explanation drafted for a request marks the request drafted; a
contest's letter, once rendered, lets the contest be closed. Here rather than in
reports.py, which the request and contest services use (no import cycle).
"""

from __future__ import annotations

from governance.models import Report
from governance.services.contests import contest_letter_rendered
from governance.services.reports import report_render
from governance.services.requests import request_mark_drafted


def report_render_and_advance(*, report_id: int) -> Report | None:
    """Render the report (a no-op for one not pending) and, in the same
    transaction, move on the request or contest that waited for it."""
    return report_render(report_id=report_id, on_rendered=_advance)


def _advance(report: Report) -> None:
    if report.request_id:
        request_mark_drafted(report=report)
    if report.kind == Report.Kind.CONTEST_LETTER:
        contest_letter_rendered(report=report)
