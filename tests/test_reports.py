"""Model dossiers: rendered on the reports queue, read back, reviewed, verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from governance import roles
from governance.models import Report
from governance.services.bias import bias_check_run
from governance.services.reports import report_render, report_request, report_set_status
from governance.services.training import model_version_pretrain
from reports.pdf import page_is_blank, pdf_page_pngs, pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def child(lineage):
    for version in ("base", "child"):
        for domain in ("source", "target"):
            bias_check_run(
                version=lineage[version], domain=lineage[domain], actor="test"
            )
    return lineage["child"]


@pytest.fixture
def dossier(child, user_in_role, django_capture_on_commit_callbacks):
    def make(audience: str = Report.Audience.FULL, actor=None) -> Report:
        with django_capture_on_commit_callbacks(execute=True):
            report = report_request(
                kind=Report.Kind.DOSSIER,
                model_version=child,
                audience=audience,
                actor=actor or user_in_role(roles.DATA_SCIENTIST),
            )
        report.refresh_from_db()
        assert report.status == Report.Status.DRAFT, report.error
        return report

    return make


def _pdf(report: Report, settings) -> bytes:
    return (Path(settings.MEDIA_ROOT) / report.file_path).read_bytes()


def test_the_dossier_states_the_recorded_numbers(dossier, child, settings, tmp_path):
    report = dossier()
    data = _pdf(report, settings)
    text = " ".join(pdf_text(data).split())
    assert report.reference in text and child.name in text
    run = child.produced_by_run
    assert f"ROC AUC {run.shift_report.domain_auc:.3f}" in text
    assert f"{child.metrics['target']['roc_auc']:.3f}" in text
    for layer in child.layers:
        assert layer["name"] in text
    assert "Article 11 and Annex IV of Regulation (EU) 2024/1689" in text
    assert report.pages >= 3 and report.size_bytes == len(data)
    pages = pdf_page_pngs(data, tmp_path)
    assert len(pages) == report.pages
    assert not any(page_is_blank(page) for page in pages)


def test_the_business_summary_leaves_out_the_technical_sections(dossier, settings):
    text = pdf_text(_pdf(dossier(Report.Audience.BUSINESS), settings))
    assert "4. Performance" in text and "5. Bias checks" in text
    assert "2. Lineage" not in text and "8. Approvals" not in text


def test_four_eyes_and_an_approved_file_never_changes(dossier, user_in_role, settings):
    requester = user_in_role(roles.COMPLIANCE_OFFICER)
    report = dossier(actor=requester)
    with pytest.raises(ValidationError, match="another officer must approve"):
        report_set_status(report=report, status=Report.Status.APPROVED, actor=requester)
    approver = user_in_role(roles.COMPLIANCE_OFFICER)
    report = report_set_status(
        report=report, status=Report.Status.APPROVED, actor=approver
    )
    before = _pdf(report, settings)
    assert report_render(report_id=report.pk) is None  # not pending: no re-render
    report.refresh_from_db()
    assert _pdf(report, settings) == before and report.status == "approved"


def test_verify_report_names_an_approved_pdf_and_refuses_others(
    dossier, user_in_role, settings, tmp_path, capsys
):
    report = dossier()
    path = tmp_path / "copy.pdf"
    path.write_bytes(_pdf(report, settings))
    with pytest.raises(CommandError, match="NOT approved"):
        call_command("verify_report", str(path))
    report_set_status(
        report=report,
        status=Report.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
    )
    call_command("verify_report", str(path))
    assert f"APPROVED: model dossier {report.reference}" in capsys.readouterr().out
    altered = bytearray(path.read_bytes())
    altered[len(altered) // 2] ^= 0x01
    path.write_bytes(bytes(altered))
    with pytest.raises(CommandError, match="NOT a report of this system"):
        call_command("verify_report", str(path))


def _approved(report: Report, user_in_role) -> Report:
    # Auditors download signed-off reports only (drafts are for the reviewers).
    return report_set_status(
        report=report,
        status=Report.Status.APPROVED,
        actor=user_in_role(roles.COMPLIANCE_OFFICER),
    )


def test_auditors_download_reports_and_scientists_may_not(dossier, user_in_role):
    report = _approved(dossier(), user_in_role)
    url = f"/admin/governance/report/{report.pk}/download/"
    auditor, scientist = Client(), Client()
    auditor.force_login(user_in_role(roles.AUDITOR))
    scientist.force_login(user_in_role(roles.DATA_SCIENTIST))
    response = auditor.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert scientist.get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page


def test_a_report_whose_file_was_altered_is_not_served(dossier, user_in_role, settings):
    report = _approved(dossier(), user_in_role)
    path = Path(settings.MEDIA_ROOT) / report.file_path
    path.write_bytes(path.read_bytes() + b"tampered")
    client = Client()
    client.force_login(user_in_role(roles.AUDITOR))
    response = client.get(f"/admin/governance/report/{report.pk}/download/")
    assert response.status_code == 409
    assert b"altered" in response.content


def test_hostile_text_in_the_data_is_printed_not_interpreted(
    tmp_path, settings, django_capture_on_commit_callbacks, user_in_role
):
    from governance.services.datasets import dataset_import_file
    from tests.conftest import write_synthetic_dataset

    folder = tmp_path / "hostile"
    folder.mkdir()
    spec = write_synthetic_dataset(folder)
    hostile = '<img src="file:///etc/passwd"><script>alert(1)</script>'
    spec.write_text(
        spec.read_text().replace(
            'title = "Synthetic loans"', f"title = '''{hostile}'''"
        )
    )
    dataset = dataset_import_file(spec_path=spec, actor="test")
    base = model_version_pretrain(
        domain=dataset.domains.get(name="source"),
        name="hostile-base",
        actor="test",
        epochs=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = report_request(
            kind=Report.Kind.DOSSIER,
            model_version=base,
            actor=user_in_role(roles.DATA_SCIENTIST),
        )
    report.refresh_from_db()
    text = pdf_text(_pdf(report, settings))
    assert "<script>alert(1)</script>" in text  # shown as text
    assert "root:x:0:0" not in text  # nothing fetched


def _has(text: str, phrase: str) -> bool:
    """`phrase` is in the PDF's text, wherever its lines broke (a line may break
    after a hyphen, which leaves no space to normalise)."""
    return "".join(phrase.split()) in "".join(text.split())


def test_the_dossier_reads_in_words_not_codes(dossier, child, settings):
    """Issue 14, item 5: human names, verdicts on every row, group sizes beside
    each interval, one number format, chart titles in the text, no internal
    identifiers."""
    text = " ".join(pdf_text(_pdf(dossier(), settings)).split())
    # Measures and situations by name, never squashed codes.
    assert "demographic parity ratio" in text
    assert "equal opportunity difference" in text
    for code in (
        "demographicparityratio",
        "supervisedfinetuning",
        "supervised_fine_tuning",
        "demographic_parity",
        "min_group_size",
        "batch_size",
    ):
        assert code not in text, code
    # Every row of a check's table carries a verdict: the ratio is judged by the
    # four-fifths rule, and no row says "None".
    assert " None " not in f" {text} "
    assert _has(text, "four-fifths rule, per group")
    # The groups a disparity compares, with their sizes.
    sizes = {
        group["label"]: group["count"]
        for check in child.bias_checks.all()
        for attribute in check.result["attributes"]
        for group in attribute["groups"]
    }
    assert any(_has(text, f"{label} ({count:,})") for label, count in sizes.items())
    # One number format: counts of a thousand or more carry a separator.
    rows = child.dataset.row_count
    assert rows >= 1000 and f"{rows:,} rows" in text and f"{rows} rows" not in text
    # Chart titles as text; the AUC chart says where its axis starts.
    assert _has(text, "ROC AUC on each domain's held-out rows")
    # Readers see domains, processes and events by name, not by internal id.
    assert f"{child.dataset.name}/" not in text
    assert "worker:" not in text and "command:" not in text
    assert "finetune_run." not in text and "model_version.created" not in text
    assert _has(text, "fine-tuning run succeeded")


def test_the_dossier_names_small_samples_and_not_enough_data_first(
    dossier, child, settings
):
    from governance.models import BiasCheck
    from workers.ml.limitations import small_sample_limitations

    # The target's check re-recorded as one where no group was large enough.
    check = child.bias_checks.filter(domain__name="target").latest("pk")
    BiasCheck.objects.filter(pk=check.pk).update(verdict="insufficient")
    text = " ".join(pdf_text(_pdf(dossier(), settings)).split())
    limitations = text[text.index("7. Limitations") : text.index("8. Approvals")]
    # The synthetic data's small groups (e.g. gender x age) lead section 7, the
    # population the version decides on (target) first.
    checks = {c.domain.name: c.result for c in child.bias_checks.all()}
    small = small_sample_limitations(child.metrics, checks, deployment_domain="target")
    assert small and small[0]["domain"] == "target"
    # Compared without spaces: a line may break after a hyphen ("30-49").
    squashed = "".join(limitations.split())
    first = "".join(small[0]["sentence"].split())
    assert squashed.index(first) < len(squashed) // 2
    # The training warning: the target's filter holds an input constant.
    [warning] = child.training["warnings"]
    assert "".join(warning["sentence"].split())[:60] in squashed
    assert "NOT ENOUGH DATA" in text and "INSUFFICIENT" not in text
