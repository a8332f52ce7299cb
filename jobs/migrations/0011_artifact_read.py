"""The access log of artifact reads (jobs.access), insert-only like the events: UPDATE, DELETE (TRUNCATE on
PostgreSQL) and INSERT OR REPLACE refused by the guard triggers installed here."""

import django.utils.timezone
from django.db import migrations, models

from guards.triggers import GuardedTable, install_operation


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0010_jobstate_reruns'),
    ]

    operations = [
        migrations.CreateModel(
            name='ArtifactRead',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('who', models.CharField(help_text='username, or "anonymous" (EAM_PUBLIC_READ)', max_length=150)),
                ('job_id', models.CharField(max_length=12)),
                ('path', models.TextField(help_text="as requested, relative to the job (dossier/... for its run's dossier)")),
                ('storage_path', models.TextField(help_text='where the bytes were read, relative to the artifact root')),
                ('sha256', models.CharField(help_text='of the bytes served', max_length=64)),
                ('bytes', models.PositiveBigIntegerField()),
                ('at', models.DateTimeField(default=django.utils.timezone.now, help_text='when the bytes were served')),
                ('request_id', models.CharField(max_length=128)),
                ('via', models.CharField(choices=[('api', 'API download'), ('ui', 'page'), ('bundle', 'bundle')], max_length=8)),
            ],
            options={
                'ordering': ['id'],
                'indexes': [models.Index(fields=['job_id', 'id'], name='artifactread_job'), models.Index(fields=['who', 'id'], name='artifactread_who'), models.Index(fields=['at'], name='artifactread_at')],
                'constraints': [models.CheckConstraint(condition=models.Q(('via__in', ['api', 'ui', 'bundle'])), name='artifactread_via_valid')],
            },
        ),
        install_operation(GuardedTable(table="jobs_artifactread", pk="id")),
    ]
