"""`manage.py download JOB_ID --what adapter|package|metrics-csv|metrics-json [-o FILE]`.

Copies one of a completed job's files from storage to this machine, the same file the admin's
buttons and the API's signed links serve (artifacts/packaging.py builds it on first use):

    python manage.py download 3f2b... --what adapter                 # ./<job name>-adapter.zip
    python manage.py download 3f2b... --what package -o /tmp/pkg.zip
    python manage.py download 3f2b... --what metrics-csv -o reports/  # into a folder, own name

An operator's command: whoever can run manage.py can read every job, so there is no user to
check; the download is audited with no user and "manage.py download" as its client.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from artifacts import packaging, services
from training.models import TrainingJob

WHAT = {
    "adapter": ("adapters", ""),
    "package": ("deployment-package", ""),
    "metrics-csv": ("metrics", "csv"),
    "metrics-json": ("metrics", "json"),
}


class Command(BaseCommand):
    help = "Save a completed job's adapter ZIP, deployment package or metrics (CSV/JSON) to a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", help="the job's id (as in the admin or the API)")
        parser.add_argument("--what", choices=sorted(WHAT), default="adapter",
                            help="which file (default: adapter)")
        parser.add_argument("-o", "--output", type=Path, default=Path("."),
                            help="file to write, or a folder to write it into under its own name "
                                 "(default: the current folder)")

    def handle(self, *args, **options) -> None:
        try:
            job_id = uuid.UUID(options["job_id"])
        except ValueError as exc:
            raise CommandError(f"{options['job_id']!r} is not a job id (a UUID)") from exc
        job = TrainingJob.objects.select_related("base_model").filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"no training job {job_id}")
        output: Path = options["output"]
        if not output.is_dir() and not output.parent.is_dir():
            raise CommandError(f"{output.parent} is not a folder")
        kind, fmt = WHAT[options["what"]]
        try:
            path, size = services.export_to_file(job, kind, fmt, output)
        except services.NoArtifacts as exc:
            raise CommandError(str(exc)) from exc
        except packaging.ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Saved {options['what']} of '{job.name}' to {path} ({filesizeformat(size)}).")
