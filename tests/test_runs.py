from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import AuditEvent, FineTuneRun, ModelVersion
from governance.services.runs import (
    LeaseLost,
    RunNotClaimable,
    finetune_run_claim,
    finetune_run_mark_failed,
    finetune_run_mark_succeeded,
    finetune_run_report_progress,
    finetune_run_request_cancel,
    finetune_run_stale_ids,
)
from tests.factories import FineTuneRunFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def test_a_claimed_run_is_running_under_a_lease_and_audited():
    run = FineTuneRunFactory()
    claimed = finetune_run_claim(run_id=run.pk, worker="w1")
    assert claimed.state == FineTuneRun.State.RUNNING
    assert claimed.lease_owner == "w1" and claimed.attempts == 1
    assert claimed.lease_expires_at > timezone.now()
    assert AuditEvent.objects.filter(action="finetune_run.running").count() == 1


def test_a_second_delivery_of_a_leased_or_finished_run_does_nothing():
    run = FineTuneRunFactory()
    finetune_run_claim(run_id=run.pk, worker="w1")
    with pytest.raises(RunNotClaimable):
        finetune_run_claim(run_id=run.pk, worker="w2")
    finetune_run_mark_failed(run_id=run.pk, worker="w1", error="boom")
    with pytest.raises(RunNotClaimable):
        finetune_run_claim(run_id=run.pk, worker="w2")
    assert FineTuneRun.objects.get(pk=run.pk).attempts == 1


def test_a_run_whose_worker_died_can_be_claimed_again_after_the_lease_expires():
    run = FineTuneRunFactory()
    finetune_run_claim(run_id=run.pk, worker="dead", lease=timedelta(seconds=-1))
    assert run.pk in finetune_run_stale_ids()
    assert FineTuneRunFactory().pk not in finetune_run_stale_ids()  # just queued
    again = finetune_run_claim(run_id=run.pk, worker="alive")
    assert again.lease_owner == "alive" and again.attempts == 2
    # The dead worker, if it wakes up, can no longer write.
    with pytest.raises(LeaseLost):
        finetune_run_report_progress(run_id=run.pk, worker="dead", progress=0.5)


def test_success_records_the_produced_version_only_for_the_lease_holder():
    run = FineTuneRunFactory()
    finetune_run_claim(run_id=run.pk, worker="w1")
    child = ModelVersionFactory(
        kind=ModelVersion.Kind.FINETUNED, parent=run.parent, dataset=run.parent.dataset
    )
    with pytest.raises(LeaseLost):
        finetune_run_mark_succeeded(
            run_id=run.pk, worker="w2", produced_version=child, device="cpu"
        )
    done = finetune_run_mark_succeeded(
        run_id=run.pk, worker="w1", produced_version=child, device="cpu"
    )
    assert done.state == FineTuneRun.State.SUCCEEDED and done.progress == 1.0
    assert done.produced_version == child and done.device == "cpu"


def test_cancelling_a_queued_run_ends_it_and_a_running_one_at_its_next_progress():
    queued = FineTuneRunFactory()
    assert finetune_run_request_cancel(run=queued, actor="officer").state == "cancelled"

    running = FineTuneRunFactory()
    finetune_run_claim(run_id=running.pk, worker="w1")
    finetune_run_request_cancel(run=running, actor="officer")
    keep_going = finetune_run_report_progress(
        run_id=running.pk, worker="w1", progress=0.3
    )
    assert keep_going is False


def test_progress_stays_between_zero_and_one():
    run = FineTuneRunFactory()
    finetune_run_claim(run_id=run.pk, worker="w1")
    finetune_run_report_progress(run_id=run.pk, worker="w1", progress=7.0, message="x")
    assert FineTuneRun.objects.get(pk=run.pk).progress == 1.0
