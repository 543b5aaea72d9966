"""Uploads imported by a worker."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.data import Dataset


class DatasetImportState(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class DatasetImport(models.Model):
    """One upload through Datasets -> Add, imported by a worker off the request.

    The uploads wait in `staging_dir` (under MEDIA_ROOT) until the job ends; the
    dataset is recorded in the transaction that marks the job succeeded, and a
    failed job leaves no Dataset or Domain rows and no staging folder behind.
    """

    State = DatasetImportState

    TERMINAL_STATES = (State.SUCCEEDED, State.FAILED)

    spec_name = models.CharField(
        max_length=64, editable=False, help_text="The name the spec gives the dataset."
    )
    spec_toml = models.TextField(editable=False)
    files = models.JSONField(
        default=list, editable=False, help_text="The uploaded files: name and bytes."
    )
    staging_dir = models.CharField(
        max_length=300, blank=True, editable=False, help_text="Relative to MEDIA_ROOT."
    )
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.QUEUED, editable=False
    )
    step = models.PositiveSmallIntegerField(default=0, editable=False)
    step_count = models.PositiveSmallIntegerField(default=0, editable=False)
    progress_message = models.CharField(max_length=200, blank=True, editable=False)
    error = models.TextField(blank=True, editable=False)
    dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="imports",
        editable=False,
    )
    lease_owner = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=DatasetImportState.values),
                name="governance_datasetimport_state_valid",
            ),
            models.CheckConstraint(
                condition=~Q(state="succeeded") | Q(dataset__isnull=False),
                name="governance_datasetimport_success_has_dataset",
            ),
            models.CheckConstraint(
                condition=Q(step__lte=models.F("step_count")),
                name="governance_datasetimport_step_range",
            ),
        ]
        indexes = [
            # The sweeper looks for running jobs whose lease has expired.
            models.Index(
                fields=["state", "lease_expires_at"], name="governance_dsi_lease_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} of dataset {self.spec_name} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_datasetimport_change", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES
