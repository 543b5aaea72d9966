"""The bias audit of an external decision log in the admin and as a PDF report.

The log is the hand-computed one of tests/test_decision_logs.py (its docstring
works every rate out). With a minimum group size of 3 the gates judge it: sex
fails (favourable-decision rates 2/6 and 4/6). The admin page's numbers and the
PDF's (read back with pdftotext) are compared with what ``audit_decisions``
printed for the same audit, and with the hand-computed rates.
"""

from __future__ import annotations

import html
import json
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from governance import roles
from governance.models import AuditEvent, DecisionLog, DecisionLogAudit, Report
from governance.services.decision_logs import (
    decision_log_audit,
    decision_log_import_file,
    decision_log_report_request,
)
from governance.services.reports import report_file, report_set_status
from reports.pdf import page_is_blank, pdf_page_pngs
from tests.test_decision_logs import HEAD, LOG, OUTCOME, SCORE_ABOVE, SYSTEM, write

pytestmark = pytest.mark.django_db

RATES = ("adverse_rate", "false_adverse_rate", "false_favourable_rate")
ALL_RATES = (*RATES, "adverse_precision")
HIGH_RISK_SYSTEM = """
[system]
name = "credit-scoring"
title = "Credit scoring"
annex_iii_point = "5(b)"
automation = "solely_automated"
controller_name = "Example Bank"
"""
HUMAN_SYSTEM = """
[system]
name = "credit-review"
title = "Credit review"
automation = "human_decides"
"""


@pytest.fixture(autouse=True)
def _judged(settings):
    # 6 rows a group: judged only with a minimum below the default 30.
    settings.FAIRNESS_POLICY = {**settings.FAIRNESS_POLICY, "min_group_size": 3}


def pdftotext(data: bytes, folder: Path) -> str:
    """The PDF's text as poppler's pdftotext reads it, whitespace collapsed."""
    source = folder / "report.pdf"
    source.write_bytes(data)
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(source), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return " ".join(out.split())


def cell(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.3f}"


def audit_json(argument: str, *extra: str) -> dict:
    out = StringIO()
    call_command("audit_decisions", argument, *extra, stdout=out)
    return json.loads(out.getvalue())


def rendered(report: Report) -> bytes:
    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT, report.error
    return report_file(report)


def group(printed: dict, attribute: str, name: str) -> dict:
    (row,) = [
        g
        for g in printed["groups"]
        if g["attribute"] == attribute and g["group"] == name
    ]
    return row


def admin_rate_row(row: dict) -> str:
    """A group's row of the admin's rate table, as the audit's numbers say."""
    cells = [row["attribute"], row["group"], str(row["n"])]
    cells += [cell(row[name]) for name in ALL_RATES]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "<td>"


def pdf_rate_row(row: dict) -> str:
    """A group's row of the PDF's rate table, as pdftotext reads it."""
    numbers = [str(row["n"]), str(row["adverse"])]
    return " ".join([row["group"], *numbers, *(cell(row[n]) for n in ALL_RATES)])


def pdf_disparity(d: dict, sizes: dict[str, int]) -> str:
    return (
        f"{cell(d['value'])} {cell(d['ci_low'])} to {cell(d['ci_high'])} "
        f"'{d['high_group']}' ({sizes[d['high_group']]}), "
        f"'{d['low_group']}' ({sizes[d['low_group']]})"
    )


def assert_hand_computed(printed: dict) -> None:
    """The rates of tests/test_decision_logs.py's docstring, worked out by hand."""
    for attribute, name, n, want in (
        ("sex", "F", 6, (4 / 6, 2 / 3, 1 / 3, 2 / 4)),
        ("sex", "M", 6, (2 / 6, 1 / 4, 1 / 2, 1 / 2)),
        ("age", "45+", 5, (0.0, 0.0, 1.0, None)),
    ):
        row = group(printed, attribute, name)
        assert row["n"] == n
        for key, value in zip(ALL_RATES, want, strict=True):
            assert row[key] == (None if value is None else pytest.approx(value))


