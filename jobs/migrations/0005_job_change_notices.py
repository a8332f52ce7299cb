"""Formerly installed PostgreSQL notice triggers for a per-process cache of job details; that cache is gone
and 0006 drops the triggers where this migration once created them. Kept, empty, so that the migration
history of existing databases stays whole."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("jobs", "0004_roles")]

    operations = []
