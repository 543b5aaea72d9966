"""Every admin list page runs the same number of queries for few rows as for many."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.models import (
    BiasCheck,
    DecisionOutcome,
    ExplanationRequest,
    MonitoringFinding,
    MonitoringRun,
    SeriousIncident,
    ShiftReport,
)
from governance.services.audit import audit_record
from tests.factories import (
    DecisionFactory,
    FineTuneRunFactory,
    RecourseCheckFactory,
    ReportFactory,
)
from tests.test_roles import PAGES

pytestmark = pytest.mark.django_db


def _add_rows(count: int) -> None:
    for _ in range(count):
        run = FineTuneRunFactory()
        decision = DecisionFactory(model_version=run.parent)
        audit_record(actor="test", action="fixture.made", obj=decision)
        RecourseCheckFactory(explanation__decision=decision)
        ReportFactory(model_version=run.parent)
        ExplanationRequest.objects.create(
            number=f"ER-{decision.pk}",
            decision=decision,
            received_at=timezone.now(),
            due_at=timezone.now(),
            access_token_hash=f"{decision.pk:064x}",
            access_expires_at=timezone.now(),
        )
        ShiftReport.objects.create(
            source_domain=run.source_domain,
            target_domain=run.target_domain,
            situation="supervised_fine_tuning",
            domain_auc=0.7,
            report={},
        )
        BiasCheck.objects.create(
            model_version=run.parent,
            domain=run.target_domain,
            verdict="warn",
            rows=10,
            has_labels=True,
            result={"findings": [], "attributes": []},
            policy={},
        )
        DecisionOutcome.objects.create(
            decision=decision,
            label="no",
            positive=False,
            favourable=False,
            known_at=timezone.now(),
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
        finding = MonitoringFinding.objects.create(
            run=monitoring,
            model_version=run.parent,
            kind="bias",
            severity="insufficient",
            sentence="Too little data.",
            numbers={},
        )
        SeriousIncident.objects.create(
            model_version=run.parent,
            finding=finding,
            category="death",
            description="What happened.",
            occurred_at=timezone.now(),
            aware_at=timezone.now(),
        )


@pytest.mark.parametrize("page", PAGES)
def test_list_page_query_count_does_not_grow_with_rows(admin_client, page):
    def queries() -> int:
        cache.clear()  # filter choices are cached: count the uncached page
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(f"/admin/governance/{page}/")
        assert response.status_code == 200
        return len(captured)

    _add_rows(2)
    few = queries()
    _add_rows(15)
    assert queries() == few


def test_a_datasets_page_reads_the_dataset_once_however_many_domains(
    admin_client, adult_dataset
):
    """Each domain row's label names the dataset; the page must not load the
    dataset (its whole spec) again for every row."""
    from governance.models import Domain

    def dataset_reads() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = admin_client.get(
                f"/admin/governance/dataset/{adult_dataset.pk}/change/"
            )
        assert page.status_code == 200
        return sum('FROM "governance_dataset"' in q["sql"] for q in captured)

    few = dataset_reads()
    source = adult_dataset.domains.get(name="source")
    for n in range(6):
        Domain.objects.create(
            dataset=adult_dataset,
            name=f"copy{n}",
            filter_expression=source.filter_expression,
            availability=source.availability,
            row_count=source.row_count,
            positive_count=source.positive_count,
        )
    assert dataset_reads() == few
