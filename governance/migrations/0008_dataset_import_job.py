"""Dataset import jobs: Datasets -> Add stages the uploads and a worker imports them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0007_audit_chain_anchor"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DatasetImport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "spec_name",
                    models.CharField(
                        editable=False,
                        help_text="The name the spec gives the dataset.",
                        max_length=64,
                    ),
                ),
                ("spec_toml", models.TextField(editable=False)),
                (
                    "files",
                    models.JSONField(
                        default=list,
                        editable=False,
                        help_text="The uploaded files: name and bytes.",
                    ),
                ),
                (
                    "staging_dir",
                    models.CharField(
                        blank=True,
                        editable=False,
                        help_text="Relative to MEDIA_ROOT.",
                        max_length=300,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "queued"),
                            ("running", "running"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed"),
                        ],
                        default="queued",
                        editable=False,
                        max_length=16,
                    ),
                ),
                ("step", models.PositiveSmallIntegerField(default=0, editable=False)),
                (
                    "step_count",
                    models.PositiveSmallIntegerField(default=0, editable=False),
                ),
                (
                    "progress_message",
                    models.CharField(blank=True, editable=False, max_length=200),
                ),
                ("error", models.TextField(blank=True, editable=False)),
                (
                    "lease_owner",
                    models.CharField(blank=True, editable=False, max_length=200),
                ),
                (
                    "lease_expires_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "attempts",
                    models.PositiveSmallIntegerField(default=0, editable=False),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "started_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "finished_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "dataset",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="imports",
                        to="governance.dataset",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(
                        fields=["state", "lease_expires_at"],
                        name="governance_dsi_lease_idx",
                    )
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("state__in", ["queued", "running", "succeeded", "failed"])
                        ),
                        name="governance_datasetimport_state_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("state", "succeeded"), _negated=True),
                            ("dataset__isnull", False),
                            _connector="OR",
                        ),
                        name="governance_datasetimport_success_has_dataset",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("step__lte", models.F("step_count"))),
                        name="governance_datasetimport_step_range",
                    ),
                ],
            },
        ),
    ]
