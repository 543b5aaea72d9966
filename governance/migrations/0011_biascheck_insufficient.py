"""A bias check may say "not enough data" (verdict "insufficient"): the choice,
a wider verdict column and the CHECK constraint that allows it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0010_roles_systems_contests"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="biascheck",
            name="governance_biascheck_verdict_valid",
        ),
        migrations.AlterField(
            model_name="biascheck",
            name="verdict",
            field=models.CharField(
                choices=[
                    ("pass", "pass"),
                    ("warn", "warn"),
                    ("fail", "fail"),
                    ("insufficient", "not enough data"),
                ],
                editable=False,
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="biascheck",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("verdict__in", ["pass", "warn", "fail", "insufficient"])
                ),
                name="governance_biascheck_verdict_valid",
            ),
        ),
    ]
