"""Validation's beat schedule, a django-celery-beat row editable in the admin (Periodic tasks):
every 5 minutes, a new report version for each job whose people's scores changed since its last
report and have been quiet for two minutes. Reversing removes the row."""

from django.db import migrations

REMAKE = ("validation: new report after scoring", "validation.report_tasks.regenerate_reports")


def create_schedule(apps, schema_editor):
    from django.utils import timezone

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    five, _ = IntervalSchedule.objects.get_or_create(every=300, period="seconds")
    PeriodicTask.objects.update_or_create(name=REMAKE[0], defaults={
        "task": REMAKE[1], "enabled": True, "interval": five, "expire_seconds": 600,
        "description": "Makes a new validation report version for each job whose people's scores changed "
                       "since its last report (once they have been quiet for two minutes)."})
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=REMAKE[0]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("validation", "0002_validationreport"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
