"""Events carry an Ed25519 signature of their hash and the id of the key that made it (jobs.signing).

Adding nullable columns is an ALTER TABLE on both databases: no row is rewritten and the guard triggers stay.
Events written before this migration keep no signature; `verify_events` reports them as unsigned."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("jobs", "0008_event_replace_guard")]

    operations = [
        migrations.AddField("jobevent", "key_id", models.CharField(blank=True, max_length=64, null=True)),
        migrations.AddField("jobevent", "signature", models.CharField(blank=True, max_length=128, null=True)),
    ]
