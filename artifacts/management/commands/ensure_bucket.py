"""`manage.py ensure_bucket`: create the artifact bucket (or MEDIA_ROOT) if it is missing."""

from django.core.management.base import BaseCommand

from core import storage


class Command(BaseCommand):
    help = "Create the storage bucket (STORAGE_BACKEND=s3) or MEDIA_ROOT if missing; safe to rerun."

    def handle(self, *args, **options) -> None:
        backend = storage.default_storage()
        name = f"bucket {backend.bucket.name}" if storage.is_s3(backend) else f"directory {backend.location}"
        created = storage.ensure_bucket()
        self.stdout.write(f"created {name}" if created else f"{name} exists")
