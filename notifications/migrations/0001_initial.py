"""Deliveries, their attempts, the planner's cursor and each person's settings. The cursor starts after the last
event already in the log: a deployment is not told of its whole history."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def start_after_the_log(apps, schema_editor):
    JobEvent = apps.get_model("jobs", "JobEvent")
    PlanCursor = apps.get_model("notifications", "PlanCursor")
    last = JobEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    PlanCursor.objects.update_or_create(name="events", defaults={"last_event_id": last})


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('jobs', '0011_artifact_read'),
    ]

    operations = [
        migrations.CreateModel(
            name='NotificationSetting',
            fields=[
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='notification_setting', serialize=False, to=settings.AUTH_USER_MODEL)),
                ('email_off', models.JSONField(blank=True, default=list, help_text='kinds not sent by e-mail')),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.CreateModel(
            name='PlanCursor',
            fields=[
                ('name', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('last_event_id', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('job_id', models.CharField(max_length=12)),
                ('kind', models.CharField(choices=[('waiting', 'Waiting'), ('decided', 'Decided'), ('escalated', 'Escalated'), ('error', 'Error'), ('finished', 'Finished')], max_length=16)),
                ('channel', models.CharField(choices=[('email', 'e-mail'), ('webhook', 'webhook')], max_length=8)),
                ('target', models.CharField(help_text="the username (e-mail) or the webhook's name", max_length=150)),
                ('address', models.CharField(help_text="the e-mail address or the webhook's URL when planned", max_length=500)),
                ('status', models.CharField(choices=[('pending', 'pending'), ('delivered', 'delivered'), ('failed', 'failed')], default='pending', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField()),
                ('next_attempt_at', models.DateTimeField(blank=True, help_text='null once delivered or failed', null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True, default='')),
                ('claimed_until', models.DateTimeField(blank=True, null=True)),
                ('claim_token', models.CharField(blank=True, default='', max_length=32)),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='jobs.jobevent')),
            ],
            options={
                'verbose_name_plural': 'deliveries',
                'ordering': ['-id'],
            },
        ),
        migrations.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('number', models.PositiveIntegerField()),
                ('at', models.DateTimeField()),
                ('outcome', models.CharField(choices=[('delivered', 'delivered'), ('retry', 'failed, will retry'), ('failed', 'failed for good')], max_length=10)),
                ('http_status', models.PositiveIntegerField(blank=True, null=True)),
                ('error', models.TextField(blank=True, default='')),
                ('duration_ms', models.PositiveIntegerField(default=0)),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_rows', to='notifications.delivery')),
            ],
            options={
                'ordering': ['delivery_id', 'number'],
            },
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['status', 'next_attempt_at'], name='delivery_due'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['job_id', 'id'], name='delivery_job'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.UniqueConstraint(fields=('event', 'channel', 'target'), name='delivery_once_per_target'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(('channel__in', ['email', 'webhook'])), name='delivery_channel_valid'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'delivered', 'failed'])), name='delivery_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='deliveryattempt',
            constraint=models.UniqueConstraint(fields=('delivery', 'number'), name='attempt_once_per_number'),
        ),
        migrations.RunPython(start_after_the_log, migrations.RunPython.noop),
    ]
