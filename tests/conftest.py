"""Shared fixtures: users in the three roles, services that must exist in CI.

Tests run against PostgreSQL and Redis (the README's test command points DATABASE_URL and
REDIS_URL at them). A test that needs one of them and finds it missing fails under CI=true and
is skipped, with the reason, on a developer's machine without them.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, url: str) -> None:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {parsed.hostname}:{parsed.port} ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it", pytrace=False)
        pytest.skip(message)


def pytest_configure(config) -> None:
    if IN_CI:
        db = os.environ.get("DATABASE_URL", "")
        if not db.startswith(("postgres://", "postgresql://")):
            raise pytest.UsageError("CI=true requires DATABASE_URL to point at PostgreSQL")
        if not os.environ.get("REDIS_URL"):
            raise pytest.UsageError("CI=true requires REDIS_URL")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true nothing may skip: a test that would skip (a missing service, package or
    browser) fails instead, whatever helper decided to skip it."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, where skipping is not allowed: {reason}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items) -> None:
    """Run serialized-rollback transactional tests before the other transactional ones.

    A plain transaction=True test ends with a flush that recreates content types under new ids;
    a serialized test running after it then fails at setup restoring the old rows.
    """

    def key(item) -> tuple[bool, bool]:
        marker = item.get_closest_marker("django_db")
        kwargs = marker.kwargs if marker else {}
        # fixturenames holds the whole closure, so fixtures that pull these in indirectly count.
        names = set(getattr(item, "fixturenames", ()))
        transactional = bool(kwargs.get("transaction")) or bool(
            names & {"live_server", "transactional_db", "django_db_serialized_rollback"})
        if not transactional:
            return (False, False)
        serialized = bool(kwargs.get("serialized_rollback")) or "django_db_serialized_rollback" in names
        return (True, not serialized)

    items.sort(key=key)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    require_service("Redis", url)
    return url


@pytest.fixture
def postgres_required(settings) -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        if IN_CI:
            pytest.fail("this test needs PostgreSQL; CI requires it", pytrace=False)
        pytest.skip("this test needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olivia", "olivia@example.com", "pw-olivia-123")


@pytest.fixture
def teammate(django_user_model, settings):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("tomas", "tomas@example.com", "pw-tomas-123")
    user.groups.add(Group.objects.get_or_create(name=settings.TRAINING_ALL_JOBS_GROUP)[0])
    return user


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("oscar", "oscar@example.com", "pw-oscar-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("sam", "sam@example.com", "pw-sam-123")


def ensure_catalogue() -> None:
    """Re-seed the presets and base models of migration 0002 if a transactional test that ran
    earlier flushed them (a flush does not re-run data migrations)."""
    import importlib

    from django.apps import apps

    from training.models import BaseModel

    if not BaseModel.objects.filter(slug="smollm2-135m-instruct").exists():
        importlib.import_module("training.migrations.0002_seed_presets_and_base_models").seed(apps, None)


class DeliveryRecorder:
    """Stands in for a Celery task's `.delay`: records what would have been sent."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *args, **kwargs) -> None:
        self.calls.append(args)


def record_deliveries(monkeypatch) -> dict[str, DeliveryRecorder]:
    """Replace the job tasks' delivery with recorders, so a start or cancel launches no worker
    (the real path is covered by the execution integration tests)."""
    import training.tasks as tasks

    recorders = {"launch_job": DeliveryRecorder(), "stop_job_execution": DeliveryRecorder()}
    for name, recorder in recorders.items():
        monkeypatch.setattr(getattr(tasks, name), "delay", recorder)
    return recorders


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny random Llama with a locally made tokenizer, built once per test session."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
