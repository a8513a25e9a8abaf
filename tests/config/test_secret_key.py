"""Production never runs on a key written in the repository (issue 18, item 1).

Each case starts Django in a subprocess with the environment a deployment would have, because
settings are read once per process.
"""

from __future__ import annotations

import secrets

import pytest

from tests.config.test_settings import run_manage

# What docker-compose gives the app, without the secret key.
PRODUCTION_WITHOUT_KEY = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "lora.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
EMBEDDED_KEY = "embedded-default-insecure-key-set-DJANGO_SECRET_KEY-in-production"
OLD_ENV_EXAMPLE_PLACEHOLDER = "change-me-to-50-random-characters"


def test_production_without_a_secret_key_refuses_to_start():
    result = run_manage("check", env=PRODUCTION_WITHOUT_KEY)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make one


@pytest.mark.parametrize("key", [EMBEDDED_KEY, OLD_ENV_EXAMPLE_PLACEHOLDER])
def test_production_with_a_key_from_the_repository_refuses_to_start(key):
    result = run_manage("check", env={**PRODUCTION_WITHOUT_KEY, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a key published in this repository" in result.stderr


def test_the_test_command_environment_keeps_debug_and_the_embedded_key():
    # scripts/test.sh sets DATABASE_URL, REDIS_URL and CELERY_TASK_ALWAYS_EAGER, no key, no DEBUG.
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "REDIS_URL": "redis://127.0.0.1:6379/15",
           "CELERY_TASK_ALWAYS_EAGER": "true"}
    result = run_manage("shell", "-c", "from django.conf import settings as s; print(s.DEBUG, s.SECRET_KEY)", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", EMBEDDED_KEY]


def test_no_environment_is_debug_with_the_embedded_key():
    result = run_manage("shell", "-c", "from django.conf import settings as s; print(s.DEBUG, s.SECRET_KEY)", env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", EMBEDDED_KEY]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "the embedded default key"),  # the embedded default, DEBUG on
        ({"DJANGO_DEBUG": "true", "DJANGO_SECRET_KEY": OLD_ENV_EXAMPLE_PLACEHOLDER}, "published in this repository"),
        ({"DJANGO_SECRET_KEY": "short-but-unique-0123456789"}, "shorter than 50 characters"),
        ({"DJANGO_SECRET_KEY": "ab" * 40}, "fewer than 5 different characters"),
    ],
)
def test_the_deploy_check_fails_on_a_weak_or_public_key(env, problem):
    production = {k: v for k, v in PRODUCTION_WITHOUT_KEY.items() if k != "DJANGO_DEBUG"}
    result = run_manage("check", "--deploy", env={**production, **env})
    assert result.returncode != 0, result.stdout
    assert "config.E001" in result.stderr and problem in result.stderr


def test_the_deploy_check_accepts_a_random_key():
    env = {**PRODUCTION_WITHOUT_KEY, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (EMBEDDED_KEY, "embedded default"),
        (OLD_ENV_EXAMPLE_PLACEHOLDER, "published in this repository"),
        ("django-insecure-" + secrets.token_urlsafe(50), "django-insecure-"),
        ("x" * 80, "fewer than 5 different characters"),
        (secrets.token_urlsafe(20), "shorter than 50 characters"),
        ("", "empty"),
    ],
    # Fixed ids: the random keys would differ between pytest-xdist workers' collections.
    ids=["embedded", "env-example", "django-insecure", "one-character", "short", "empty"],
)
def test_secret_key_problem_names_the_reason(key, problem):
    from config import checks

    assert problem in checks.secret_key_problem(key)


def test_secret_key_problem_accepts_a_random_key():
    from config import checks

    assert checks.secret_key_problem(secrets.token_urlsafe(50)) is None


FORGE = f"""
import time, uuid
from django.core import signing
from django.test import Client
from core import url_signing
repository_key = {EMBEDDED_KEY!r}
job_id = str(uuid.uuid4())
payload = {{"j": job_id, "k": "adapter", "f": "", "u": 1, "x": int(time.time()) + 3600}}
token = signing.dumps(payload, key=repository_key, salt=url_signing.DOWNLOAD_SALT, compress=True)
blob = signing.dumps({{"k": f"jobs/{{job_id}}/adapter/adapter_model.safetensors", "m": "GET",
                      "x": int(time.time()) + 3600}}, key=repository_key, salt=url_signing.BLOB_SALT,
                     compress=True)
client = Client(HTTP_HOST="lora.example.com")
download = client.get(f"/api/artifacts/{{job_id}}/{{token}}", secure=True)
worker_blob = client.get(f"/api/worker/blob/{{blob}}", secure=True)
print("RESULT", download.status_code, download.json()["detail"], "|", worker_blob.status_code)
"""


def test_a_link_forged_with_the_repository_key_is_refused_in_production():
    # The attack of the issue: sign a download link and a worker blob link offline with the key
    # in the repository. In production settings (a real key) both are refused before any lookup.
    env = {**PRODUCTION_WITHOUT_KEY, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    result = run_manage("shell", "-c", FORGE, env=env)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    assert line == "RESULT 403 This download link is invalid: bad signature. | 403"
