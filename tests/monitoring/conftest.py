"""Monitoring fixtures: a training job and a worker that signs its reports (the webhook tests')."""

from __future__ import annotations

from tests.webhooks.conftest import job, point, worker

__all__ = ["job", "point", "worker"]
