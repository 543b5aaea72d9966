"""Grant the roles their permissions on AI systems and contests."""

from django.db import migrations


def sync(apps, schema_editor):
    from governance.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [("governance", "0009_ai_system_contest")]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
