from django.apps import AppConfig
from django.core import checks


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # Imported once the app registry is ready (Django's place for it): the executors are
        # plug-ins that may use the models.
        from .checks import check_default_executor

        checks.register(check_default_executor)
