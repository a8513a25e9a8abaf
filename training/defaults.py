"""What a job gets for every choice its creator leaves empty: one source, read by the job service,
the REST API, the admin form and `manage.py train`.

An estimate must match the job it predicts, so every entry point resolves an empty choice here
rather than restating the rule: the base model, the preset, the executor, the GPU and the
pricing tier, and which datasets can be trained at all.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from .models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    TrainingFile,
    TrainingJob,
)

# The preset a job gets when neither a preset, a template nor any override says otherwise.
DEFAULT_PRESET_SLUG = "balanced"
# Spot is 50-80% cheaper; interrupted jobs resume from their last checkpoint.
DEFAULT_PRICING_TIER = TrainingJob.PricingTier.SPOT
# An embedded model on the local executor runs on this machine's CPU (a key of GPU_TABLE).
LOCAL_EMBEDDED_GPU_TYPE = "CPU_LOCAL"


def default_base_model() -> BaseModel | None:
    """The embedded model (it runs here, with no download), else the first in the catalogue."""
    return BaseModel.objects.filter(is_embedded=True).first() or BaseModel.objects.first()


def default_preset(*, active_only: bool = False) -> HyperparameterPreset | None:
    """The `balanced` preset; `active_only` for a form that offers active presets only."""
    presets = HyperparameterPreset.objects.filter(slug=DEFAULT_PRESET_SLUG)
    if active_only:
        presets = presets.filter(is_active=True)
    return presets.first()


def preset_for(preset: HyperparameterPreset | None, *, template: ConfigurationTemplate | None = None,
               overrides: dict[str, Any] | None = None) -> HyperparameterPreset | None:
    """The preset a configuration starts from: the one named, else the default preset unless a
    template or overrides configure the job instead."""
    if preset is None and template is None and not overrides:
        return default_preset()
    return preset


def default_executor() -> str:
    """settings.DEFAULT_EXECUTOR (a registered kind: system check training.E001)."""
    return settings.DEFAULT_EXECUTOR


def default_gpu_type(executor: str, base_model: BaseModel) -> str:
    """The GPU a job runs on when none is named: this machine's CPU for an embedded model run
    locally, else the base model's recommended GPU."""
    if executor == "local" and base_model.is_embedded:
        return LOCAL_EMBEDDED_GPU_TYPE
    return base_model.recommended_gpu


def trainable_files() -> QuerySet[TrainingFile]:
    """The datasets a job may train on (TrainingFile.is_trainable, as a query)."""
    return TrainingFile.objects.filter(validation_status=TrainingFile.ValidationStatus.VALID)


def require_trainable(training_file: TrainingFile) -> None:
    """Refuse a dataset that is not (yet) valid, naming why, under `training_file`."""
    if not training_file.is_trainable:
        raise ValidationError({"training_file": training_file.untrainable_reason()})
