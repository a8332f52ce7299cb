"""SQLite: the registry's no-replace guard also refuses an insert whose (job_id, run_id) exists; REPLACE
would otherwise delete the original row without firing the delete guard."""
from django.db import migrations

from guards.triggers import GuardedTable, reinstall_operation


class Migration(migrations.Migration):
    dependencies = [("research", "0001_initial")]

    operations = [reinstall_operation(GuardedTable(table="research_registryentry", pk="id", unique=(("job_id", "run_id"),)))]
