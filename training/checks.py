"""System checks on settings that only the training app can judge.

config/settings.py cannot import `training` (it is read before any app is loaded), so a setting
naming an executor kind is read as a plain string there and checked here against the registry
(`training.executors.EXECUTORS`), the one list of kinds. Registered by TrainingConfig.ready(), so
`manage.py check`, `migrate` and `runserver` refuse to go on with an unknown kind.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error

from .executors import EXECUTORS


def check_default_executor(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """training.E001 when DEFAULT_EXECUTOR names no registered executor kind."""
    kind = settings.DEFAULT_EXECUTOR
    if kind in EXECUTORS:
        return []
    return [Error(f"DEFAULT_EXECUTOR={kind!r} must be one of {', '.join(EXECUTORS.kinds())}",
                  hint="Set DEFAULT_EXECUTOR to the kind of a registered executor "
                       "(training.executors.EXECUTORS).",
                  id="training.E001")]
