"""Approval rules and deadlines: three event types (APPROVAL_OVERRIDDEN, CHECKPOINT_ESCALATED, CHECKPOINT_REMINDED)
in the events' CHECK, and the projection's `review` column. On SQLite changing the CHECK rebuilds the events table,
which drops its guard triggers: they are installed again at the end."""

from django.db import migrations, models

from guards.triggers import GuardedTable, reinstall_operation


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0011_artifact_read'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='jobspec',
            options={'ordering': ['created_at', 'job_id'], 'permissions': [('submit_job', 'Can submit jobs'), ('approve_job', 'Can approve or reject checkpoints'), ('operate_job', 'Can retry or cancel jobs'), ('spawn_job', 'Can spawn child jobs'), ('rerun_job', 'Can rerun agents of a job'), ('override_approval', 'Can open a checkpoint without its approvals (break-glass)')]},
        ),
        migrations.RemoveConstraint(
            model_name='jobevent',
            name='jobevent_type_valid',
        ),
        migrations.AddField(
            model_name='jobstate',
            name='review',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='jobevent',
            name='event_type',
            field=models.CharField(choices=[('BLUEPRINT_SUBMITTED', 'Blueprint Submitted'), ('IDEA_SUBMITTED', 'Idea Submitted'), ('STEP_STARTED', 'Step Started'), ('BLUEPRINT_PROPOSED', 'Blueprint Proposed'), ('STRATEGY_SPEC_PROPOSED', 'Strategy Spec Proposed'), ('RUNSPEC_COMPILED', 'Runspec Compiled'), ('TRACE_PREVIEW_COMPLETED', 'Trace Preview Completed'), ('RUN_COMPLETED', 'Run Completed'), ('GATES_COMPLETED', 'Gates Completed'), ('REGISTRY_UPDATED', 'Registry Updated'), ('REPORT_COMPLETED', 'Report Completed'), ('IMPROVEMENTS_PROPOSED', 'Improvements Proposed'), ('WAITING_APPROVAL', 'Waiting Approval'), ('APPROVED', 'Approved'), ('REJECTED', 'Rejected'), ('APPROVAL_OVERRIDDEN', 'Approval Overridden'), ('CHECKPOINT_ESCALATED', 'Checkpoint Escalated'), ('CHECKPOINT_REMINDED', 'Checkpoint Reminded'), ('STEP_FAILED', 'Step Failed'), ('ERROR', 'Error'), ('RETRY_REQUESTED', 'Retry Requested'), ('CANCELLED', 'Cancelled'), ('RERUN_REQUESTED', 'Rerun Requested'), ('RERUN_COMPLETED', 'Rerun Completed'), ('JOB_SPAWNED', 'Job Spawned'), ('STOPPED_BUDGET', 'Stopped Budget'), ('DONE', 'Done')], max_length=32),
        ),
        migrations.AddConstraint(
            model_name='jobevent',
            constraint=models.CheckConstraint(condition=models.Q(('event_type__in', ['BLUEPRINT_SUBMITTED', 'IDEA_SUBMITTED', 'STEP_STARTED', 'BLUEPRINT_PROPOSED', 'STRATEGY_SPEC_PROPOSED', 'RUNSPEC_COMPILED', 'TRACE_PREVIEW_COMPLETED', 'RUN_COMPLETED', 'GATES_COMPLETED', 'REGISTRY_UPDATED', 'REPORT_COMPLETED', 'IMPROVEMENTS_PROPOSED', 'WAITING_APPROVAL', 'APPROVED', 'REJECTED', 'APPROVAL_OVERRIDDEN', 'CHECKPOINT_ESCALATED', 'CHECKPOINT_REMINDED', 'STEP_FAILED', 'ERROR', 'RETRY_REQUESTED', 'CANCELLED', 'RERUN_REQUESTED', 'RERUN_COMPLETED', 'JOB_SPAWNED', 'STOPPED_BUDGET', 'DONE'])), name='jobevent_type_valid'),
        ),
        reinstall_operation(GuardedTable(table="jobs_jobevent", pk="id", seq_column="seq", seq_scope="job_id",
                                         unique=(("job_id", "seq"),))),
    ]
