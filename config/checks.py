"""Project-level system checks, and the rules for a secret key fit for production.

SECRET_KEY signs the customer download links and the worker's blob links (core/url_signing.py):
whoever knows it can forge either offline. A key written in this repository is public, so it may
only ever run with DEBUG on; settings refuse it otherwise, and `check --deploy` reports it
(config.E001) even where DEBUG is on, with Django's own length rules made an error.

This module imports nothing from Django at the top, because settings import it.
"""

from __future__ import annotations

from typing import Any

# The key the embedded default (no environment, DEBUG on) runs with.
EMBEDDED_SECRET_KEY = "embedded-default-insecure-key-set-DJANGO_SECRET_KEY-in-production"
# Every other key that has been written in this repository's files (docker/.env.example's old
# placeholder, the web image's old build-time key): public, never a production key.
PUBLISHED_SECRET_KEYS = frozenset({
    EMBEDDED_SECRET_KEY,
    "change-me-to-50-random-characters",
    "build-only",
})
# Django's own thresholds (django.core.checks.security.base, W009), here as an error.
MIN_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key_problem(key: str) -> str | None:
    """Why `key` is unfit to sign production links, or None if it is fit."""
    if not key:
        return "the secret key is empty"
    if key == EMBEDDED_SECRET_KEY:
        return "the secret key is the embedded default key, published in this repository"
    if key in PUBLISHED_SECRET_KEYS:
        return "the secret key is published in this repository"
    if key.startswith("django-insecure-"):
        return "the secret key starts with 'django-insecure-' (startproject's development key)"
    if len(key) < MIN_LENGTH:
        return f"the secret key is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < MIN_UNIQUE_CHARACTERS:
        return f"the secret key has fewer than {MIN_UNIQUE_CHARACTERS} different characters"
    return None


def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list:
    """Deploy check: config.E001 when SECRET_KEY is public, empty or weak."""
    from django.conf import settings
    from django.core.checks import Error

    problem = secret_key_problem(settings.SECRET_KEY)
    if problem is None:
        return []
    return [Error(f"DJANGO_SECRET_KEY is not fit for production: {problem}.",
                  hint=f"Set DJANGO_SECRET_KEY to a long random value; {GENERATE_HINT}.",
                  id="config.E001")]
