"""The admin's front page: the work queue's counts, the lists they link to, and
what each role sees."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from governance import roles
from governance.admin_site import queue_sections
from governance.models import (
    BiasCheck,
    Contest,
    Domain,
    ExplanationRequest,
    Job,
    MonitoringFinding,
    MonitoringRun,
    SeriousIncident,
)
from governance.selectors import work_queue
from tests.factories import (
    BiasCheckFactory,
    DomainFactory,
    ExplainerFactory,
    ModelVersionFactory,
)
from tests.factories import ContestFactory as _ContestFactory
from tests.factories import ExplanationRequestFactory as _RequestFactory
from tests.factories import JobFactory as _JobFactory
from tests.factories import ReportFactory as _ReportFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _check(version: Any, domain: Domain, verdict: str, age_days: float) -> BiasCheck:
    check = BiasCheckFactory(model_version=version, domain=domain, verdict=verdict)
    # auto_now_add stamps "now": set the age so "latest" is unambiguous.
    BiasCheck.objects.filter(pk=check.pk).update(
        created_at=timezone.now() - age_days * DAY
    )
    return check


@pytest.fixture
def world() -> dict[str, set[int]]:
    """Records on each side of every line the queue draws; returns, per queue
    row, the ids that row must count and its list must show."""
    now = timezone.now()
    # The version the requests', reports' and jobs' records hang off: retired, so
    # its missing explainer is no gap to count.
    old = ModelVersionFactory(status="retired")
    status = ExplanationRequest.Status
    ExplanationRequestFactory = partial(_RequestFactory, decision__model_version=old)
    ContestFactory = partial(_ContestFactory, decision__model_version=old)
    ReportFactory = partial(_ReportFactory, model_version=old)
    JobFactory = partial(_JobFactory, model_version=old)
    overdue = ExplanationRequestFactory(status=status.ASSIGNED, due_at=now - 2 * DAY)
    # Past its first deadline but extended: due soon, not overdue.
    extended = ExplanationRequestFactory(
        status=status.DRAFTING,
        due_at=now - 2 * DAY,
        extended_due_at=now + 3 * DAY,
    )
    soon = ExplanationRequestFactory(status=status.RECEIVED, due_at=now + 5 * DAY)
    ExplanationRequestFactory(status=status.RECEIVED, due_at=now + 20 * DAY)
    # Answered long ago: neither overdue nor waiting.
    ExplanationRequestFactory(status=status.RELEASED, due_at=now - 40 * DAY)
    in_review = ExplanationRequestFactory(
        status=status.IN_REVIEW, due_at=now + 20 * DAY
    )
    late_in_review = ExplanationRequestFactory(
        status=status.IN_REVIEW, due_at=now - DAY
    )

    contest_late = ContestFactory(status=Contest.Status.RECEIVED, due_at=now - DAY)
    contest_soon = ContestFactory(status=Contest.Status.IN_REVIEW, due_at=now + 2 * DAY)
    ContestFactory(
        status=Contest.Status.DECIDED,
        outcome=Contest.Outcome.UPHELD,
        due_at=now - 10 * DAY,
        decided_at=now - 12 * DAY,
    )

    drafts = {ReportFactory().pk, ReportFactory().pk}
    ReportFactory(status="approved")

    # Versions, each with one labelled and one unlabelled domain of its own.
    def version(status_: str = "draft", *, explained: bool = True) -> Any:
        made = ModelVersionFactory(status=status_)
        if explained:
            # Fitted on an unlabelled domain: it needs no bias check.
            ExplainerFactory(
                model_version=made,
                domain__availability=Domain.Availability.DATA,
            )
        return made

    def labelled(made: Any) -> Domain:
        return DomainFactory(dataset=made.dataset)

    failing = version("in_review")
    _check(failing, labelled(failing), "pass", age_days=3)
    # A failing check on an unlabelled domain counts too (the approval gate's rule).
    unlabelled = DomainFactory(
        dataset=failing.dataset, availability=Domain.Availability.DATA
    )
    _check(failing, unlabelled, "fail", age_days=1)

    fixed = version("approved")
    domain = labelled(fixed)
    _check(fixed, domain, "fail", age_days=3)
    _check(fixed, domain, "pass", age_days=1)

    retired = version("retired")
    _check(retired, labelled(retired), "fail", age_days=1)

    unchecked = version("draft")
    checked_domain = labelled(unchecked)
    labelled(unchecked)  # the second labelled domain has no check
    _check(unchecked, checked_domain, "pass", age_days=1)

    unexplained = version("draft", explained=False)
    ModelVersionFactory(status="rejected")  # no explainer, but rejected: not counted

    queued = JobFactory(state=Job.State.QUEUED)
    running = JobFactory(state=Job.State.RUNNING, progress_message="epoch 3 of 8")
    failed = JobFactory(
        state=Job.State.FAILED, finished_at=now - DAY, error="worker lost"
    )
    JobFactory(state=Job.State.FAILED, finished_at=now - 10 * DAY, error="old")
    JobFactory(state=Job.State.SUCCEEDED, finished_at=now - DAY)

    # Monitoring findings: the open one waits; an acknowledged one does not.
    def finding(state: str) -> MonitoringFinding:
        watched = version("approved")
        run = MonitoringRun.objects.create(
            model_version=watched,
            window_start=now - 30 * DAY,
            window_end=now,
            decisions=0,
            outcomes=0,
            statuses={},
            result={},
            policy={},
            seconds=0.0,
        )
        return MonitoringFinding.objects.create(
            run=run,
            model_version=watched,
            kind="input_drift",
            severity="warn",
            sentence="The inputs moved.",
            numbers={},
            state=state,
        )

    open_finding = finding(MonitoringFinding.State.OPEN)
    finding(MonitoringFinding.State.ACKNOWLEDGED)
    finding(MonitoringFinding.State.RECHECKING)  # being worked: not "not yet worked"

    # Serious incidents (AI Act Art. 73): open ones wait; past its deadline (2 days
    # for a widespread infringement) one is overdue; a reported one waits no more.
    def incident(category: str, aware_days: int, **fields: Any) -> SeriousIncident:
        aware = now - aware_days * DAY
        return SeriousIncident.objects.create(
            model_version=open_finding.model_version,
            category=category,
            description="What happened.",
            occurred_at=aware - DAY,
            aware_at=aware,
            **fields,
        )

    late_incident = incident("widespread", 4)
    fresh_incident = incident("other", 4)  # 15 days: not yet due
    incident("death", 30, status="reported", reported_at=now, authority="MSA")

    return {
        "requests_overdue": {overdue.pk, late_in_review.pk},
        "requests_due_soon": {extended.pk, soon.pk},
        "requests_awaiting_approval": {in_review.pk, late_in_review.pk},
        "reports_awaiting_review": drafts,
        "versions_awaiting_approval": {failing.pk},
        "contests_received": {contest_late.pk},
        "contests_in_review": {contest_soon.pk},
        "contests_overdue": {contest_late.pk},
        "contests_due_soon": {contest_soon.pk},
        "versions_failing_bias": {failing.pk},
        "versions_unchecked": {unchecked.pk},
        "versions_without_explainer": {unexplained.pk},
        "jobs_queued": {queued.pk},
        "jobs_running": {running.pk},
        "jobs_failed_recently": {failed.pk},
        "findings_open": {open_finding.pk},
        "incidents_overdue": {late_incident.pk},
        "incidents_open": {late_incident.pk, fresh_incident.pk},
    }


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _listed(client: Client, url: str) -> set[int]:
    response = client.get(url)
    assert response.status_code == 200, url
    changelist = response.context["cl"]
    # A filter the list does not know is dropped with "?e=1": it must filter.
    assert "e=1" not in response.get("Location", ""), url
    assert changelist.result_count == len(changelist.result_list)
    return {obj.pk for obj in changelist.result_list}


def test_each_count_is_right_and_its_link_lists_exactly_those(
    world: dict[str, set[int]], user_in_role: Any
) -> None:
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    queue = work_queue(officer)
    rows = {row.key: row for s in queue_sections(queue) for row in s.rows}
    assert set(rows) == set(world)
    client = _client(officer)
    for key, expected in world.items():
        assert getattr(queue, key) == len(expected), key
        assert rows[key].count == len(expected), key
        assert _listed(client, rows[key].url) == expected, (key, rows[key].url)


def test_the_queue_lists_active_and_recently_failed_jobs_with_their_progress(
    world: dict[str, set[int]], user_in_role: Any
) -> None:
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    queue = work_queue(officer)
    listed = [job.pk for job in queue.jobs]
    active = world["jobs_queued"] | world["jobs_running"]
    # Queued and running first, then the failures.
    assert set(listed[:2]) == active
    assert listed[2:] == sorted(world["jobs_failed_recently"])
    page = _client(officer).get("/admin/").content.decode()
    assert "epoch 3 of 8" in page
    assert "worker lost" in page
    assert "waiting for a worker" in page  # the queued job has no progress yet


def test_the_front_page_shows_the_counts_with_their_links(
    world: dict[str, set[int]], user_in_role: Any
) -> None:
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    page = _client(officer).get("/admin/").content.decode()
    for row in (r for s in queue_sections(work_queue(officer)) for r in s.rows):
        assert f'id="queue-{row.key}"' in page
        assert f'href="{row.url.replace("&", "&amp;")}">{row.count}</a>' in page
    # The app list is still there, folded below the queue.
    assert page.index('id="work-queue"') < page.index('id="all-records"')
    assert 'href="/admin/governance/modelversion/"' in page
    assert page.count('id="policy-link"') == 1


@pytest.mark.parametrize(
    ("role", "hidden"),
    [
        (roles.COMPLIANCE_OFFICER, set()),
        # Auditors read requests and contests but change nothing: same counts.
        (roles.AUDITOR, set()),
        # Data scientists may not view requests or contests: no such counts.
        (
            roles.DATA_SCIENTIST,
            {
                "requests_overdue",
                "requests_due_soon",
                "requests_awaiting_approval",
                "contests_received",
                "contests_in_review",
                "contests_overdue",
                "contests_due_soon",
            },
        ),
    ],
)
def test_each_role_sees_only_what_it_may_view(
    world: dict[str, set[int]], user_in_role: Any, role: str, hidden: set[str]
) -> None:
    user = user_in_role(role)
    queue = work_queue(user)
    for key, expected in world.items():
        if key in hidden:
            assert getattr(queue, key) is None, key
        else:
            assert getattr(queue, key) == len(expected), key
    page = _client(user).get("/admin/").content.decode()
    for key in world:
        assert (f'id="queue-{key}"' in page) is (key not in hidden), key
    # Each shown link opens for this role.
    client = _client(user)
    for row in (r for s in queue_sections(queue) for r in s.rows):
        assert client.get(row.url).status_code == 200, row.url


def test_a_staff_account_without_a_role_sees_no_counts(
    world: dict[str, set[int]], user_in_role: Any
) -> None:
    from tests.factories import UserFactory

    nobody = UserFactory()
    queue = work_queue(nobody)
    assert all(getattr(queue, key) is None for key in world)
    assert queue.jobs == []
    page = _client(nobody).get("/admin/").content.decode()
    assert "Nothing here for your role." in page


def test_the_counts_take_one_query_per_kind_of_record(
    world: dict[str, set[int]],
    user_in_role: Any,
    django_assert_max_num_queries: Any,
) -> None:
    officer = user_in_role(roles.COMPLIANCE_OFFICER)
    officer = type(officer).objects.get(pk=officer.pk)  # no cached permissions
    # Permissions (2), requests, reports, versions, contests, jobs, the job list,
    # open monitoring findings and serious incidents.
    with django_assert_max_num_queries(10):
        work_queue(officer)


def test_the_version_page_says_what_an_approval_still_needs(
    user_in_role: Any,
) -> None:
    from governance.admin.version_summary import approval_needs
    from tests.factories import ReportFactory, UserFactory

    submitter = UserFactory(username="scientist-1")
    version = ModelVersionFactory(status="in_review", submitted_by=submitter)
    needs = approval_needs(version)
    assert needs == [
        "a rendered model dossier (Generate model dossier)",
        "approval by a compliance officer other than scientist-1, who submitted "
        "it (four eyes)",
        "a written justification with the approval, because it has no explainer",
    ]
    ReportFactory(model_version=version)
    ExplainerFactory(
        model_version=version, domain__availability=Domain.Availability.DATA
    )
    assert approval_needs(version) == [
        "approval by a compliance officer other than scientist-1, who submitted "
        "it (four eyes)"
    ]
    page = _client(user_in_role(roles.AUDITOR)).get(
        f"/admin/governance/modelversion/{version.pk}/change/"
    )
    assert "approval by a compliance officer other than scientist-1" in (
        page.content.decode()
    )
    version.status = "approved"
    assert approval_needs(version) == []
