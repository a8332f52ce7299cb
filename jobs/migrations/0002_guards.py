"""Database guards: JobSpec and JobEvent are insert-only; event seq is gapless per job."""
from django.db import migrations

from guards.triggers import GuardedTable, install_operation


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]

    operations = [
        install_operation(GuardedTable(table="jobs_jobspec", pk="job_id")),
        install_operation(GuardedTable(table="jobs_jobevent", pk="id", seq_column="seq", seq_scope="job_id")),
    ]
