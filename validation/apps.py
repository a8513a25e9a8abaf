from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ValidationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "validation"
    verbose_name = "Validation"

    def ready(self) -> None:
        # Subscribes to the job-event hook and adds the suite to every worker configuration.
        from . import receivers  # noqa: F401
        from .review import ensure_qa_group

        # After every migrate (when the permissions exist): the QA group and what it may do.
        post_migrate.connect(ensure_qa_group, sender=self, dispatch_uid="validation.ensure_qa_group")
