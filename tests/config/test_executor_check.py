"""DEFAULT_EXECUTOR is checked against the executor registry by a system check
(training.checks, training.E001): settings cannot import the app that holds the registry."""

from __future__ import annotations

from django.core import checks

from training.checks import check_default_executor
from training.executors import EXECUTORS


def test_every_registered_kind_passes(settings):
    for kind in EXECUTORS.kinds():
        settings.DEFAULT_EXECUTOR = kind
        assert check_default_executor() == []


def test_an_unknown_kind_is_an_error_naming_the_registered_ones(settings):
    settings.DEFAULT_EXECUTOR = "lambda"
    [error] = check_default_executor()
    assert error.id == "training.E001" and error.level == checks.ERROR
    assert error.msg == "DEFAULT_EXECUTOR='lambda' must be one of local, runpod"
    assert "training.executors.EXECUTORS" in error.hint


def test_the_check_is_registered_with_django(settings):
    settings.DEFAULT_EXECUTOR = "lambda"
    assert "training.E001" in {message.id for message in checks.run_checks()}
    settings.DEFAULT_EXECUTOR = "local"
    assert "training.E001" not in {message.id for message in checks.run_checks()}