@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_pdf_show_the_numbers_the_command_printed(
    tmp_path, client, user_in_role
):
    # Committed as manage.py commits: without a broker the render runs on commit,
    # before the command prints.
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + HIGH_RISK_SYSTEM)
    printed = audit_json(str(path), "--pdf")
    assert_hand_computed(printed)
    report = Report.objects.get(reference=printed["report"]["reference"])
    assert report.kind == Report.Kind.BIAS_AUDIT
    assert report.decision_log_audit_id == printed["audit"]
    assert report.model_version is None
    assert printed["report"]["status"] == "draft"
    data = rendered(report)
    assert printed["report"]["sha256"] == report.sha256
    assert Path(printed["report"]["file"]).read_bytes() == data

    # The admin: the audit's page, and the log's page (its latest audit).
    client.force_login(user_in_role(roles.AUDITOR))
    audit = DecisionLogAudit.objects.get(pk=printed["audit"])
    pages = [
        client.get(audit.get_absolute_url()).content.decode(),
        client.get(audit.log.get_absolute_url()).content.decode(),
    ]
    for page in pages:
        for row in printed["groups"]:
            assert admin_rate_row(row) in page, row
        for attribute in printed["attributes"]:
            for d in attribute["disparities"]:
                shown = (
                    f"<td>{d['metric']}</td><td>{cell(d['value'])}</td>"
                    f"<td>{cell(d['ci_low'])} to {cell(d['ci_high'])}</td>"
                    f"<td>{d['verdict'] or '—'}</td>"
                )
                assert shown in page, d
    for attribute in printed["attributes"]:
        for f in attribute["four_fifths"]:
            shown = (
                f"<td>{html.escape(f['group'])}</td>"
                f"<td>{html.escape(f['reference'])}</td><td>{cell(f['ratio'])}</td>"
                f"<td>{cell(f['ci_low'])} to {cell(f['ci_high'])}</td>"
            )
            assert shown in pages[0], f

    # The PDF, read back with pdftotext.
    text = pdftotext(data, tmp_path)
    assert f"Verdict: {printed['verdict_label'].upper()}, over 12 decisions" in text
    for row in printed["groups"]:
        assert pdf_rate_row(row) in text, row
    for attribute in printed["attributes"]:
        sizes = {
            g["group"]: g["n"]
            for g in printed["groups"]
            if g["attribute"] == attribute["name"]
        }
        assert f"{attribute['name']}: {attribute['verdict']}" in text
        for d in attribute["disparities"]:
            assert pdf_disparity(d, sizes) in text, d
        for f in attribute["four_fifths"]:
            ratio = f"{f['group']} {cell(f['ratio'])} "
            assert ratio + f"{cell(f['ci_low'])} to {cell(f['ci_high'])}" in text
    # Hand-checked: sex fails on a gap of 1/3 in favourable-decision rates.
    assert "0.333 0.000 to 0.857 'M' (6), 'F' (6) fail" in text
    # What was audited, as recorded.
    log = DecisionLog.objects.get()
    for value in (log.content_sha256, log.rows_sha256, log.files[0]["sha256"]):
        assert value in text
    assert "the adverse decision where column 'score' >= 5" in text
    assert "column 'defaulted': favourable where it is '0'" in text
    assert "No row was left out: all 12 rows of the log were audited" in text
    # The chart's gate line: 1 - 0.8 x (1 - M's adverse rate 2/6) = 0.467.
    assert "The dashed line at 0.467 is the four-fifths rule's limit" in text
    # The gates it was judged by, from the policy stored with the audit.
    assert "minimum group size 3" in text
    assert "the value is above 0.2" in text
    # Legal sentences the record allows: high-risk, solely automated.
    assert "Annex III point 5(b)" in text and "Art. 10(2)(f)" in text
    assert "Art. 10(2)(g)" in text and "GDPR Art. 22(1)" in text
    assert "Art. 10(5)" not in text  # no attribute is marked special category


def test_a_log_whose_positive_class_is_the_adverse_one(tmp_path, client, settings):
    """The decision column's 1 is the adverse decision (flagged for refusal), the
    outcome's 1 the adverse outcome: the report reads them as the spec says."""
    flagged = LOG.replace("refused", "1").replace("approved", "0")
    decision = '\n[decision]\ncolumn = "decision"\nfavourable = "0"\n'
    outcome = '\n[outcome]\ncolumn = "defaulted"\nfavourable = "0"\n'
    path = write(tmp_path / "log", HEAD + decision + outcome + SYSTEM, flagged)
    log = decision_log_import_file(spec_path=path, actor="t")
    audit = decision_log_audit(log=log, actor="t")
    report = decision_log_report_request(audit=audit, actor="t")
    from governance.services.rendering import report_render_and_advance

    report_render_and_advance(report_id=report.pk)
    text = pdftotext(rendered(report), tmp_path)
    # Sex F: 4 of 6 flagged (adverse), as by hand; favourable rates 2/6 and 4/6.
    assert "F 6 4 0.667 0.667 0.333 0.500" in text
    assert "M 6 2 0.333 0.250 0.500 0.500" in text
    assert "the favourable decision where column 'decision' is '0'" in text
    # The four-fifths rule compares favourable decisions: F gets 0.5 of M's.
    assert "F 0.500 0.000 to" in text
    assert "reference group 'M'" in text
    # The gate line is an adverse rate: 1 - 0.8 x (1 - 1/3).
    assert "The dashed line at 0.467" in text


