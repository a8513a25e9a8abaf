"""The beat schedule for checkpoint retention: prune_finished_checkpoints once a day (03:30 UTC).

A django-celery-beat row, like training's poll schedule, so operators can change or pause it in
the admin. The retention period itself is settings.CHECKPOINT_RETENTION_DAYS.
"""

from django.db import migrations

TASK_NAME = "artifacts: prune checkpoints of finished jobs"
TASK = "artifacts.tasks.prune_finished_checkpoints"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC",
    )
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": TASK,
            "crontab": crontab,
            "interval": None,
            "enabled": True,
            "description": "Deletes checkpoints of jobs finished more than CHECKPOINT_RETENTION_DAYS "
            "ago; keeps adapter, reports and exports; logs the bytes freed.",
        },
    )
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("artifacts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
