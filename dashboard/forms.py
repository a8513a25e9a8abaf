"""Admin forms: creating a job (with its estimate first) and uploading a dataset.

Both are the admin's `add_form`s (ModelAdmin.get_form picks them for the add page, as
django.contrib.auth's UserAdmin does): ModelForms because the admin builds its forms with
modelform_factory, whose fields are the service's inputs rather than the model's columns. Their
clean methods run every check the service would make, so a valid form is always saved: the
admin's save_form hands it to the service (`create()`, `ingest_training_file`), the same path
the API takes.
"""

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
    TrainingFile,
    TrainingJob,
)
from training.services import jobs as job_services
from training.services.datasets import UploadTooLarge, check_upload, upload_limit_message
from training.services.estimate import estimate_for_configuration

# The error code of an upload refused for its size: the admin answers it with 413, as the API does.
UPLOAD_TOO_LARGE = "upload_too_large"
TAGS_MESSAGE = "Tags may contain letters, numbers, hyphens and underscores only."

# The settings the add form offers beside the preset, named as the worker names them so that
# resolve_configuration's refusal (the API's, word for word) lands on its field.
OVERRIDE_FIELDS = ("max_steps", "num_epochs", "learning_rate", "lora_r", "lora_alpha", "per_device_batch_size",
                   "max_seq_length", "checkpoint_interval")
KEEPS_PRESET = " Empty: the preset's value (shown greyed)."


class NumberField(forms.FloatField):
    """A number as typed: "1" is 1 and "0.5" is 0.5, as a JSON body to the API would carry it (so
    the configuration, and a refusal's "(got 0)", read the same from both)."""

    def to_python(self, value):
        number = super().to_python(value)
        return int(number) if number is not None and number.is_integer() else number


def override(kind: type[forms.Field], label: str, help_text: str, empty: str = KEEPS_PRESET) -> forms.Field:
    """An optional setting: only its type is checked here; every range is the worker's
    (WorkerConfig.validate, through resolve_configuration), exactly as for the API."""
    return kind(label=label, required=False, help_text=help_text + empty)


def preset_help() -> str:
    presets = HyperparameterPreset.objects.filter(is_active=True)
    return format_html_join(
        "", "<p><strong>{}</strong>: {} <em>Best for: {}</em></p>",
        ((p.name, p.explanation, p.best_for) for p in presets),
    )