def test_nothing_claims_a_check_that_was_not_run(tmp_path):
    """Without outcomes, without a high-risk record, with a person deciding: the
    report says what it did not check and cites no article that does not apply."""
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + HUMAN_SYSTEM)
    log = decision_log_import_file(spec_path=path, actor="t")
    audit = decision_log_audit(log=log, actor="t")
    report = decision_log_report_request(audit=audit, actor="t")
    from governance.services.rendering import report_render_and_advance

    report_render_and_advance(report_id=report.pk)
    data = rendered(report)
    text = pdftotext(data, tmp_path)
    # The error rates were not computed: dashes with the reason, never numbers.
    assert "F 6 4 0.667 — — —" in text
    assert "no true outcomes in this log" in text
    assert "No error rates: the spec names no outcome column" in text
    assert "none: the spec has no [outcome] table" in text
    assert "without true outcomes (the log records none)" in text
    # Gaps that need outcomes were not measured, and the report says so.
    sex = next(a for a in audit.result["attributes"] if a["name"] == "sex")
    assert {d["metric"] for d in sex["disparities"]} == {
        "demographic_parity_difference",
        "demographic_parity_ratio",
    }
    assert text.count(
        "Not measured, for want of true outcomes: equal opportunity difference, "
        "false positive rate difference, equalized odds difference."
    ) == len(audit.result["attributes"])
    # What a model's check would do, and a log's cannot.
    for sentence in (
        "No model was examined",
        "There are no explanations of individual decisions",
        "no counterfactuals or recourse",
        "No shift check",
    ):
        assert sentence in text
    assert "surrogate" not in text.replace("no surrogate or glass-box", "")
    # No AI Act article without an Annex III point, no Art. 22 when a person decides.
    assert "Art. 10" not in text and "Art. 22" not in text
    assert "names no AI Act Annex III point" in text
    assert "a person decides" in text
    # Every page has ink (nothing blank, no page left over).
    pngs = pdf_page_pngs(data, tmp_path / "pages")
    assert len(pngs) == report.pages
    assert not any(page_is_blank(p) for p in pngs)


def test_special_categories_cite_ai_act_art_10_5_only_when_high_risk(tmp_path):
    protected = 'protected = [{ column = "sex", special_category = true }]'
    head = HEAD.replace(
        'protected = ["sex", { column = "age", bins = [25, 45] }]', protected
    )
    texts = []
    for folder, system in (("high", HIGH_RISK_SYSTEM), ("plain", SYSTEM)):
        spec = head.replace('"credit-log"', f'"log-{folder}"') + SCORE_ABOVE + system
        log = decision_log_import_file(spec_path=write(tmp_path / folder, spec))
        report = decision_log_report_request(audit=decision_log_audit(log=log))
        from governance.services.rendering import report_render_and_advance

        report_render_and_advance(report_id=report.pk)
        texts.append(pdftotext(rendered(report), tmp_path))
    high, plain = texts
    assert "AI Act Art. 10(5)" in high and "GDPR Art. 9(1)" in high
    assert "Art. 10(5)" not in plain
    assert "marked a special category of personal data" in plain


def test_verify_report_verifies_the_report_once_an_officer_approves_it(
    tmp_path, user_in_role
):
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    log = decision_log_import_file(spec_path=path, actor="t")
    requester = user_in_role(roles.DATA_SCIENTIST)
    report = decision_log_report_request(
        audit=decision_log_audit(log=log, actor=requester), actor=requester
    )
    from governance.services.rendering import report_render_and_advance

    report_render_and_advance(report_id=report.pk)
    pdf = tmp_path / "audit.pdf"
    pdf.write_bytes(rendered(report))

    def verify() -> str:
        """What verify_report says: its lines, or the error it stops with."""
        out = StringIO()
        try:
            call_command("verify_report", str(pdf), stdout=out)
        except CommandError as exc:
            return " ".join(str(exc).split())
        return " ".join(out.getvalue().split())

    assert "NOT approved" in verify()
    with pytest.raises(ValidationError, match="another officer must approve"):
        report_set_status(report=report, status=Report.Status.APPROVED, actor=requester)
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    report_set_status(report=report, status=Report.Status.APPROVED, actor=officer)
    said = verify()
    assert "APPROVED" in said and "NOT" not in said
    assert f"bias audit of a decision log {report.reference}" in said
    assert (
        f"about decision log credit-log (audit #{report.decision_log_audit_id}" in said
    )
    assert log.content_sha256 in said
    pdf.write_bytes(pdf.read_bytes() + b"%altered\n")  # still opens as a PDF
    assert "NOT a report of this system" in verify()


