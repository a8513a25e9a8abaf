"""Fixtures of the validation tests: a job of `owner` (tests/conftest.py) to validate."""

from __future__ import annotations

import uuid

import pytest

from training.models import BaseModel, TrainingFile, TrainingJob
from training.states import Status


@pytest.fixture
def job(owner, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    training_file = TrainingFile.objects.create(
        name="chat.jsonl", file="datasets/tiny.jsonl", sha256=uuid.uuid4().hex * 2,
        validation_status=TrainingFile.ValidationStatus.VALID, record_count=64, created_by=owner)
    base_model = BaseModel.objects.create(slug=f"m-{uuid.uuid4().hex[:8]}", name="tiny", model_id="tiny",
                                          parameter_count=1, recommended_gpu="CPU_LOCAL")
    return TrainingJob.objects.create(
        training_file=training_file, base_model=base_model, name="elena v1", executor="local",
        configuration={"base_model": "tiny", "hyperparameters": {}}, gpu_type="CPU_LOCAL",
        gpu_pricing_tier="spot", secret="s3cret", created_by=owner, status=Status.TRAINING)


@pytest.fixture(autouse=True)
def whole_sets(settings):
    """These tests check the suite itself: every item, whatever scripts/test.sh caps it to."""
    settings.VALIDATION_MAX_ITEMS = 0
