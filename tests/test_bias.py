"""Bias checks of versions on domains, the transfer table and the approval gate."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape

from governance import roles
from governance.models import AuditEvent, BiasCheck, JobKind, ModelVersion
from governance.services.bias import bias_check_run, bias_transfer_table
from governance.services.jobs import job_start
from governance.services.versions import model_version_set_status
from tests.factories import ReportFactory

pytestmark = pytest.mark.django_db


def test_a_check_covers_each_attribute_and_their_intersection(lineage):
    check = bias_check_run(
        version=lineage["base"], domain=lineage["source"], actor="test"
    )
    assert check.verdict in {"pass", "warn", "fail"}
    assert check.has_labels and check.rows > 0
    names = [a["name"] for a in check.result["attributes"]]
    assert names == ["gender", "age", "gender x age"]
    age = check.result["attributes"][1]
    assert [g["label"] for g in age["groups"]] == ["<30", "30-49", "50+"]
    assert sum(g["count"] for g in age["groups"]) == check.rows
    metrics = {d["metric"] for d in check.result["attributes"][0]["disparities"]}
    assert {"demographic_parity_difference", "equalized_odds_difference"} <= metrics
    for disparity in check.result["attributes"][0]["disparities"]:
        # A max-minus-min gap's bootstrap interval can sit above a zero estimate.
        assert 0.0 <= disparity["ci_low"] <= disparity["ci_high"]
    assert check.policy["four_fifths_min_ratio"] == 0.8
    assert AuditEvent.objects.filter(action="bias_check.recorded").count() == 1


def test_a_domain_without_labels_gets_selection_rates_only(
    lineage, django_capture_on_commit_callbacks
):
    unlabelled = lineage["base"].dataset.domains.get(name="south_unlabelled")
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(
            kind=JobKind.BIAS_CHECK,
            version=lineage["base"],
            domain=unlabelled,
            actor="t",
        )
    job.refresh_from_db()
    check = job.bias_check
    assert check.has_labels is False
    metrics = {d["metric"] for d in check.result["attributes"][0]["disparities"]}
    assert metrics == {"demographic_parity_difference", "demographic_parity_ratio"}


def test_the_transfer_table_moves_from_base_to_fine_tuned(lineage):
    # Before any check, every cell of the table is empty.
    assert all(
        row["parent_source"] is None and row["child_target"] is None
        for row in bias_transfer_table(lineage["child"])
    )
    for version in ("base", "child"):
        for domain in ("source", "target"):
            bias_check_run(
                version=lineage[version], domain=lineage[domain], actor="test"
            )
    rows = bias_transfer_table(lineage["child"])
    assert rows
    row = next(
        r
        for r in rows
        if r["metric"] == "demographic_parity_difference" and r["attribute"] == "gender"
    )
    assert row["fine_tuning_change_target"] == pytest.approx(
        row["child_target"] - row["parent_target"]
    )
    assert row["domain_change_parent"] == pytest.approx(
        row["parent_target"] - row["parent_source"]
    )


def test_a_failing_version_is_approved_only_with_a_justification(lineage, user_in_role):
    base = lineage["base"]
    BiasCheck.objects.create(
        model_version=base,
        domain=lineage["source"],
        verdict="fail",
        rows=100,
        has_labels=True,
        result={"findings": [], "attributes": []},
        policy={},
    )
    ReportFactory(model_version=base)  # a rendered dossier
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.IN_REVIEW,
        actor=user_in_role(roles.DATA_SCIENTIST),
    )
    with pytest.raises(ValidationError, match="fails its bias check on source"):
        model_version_set_status(
            version=base, status=ModelVersion.Status.APPROVED, actor=officer
        )
    model_version_set_status(
        version=base,
        status=ModelVersion.Status.APPROVED,
        actor=officer,
        note="Gap explained by the test fixture; monitored monthly.",
    )
    base.refresh_from_db()
    assert base.status == ModelVersion.Status.APPROVED
    event = AuditEvent.objects.filter(action="model_version.status_changed").first()
    assert "monitored monthly" in event.after["note"]


def test_the_check_page_shows_the_verdict_before_the_detail(admin_client, lineage):
    check = bias_check_run(
        version=lineage["base"], domain=lineage["source"], actor="test"
    )
    page = admin_client.get(f"/admin/governance/biascheck/{check.pk}/change/")
    html = page.content.decode()
    assert check.verdict.upper() in html
    assert html.index("Findings") < html.index("Groups and disparities")


def test_officers_read_the_policy_in_the_admin(client, user_in_role, settings):
    settings.FAIRNESS_POLICY = {**settings.FAIRNESS_POLICY, "dp_difference_fail": 0.17}
    client.force_login(user_in_role(roles.AUDITOR))
    page = client.get("/admin/policy/").content.decode()
    assert "fail above 0.17" in page
    assert "0.75" in page  # the freeze policy's similarity threshold
    assert client.get("/admin/").content.decode().count('id="policy-link"') == 1


def test_the_version_page_shows_verdicts_transfer_and_performance(
    admin_client, lineage
):
    for version in ("base", "child"):
        for domain in ("source", "target"):
            bias_check_run(
                version=lineage[version], domain=lineage[domain], actor="test"
            )
    child = lineage["child"]
    page = admin_client.get(f"/admin/governance/modelversion/{child.pk}/change/")
    html = page.content.decode()
    assert "Bias verdict per attribute" in html
    # Every finding in full (the summary once cut the joined text at 600
    # characters, mid-number: "... a gap of 0").
    for check in child.bias_checks.all():
        for finding in check.result["findings"]:
            if finding["severity"] in ("fail", "warn", "insufficient"):
                assert escape(finding["sentence"]) in html
    assert "Bias transfer (parent" in html and "fine-tuned, target" in html
    assert f"{child.metrics['target']['roc_auc']:.3f}" in html
