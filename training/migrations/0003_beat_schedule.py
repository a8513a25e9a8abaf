"""The beat schedule: poll_active_jobs every 15 s, as a django-celery-beat PeriodicTask.

A row rather than CELERY_BEAT_SCHEDULE so operators can change the period or pause polling in
the admin (Periodic tasks) without a deploy. Reversing removes the row.
"""

from django.db import migrations

TASK_NAME = "training: poll active jobs"
TASK = "training.tasks.poll_active_jobs"
EVERY_SECONDS = 15


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": TASK,
            "interval": interval,
            "enabled": True,
            # A poll older than the period is superseded by the next one.
            "expire_seconds": EVERY_SECONDS * 2,
            "description": "Polls each active training job: worker state, heartbeat age, cost; "
            "starts recovery when a worker is gone without a terminal report.",
        },
    )
    # The DatabaseScheduler reloads its schedule when this marker changes.
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_seed_presets_and_base_models"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
