"""Decisions with what their notice needs: the decision logged (reference, secret)
and, for an adverse one, its main factors, so the person can be told why at
decision time, with its counterfactuals searched afterwards by a queued job. The
single endpoint, the bulk endpoint and `manage.py log_decisions` all come through
`decisions_log`; one row or many take the same path.

Order: every row checked and scored, then the factors computed, then everything
written in one transaction. A bad row, or a failure while computing factors,
leaves nothing written.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from governance.models import Decision, ModelVersion
from governance.services.decisions import (
    DecisionInputError,
    DecisionRow,
    DecisionRowsError,
    decisions_record,
    decisions_score,
)
from governance.services.explanations import NO_EXPLAINER_NOTE, decision_factors
from governance.services.jobs import jobs_start_decision_explanations


@dataclass(frozen=True)
class LoggedDecision:
    index: int  # the row's position in what the caller gave, from 0
    decision: Decision
    secret: str  # shown once; only its digest is stored
    factors: dict[str, Any] | None  # for an adverse decision, when available
    factors_note: str  # why there are no factors, or ""
    # The job searching an adverse decision's counterfactuals, when one was queued.
    counterfactuals_job: int | None = None
    counterfactuals_note: str = ""


# Why an adverse decision's counterfactuals were not queued at decision time.
NO_EXPLAINER_COUNTERFACTUALS_NOTE = (
    "No explainer is fitted for this version, so no counterfactual search was "
    "queued; once one is fitted (an explainer-fit job), an explanation request or "
    "a decision-explanation job gives them."
)
NOT_QUEUED_NOTE = (
    "Counterfactuals are not searched at decision time here "
    "(DECISION_COUNTERFACTUALS is off: no worker queue); an explanation request "
    "or a decision-explanation job gives them."
)


def decisions_log(
    *, model_version: ModelVersion, rows: list[DecisionRow], actor: Any
) -> list[LoggedDecision]:
    """Log a decision for each row, all or none, with an adverse one's factors
    and, where workers run (DECISION_COUNTERFACTUALS), a queued job that searches
    its counterfactuals afterwards.

    Raises DecisionInputError for a version that may not decide, and
    DecisionRowsError (naming each bad row by its index) for rows that cannot be
    decided; nothing is written then.
    """
    scored = decisions_score(model_version=model_version, rows=rows)
    factors = decision_factors(version=model_version, scored=scored)
    with transaction.atomic():
        made = decisions_record(model_version=model_version, scored=scored, actor=actor)
        # Factors were computed only where an explainer exists; the job needs it.
        explained = [
            decision
            for item, (decision, _) in zip(scored, made, strict=True)
            if factors[item.index] is not None
        ]
        queue = settings.DECISION_COUNTERFACTUALS
        jobs = (
            jobs_start_decision_explanations(decisions=explained, actor=actor)
            if queue
            else []
        )
    job_of = {job.decision_id: job.pk for job in jobs}
    logged = []
    for item, (decision, secret) in zip(scored, made, strict=True):
        found = factors[item.index]
        note = cf_note = ""
        if item.favourable:
            note = "The decision is the favourable one; no factors are given."
        elif found is None:
            note, cf_note = NO_EXPLAINER_NOTE, NO_EXPLAINER_COUNTERFACTUALS_NOTE
        elif not queue:
            cf_note = NOT_QUEUED_NOTE
        job = job_of.get(decision.pk)
        logged.append(
            LoggedDecision(item.index, decision, secret, found, note, job, cf_note)
        )
    return logged


# --- A CSV file of people (manage.py log_decisions) ---------------------------------

SUBJECT_COLUMN = "subject_reference"
# Lines named in an error; the rest are counted.
MAX_REPORTED_LINES = 50
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


class DecisionFileError(DecisionInputError):
    """A file of decisions with bad lines: (line number, why) for each."""

    def __init__(self, problems: list[tuple[int, str]], total: int | None = None):
        self.problems = problems
        shown = "; ".join(f"line {line}: {why}" for line, why in problems)
        more = (total or len(problems)) - len(problems)
        tail = f"; and {more} more bad lines" if more > 0 else ""
        super().__init__(f"nothing was logged: {shown}{tail}")


def _cell(value: str, numeric: bool) -> Any:
    """A CSV cell as the API would receive it: empty is missing, a numeric
    feature's cell a number when it reads as one (else the text, which the
    decision service refuses with its own message)."""
    text = value.strip()
    if text == "":
        return None
    if numeric:
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            return float(text)
        except ValueError:
            return text
    return text


def decision_rows_from_csv(
    *, model_version: ModelVersion, data: bytes
) -> tuple[list[DecisionRow], list[int]]:
    """The rows of a CSV (header: subject_reference and every feature the version
    reads) and the line each starts on. Bounded by DECISIONS_FILE_MAX_BYTES and
    DECISIONS_FILE_MAX_ROWS before anything is decided."""
    limit = settings.DECISIONS_FILE_MAX_BYTES
    if len(data) > limit:
        raise DecisionInputError(
            f"the file is over {limit:,} bytes (DECISIONS_FILE_MAX_BYTES); split it"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecisionInputError(
            f"the file is not UTF-8 text (byte {exc.start})"
        ) from None
    schema = model_version.dataset.schema
    features = [name for name, info in schema.items() if info.get("role") == "feature"]
    numeric = {name for name in features if schema[name].get("type") == "numeric"}
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, None) or []]
        expected = {SUBJECT_COLUMN, *features}
        unknown = [h for h in header if h not in expected]
        missing = [h for h in [SUBJECT_COLUMN, *features] if h not in header]
        twice = sorted({h for h in header if header.count(h) > 1})
        if unknown or missing or twice:
            found = [
                f"{label}: {', '.join(names)[:300]}"
                for label, names in (
                    ("unknown", unknown),
                    ("missing", missing),
                    ("twice", twice),
                )
                if names
            ]
            raise DecisionFileError(
                [
                    (
                        1,
                        f"expected the header {SUBJECT_COLUMN} and the features "
                        f"{', '.join(features)} (in any order); {'; '.join(found)}",
                    )
                ]
            )
        rows: list[DecisionRow] = []
        lines: list[int] = []
        problems: list[tuple[int, str]] = []
        bad = 0
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) + bad >= settings.DECISIONS_FILE_MAX_ROWS:
                raise DecisionInputError(
                    f"the file has more than {settings.DECISIONS_FILE_MAX_ROWS:,} "
                    "decisions (DECISIONS_FILE_MAX_ROWS); split it"
                )
            if len(cells) != len(header):
                bad += 1
                if len(problems) < MAX_REPORTED_LINES:
                    problems.append(
                        (line, f"expected {len(header)} cells, found {len(cells)}")
                    )
                continue
            record = dict(zip(header, cells, strict=True))
            inputs = {name: _cell(record[name], name in numeric) for name in features}
            rows.append(DecisionRow(record[SUBJECT_COLUMN].strip(), inputs))
            lines.append(line)
    except csv.Error as exc:
        raise DecisionInputError(
            f"line {reader.line_num}: not readable as CSV ({exc})"
        ) from None
    if problems:
        raise DecisionFileError(problems, bad)
    if not rows:
        raise DecisionInputError("the file holds no decisions")
    return rows, lines


def decisions_log_csv(
    *, model_version: ModelVersion, data: bytes, actor: Any
) -> list[tuple[int, LoggedDecision]]:
    """Log a decision for each line of a CSV, all or none: (line, logged) for each.
    Raises DecisionFileError naming every bad line (the first 50)."""
    rows, lines = decision_rows_from_csv(model_version=model_version, data=data)
    try:
        logged = decisions_log(model_version=model_version, rows=rows, actor=actor)
    except DecisionRowsError as exc:
        raise DecisionFileError(
            [(lines[index], why) for index, why in exc.problems], exc.total
        ) from None
    return [(lines[item.index], item) for item in logged]
