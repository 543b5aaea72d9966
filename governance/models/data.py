"""Imported data sets and their domains."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from governance.models.systems import AISystem


class Dataset(models.Model):
    """A registered tabular file (or files) with the spec that says how to read it."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="The parsed dataset spec, as stored.")
    spec_toml = models.TextField(help_text="The spec file exactly as submitted.")
    content_sha256 = models.CharField(max_length=64, editable=False)
    row_count = models.PositiveIntegerField(editable=False)
    schema = models.JSONField(
        editable=False, help_text="Inferred column types and stats."
    )
    label_counts = models.JSONField(editable=False)
    files = models.JSONField(
        editable=False, help_text="Stored copies of the data files."
    )
    storage_dir = models.CharField(max_length=300, editable=False)
    system = models.ForeignKey(
        AISystem,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="datasets",
        help_text="The AI system this data set (and its model versions) belong to.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(content_sha256__regex=r"^[0-9a-f]{64}$"),
                name="governance_dataset_sha256_hex",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def get_absolute_url(self) -> str:
        return reverse("admin:governance_dataset_change", args=[self.pk])


class Domain(models.Model):
    """A named population of a dataset, drawn by a row filter."""

    class Availability(models.TextChoices):
        LABELS = "labels", "data and labels"
        DATA = "data", "data only (labels withheld)"
        NOTHING = "nothing", "nothing yet (unseen environment)"

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="domains"
    )
    name = models.SlugField(max_length=64)
    description = models.TextField(blank=True)
    filter_expression = models.TextField(blank=True)
    availability = models.CharField(max_length=16, choices=Availability.choices)
    row_count = models.PositiveIntegerField(editable=False)
    positive_count = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "name"], name="governance_domain_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(availability__in=["labels", "data", "nothing"]),
                name="governance_domain_availability_valid",
            ),
            models.CheckConstraint(
                condition=Q(availability="nothing") | Q(row_count__gt=0),
                name="governance_domain_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"

    @property
    def has_labels(self) -> bool:
        return self.availability == self.Availability.LABELS

    @property
    def positive_rate(self) -> float | None:
        if self.positive_count is None or not self.row_count:
            return None
        return self.positive_count / self.row_count
