"""The product's roles as groups (governance/roles.py holds the permission lists)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from governance.roles import sync_roles

    sync_roles(apps)


def remove_roles(apps, schema_editor):
    from governance.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
