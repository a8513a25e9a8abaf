"""Admin forms: creating a job (with its estimate first) and uploading a dataset."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.html import format_html_join

from training import defaults
from training.executors import EXECUTORS
from training.models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    TrainingJob,
)
from training.services import jobs as job_services
from training.services.estimate import estimate_for_configuration


def preset_help() -> str:
    presets = HyperparameterPreset.objects.filter(is_active=True)
    return format_html_join(
        "", "<p><strong>{}</strong>: {} <em>Best for: {}</em></p>",
        ((p.name, p.explanation, p.best_for) for p in presets),
    )


class TrainingJobCreateForm(forms.Form):
    """Dataset + base model + preset (or template) + options. `estimate()` previews what
    `create()` would store; both go through the same services as the API."""

    training_file = forms.ModelChoiceField(
        queryset=defaults.trainable_files(),
        label="Dataset", help_text="Only datasets that passed validation can be trained.",
    )
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.filter(is_active=True), required=False,
                                        help_text="Empty: the template's model, or the embedded model.")
    preset = forms.ModelChoiceField(queryset=HyperparameterPreset.objects.filter(is_active=True), required=False)
    template = forms.ModelChoiceField(queryset=ConfigurationTemplate.objects.select_related("base_model", "preset"),
                                      required=False, help_text="Optional: a saved configuration; the preset above, if any, wins.")
    name = forms.CharField(max_length=255, required=False, help_text="Empty: dataset · preset · date.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. elena, first-run.")
    client = forms.CharField(max_length=255, required=False)
    project = forms.CharField(max_length=255, required=False)
    # A callable for both: read when the form is built, so the registry and settings are current.
    executor = forms.ChoiceField(choices=EXECUTORS.choices, initial=defaults.default_executor)
    gpu_type = forms.ChoiceField(required=False, help_text="Empty: the base model's recommended GPU.")
    gpu_pricing_tier = forms.ChoiceField(choices=TrainingJob.PricingTier.choices, initial=defaults.DEFAULT_PRICING_TIER,
                                         label="GPU pricing", help_text="Spot is 50-80% cheaper and may be interrupted; "
                                         "interrupted jobs resume from their last checkpoint.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["preset"].help_text = preset_help()
        self.fields["gpu_type"].choices = [("", "Recommended for the model")] + [
            (key, row.get("label", key)) for key, row in settings.GPU_TABLE.items()
        ]
        preset = defaults.default_preset(active_only=True)
        if preset is not None:
            self.fields["preset"].initial = preset.pk

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("preset") and not data.get("template"):
            self.add_error("preset", "Pick a preset or a template.")
        return data

    # --- what the services get --------------------------------------------------------------

    def resolved_base_model(self) -> BaseModel:
        data = self.cleaned_data
        model = data.get("base_model") or (data["template"].base_model if data.get("template") else None)
        return model or defaults.default_base_model()

    def overrides(self) -> dict[str, Any]:
        data = self.cleaned_data
        overrides = {"executor": data["executor"], "gpu_pricing_tier": data["gpu_pricing_tier"]}
        if data.get("gpu_type"):
            overrides["gpu_type"] = data["gpu_type"]
        return overrides

    def tag_names(self) -> list[str]:
        return [t.strip().lower() for t in self.cleaned_data.get("tags", "").split(",") if t.strip()]

    def estimate(self) -> dict[str, Any] | None:
        """The estimate create() would store; None (with errors added) if the configuration is bad."""
        data = self.cleaned_data
        base_model = self.resolved_base_model()
        try:
            configuration = job_services.resolve_configuration(
                base_model=base_model, preset=data.get("preset"), template=data.get("template"),
                overrides=self.overrides(),
            )
        except ValidationError as exc:
            self.add_service_error(exc)
            return None
        return estimate_for_configuration(training_file=data["training_file"], base_model=base_model,
                                          configuration=configuration) | {"configuration": configuration}

    def create(self, user) -> TrainingJob | None:
        data = self.cleaned_data
        try:
            tags = self.tag_names()
            for tag in tags:
                forms.SlugField().clean(tag)
            return job_services.create_job(
                user=user, training_file=data["training_file"], base_model=self.resolved_base_model(),
                preset=data.get("preset"), template=data.get("template"), overrides=self.overrides(),
                name=data.get("name", ""), notes=data.get("notes", ""), client=data.get("client", ""),
                project=data.get("project", ""), tags=tags,
            )
        except ValidationError as exc:
            if not hasattr(exc, "error_dict") and exc.messages and "slug" in " ".join(exc.messages).lower():
                self.add_error("tags", "Tags may contain letters, numbers, hyphens and underscores only.")
            else:
                self.add_service_error(exc)
            return None

    def add_service_error(self, exc: ValidationError) -> None:
        """A service's ValidationError on this form: on the field it names, else on the form."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for field, errors in exc.error_dict.items():
            messages = [m for e in errors for m in e.messages]
            if field in self.fields:
                self.add_error(field, messages)
            else:
                self.add_error(None, [f"{field}: {m}" for m in messages])


class TrainingFileUploadForm(forms.Form):
    file = forms.FileField(help_text="A .json array of records or a .jsonl file (one record per line): "
                                     "chat messages, training pairs, or prompt/completion.")
    name = forms.CharField(max_length=255, required=False, help_text="Empty: the file's name.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
