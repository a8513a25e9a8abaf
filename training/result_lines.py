"""Lines an app above `training` adds to a finished job's summary in `manage.py train`.

    @extend_job_summary
    def validation_lines(job) -> list[str]: ...

Registered from an AppConfig.ready(); `training` never imports the apps that register (the
validation app adds its benchmark table this way). A contributor that fails is logged and
skipped: the summary of a finished job is never lost to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

SummaryLines = Callable[[Any], list[str]]
_contributors: list[SummaryLines] = []


def extend_job_summary(contributor: SummaryLines) -> SummaryLines:
    if contributor not in _contributors:
        _contributors.append(contributor)
    return contributor


def job_summary_lines(job: Any) -> list[str]:
    lines: list[str] = []
    for contributor in _contributors:
        try:
            lines.extend(contributor(job))
        except Exception:  # noqa: BLE001 - a section's failure must not cost the rest of the summary
            logger.exception("job %s: a summary section failed", getattr(job, "pk", None))
    return lines
