"""SQLite: the events' no-replace guard also refuses an insert whose (job_id, seq) exists."""
from django.db import migrations

from guards.triggers import GuardedTable, reinstall_operation


class Migration(migrations.Migration):
    dependencies = [("jobs", "0007_jobstate_verdict")]

    operations = [reinstall_operation(
        GuardedTable(table="jobs_jobevent", pk="id", seq_column="seq", seq_scope="job_id", unique=(("job_id", "seq"),))
    )]
