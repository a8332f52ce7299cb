"""Drops the notice triggers of the removed job change feed (PostgreSQL only; nothing on SQLite)."""
from django.db import migrations

DROP = """
DROP TRIGGER IF EXISTS eam_notice_jobstate_changed ON jobs_jobstate;
DROP TRIGGER IF EXISTS eam_notice_jobstate_truncated ON jobs_jobstate;
DROP TRIGGER IF EXISTS eam_notice_jobspec_child ON jobs_jobspec;
DROP TRIGGER IF EXISTS eam_notice_jobspec_truncated ON jobs_jobspec;
DROP FUNCTION IF EXISTS eam_notice_job_changed();
"""


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0005_job_change_notices")]

    operations = [migrations.RunPython(drop, migrations.RunPython.noop, elidable=False)]
