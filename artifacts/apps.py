from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "artifacts"
    verbose_name = "Artifacts"

    def ready(self) -> None:
        # Subscribes to the job-event hook (Django's idiom for connecting receivers).
        from . import receivers  # noqa: F401
