"""The groups submitters, reviewers and operators with their permissions on jobs (see jobs.roles)."""
from django.db import migrations


def create_roles(apps, schema_editor):
    from jobs.roles import ensure_roles

    ensure_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0003_jobspec_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing leaves the groups in place: people may have been put in them since.
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
