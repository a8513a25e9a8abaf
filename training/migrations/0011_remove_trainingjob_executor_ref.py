"""executor_ref is gone: its per-attempt state lives on JobAttempt rows (0009, 0010)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0010_job_attempts_from_executor_ref"),
    ]

    operations = [
        migrations.RemoveField(model_name="trainingjob", name="executor_ref"),
    ]
