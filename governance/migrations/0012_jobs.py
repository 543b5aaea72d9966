"""Jobs: checks and explanations run by a worker; the roles that may start them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def sync(apps, schema_editor):
    from governance.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0011_biascheck_insufficient"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
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
                    "kind",
                    models.CharField(
                        choices=[
                            ("shift_report", "shift report"),
                            ("bias_check", "bias check"),
                            ("explainer_fit", "explainer fit"),
                            ("decision_explanation", "decision explanation"),
                            ("recourse_recheck", "recourse re-check"),
                        ],
                        editable=False,
                        max_length=32,
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
                ("seed", models.PositiveIntegerField(default=0, editable=False)),
                ("result", models.JSONField(blank=True, default=dict, editable=False)),
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
                    "started_by",
                    models.CharField(blank=True, editable=False, max_length=100),
                ),
                (
                    "bias_check",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.biascheck",
                    ),
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
                    "decision",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.decision",
                    ),
                ),
                (
                    "domain",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.domain",
                    ),
                ),
                (
                    "explainer",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.explainer",
                    ),
                ),
                (
                    "explanation",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.decisionexplanation",
                    ),
                ),
                (
                    "model_version",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.modelversion",
                    ),
                ),
                (
                    "replacement",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.modelversion",
                    ),
                ),
                (
                    "shift_report",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.shiftreport",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "indexes": [
                    models.Index(
                        fields=["state", "lease_expires_at"],
                        name="governance_job_lease_idx",
                    ),
                    models.Index(
                        fields=["model_version", "-created_at"],
                        name="governance_job_ver_idx",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "kind__in",
                                [
                                    "shift_report",
                                    "bias_check",
                                    "explainer_fit",
                                    "decision_explanation",
                                    "recourse_recheck",
                                ],
                            )
                        ),
                        name="governance_job_kind_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("state__in", ["queued", "running", "succeeded", "failed"])
                        ),
                        name="governance_job_state_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("kind", "shift_report"),
                                ("state", "succeeded"),
                                _negated=True,
                            ),
                            ("shift_report__isnull", False),
                            _connector="OR",
                        ),
                        name="governance_job_shift_report_links_its_result",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("kind", "bias_check"),
                                ("state", "succeeded"),
                                _negated=True,
                            ),
                            ("bias_check__isnull", False),
                            _connector="OR",
                        ),
                        name="governance_job_bias_check_links_its_result",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("kind", "explainer_fit"),
                                ("state", "succeeded"),
                                _negated=True,
                            ),
                            ("explainer__isnull", False),
                            _connector="OR",
                        ),
                        name="governance_job_explainer_fit_links_its_result",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("kind", "decision_explanation"),
                                ("state", "succeeded"),
                                _negated=True,
                            ),
                            ("explanation__isnull", False),
                            _connector="OR",
                        ),
                        name="governance_job_decision_explanation_links_its_result",
                    ),
                ],
            },
        ),
        migrations.RunPython(sync, migrations.RunPython.noop),
    ]