class TrainingJobCreateForm(forms.ModelForm):
    """Dataset + base model + preset (or template) + options. `estimate()` previews what
    `create()` would store; both go through the same services as the API. clean() resolves the
    configuration as create_job will, so its errors show on the field they name."""

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
    # Overrides (OVERRIDE_FIELDS): empty keeps the preset's or template's value.
    max_steps = override(forms.IntegerField, "Max steps", "Stop after this many optimiser steps; -1: as many as "
                         "the epochs take.")
    num_epochs = override(NumberField, "Epochs", "Passes over the training split, e.g. 1 or 0.5.")
    learning_rate = override(forms.FloatField, "Learning rate", "Peak learning rate, e.g. 0.0002 or 2e-4.")
    lora_r = override(forms.IntegerField, "LoRA rank (r)", "Adapter rank: higher learns more, trains slower.")
    lora_alpha = override(forms.IntegerField, "LoRA alpha", "Adapter scaling is alpha / r.")
    per_device_batch_size = override(forms.IntegerField, "Batch size", "Sequences per forward pass.")
    max_seq_length = override(forms.IntegerField, "Max sequence length", "Tokens per conversation; longer ones "
                              "are cut.")
    checkpoint_interval = override(forms.IntegerField, "Checkpoint every N steps", "0: only when interrupted.",
                                   " Empty: about ten checkpoints per job.")

    class Meta:
        model = TrainingJob
        fields = ("training_file", "base_model", "preset", "template", "executor", "gpu_type", "gpu_pricing_tier",
                  *OVERRIDE_FIELDS, "name", "notes", "tags", "client", "project")
        # Every field is declared above: create_job's inputs, not the model's columns (tags is
        # comma-separated text, base_model may be left empty). Excluded from the ModelForm's own
        # handling, so it neither initialises, fills nor validates a TrainingJob of its own.
        exclude = fields

    # What resolve_configuration made of a valid form (set by clean()).
    configuration: dict[str, Any]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["preset"].help_text = preset_help()
        self.fields["gpu_type"].choices = [("", "Recommended for the model")] + [
            (key, row.get("label", key)) for key, row in settings.GPU_TABLE.items()
        ]
        preset = defaults.default_preset(active_only=True)
        if preset is not None:
            self.fields["preset"].initial = preset.pk
            self.show_defaults(preset.hyperparameters())

    def show_defaults(self, hyperparameters: dict[str, Any]) -> None:
        """Each empty override's placeholder: the value the job gets without it."""
        for name in OVERRIDE_FIELDS:
            value = hyperparameters.get(name)
            # 3.0 as 3 and 0.0002 as 0.0002, as the page's script writes them.
            text = format(value, "g") if isinstance(value, float) else str(value)
            self.fields[name].widget.attrs["placeholder"] = "" if value is None else text

    def clean_tags(self) -> str:
        slug = forms.SlugField()
        try:
            for tag in self.tag_names():
                slug.clean(tag)
        except ValidationError as exc:
            raise ValidationError(TAGS_MESSAGE) from exc
        return self.cleaned_data["tags"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("preset") and not data.get("template"):
            self.add_error("preset", "Pick a preset or a template.")
        if not self.errors:
            # What create_job would refuse, refused here: a valid form is always created.
            try:
                defaults.require_trainable(data["training_file"])
                self.configuration = job_services.resolve_configuration(
                    base_model=self.resolved_base_model(), preset=data.get("preset"), template=data.get("template"),
                    overrides=self.overrides(),
                )
                self.show_defaults(self.configuration["hyperparameters"])
                job_services.refuse_unstorable_estimate(
                    estimate_for_configuration(training_file=data["training_file"], base_model=self.resolved_base_model(),
                                               configuration=self.configuration),
                    self.configuration["hyperparameters"])
            except ValidationError as exc:
                self.add_service_error(exc)
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
        overrides.update({name: data[name] for name in OVERRIDE_FIELDS if data.get(name) is not None})
        return overrides

    def tag_names(self) -> list[str]:
        return [t.strip().lower() for t in self.cleaned_data.get("tags", "").split(",") if t.strip()]

    def estimate(self) -> dict[str, Any] | None:
        """The estimate create() would store; None if the form is not valid (its errors say why)."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        return estimate_for_configuration(training_file=data["training_file"], base_model=self.resolved_base_model(),
                                          configuration=self.configuration) | {"configuration": self.configuration}

    def create(self, user) -> TrainingJob:
        """The job, created by job_services.create_job (the API's path) from a valid form."""
        data = self.cleaned_data
        return job_services.create_job(
            user=user, training_file=data["training_file"], base_model=self.resolved_base_model(),
            preset=data.get("preset"), template=data.get("template"), overrides=self.overrides(),
            name=data.get("name", ""), notes=data.get("notes", ""), client=data.get("client", ""),
            project=data.get("project", ""), tags=self.tag_names(),
        )

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


class TrainingFileUploadForm(forms.ModelForm):
    """A dataset upload, refused here for whatever ingest_training_file would refuse before
    reading it (its name, its size), so a valid upload is always stored."""

    # True when the upload handler stopped the file at DATASET_MAX_UPLOAD_BYTES (or never read
    # it); the admin's get_form sets it from the request (training.uploads.upload_too_large).
    upload_refused: bool = False

    file = forms.FileField(help_text="A .json array of records or a .jsonl file (one record per line): "
                                     "chat messages, training pairs, or prompt/completion.")
    name = forms.CharField(max_length=255, required=False, help_text="Empty: the file's name.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    class Meta:
        model = TrainingFile
        fields = ("file", "name", "description")
        # Declared above: ingest_training_file's inputs; it builds the record (blob, sha256, owner).
        exclude = fields

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        try:
            check_upload(uploaded)
        except UploadTooLarge as exc:
            raise ValidationError(str(exc), code=UPLOAD_TOO_LARGE) from exc
        except ValidationError as exc:
            raise ValidationError(exc.message_dict.get("file") or exc.messages) from exc
        return uploaded

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.upload_refused:
            # The handler dropped the file at the limit: that, not what the field made of the
            # rest ("This field is required."), is the error.
            self.errors.pop("file", None)
            self.add_error("file", ValidationError(upload_limit_message(settings.DATASET_MAX_UPLOAD_BYTES),
                                                   code=UPLOAD_TOO_LARGE))
        return data
