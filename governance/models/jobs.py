"""Checks and explanations run by a worker, started from the admin, the API or a
command: one row per job, claimed under a lease, with its outcome linked."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.data import Domain
from governance.models.decisions import Decision, DecisionExplanation
from governance.models.versions import BiasCheck, Explainer, ModelVersion, ShiftReport


class JobKind(models.TextChoices):
    SHIFT_REPORT = "shift_report", "shift report"
    BIAS_CHECK = "bias_check", "bias check"
    EXPLAINER_FIT = "explainer_fit", "explainer fit"
    DECISION_EXPLANATION = "decision_explanation", "decision explanation"
    RECOURSE_RECHECK = "recourse_recheck", "recourse re-check"


class JobState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


# The record a succeeded job of each kind links to (a recourse re-check makes
# many RecourseCheck rows; its result JSON counts them).
JOB_RESULT_FIELD = {
    JobKind.SHIFT_REPORT: "shift_report",
    JobKind.BIAS_CHECK: "bias_check",
    JobKind.EXPLAINER_FIT: "explainer",
    JobKind.DECISION_EXPLANATION: "explanation",
}


def _link(model: type[models.Model], **kwargs: object) -> models.ForeignKey:
    return models.ForeignKey(
        model,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        **kwargs,
    )


class Job(models.Model):
    """One shift report, bias check, explainer fit, decision explanation or
    recourse re-check, queued by `governance.services.jobs.job_start` and run by
    `workers.tasks.job_task`. The record it made is written in the transaction
    that marks the job succeeded; a failed job made none."""

    Kind = JobKind
    State = JobState
    TERMINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED)

    kind = models.CharField(max_length=32, choices=JobKind.choices, editable=False)
    state = models.CharField(
        max_length=16, choices=JobState.choices, default=JobState.QUEUED, editable=False
    )
    # What the job works on. A shift report measures from the version's training
    # domain to `domain`; a bias check runs on `domain`; a recourse re-check
    # re-scores the version's advice on `replacement`.
    model_version = _link(ModelVersion)
    domain = _link(Domain)
    replacement = _link(ModelVersion)
    decision = _link(Decision)
    seed = models.PositiveIntegerField(default=0, editable=False)
    # What it made.
    shift_report = _link(ShiftReport)
    bias_check = _link(BiasCheck)
    explainer = _link(Explainer)
    explanation = _link(DecisionExplanation)
    result = models.JSONField(default=dict, blank=True, editable=False)
    progress_message = models.CharField(max_length=200, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)
    lease_owner = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = _link(settings.AUTH_USER_MODEL)
    # Who started it when that was not a person's account (a command, the flow).
    started_by = models.CharField(max_length=100, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=JobKind.values), name="governance_job_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=JobState.values),
                name="governance_job_state_valid",
            ),
            *(
                models.CheckConstraint(
                    condition=~Q(state=JobState.SUCCEEDED, kind=kind)
                    | Q(**{f"{field}__isnull": False}),
                    name=f"governance_job_{kind}_links_its_result",
                )
                for kind, field in JOB_RESULT_FIELD.items()
            ),
        ]
        indexes = [
            # The sweeper looks for running jobs whose lease has expired.
            models.Index(
                fields=["state", "lease_expires_at"], name="governance_job_lease_idx"
            ),
            models.Index(
                fields=["model_version", "-created_at"], name="governance_job_ver_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Job #{self.pk}: {self.get_kind_display()} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_job_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def result_object(self) -> models.Model | None:
        field = JOB_RESULT_FIELD.get(JobKind(self.kind))
        return getattr(self, field) if field else None
