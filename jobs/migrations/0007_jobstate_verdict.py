"""The projection carries the verdict of a job's latest gates step (it was read from the events on every list
and detail); existing jobs get it from their events."""
from django.db import migrations, models


def fill(apps, schema_editor):
    JobEvent, JobState = apps.get_model("jobs", "JobEvent"), apps.get_model("jobs", "JobState")
    latest = {}
    for job_id, payload in (JobEvent.objects.filter(event_type="GATES_COMPLETED").order_by("job_id", "seq")
                            .values_list("job_id", "payload")):
        latest[job_id] = (payload.get("summary") or {}).get("verdict")
    for job_id, verdict in latest.items():
        JobState.objects.filter(job_id=job_id).update(verdict=verdict)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_drop_job_change_notices")]

    operations = [
        migrations.AddField(
            model_name="jobstate", name="verdict", field=models.CharField(blank=True, max_length=8, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=False),
    ]
