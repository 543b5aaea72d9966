"""Every admin page, walked as each role. The expected matrix is written out here
(and in docs/permissions.md), not derived from governance.roles, so that a change
to a role's permissions shows up as a failing cell."""

from __future__ import annotations

import pytest
from django.test import Client

from governance import roles
from governance.models import BiasCheck, DecisionLog, DecisionLogAudit, Job, ShiftReport
from tests.factories import (
    AISystemFactory,
    DecisionFactory,
    FineTuneRunFactory,
    RecourseCheckFactory,
    ReportFactory,
)

pytestmark = pytest.mark.django_db

PAGES = (
    "aisystem",
    "dataset",
    "domain",
    "modelversion",
    "finetunerun",
    "shiftreport",
    "biascheck",
    "explainer",
    "decisionexplanation",
    "recoursecheck",
    "report",
    "explanationrequest",
    "contest",
    "decision",
    "auditevent",
    "job",
    "decisionlog",
    "decisionlogaudit",
    "decisionoutcome",
    "monitoringrun",
    "monitoringfinding",
    "seriousincident",
)

# role -> page -> operations allowed. list/view: GET the list / an object's page;
# add: GET the add page; change: POST the object's page; delete: GET its delete page.
EXPECTED: dict[str, dict[str, set[str]]] = {
    roles.COMPLIANCE_OFFICER: {
        "aisystem": {"list", "view", "add", "change"},
        "dataset": {"list", "view"},
        "domain": {"list", "view"},
        "modelversion": {"list", "view", "change"},
        "finetunerun": {"list", "view", "change"},
        "shiftreport": {"list", "view"},
        "biascheck": {"list", "view"},
        "explainer": {"list", "view"},
        "decisionexplanation": {"list", "view"},
        "recoursecheck": {"list", "view"},
        "report": {"list", "view"},
        "explanationrequest": {"list", "view"},
        "contest": {"list", "view"},
        "decision": {"list", "view"},
        "auditevent": {"list", "view"},
        "job": {"list", "view"},
        "decisionlog": {"list", "view"},
        "decisionlogaudit": {"list", "view"},
        "decisionoutcome": {"list", "view"},
        "monitoringrun": {"list", "view"},
        # Acknowledging is its own form (tests/test_permission_matrix.py).
        "monitoringfinding": {"list", "view"},
        # Entered and changed until reported (AI Act Art. 73).
        "seriousincident": {"list", "view", "add", "change"},
    },
    roles.AUDITOR: {page: {"list", "view"} for page in PAGES},
    roles.DATA_SCIENTIST: {
        "aisystem": {"list", "view"},
        "dataset": {"list", "view", "add"},
        "domain": {"list", "view"},
        "modelversion": {"list", "view"},
        "finetunerun": {"list", "view", "change"},
        "shiftreport": {"list", "view"},
        "biascheck": {"list", "view"},
        "explainer": {"list", "view"},
        "decisionexplanation": {"list", "view"},
        "recoursecheck": {"list", "view"},
        "report": {"list", "view"},
        "explanationrequest": set(),
        "contest": set(),
        "decision": {"list", "view"},
        "auditevent": {"list", "view"},
        "job": {"list", "view"},
        "decisionlog": {"list", "view"},
        "decisionlogaudit": {"list", "view"},
        "decisionoutcome": {"list", "view"},
        "monitoringrun": {"list", "view"},
        "monitoringfinding": {"list", "view"},
        "seriousincident": {"list", "view"},
    },
}


def _request_for(decision):
    from django.utils import timezone

    from governance.models import ExplanationRequest

    return ExplanationRequest.objects.create(
        number="ER-TEST",
        decision=decision,
        received_at=timezone.now(),
        due_at=timezone.now(),
        access_token_hash="0" * 64,
        access_expires_at=timezone.now(),
    )


