"""Audit chain scheme 2: the actor link is hashed, each event carries an HMAC, and
the actor links of the events written before (scheme 1) are sealed in one event.

The existing events are not rewritten: an audit trail that its own upgrade
recomputes proves nothing. They keep scheme 1 and verify as they were written.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def seal_legacy_events(apps, schema_editor):
    from governance.services.audit import audit_seal_legacy

    audit_seal_legacy(apps.get_model("governance", "AuditEvent"))


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0006_glassbox_versions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="scheme",
            field=models.PositiveSmallIntegerField(
                db_default=1, default=2, editable=False
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(
                db_default="", default="", editable=False, max_length=64
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(seal_legacy_events, migrations.RunPython.noop),
    ]
