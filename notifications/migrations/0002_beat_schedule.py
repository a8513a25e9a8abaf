"""The notifications' beat schedule, as django-celery-beat rows editable in the admin (Periodic
tasks): the delivery sweep every minute, digests every 5 minutes (each user's hourly or daily
period decides whether one is due), and the daily training report at 08:00 in the configured
time zone (TIME_ZONE). Reversing removes the rows.
"""

from django.conf import settings
from django.db import migrations

SWEEP = ("notifications: deliver due notifications", "notifications.tasks.deliver_due_notifications")
DIGESTS = ("notifications: send digests", "notifications.tasks.send_digests")
REPORT = ("notifications: daily training report", "notifications.tasks.send_daily_report")


def create_schedule(apps, schema_editor):
    from django.utils import timezone

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    five, _ = IntervalSchedule.objects.get_or_create(every=300, period="seconds")
    eight, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="8", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE)
    rows = [
        (SWEEP, {"interval": minute, "expire_seconds": 120,
                 "description": "Sends notifications whose retry time came, and any a lost task or a killed "
                                "worker left behind."}),
        (DIGESTS, {"interval": five, "expire_seconds": 600,
                   "description": "Sends the hourly and daily digests of users who chose one."}),
        (REPORT, {"crontab": eight,
                  "description": "Builds the daily training report of the last 24 hours, stores it and emails "
                                 "it to subscribers."}),
    ]
    for (name, task), defaults in rows:
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "enabled": True, **defaults})
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[SWEEP[0], DIGESTS[0], REPORT[0]]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
