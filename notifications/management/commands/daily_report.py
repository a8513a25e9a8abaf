"""`manage.py daily_report [--print] [--send] [--user USERNAME]`: the daily training report.

Builds the report of the last 24 hours (notifications/reports.py) and stores it as a
DailyReport, as the 08:00 beat task does:

    python manage.py daily_report --print            # build, store, print the Markdown
    python manage.py daily_report --send             # ... and email it to its subscribers
    python manage.py daily_report --print --user olivia   # the report olivia would get

`--send` emails the report of every job to subscribers who may see every job and each other
subscriber a report of their own jobs, exactly as the beat task does.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from notifications import reports


class Command(BaseCommand):
    help = "Build (and store) the daily training report of the last 24 hours; print it or email it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--print", action="store_true", dest="print_text", help="print the report (Markdown)")
        parser.add_argument("--send", action="store_true",
                            help="also email it to every user who asked for the daily report")
        parser.add_argument("--user", help="build the report of the jobs this user may see (not with --send)")

    def handle(self, *args, print_text: bool = False, send: bool = False, user: str | None = None, **options) -> None:
        if user and send:
            raise CommandError("--user builds one user's report to look at; --send sends each subscriber their own.")
        owner = None
        if user:
            owner = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: user}).first()
            if owner is None:
                raise CommandError(f"There is no user {user!r}.")
        report = reports.build_daily_report(user=owner)
        if print_text:
            self.stdout.write(report.text)
        else:
            self.stdout.write(f"Stored {report} (#{report.pk}): {reports.headline(report.data)}.")
        if send:
            sent = reports.send_daily_report(report)
            for row in sent:
                row.refresh_from_db()
                self.stdout.write(f"{row.recipient.email or row.recipient}: {row.status}"
                                  + (f" ({row.last_error})" if row.last_error else ""))
            if not sent:
                self.stdout.write("Nobody asked for the daily report (NotificationSettings.daily_report).")
