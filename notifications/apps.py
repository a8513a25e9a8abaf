from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Subscribes to the job-event hook, registers the channels and the renderers of the
        # kinds that digests and reports make.
        from . import channels, digests, messages, receivers, reports  # noqa: F401

        messages.RENDERERS.update({digests.KIND: digests.build_digest_message,
                                   reports.KIND: reports.build_report_message})