@pytest.fixture
def records():
    from governance.services.audit import audit_record
    from governance.services.contests import contest_file

    run = FineTuneRunFactory()
    decision = DecisionFactory(model_version=run.parent)
    event = audit_record(actor="test", action="fixture.made", obj=decision)
    shift = ShiftReport.objects.create(
        source_domain=run.source_domain,
        target_domain=run.target_domain,
        situation="supervised_fine_tuning",
        domain_auc=0.7,
        report={},
    )
    check = BiasCheck.objects.create(
        model_version=run.parent,
        domain=run.target_domain,
        verdict="pass",
        rows=10,
        has_labels=True,
        result={"findings": [], "attributes": []},
        policy={},
    )
    recourse = RecourseCheckFactory(explanation__decision=decision)
    log = DecisionLog.objects.create(
        name="external-log",
        title="External log",
        system=AISystemFactory(),
        spec={},
        spec_toml="",
        content_sha256="0" * 64,
        files=[],
        row_count=1,
        has_outcomes=False,
        rows_path="decision-logs/external-log.jsonl",
        rows_sha256="0" * 64,
    )
    log_audit = DecisionLogAudit.objects.create(
        log=log,
        verdict="insufficient",
        rows=1,
        has_outcomes=False,
        result={},
        policy={},
    )
    from django.utils import timezone

    from governance.models import (
        DecisionOutcome,
        MonitoringFinding,
        MonitoringRun,
        SeriousIncident,
    )

    monitoring = MonitoringRun.objects.create(
        model_version=run.parent,
        window_start=timezone.now(),
        window_end=timezone.now(),
        decisions=0,
        outcomes=0,
        statuses={"bias": "insufficient"},
        result={},
        policy={},
        seconds=0.0,
    )
    return {
        "decisionoutcome": DecisionOutcome.objects.create(
            decision=decision,
            label="no",
            positive=False,
            favourable=False,
            known_at=timezone.now(),
        ),
        "monitoringrun": monitoring,
        "monitoringfinding": MonitoringFinding.objects.create(
            run=monitoring,
            model_version=run.parent,
            kind="bias",
            severity="insufficient",
            sentence="Too little data.",
            numbers={},
        ),
        "seriousincident": SeriousIncident.objects.create(
            model_version=run.parent,
            category="other",
            description="A wrong refusal.",
            occurred_at=timezone.now(),
            aware_at=timezone.now(),
        ),
        "aisystem": AISystemFactory(),
        "explainer": recourse.explanation.explainer,
        "decisionexplanation": recourse.explanation,
        "recoursecheck": recourse,
        "report": ReportFactory(model_version=run.parent),
        "explanationrequest": _request_for(decision),
        "contest": contest_file(decision=decision, statement="I disagree.")[0],
        "biascheck": check,
        "shiftreport": shift,
        "dataset": run.parent.dataset,
        "domain": run.target_domain,
        "modelversion": run.parent,
        "finetunerun": run,
        "decision": decision,
        "auditevent": event,
        "job": Job.objects.create(kind="bias_check", model_version=run.parent),
        "decisionlog": log,
        "decisionlogaudit": log_audit,
    }


def _allowed(client: Client, page: str, operation: str, pk: int) -> bool:
    base = f"/admin/governance/{page}/"
    if operation == "list":
        response = client.get(base)
    elif operation == "view":
        response = client.get(f"{base}{pk}/change/")
    elif operation == "add":
        response = client.get(f"{base}add/")
    elif operation == "change":
        response = client.post(f"{base}{pk}/change/", {})
        if response.status_code == 200:
            # A read-only view answers a POST by showing the page again without a form.
            return b'<input type="submit"' in response.content
    else:
        response = client.get(f"{base}{pk}/delete/")
    assert response.status_code in {200, 302, 403}, (
        page,
        operation,
        response.status_code,
    )
    return response.status_code in {200, 302}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_sees_and_changes_exactly_its_pages(role, user_in_role, records):
    client = Client()
    client.force_login(user_in_role(role))
    actual = {
        page: {
            operation
            for operation in ("list", "view", "add", "change", "delete")
            if _allowed(client, page, operation, records[page].pk)
        }
        for page in PAGES
    }
    assert actual == EXPECTED[role]


# The auditor's tools (governance/admin/auditor.py): the links each role is shown
# on the Reports list, the Audit events list and a version's page.
TOOL_LINKS: dict[str, set[str]] = {
    roles.COMPLIANCE_OFFICER: {"verify-pdf", "verify-audit", "evidence-bundle"},
    roles.AUDITOR: {"verify-pdf", "verify-audit", "evidence-bundle"},
    roles.DATA_SCIENTIST: {"verify-pdf", "verify-audit"},
}


@pytest.mark.parametrize("role", list(TOOL_LINKS))
def test_each_role_is_shown_exactly_the_auditor_tools_it_may_use(
    role, user_in_role, records
):
    client = Client()
    client.force_login(user_in_role(role))
    pages = (
        "/admin/governance/report/",
        "/admin/governance/auditevent/",
        f"/admin/governance/modelversion/{records['modelversion'].pk}/change/",
    )
    html = "".join(client.get(page).content.decode() for page in pages)
    shown = {
        name
        for name, marker in (
            ("verify-pdf", 'id="link-verify-pdf"'),
            ("verify-audit", 'id="link-verify-audit"'),
            ("evidence-bundle", 'id="evidence-bundle"'),
        )
        if marker in html
    }
    assert shown == TOOL_LINKS[role]


def test_anonymous_visitors_are_sent_to_the_login_page(records):
    response = Client().get("/admin/governance/decision/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_without_a_role_see_no_records(records):
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    for page in PAGES:
        assert client.get(f"/admin/governance/{page}/").status_code == 403


def test_roles_exist_after_migrations():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)


def test_each_group_holds_exactly_the_permissions_its_role_lists():
    from django.contrib.auth.models import Group

    for role, names in roles.ROLE_PERMISSIONS.items():
        granted = {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=role).permissions.select_related(
                "content_type"
            )
        }
        assert granted == set(names), role
