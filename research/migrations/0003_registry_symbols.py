"""The registry keeps each trial's universe, so trials on one snapshot can be counted by overlapping universe,
and is indexed by snapshot (the default trials scope). SQLite adds the column by rebuilding the table, which
drops its triggers: the guards are installed again."""
from django.db import migrations, models

from guards.triggers import GuardedTable, reinstall_operation


class Migration(migrations.Migration):
    dependencies = [("research", "0002_registry_replace_guard")]

    operations = [
        migrations.AddField(
            model_name="registryentry",
            name="symbols",
            field=models.JSONField(default=list, help_text="the run's universe symbols"),
        ),
        migrations.AddIndex(
            model_name="registryentry",
            index=models.Index(fields=["snapshot_id"], name="research_registry_snapshot"),
        ),
        reinstall_operation(GuardedTable(table="research_registryentry", pk="id", unique=(("job_id", "run_id"),))),
    ]