def test_the_buttons_are_permission_checked_and_post_only(
    tmp_path, client, user_in_role
):
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    log = decision_log_import_file(spec_path=path, actor="t")
    audit_url = f"{log.get_absolute_url()}".replace("change/", "audit/")
    client.force_login(user_in_role(roles.AUDITOR))
    page = client.get(log.get_absolute_url()).content.decode()
    assert "Not audited yet" in page and "decision-log-run-audit" not in page
    assert client.post(audit_url).status_code == 403
    audit = decision_log_audit(log=log, actor="t")
    report_url = audit.get_absolute_url().replace("change/", "report/")
    assert (
        "decision-log-generate-report"
        not in client.get(audit.get_absolute_url()).content.decode()
    )
    assert client.post(report_url).status_code == 403
    assert DecisionLogAudit.objects.count() == 1 and not Report.objects.exists()

    for role in (roles.DATA_SCIENTIST, roles.COMPLIANCE_OFFICER):
        client.force_login(user_in_role(role))
        assert (
            "decision-log-run-audit"
            in client.get(log.get_absolute_url()).content.decode()
        )
        assert client.get(audit_url).status_code == 405
        response = client.post(audit_url)
        newest = DecisionLogAudit.objects.first()
        assert response.status_code == 302
        assert response["Location"] == newest.get_absolute_url()
        event = AuditEvent.objects.order_by("sequence").last()
        assert (
            event.action == "decision_log.audited"
            and event.actor.groups.get().name == role
        )
        response = client.post(report_url)
        assert response.status_code == 302
    assert DecisionLogAudit.objects.count() == 3
    reports = Report.objects.filter(kind=Report.Kind.BIAS_AUDIT)
    assert reports.count() == 2
    assert {r.decision_log_audit_id for r in reports} == {audit.pk}
    assert {r.created_by.groups.get().name for r in reports} == {
        roles.DATA_SCIENTIST,
        roles.COMPLIANCE_OFFICER,
    }


def test_a_bias_audit_report_needs_an_audit_and_no_model_version(tmp_path):
    from governance.services.reports import report_request
    from tests.factories import ModelVersionFactory

    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + SYSTEM)
    audit = decision_log_audit(log=decision_log_import_file(spec_path=path))
    version = ModelVersionFactory()
    with pytest.raises(ValidationError, match="subject_matches_kind"):
        report_request(kind=Report.Kind.BIAS_AUDIT, actor="t")
    with pytest.raises(ValidationError, match="subject_matches_kind"):
        report_request(
            kind=Report.Kind.BIAS_AUDIT,
            model_version=version,
            decision_log_audit=audit,
            actor="t",
        )
    with pytest.raises(ValidationError, match="subject_matches_kind"):
        report_request(kind=Report.Kind.DOSSIER, decision_log_audit=audit, actor="t")
    assert not Report.objects.exists()


def test_the_command_refuses_pdf_for_a_log_it_cannot_audit(tmp_path):
    with pytest.raises(CommandError, match="no decision log named 'missing'"):
        call_command("audit_decisions", "missing", "--pdf")
    assert not Report.objects.exists() and not DecisionLogAudit.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_the_admin_button_renders_the_report_on_a_real_reports_worker(
    tmp_path, client, user_in_role, settings
):
    """Through Redis to a worker that serves only the reports queue, as dossiers
    are: the admin's button queues it, the worker renders it, the numbers hold."""
    import os
    import sys
    import time

    from tests.conftest import ROOT, celery_broker, require_service
    from tests.test_worker import database_url_for_worker
    from workers.command import worker_arguments

    broker = require_service("TEST_REDIS_URL", "Redis")
    path = write(tmp_path / "log", HEAD + SCORE_ABOVE + OUTCOME + SYSTEM)
    log = decision_log_import_file(spec_path=path, actor="t")
    client.force_login(user_in_role(roles.COMPLIANCE_OFFICER))
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_WORKER_CORES": "1",
    }
    output = tmp_path / "reports-worker.log"
    with celery_broker(broker), output.open("w") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                *worker_arguments(f"reports-{os.getpid()}", queues=("reports",)),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            response = client.post(log.get_absolute_url().replace("change/", "audit/"))
            audit = DecisionLogAudit.objects.get()
            assert response["Location"] == audit.get_absolute_url()
            client.post(audit.get_absolute_url().replace("change/", "report/"))
            report = Report.objects.get()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                report.refresh_from_db()
                if report.status not in (Report.Status.PENDING, "rendering"):
                    break
                time.sleep(0.5)
            else:
                print(output.read_text())
                raise AssertionError("the reports worker did not render the report")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    # Tasks were not eager here (celery_broker): only the worker could render it.
    assert report.status == Report.Status.DRAFT, report.error
    text = pdftotext(report_file(report), tmp_path)
    for row in audit.result["groups"]:
        assert pdf_rate_row(row) in text, row
