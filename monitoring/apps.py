"""Monitoring: what the metrics of a job say (trends, anomalies, milestones, quality score).

It reacts to jobs through the job-event hook (training.events); nothing below imports it."""
from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # Connecting the receivers is importing their module (the Django idiom for signals).
        from . import receivers  # noqa: F401
