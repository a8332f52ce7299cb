"""PostgreSQL announces every change to a job's projection row, and each new child job, on eam_job_changed
(jobs.change_feed). Nothing on SQLite."""
from django.db import migrations

from jobs import change_feed


def install(apps, schema_editor):
    change_feed.install(schema_editor)


def uninstall(apps, schema_editor):
    change_feed.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0004_roles")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
