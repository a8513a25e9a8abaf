"""Settings come from the environment, fail fast on bad values, and pass Django's deploy check."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    # Generated per run: no key written in the repository is ever used outside DEBUG.
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "lora.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "CELERY_TASK_ALWAYS_EAGER"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_settings_pass_the_deploy_check():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not a boolean"),
        ("HEARTBEAT_INTERVAL_SECONDS", "soon", "HEARTBEAT_INTERVAL_SECONDS='soon' is not an integer"),
        ("STORAGE_BACKEND", "ftp", "STORAGE_BACKEND='ftp' must be one of filesystem, s3"),
        ("DEFAULT_EXECUTOR", "lambda", "DEFAULT_EXECUTOR='lambda' must be one of local, runpod"),
        ("DEFAULT_GPU_TYPE", "A100_TYPO", "DEFAULT_GPU_TYPE='A100_TYPO' is not in GPU_TABLE"),
        ("GPU_TABLE", "{not json", "GPU_TABLE is not valid JSON"),
    ],
)
def test_bad_values_fail_at_start_with_the_variable_named(variable, value, message):
    result = run_manage("check", env={**PRODUCTION, variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_no_configuration_is_the_embedded_default(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.STORAGE_BACKEND,"
        " s.DEFAULT_EXECUTOR, s.EMAIL_BACKEND)"
    )
    result = run_manage("shell", "-c", code, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == [
        "django.db.backends.sqlite3", "True", "filesystem", "local",
        "django.core.mail.backends.console.EmailBackend",
    ]
