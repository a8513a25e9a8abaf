"""The project as an app, so its system checks (config/checks.py) are registered at start-up."""

from django.apps import AppConfig
from django.core import checks


class ProjectConfig(AppConfig):
    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from . import checks as project_checks

        checks.register(project_checks.check_secret_key, checks.Tags.security, deploy=True)
