from django.apps import AppConfig


class ValidationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "validation"
    verbose_name = "Validation"

    def ready(self) -> None:
        # Subscribes to the job-event hook and adds the suite to every worker configuration.
        from . import receivers  # noqa: F401
